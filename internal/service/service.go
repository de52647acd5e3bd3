// Package service owns the keyport daemon's process: reading keyport.yaml, building the
// Auth, Proxy and Kubernetes services it enables as a list of components, and running
// them until the first failure or a signal. It is the one place that wires server
// packages together; the CLIs never import it.
package service

import (
	"github.com/keyport/keyport/internal/cli/common"
)

// Main runs the keyport daemon's command line with args and returns the exit code.
func Main(args []string, stdio common.IO) int {
	var g common.Globals
	root := common.NewRoot("keyport", "Keyport access plane daemon", &g, stdio)
	return common.Run(root, args, stdio)
}
