package tsh

import (
	"context"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyport/keyport/internal/cli/recordings"
	"github.com/keyport/keyport/internal/recording"
)

// playCmd is `tsh play SESSION_ID` (from the Auth API) or `tsh play FILE.cast` (a
// recording on disk, played offline).
func (e *env) playCmd() *cobra.Command {
	var o recordings.PlayOptions
	cmd := &cobra.Command{
		Use:   "play SESSION_ID|FILE.cast",
		Short: "Play a recorded Kubernetes session (needs session:read in a role's rules)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := args[0]
			if !recording.ValidID(arg) || strings.HasSuffix(arg, ".cast") {
				f, err := os.Open(arg)
				if err != nil {
					return err
				}
				defer f.Close()
				return recordings.Play(cmd.Context(), f, o, e.stdio.Out)
			}
			return e.withSession(nil, func(ctx context.Context, s *session, _ []string) error {
				return recordings.Play(ctx, recordings.Reader(ctx, s.clt, arg), o, e.stdio.Out)
			})(cmd, args)
		},
	}
	cmd.Flags().StringVar(&o.Format, "format", "", "text (the output at once) or json (every event, input included); default: play in real time")
	cmd.Flags().Float64Var(&o.Speed, "speed", 1, "playback speed (2: twice as fast)")
	cmd.Flags().BoolVar(&o.SkipIdle, "skip-idle", false, "shorten pauses to at most "+recordings.MaxIdle.String())
	return cmd
}

// recordingsCmd is `tsh recordings ls`.
func (e *env) recordingsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "recordings", Short: "Recorded Kubernetes sessions"}
	var o recordings.ListOptions
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List recorded sessions (needs session:list in a role's rules)",
		Args:  cobra.NoArgs,
		RunE: e.withSession(nil, func(ctx context.Context, s *session, _ []string) error {
			o.Now = e.now()
			return recordings.List(ctx, s.clt, o, e.stdio.Out)
		}),
	}
	recordings.AddListFlags(ls, &o)
	cmd.AddCommand(ls)
	return cmd
}
