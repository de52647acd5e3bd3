// Package archtest owns the import wall between Keyport's clients and its servers: the
// CLIs (tctl, tsh, tbot) and the bot core run on machines that must not carry the Auth
// Service, the proxy or the Kubernetes Service, so they may not import those packages,
// directly or through anything else.
package archtest

import (
	"fmt"
	"sort"
	"strings"
)

// Module is the import path of the Keyport module.
const Module = "github.com/keyport/keyport"

// ClientPatterns are the `go list` patterns of the packages that must stay client-only.
var ClientPatterns = []string{
	"./cmd/tctl", "./cmd/tsh", "./cmd/tbot",
	"./internal/cli/...", "./internal/tbot/...",
}

// ServerPackages are the import-path prefixes the clients may not depend on.
var ServerPackages = []string{
	Module + "/internal/auth",
	Module + "/internal/authapi",
	Module + "/internal/proxy",
	Module + "/internal/kube",
	Module + "/internal/service",
}

// Violations returns one line per client package that depends on a server package.
// deps maps a package's import path to its transitive dependencies.
func Violations(deps map[string][]string) []string {
	var out []string
	for pkg, ds := range deps {
		for _, d := range ds {
			for _, s := range ServerPackages {
				if d == s || strings.HasPrefix(d, s+"/") {
					out = append(out, fmt.Sprintf("%s imports server package %s", pkg, d))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
