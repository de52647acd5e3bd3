// Command keyport-bench measures Keyport's Kubernetes proxy against direct access to a
// real API server (see package bench); `make bench` runs it.
package main

import (
	"os"

	"github.com/keyport/keyport/internal/bench"
)

func main() { os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr)) }
