// Package tbot implements the `tbot` command line (Keyport Machine ID agent, SPEC section
// 9): `start` (from tbot.yaml or from flags), `configure` (the YAML those flags mean),
// `kube credentials` (the exec plugin kubectl runs) and `version`. It talks to the
// cluster only through internal/tbot and the shared client package and must not import
// the server packages (internal/auth, internal/proxy, internal/kube); internal/archtest
// enforces that.
package tbot

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/tbot/kubecreds"
)

// env is what every tbot command shares.
type env struct {
	g     common.Globals
	stdio common.IO
	// now is the clock `kube credentials` checks expiry against (tests fix it).
	now func() time.Time
}

// Main runs tbot with args (without the program name) and returns the exit code.
func Main(args []string, stdio common.IO) int {
	e := &env{stdio: stdio, now: time.Now}
	root := common.NewRoot("tbot", "Keyport Machine ID agent", &e.g, stdio)
	root.AddCommand(e.startCmd(), e.configureCmd(), e.kubeCmd())
	return common.Run(root, args, stdio)
}

func (e *env) kubeCmd() *cobra.Command {
	kube := &cobra.Command{Use: "kube", Short: "Kubernetes helpers", Args: cobra.NoArgs}
	var dir string
	creds := &cobra.Command{
		Use:   "credentials --destination-dir=DIR",
		Short: "Print an ExecCredential from a kubernetes output's directory (the kubeconfig's exec plugin)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if dir == "" {
				return common.UsageErrorf("--destination-dir is required")
			}
			out, err := kubecreds.FromDir(dir, e.now())
			if err != nil {
				return err
			}
			_, err = e.stdio.Out.Write(out)
			return err
		},
	}
	creds.Flags().StringVar(&dir, "destination-dir", "", "directory of a kubernetes output (holds the identity file)")
	kube.AddCommand(creds)
	return kube
}

// usagef is a bad command line (exit 2).
func usagef(format string, args ...any) error { return common.UsageErrorf(format, args...) }
