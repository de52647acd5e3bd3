package tsh

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/cli/requests"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// requestCmd is `tsh request`: ask for roles or resources, list, show, drop, review.
func (e *env) requestCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Access requests: ask for roles you do not hold, or for access to some resources, for a while",
	}
	cmd.AddCommand(e.requestCreateCmd(), e.requestLsCmd(), e.requestShowCmd(), e.requestDropCmd(), e.requestReviewCmd())
	return cmd
}

func (e *env) requestCreateCmd() *cobra.Command {
	var (
		roles, resources []string
		reason           string
		maxDuration      time.Duration
		wait             bool
	)
	cmd := &cobra.Command{
		Use:   "create --roles=ROLE[,ROLE] | --resource=/CLUSTER/kube_cluster/NAME [--reason=TEXT]",
		Short: "Ask for roles, or for your search_as_roles on a kube cluster, a namespace or a pod",
		Long: "Ask for roles you do not hold (--roles), or for access to resources (--resource, repeatable):\n" +
			"/CLUSTER/kube_cluster/NAME, /CLUSTER/namespace/KUBE_CLUSTER/NAMESPACE or\n" +
			"/CLUSTER/pod/KUBE_CLUSTER/NAMESPACE/POD. A resource request grants your roles' search_as_roles on\n" +
			"those resources only. Once a reviewer approves, use it with tsh login --request-id=ID.",
		Args: cobra.NoArgs,
		RunE: e.withSession(nil, func(ctx context.Context, s *session, _ []string) error {
			if len(roles) == 0 && len(resources) == 0 {
				return common.UsageErrorf("give --roles or --resource")
			}
			if maxDuration < 0 {
				return common.UsageErrorf("--max-duration must be positive")
			}
			p, err := s.clt.CreateAccessRequest(ctx, &pb.CreateAccessRequestRequest{Roles: roles, Resources: resources, Reason: reason,
				MaxDurationSeconds: int64(maxDuration / time.Second)})
			if err != nil {
				return err
			}
			ar, err := requests.Decode(p)
			if err != nil {
				return err
			}
			requests.Print(e.stdio.Out, ar, e.now())
			if !wait {
				fmt.Fprintf(e.stdio.Out, "\nWaiting for review. Once approved: tsh login --request-id=%s\n", ar.GetName())
				return nil
			}
			fmt.Fprintf(e.stdio.Out, "\nWaiting for review (until %s)...\n", ar.Spec.Expires.UTC().Format(time.RFC3339))
			if ar, err = e.awaitReview(ctx, s, ar); err != nil {
				return err
			}
			if ar.Spec.State != types.RequestApproved {
				reason := ""
				if ar.Spec.ResolveReason != "" {
					reason = ": " + ar.Spec.ResolveReason
				}
				return errs.AccessDeniedf("access request %s was denied%s", ar.GetName(), reason)
			}
			fmt.Fprintf(e.stdio.Out, "Approved. Logging in with the request.\n\n")
			s.Close()
			return e.loginWithRequests(ctx, "", []string{ar.GetName()})
		}),
	}
	f := cmd.Flags()
	f.StringSliceVar(&roles, "roles", nil, "roles to ask for, comma-separated")
	f.StringSliceVar(&resources, "resource", nil, "a resource to ask for (repeatable)")
	f.StringVar(&reason, "reason", "", "why you need it (reviewers see it)")
	f.BoolVar(&wait, "wait", false, "wait for the review, and once approved reissue the login with the request (as tsh login --request-id does)")
	f.DurationVar(&maxDuration, "max-duration", 0, "how long the access should last at most (default 1h, capped by the roles' max_session_ttl; at least 10s)")
	return cmd
}

func (e *env) requestLsCmd() *cobra.Command {
	var state, format string
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List your access requests and those you may review",
		Args:  cobra.NoArgs,
		RunE: e.withSession(nil, func(ctx context.Context, s *session, _ []string) error {
			return requests.List(ctx, s.clt, e.stdio.Out, state, format, e.now())
		}),
	}
	cmd.Flags().StringVar(&state, "state", "", "only requests in this state: pending, approved or denied")
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

func (e *env) requestShowCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one access request with its reviews",
		Args:  cobra.ExactArgs(1),
		RunE: e.withSession(nil, func(ctx context.Context, s *session, args []string) error {
			return requests.Show(ctx, s.clt, e.stdio.Out, args[0], format, e.now())
		}),
	}
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

func (e *env) requestDropCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "drop ID",
		Short: "Delete one of your access requests",
		Args:  cobra.ExactArgs(1),
		RunE: e.withSession(nil, func(ctx context.Context, s *session, args []string) error {
			if _, err := s.clt.DeleteAccessRequest(ctx, &pb.GetAccessRequestRequest{Id: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdio.Out, "Deleted access request %s.\n", args[0])
			if ids := s.id.Identity; ids != nil && slices.Contains(ids.ActiveRequests, args[0]) {
				fmt.Fprintln(e.stdio.Out, "Your current login still carries it until it expires; tsh login without --request-id drops it now.")
			}
			return nil
		}),
	}
}

func (e *env) requestReviewCmd() *cobra.Command {
	var approve, deny bool
	var reason string
	cmd := &cobra.Command{
		Use:   "review --approve|--deny [--reason=TEXT] ID",
		Short: "Approve or deny someone's access request",
		Args:  cobra.ExactArgs(1),
		RunE: e.withSession(nil, func(ctx context.Context, s *session, args []string) error {
			if approve == deny {
				return common.UsageErrorf("give exactly one of --approve or --deny")
			}
			return requests.Review(ctx, s.clt, e.stdio.Out, args[0], approve, reason, e.now())
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&approve, "approve", false, "approve the request")
	f.BoolVar(&deny, "deny", false, "deny the request")
	f.StringVar(&reason, "reason", "", "why (the requester sees it)")
	return cmd
}

// reviewPoll is how often tsh request create --wait asks whether the request is resolved.
const reviewPoll = time.Second

// awaitReview polls the request until it is resolved or its review window has passed.
func (e *env) awaitReview(ctx context.Context, s *session, ar *types.AccessRequest) (*types.AccessRequest, error) {
	for !ar.Resolved() {
		if !e.now().Before(ar.Spec.Expires) {
			return nil, errs.AccessDeniedf("access request %s expired at %s without a decision", ar.GetName(), ar.Spec.Expires.UTC().Format(time.RFC3339))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(reviewPoll):
		}
		p, err := s.clt.GetAccessRequest(ctx, &pb.GetAccessRequestRequest{Id: ar.GetName()})
		if err != nil {
			return nil, err
		}
		if ar, err = requests.Decode(p); err != nil {
			return nil, err
		}
	}
	return ar, nil
}
