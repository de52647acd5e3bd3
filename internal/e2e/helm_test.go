package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyport/keyport/internal/testenv/tools"
)

// helm runs the real Helm binary with a kubeconfig, its state kept in the test's dirs.
func helm(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(tools.Path(t, "helm"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Env = []string{"HOME=" + home, "HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"), "HELM_DATA_HOME=" + filepath.Join(home, "data"), "PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestHelmThroughKeyport installs, lists and uninstalls a chart through the proxy.
func TestHelmThroughKeyport(t *testing.T) {
	s := newKubeSetup(t)
	kc := s.kubeconfigFor(t, "alice", "example-role")
	chart, err := filepath.Abs("testdata/chart/hello")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"install", "greeter", chart, "--namespace", "default", "--wait"}, "STATUS: deployed"},
		{[]string{"list", "-A"}, "greeter"},
		{[]string{"uninstall", "greeter", "--namespace", "default"}, `release "greeter" uninstalled`},
		{[]string{"list", "-A"}, "NAME"},
	}
	for _, st := range steps {
		out, err := helm(t, kc, st.args...)
		if err != nil || !strings.Contains(out, st.want) {
			t.Fatalf("helm %s: %v\n%s", strings.Join(st.args, " "), err, out)
		}
	}
	if out, _ := kubectl(t, kc, "get", "configmap", "greeter-greeting"); !strings.Contains(out, "NotFound") {
		t.Errorf("uninstall left the configmap: %s", out)
	}
}
