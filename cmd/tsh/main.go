// Command tsh is the Keyport user client. See internal/cli/tsh.
package main

import (
	"os"

	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/cli/tsh"
)

func main() { os.Exit(tsh.Main(os.Args[1:], common.StdIO())) }
