package tctl

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/client"
)

func (e *env) lockCmd() *cobra.Command {
	var user, role, bot, instance, request, message, expires string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "lock --user=NAME | --role=NAME | --bot=NAME | --bot-instance-id=ID | --access-request=ID",
		Short: "Lock an identity out of the cluster",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			n := 0
			for _, v := range []string{user, role, bot, instance, request} {
				if v != "" {
					n++
				}
			}
			if n != 1 {
				return common.UsageErrorf("give exactly one of --user, --role, --bot, --bot-instance-id, --access-request")
			}
			req := &pb.CreateLockRequest{User: user, Role: role, Bot: bot, BotInstanceId: instance, AccessRequest: request, Message: message, TtlSeconds: int64(ttl / time.Second)}
			if expires != "" {
				t, err := time.Parse(time.RFC3339, expires)
				if err != nil {
					return common.UsageErrorf("--expires: want RFC 3339 time such as 2026-12-01T15:04:05Z")
				}
				req.ExpiresUnix = t.Unix()
			}
			p, err := clt.CreateLock(ctx, req)
			if err != nil {
				return err
			}
			r, err := fromPB(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdio.Out, "Created a lock with name %q.\n", r.GetName())
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "lock a user")
	f.StringVar(&role, "role", "", "lock everyone with a role")
	f.StringVar(&bot, "bot", "", "lock a bot (all its instances)")
	f.StringVar(&instance, "bot-instance-id", "", "lock one bot instance")
	f.StringVar(&request, "access-request", "", "lock every certificate issued with an access request")
	f.StringVar(&message, "message", "", "message shown to the locked identity")
	f.DurationVar(&ttl, "ttl", 0, "lock duration (default: until removed)")
	f.StringVar(&expires, "expires", "", "lock expiry time (RFC 3339)")
	return cmd
}
