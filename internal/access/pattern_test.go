package access

import "testing"

func TestPattern(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		in      string
		want    bool
	}{
		{"star matches anything", "*", "kube-system", true},
		{"star matches the empty string", "*", "", true},
		{"literal matches itself", "dev", "dev", true},
		{"literal does not match a longer value", "dev", "dev2", false},
		{"empty literal matches only empty", "", "", true},
		{"empty literal does not match a value", "", "dev", false},
		{"trailing glob is a prefix", "team-*", "team-a", true},
		{"trailing glob needs the prefix", "team-*", "tea", false},
		{"leading glob is a suffix", "*-prod", "db-prod", true},
		{"leading glob needs the suffix", "*-prod", "db-dev", false},
		{"inner glob", "a*b*c", "axxbyyc", true},
		{"inner glob anchors both ends", "a*b*c", "axxbyycd", false},
		{"glob quotes regexp characters", "a.b*", "axb1", false},
		{"glob keeps dots literal", "a.b*", "a.b1", true},
		{"regexp matches whole value", "^web-[0-9]+$", "web-12", true},
		{"regexp does not match part", "^web-[0-9]+$", "web-12a", false},
		{"regexp alternation stays anchored", "^dev|prod$", "dev-x", false},
		{"regexp alternation matches either", "^dev|prod$", "prod", true},
		{"caret without dollar is a literal", "^dev", "^dev", true},
		{"caret without dollar does not match as regexp", "^dev", "dev", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := compilePattern(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.match(tt.in); got != tt.want {
				t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.in, got, tt.want)
			}
		})
	}
	if _, err := compilePattern("^(unclosed$"); err == nil {
		t.Error("bad regexp compiled")
	}
}
