package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/cli/recordings"
	"github.com/keyport/keyport/internal/recording"
)

// TestSessionRecordingSurvivesKill: the built keyport is killed with SIGKILL in the
// middle of an exec session. The recording on its disk is readable up to what the
// session printed last (tsh play of the file), and the restarted keyport stores it,
// marked incomplete, with its session.upload event.
func TestSessionRecordingSurvivesKill(t *testing.T) {
	ctx := context.Background()
	k := startGuideControlPlane(t)
	p := startKeyportProcWith(t, "kill-9", "    type: sqlite\n", fmt.Sprintf(`kubernetes_service:
  enabled: true
  kubeconfig_file: %s
  labels: {env: dev}
`, k.KubeconfigPath))
	admin := p.admin(t)
	createResource(t, admin, guideExampleRole())
	if _, err := admin.CreateUser(ctx, &pb.CreateUserRequest{Name: "alice", Roles: []string{"example-role"}}); err != nil {
		t.Fatal(err)
	}
	kc := kubeconfigVia(t, p.web, signIdentity(t, admin, "alice"))
	waitKubectl(t, kc, "get", "pods")

	sess := startPTY(t, kc, nil, "exec", "-it", "web-0", "--", "sh")
	sess.waitForAny("# ", "$ ")
	sess.typeLine("echo before-kill-$((1+1))")
	sess.waitFor("before-kill-2")
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait() // and its output copiers, before the restart writes to p.logs

	if code := sess.exitCode(); code == 0 {
		t.Errorf("kubectl exited 0 after the proxy was killed:\n%s", sess.output())
	}

	// The recording on disk holds everything the session printed.
	pending := filepath.Join(p.dataDir, "records", "pending")
	entries, err := os.ReadDir(pending)
	if err != nil || len(entries) != 1 {
		t.Fatalf("pending recordings: %v %v", entries, err)
	}
	file := filepath.Join(pending, entries[0].Name())
	id := strings.TrimSuffix(entries[0].Name(), ".cast")
	out, err := exec.Command(filepath.Join(binDir, "tsh"), "play", "--format=text", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "before-kill-2") {
		t.Errorf("tsh play %s: %v\n%s", file, err, out)
	}

	// A damaged copy plays up to the damage, then tsh names the byte offset and line.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	cut := len(data) - len(lines[len(lines)-2])/2 - len(lines[len(lines)-1]) // half of the last event
	damaged := filepath.Join(t.TempDir(), "damaged.cast")
	if err := os.WriteFile(damaged, data[:cut], 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = exec.Command(filepath.Join(binDir, "tsh"), "play", "--format=text", damaged).CombinedOutput()
	wantAt := fmt.Sprintf("recording is corrupt at byte %d (line %d): truncated", len(data)-len(lines[len(lines)-2])-len(lines[len(lines)-1]), len(lines)-1)
	if err == nil || !strings.Contains(string(out), wantAt) {
		t.Errorf("tsh play of a truncated recording: %v\n%s\nwant %q", err, out, wantAt)
	}

	// The restarted process stores it.
	p.start(t)
	admin = p.admin(t)
	infos := waitRecordings(t, admin, &pb.ListRecordingsRequest{User: "alice"}, 1)
	if infos[0].SessionID != id || infos[0].Status != recording.StatusIncomplete || infos[0].ExitCode != -1 {
		t.Errorf("index entry = %+v", infos[0])
	}
	var rec bytes.Buffer
	if _, err := io.Copy(&rec, recordings.Reader(ctx, admin, id)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.String(), "before-kill-2") {
		t.Errorf("stored recording:\n%s", rec.String())
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("the pending file is still there after the upload: %v", err)
	}
	resp, err := admin.SearchAudit(ctx, &pb.SearchAuditRequest{Type: audit.SessionUpload})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range resp.GetEvents() {
		var ev audit.Event
		_ = json.Unmarshal(e.GetJson(), &ev)
		found = found || (ev.Success && ev.Fields["session_id"] == id && ev.Fields["status"] == recording.StatusIncomplete)
	}
	if !found {
		t.Errorf("no session.upload event for %s", id)
	}
}
