package tctl

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyport/keyport/internal/cli/recordings"
	"github.com/keyport/keyport/internal/client"
)

// recordingsCmd is `tctl recordings ls`.
func (e *env) recordingsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "recordings", Short: "Recorded Kubernetes sessions"}
	var o recordings.ListOptions
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List recorded sessions (needs session:list)",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			o.Now = time.Now()
			return recordings.List(ctx, clt, o, e.stdio.Out)
		}),
	}
	recordings.AddListFlags(ls, &o)
	cmd.AddCommand(ls)
	return cmd
}
