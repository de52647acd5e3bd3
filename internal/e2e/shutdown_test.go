package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/testenv/tools"
)

// TestShutdownAuditsOpenStreams stops Keyport while a watch and an exec session are open:
// both must end, and their closing audit events (kube.request for the watch, session.end
// for the exec) must be in the audit log, written before the log and the backend closed.
func TestShutdownAuditsOpenStreams(t *testing.T) {
	ctx := context.Background()
	s := newKubeSetup(t)
	kc := s.kubeconfigFor(t, "alice", "example-role")
	id := signIdentity(t, s.admin, "alice")

	clt := kubeHTTP(t, id, id.HostCAs[0])
	resp, err := clt.Get("https://" + s.env.WebAddr + "/v1/kube/" + guideCluster + "/api/v1/namespaces/default/pods?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatalf("first watch event: %v", err)
	}
	watchEnded := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, br)
		close(watchEnded)
	}()

	execCmd := exec.Command(tools.Path(t, "kubectl"), "--kubeconfig", kc, "exec", "web-0", "--", "sleep", "300")
	if err := execCmd.Start(); err != nil {
		t.Fatal(err)
	}
	execEnded := make(chan error, 1)
	go func() { execEnded <- execCmd.Wait() }()
	t.Cleanup(func() { _ = execCmd.Process.Kill() })
	waitUntil(t, 20*time.Second, func() bool {
		r, err := s.admin.SearchAudit(ctx, &pb.SearchAuditRequest{User: "alice", Type: audit.SessionStart})
		return err == nil && len(r.GetEvents()) == 1
	})

	stopped := time.Now()
	s.env.Stop()
	t.Logf("Keyport stopped in %v with a watch and an exec session open", time.Since(stopped).Round(time.Millisecond))
	for name, ch := range map[string]<-chan struct{}{"watch": watchEnded, "exec": waitErr(execEnded)} {
		select {
		case <-ch:
		case <-time.After(20 * time.Second):
			t.Fatalf("the %s is still open 20s after Keyport stopped", name)
		}
	}

	data, err := os.ReadFile(filepath.Join(s.env.Config.Keyport.DataDir, "log", "events.log"))
	if err != nil {
		t.Fatal(err)
	}
	var watchEv, execEnd int
	for line := range bytes.Lines(data) {
		var e audit.Event
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("events.log: %v: %s", err, line)
		}
		if e.User != "alice" {
			continue
		}
		switch {
		case e.Type == audit.KubeRequest && e.Fields["verb"] == "watch":
			watchEv++
		case e.Type == audit.SessionEnd && e.Fields["subresource"] == "exec":
			execEnd++
		}
	}
	if watchEv != 1 || execEnd != 1 {
		t.Fatalf("events.log after shutdown: %d kube.request for the watch and %d session.end for the exec, want 1 and 1", watchEv, execEnd)
	}
}

func waitErr(ch <-chan error) <-chan struct{} {
	done := make(chan struct{})
	go func() { <-ch; close(done) }()
	return done
}
