//go:build linux

// Package quickstart runs Teleport's guide "Machine ID with Kubernetes Access" against a
// local Keyport on a real local control plane, for `make quickstart`.
//
// `up` starts a supervisor process in its own session that owns a control plane (etcd,
// kube-apiserver, kube-controller-manager, kwok with a node and a few pods) and a
// `keyport` daemon enrolling it as example-k8s-cluster; then it runs the guide's commands
// one by one, printing each before it runs. `down` stops the supervisor, and with it every
// process it started (they die with it). All state lives in .quickstart/ of the checkout.
// Running `up` again stops what the last run started and starts afresh.
package quickstart

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/tools"
)

// Dir is the state directory, relative to the checkout.
const Dir = ".quickstart"

const cluster = "example-k8s-cluster"

// state is what the supervisor tells `up` once everything is ready.
type state struct {
	WebAddr       string `json:"web_addr"`
	DiagAddr      string `json:"diag_addr"`
	AdminKubeconf string `json:"admin_kubeconfig"`
	KeyportConfig string `json:"keyport_config"`
	SupervisorPID int    `json:"supervisor_pid"`
}

// Main runs `quickstart up|down|serve`.
func Main(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: quickstart up|down")
		return 2
	}
	root, err := filepath.Abs(Dir)
	if err == nil {
		switch args[0] {
		case "up":
			err = up(root)
		case "down":
			err = down(root, true)
		case "serve":
			err = serve(root)
		default:
			fmt.Fprintln(os.Stderr, "usage: quickstart up|down")
			return 2
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ERROR: %v\n", err)
		return 1
	}
	return 0
}

func pidFile(root string) string { return filepath.Join(root, "supervisor.pid") }

// down stops the supervisor of an earlier run and waits until it is gone.
func down(root string, say bool) error {
	data, err := os.ReadFile(pidFile(root))
	if errors.Is(err, os.ErrNotExist) {
		if say {
			fmt.Println("quickstart: nothing is running")
		}
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("bad pid file %s: %w", pidFile(root), err)
	}
	if syscall.Kill(pid, syscall.SIGTERM) == nil {
		deadline := time.Now().Add(60 * time.Second)
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				_ = syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	_ = os.Remove(pidFile(root))
	if say {
		fmt.Printf("quickstart: stopped (state kept in %s; rm -rf it to forget everything)\n", root)
	}
	return nil
}

// up (re)starts the supervisor and runs the guide.
func up(root string) error {
	start := time.Now()
	if err := down(root, false); err != nil {
		return err
	}
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(root, "supervisor.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	sup := exec.Command(self, "serve")
	sup.Stdout, sup.Stderr = logf, logf
	// Its own session: it outlives `make` and this process.
	sup.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := sup.Start(); err != nil {
		return err
	}
	if err := os.WriteFile(pidFile(root), []byte(strconv.Itoa(sup.Process.Pid)), 0o600); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- sup.Wait() }()
	fmt.Println("quickstart: starting a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kwok) and keyport …")
	var st state
	deadline := time.Now().Add(3 * time.Minute)
	for {
		data, err := os.ReadFile(filepath.Join(root, "ready.json"))
		if err == nil && json.Unmarshal(data, &st) == nil {
			break
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the supervisor stopped (%w); its log:\n%s", err, tail(filepath.Join(root, "supervisor.log")))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after 3 minutes; see %s", filepath.Join(root, "supervisor.log"))
		}
	}
	fmt.Printf("quickstart: ready in %s\n\n", time.Since(start).Round(100*time.Millisecond))
	if err := guide(root, st); err != nil {
		return err
	}
	fmt.Printf(`
Done in %s. Everything lives in %s:
  keyport.yaml, data/                 the Keyport cluster (keyport.log is its log)
  kube/                               the control plane (admin kubeconfig: kube/kubeconfig)
  tbot.yaml, bot/                     the bot's config and its renewable identity
  machine-id/kubeconfig.yaml          the bot's kubeconfig

Use the bot's kubeconfig:
  kubectl --kubeconfig %s get pods -A
  export KUBECONFIG=%s; kubectl get pods -A; helm list -A

Administer the cluster:
  export KEYPORT_CONFIG=%s; bin/tctl status

Run tbot as a daemon (renews every 20 minutes):
  bin/tbot start -c %s

Stop everything:
  make quickstart-down
`, time.Since(start).Round(100*time.Millisecond), root,
		filepath.Join(root, "machine-id", "kubeconfig.yaml"), filepath.Join(root, "machine-id", "kubeconfig.yaml"),
		st.KeyportConfig, filepath.Join(root, "tbot.yaml"))
	return nil
}

func tail(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// serve is the supervisor: it owns the control plane and keyport until SIGTERM.
func serve(root string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	kube, err := kubeenv.StartProcess(ctx, kubeenv.Options{Kwok: true, ContextName: cluster, Dir: filepath.Join(root, "kube")})
	if err != nil {
		return err
	}
	defer func() { _ = kube.Stop() }()
	for _, p := range [][2]string{{"default", "web-0"}, {"default", "web-1"}, {"kube-system", "coredns-0"}, {"monitoring", "prometheus-0"}} {
		if p[0] == "monitoring" {
			if _, err := exec.Command(mustTool("kubectl"), "--kubeconfig", kube.KubeconfigPath, "create", "namespace", "monitoring").CombinedOutput(); err != nil {
				return fmt.Errorf("creating namespace monitoring: %w", err)
			}
		}
		if err := kube.CreatePod(ctx, p[0], p[1]); err != nil {
			return err
		}
	}
	addrs := map[string]string{}
	for _, n := range []string{"auth", "web", "diag"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addrs[n] = l.Addr().String()
		_ = l.Close()
	}
	cfgPath := filepath.Join(root, "keyport.yaml")
	cfg := fmt.Sprintf(`version: v3
keyport:
  nodename: quickstart
  data_dir: data
  diag_addr: %s
auth_service:
  cluster_name: keyport.local
  listen_addr: %s
  authentication: {type: local, second_factor: otp}
proxy_service:
  web_listen_addr: %s
  public_addr: %s
kubernetes_service:
  enabled: true
  kubeconfig_file: %s
  labels:
    env: dev
`, addrs["diag"], addrs["auth"], addrs["web"], addrs["web"], kube.KubeconfigPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(root, "keyport.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	// --pprof: the quickstart's diag address is on loopback, and a developer can profile
	// the running keyport with go tool pprof http://DIAG/debug/pprof/profile.
	kp := exec.Command(filepath.Join(filepath.Dir(root), "bin", "keyport"), "start", "--pprof", "-c", cfgPath)
	kp.Stdout, kp.Stderr = logf, logf
	kp.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := kp.Start(); err != nil {
		return fmt.Errorf("starting keyport: %w", err)
	}
	kpDone := make(chan error, 1)
	go func() { kpDone <- kp.Wait() }()
	defer func() {
		_ = kp.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-kpDone:
			_ = err // stopping: its exit status does not matter
		case <-time.After(10 * time.Second):
			_ = kp.Process.Kill()
		}
	}()
	if err := waitReady(ctx, addrs["diag"], kpDone); err != nil {
		return err
	}
	st := state{WebAddr: addrs["web"], DiagAddr: addrs["diag"], AdminKubeconf: kube.KubeconfigPath, KeyportConfig: cfgPath, SupervisorPID: os.Getpid()}
	data, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(root, "ready.json"), data, 0o600); err != nil {
		return err
	}
	fmt.Println("quickstart supervisor: ready")
	select {
	case <-ctx.Done():
		return nil
	case err := <-kpDone:
		return fmt.Errorf("keyport exited: %w", err)
	}
}

func waitReady(ctx context.Context, diag string, died <-chan error) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + diag + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-died:
			return fmt.Errorf("keyport exited: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("keyport not ready after 60s")
}

func mustTool(name string) string {
	p, err := tools.Lookup(name)
	if err != nil {
		return name
	}
	return p
}

// guide runs the guide's commands as written, each printed first.
func guide(root string, st state) error {
	bin := filepath.Join(filepath.Dir(root), "bin")
	env := append(os.Environ(),
		"PATH="+bin+string(os.PathListSeparator)+tools.BinDir()+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KEYPORT_CONFIG="+st.KeyportConfig,
	)
	fmt.Printf("# tctl finds the cluster through KEYPORT_CONFIG=%s;\n# kubectl's admin steps use the control plane's admin kubeconfig.\n\n", st.KeyportConfig)
	run := func(extraEnv []string, name string, args ...string) (string, error) {
		shown := append([]string{name}, args...)
		fmt.Printf("$ %s\n", strings.Join(shown, " "))
		cmd := exec.Command(resolve(bin, name), args...)
		cmd.Dir = root
		cmd.Env = append(append([]string{}, env...), extraEnv...)
		out, err := cmd.CombinedOutput()
		fmt.Print(string(out))
		fmt.Println()
		if err != nil {
			return string(out), fmt.Errorf("%s failed: %w", strings.Join(shown, " "), err)
		}
		return string(out), nil
	}
	admin := []string{"KUBECONFIG=" + st.AdminKubeconf}
	if _, err := run(nil, "tctl", "status"); err != nil {
		return err
	}
	if _, err := run(admin, "kubectl", "create", "clusterrolebinding", "teleport-editor-edit", "--clusterrole=edit", "--group=editor"); err != nil {
		return err
	}
	role := `kind: role
version: v6
metadata:
  name: example-role
spec:
  allow:
    kubernetes_labels:
      '*': '*'
    kubernetes_groups:
    - editor
    kubernetes_resources:
    - kind: "*"
      namespace: "*"
      name: "*"
`
	if err := writeShown(filepath.Join(root, "role.yaml"), role); err != nil {
		return err
	}
	if _, err := run(nil, "tctl", "create", "-f", "./role.yaml"); err != nil {
		return err
	}
	out, err := run(nil, "tctl", "bots", "add", "example", "--roles=access")
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`The bot token: ([0-9a-f]{64})`).FindStringSubmatch(out)
	if m == nil {
		return errors.New("tctl bots add printed no token")
	}
	if _, err := run(nil, "tctl", "bots", "update", "example", "--add-roles", "example-role"); err != nil {
		return err
	}
	statusOut, err := exec.Command(filepath.Join(bin, "tctl"), "-c", st.KeyportConfig, "status").Output()
	if err != nil {
		return err
	}
	pin := regexp.MustCompile(`CA pin   (sha256:[0-9a-f]{64})`).FindStringSubmatch(string(statusOut))
	if pin == nil {
		return errors.New("tctl status printed no CA pin")
	}
	tbotYAML := fmt.Sprintf(`version: v2
proxy_server: %s
onboarding:
  join_method: token
  token: %s
  ca_pins: ['%s']
storage:
  type: directory
  path: %s
outputs:
- type: kubernetes
  destination:
    type: directory
    path: %s
  kubernetes_cluster: example-k8s-cluster
`, st.WebAddr, m[1], pin[1], filepath.Join(root, "bot"), filepath.Join(root, "machine-id"))
	if err := writeShown(filepath.Join(root, "tbot.yaml"), tbotYAML); err != nil {
		return err
	}
	if _, err := run(nil, "tbot", "start", "-c", "tbot.yaml", "--oneshot"); err != nil {
		return err
	}
	_, err = run(nil, "kubectl", "--kubeconfig", filepath.Join(root, "machine-id", "kubeconfig.yaml"), "get", "pods", "-A")
	return err
}

// resolve finds a program: Keyport's own in bin/, the kube tools in the cache, then $PATH.
func resolve(bin, name string) string {
	if p := filepath.Join(bin, name); isExec(p) {
		return p
	}
	return mustTool(name)
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func writeShown(path, content string) error {
	fmt.Printf("$ cat %s\n%s\n", filepath.Base(path), content)
	return os.WriteFile(path, []byte(content), 0o600)
}
