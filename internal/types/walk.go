package types

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// The walker decodes a yaml.Node tree into a Go value by reflection over the `yaml` struct
// tags. yaml.v3's own strict mode (KnownFields) reports neither the field path nor, for
// values that fail validation later, any line; walking the tree ourselves gives both and
// lets us reject what yaml.v3 silently accepts (duplicate keys, aliases, null list items).

// nodeError is a decoding failure at a line and field path; Decode adds the file name.
type nodeError struct {
	Line int
	Path string
	Msg  string
}

func (e *nodeError) Error() string { return fmt.Sprintf("%d: %s: %s", e.Line, e.Path, e.Msg) }

type walker struct {
	// lines maps every field path seen to the line of its key (or, for list items, of the
	// item), so that validation errors, which know only a path, can be placed.
	lines map[string]int
}

func (w *walker) errorf(line int, path, format string, args ...any) error {
	return &nodeError{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

var (
	durationType = reflect.TypeFor[Duration]()
	stringsType  = reflect.TypeFor[Strings]()
	timeType     = reflect.TypeFor[time.Time]()
	traitsType   = reflect.TypeFor[Traits]()
)

const (
	tagStr       = "!!str"
	tagInt       = "!!int"
	tagFloat     = "!!float"
	tagBool      = "!!bool"
	tagNull      = "!!null"
	tagTimestamp = "!!timestamp"
	tagMerge     = "!!merge"
	tagMap       = "!!map"
	tagSeq       = "!!seq"
)

// decode decodes n into v. path is n's field path; line is the line errors about n's type
// are reported at: its key's line, because that is where a reader looks for "the field".
func (w *walker) decode(n *yaml.Node, v reflect.Value, path string, line int) error {
	if err := w.checkNode(n, path); err != nil {
		return err
	}
	t := v.Type()
	if isNull(n) {
		// An explicit null (`deny:` or `deny: ~`) means "not set".
		v.SetZero()
		return nil
	}
	switch t {
	case durationType:
		return w.decodeDuration(n, v, path, line)
	case stringsType:
		return w.decodeStrings(n, v, path, line)
	case timeType:
		return w.decodeTime(n, v, path, line)
	case traitsType:
		if n.Kind == yaml.SequenceNode {
			return w.decodeTraitList(n, v, path, line)
		}
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := w.decode(n, p.Elem(), path, line); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.String:
		s, err := w.scalar(n, t, path, line)
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != tagBool {
			return w.typeError(n, t, path, line)
		}
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			return w.typeError(n, t, path, line)
		}
		v.SetBool(b)
		return nil
	case reflect.Slice:
		return w.decodeSlice(n, v, path, line)
	case reflect.Map:
		return w.decodeMap(n, v, path, line)
	case reflect.Struct:
		return w.decodeStruct(n, v, path, line)
	}
	panic(fmt.Sprintf("types: no YAML decoder for %s at %s", t, path))
}

// checkNode rejects the YAML features resources have no use for. Aliases in particular
// would let a small file expand into a huge one.
func (w *walker) checkNode(n *yaml.Node, path string) error {
	if n.Kind == yaml.AliasNode {
		return w.errorf(n.Line, path, "YAML aliases are not supported")
	}
	switch n.ShortTag() {
	case tagStr, tagInt, tagFloat, tagBool, tagNull, tagTimestamp, tagMerge, tagMap, tagSeq:
		return nil
	}
	return w.errorf(n.Line, path, "unsupported YAML tag %q", n.Tag)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == tagNull
}

// scalar returns the text of a scalar node. Numbers, booleans and timestamps are accepted
// as their literal text, as yaml.v3 does for string fields, so that `name: 2024` or a label
// value `true` work; Encode quotes such strings, so they read back the same.
func (w *walker) scalar(n *yaml.Node, t reflect.Type, path string, line int) (string, error) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return "", w.typeError(n, t, path, line)
	}
	return n.Value, nil
}

func (w *walker) typeError(n *yaml.Node, t reflect.Type, path string, line int) error {
	return w.errorf(line, path, "expected %s, got %s", describeType(t), describeNode(n))
}

func describeType(t reflect.Type) string {
	switch t {
	case durationType:
		return `a duration such as "8h"`
	case stringsType:
		return "a string or a list of strings"
	case timeType:
		return `a time such as "2030-01-02T15:04:05Z"`
	case traitsType:
		return "a mapping of trait names to lists of strings"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describeType(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list"
	}
	return "a mapping"
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case tagInt, tagFloat:
		return "a number"
	case tagBool:
		return "a boolean"
	case tagNull:
		return "null"
	case tagTimestamp:
		return "a time"
	}
	return "a string"
}

func (w *walker) decodeDuration(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != tagStr && n.ShortTag() != tagMerge) {
		// A bare number is the classic mistake (seconds? hours?); say so rather than
		// guess a unit.
		return w.typeError(n, v.Type(), path, line)
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return w.errorf(line, path, "invalid duration %q (use Go syntax such as \"8h\" or \"30m\")", n.Value)
	}
	if d < 0 {
		return w.errorf(line, path, "must not be negative")
	}
	v.SetInt(int64(d))
	return nil
}

func (w *walker) decodeTime(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != tagStr && n.ShortTag() != tagTimestamp) {
		return w.typeError(n, v.Type(), path, line)
	}
	t, err := time.Parse(time.RFC3339Nano, n.Value)
	if err != nil {
		return w.errorf(line, path, "invalid time %q (want RFC 3339, such as \"2030-01-02T15:04:05Z\")", n.Value)
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return w.errorf(line, path, "year %d is out of range", y)
	}
	v.Set(reflect.ValueOf(t))
	return nil
}

func (w *walker) decodeStrings(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind == yaml.ScalarNode {
		s, err := w.scalar(n, v.Type(), path, line)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(Strings{s}))
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return w.typeError(n, v.Type(), path, line)
	}
	return w.decodeSlice(n, v, path, line)
}

// decodeTraitList reads Teleport's bot form of traits, [{name: N, values: [...]}], so that
// bot files written for Teleport read unchanged. Encode writes the map form.
func (w *walker) decodeTraitList(n *yaml.Node, v reflect.Value, path string, line int) error {
	var list []struct {
		Name   string   `yaml:"name"`
		Values []string `yaml:"values"`
	}
	if err := w.decode(n, reflect.ValueOf(&list).Elem(), path, line); err != nil {
		return err
	}
	traits := Traits{}
	for i, t := range list {
		p := indexPath(path, i) + ".name"
		if _, dup := traits[t.Name]; dup {
			return w.errorf(w.lines[indexPath(path, i)], p, "duplicate trait %q", t.Name)
		}
		traits[t.Name] = t.Values
	}
	if len(traits) > 0 {
		v.Set(reflect.ValueOf(traits))
	}
	return nil
}

func (w *walker) decodeSlice(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind != yaml.SequenceNode {
		return w.typeError(n, v.Type(), path, line)
	}
	if len(n.Content) == 0 {
		// Empty and absent are the same thing in a resource; keeping them apart would
		// only make Decode(Encode(r)) differ from r.
		v.SetZero()
		return nil
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := indexPath(path, i)
		w.lines[p] = item.Line
		if isNull(item) {
			return w.errorf(item.Line, p, "expected %s, got null", describeType(v.Type().Elem()))
		}
		if err := w.decode(item, s.Index(i), p, item.Line); err != nil {
			return err
		}
	}
	v.Set(s)
	return nil
}

// key returns the text of a mapping key. A "<<" key is taken literally rather than as a
// merge: merging needs an alias, which checkNode rejects, so `<<: *base` still fails
// there, and in a struct "<<" is an unknown field.
func (w *walker) key(k *yaml.Node, path string) (string, error) {
	if err := w.checkNode(k, path); err != nil {
		return "", err
	}
	switch {
	case k.Kind != yaml.ScalarNode:
		return "", w.errorf(k.Line, path, "expected a string key, got %s", describeNode(k))
	case isNull(k):
		return "", w.errorf(k.Line, path, "expected a string key, got null")
	}
	return k.Value, nil
}

func (w *walker) decodeMap(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind != yaml.MappingNode {
		return w.typeError(n, v.Type(), path, line)
	}
	if len(n.Content) == 0 {
		v.SetZero()
		return nil
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, err := w.key(k, path)
		if err != nil {
			return err
		}
		p := keyPath(path, key)
		if first, dup := seen[key]; dup {
			return w.errorf(k.Line, p, "duplicate key (first on line %d)", first)
		}
		seen[key] = k.Line
		w.lines[p] = k.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		if isNull(val) && elem.Kind() != reflect.Pointer {
			return w.errorf(k.Line, p, "expected %s, got null", describeType(elem.Type()))
		}
		if err := w.decode(val, elem, p, k.Line); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
	return nil
}

func (w *walker) decodeStruct(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind != yaml.MappingNode {
		return w.typeError(n, v.Type(), path, line)
	}
	fields := structFields(v.Type())
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, err := w.key(k, path)
		if err != nil {
			return err
		}
		p := keyPath(path, key)
		if first, dup := seen[key]; dup {
			return w.errorf(k.Line, p, "duplicate key (first on line %d)", first)
		}
		seen[key] = k.Line
		index, ok := fields[key]
		if !ok {
			return w.errorf(k.Line, p, "unknown field")
		}
		w.lines[p] = k.Line
		if err := w.decode(val, v.FieldByIndex(index), p, k.Line); err != nil {
			return err
		}
	}
	return nil
}

var fieldCache sync.Map // reflect.Type -> map[string][]int

// structFields maps the YAML names of t's fields, including those of `,inline` embedded
// structs, to their indexes.
func structFields(t reflect.Type) map[string][]int {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string][]int)
	}
	fields := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, idx := range structFields(f.Type) {
				fields[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = []int{i}
	}
	fieldCache.Store(t, fields)
	return fields
}
