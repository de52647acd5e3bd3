// Package version holds the release version of the Keyport binaries. The Makefile may
// override Version with -ldflags "-X github.com/keyport/keyport/internal/version.Version=…".
package version

// Version is printed by `tctl status` and every binary's `version` command.
var Version = "0.1.0"
