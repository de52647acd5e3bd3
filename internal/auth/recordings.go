package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/recording"
)

// recordingPrefix indexes the session recordings: what each session was and where its
// recording is, so that every process on the backend can list and play them.
const recordingPrefix = "/recordings/"

// PutRecording indexes a stored recording (the proxy's recorder calls it).
func (s *Server) PutRecording(ctx context.Context, info recording.Info) error {
	if !recording.ValidID(info.SessionID) {
		return errs.BadParameterf("%q is not a session ID", info.SessionID)
	}
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	_, err = s.cfg.Backend.Put(ctx, backend.Item{Key: []byte(recordingPrefix + info.SessionID), Value: data})
	return err
}

// RecordingFilter selects recordings; zero fields select everything.
type RecordingFilter struct {
	User, Cluster, Namespace, Pod string
	// From and To bound the session's start.
	From, To time.Time
	Limit    int
}

func (f RecordingFilter) match(i *recording.Info) bool {
	switch {
	case f.User != "" && i.User != f.User,
		f.Cluster != "" && i.Cluster != f.Cluster,
		f.Namespace != "" && i.Namespace != f.Namespace,
		f.Pod != "" && i.Pod != f.Pod,
		!f.From.IsZero() && i.Start.Before(f.From),
		!f.To.IsZero() && !i.Start.Before(f.To):
		return false
	}
	return true
}

// ListRecordings lists the indexed recordings that match f, newest first.
func (s *Server) ListRecordings(ctx context.Context, f RecordingFilter) ([]recording.Info, error) {
	items, err := s.cfg.Backend.GetRange(ctx, []byte(recordingPrefix), 0)
	if err != nil {
		return nil, err
	}
	var out []recording.Info
	for _, it := range items {
		var i recording.Info
		if err := json.Unmarshal(it.Value, &i); err != nil {
			return nil, fmt.Errorf("decoding recording index %s: %w", it.Key, err)
		}
		if f.match(&i) {
			out = append(out, i)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Start.After(out[b].Start) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// OpenRecording returns a session's index entry and its recording.
func (s *Server) OpenRecording(ctx context.Context, id string) (recording.Info, io.ReadCloser, error) {
	var info recording.Info
	if !recording.ValidID(id) {
		return info, nil, errs.BadParameterf("%q is not a session ID", id)
	}
	it, err := s.cfg.Backend.Get(ctx, []byte(recordingPrefix+id))
	if err != nil {
		if errs.IsNotFound(err) {
			return info, nil, errs.NotFoundf("no recording of session %s", id)
		}
		return info, nil, err
	}
	if err := json.Unmarshal(it.Value, &info); err != nil {
		return info, nil, fmt.Errorf("decoding recording index %s: %w", id, err)
	}
	if s.cfg.Recordings == nil {
		return info, nil, errs.NotFoundf("this Auth Service keeps no recordings")
	}
	rc, err := s.cfg.Recordings.Open(ctx, id)
	if err != nil {
		if errors.Is(err, recording.ErrNotFound) {
			return info, nil, errs.NotFoundf("the recording of session %s is not in this Auth Service's store (%s)", id, info.URL)
		}
		return info, nil, fmt.Errorf("opening the recording of session %s: %w", id, err)
	}
	return info, rc, nil
}
