package tsh

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/recordings"
	"github.com/keyport/keyport/internal/recording"
)

// kubeSessionsCmd is `tsh kube sessions ls`: the live sessions the user may join.
func (e *env) kubeSessionsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sessions", Short: "Live Kubernetes exec and attach sessions"}
	var format string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the live sessions your roles' join_sessions let you join",
		Args:  cobra.NoArgs,
		RunE: e.withSession(nil, func(ctx context.Context, s *session, _ []string) error {
			if format != "text" && format != "json" {
				return fmt.Errorf("--format must be text or json")
			}
			resp, err := s.clt.ListActiveSessions(ctx, &pb.ListActiveSessionsRequest{})
			if err != nil {
				return err
			}
			metas := make([]recording.Meta, 0, len(resp.GetSessions()))
			for _, r := range resp.GetSessions() {
				var m recording.Meta
				if err := json.Unmarshal(r.GetJson(), &m); err != nil {
					return err
				}
				metas = append(metas, m)
			}
			if format == "json" {
				data, err := json.MarshalIndent(metas, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(e.stdio.Out, "%s\n", data)
				return err
			}
			tw := tabwriter.NewWriter(e.stdio.Out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "Session ID\tUser\tCluster\tPod\tKind\tCommand\tStarted")
			fmt.Fprintln(tw, "----------\t----\t-------\t---\t----\t-------\t-------")
			for _, m := range metas {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\n", m.SessionID, m.User, m.Cluster, m.Namespace, m.Pod, m.Kind,
					strings.Join(m.Command, " "), m.Start.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		}),
	}
	ls.Flags().StringVar(&format, "format", "text", "text or json")
	cmd.AddCommand(ls)
	return cmd
}

// kubeJoinCmd is `tsh kube join SESSION_ID`: watch a live session read-only.
func (e *env) kubeJoinCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "join SESSION_ID",
		Short: "Watch a live Kubernetes session read-only (needs allow.join_sessions; every join is audited)",
		Args:  cobra.ExactArgs(1),
		RunE: e.withSession(nil, func(ctx context.Context, s *session, args []string) error {
			id := args[0]
			pr, pw := io.Pipe()
			errc := make(chan error, 1)
			go func() {
				var off int64
				for {
					resp, err := s.clt.JoinSession(ctx, &pb.JoinSessionRequest{SessionId: id, Offset: off})
					if err != nil {
						pw.CloseWithError(err)
						errc <- err
						return
					}
					if _, err := pw.Write(resp.GetData()); err != nil {
						errc <- nil
						return
					}
					off += int64(len(resp.GetData()))
					if resp.GetEnded() {
						_ = pw.Close()
						errc <- nil
						return
					}
				}
			}()
			fmt.Fprintf(e.stdio.Err, "Watching session %s read-only; Ctrl-C leaves.\n", id)
			err := recordings.Play(ctx, pr, recordings.PlayOptions{Format: "text", Speed: 1}, e.stdio.Out)
			_ = pr.Close()
			if ferr := <-errc; ferr != nil {
				return ferr
			}
			return err
		}),
	}
}
