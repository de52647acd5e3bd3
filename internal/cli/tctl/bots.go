package tctl

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/types"
)

func (e *env) botsCmd() *cobra.Command {
	bots := &cobra.Command{Use: "bots", Short: "Manage Machine ID bots"}
	var (
		roles, addRoles, setRoles []string
		ttl                       time.Duration
		format                    string
	)
	add := &cobra.Command{
		Use:   "add NAME --roles=a,b",
		Short: "Create a bot and a join token for it",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return common.UsageErrorf("--format must be text or json")
			}
			resp, err := clt.CreateBot(ctx, &pb.CreateBotRequest{Name: args[0], Roles: roles, TokenTtlSeconds: int64(ttl / time.Second)})
			if err != nil {
				return err
			}
			tokenTTL := time.Duration(resp.GetTokenTtlSeconds()) * time.Second
			if format == "json" {
				data, err := json.MarshalIndent(map[string]any{
					"user_name": resp.GetUserName(), "role_name": resp.GetRoleName(),
					"token_id": resp.GetTokenId(), "token_ttl": tokenTTL,
				}, "", "    ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(e.stdio.Out, "%s\n", data)
				return err
			}
			proxy := resp.GetProxyPublicAddr()
			w := e.stdio.Out
			fmt.Fprintf(w, "The bot token: %s\n", resp.GetTokenId())
			fmt.Fprintf(w, "This token will expire in %d minutes.\n\n", int(tokenTTL.Round(time.Minute)/time.Minute))
			fmt.Fprintf(w, "Start the bot with its kubeconfig output, for example:\n\n")
			fmt.Fprintf(w, "> tbot start kubernetes \\\n   --proxy-server=%s \\\n   --join-method=token \\\n   --token=%s \\\n   --ca-pin=%s \\\n   --destination=file:///opt/machine-id \\\n   --kubernetes-cluster=<kube cluster name>\n\n",
				proxy, resp.GetTokenId(), resp.GetHostCaPin())
			fmt.Fprintf(w, "Please note:\n\n  - /opt/machine-id must be writable by the user running tbot (it is created 0700).\n  - The token is single-use; the bot renews its own credentials afterwards.\n")
			return nil
		}),
	}
	add.Flags().StringSliceVar(&roles, "roles", nil, "roles the bot's certificates carry (comma-separated)")
	add.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the join token is valid")
	add.Flags().StringVar(&format, "format", "text", "text or json")

	update := &cobra.Command{
		Use:   "update NAME --add-roles=a,b | --set-roles=a,b",
		Short: "Change a bot's roles; they apply at its next renewal",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, cmd *cobra.Command, args []string) error {
			set := cmd.Flags().Changed("set-roles")
			if !set && len(addRoles) == 0 {
				return common.UsageErrorf("give --add-roles or --set-roles")
			}
			if _, err := clt.UpdateBot(ctx, &pb.UpdateBotRequest{Name: args[0], AddRoles: addRoles, SetRoles: setRoles, Set: set}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdio.Out, "Bot %q has been updated. Roles will take effect on its next renewal.\n", args[0])
			return nil
		}),
	}
	update.Flags().StringSliceVar(&addRoles, "add-roles", nil, "roles to add (comma-separated)")
	update.Flags().StringSliceVar(&setRoles, "set-roles", nil, "replace the roles with these (comma-separated)")

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List bots",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			list, err := clt.ListResources(ctx, &pb.ListResourcesRequest{Kind: types.KindBot})
			if err != nil {
				return err
			}
			var rows [][]string
			for _, p := range list.GetResources() {
				r, err := fromPB(p)
				if err != nil {
					return err
				}
				b := r.(*types.Bot)
				user, _ := types.BotResourceNames(b.GetName())
				rows = append(rows, []string{b.GetName(), user, strings.Join(b.Spec.Roles, ",")})
			}
			table(e.stdio.Out, []string{"Bot", "User", "Roles"}, rows)
			return nil
		}),
	}
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Delete a bot, its user, role and instances",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			if _, err := clt.DeleteResource(ctx, &pb.DeleteResourceRequest{Kind: types.KindBot, Name: args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdio.Out, "Bot %q deleted successfully.\n", args[0])
			return nil
		}),
	}
	instances := &cobra.Command{Use: "instances", Short: "Bot instances (one per join)"}
	instancesLs := &cobra.Command{
		Use:   "ls [NAME]",
		Short: "List bot instances",
		Args:  cobra.MaximumNArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			list, err := clt.ListBotInstances(ctx, &pb.ListBotInstancesRequest{BotName: name})
			if err != nil {
				return err
			}
			var rows [][]string
			for _, bi := range list.GetInstances() {
				id := bi.GetBotName() + "/" + bi.GetInstanceId()
				if bi.GetLocked() {
					id += " (locked)"
				}
				rows = append(rows, []string{id, bi.GetJoinMethod(), bi.GetHostname(),
					time.Unix(bi.GetJoinedUnix(), 0).UTC().Format(time.RFC3339), time.Unix(bi.GetLastSeenUnix(), 0).UTC().Format(time.RFC3339),
					strconv.FormatUint(bi.GetGeneration(), 10)})
			}
			table(e.stdio.Out, []string{"ID", "Join Method", "Hostname", "Joined", "Last Seen", "Generation"}, rows)
			return nil
		}),
	}
	instances.AddCommand(instancesLs)
	bots.AddCommand(add, update, ls, rm, instances)
	return bots
}
