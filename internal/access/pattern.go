package access

import (
	"fmt"
	"regexp"
	"strings"
)

// patternKind picks the cheapest way to match a pattern. Most patterns in real roles
// are "*" or a literal, and those must never reach the regexp engine on the hot path.
type patternKind uint8

const (
	patLiteral patternKind = iota // exact string
	patAny                        // "*": everything, including ""
	patPrefix                     // "abc*"
	patSuffix                     // "*abc"
	patRegexp                     // other globs and ^regex$
)

// pattern is a compiled role value: a literal, a glob where "*" stands for any run of
// characters, or a regular expression when the value starts with ^ and ends with $ (as
// in Teleport). A regular expression always has to match the whole input.
type pattern struct {
	kind patternKind
	s    string
	re   *regexp.Regexp
	src  string // the value as written, for messages
}

func compilePattern(v string) (pattern, error) {
	p := pattern{src: v}
	switch {
	case v == "*":
		p.kind = patAny
	case len(v) >= 2 && v[0] == '^' && v[len(v)-1] == '$':
		// The group keeps the anchors around the whole expression: "^a|b$" means
		// "a or b", not "starts with a, or ends with b" as Go would read it.
		re, err := regexp.Compile("^(?:" + v[1:len(v)-1] + ")$")
		if err != nil {
			return pattern{}, fmt.Errorf("invalid regular expression %q: %s", v, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
		p.kind, p.re = patRegexp, re
	case !strings.Contains(v, "*"):
		p.kind, p.s = patLiteral, v
	case strings.Count(v, "*") == 1 && strings.HasSuffix(v, "*"):
		p.kind, p.s = patPrefix, v[:len(v)-1]
	case strings.Count(v, "*") == 1 && strings.HasPrefix(v, "*"):
		p.kind, p.s = patSuffix, v[1:]
	default:
		expr := strings.ReplaceAll(regexp.QuoteMeta(v), `\*`, ".*")
		p.kind, p.re = patRegexp, regexp.MustCompile("^(?:"+expr+")$")
	}
	return p, nil
}

func mustPattern(v string) pattern {
	p, err := compilePattern(v)
	if err != nil {
		panic(err)
	}
	return p
}

func (p *pattern) match(s string) bool {
	switch p.kind {
	case patAny:
		return true
	case patLiteral:
		return s == p.s
	case patPrefix:
		return strings.HasPrefix(s, p.s)
	case patSuffix:
		return strings.HasSuffix(s, p.s)
	default:
		return p.re.MatchString(s)
	}
}

// universal reports whether the pattern matches every string. Only "*" is recognised:
// deciding it for an arbitrary regexp is not worth it, and a false "no" only costs a
// filtered response instead of an unfiltered one.
func (p *pattern) universal() bool { return p.kind == patAny }

// onlyEmpty reports whether the pattern matches nothing but "" (an unset field).
func (p *pattern) onlyEmpty() bool { return p.kind == patLiteral && p.s == "" }

func (p *pattern) String() string { return p.src }
