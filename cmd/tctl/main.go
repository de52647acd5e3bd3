// Command tctl is the Admin tool for the Keyport cluster. See internal/cli/tctl.
package main

import (
	"os"

	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/cli/tctl"
)

func main() { os.Exit(tctl.Main(os.Args[1:], common.StdIO())) }
