package tctl

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
)

func (e *env) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's name, version, CA pin and certificate authorities",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, cmd *cobra.Command, _ []string) error {
			ping, err := clt.Ping(ctx, &pb.PingRequest{})
			if err != nil {
				return err
			}
			// Ping needs no credentials; this call proves ours work.
			cas, err := clt.GetClusterCAs(ctx, &pb.GetClusterCAsRequest{})
			if err != nil {
				return err
			}
			w := e.stdio.Out
			fmt.Fprintf(w, "%-9s%s\n", "Cluster", ping.GetClusterName())
			fmt.Fprintf(w, "%-9s%s\n", "Version", ping.GetVersion())
			fmt.Fprintf(w, "%-9s%s\n", "CA pin", ping.GetHostCaPin())
			fmt.Fprintln(w)
			var rows [][]string
			for _, ca := range cas.GetCas() {
				rows = append(rows, []string{ca.GetType(), ca.GetFingerprint(), ca.GetAlgorithm(), ca.GetRotationState()})
			}
			table(w, []string{"CA", "Fingerprint (SHA-256)", "Algorithm", "Rotation"}, rows)
			return nil
		}),
	}
}
