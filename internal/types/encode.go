package types

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/yamlpos"
	"gopkg.in/yaml.v3"
)

// toNode builds the YAML node tree of a value from its `yaml` struct tags, for Encode.
// yaml.v3's own reflection encoder is not used because two of its bugs break
// Decode(Encode(r)) == r: it writes a map key "<<" unquoted, which reads back as a merge
// key, and it writes strings that start with a line break as literal blocks that lose
// that line break. With an explicit !!str tag yaml.v3 quotes whatever would not read back
// as a string, and toNode forces double quotes where literal blocks fail.
// It returns nil for a value that an omitempty field leaves out.
func toNode(v reflect.Value) (*yaml.Node, error) {
	if m, ok := v.Interface().(yaml.Marshaler); ok {
		out, err := m.MarshalYAML()
		if err != nil {
			return nil, err
		}
		return toNode(reflect.ValueOf(out))
	}
	if t, ok := v.Interface().(time.Time); ok {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: yamlpos.TagTimestamp, Value: t.Format(time.RFC3339Nano)}, nil
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: yamlpos.TagNull, Value: "null"}, nil
		}
		return toNode(v.Elem())
	case reflect.String:
		return strNode(v.String()), nil
	case reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: yamlpos.TagBool, Value: fmt.Sprint(v.Bool())}, nil
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: yamlpos.TagSeq}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle // []
		}
		for i := range v.Len() {
			item, err := toNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, item)
		}
		return n, nil
	case reflect.Map:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: yamlpos.TagMap}
		if v.Len() == 0 {
			n.Style = yaml.FlowStyle // {}
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			val, err := toNode(v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, strNode(k.String()), val)
		}
		return n, nil
	case reflect.Struct:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: yamlpos.TagMap}
		if err := appendFields(n, v); err != nil {
			return nil, err
		}
		if len(n.Content) == 0 {
			n.Style = yaml.FlowStyle // {}
		}
		return n, nil
	}
	return nil, fmt.Errorf("types: cannot encode %s as YAML", v.Type())
}

func strNode(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: yamlpos.TagStr, Value: s}
	if strings.HasPrefix(s, "\n") {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// appendFields appends v's fields in declaration order, flattening `,inline` structs and
// leaving out empty `,omitempty` ones.
func appendFields(n *yaml.Node, v reflect.Value) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "inline") {
			if err := appendFields(n, fv); err != nil {
				return err
			}
			continue
		}
		if strings.Contains(opts, "omitempty") && isEmpty(fv) {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		val, err := toNode(fv)
		if err != nil {
			return err
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: yamlpos.TagStr, Value: name}, val)
	}
	return nil
}

// isEmpty is omitempty's test: zero scalars, nil pointers, empty lists and maps, and
// structs whose fields are all empty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	case reflect.Struct:
		if _, ok := v.Interface().(time.Time); ok {
			return v.IsZero()
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() && !isEmpty(v.Field(i)) {
				return false
			}
		}
		return true
	}
	return v.IsZero()
}
