package yamlpos

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// The Walker decodes a yaml.Node tree into a Go value by reflection over the `yaml` struct
// tags. yaml.v3's own strict mode (KnownFields) reports neither the field path nor, for
// values that fail validation later, any line; walking the tree ourselves gives both and
// lets us reject what yaml.v3 silently accepts (duplicate keys, aliases, null list items).
// Every file Keyport reads (resources, keyport.yaml, tbot.yaml) is decoded by it.

// NodeError is a decoding failure at a line and field path; Decode adds the file name.
type NodeError struct {
	Line int
	Path string
	Msg  string
}

func (e *NodeError) Error() string { return fmt.Sprintf("%d: %s: %s", e.Line, e.Path, e.Msg) }

// NodeDecoder is implemented (on the pointer) by types that read themselves from a node,
// such as a list that may be written as one string. They report problems with
// w.Errorf or w.TypeError at path and line.
type NodeDecoder interface {
	DecodeYAMLNode(w *Walker, n *yaml.Node, path string, line int) error
}

// Describer is implemented by types that name what they expect in a type error ("a
// duration such as \"8h\"").
type Describer interface {
	YAMLDescription() string
}

// Walker decodes nodes strictly and remembers the line of every field path it saw.
type Walker struct {
	lines map[string]int
}

// NewWalker returns a walker for a document whose root starts on rootLine.
func NewWalker(rootLine int) *Walker {
	return &Walker{lines: map[string]int{"": rootLine}}
}

// Errorf returns a *NodeError at line and path.
func (w *Walker) Errorf(line int, path, format string, args ...any) error {
	return &NodeError{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)}
}

// YAML tags the walker accepts.
const (
	TagStr       = "!!str"
	TagInt       = "!!int"
	TagFloat     = "!!float"
	TagBool      = "!!bool"
	TagNull      = "!!null"
	TagTimestamp = "!!timestamp"
	TagMerge     = "!!merge"
	TagMap       = "!!map"
	TagSeq       = "!!seq"
)

var (
	durationType    = reflect.TypeFor[time.Duration]()
	timeType        = reflect.TypeFor[time.Time]()
	nodeDecoderType = reflect.TypeFor[NodeDecoder]()
	describerType   = reflect.TypeFor[Describer]()
)

// Decode decodes n into v. path is n's field path; line is the line errors about n's type
// are reported at: its key's line, because that is where a reader looks for "the field".
func (w *Walker) Decode(n *yaml.Node, v reflect.Value, path string, line int) error {
	if err := w.CheckNode(n, path); err != nil {
		return err
	}
	t := v.Type()
	if IsNull(n) {
		// An explicit null (`deny:` or `deny: ~`) means "not set".
		v.SetZero()
		return nil
	}
	if reflect.PointerTo(t).Implements(nodeDecoderType) && v.CanAddr() {
		return v.Addr().Interface().(NodeDecoder).DecodeYAMLNode(w, n, path, line)
	}
	switch t {
	case durationType:
		return w.decodeDuration(n, v, path, line)
	case timeType:
		return w.decodeTime(n, v, path, line)
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		if err := w.Decode(n, p.Elem(), path, line); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.String:
		s, err := w.Scalar(n, t, path, line)
		if err != nil {
			return err
		}
		v.SetString(s)
		return nil
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != TagBool {
			return w.TypeError(n, t, path, line)
		}
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			return w.TypeError(n, t, path, line)
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != TagInt {
			return w.TypeError(n, t, path, line)
		}
		i, err := strconv.ParseInt(n.Value, 0, t.Bits())
		if err != nil {
			return w.Errorf(line, path, "%s is out of range", n.Value)
		}
		v.SetInt(i)
		return nil
	case reflect.Slice:
		return w.DecodeSlice(n, v, path, line)
	case reflect.Map:
		return w.decodeMap(n, v, path, line)
	case reflect.Struct:
		return w.decodeStruct(n, v, path, line)
	}
	panic(fmt.Sprintf("yamlpos: no YAML decoder for %s at %s", t, path))
}

// CheckNode rejects the YAML features Keyport's files have no use for. Aliases in
// particular would let a small file expand into a huge one.
func (w *Walker) CheckNode(n *yaml.Node, path string) error {
	if n.Kind == yaml.AliasNode {
		return w.Errorf(n.Line, path, "YAML aliases are not supported")
	}
	switch n.ShortTag() {
	case TagStr, TagInt, TagFloat, TagBool, TagNull, TagTimestamp, TagMerge, TagMap, TagSeq:
		return nil
	}
	return w.Errorf(n.Line, path, "unsupported YAML tag %q", n.Tag)
}

// IsNull reports an explicit null scalar.
func IsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == TagNull
}

// Scalar returns the text of a scalar node. Numbers, booleans and timestamps are accepted
// as their literal text, as yaml.v3 does for string fields, so that `name: 2024` or a label
// value `true` work.
func (w *Walker) Scalar(n *yaml.Node, t reflect.Type, path string, line int) (string, error) {
	if n.Kind != yaml.ScalarNode || IsNull(n) {
		return "", w.TypeError(n, t, path, line)
	}
	return n.Value, nil
}

// TypeError says that n is not what a field of type t takes.
func (w *Walker) TypeError(n *yaml.Node, t reflect.Type, path string, line int) error {
	return w.Errorf(line, path, "expected %s, got %s", describeType(t), DescribeNode(n))
}

func describeType(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		return describeType(t.Elem())
	}
	if t.Implements(describerType) {
		return reflect.Zero(t).Interface().(Describer).YAMLDescription()
	}
	switch t {
	case durationType:
		return `a duration such as "8h"`
	case timeType:
		return `a time such as "2030-01-02T15:04:05Z"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list"
	}
	return "a mapping"
}

// DescribeNode names what a node is, for errors. It never quotes the value: a value in
// the wrong place may be a secret.
func DescribeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.ShortTag() {
	case TagInt, TagFloat:
		return "a number"
	case TagBool:
		return "a boolean"
	case TagNull:
		return "null"
	case TagTimestamp:
		return "a time"
	}
	return "a string"
}

// DecodeDuration reads a Go duration string ("8h", "30m") that is not negative.
func (w *Walker) DecodeDuration(n *yaml.Node, t reflect.Type, path string, line int) (time.Duration, error) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != TagStr && n.ShortTag() != TagMerge) {
		// A bare number is the classic mistake (seconds? hours?); say so rather than
		// guess a unit.
		return 0, w.TypeError(n, t, path, line)
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return 0, w.Errorf(line, path, "invalid duration %q (use Go syntax such as \"8h\" or \"30m\")", n.Value)
	}
	if d < 0 {
		return 0, w.Errorf(line, path, "must not be negative")
	}
	return d, nil
}

func (w *Walker) decodeDuration(n *yaml.Node, v reflect.Value, path string, line int) error {
	d, err := w.DecodeDuration(n, v.Type(), path, line)
	if err != nil {
		return err
	}
	v.SetInt(int64(d))
	return nil
}

func (w *Walker) decodeTime(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != TagStr && n.ShortTag() != TagTimestamp) {
		return w.TypeError(n, v.Type(), path, line)
	}
	t, err := time.Parse(time.RFC3339Nano, n.Value)
	if err != nil {
		return w.Errorf(line, path, "invalid time %q (want RFC 3339, such as \"2030-01-02T15:04:05Z\")", n.Value)
	}
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		return w.Errorf(line, path, "year %d is out of range", y)
	}
	v.Set(reflect.ValueOf(t))
	return nil
}

// DecodeSlice decodes a list into v, a slice.
func (w *Walker) DecodeSlice(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind != yaml.SequenceNode {
		return w.TypeError(n, v.Type(), path, line)
	}
	if len(n.Content) == 0 {
		// Empty and absent are the same thing; keeping them apart would only make
		// Decode(Encode(r)) differ from r.
		v.SetZero()
		return nil
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := IndexPath(path, i)
		w.lines[p] = item.Line
		if IsNull(item) {
			return w.Errorf(item.Line, p, "expected %s, got null", describeType(v.Type().Elem()))
		}
		if err := w.Decode(item, s.Index(i), p, item.Line); err != nil {
			return err
		}
	}
	v.Set(s)
	return nil
}

// key returns the text of a mapping key. A "<<" key is taken literally rather than as a
// merge: merging needs an alias, which CheckNode rejects, so `<<: *base` still fails
// there, and in a struct "<<" is an unknown field.
func (w *Walker) key(k *yaml.Node, path string) (string, error) {
	if err := w.CheckNode(k, path); err != nil {
		return "", err
	}
	switch {
	case k.Kind != yaml.ScalarNode:
		return "", w.Errorf(k.Line, path, "expected a string key, got %s", DescribeNode(k))
	case IsNull(k):
		return "", w.Errorf(k.Line, path, "expected a string key, got null")
	}
	return k.Value, nil
}

// entries calls f for each key and value of the mapping n, in order, after refusing a
// key that is not a string and a key seen before.
func (w *Walker) entries(n *yaml.Node, path string, f func(k, val *yaml.Node, key, p string) error) error {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, err := w.key(k, path)
		if err != nil {
			return err
		}
		p := KeyPath(path, key)
		if first, dup := seen[key]; dup {
			return w.Errorf(k.Line, p, "duplicate key (first on line %d)", first)
		}
		seen[key] = k.Line
		if err := f(k, val, key, p); err != nil {
			return err
		}
	}
	return nil
}

func (w *Walker) decodeMap(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind != yaml.MappingNode {
		return w.TypeError(n, v.Type(), path, line)
	}
	if len(n.Content) == 0 {
		v.SetZero()
		return nil
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	err := w.entries(n, path, func(k, val *yaml.Node, key, p string) error {
		w.lines[p] = k.Line
		elem := reflect.New(v.Type().Elem()).Elem()
		if IsNull(val) && elem.Kind() != reflect.Pointer {
			return w.Errorf(k.Line, p, "expected %s, got null", describeType(elem.Type()))
		}
		if err := w.Decode(val, elem, p, k.Line); err != nil {
			return err
		}
		m.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
		return nil
	})
	if err != nil {
		return err
	}
	v.Set(m)
	return nil
}

func (w *Walker) decodeStruct(n *yaml.Node, v reflect.Value, path string, line int) error {
	if n.Kind != yaml.MappingNode {
		return w.TypeError(n, v.Type(), path, line)
	}
	fields := structFields(v.Type())
	return w.entries(n, path, func(k, val *yaml.Node, key, p string) error {
		index, ok := fields[key]
		if !ok {
			return w.Errorf(k.Line, p, "unknown field")
		}
		w.lines[p] = k.Line
		return w.Decode(val, v.FieldByIndex(index), p, k.Line)
	})
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

// Line returns the line the walker saw path on.
func (w *Walker) Line(path string) (int, bool) {
	l, ok := w.lines[path]
	return l, ok
}

// LineOf finds the line of path, or of its nearest ancestor that is in the document (a
// missing field is reported where its parent is).
func (w *Walker) LineOf(path string) int {
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

var plainKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// KeyPath is the field path of key under parent: parent.key, or parent["key"] for a key
// that is not a plain word (a label such as app.kubernetes.io/name).
func KeyPath(parent, key string) string {
	if !plainKeyRE.MatchString(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// IndexPath is the field path of item i of the list at parent.
func IndexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}
