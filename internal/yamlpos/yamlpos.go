// Package yamlpos turns yaml.v3 decoding and validation failures into errors that name the
// file, the line and the field path (`keyport.yaml:9: auth_service.listen_addr: …`). It
// indexes a document's node tree by field path, so a validation error that knows only a
// path can still point at a line, and a decoder error that knows only a line can still
// name the field.
package yamlpos

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/keyport/keyport/internal/errs"
)

// Index maps field paths (`a.b[2].c`) to the nodes that hold them.
type Index struct {
	paths map[string]*yaml.Node
	// keys maps a line to the paths of mapping keys on that line.
	keys map[int][]string
}

// NewIndex walks root (a document or mapping node).
func NewIndex(root *yaml.Node) *Index {
	ix := &Index{paths: map[string]*yaml.Node{}, keys: map[int][]string{}}
	if root != nil && root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	ix.walk("", root)
	return ix
}

func (ix *Index) walk(path string, n *yaml.Node) {
	if n == nil {
		return
	}
	ix.paths[path] = n
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			ix.keys[k.Line] = append(ix.keys[k.Line], p)
			ix.walk(p, v)
			// A key's own position is where an "unknown field" error points.
			if _, ok := ix.paths[p+"#key"]; !ok {
				ix.paths[p+"#key"] = k
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			ix.walk(fmt.Sprintf("%s[%d]", path, i), c)
		}
	case yaml.AliasNode:
		ix.walk(path, n.Alias)
	}
}

// Line returns the line of the node at path or, when the field is missing, the line of
// the key of its nearest ancestor that is present.
func (ix *Index) Line(path string) int {
	if n, ok := ix.paths[path]; ok {
		return n.Line
	}
	for p := path; ; {
		if n, ok := ix.paths[p+"#key"]; ok {
			return n.Line
		}
		if n, ok := ix.paths[p]; ok && p != path {
			return n.Line
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			if n, ok := ix.paths[""]; ok {
				return n.Line
			}
			return 0
		}
		p = p[:i]
	}
}

// PathAt returns the field path whose key sits on line and is named field (or the only
// key on that line when field is empty).
func (ix *Index) PathAt(line int, field string) string {
	for _, p := range ix.keys[line] {
		if field == "" || p == field || strings.HasSuffix(p, "."+field) {
			return p
		}
	}
	for p, n := range ix.paths {
		if n.Line == line && !strings.HasSuffix(p, "#key") && p != "" {
			return p
		}
	}
	return ""
}

// Error is a positioned error. It has category BadParameter.
type Error struct {
	File string
	Line int
	Path string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Path != "" {
		b.WriteString(": " + e.Path)
	}
	b.WriteString(": " + e.Msg)
	return b.String()
}

// FieldError is returned by validation code that knows a field path but not a line.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Fieldf makes a FieldError.
func Fieldf(path, format string, args ...any) error {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

var (
	reLine    = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	reUnknown = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	reType    = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.*)$")
)

// DecodeStrict decodes one YAML document into out, refusing unknown fields, and runs
// validate (which may return FieldErrors). Every failure comes back as an *Error of
// category BadParameter naming file, line and field.
func DecodeStrict(file string, data []byte, out any, validate func() error) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Wrap(file, nil, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return errs.Wrap(errs.BadParameter, &Error{File: file, Msg: "file is empty"})
	}
	ix := NewIndex(&root)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return Wrap(file, ix, err)
	}
	if validate != nil {
		if err := validate(); err != nil {
			return Wrap(file, ix, err)
		}
	}
	return nil
}

// Wrap positions err (from yaml.v3 or a validator) in file using ix (which may be nil).
func Wrap(file string, ix *Index, err error) error {
	if err == nil {
		return nil
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		line := 0
		if ix != nil {
			line = ix.Line(fe.Path)
		}
		return errs.Wrap(errs.BadParameter, &Error{File: file, Line: line, Path: fe.Path, Msg: fe.Msg})
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		// Report the first problem; fixing it and re-running shows the next.
		return errs.Wrap(errs.BadParameter, positioned(file, ix, te.Errors[0]))
	}
	return errs.Wrap(errs.BadParameter, positioned(file, ix, strings.TrimPrefix(err.Error(), "yaml: ")))
}

func positioned(file string, ix *Index, msg string) *Error {
	m := reLine.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: file, Msg: msg}
	}
	line, _ := strconv.Atoi(m[1])
	rest := m[2]
	e := &Error{File: file, Line: line, Msg: rest}
	if u := reUnknown.FindStringSubmatch(rest); u != nil {
		e.Msg = "unknown field"
		if ix != nil {
			e.Path = ix.PathAt(line, u[1])
		}
		if e.Path == "" {
			e.Path = u[1]
		}
		return e
	}
	if t := reType.FindStringSubmatch(rest); t != nil {
		e.Msg = fmt.Sprintf("expected %s, got %s", goTypeName(t[3]), yamlTag(t[1], t[2]))
	}
	if ix != nil {
		e.Path = ix.PathAt(line, "")
	}
	return e
}

func yamlTag(tag, value string) string {
	switch tag {
	case "map":
		return "a mapping"
	case "seq":
		return "a list"
	case "str":
		return fmt.Sprintf("the string %q", value)
	default:
		return fmt.Sprintf("%s %s", tag, value)
	}
}

func goTypeName(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "a mapping"
	case t == "string":
		return "a string"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case t == "time.Duration":
		return "a duration such as 30m"
	default:
		if i := strings.LastIndexByte(t, '.'); i >= 0 {
			t = t[i+1:]
		}
		return "a " + strings.ToLower(t)
	}
}
