package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/tools"
)

// TestKubectlVerbs runs kubectl's everyday verbs, streams included, through Keyport
// against the real API server and kwok pods.
func TestKubectlVerbs(t *testing.T) {
	s := newKubeSetup(t)
	kc := s.kubeconfigFor(t, "alice", "example-role")
	run := func(args ...string) string {
		t.Helper()
		out, err := kubectl(t, kc, args...)
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	manifest := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: guide\n  namespace: default\ndata:\n  k: v\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run("apply", "-f", manifest); !strings.Contains(out, "configmap/guide created") {
		t.Errorf("apply: %s", out)
	}
	if out := run("apply", "--server-side", "-f", manifest); !strings.Contains(out, "serverside-applied") {
		t.Errorf("server-side apply: %s", out)
	}
	if out := run("get", "configmap", "guide", "-o", "jsonpath={.data.k}"); out != "v" {
		t.Errorf("get: %q", out)
	}
	if out := run("delete", "-f", manifest); !strings.Contains(out, "deleted") {
		t.Errorf("delete: %s", out)
	}
	// kubectl 1.30+ speaks WebSocket for exec; KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false
	// makes it fall back to SPDY. Both must work.
	for _, ws := range []string{"true", "false"} {
		cmd := exec.Command(tools.Path(t, "kubectl"), "--kubeconfig", kc, "exec", "web-0", "--", "echo", "hello-"+ws)
		cmd.Env = append(os.Environ(), "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+ws)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != "hello-"+ws {
			t.Errorf("exec (websockets=%s): %v %q %s", ws, err, out, stderr.String())
		}
	}
	if err := s.kube.AppendPodLog("first line"); err != nil {
		t.Fatal(err)
	}
	if out := run("logs", "web-0"); !strings.Contains(out, "first line") {
		t.Errorf("logs: %q", out)
	}
	if out := run("explain", "pods.spec.containers.image"); !strings.Contains(out, "image") {
		t.Errorf("explain: %q", out)
	}
	if out := run("api-resources", "--api-group=apps"); !strings.Contains(out, "deployments") {
		t.Errorf("api-resources: %q", out)
	}

	// Streams that stay open: logs -f, get -w, port-forward.
	streams := []struct {
		name string
		args []string
		want string
		poke func()
	}{
		{"logs -f", []string{"logs", "-f", "web-0"}, "second line", func() { _ = s.kube.AppendPodLog("second line") }},
		{"get -w", []string{"get", "pods", "-w", "-n", "default"}, "web-9", func() { _ = s.kube.CreatePod(context.Background(), "default", "web-9") }},
	}
	for _, st := range streams {
		t.Run(st.name, func(t *testing.T) { tunnelStream(t, kc, st.args, st.want, st.poke) })
	}
	t.Run("port-forward", func(t *testing.T) { tunnelPortForward(t, kc) })
	t.Run("attach", func(t *testing.T) { kubectlAttach(t, s.kube, kc) })
	t.Run("audit", func(t *testing.T) { checkKubeAudit(t, s) })
}

// kubectlAttach attaches to a kwok pod over WebSocket and over SPDY and sees lines
// written to the container's output after the attach started.
func kubectlAttach(t *testing.T, k *kubeenv.Env, kc string) {
	t.Helper()
	for _, ws := range []string{"true", "false"} {
		if err := kubeenv.CheckAttach(context.Background(), tools.Path(t, "kubectl"), kc, "web-0", k.AppendPodLog, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS="+ws); err != nil {
			t.Errorf("attach (websockets=%s): %v", ws, err)
		}
	}
}

// checkKubeAudit finds, in the audit log, the events SPEC section 10 asks for of the
// requests above: a kube.request per request with who, what and how it ended, and a
// session.start and session.end per exec and port-forward. kube.request events are
// written behind the response, so the wait is for them to be stored.
func checkKubeAudit(t *testing.T, s *kubeSetup) {
	var events []audit.Event
	find := func(match func(audit.Event) bool) []audit.Event {
		var out []audit.Event
		for _, e := range events {
			if match(e) {
				out = append(out, e)
			}
		}
		return out
	}
	isApply := func(e audit.Event) bool {
		f := e.Fields
		return e.Type == audit.KubeRequest && f["verb"] == "create" && f["resource"] == "configmaps" && f["namespace"] == "default" && f["status"] == float64(201)
	}
	isExec := func(typ string) func(audit.Event) bool {
		return func(e audit.Event) bool {
			return e.Type == typ && e.Fields["subresource"] == "exec" && e.Fields["name"] == "web-0"
		}
	}
	isPortForward := func(e audit.Event) bool {
		return e.Type == audit.SessionEnd && e.Fields["subresource"] == "portforward"
	}
	waitUntil(t, 10*time.Second, func() bool {
		resp, err := s.admin.SearchAudit(context.Background(), &pb.SearchAuditRequest{User: "alice", Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		events = events[:0]
		for _, raw := range resp.GetEvents() {
			var e audit.Event
			if err := json.Unmarshal(raw.GetJson(), &e); err != nil {
				t.Fatal(err)
			}
			events = append(events, e)
		}
		return len(find(isApply)) == 1 && len(find(isExec(audit.SessionEnd))) == 2 && len(find(isPortForward)) >= 1 &&
			len(find(func(e audit.Event) bool { return e.Type == audit.SessionEnd && e.Fields["subresource"] == "attach" })) == 2
	})
	if n := len(find(isApply)); n != 1 {
		t.Fatalf("want one kube.request for kubectl apply's create of configmap guide, found %d among %d events", n, len(events))
	}
	apply := find(isApply)[0]
	for _, k := range []string{"cluster", "verb", "api_group", "resource", "namespace", "name", "status", "latency_ms"} {
		if _, ok := apply.Fields[k]; !ok {
			t.Errorf("kube.request has no %q: %+v", k, apply.Fields)
		}
	}
	if apply.Fields["cluster"] != guideCluster || apply.User != "alice" || len(apply.Roles) != 1 || apply.Roles[0] != "example-role" || !apply.Success {
		t.Errorf("kube.request for the apply: %+v", apply)
	}
	if starts, ends := find(isExec(audit.SessionStart)), find(isExec(audit.SessionEnd)); len(starts) != 2 || len(ends) != 2 {
		t.Errorf("exec sessions: %d session.start and %d session.end events, want 2 and 2", len(starts), len(ends))
	}
	if n := len(find(func(e audit.Event) bool { return e.Type == audit.SessionEnd && e.Fields["subresource"] == "attach" })); n != 2 {
		t.Errorf("attach sessions: %d session.end events, want 2", n)
	}
	if n := len(find(func(e audit.Event) bool { return e.Type == audit.KubeRequest && e.Fields["verb"] == "watch" })); n == 0 {
		t.Error("no kube.request event for the get -w watch")
	}
}
