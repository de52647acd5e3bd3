package types

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"gopkg.in/yaml.v3"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/yamlpos"
)

// DecodeError is what Decode returns (wrapped as errs.BadParameter) for a bad file: where
// the problem is, and what it is. Error() reads "role.yaml:9: spec.allow.x: unknown field".
// It is the one positioned error of package yamlpos, which decodes every file.
type DecodeError = yamlpos.Error

func decodeError(file string, line int, path, msg string) error {
	return yamlpos.Errorf(file, line, path, "%s", msg)
}

// Decode reads the resources in a YAML file: one or more documents separated by "---".
// Empty documents are skipped, but a file with no resource at all is an error. Decoding
// is strict and all-or-nothing: the first unknown field, wrong type or invalid value
// fails the whole file, with an error naming the file, line and field path.
func Decode(filename string, data []byte) ([]Resource, error) {
	docs, err := yamlpos.Documents(filename, data)
	if err != nil {
		return nil, err
	}
	var out []Resource
	for _, doc := range docs {
		r, err := decodeDocument(doc)
		if err != nil {
			var ne *yamlpos.NodeError
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

// decodeDocument decodes one document; it returns nil, nil for an empty document.
func decodeDocument(doc *yaml.Node) (Resource, error) {
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	w := yamlpos.NewWalker(root.Line)
	if err := w.CheckNode(root, ""); err != nil {
		return nil, err
	}
	if yamlpos.IsNull(root) {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, w.Errorf(root.Line, "", "expected a resource (a mapping with kind, version, metadata and spec), got %s", yamlpos.DescribeNode(root))
	}
	// kind and version pick the Go type, so they are read before the walk.
	kind, kindLine, err := headerField(w, root, "kind")
	if err != nil {
		return nil, err
	}
	version, versionLine, err := headerField(w, root, "version")
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
		return nil, w.Errorf(line, fe.Path, "%s", fe.Msg)
	}
	if err := w.Decode(root, reflect.ValueOf(r).Elem(), "", root.Line); err != nil {
		return nil, err
	}
	if err := r.CheckAndSetDefaults(); err != nil {
		fe, ok := AsFieldError(err)
		if !ok {
			return nil, w.Errorf(root.Line, "", "%s", err.Error())
		}
		return nil, w.Errorf(w.LineOf(fe.Path), fe.Path, "%s", fe.Msg)
	}
	return r, nil
}

// headerField returns the value of the top-level scalar field name, "" when absent, and
// the line to report problems with it at.
func headerField(w *yamlpos.Walker, root *yaml.Node, name string) (string, int, error) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Value != name {
			continue
		}
		if err := w.CheckNode(v, name); err != nil {
			return "", 0, err
		}
		if v.Kind != yaml.ScalarNode || yamlpos.IsNull(v) {
			return "", 0, w.Errorf(k.Line, name, "expected a string, got %s", yamlpos.DescribeNode(v))
		}
		return v.Value, k.Line, nil
	}
	return "", root.Line, nil
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
