package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// filterResponse drops list items, table rows and watch events outside the decision's
// allowed set, so that a namespace- or name-restricted role cannot read around its
// restriction with a cluster-wide list or watch; and it keeps the list's metadata from
// telling what was dropped: remainingItemCount goes, the continue token is sealed
// (continue.go).
func filterResponse(resp *http.Response, sealer *continueSealer) error {
	ctx := resp.Request.Context()
	d := decisionFrom(ctx)
	if d == nil || d.Allow == nil {
		return nil
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		// Keyport asked for JSON; anything else cannot be filtered, so nothing passes.
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(""))
		resp.StatusCode = http.StatusForbidden
		return nil
	}
	info := infoFrom(ctx)
	if resp.StatusCode == http.StatusOK && (info.Verb == "watch" || resp.Request.URL.Query().Get("watch") == "true" || resp.Request.URL.Query().Get("watch") == "1") {
		resp.Body = newWatchFilter(resp.Body, d.Allow)
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	seal := func(token string) (string, error) {
		return sealer.seal(token, continueAD(stateFrom(ctx), resp.Request.URL.Path))
	}
	var out []byte
	if resp.StatusCode == http.StatusOK {
		out, err = filterList(body, d.Allow, seal)
	} else {
		// An error Status (410 for an expired token) may carry a fresh continue token.
		out, err = filterListMeta(body, seal)
	}
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

// acceptJSON is the Accept header for a response Keyport filters: JSON, which it can
// read names from, in the forms the client asked for (a Table, PartialObjectMetadata),
// with protobuf asked for as JSON.
func acceptJSON(accept string) string {
	var out []string
	for _, part := range strings.Split(accept, ",") {
		mt, params, hasParams := strings.Cut(strings.TrimSpace(part), ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/json", "application/vnd.kubernetes.protobuf":
		default:
			continue
		}
		mt = "application/json"
		if hasParams {
			mt += ";" + strings.TrimSpace(params)
		}
		if !slices.Contains(out, mt) {
			out = append(out, mt)
		}
	}
	if len(out) == 0 {
		return "application/json"
	}
	return strings.Join(out, ",")
}

type objectMeta struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// tableRow is what filtering reads of a Table's row: its object's metadata (the API
// server includes it unless the client asked for includeObject=None; a row without it
// names nothing and is dropped).
type tableRow struct {
	Object objectMeta `json:"object"`
}

// filterList keeps the items of a List, or the rows of a Table, whose namespace and name
// are allowed, and cleans the list's metadata.
func filterList(body []byte, allow func(ns, name string) bool, seal func(string) (string, error)) ([]byte, error) {
	var list map[string]json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	key := "items"
	if isKind(list, "Table") {
		key = "rows"
	}
	raw, ok := list[key]
	if !ok {
		// A single object (get by name was already authorised by name).
		return body, nil
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, err
	}
	kept, err := keepAllowed(entries, key == "rows", allow)
	if err != nil {
		return nil, err
	}
	list[key] = kept
	if err := cleanListMeta(list, seal); err != nil {
		return nil, err
	}
	return json.Marshal(list)
}

func isKind(obj map[string]json.RawMessage, kind string) bool {
	var k string
	return json.Unmarshal(obj["kind"], &k) == nil && k == kind
}

// keepAllowed returns the JSON list of the allowed entries (list items, or table rows).
func keepAllowed(entries []json.RawMessage, rows bool, allow func(ns, name string) bool) (json.RawMessage, error) {
	kept := entries[:0]
	for _, e := range entries {
		var m objectMeta
		if rows {
			var r tableRow
			if err := json.Unmarshal(e, &r); err != nil {
				continue
			}
			m = r.Object
		} else if err := json.Unmarshal(e, &m); err != nil {
			continue
		}
		if allow(m.Metadata.Namespace, m.Metadata.Name) {
			kept = append(kept, e)
		}
	}
	return json.Marshal(kept)
}

// cleanListMeta removes remainingItemCount (it counts what the caller may not see) and
// seals the continue token of a filtered list's metadata.
func cleanListMeta(obj map[string]json.RawMessage, seal func(string) (string, error)) error {
	raw, ok := obj["metadata"]
	if !ok {
		return nil
	}
	var meta map[string]json.RawMessage
	if err := json.Unmarshal(raw, &meta); err != nil {
		return err
	}
	delete(meta, "remainingItemCount")
	if c, ok := meta["continue"]; ok {
		var token string
		if err := json.Unmarshal(c, &token); err != nil {
			return err
		}
		if token != "" {
			sealed, err := seal(token)
			if err != nil {
				return err
			}
			if meta["continue"], err = json.Marshal(sealed); err != nil {
				return err
			}
		}
	}
	b, err := json.Marshal(meta)
	obj["metadata"] = b
	return err
}

// filterListMeta cleans the metadata of a response that is not a list (an error Status).
func filterListMeta(body []byte, seal func(string) (string, error)) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return body, nil
	}
	if err := cleanListMeta(obj, seal); err != nil {
		return nil, err
	}
	return json.Marshal(obj)
}

// watchFilter passes watch events (one JSON object per line) whose object is allowed;
// an event whose object is a Table (kubectl get -w) keeps its allowed rows, and is
// dropped when none is left.
type watchFilter struct {
	src   io.ReadCloser
	sc    *bufio.Reader
	allow func(ns, name string) bool
	buf   bytes.Buffer
}

func newWatchFilter(src io.ReadCloser, allow func(ns, name string) bool) io.ReadCloser {
	return &watchFilter{src: src, sc: bufio.NewReaderSize(src, 64<<10), allow: allow}
}

func (f *watchFilter) Read(p []byte) (int, error) {
	for f.buf.Len() == 0 {
		line, err := f.sc.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if out := f.filterEvent(line); out != nil {
				f.buf.Write(out)
			}
		}
		if err != nil {
			if f.buf.Len() > 0 {
				break
			}
			return 0, err
		}
	}
	return f.buf.Read(p)
}

// filterEvent returns the event to pass on, or nil.
func (f *watchFilter) filterEvent(line []byte) []byte {
	var ev struct {
		Type   string          `json:"type"`
		Object json.RawMessage `json:"object"`
	}
	if json.Unmarshal(line, &ev) != nil {
		return nil
	}
	if ev.Type == "ERROR" || ev.Type == "BOOKMARK" {
		return line
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(ev.Object, &obj) != nil {
		return nil
	}
	if !isKind(obj, "Table") {
		var m objectMeta
		if json.Unmarshal(ev.Object, &m) != nil || !f.allow(m.Metadata.Namespace, m.Metadata.Name) {
			return nil
		}
		return line
	}
	var rows []json.RawMessage
	if json.Unmarshal(obj["rows"], &rows) != nil {
		return nil
	}
	kept, err := keepAllowed(rows, true, f.allow)
	if err != nil || bytes.Equal(kept, []byte("[]")) {
		return nil
	}
	obj["rows"] = kept
	object, err := json.Marshal(obj)
	if err != nil {
		return nil
	}
	out, err := json.Marshal(struct {
		Type   string          `json:"type"`
		Object json.RawMessage `json:"object"`
	}{ev.Type, object})
	if err != nil {
		return nil
	}
	return append(out, '\n')
}

func (f *watchFilter) Close() error { return f.src.Close() }
