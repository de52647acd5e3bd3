package archtest

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestClientsDoNotImportServers runs `go list -deps` over the client packages of this
// checkout and fails on any dependency on a server package.
func TestClientsDoNotImportServers(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	args := append([]string{"list", "-e", "-f", "{{.ImportPath}}:{{join .Deps \" \"}}"}, ClientPatterns...)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, ds, ok := strings.Cut(line, ":")
		if !ok || pkg == "" {
			continue
		}
		deps[pkg] = strings.Fields(ds)
	}
	if len(deps) < 4 {
		t.Fatalf("go list found only %d client packages: %v", len(deps), deps)
	}
	for _, v := range Violations(deps) {
		t.Error(v)
	}
}

func TestViolations(t *testing.T) {
	tests := []struct {
		name string
		deps map[string][]string
		want int
	}{
		{"clean", map[string][]string{Module + "/cmd/tctl": {"fmt", Module + "/internal/client"}}, 0},
		{"direct auth", map[string][]string{Module + "/cmd/tbot": {Module + "/internal/auth"}}, 1},
		{"nested proxy", map[string][]string{Module + "/internal/cli/tsh": {Module + "/internal/proxy/kubeproxy"}}, 1},
		{"prefix is not a match", map[string][]string{Module + "/cmd/tsh": {Module + "/internal/authclient", Module + "/internal/kubeconfig"}}, 0},
		{"two", map[string][]string{Module + "/cmd/tctl": {Module + "/internal/kube", Module + "/internal/service"}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Violations(tt.deps); len(got) != tt.want {
				t.Errorf("Violations = %v, want %d", got, tt.want)
			}
		})
	}
}
