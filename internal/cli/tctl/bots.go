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
		joinMethod                string
		rejoins                   int
	)
	add := &cobra.Command{
		Use:   "add NAME --roles=a,b",
		Short: "Create a bot and a join token for it",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return common.UsageErrorf("--format must be text or json")
			}
			resp, err := clt.CreateBot(ctx, &pb.CreateBotRequest{Name: args[0], Roles: roles, TokenTtlSeconds: int64(ttl / time.Second),
				JoinMethod: joinMethod, Rejoins: int32(rejoins)})
			if err != nil {
				return err
			}
			tokenTTL := time.Duration(resp.GetTokenTtlSeconds()) * time.Second
			if resp.GetRegistrationSecret() != "" {
				return e.printBoundKeypairBot(resp, tokenTTL, format)
			}
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
	add.Flags().StringVar(&joinMethod, "join-method", "token", "token (a single-use token) or bound_keypair (a one-time registration secret binds tbot's own key)")
	add.Flags().IntVar(&rejoins, "rejoins", 0, fmt.Sprintf("bound_keypair: how many more times the key may join after its first join (default %d)", types.DefaultBoundKeypairRejoins))
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
					strconv.FormatUint(bi.GetGeneration(), 10), joinedAs(bi)})
			}
			table(e.stdio.Out, []string{"ID", "Join Method", "Hostname", "Joined", "Last Seen", "Generation", "Joined As"}, rows)
			return nil
		}),
	}
	instancesShow := &cobra.Command{
		Use:   "show [BOT/]ID",
		Short: "Show one bot instance with what its join proved (verified claims, service account or bound key)",
		Args:  cobra.ExactArgs(1),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			want := args[0]
			if _, id, ok := strings.Cut(want, "/"); ok {
				want = id
			}
			list, err := clt.ListBotInstances(ctx, &pb.ListBotInstancesRequest{})
			if err != nil {
				return err
			}
			for _, bi := range list.GetInstances() {
				if bi.GetInstanceId() != want {
					continue
				}
				out := map[string]any{"bot_name": bi.GetBotName(), "instance_id": bi.GetInstanceId(), "join_method": bi.GetJoinMethod(),
					"hostname": bi.GetHostname(), "joined": time.Unix(bi.GetJoinedUnix(), 0).UTC().Format(time.RFC3339),
					"last_seen": time.Unix(bi.GetLastSeenUnix(), 0).UTC().Format(time.RFC3339), "generation": bi.GetGeneration(),
					"locked": bi.GetLocked()}
				if bi.GetJoinToken() != "" {
					out["join_token"] = bi.GetJoinToken()
				}
				if c := bi.GetJoinClaimsJson(); c != "" {
					out["join_claims"] = json.RawMessage(c)
				}
				data, err := json.MarshalIndent(out, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(e.stdio.Out, "%s\n", data)
				return err
			}
			return fmt.Errorf("no bot instance %q (see tctl bots instances ls)", args[0])
		}),
	}
	instances.AddCommand(instancesLs, instancesShow)
	bots.AddCommand(add, update, ls, rm, instances)
	return bots
}

// joinedAs says in a few words what an instance's join proved.
func joinedAs(bi *pb.BotInstance) string {
	var c map[string]any
	if bi.GetJoinClaimsJson() == "" || json.Unmarshal([]byte(bi.GetJoinClaimsJson()), &c) != nil {
		return "-"
	}
	str := func(k string) string { v, _ := c[k].(string); return v }
	switch bi.GetJoinMethod() {
	case types.JoinMethodGitHub:
		s := str("repository") + "@" + str("ref")
		if env := str("environment"); env != "" {
			s += " env " + env
		}
		return s
	case types.JoinMethodGitLab:
		return str("project_path") + "@" + str("ref")
	case types.JoinMethodOIDC:
		return str("iss") + " " + str("sub")
	case types.JoinMethodKubernetes:
		return "sa " + str("service_account") + " pod " + str("pod")
	case types.JoinMethodBoundKeypair:
		return fmt.Sprintf("key %s, %v rejoins left", str("public_key"), c["rejoins_remaining"])
	}
	return "-"
}

// printBoundKeypairBot prints a bound_keypair bot's registration secret and tbot.yaml.
func (e *env) printBoundKeypairBot(resp *pb.CreateBotResponse, ttl time.Duration, format string) error {
	if format == "json" {
		data, err := json.MarshalIndent(map[string]any{
			"user_name": resp.GetUserName(), "role_name": resp.GetRoleName(), "join_method": types.JoinMethodBoundKeypair,
			"token_name": resp.GetJoinTokenName(), "registration_secret": resp.GetRegistrationSecret(), "registration_ttl": ttl,
		}, "", "    ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(e.stdio.Out, "%s\n", data)
		return err
	}
	w := e.stdio.Out
	fmt.Fprintf(w, "The bot's join token: %s (join method bound_keypair)\n", resp.GetJoinTokenName())
	fmt.Fprintf(w, "The registration secret: %s\n", resp.GetRegistrationSecret())
	fmt.Fprintf(w, "It registers one key, once, within %d minutes.\n\n", int(ttl.Round(time.Minute)/time.Minute))
	fmt.Fprintf(w, "Start the bot with a tbot.yaml such as:\n\nversion: v2\nproxy_server: %s\nonboarding:\n  join_method: bound_keypair\n  token: %s\n  ca_pins: ['%s']\n  bound_keypair:\n    registration_secret: %s\nstorage: {type: directory, path: /var/lib/keyport/bot}\n",
		resp.GetProxyPublicAddr(), resp.GetJoinTokenName(), resp.GetHostCaPin(), resp.GetRegistrationSecret())
	fmt.Fprintf(w, "\nPlease note:\n\n  - tbot makes its key on first start and keeps it in its storage; it never leaves the host.\n  - After registration the secret is useless: remove it from the file.\n")
	return nil
}
