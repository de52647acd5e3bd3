package yamlpos

import (
	"errors"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/errs"
)

type sample struct {
	Name    string            `yaml:"name"`
	Count   int               `yaml:"count"`
	UID     *int              `yaml:"uid"`
	Enabled bool              `yaml:"enabled"`
	TTL     time.Duration     `yaml:"ttl"`
	Labels  map[string]string `yaml:"labels"`
	Items   []item            `yaml:"items"`
	Common  `yaml:",inline"`
}

type item struct {
	Path string `yaml:"path"`
}

type Common struct {
	Version string `yaml:"version"`
}

func (s *sample) validate() error {
	if s.Count < 0 {
		return Fieldf("count", "must not be negative")
	}
	for i, it := range s.Items {
		if it.Path == "" {
			return Fieldf(IndexPath("items", i)+".path", "required")
		}
	}
	return nil
}

func TestDecodeStrict(t *testing.T) {
	var good sample
	data := "version: v1\nname: n\ncount: 3\nuid: 0\nenabled: true\nttl: 20m\nlabels: {env: dev}\nitems:\n- path: /a\n"
	if err := DecodeStrict("f.yaml", []byte(data), &good, good.validate); err != nil {
		t.Fatal(err)
	}
	if good.Version != "v1" || good.Count != 3 || good.UID == nil || *good.UID != 0 || !good.Enabled || good.TTL != 20*time.Minute ||
		good.Labels["env"] != "dev" || good.Items[0].Path != "/a" {
		t.Fatalf("decoded %+v", good)
	}
	tests := []struct{ name, data, want string }{
		{"unknown field", "name: n\nnaem: x\n", "f.yaml:2: naem: unknown field"},
		{"unknown nested field", "items:\n- path: /a\n  paht: /b\n", "f.yaml:3: items[0].paht: unknown field"},
		{"duplicate key", "name: a\nname: b\n", "f.yaml:2: name: duplicate key (first on line 1)"},
		{"alias", "name: &a x\nversion: *a\n", "f.yaml:2: version: YAML aliases are not supported"},
		{"int wanted", "count: many\n", "f.yaml:1: count: expected an integer, got a string"},
		{"bool wanted", "enabled: yes please\n", "f.yaml:1: enabled: expected a boolean, got a string"},
		{"bare number for a duration", "ttl: 30\n", `f.yaml:1: ttl: expected a duration such as "8h", got a number`},
		{"bad duration", "ttl: soon\n", `f.yaml:1: ttl: invalid duration "soon" (use Go syntax such as "8h" or "30m")`},
		{"mapping wanted", "labels: [a]\n", "f.yaml:1: labels: expected a mapping, got a list"},
		{"validation placed on its line", "name: n\ncount: -1\n", "f.yaml:2: count: must not be negative"},
		{"validation of a list item", "items:\n- path: /a\n- {}\n", "f.yaml:3: items[1].path: required"},
		{"empty", "# nothing\n", "f.yaml: file is empty"},
		{"two documents", "name: a\n---\nname: b\n", "f.yaml:3: more than one YAML document; this file holds one"},
		{"syntax", "name: [\n", "f.yaml:2: did not find expected node content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sample
			err := DecodeStrict("f.yaml", []byte(tt.data), &s, s.validate)
			var pe *Error
			if err == nil || err.Error() != tt.want || !errors.As(err, &pe) || !errs.IsBadParameter(err) {
				t.Fatalf("err = %v\nwant  %s (an *Error of category bad parameter)", err, tt.want)
			}
		})
	}
}
