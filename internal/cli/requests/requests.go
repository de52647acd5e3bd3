// Package requests owns what tsh and tctl show of access requests: the list (`request
// ls`, a table or JSON), one request in full (`request show`), and the review commands
// both CLIs share (`tsh request review`, `tctl request approve|deny`).
package requests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/types"
)

// API is the part of the Auth API client these commands use.
type API interface {
	ListAccessRequests(ctx context.Context, in *pb.ListAccessRequestsRequest, opts ...grpc.CallOption) (*pb.ListResourcesResponse, error)
	GetAccessRequest(ctx context.Context, in *pb.GetAccessRequestRequest, opts ...grpc.CallOption) (*pb.Resource, error)
	ReviewAccessRequest(ctx context.Context, in *pb.ReviewAccessRequestRequest, opts ...grpc.CallOption) (*pb.Resource, error)
}

// Decode reads a request off the wire.
func Decode(p *pb.Resource) (*types.AccessRequest, error) {
	var ar types.AccessRequest
	if err := json.Unmarshal(p.GetJson(), &ar); err != nil {
		return nil, fmt.Errorf("the cluster returned an unreadable access request: %w", err)
	}
	return &ar, nil
}

// List prints the requests the caller may see, as a table or JSON (format "json").
func List(ctx context.Context, api API, w io.Writer, state, format string, now time.Time) error {
	state = strings.ToUpper(state)
	switch state {
	case "", types.RequestPending, types.RequestApproved, types.RequestDenied:
	default:
		return fmt.Errorf("--state must be pending, approved or denied, not %q", state)
	}
	resp, err := api.ListAccessRequests(ctx, &pb.ListAccessRequestsRequest{State: state})
	if err != nil {
		return err
	}
	list := make([]*types.AccessRequest, 0, len(resp.GetResources()))
	for _, p := range resp.GetResources() {
		ar, err := Decode(p)
		if err != nil {
			return err
		}
		list = append(list, ar)
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if format != "" && format != "text" {
		return fmt.Errorf("--format must be text or json, not %q", format)
	}
	if len(list) == 0 {
		fmt.Fprintln(w, "No access requests.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUser\tRoles\tResources\tCreated (UTC)\tStatus\tReason")
	fmt.Fprintln(tw, "--\t----\t-----\t---------\t-------------\t------\t------")
	for _, ar := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ar.GetName(), ar.Spec.User, strings.Join(ar.Spec.Roles, ","),
			orDash(resources(ar)), ar.Spec.Created.UTC().Format("2006-01-02 15:04:05"), status(ar, now), orDash(oneLine(ar.Spec.Reason)))
	}
	return tw.Flush()
}

// Show prints one request in full.
func Show(ctx context.Context, api API, w io.Writer, id, format string, now time.Time) error {
	p, err := api.GetAccessRequest(ctx, &pb.GetAccessRequestRequest{Id: id})
	if err != nil {
		return err
	}
	ar, err := Decode(p)
	if err != nil {
		return err
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ar)
	}
	Print(w, ar, now)
	return nil
}

// Print writes a request the way `request show` does.
func Print(w io.Writer, ar *types.AccessRequest, now time.Time) {
	row := func(k, v string) { fmt.Fprintf(w, "%-15s %s\n", k+":", v) }
	row("Request ID", ar.GetName())
	row("Username", ar.Spec.User)
	row("Roles", strings.Join(ar.Spec.Roles, ", "))
	if len(ar.Spec.Resources) > 0 {
		row("Resources", resources(ar))
	}
	row("Reason", orDash(oneLine(ar.Spec.Reason)))
	row("Status", status(ar, now))
	row("Reviews needed", fmt.Sprintf("%d approval(s) or %d denial(s)", ar.Spec.Approve, ar.Spec.Deny))
	row("Review until", ar.Spec.Expires.UTC().Format(time.RFC3339))
	row("Access until", ar.Spec.AccessExpires.UTC().Format(time.RFC3339))
	for _, rv := range ar.Spec.Reviews {
		line := fmt.Sprintf("%s %s at %s", rv.Author, strings.ToLower(rv.State), rv.Created.UTC().Format(time.RFC3339))
		if rv.Reason != "" {
			line += ": " + oneLine(rv.Reason)
		}
		row("Review", line)
	}
}

// Review approves or denies a request and prints the outcome.
func Review(ctx context.Context, api API, w io.Writer, id string, approve bool, reason string, now time.Time) error {
	p, err := api.ReviewAccessRequest(ctx, &pb.ReviewAccessRequestRequest{Id: id, Approve: approve, Reason: reason})
	if err != nil {
		return err
	}
	ar, err := Decode(p)
	if err != nil {
		return err
	}
	verb := "Denied"
	if approve {
		verb = "Approved"
	}
	fmt.Fprintf(w, "%s access request %s (%s, roles %s); it is now %s.\n", verb, ar.GetName(), ar.Spec.User,
		strings.Join(ar.Spec.Roles, ", "), status(ar, now))
	if ar.Spec.State == types.RequestApproved {
		fmt.Fprintf(w, "%s uses it with: tsh login --request-id=%s\n", ar.Spec.User, ar.GetName())
	}
	return nil
}

func resources(ar *types.AccessRequest) string {
	parts := make([]string, len(ar.Spec.Resources))
	for i, r := range ar.Spec.Resources {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// status is the state, with an ended request or grant said as such.
func status(ar *types.AccessRequest, now time.Time) string {
	switch {
	case ar.Spec.State == types.RequestPending && !now.Before(ar.Spec.Expires):
		return "EXPIRED"
	case ar.Spec.State == types.RequestApproved && !now.Before(ar.Spec.AccessExpires):
		return "APPROVED (ended)"
	}
	return ar.Spec.State
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a reason on one table row.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
