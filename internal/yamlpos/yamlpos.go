// Package yamlpos is Keyport's one strict YAML decoder: every file it reads (resources
// for tctl create, keyport.yaml, tbot.yaml) is decoded by its Walker, and every failure,
// a syntax error, a decoding problem or a validation error that knows only a field path,
// comes back as an *Error that names the file, the line and the field path
// (`keyport.yaml:9: auth_service.listen_addr: …`).
package yamlpos

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/keyport/keyport/internal/errs"
)

// Error is a positioned error. Error() reads "role.yaml:9: spec.allow.x: unknown field".
type Error struct {
	File string
	Line int    // 1-based; 0 when the problem has no line (an empty file)
	Path string // field path such as "spec.allow.kubernetes_groups"; "" for the whole document
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errorf returns an *Error of category BadParameter.
func Errorf(file string, line int, path, format string, args ...any) error {
	return errs.Wrap(errs.BadParameter, &Error{File: file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
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

// Documents splits a YAML stream into its document nodes, empty ones included. yaml.v3
// is known to panic on a few malformed inputs; a file from a user must never take the
// process down, so a panic becomes a syntax error.
func Documents(file string, data []byte) (docs []*yaml.Node, err error) {
	defer func() {
		if p := recover(); p != nil {
			docs, err = nil, Errorf(file, 0, "", "invalid YAML: %v", p)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, syntaxError(file, err)
		}
		docs = append(docs, &doc)
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to its scanner).
// yaml.v3 v3.0.1 reports the line of a parser error 0-based, and leaves it out when it is
// 0, while scanner errors get 1-based lines; without this correction a syntax error would
// point one line above the construct at fault.
var yamlParserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

func syntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if yamlParserProblems[msg] {
		line++
	}
	return Errorf(file, line, "", "%s", msg)
}

// Positioned turns err from a walk (a *NodeError) or from validation (a *FieldError,
// placed on the line w saw its path or nearest ancestor on) into an *Error in file.
// Other errors are placed on the document's first line.
func Positioned(file string, w *Walker, err error) error {
	var ne *NodeError
	if errors.As(err, &ne) {
		return Errorf(file, ne.Line, ne.Path, "%s", ne.Msg)
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		return Errorf(file, w.LineOf(fe.Path), fe.Path, "%s", fe.Msg)
	}
	return Errorf(file, w.LineOf(""), "", "%s", err.Error())
}

// DecodeStrict decodes the one YAML document in data into out (a pointer to a struct),
// refusing unknown fields, duplicate keys and aliases, and runs validate (which may
// return FieldErrors). Every failure comes back as an *Error of category BadParameter
// naming file, line and field.
func DecodeStrict(file string, data []byte, out any, validate func() error) error {
	docs, err := Documents(file, data)
	if err != nil {
		return err
	}
	var doc *yaml.Node
	for _, d := range docs {
		if len(d.Content) == 0 {
			continue
		}
		if doc != nil {
			return Errorf(file, d.Content[0].Line, "", "more than one YAML document; this file holds one")
		}
		doc = d
	}
	if doc == nil {
		return Errorf(file, 0, "", "file is empty")
	}
	root := doc.Content[0]
	w := NewWalker(root.Line)
	if err := w.Decode(root, reflect.ValueOf(out).Elem(), "", root.Line); err != nil {
		return Positioned(file, w, err)
	}
	if validate != nil {
		if err := validate(); err != nil {
			return Positioned(file, w, err)
		}
	}
	return nil
}
