package types

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"
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
