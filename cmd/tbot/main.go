// Command tbot is the Keyport Machine ID agent. See internal/cli/tbot.
package main

import (
	"os"

	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/cli/tbot"
)

func main() { os.Exit(tbot.Main(os.Args[1:], common.StdIO())) }
