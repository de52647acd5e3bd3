// Package recordings owns what tsh and tctl show of session recordings: the list
// (`recordings ls`, a table or JSON) and the player (`tsh play`: in real time, faster,
// without idle pauses, as text or as JSON events), reading a recording from the Auth API
// in chunks or from a local file.
package recordings

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/recording"
)

// API is the part of the Auth API client these commands use.
type API interface {
	ListRecordings(ctx context.Context, in *pb.ListRecordingsRequest, opts ...grpc.CallOption) (*pb.ListRecordingsResponse, error)
	GetRecording(ctx context.Context, in *pb.GetRecordingRequest, opts ...grpc.CallOption) (*pb.RecordingChunk, error)
}

// ListOptions are the flags of `recordings ls`.
type ListOptions struct {
	User, Cluster, Namespace, Pod string
	// Since and Until bound the session's start (zero: no bound); From and To are
	// absolute bounds (RFC 3339), and win over Since.
	Since    time.Duration
	From, To string
	Limit    int
	Format   string
	Now      time.Time
}

// List prints the recordings that match o.
func List(ctx context.Context, api API, o ListOptions, out io.Writer) error {
	if o.Format != "text" && o.Format != "json" {
		return &errs.UsageError{Err: fmt.Errorf("--format must be text or json, not %q", o.Format)}
	}
	req := &pb.ListRecordingsRequest{User: o.User, Cluster: o.Cluster, Namespace: o.Namespace, Pod: o.Pod, Limit: int32(o.Limit)}
	if o.Since > 0 {
		req.FromUnix = o.Now.Add(-o.Since).Unix()
	}
	for _, b := range []struct {
		flag, v string
		dst     *int64
	}{{"--from", o.From, &req.FromUnix}, {"--to", o.To, &req.ToUnix}} {
		if b.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, b.v)
		if err != nil {
			return &errs.UsageError{Err: fmt.Errorf("%s: want a time such as 2026-12-06T10:00:00Z: %w", b.flag, err)}
		}
		*b.dst = t.Unix()
	}
	resp, err := api.ListRecordings(ctx, req)
	if err != nil {
		return err
	}
	infos := make([]recording.Info, 0, len(resp.GetRecordings()))
	for _, r := range resp.GetRecordings() {
		var i recording.Info
		if err := json.Unmarshal(r.GetJson(), &i); err != nil {
			return fmt.Errorf("decoding a recording's entry: %w", err)
		}
		infos = append(infos, i)
	}
	if o.Format == "json" {
		data, err := json.MarshalIndent(infos, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", data)
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Session ID\tStarted\tUser\tCluster\tPod\tKind\tCommand\tDuration\tExit\tStatus")
	fmt.Fprintln(tw, "----------\t-------\t----\t-------\t---\t----\t-------\t--------\t----\t------")
	for _, i := range infos {
		exit := "-"
		if i.ExitCode >= 0 {
			exit = strconv.Itoa(i.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\n", i.SessionID, i.Start.UTC().Format(time.RFC3339), i.User,
			i.Cluster, i.Namespace, i.Pod, i.Kind, orDash(strings.Join(i.Command, " ")), i.Duration.Round(time.Millisecond), exit, i.Status)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Reader reads a recording from the Auth API, a chunk per call, as it is played.
func Reader(ctx context.Context, api API, id string) io.Reader {
	return &chunkReader{ctx: ctx, api: api, id: id}
}

type chunkReader struct {
	ctx context.Context
	api API
	id  string
	off int64
	buf []byte
	eof bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.eof {
			return 0, io.EOF
		}
		chunk, err := c.api.GetRecording(c.ctx, &pb.GetRecordingRequest{SessionId: c.id, Offset: c.off})
		if err != nil {
			return 0, err
		}
		c.buf, c.eof = chunk.GetData(), chunk.GetEof()
		c.off += int64(len(c.buf))
		if len(c.buf) == 0 && !c.eof {
			return 0, errors.New("the Auth Service sent an empty piece of the recording")
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// PlayOptions are the flags of `tsh play`.
type PlayOptions struct {
	// Format: "" plays in real time; text prints the output at once; json prints every
	// event (stdin included) as a JSON line.
	Format string
	Speed  float64
	// SkipIdle shortens every pause to at most MaxIdle.
	SkipIdle bool
	// Sleep waits (tests replace it).
	Sleep func(context.Context, time.Duration) error
}

// MaxIdle is the longest pause --skip-idle keeps.
const MaxIdle = 500 * time.Millisecond

// jsonEvent is one line of --format=json.
type jsonEvent struct {
	Time   float64 `json:"time"`
	Stream string  `json:"stream,omitempty"`
	Type   string  `json:"type"`
	Data   string  `json:"data"`
}

var streamNames = map[recording.Stream]string{recording.Stdin: "stdin", recording.Stdout: "stdout", recording.Stderr: "stderr"}

// Play plays a recording to out. Whatever precedes a corrupt part is played before
// the error that names its offset.
func Play(ctx context.Context, r io.Reader, o PlayOptions, out io.Writer) error {
	switch o.Format {
	case "", "text", "json":
	default:
		return &errs.UsageError{Err: fmt.Errorf("--format must be text or json, not %q", o.Format)}
	}
	if o.Speed <= 0 {
		return &errs.UsageError{Err: fmt.Errorf("--speed must be more than 0")}
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	rd, err := recording.NewReader(r)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	if o.Format == "json" && rd.Header.Keyport != nil {
		if err := enc.Encode(struct {
			Type    string          `json:"type"`
			Session *recording.Meta `json:"session"`
		}{"session", rd.Header.Keyport}); err != nil {
			return err
		}
	}
	var last time.Duration
	for {
		e, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if o.Format == "" {
			pause := e.Time - last
			if o.SkipIdle && pause > MaxIdle {
				pause = MaxIdle
			}
			if pause > 0 {
				if err := o.Sleep(ctx, time.Duration(float64(pause)/o.Speed)); err != nil {
					return err
				}
			}
		}
		last = e.Time
		s, isData := e.Stream()
		switch {
		case o.Format == "json":
			je := jsonEvent{Time: e.Time.Seconds(), Data: string(e.Data)}
			switch {
			case isData:
				je.Type, je.Stream = "data", streamNames[s]
			case e.Code == recording.CodeResize:
				je.Type = "resize"
			case e.Code == recording.CodeMarker:
				je.Type = "marker"
			default:
				je.Type = e.Code
			}
			if err := enc.Encode(je); err != nil {
				return err
			}
		case isData && s != recording.Stdin:
			if _, err := out.Write(e.Data); err != nil {
				return err
			}
		case e.Code == recording.CodeMarker:
			label := string(e.Data)
			if code, ok := strings.CutPrefix(label, "exit "); ok {
				label = "the session ended with exit code " + code
			} else if msg, ok := strings.CutPrefix(label, "error: "); ok {
				label = "the session ended with an error: " + msg
			}
			if _, err := fmt.Fprintf(out, "\r\n[keyport: %s]\r\n", label); err != nil {
				return err
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// AddListFlags adds the flags of `recordings ls`.
func AddListFlags(cmd *cobra.Command, o *ListOptions) {
	cmd.Flags().StringVar(&o.User, "user", "", "only sessions of this user")
	cmd.Flags().StringVar(&o.Cluster, "kube-cluster", "", "only sessions on this kube cluster")
	cmd.Flags().StringVar(&o.Namespace, "namespace", "", "only sessions in this namespace")
	cmd.Flags().StringVar(&o.Pod, "pod", "", "only sessions in this pod")
	cmd.Flags().DurationVar(&o.Since, "since", 0, "only sessions that started within this long (e.g. 24h)")
	cmd.Flags().StringVar(&o.From, "from", "", "only sessions that started at or after this time (RFC 3339)")
	cmd.Flags().StringVar(&o.To, "to", "", "only sessions that started before this time (RFC 3339)")
	cmd.Flags().IntVar(&o.Limit, "limit", 100, "at most this many (the newest)")
	cmd.Flags().StringVar(&o.Format, "format", "text", "text or json")
}
