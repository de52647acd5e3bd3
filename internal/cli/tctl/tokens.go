package tctl

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/types"
)

func (e *env) tokensCmd() *cobra.Command {
	tokens := &cobra.Command{Use: "tokens", Short: "Manage join tokens"}
	var (
		typ, botName, joinMethod, name string
		allow                          []string
		ttl                            time.Duration
	)
	add := &cobra.Command{
		Use:   "add --type=bot|kube",
		Short: "Create a join token",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			if typ == "" {
				return common.UsageErrorf("--type is required (bot or kube)")
			}
			resp, err := clt.CreateToken(ctx, &pb.CreateTokenRequest{Type: typ, BotName: botName, TtlSeconds: int64(ttl / time.Second),
				JoinMethod: joinMethod, AllowServiceAccounts: allow, Name: name})
			if err != nil {
				return err
			}
			mins := int(time.Until(time.Unix(resp.GetExpiresUnix(), 0)).Round(time.Minute) / time.Minute)
			if resp.GetToken() != "" {
				fmt.Fprintf(e.stdio.Out, "The %s join token: %s\nThis token will expire in %d minutes.\n", typ, resp.GetToken(), mins)
			} else {
				fmt.Fprintf(e.stdio.Out, "The %s join token %q (join method %s) has been created.\nIt will expire in %d minutes.\n", typ, resp.GetName(), joinMethod, mins)
			}
			return nil
		}),
	}
	add.Flags().StringVar(&typ, "type", "", "bot or kube")
	add.Flags().StringVar(&botName, "bot-name", "", "the bot a bot token is for")
	add.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token is valid")
	add.Flags().StringVar(&joinMethod, "join-method", "token", "token or kubernetes")
	add.Flags().StringSliceVar(&allow, "allow-service-account", nil, "for kubernetes: ns:name allowed to join (repeatable)")
	add.Flags().StringVar(&name, "name", "", "for kubernetes: the token's name")
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List join tokens (secrets are never shown: tokens are stored as hashes)",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			list, err := clt.ListResources(ctx, &pb.ListResourcesRequest{Kind: types.KindToken})
			if err != nil {
				return err
			}
			var rows [][]string
			for _, p := range list.GetResources() {
				r, err := fromPB(p)
				if err != nil {
					return err
				}
				t := r.(*types.Token)
				exp := "never"
				if t.Metadata.Expires != nil {
					exp = t.Metadata.Expires.UTC().Format(time.RFC3339)
					if time.Now().After(*t.Metadata.Expires) {
						exp += " (expired)"
					}
				}
				rows = append(rows, []string{t.GetName(), strings.Join(t.Spec.Roles, ","), t.Spec.BotName, t.Spec.JoinMethod, exp})
			}
			table(e.stdio.Out, []string{"Token", "Type", "Bot", "Join Method", "Expiry Time (UTC)"}, rows)
			return nil
		}),
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a join token (by the name tokens ls shows, or by its secret)",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			p, err := clt.GetResource(ctx, &pb.GetResourceRequest{Kind: types.KindToken, Name: args[0]})
			name := args[0]
			if err == nil {
				if r, derr := fromPB(p); derr == nil {
					name = r.GetName()
				}
			}
			if _, err := clt.DeleteResource(ctx, &pb.DeleteResourceRequest{Kind: types.KindToken, Name: name}); err != nil {
				return err
			}
			fmt.Fprintln(e.stdio.Out, "Token has been deleted.")
			return nil
		}),
	}
	tokens.AddCommand(add, ls, rm)
	return tokens
}
