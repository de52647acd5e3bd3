package tctl

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/client"
)

func (e *env) auditCmd() *cobra.Command {
	auditCmd := &cobra.Command{Use: "audit", Short: "The audit log"}
	var since time.Duration
	var user, typ, format string
	var limit int
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List audit events",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return common.UsageErrorf("--format must be text or json")
			}
			req := &pb.SearchAuditRequest{User: user, Type: typ, Limit: int32(limit)}
			if since > 0 {
				req.SinceUnix = time.Now().Add(-since).Unix()
			}
			resp, err := clt.SearchAudit(ctx, req)
			if err != nil {
				return err
			}
			if format == "json" {
				raw := make([]json.RawMessage, 0, len(resp.GetEvents()))
				for _, ev := range resp.GetEvents() {
					raw = append(raw, ev.GetJson())
				}
				data, err := json.MarshalIndent(raw, "", "  ")
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(e.stdio.Out, "%s\n", data)
				return err
			}
			var rows [][]string
			for _, ev := range resp.GetEvents() {
				var m struct {
					Time    time.Time      `json:"time"`
					Type    string         `json:"type"`
					User    string         `json:"user"`
					Success bool           `json:"success"`
					Message string         `json:"message"`
					Fields  map[string]any `json:"fields"`
				}
				if err := json.Unmarshal(ev.GetJson(), &m); err != nil {
					continue
				}
				result := "ok"
				if !m.Success {
					result = "failed"
				}
				detail := m.Message
				if detail == "" && len(m.Fields) > 0 {
					var parts []string
					for k, v := range m.Fields {
						parts = append(parts, fmt.Sprintf("%s=%v", k, v))
					}
					detail = strings.Join(parts, " ")
				}
				rows = append(rows, []string{m.Time.UTC().Format(time.RFC3339), m.Type, m.User, result, detail})
			}
			table(e.stdio.Out, []string{"Time", "Type", "User", "Result", "Details"}, rows)
			return nil
		}),
	}
	ls.Flags().DurationVar(&since, "since", 0, "only events newer than this (e.g. 1h)")
	ls.Flags().StringVar(&user, "user", "", "only events of this user")
	ls.Flags().StringVar(&typ, "type", "", "only events of this type (e.g. bot.join, or bot for all bot.*)")
	ls.Flags().StringVar(&format, "format", "text", "text or json")
	ls.Flags().IntVar(&limit, "limit", 1000, "at most this many (the newest)")
	auditCmd.AddCommand(ls)
	return auditCmd
}
