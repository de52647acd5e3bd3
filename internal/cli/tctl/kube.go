package tctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/types"
)

func (e *env) kubeCmd() *cobra.Command {
	kube := &cobra.Command{Use: "kube", Short: "Kubernetes clusters enrolled in Keyport"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List kube clusters, their labels, and whether you may reach them",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			resp, err := clt.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
			if err != nil {
				return err
			}
			var rows [][]string
			for i, c := range resp.GetClusters() {
				access := "no"
				if i < len(resp.GetAccessible()) && resp.GetAccessible()[i] {
					access = "yes"
				}
				rows = append(rows, []string{c.GetName(), types.FormatLabels(c.GetLabels(), ","), access})
			}
			table(e.stdio.Out, []string{"Kube Cluster Name", "Labels", "Access"}, rows)
			return nil
		}),
	}
	var canUser, canBot, canCluster, canNS string
	can := &cobra.Command{
		Use:   "can-i --user=NAME|--bot=NAME --cluster=C VERB RESOURCE[/SUBRESOURCE] [NAME] [-n NS]",
		Short: "Whether a user or bot may do something in a kube cluster: Keyport RBAC and the cluster's own",
		Long: "Prints yes, or no with the layer that refused (Keyport or the cluster's RBAC) and why.\n" +
			"Exits 0 for yes and 1 for no, as kubectl auth can-i does.",
		Args: cobra.RangeArgs(2, 3),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			if (canUser == "") == (canBot == "") {
				return common.UsageErrorf("give exactly one of --user and --bot")
			}
			if canCluster == "" {
				return common.UsageErrorf("--cluster is required")
			}
			req := &pb.KubeCanIRequest{User: canUser, Bot: canBot, Cluster: canCluster, Verb: args[0], Resource: args[1], Namespace: canNS}
			if len(args) == 3 {
				req.Name = args[2]
			}
			resp, err := clt.KubeCanI(ctx, req)
			if err != nil {
				return err
			}
			if resp.GetAllowed() {
				fmt.Fprintln(e.stdio.Out, "yes")
				return nil
			}
			layer := "Keyport"
			if resp.GetDeniedBy() == "kubernetes" {
				layer = "the cluster's RBAC (as " + resp.GetImpersonatedUser() + ", groups " + strings.Join(resp.GetImpersonatedGroups(), ",") + ")"
			}
			fmt.Fprintf(e.stdio.Out, "no - denied by %s: %s\n", layer, resp.GetReason())
			return &common.QuietExit{Code: 1}
		}),
	}
	can.Flags().StringVar(&canUser, "user", "", "the user to ask about")
	can.Flags().StringVar(&canBot, "bot", "", "the bot to ask about")
	can.Flags().StringVar(&canCluster, "cluster", "", "the kube cluster")
	can.Flags().StringVarP(&canNS, "namespace", "n", "", "the namespace (default: cluster-wide)")
	kube.AddCommand(ls, can)
	return kube
}
