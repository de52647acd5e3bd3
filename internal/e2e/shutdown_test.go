package e2e

import (
	"bytes"
	"context"
	"encoding/json"
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

	watchEnded := openPodWatch(t, s, kubeHTTP(t, id, id.HostCAs[0]))

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
	select {
	case <-watchEnded:
	case <-time.After(20 * time.Second):
		t.Fatal("the watch is still open 20s after Keyport stopped")
	}
	select {
	case <-execEnded:
	case <-time.After(20 * time.Second):
		t.Fatal("the exec is still open 20s after Keyport stopped")
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
