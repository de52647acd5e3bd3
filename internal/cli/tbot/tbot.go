// Package tbot implements the `tbot` command line (Keyport Machine ID agent). It talks to the
// cluster only through the shared client package and must not import the server packages
// (internal/auth, internal/proxy, internal/kube); internal/archtest enforces that.
package tbot

import (
	"github.com/keyport/keyport/internal/cli/common"
)

// Main runs tbot with args (without the program name) and returns the exit code.
func Main(args []string, stdio common.IO) int {
	var g common.Globals
	root := common.NewRoot("tbot", "Keyport Machine ID agent", &g, stdio)
	return common.Run(root, args, stdio)
}
