package tctl

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyport/keyport/internal/cli/requests"
	"github.com/keyport/keyport/internal/client"
)

// requestCmd is `tctl request ls|show|approve|deny`.
func (e *env) requestCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "request", Short: "Access requests: list, approve, deny"}
	var state, format string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List access requests (all with access_request:list, as the local admin does)",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			return requests.List(ctx, clt, e.stdio.Out, state, format, time.Now())
		}),
	}
	ls.Flags().StringVar(&state, "state", "", "only requests in this state: pending, approved or denied")
	ls.Flags().StringVar(&format, "format", "text", "text or json")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one access request with its reviews",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			return requests.Show(ctx, clt, e.stdio.Out, args[0], format, time.Now())
		}),
	}
	show.Flags().StringVar(&format, "format", "text", "text or json")
	cmd.AddCommand(ls, show, e.reviewCmd(true), e.reviewCmd(false))
	return cmd
}

func (e *env) reviewCmd(approve bool) *cobra.Command {
	use, short := "deny ID", "Deny an access request"
	if approve {
		use, short = "approve ID", "Approve an access request"
	}
	var reason string
	cmd := &cobra.Command{
		Use:   use + " [--reason=TEXT]",
		Short: short + " (needs access_request:update, which the local admin has)",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			return requests.Review(ctx, clt, e.stdio.Out, args[0], approve, reason, time.Now())
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (the requester sees it)")
	return cmd
}
