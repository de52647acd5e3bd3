package tctl

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/types"
)

func (e *env) usersCmd() *cobra.Command {
	users := &cobra.Command{Use: "users", Short: "Manage local users"}
	var roles, kubeGroups, kubeUsers []string
	var traits []string
	add := &cobra.Command{
		Use:   "add NAME --roles=a,b",
		Short: "Create a user and print a one-time invite URL",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			if len(roles) == 0 {
				return common.UsageErrorf("--roles is required")
			}
			tr, err := parseTraits(traits)
			if err != nil {
				return err
			}
			if len(kubeGroups) > 0 {
				tr["kubernetes_groups"] = kubeGroups
			}
			if len(kubeUsers) > 0 {
				tr["kubernetes_users"] = kubeUsers
			}
			resp, err := clt.CreateUser(ctx, &pb.CreateUserRequest{Name: args[0], Roles: roles, Traits: toTraits(tr)})
			if err != nil {
				return err
			}
			ttl := time.Until(time.Unix(resp.GetExpiresUnix(), 0)).Round(time.Minute)
			fmt.Fprintf(e.stdio.Out, "User %q has been created but requires a password. Share this URL with the user to complete user setup, link is valid for %s:\n%s\n\n", args[0], fmtDuration(ttl), resp.GetInviteUrl())
			fmt.Fprintln(e.stdio.Out, "NOTE: Make sure the host in the URL points at a Keyport proxy that the user can reach.")
			return nil
		}),
	}
	add.Flags().StringSliceVar(&roles, "roles", nil, "roles of the user (comma-separated)")
	add.Flags().StringSliceVar(&kubeGroups, "kubernetes-groups", nil, "trait kubernetes_groups")
	add.Flags().StringSliceVar(&kubeUsers, "kubernetes-users", nil, "trait kubernetes_users")
	add.Flags().StringArrayVar(&traits, "traits", nil, "trait as key=v1,v2 (repeatable)")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List users",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			list, err := clt.ListResources(ctx, &pb.ListResourcesRequest{Kind: types.KindUser})
			if err != nil {
				return err
			}
			var rows [][]string
			for _, p := range list.GetResources() {
				r, err := fromPB(p)
				if err != nil {
					return err
				}
				u := r.(*types.User)
				rows = append(rows, []string{u.GetName(), strings.Join(u.Spec.Roles, ",")})
			}
			table(e.stdio.Out, []string{"User", "Roles"}, rows)
			return nil
		}),
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a user",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			if _, err := clt.DeleteResource(ctx, &pb.DeleteResourceRequest{Kind: types.KindUser, Name: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdio.Out, "User %q has been deleted\n", args[0])
			return nil
		}),
	}
	reset := &cobra.Command{
		Use:   "reset NAME",
		Short: "Clear a user's password and OTP and print a new invite URL",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			resp, err := clt.ResetUser(ctx, &pb.ResetUserRequest{Name: args[0]})
			if err != nil {
				return err
			}
			ttl := time.Until(time.Unix(resp.GetExpiresUnix(), 0)).Round(time.Minute)
			fmt.Fprintf(e.stdio.Out, "User %q has been reset. Share this URL with the user to complete password reset, link is valid for %s:\n%s\n", args[0], fmtDuration(ttl), resp.GetInviteUrl())
			return nil
		}),
	}
	users.AddCommand(add, ls, rm, reset)
	return users
}

func parseTraits(in []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, t := range in {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			return nil, common.UsageErrorf("--traits %q: want key=value[,value]", t)
		}
		for _, x := range strings.Split(v, ",") {
			if x != "" && !slices.Contains(out[k], x) {
				out[k] = append(out[k], x)
			}
		}
	}
	return out, nil
}

// fmtDuration prints 1h, 30m, 1h30m: the way people write TTLs.
func fmtDuration(d time.Duration) string {
	s := d.Round(time.Minute).String()
	s = strings.TrimSuffix(s, "0s")
	s = strings.TrimSuffix(s, "h0m")
	if strings.HasSuffix(d.Round(time.Minute).String(), "h0m0s") {
		s += "h"
	}
	return s
}
