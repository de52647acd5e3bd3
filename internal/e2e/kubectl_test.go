package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
}
