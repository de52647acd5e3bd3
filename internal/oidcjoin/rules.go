package oidcjoin

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Match returns the index of the first rule whose every claim matches claims, or -1.
// A rule maps a claim name to a glob (see Glob). A claim that is a list matches when
// any of its elements does; booleans and numbers match their JSON spelling ("true",
// "42"); a missing claim, an object or null matches nothing.
func Match(rules []map[string]string, claims map[string]any) int {
	for i, r := range rules {
		if len(r) > 0 && matchRule(r, claims) {
			return i
		}
	}
	return -1
}

func matchRule(rule map[string]string, claims map[string]any) bool {
	for name, pattern := range rule {
		if !matchClaim(pattern, claims[name]) {
			return false
		}
	}
	return true
}

func matchClaim(pattern string, v any) bool {
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if s, ok := scalar(e); ok && Glob(pattern, s) {
				return true
			}
		}
		return false
	}
	s, ok := scalar(v)
	return ok && Glob(pattern, s)
}

// scalar is a claim's value as a rule sees it.
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}

// Glob reports whether s matches pattern as a whole. In a pattern, * matches any run of
// characters (slashes included) and ? any one character; everything else matches
// itself. `repo-*` does not match `repo`. It runs in O(len(pattern)·len(s)) at worst.
func Glob(pattern, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if pi < len(pattern) && pattern[pi] == '*' {
			star, mark = pi, si
			pi++
			continue
		}
		if pi < len(pattern) {
			// Characters are compared as their exact bytes; ? takes one UTF-8 sequence
			// (one byte of invalid UTF-8).
			_, ssz := utf8.DecodeRuneInString(s[si:])
			if pattern[pi] == '?' {
				pi, si = pi+1, si+ssz
				continue
			}
			_, psz := utf8.DecodeRuneInString(pattern[pi:])
			if psz == ssz && pattern[pi:pi+psz] == s[si:si+ssz] {
				pi, si = pi+psz, si+ssz
				continue
			}
		}
		if star < 0 {
			return false
		}
		// Backtrack: the last * takes one more character.
		_, sz := utf8.DecodeRuneInString(s[mark:])
		mark += sz
		pi, si = star+1, mark
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}

// Describe names the claims the rules look at, with the values this token has, for a
// refusal message: the joiner learns its own claims, never the rules.
func Describe(rules []map[string]string, claims map[string]any) string {
	names := map[string]bool{}
	for _, r := range rules {
		for k := range r {
			names[k] = true
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(names)) {
		v, ok := claims[k]
		switch {
		case !ok:
			parts = append(parts, k+" (missing)")
		default:
			b := fmt.Sprint(v)
			if s, ok := v.(string); ok {
				b = strconv.Quote(s)
			}
			if len(b) > 200 {
				b = b[:200] + "…"
			}
			parts = append(parts, k+" "+b)
		}
	}
	return strings.Join(parts, ", ")
}

// Mismatch says, for the audit log, the first claim of each rule that did not match.
func Mismatch(rules []map[string]string, claims map[string]any) []string {
	out := make([]string, 0, len(rules))
	for i, r := range rules {
		for _, k := range slices.Sorted(maps.Keys(r)) {
			if !matchClaim(r[k], claims[k]) {
				out = append(out, fmt.Sprintf("rule %d: %s %v does not match %q", i, k, claims[k], r[k]))
				break
			}
		}
	}
	return out
}
