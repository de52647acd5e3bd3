package types

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/yamlpos"
	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as a Go duration string ("8h", "30m") in YAML and
// JSON, as Teleport users write them.
type Duration time.Duration

// String renders d as time.Duration does, without the zero minutes and seconds that make
// "8h0m0s" noisy in a file a person reads. The result always parses back to d.
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Strings is a list of strings that may be written as a single string. Label selectors
// use it: `env: prod` and `env: [prod, dev]` are both valid, and a one-element list is
// written back as a scalar so that the guide's `'*': '*'` round-trips as written.
type Strings []string

func (s Strings) MarshalYAML() (any, error) {
	if len(s) == 1 {
		return s[0], nil
	}
	return []string(s), nil
}

// MarshalJSON always writes a list: JSON readers are programs, and a stable type is kinder
// to them than a compact one.
func (s Strings) MarshalJSON() ([]byte, error) { return json.Marshal([]string(s)) }

func (s *Strings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Strings{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// Labels is a label selector: label key to the values that match. A key or value of "*"
// matches anything; a value of the form ^regex$ is a regular expression.
type Labels map[string]Strings

// Traits are a user's or bot's named lists of values, expanded into role templates such
// as {{internal.kubernetes_groups}}.
type Traits map[string][]string

// FormatLabels renders a resource's labels as k=v pairs in key order, joined by sep, for
// tables and messages.
func FormatLabels(labels map[string]string, sep string) string {
	keys := slices.Sorted(maps.Keys(labels))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, sep)
}

// The YAML decoding of these types: yamlpos's Walker calls DecodeYAMLNode and names the
// type with YAMLDescription in its errors.

// DecodeYAMLNode reads a Go duration string ("8h", "30m"), not negative.
func (d *Duration) DecodeYAMLNode(w *yamlpos.Walker, n *yaml.Node, path string, line int) error {
	v, err := w.DecodeDuration(n, reflect.TypeFor[Duration](), path, line)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// YAMLDescription names a Duration in errors.
func (Duration) YAMLDescription() string { return `a duration such as "8h"` }

// DecodeYAMLNode reads one string or a list of strings.
func (s *Strings) DecodeYAMLNode(w *yamlpos.Walker, n *yaml.Node, path string, line int) error {
	t := reflect.TypeFor[Strings]()
	if n.Kind == yaml.ScalarNode {
		v, err := w.Scalar(n, t, path, line)
		if err != nil {
			return err
		}
		*s = Strings{v}
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return w.TypeError(n, t, path, line)
	}
	return w.DecodeSlice(n, reflect.ValueOf(s).Elem(), path, line)
}

// YAMLDescription names Strings in errors.
func (Strings) YAMLDescription() string { return "a string or a list of strings" }

// DecodeYAMLNode reads the map form, and Teleport's bot form of traits,
// [{name: N, values: [...]}], so that bot files written for Teleport read unchanged.
// Encode writes the map form.
func (t *Traits) DecodeYAMLNode(w *yamlpos.Walker, n *yaml.Node, path string, line int) error {
	if n.Kind != yaml.SequenceNode {
		m := map[string][]string{}
		if err := w.Decode(n, reflect.ValueOf(&m).Elem(), path, line); err != nil {
			return err
		}
		*t = m
		return nil
	}
	var list []struct {
		Name   string   `yaml:"name"`
		Values []string `yaml:"values"`
	}
	if err := w.Decode(n, reflect.ValueOf(&list).Elem(), path, line); err != nil {
		return err
	}
	traits := Traits{}
	for i, tr := range list {
		p := yamlpos.IndexPath(path, i) + ".name"
		if _, dup := traits[tr.Name]; dup {
			itemLine, _ := w.Line(yamlpos.IndexPath(path, i))
			return w.Errorf(itemLine, p, "duplicate trait %q", tr.Name)
		}
		traits[tr.Name] = tr.Values
	}
	if len(traits) > 0 {
		*t = traits
	}
	return nil
}

// YAMLDescription names Traits in errors.
func (Traits) YAMLDescription() string { return "a mapping of trait names to lists of strings" }
