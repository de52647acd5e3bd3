// Package tctl implements the `tctl` command line (Admin tool for the Keyport cluster). It talks to the
// cluster only through the shared client package and must not import the server packages
// (internal/auth, internal/proxy, internal/kube); internal/archtest enforces that.
package tctl

import (
	"github.com/keyport/keyport/internal/cli/common"
)

// Main runs tctl with args (without the program name) and returns the exit code.
func Main(args []string, stdio common.IO) int {
	var g common.Globals
	root := common.NewRoot("tctl", "Admin tool for the Keyport cluster", &g, stdio)
	return common.Run(root, args, stdio)
}
