// Command quickstart is `make quickstart` and `make quickstart-down`. See
// internal/quickstart.
package main

import (
	"os"

	"github.com/keyport/keyport/internal/quickstart"
)

func main() { os.Exit(quickstart.Main(os.Args[1:])) }
