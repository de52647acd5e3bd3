package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// filterResponse drops list items and watch events outside the decision's allowed set,
// so that a namespace- or name-restricted role cannot read around its restriction with a
// cluster-wide list or watch.
func filterResponse(resp *http.Response) error {
	d := decisionFrom(resp.Request.Context())
	if d == nil || d.Allow == nil || resp.StatusCode != http.StatusOK {
		return nil
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		// Keyport asked for JSON; anything else cannot be filtered, so nothing passes.
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(""))
		resp.StatusCode = http.StatusForbidden
		return nil
	}
	info := infoFrom(resp.Request.Context())
	if info.Verb == "watch" || resp.Request.URL.Query().Get("watch") == "true" || resp.Request.URL.Query().Get("watch") == "1" {
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
	out, err := filterList(body, d.Allow)
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	return nil
}

type objectMeta struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// filterList keeps the items of a List whose namespace and name are allowed.
func filterList(body []byte, allow func(ns, name string) bool) ([]byte, error) {
	var list map[string]json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, err
	}
	raw, ok := list["items"]
	if !ok {
		// A single object (get by name was already authorised by name).
		return body, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, err
	}
	kept := items[:0]
	for _, it := range items {
		var m objectMeta
		if err := json.Unmarshal(it, &m); err != nil {
			continue
		}
		if allow(m.Metadata.Namespace, m.Metadata.Name) {
			kept = append(kept, it)
		}
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return nil, err
	}
	list["items"] = b
	return json.Marshal(list)
}

// watchFilter passes watch events (one JSON object per line) whose object is allowed.
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
			var ev struct {
				Type   string     `json:"type"`
				Object objectMeta `json:"object"`
			}
			if jerr := json.Unmarshal(line, &ev); jerr == nil &&
				(ev.Type == "ERROR" || ev.Type == "BOOKMARK" || f.allow(ev.Object.Metadata.Namespace, ev.Object.Metadata.Name)) {
				f.buf.Write(line)
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

func (f *watchFilter) Close() error { return f.src.Close() }
