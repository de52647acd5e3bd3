package tctl

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
)

func (e *env) proxiesCmd() *cobra.Command {
	proxies := &cobra.Command{Use: "proxies", Short: "The live proxies"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the live proxies, where Kubernetes Services open tunnels, and the clusters each one's tunnels carry",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			resp, err := clt.ListProxies(ctx, &pb.ListProxiesRequest{})
			if err != nil {
				return err
			}
			var rows [][]string
			for _, p := range resp.GetProxies() {
				clusters := strings.Join(p.GetClusters(), ",")
				if clusters == "" {
					clusters = "-"
				}
				rows = append(rows, []string{p.GetName(), p.GetAddr(), clusters})
			}
			table(e.stdio.Out, []string{"Proxy", "Tunnel Address", "Tunnelled Clusters"}, rows)
			return nil
		}),
	}
	proxies.AddCommand(ls)
	return proxies
}
