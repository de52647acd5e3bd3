package access

import (
	"fmt"
	"slices"

	"github.com/keyport/keyport/internal/types"
)

// selector is a compiled kubernetes_labels: every key must be present on the cluster with
// a value matching one of the key's patterns.
type selector struct {
	all  bool // the selector has '*': '*' and so matches every cluster
	keys []labelKey
}

type labelKey struct {
	key    string
	values []pattern // empty when every value was a template that expanded to nothing
}

// compileSelector compiles a label selector, expanding templates in its values from the
// traits. An empty selector matches nothing: a role must name the clusters it grants.
func compileSelector(labels types.Labels, traits map[string][]string) (selector, error) {
	var s selector
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a stable order keeps compiled roles comparable in tests and logs
	for _, k := range keys {
		values := labels[k]
		// As in Teleport, a '*' key matches every cluster (even one without labels) no
		// matter what the other keys say; validation allows it only with the value '*'.
		if k == types.Wildcard && slices.Contains(values, types.Wildcard) {
			return selector{all: true}, nil
		}
		lk := labelKey{key: k}
		for _, v := range values {
			expanded, err := expand(v, traits)
			if err != nil {
				return selector{}, fmt.Errorf("kubernetes_labels[%q]: %w", k, err)
			}
			for _, e := range expanded {
				p, err := compilePattern(e)
				if err != nil {
					return selector{}, fmt.Errorf("kubernetes_labels[%q]: %w", k, err)
				}
				lk.values = append(lk.values, p)
			}
		}
		s.keys = append(s.keys, lk)
	}
	return s, nil
}

// match reports whether the cluster's labels satisfy the selector.
func (s *selector) match(labels map[string]string) bool {
	if s.all {
		return true
	}
	if len(s.keys) == 0 {
		return false
	}
	for i := range s.keys {
		lk := &s.keys[i]
		v, ok := labels[lk.key]
		if !ok {
			return false
		}
		matched := false
		for j := range lk.values {
			if lk.values[j].match(v) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

// formatLabels renders labels as "k=v, k2=v2" in key order, or "none".
func formatLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return "none"
	}
	return types.FormatLabels(labels, ", ")
}
