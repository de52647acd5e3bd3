// Command keyport is the Keyport daemon: Auth, Proxy and Kubernetes services.
// See internal/service.
package main

import (
	"os"

	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/service"
)

func main() { os.Exit(service.Main(os.Args[1:], common.StdIO())) }
