package access

import (
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
)

// expand turns one role value into the values it stands for. A value without "{{" is
// itself. A value with one {{expression}} becomes one value per trait value, with the
// text around the braces kept ("{{internal.kubernetes_groups}}-ro" → "dev-ro", …). A
// template whose trait is missing or empty expands to nothing, so the value is dropped
// (SPEC section 6) rather than kept as a literal "{{…}}" that would name a group no one
// meant.
//
// Expressions, as in Teleport:
//
//	internal.NAME, external.NAME           the trait NAME
//	internal["NAME"], external["NAME"]     the same, for names with dots or spaces
//	email.local(VAR)                       the part of each value before "@"
//	regexp.replace(VAR, "RE", "REPLACEMENT") values matching RE, rewritten; others dropped
//
// Keyport keeps one trait map per identity, so internal and external read the same map.
func expand(value string, traits map[string][]string) ([]string, error) {
	start := strings.Index(value, "{{")
	end := strings.Index(value, "}}")
	if start < 0 && end < 0 {
		return []string{value}, nil
	}
	if start < 0 || end < start || strings.Count(value, "{{") != 1 || strings.Count(value, "}}") != 1 {
		return nil, fmt.Errorf("malformed template %q", value)
	}
	prefix, suffix := value[:start], value[end+2:]
	vals, err := evalExpr(strings.TrimSpace(value[start+2:end]), traits)
	if err != nil {
		return nil, fmt.Errorf("template %q: %w", value, err)
	}
	out := make([]string, 0, len(vals))
	for _, v := range vals {
		if v == "" {
			continue
		}
		out = append(out, prefix+v+suffix)
	}
	return out, nil
}

func evalExpr(expr string, traits map[string][]string) ([]string, error) {
	name, args, isCall := splitCall(expr)
	if !isCall {
		trait, err := parseVariable(expr)
		if err != nil {
			return nil, err
		}
		return traits[trait], nil
	}
	switch name {
	case "email.local":
		if len(args) != 1 {
			return nil, fmt.Errorf("email.local takes one argument")
		}
		vals, err := evalExpr(args[0], traits)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, v := range vals {
			// Teleport parses the address so that "Alice <alice@example.com>" works too;
			// values that are not addresses are dropped rather than passed through.
			addr, err := mail.ParseAddress(v)
			if err != nil {
				continue
			}
			local, _, _ := strings.Cut(addr.Address, "@")
			out = append(out, local)
		}
		return out, nil
	case "regexp.replace":
		if len(args) != 3 {
			return nil, fmt.Errorf("regexp.replace takes three arguments")
		}
		vals, err := evalExpr(args[0], traits)
		if err != nil {
			return nil, err
		}
		expr, err1 := strconv.Unquote(args[1])
		repl, err2 := strconv.Unquote(args[2])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("regexp.replace wants quoted strings as its second and third arguments")
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("regexp.replace: invalid regular expression %q", expr)
		}
		var out []string
		for _, v := range vals {
			if re.MatchString(v) {
				out = append(out, re.ReplaceAllString(v, repl))
			}
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unsupported function %q (want email.local or regexp.replace)", name)
	}
}

// parseVariable reads internal.NAME, external.NAME or the bracket forms.
func parseVariable(expr string) (string, error) {
	ns, rest, ok := strings.Cut(expr, ".")
	bracket := false
	if !ok || strings.ContainsAny(ns, "[") {
		ns, rest, ok = strings.Cut(expr, "[")
		if !ok || !strings.HasSuffix(rest, "]") {
			return "", fmt.Errorf("want {{internal.NAME}} or {{external.NAME}}, got {{%s}}", expr)
		}
		unq, err := strconv.Unquote(strings.TrimSuffix(rest, "]"))
		if err != nil {
			return "", fmt.Errorf("want a quoted trait name in {{%s}}", expr)
		}
		rest, bracket = unq, true
	}
	ns = strings.TrimSpace(ns)
	if ns != "internal" && ns != "external" {
		return "", fmt.Errorf("unknown namespace %q (want internal or external)", ns)
	}
	if rest == "" || (!bracket && strings.ContainsAny(rest, " .()[]\"")) {
		return "", fmt.Errorf("invalid trait name in {{%s}}", expr)
	}
	return rest, nil
}

// splitCall splits `f.g(a, "b", "c")` into its name and arguments. Commas inside quoted
// strings and nested calls do not split.
func splitCall(expr string) (name string, args []string, ok bool) {
	open := strings.Index(expr, "(")
	if open < 0 || !strings.HasSuffix(expr, ")") {
		return "", nil, false
	}
	name = strings.TrimSpace(expr[:open])
	inner := expr[open+1 : len(expr)-1]
	depth, quoted, escaped, last := 0, false, false, 0
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			args = append(args, strings.TrimSpace(inner[last:i]))
			last = i + 1
		}
	}
	args = append(args, strings.TrimSpace(inner[last:]))
	return name, args, true
}
