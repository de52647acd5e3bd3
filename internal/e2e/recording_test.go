package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/cli/recordings"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/recording"
	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/proc"
	"github.com/keyport/keyport/internal/testenv/tools"
	"github.com/keyport/keyport/internal/types"
)

// ptySession is kubectl run in a pseudo-terminal, as a person runs `kubectl exec -it`.
type ptySession struct {
	t    *testing.T
	cmd  *exec.Cmd
	tty  *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	done chan error
}

func startPTY(t *testing.T, kc string, env []string, args ...string) *ptySession {
	t.Helper()
	cmd := exec.Command(tools.Path(t, "kubectl"), append([]string{"--kubeconfig", kc}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 101, Rows: 33})
	if err != nil {
		t.Fatal(err)
	}
	s := &ptySession{t: t, cmd: cmd, tty: tty, done: make(chan error, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = tty.Close() })
	return s
}

func (s *ptySession) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// waitFor waits until the terminal shows want.
func (s *ptySession) waitFor(want string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.output(), want) {
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal never showed %q:\n%s", want, s.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitForAny waits until the terminal shows one of wants (a shell's prompt).
func (s *ptySession) waitForAny(wants ...string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := s.output()
		for _, w := range wants {
			if strings.Contains(out, w) {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the terminal never showed any of %q:\n%s", wants, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *ptySession) typeLine(line string) {
	s.t.Helper()
	if _, err := s.tty.Write([]byte(line + "\r")); err != nil {
		s.t.Fatal(err)
	}
}

// exitCode waits for kubectl to exit.
func (s *ptySession) exitCode() int {
	s.t.Helper()
	select {
	case err := <-s.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			s.t.Fatal(err)
		}
		return 0
	case <-time.After(30 * time.Second):
		s.t.Fatalf("kubectl did not exit:\n%s", s.output())
		return -1
	}
}

// waitRecordings waits until the index holds n recordings that match req.
func waitRecordings(t *testing.T, admin *client.Client, req *pb.ListRecordingsRequest, n int) []recording.Info {
	t.Helper()
	var infos []recording.Info
	waitUntil(t, 20*time.Second, func() bool {
		resp, err := admin.ListRecordings(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		infos = infos[:0]
		for _, r := range resp.GetRecordings() {
			var i recording.Info
			if err := json.Unmarshal(r.GetJson(), &i); err != nil {
				t.Fatal(err)
			}
			infos = append(infos, i)
		}
		return len(infos) >= n
	})
	return infos
}

// playJSON is `tsh play --format=json` of a session, as events.
type playedEvent struct {
	Type, Stream, Data string
	Time               float64
}

func playJSON(t *testing.T, u *tshUser, id string) []playedEvent {
	t.Helper()
	out := u.must("", "tsh", "play", "--format=json", id)
	var evs []playedEvent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e playedEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("tsh play --format=json line %q: %v", line, err)
		}
		evs = append(evs, e)
	}
	return evs
}

// indexOf returns the first event of typ/stream whose data contains s, or -1.
func indexOf(evs []playedEvent, typ, stream, s string) int {
	var acc strings.Builder
	for i, e := range evs {
		if e.Type == typ && e.Stream == stream {
			acc.WriteString(e.Data)
			if strings.Contains(acc.String(), s) {
				return i
			}
		}
	}
	return -1
}

// auditorTsh is a person with the auditor role (session:list and session:read) logged in
// with the built tsh.
func auditorTsh(t *testing.T, s *kubeSetup, name string, roles ...string) *tshUser {
	t.Helper()
	ctx := context.Background()
	if len(roles) == 0 {
		roles = []string{types.RoleAuditor}
	}
	resp, err := s.admin.CreateUser(ctx, &pb.CreateUserRequest{Name: name, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	const password = "an auditor's password"
	enrolled, err := completeInvite(ctx, resp.GetInviteUrl(), password)
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := nextTOTP(enrolled.OTPSecret, enrolled.Step)
	if err != nil {
		t.Fatal(err)
	}
	u := newTshUser(t, filepath.Join(t.TempDir(), "kubeconfig"))
	u.must("y\n"+password+"\n"+code+"\n", "tsh", "login", "--proxy="+s.env.WebAddr, "--user="+name)
	return u
}

// TestSessionRecording: exec sessions with a terminal (typed input, output, resizes)
// and without one (stdout, stderr, the exit code), and attach sessions, over WebSocket
// and SPDY, are recorded by the proxy; tsh play shows them in order, tsh and tctl list
// them, the audit log names them; a strict role refuses a session it cannot record
// before anything reaches the API server.
func TestSessionRecording(t *testing.T) {
	s := newKubeSetup(t)
	kc := s.kubeconfigFor(t, "alice", "example-role")
	u := auditorTsh(t, s, "audra")
	kubeCluster := guideCluster
	for i, ws := range []string{"true", "false"} {
		env := []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + ws}
		t.Run("exec -it websockets="+ws, func(t *testing.T) {
			sess := startPTY(t, kc, env, "exec", "-it", "web-0", "--", "sh")
			sess.waitForAny("# ", "$ ")
			sess.typeLine("echo typed-$((6*7))-" + ws)
			sess.waitFor("typed-42-" + ws)
			sess.typeLine("exit 0")
			if code := sess.exitCode(); code != 0 {
				t.Errorf("kubectl exit code = %d, want 0:\n%s", code, sess.output())
			}
			infos := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{User: "alice", Pod: "web-0"}, 2*i+1)
			info := infos[0] // newest first
			if info.Kind != "exec" || !info.TTY || info.ExitCode != 0 || info.Status != recording.StatusComplete || info.Cluster != kubeCluster ||
				info.BytesIn == 0 || info.BytesOut == 0 {
				t.Errorf("index entry = %+v", info)
			}
			evs := playJSON(t, u, info.SessionID)
			typed := indexOf(evs, "data", "stdin", "echo typed-$((6*7))-"+ws)
			printed := indexOf(evs, "data", "stdout", "typed-42-"+ws)
			if typed < 0 || printed < 0 || typed > printed {
				t.Errorf("recording: typed at %d, printed at %d; events %+v", typed, printed, evs)
			}
			if indexOf(evs, "resize", "", "101x33") < 0 {
				t.Errorf("the terminal size is not recorded: %+v", evs)
			}
			if indexOf(evs, "marker", "", "exit 0") < 0 {
				t.Errorf("no exit marker: %+v", evs)
			}
			if out := u.must("", "tsh", "play", "--format=text", info.SessionID); !strings.Contains(out, "typed-42-"+ws) {
				t.Errorf("tsh play --format=text:\n%s", out)
			}
		})
		t.Run("exec without a terminal websockets="+ws, func(t *testing.T) {
			cmd := exec.Command(tools.Path(t, "kubectl"), "--kubeconfig", kc, "exec", "web-0", "--", "sh", "-c", "echo out-"+ws+"; echo err-"+ws+" >&2; exit 4")
			cmd.Env = append(os.Environ(), env...)
			// kwok reports a command's non-zero exit as an internal error, not as
			// NonZeroExitCode with the code (a kubelet does): kubectl exits with 1, and the
			// recording keeps the API server's message.
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "exit status 4") {
				t.Fatalf("kubectl exec: %v\n%s", err, out)
			}
			infos := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{User: "alice", Pod: "web-0"}, 2*i+2)
			info := infos[0]
			if info.TTY || info.ExitCode != -1 || !strings.Contains(info.Failure, "exit status 4") || strings.Join(info.Command, " ") != "sh -c echo out-"+ws+"; echo err-"+ws+" >&2; exit 4" {
				t.Errorf("index entry = %+v", info)
			}
			evs := playJSON(t, u, info.SessionID)
			if indexOf(evs, "data", "stdout", "out-"+ws) < 0 || indexOf(evs, "data", "stderr", "err-"+ws) < 0 {
				t.Errorf("recording: %+v", evs)
			}
		})
	}
	t.Run("attach", func(t *testing.T) {
		for n, ws := range []string{"true", "false"} {
			if err := kubeenv.CheckAttach(context.Background(), tools.Path(t, "kubectl"), kc, "web-0", s.kube.AppendPodLog, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+ws); err != nil {
				t.Fatalf("attach (websockets=%s): %v", ws, err)
			}
			infos := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{User: "alice", Pod: "web-0"}, 5+n)
			if infos[0].Kind != "attach" {
				t.Fatalf("newest recording = %+v", infos[0])
			}
			if evs := playJSON(t, u, infos[0].SessionID); indexOf(evs, "data", "stdout", "attached line") < 0 {
				t.Errorf("attach recording: %+v", evs)
			}
		}
	})
	t.Run("kubectl debug -it attaches to an ephemeral container", func(t *testing.T) {
		ctx := context.Background()
		// The built-in edit ClusterRole leaves out ephemeral containers; debugging is
		// granted on its own, as clusters do.
		if _, err := s.kube.Clientset.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "debug-pods"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/ephemeralcontainers"}, Verbs: []string{"get", "patch", "update"}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.kube.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "debug-pods-editor"},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "debug-pods"},
			Subjects:   []rbacv1.Subject{{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "editor"}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := s.kube.CreatePod(ctx, "default", "web-debug"); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, func() bool {
			out, _ := kubectl(t, kc, "get", "pod", "web-debug", "-o", "jsonpath={.status.phase}")
			return out == "Running"
		})
		sess := startPTY(t, kc, nil, "debug", "-it", "web-debug", "--image=busybox", "--target=app", "--", "sh")
		sess.waitFor("If you don't see a command prompt")
		sess.typeLine("typed-into-debug")
		waitUntil(t, 30*time.Second, func() bool {
			_ = s.kube.AppendPodLog("debug line")
			return strings.Contains(sess.output(), "debug line")
		})
		_ = sess.cmd.Process.Kill()
		infos := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{Pod: "web-debug"}, 1)
		info := infos[0]
		if info.Kind != "attach" || !strings.HasPrefix(info.Container, "debugger-") || !info.TTY {
			t.Errorf("index entry = %+v", info)
		}
		evs := playJSON(t, u, info.SessionID)
		if indexOf(evs, "data", "stdin", "typed-into-debug") < 0 || indexOf(evs, "data", "stdout", "debug line") < 0 {
			t.Errorf("debug recording: %+v", evs)
		}

		// kubectl attach -it to the same ephemeral container (it has stdin and a TTY).
		for n, ws := range []string{"true", "false"} {
			att := startPTY(t, kc, []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + ws}, "attach", "-it", "web-debug", "-c", info.Container)
			att.waitFor("If you don't see a command prompt")
			att.typeLine("typed-into-attach-" + ws)
			waitUntil(t, 30*time.Second, func() bool {
				_ = s.kube.AppendPodLog("attach line " + ws)
				return strings.Contains(att.output(), "attach line "+ws)
			})
			_ = att.cmd.Process.Kill()
			infos := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{Pod: "web-debug"}, 2+n)
			if infos[0].Kind != "attach" || !infos[0].TTY || !infos[0].Stdin {
				t.Errorf("attach -it index entry = %+v", infos[0])
			}
			evs := playJSON(t, u, infos[0].SessionID)
			if indexOf(evs, "data", "stdin", "typed-into-attach-"+ws) < 0 || indexOf(evs, "data", "stdout", "attach line "+ws) < 0 {
				t.Errorf("attach -it recording (websockets=%s): %+v", ws, evs)
			}
		}
	})
	t.Run("tsh and tctl list them; the audit log names them", func(t *testing.T) {
		infos := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{}, 9)
		out := u.must("", "tsh", "recordings", "ls", "--kube-cluster="+guideCluster)
		tctlOut, err := exec.Command(filepath.Join(binDir, "tctl"), "-c", s.env.ConfigPath(), "recordings", "ls", "--user=alice", "--format=json").CombinedOutput()
		if err != nil {
			t.Fatalf("tctl recordings ls: %v\n%s", err, tctlOut)
		}
		for _, i := range infos {
			if !strings.Contains(out, i.SessionID) || !strings.Contains(string(tctlOut), i.SessionID) {
				t.Errorf("session %s missing from tsh recordings ls:\n%s\nor tctl recordings ls:\n%s", i.SessionID, out, tctlOut)
			}
		}
		resp, err := s.admin.SearchAudit(context.Background(), &pb.SearchAuditRequest{User: "alice", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for _, e := range resp.GetEvents() {
			var ev audit.Event
			if err := json.Unmarshal(e.GetJson(), &ev); err != nil {
				t.Fatal(err)
			}
			if id, _ := ev.Fields["session_id"].(string); id != "" {
				counts[ev.Type]++
			}
		}
		if counts[audit.SessionStart] != 9 || counts[audit.SessionEnd] != 9 || counts[audit.SessionUpload] != 9 {
			t.Errorf("audit events naming a session: %v, want 9 of each", counts)
		}
		// A user without session:read is refused.
		if out, errOut, err := newTshUser(t, kc).run("", "tsh", "play", infos[0].SessionID); err == nil {
			t.Errorf("tsh play without a login worked: %s %s", out, errOut)
		}
	})
	t.Run("tsh kube join watches a live session", func(t *testing.T) {
		createResource(t, s.admin, types.NewRole("watcher", types.V7, types.RoleSpec{Allow: types.RoleConditions{
			JoinSessions: []types.SessionJoinPolicy{{Name: "watch-editors", Roles: []string{"example-*"},
				Kinds: []string{types.SessionKindKube}, Modes: []string{types.SessionModeWatch}}}}}))
		w := auditorTsh(t, s, "wanda", "watcher")
		sess := startPTY(t, kc, nil, "exec", "-it", "web-0", "--", "sh")
		sess.waitForAny("# ", "$ ")
		var live []recording.Meta
		if err := json.Unmarshal([]byte(w.must("", "tsh", "kube", "sessions", "ls", "--format=json")), &live); err != nil || len(live) != 1 {
			t.Fatalf("tsh kube sessions ls: %v %+v", err, live)
		}
		if out := u.must("", "tsh", "kube", "sessions", "ls"); strings.Contains(out, live[0].SessionID) {
			t.Errorf("a user without join_sessions sees the session:\n%s", out)
		}
		if _, errOut, err := u.run("", "tsh", "kube", "join", live[0].SessionID); err == nil || !strings.Contains(errOut, "allow.join_sessions") {
			t.Errorf("join without join_sessions: %v %s", err, errOut)
		}
		join := exec.Command(filepath.Join(binDir, "tsh"), "kube", "join", live[0].SessionID)
		join.Env, join.Dir = w.env, w.home
		var joinOut, joinErr proc.Buffer
		join.Stdout, join.Stderr = &joinOut, &joinErr
		if err := join.Start(); err != nil {
			t.Fatal(err)
		}
		joined := make(chan error, 1)
		go func() { joined <- join.Wait() }()
		sess.typeLine("echo live-$((2*21))")
		waitUntil(t, 20*time.Second, func() bool { return strings.Contains(joinOut.String(), "live-42") })
		sess.typeLine("exit")
		if code := sess.exitCode(); code != 0 {
			t.Errorf("kubectl exit code %d", code)
		}
		select {
		case err := <-joined:
			if err != nil {
				t.Errorf("tsh kube join: %v\n%s\n%s", err, joinOut.String(), joinErr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatal("tsh kube join did not end with the session")
		}
		resp, err := s.admin.SearchAudit(context.Background(), &pb.SearchAuditRequest{Type: audit.SessionJoin, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var ok, refused int
		for _, e := range resp.GetEvents() {
			var ev audit.Event
			_ = json.Unmarshal(e.GetJson(), &ev)
			switch {
			case ev.User == "wanda" && ev.Success && ev.Fields["session_id"] == live[0].SessionID:
				ok++
			case ev.User == "audra" && !ev.Success:
				refused++
			}
		}
		if ok != 1 || refused != 1 {
			t.Errorf("session.join events: %d by wanda, %d refusals of audra; want 1 and 1", ok, refused)
		}
	})
	t.Run("strict refuses what it cannot record; best_effort goes on", func(t *testing.T) {
		createResource(t, s.admin, types.NewRole("strict-rec", types.V7, types.RoleSpec{
			Options: types.RoleOptions{RecordSession: types.RecordSession{Kubernetes: types.RecordStrict}}}))
		strict := s.kubeconfigFor(t, "stella", "example-role", "strict-rec")
		pending := filepath.Join(s.env.Config.Keyport.DataDir, "records", "pending")
		if err := os.Rename(pending, pending+".moved"); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pending, nil, 0o600); err != nil { // a file where the directory was
			t.Fatal(err)
		}
		defer func() {
			_ = os.Remove(pending)
			_ = os.Rename(pending+".moved", pending)
		}()
		out, err := kubectl(t, strict, "exec", "web-0", "--", "echo", "must-not-run")
		if err == nil || !strings.Contains(out, "session recording is unavailable, and a role requires it (record_session.kubernetes: strict)") {
			t.Errorf("strict exec: %v\n%s", err, out)
		}
		if out, err := kubectl(t, kc, "exec", "web-0", "--", "echo", "best-effort-runs"); err != nil || !strings.Contains(out, "best-effort-runs") {
			t.Errorf("best_effort exec: %v\n%s", err, out)
		}
		evs, err := s.kube.AuditEvents()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "stella" && strings.Contains(e.RequestURI, "must-not-run") {
				t.Errorf("a refused strict session reached the API server: %s", e.RequestURI)
			}
		}
	})
}

// TestSessionRecordingThroughTunnel: sessions on a cluster behind a reverse tunnel are
// recorded by the proxy the same way, over WebSocket and SPDY.
func TestSessionRecordingThroughTunnel(t *testing.T) {
	s := newAgentSetup(t)
	startAgent(t, s.agentConfig(t, filepath.Join(t.TempDir(), "agent"), "agent-1", s.kubeToken(t), s.pin, s.kube.KubeconfigPath, ""))
	kc := s.userKubeconfig(t, "alice", guideCluster)
	waitKubectl(t, kc, "get", "pods")
	for i, ws := range []string{"true", "false"} {
		sess := startPTY(t, kc, []string{"KUBECTL_REMOTE_COMMAND_WEBSOCKETS=" + ws}, "exec", "-it", "web-0", "--", "sh")
		sess.waitForAny("# ", "$ ")
		sess.typeLine("echo tunnelled-$((40+2))")
		sess.waitFor("tunnelled-42")
		sess.typeLine("exit")
		if code := sess.exitCode(); code != 0 {
			t.Fatalf("kubectl exit code %d:\n%s", code, sess.output())
		}
		infos := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{User: "alice"}, i+1)
		info := infos[0]
		if info.Cluster != guideCluster || info.ExitCode != 0 || info.Status != recording.StatusComplete {
			t.Errorf("websockets=%s: index entry = %+v", ws, info)
		}
		var rec bytes.Buffer
		if _, err := io.Copy(&rec, recordings.Reader(context.Background(), s.admin, info.SessionID)); err != nil {
			t.Fatal(err)
		}
		var played bytes.Buffer
		if err := recordings.Play(context.Background(), &rec, recordings.PlayOptions{Format: "json", Speed: 1}, &played); err != nil {
			t.Fatal(err)
		}
		var evs []playedEvent
		for _, line := range strings.Split(strings.TrimSpace(played.String()), "\n") {
			var e playedEvent
			_ = json.Unmarshal([]byte(line), &e)
			evs = append(evs, e)
		}
		typed, printed := indexOf(evs, "data", "stdin", "echo tunnelled"), indexOf(evs, "data", "stdout", "tunnelled-42")
		if typed < 0 || printed < 0 || typed > printed {
			t.Errorf("websockets=%s: typed at %d, printed at %d: %+v", ws, typed, printed, evs)
		}
	}
	// Without a terminal, and attach, through the tunnel too.
	cmd := exec.Command(tools.Path(t, "kubectl"), "--kubeconfig", kc, "exec", "web-0", "--", "sh", "-c", "echo tun-out; echo tun-err >&2")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl exec: %v\n%s", err, out)
	}
	if err := kubeenv.CheckAttach(context.Background(), tools.Path(t, "kubectl"), kc, "web-0", s.kube.AppendPodLog); err != nil {
		t.Fatal(err)
	}
	infos := waitRecordings(t, s.admin, &pb.ListRecordingsRequest{User: "alice"}, 4)
	kinds := map[string]bool{}
	for _, i := range infos {
		kinds[fmt.Sprintf("%s tty=%v exit=%d", i.Kind, i.TTY, i.ExitCode)] = true
	}
	for _, want := range []string{"exec tty=true exit=0", "exec tty=false exit=0", "attach tty=false exit=-1"} {
		if !kinds[want] {
			t.Errorf("no %q recording through the tunnel: %v", want, kinds)
		}
	}
}
