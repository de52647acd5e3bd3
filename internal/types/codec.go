package types

import (
	"bytes"
	"encoding/json"
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

// DecodeError is what Decode returns (wrapped as errs.BadParameter) for a bad file: where
// the problem is, and what it is. Error() reads "role.yaml:9: spec.allow.x: unknown field".
type DecodeError struct {
	File string
	Line int    // 1-based; 0 when the problem has no line (an empty file)
	Path string // field path such as "spec.allow.kubernetes_groups"; "" for the whole document
	Msg  string
}

func (e *DecodeError) Error() string {
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

func decodeError(file string, line int, path, msg string) error {
	return errs.Wrap(errs.BadParameter, &DecodeError{File: file, Line: line, Path: path, Msg: msg})
}

// Decode reads the resources in a YAML file: one or more documents separated by "---".
// Empty documents are skipped, but a file with no resource at all is an error. Decoding
// is strict and all-or-nothing: the first unknown field, wrong type or invalid value
// fails the whole file, with an error naming the file, line and field path.
func Decode(filename string, data []byte) ([]Resource, error) {
	docs, err := parseDocuments(filename, data)
	if err != nil {
		return nil, err
	}
	var out []Resource
	for _, doc := range docs {
		r, err := decodeDocument(doc)
		if err != nil {
			var ne *nodeError
			if errors.As(err, &ne) {
				return nil, decodeError(filename, ne.Line, ne.Path, ne.Msg)
			}
			return nil, decodeError(filename, doc.Line, "", err.Error())
		}
		if r != nil {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, decodeError(filename, 0, "", "no resources found")
	}
	return out, nil
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

func syntaxError(filename string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if yamlParserProblems[msg] {
		line++
	}
	return decodeError(filename, line, "", msg)
}

// parseDocuments splits the stream into document nodes. yaml.v3 is known to panic on a
// few malformed inputs; a file from a user must never take the process down, so a panic
// becomes a syntax error.
func parseDocuments(filename string, data []byte) (docs []*yaml.Node, err error) {
	defer func() {
		if p := recover(); p != nil {
			docs, err = nil, decodeError(filename, 0, "", fmt.Sprintf("invalid YAML: %v", p))
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
			return nil, syntaxError(filename, err)
		}
		docs = append(docs, &doc)
	}
}

// decodeDocument decodes one document; it returns nil, nil for an empty document.
func decodeDocument(doc *yaml.Node) (Resource, error) {
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	w := &walker{lines: map[string]int{"": root.Line}}
	if err := w.checkNode(root, ""); err != nil {
		return nil, err
	}
	if isNull(root) {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, w.errorf(root.Line, "", "expected a resource (a mapping with kind, version, metadata and spec), got %s", describeNode(root))
	}
	// kind and version pick the Go type, so they are read before the walk.
	kind, kindLine, err := w.headerField(root, "kind")
	if err != nil {
		return nil, err
	}
	version, versionLine, err := w.headerField(root, "version")
	if err != nil {
		return nil, err
	}
	r, err := New(kind, version)
	if err != nil {
		fe, _ := AsFieldError(err)
		line := kindLine
		if fe.Path == "version" {
			line = versionLine
		}
		return nil, w.errorf(line, fe.Path, "%s", fe.Msg)
	}
	if err := w.decode(root, reflect.ValueOf(r).Elem(), "", root.Line); err != nil {
		return nil, err
	}
	if err := r.CheckAndSetDefaults(); err != nil {
		fe, ok := AsFieldError(err)
		if !ok {
			return nil, w.errorf(root.Line, "", "%s", err.Error())
		}
		return nil, w.errorf(w.lineOf(fe.Path), fe.Path, "%s", fe.Msg)
	}
	return r, nil
}

// headerField returns the value of the top-level scalar field name, "" when absent, and
// the line to report problems with it at.
func (w *walker) headerField(root *yaml.Node, name string) (string, int, error) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value != name {
			continue
		}
		if err := w.checkNode(v, name); err != nil {
			return "", 0, err
		}
		if v.Kind != yaml.ScalarNode || isNull(v) {
			return "", 0, w.errorf(k.Line, name, "expected a string, got %s", describeNode(v))
		}
		return v.Value, k.Line, nil
	}
	return "", root.Line, nil
}

// lineOf finds the line of path, or of its nearest ancestor that is in the document (a
// missing field is reported where its parent is).
func (w *walker) lineOf(path string) int {
	for {
		if line, ok := w.lines[path]; ok {
			return line
		}
		cut := max(strings.LastIndexByte(path, '.'), strings.LastIndexByte(path, '['))
		if cut < 0 {
			return w.lines[""]
		}
		path = path[:cut]
	}
}

// Encode writes r as a YAML document: kind, version, metadata, spec, in that order,
// with empty fields left out, two-space indented as Teleport writes it.
func Encode(r Resource) ([]byte, error) {
	return EncodeAll([]Resource{r})
}

// EncodeAll writes resources as one YAML stream, documents separated by "---", the form
// `tctl get` prints and `tctl create` reads.
func EncodeAll(rs []Resource) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, r := range rs {
		n, err := toNode(reflect.ValueOf(r))
		if err == nil {
			err = enc.Encode(n)
		}
		if err != nil {
			return nil, fmt.Errorf("encoding %s %q: %w", r.GetKind(), r.GetName(), err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EncodeJSON writes r as indented JSON with the same field names as the YAML form, for
// `--format=json`.
func EncodeJSON(r Resource) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding %s %q: %w", r.GetKind(), r.GetName(), err)
	}
	return append(b, '\n'), nil
}

// MarshalStorage is the form resources are stored in by the backend: compact JSON, without
// the revision (the backend keeps that itself).
func MarshalStorage(r Resource) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding %s %q: %w", r.GetKind(), r.GetName(), err)
	}
	return b, nil
}

// UnmarshalStorage reads what MarshalStorage wrote. It ignores unknown fields, unlike
// Decode: during a rolling upgrade an older process may read a value written by a newer
// one, and must not fail on it. It runs CheckAndSetDefaults, so defaults introduced
// after the value was written apply.
func UnmarshalStorage(data []byte) (Resource, error) {
	var h struct {
		Kind    string `json:"kind"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, errs.BadParameterf("decoding stored resource: %w", err)
	}
	r, err := New(h.Kind, h.Version)
	if err != nil {
		return nil, errs.BadParameterf("decoding stored resource: %w", err)
	}
	if err := json.Unmarshal(data, r); err != nil {
		return nil, errs.BadParameterf("decoding stored %s: %w", h.Kind, err)
	}
	if err := r.CheckAndSetDefaults(); err != nil {
		return nil, errs.BadParameterf("stored %s %q is invalid: %w", h.Kind, r.GetName(), err)
	}
	return r, nil
}
