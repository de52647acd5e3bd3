// Package conformance runs a selection of the upstream Kubernetes e2e conformance tests
// (the e2e.test binary `make kube-e2e` builds) twice against one real
// control plane: directly with the admin kubeconfig, and through an in-process Keyport
// with the kubeconfig the built tbot writes for a bot whose role grants system:masters.
// A test that passes directly but fails through Keyport is a failure of Keyport; a test
// that fails directly is one this test bed cannot run and is reported as left out.
package conformance

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/types"
)

// Options configure a run.
type Options struct {
	// E2E is the e2e.test binary; Tbot the built tbot; Kubectl the kubectl the e2e
	// tests run (dry-run is tested through it).
	E2E, Tbot, Kubectl string
	// Focus and Skip select tests (ginkgo regular expressions).
	Focus, Skip string
	// Out receives the report; Log the progress.
	Out io.Writer
	Log *slog.Logger
}

const (
	kubeCluster = "example-k8s-cluster"
	botName     = "conformance"
	roleName    = "conformance-admin"
)

// Result is one test's outcome on one path.
type Result string

// The outcomes a junit report gives.
const (
	Passed  Result = "passed"
	Failed  Result = "failed"
	Skipped Result = "skipped"
)

// Report is the outcome of both runs.
type Report struct {
	Direct, Keyport map[string]Result
	// Regressions passed directly and failed through Keyport.
	Regressions []string
	// LeftOut failed directly: this test bed cannot run them.
	LeftOut []string
	Took    [2]time.Duration
	// Durations holds each test's time on each path (direct, through Keyport).
	Durations map[string][2]time.Duration
}

// Run starts the test bed, runs the selection both ways and compares.
func Run(ctx context.Context, opts Options) (*Report, error) {
	dir, err := os.MkdirTemp("", "keyport-conformance-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	opts.Log.Info("starting the control plane (etcd, kube-apiserver, kube-controller-manager, kwok)")
	kube, err := kubeenv.StartProcess(ctx, kubeenv.Options{Kwok: true, ContextName: kubeCluster})
	if err != nil {
		return nil, err
	}
	defer func() { _ = kube.Stop() }()
	if err := untaintNode(ctx, kube); err != nil {
		return nil, err
	}
	opts.Log.Info("starting Keyport in process")
	if err := os.MkdirAll(filepath.Join(dir, "keyport"), 0o700); err != nil {
		return nil, err
	}
	kp, err := testenv.Start(ctx, filepath.Join(dir, "keyport"), testenv.WithKube(kube.KubeconfigPath, map[string]string{"env": "dev"}),
		testenv.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	defer func() { _ = kp.Stop() }()
	viaKeyport, err := botKubeconfig(ctx, kp, opts.Tbot, filepath.Join(dir, "bot"))
	if err != nil {
		return nil, err
	}
	rep := &Report{Durations: map[string][2]time.Duration{}}
	for i, path := range []struct {
		name, kubeconfig string
		out              *map[string]Result
	}{{"direct", kube.KubeconfigPath, &rep.Direct}, {"through Keyport", viaKeyport, &rep.Keyport}} {
		opts.Log.Info("running the e2e selection", "path", path.name)
		began := time.Now()
		res, err := runE2E(ctx, opts, path.kubeconfig, filepath.Join(dir, fmt.Sprint("report-", i)))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path.name, err)
		}
		rep.Took[i] = time.Since(began)
		*path.out = map[string]Result{}
		for name, o := range res {
			(*path.out)[name] = o.Result
			d := rep.Durations[name]
			d[i] = o.Took
			rep.Durations[name] = d
		}
	}
	for name, r := range rep.Direct {
		switch {
		case r == Failed:
			rep.LeftOut = append(rep.LeftOut, name)
		case r == Passed && rep.Keyport[name] != Passed:
			rep.Regressions = append(rep.Regressions, name)
		}
	}
	sort.Strings(rep.LeftOut)
	sort.Strings(rep.Regressions)
	return rep, nil
}

// untaintNode removes the not-ready taint the API server puts on the kwok node, which
// nothing here removes; the framework wants a schedulable node.
func untaintNode(ctx context.Context, kube *kubeenv.Env) error {
	node, err := kube.Clientset.CoreV1().Nodes().Get(ctx, kube.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	var kept []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Key != "node.kubernetes.io/not-ready" {
			kept = append(kept, t)
		}
	}
	node.Spec.Taints = kept
	_, err = kube.Clientset.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
	return err
}

// botKubeconfig creates a bot whose role grants system:masters on every cluster and runs
// the built tbot once to write its kubeconfig, as the guide does.
func botKubeconfig(ctx context.Context, kp *testenv.Cluster, tbot, dir string) (string, error) {
	admin, err := kp.NewAdminClient()
	if err != nil {
		return "", err
	}
	defer func() { _ = admin.Close() }()
	if err := waitEnrolled(ctx, admin); err != nil {
		return "", err
	}
	role := types.NewRole(roleName, types.V7, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"system:masters"},
	}})
	if err := role.CheckAndSetDefaults(); err != nil {
		return "", err
	}
	data, err := types.EncodeJSON(role)
	if err != nil {
		return "", err
	}
	if _, err := admin.CreateResource(ctx, &pb.CreateResourceRequest{Resource: &pb.Resource{Kind: role.GetKind(), Json: data}}); err != nil {
		return "", err
	}
	bot, err := admin.CreateBot(ctx, &pb.CreateBotRequest{Name: botName, Roles: []string{roleName}})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	cfg := filepath.Join(dir, "tbot.yaml")
	out := filepath.Join(dir, "out")
	yaml := fmt.Sprintf(`version: v2
proxy_server: %s
onboarding: {token: %s, ca_pins: ['%s']}
storage: {type: memory}
oneshot: true
outputs:
  - type: kubernetes
    kubernetes_cluster: %s
    disable_exec_plugin: true
    destination: {type: directory, path: %s}
`, kp.WebAddr, bot.GetTokenId(), bot.GetHostCaPin(), kubeCluster, out)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return "", err
	}
	if b, err := exec.CommandContext(ctx, tbot, "start", "-c", cfg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("tbot: %w\n%s", err, b)
	}
	return filepath.Join(out, "kubeconfig.yaml"), nil
}

func waitEnrolled(ctx context.Context, admin *client.Client) error {
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		resp, err := admin.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
		if err == nil && len(resp.GetClusters()) == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the kube cluster was not enrolled within 30s")
		}
	}
}

// runE2E runs the selection with kubeconfig and reads its junit report.
func runE2E(ctx context.Context, opts Options, kubeconfig, reportDir string) (map[string]outcome, error) {
	if err := os.MkdirAll(reportDir, 0o700); err != nil {
		return nil, err
	}
	args := []string{"--kubeconfig=" + kubeconfig, "--provider=skeleton", "--report-dir=" + reportDir,
		"--ginkgo.focus=" + opts.Focus, "--ginkgo.no-color", "--ginkgo.timeout=40m"}
	if opts.Kubectl != "" {
		args = append(args, "--kubectl-path="+opts.Kubectl)
	}
	if opts.Skip != "" {
		args = append(args, "--ginkgo.skip="+opts.Skip)
	}
	cmd := exec.CommandContext(ctx, opts.E2E, args...)
	logFile, err := os.Create(filepath.Join(reportDir, "e2e.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A non-zero exit means some test failed; the report says which.
	_ = cmd.Run()
	return readJUnit(filepath.Join(reportDir, "junit_01.xml"))
}

type junit struct {
	Suites []struct {
		Cases []junitCase `xml:"testcase"`
	} `xml:"testsuite"`
}

type junitCase struct {
	Name    string    `xml:"name,attr"`
	Status  string    `xml:"status,attr"`
	Failure *struct{} `xml:"failure"`
	Error   *struct{} `xml:"error"`
	Skipped *struct{} `xml:"skipped"`
	Time    float64   `xml:"time,attr"`
}

// outcome is one test's result and time in one run.
type outcome struct {
	Result Result
	Took   time.Duration
}

func readJUnit(path string) (map[string]outcome, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the e2e run left no report: %w", err)
	}
	var j junit
	if err := xml.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	out := map[string]outcome{}
	for _, s := range j.Suites {
		for _, c := range s.Cases {
			if strings.HasPrefix(c.Name, "[SynchronizedBeforeSuite]") || strings.HasPrefix(c.Name, "[SynchronizedAfterSuite]") ||
				strings.HasPrefix(c.Name, "[ReportAfterSuite]") || strings.HasPrefix(c.Name, "[ReportBeforeSuite]") || strings.HasPrefix(c.Name, "[BeforeSuite]") {
				continue
			}
			o := outcome{Result: Passed, Took: time.Duration(c.Time * float64(time.Second))}
			switch {
			case c.Skipped != nil || c.Status == "skipped":
				o.Result = Skipped
			case c.Failure != nil || c.Error != nil || c.Status == "failed" || c.Status == "panicked":
				o.Result = Failed
			}
			out[c.Name] = o
		}
	}
	return out, nil
}

// Print writes the report; verbose adds each test's time on both paths, slowest first.
func (r *Report) Print(w io.Writer, verbose bool) {
	count := func(m map[string]Result, want Result) int {
		n := 0
		for _, v := range m {
			if v == want {
				n++
			}
		}
		return n
	}
	fmt.Fprintf(w, "direct:          %d passed, %d failed, %d skipped (%s)\n", count(r.Direct, Passed), count(r.Direct, Failed), count(r.Direct, Skipped), r.Took[0].Round(time.Second))
	fmt.Fprintf(w, "through Keyport: %d passed, %d failed, %d skipped (%s)\n", count(r.Keyport, Passed), count(r.Keyport, Failed), count(r.Keyport, Skipped), r.Took[1].Round(time.Second))
	if len(r.LeftOut) > 0 {
		fmt.Fprintf(w, "\nfailed directly too (this test bed cannot run them):\n")
		for _, n := range r.LeftOut {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	if verbose {
		fmt.Fprintf(w, "\n%10s %10s  test\n", "direct", "keyport")
		var names []string
		for n, res := range r.Direct {
			if res != Skipped {
				names = append(names, n)
			}
		}
		sort.Slice(names, func(i, j int) bool { return r.Durations[names[i]][0] > r.Durations[names[j]][0] })
		for _, n := range names {
			d := r.Durations[n]
			fmt.Fprintf(w, "%10s %10s  %s\n", d[0].Round(100*time.Millisecond), d[1].Round(100*time.Millisecond), n)
		}
	}
	if len(r.Regressions) > 0 {
		fmt.Fprintf(w, "\nFAILED through Keyport, passed directly:\n")
		for _, n := range r.Regressions {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
}
