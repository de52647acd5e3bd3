//go:build !linux

// Package quickstart runs the guide against a local cluster; it needs Linux.
package quickstart

import (
	"fmt"
	"os"
)

// Main explains that quickstart needs Linux.
func Main([]string) int {
	fmt.Fprintln(os.Stderr, "ERROR: make quickstart runs a local control plane and needs Linux")
	return 1
}
