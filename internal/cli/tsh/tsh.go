// Package tsh implements the `tsh` command line (Keyport user client). It talks to the
// cluster only through the shared client package and must not import the server packages
// (internal/auth, internal/proxy, internal/kube); internal/archtest enforces that.
package tsh

import (
	"github.com/keyport/keyport/internal/cli/common"
)

// Main runs tsh with args (without the program name) and returns the exit code.
func Main(args []string, stdio common.IO) int {
	var g common.Globals
	root := common.NewRoot("tsh", "Keyport user client", &g, stdio)
	return common.Run(root, args, stdio)
}
