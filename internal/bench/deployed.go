package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/keyport/keyport/internal/gctune"
	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/testenv/proc"
)

// DeployedOptions are the knobs of `keyport-bench deployed` (make bench-deployed).
type DeployedOptions struct {
	Bin             string        // directory of the built keyport, tctl and tbot
	Rounds          int           // interleaved rounds per path, deployed section
	Requests        int           // GETs per deployed round
	Workers         int           // concurrent GETs of the load process (and in-process clients)
	InProcessRounds int           // interleaved rounds per path, in-process section
	InProcessRound  time.Duration // length of an in-process round
	CPUProfile      string        // when set, CPU profiles of the running keyport and bare proxy, one extra round each
	ProfileDuration time.Duration
	Verbose         bool
}

// deployedMain is `keyport-bench deployed [flags]`.
func deployedMain(args []string, stdout, stderr io.Writer) int {
	var o DeployedOptions
	fs := flag.NewFlagSet("keyport-bench deployed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Bin, "bin", "bin", "directory holding the built keyport, tctl and tbot")
	fs.IntVar(&o.Rounds, "rounds", 7, "interleaved rounds per path in the deployed section")
	fs.IntVar(&o.Requests, "requests", 3000, "GETs per deployed round")
	fs.IntVar(&o.Workers, "workers", 16, "concurrent GETs")
	fs.IntVar(&o.InProcessRounds, "inprocess-rounds", 7, "interleaved rounds per path in the in-process section")
	fs.DurationVar(&o.InProcessRound, "inprocess-duration", 2*time.Second, "length of an in-process round")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the running keyport (its diag port's /debug/pprof/profile) during one extra round to `file`, and one of the bare proxy to file.bare")
	fs.DurationVar(&o.ProfileDuration, "profile-duration", 10*time.Second, "length of the profiled round")
	fs.BoolVar(&o.Verbose, "v", false, "log the control plane's and Keyport's progress")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || o.Rounds < 1 || o.Requests < 1 || o.Workers < 1 || o.InProcessRounds < 1 {
		fmt.Fprintln(stderr, "usage: keyport-bench deployed [flags]; counts must be at least 1")
		fs.PrintDefaults()
		return 2
	}
	for _, b := range []string{"keyport", "tctl", "tbot"} {
		if _, err := os.Stat(filepath.Join(o.Bin, b)); err != nil {
			fmt.Fprintf(stderr, "ERROR: the deployed bench runs the built binaries: %v (run make build)\n", err)
			return 1
		}
	}
	abs, err := filepath.Abs(o.Bin)
	if err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n", err)
		return 1
	}
	o.Bin = abs
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := RunDeployed(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "ERROR: %v\n", err)
		return 1
	}
	return 0
}

// deployedRound is one round of the load process on one path, with the CPU each process
// used meanwhile (from /proc/<pid>/stat, 10 ms ticks).
type deployedRound struct {
	roundResult
	load, proxy, controlPlane time.Duration
	proxySys                  syscalls // the proxy process's read and write system calls
}

func (r deployedRound) per(d time.Duration) time.Duration {
	if r.requests == 0 {
		return 0
	}
	return d / time.Duration(r.requests)
}

// cores is how many cores the measured processes kept busy on average.
func (r deployedRound) cores() float64 {
	return float64(r.load+r.proxy+r.controlPlane) / float64(r.elapsed)
}

// deployedResults are both sections' rounds: [0] direct, [1] keyport, [2] bare.
type deployedResults struct {
	inProcess [][]roundResult
	deployed  [][]deployedRound
	user      string
	groups    []string
	keyport   string // its version line
}

// RunDeployed measures Keyport the way users run it, next to the in-process numbers of
// the same run. It starts the control plane once, runs the in-process section's GET
// rounds (Keyport and the bare proxy in this process, as `make bench` does), stops
// them, then runs the built `keyport start -c` from a generated config (SQLite, audit
// log on disk, as the quickstart runs it) with a bot identity from the built tbot, the
// bare reverse proxy as a process of its own, and a separate client-go load process, and
// interleaves rounds of a fixed number of GETs on the three paths.
func RunDeployed(ctx context.Context, o DeployedOptions, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	kubeLog, keyportLog := slog.New(slog.DiscardHandler), slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if o.Verbose {
		kubeLog, keyportLog = log.With("component", "kubeenv"), log.With("component", "keyport")
	}
	gctx, stopGC := context.WithCancel(ctx)
	defer stopGC()
	gctune.Start(gctx, os.Getenv, log)
	env := environment{cores: runtime.NumCPU(), maxprocs: runtime.GOMAXPROCS(0), goVersion: runtime.Version(), loadBefore: loadAverage()}
	began := time.Now()
	s, err := startSetup(ctx, Options{Clients: o.Workers, kubeLogger: kubeLog, keyportLogger: keyportLog}, log)
	if err != nil {
		return err
	}
	defer s.close(log)
	env.k8sVersion = s.k8sVersion
	var res deployedResults

	// The in-process section: make bench's GET rounds, same control plane, same run.
	var paths []path
	for _, c := range []struct {
		name string
		cfg  *rest.Config
	}{{"direct", s.direct}, {"keyport", s.viaKeyport}, {"bare", s.bare}} {
		hc, err := newHTTPClient(c.cfg)
		if err != nil {
			return err
		}
		if _, err := runRound(ctx, hc, c.cfg.Host+podPath, o.Workers, time.Second); err != nil {
			return fmt.Errorf("warm-up %s: %w", c.name, err)
		}
		paths = append(paths, path{c.name, c.cfg, hc})
	}
	log.Info("in-process section: GET rounds", "rounds", o.InProcessRounds, "duration", o.InProcessRound, "clients", o.Workers)
	res.inProcess, err = interleave(paths, o.InProcessRounds, "in-process GET", func(p path) (roundResult, error) {
		return runRound(ctx, p.client, p.cfg.Host+podPath, o.Workers, o.InProcessRound)
	})
	if err != nil {
		return err
	}
	if err := checkRounds(res.inProcess...); err != nil {
		return err
	}
	// Nothing of the in-process section may compete with the deployed one.
	for _, p := range paths {
		p.client.CloseIdleConnections()
	}
	s.bareSrv.Close()
	s.bareSrv = nil
	if err := s.keyport.Stop(); err != nil {
		return fmt.Errorf("stopping the in-process keyport: %w", err)
	}
	s.keyport = nil
	stopGC() // this process is only the conductor from here on

	d, err := startDeployed(ctx, o, s, log)
	if d != nil {
		defer d.close(log)
	}
	if err != nil {
		return err
	}
	res.user, res.groups, res.keyport = d.user, d.groups, d.version
	log.Info("deployed section: GET rounds", "rounds", o.Rounds, "requests", o.Requests, "workers", o.Workers)
	res.deployed = make([][]deployedRound, 3)
	for i := range o.Rounds {
		for j, name := range []string{"direct", "keyport", "bare"} {
			r, err := d.measure(loadRequest{Path: name, Requests: o.Requests}, name)
			if err != nil {
				return fmt.Errorf("deployed round %d %s: %w", i+1, name, err)
			}
			res.deployed[j] = append(res.deployed[j], r)
		}
	}
	if o.CPUProfile != "" {
		for _, name := range []string{"keyport", "bare"} {
			file := o.CPUProfile
			if name != "keyport" {
				file += "." + name
			}
			log.Info("profiling a running proxy during one extra round", "path", name, "duration", o.ProfileDuration, "file", file)
			r, err := d.profile(ctx, name, file, o.ProfileDuration)
			if err != nil {
				return err
			}
			log.Info("profiled round", "path", name, "file", file, "requests", r.requests, "req_per_s", int(r.perSecond()),
				"proxy_cpu_per_get", r.per(r.proxy).Round(time.Microsecond))
		}
	}
	env.loadAfter = loadAverage()
	env.took = time.Since(began)
	reportDeployed(stdout, o, env, &res)
	return nil
}

// deployment is the deployed section's processes: keyport, the bare proxy, the load.
type deployment struct {
	dir           string
	keyport       *proc.Process
	diagAddr      string
	barePprof     string
	bare, load    *helper
	user, version string
	groups        []string
}

// The deployed Keyport's names: its cluster and the bot whose kubeconfig the load uses.
const (
	deployedCluster = "bench.keyport.local"
	botName         = "bench"
)

func startDeployed(ctx context.Context, o DeployedOptions, s *setup, log *slog.Logger) (*deployment, error) {
	d := &deployment{dir: filepath.Join(s.dir, "deployed")}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, err
	}
	ports, err := freeport.Ports(3)
	if err != nil {
		return nil, err
	}
	authAddr, webAddr := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	d.diagAddr = fmt.Sprintf("127.0.0.1:%d", ports[2])
	// The quickstart's configuration: SQLite and the audit log under data_dir.
	cfgPath := filepath.Join(d.dir, "keyport.yaml")
	cfg := fmt.Sprintf(`version: v3
keyport:
  nodename: bench
  data_dir: %s
  diag_addr: %s
auth_service:
  cluster_name: %s
  listen_addr: %s
proxy_service:
  web_listen_addr: %s
  public_addr: %s
kubernetes_service:
  enabled: true
  kubeconfig_file: %s
  labels:
    env: dev
`, filepath.Join(d.dir, "data"), d.diagAddr, deployedCluster, authAddr, webAddr, webAddr, s.kube.KubeconfigPath)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return d, err
	}
	out, err := exec.CommandContext(ctx, filepath.Join(o.Bin, "keyport"), "version").CombinedOutput()
	if err != nil {
		return d, fmt.Errorf("keyport version: %w: %s", err, out)
	}
	d.version = strings.TrimSpace(string(out))
	log.Info("starting the built keyport", "config", cfgPath)
	// --pprof: the diag port serves the profiles -cpuprofile takes.
	d.keyport, err = proc.Start("keyport", filepath.Join(d.dir, "keyport.log"), nil, filepath.Join(o.Bin, "keyport"), "start", "--pprof", "-c", cfgPath)
	if err != nil {
		return d, err
	}
	if err := poll(ctx, 60*time.Second, "keyport /readyz", func() error {
		if err := d.keyport.CrashErr(); err != nil {
			return err
		}
		return getOK(ctx, "http://"+d.diagAddr+"/readyz")
	}); err != nil {
		if cerr := d.keyport.CrashErr(); cerr != nil {
			return d, cerr
		}
		return d, err
	}

	// The guide's steps with the built tctl and tbot.
	run := func(name string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, filepath.Join(o.Bin, name), args...)
		cmd.Dir = d.dir
		cmd.Env = append(os.Environ(), "KEYPORT_CONFIG="+cfgPath)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	role := fmt.Sprintf(`kind: role
version: v6
metadata:
  name: %s
spec:
  allow:
    kubernetes_labels:
      '*': '*'
    kubernetes_groups:
    - %s
    kubernetes_resources:
    - kind: "*"
      namespace: "*"
      name: "*"
`, roleName, editorGroup)
	if err := os.WriteFile(filepath.Join(d.dir, "role.yaml"), []byte(role), 0o600); err != nil {
		return d, err
	}
	if _, err := run("tctl", "create", "-f", "role.yaml"); err != nil {
		return d, err
	}
	out2, err := run("tctl", "bots", "add", botName, "--roles="+roleName)
	if err != nil {
		return d, err
	}
	token := regexp.MustCompile(`The bot token: ([0-9a-f]{64})`).FindStringSubmatch(out2)
	if token == nil {
		return d, fmt.Errorf("tctl bots add printed no token:\n%s", out2)
	}
	status, err := run("tctl", "status")
	if err != nil {
		return d, err
	}
	pin := regexp.MustCompile(`CA pin +(sha256:[0-9a-f]{64})`).FindStringSubmatch(status)
	if pin == nil {
		return d, fmt.Errorf("tctl status printed no CA pin:\n%s", status)
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
  kubernetes_cluster: %s
`, webAddr, token[1], pin[1], filepath.Join(d.dir, "bot"), filepath.Join(d.dir, "machine-id"), kubeCluster)
	if err := os.WriteFile(filepath.Join(d.dir, "tbot.yaml"), []byte(tbotYAML), 0o600); err != nil {
		return d, err
	}
	if _, err := run("tbot", "start", "-c", "tbot.yaml", "--oneshot"); err != nil {
		return d, err
	}
	keyportKubeconfig := filepath.Join(d.dir, "machine-id", "kubeconfig.yaml")

	// Whom Keyport impersonates for the bot: the direct and bare paths send the same, so
	// the API server does the same work on all three.
	if err := poll(ctx, 30*time.Second, "the bot's kubeconfig to reach the cluster", func() error {
		d.user, d.groups, err = whoAmI(ctx, keyportKubeconfig)
		return err
	}); err != nil {
		return d, err
	}
	directKubeconfig := filepath.Join(d.dir, "direct-kubeconfig.yaml")
	if err := writeImpersonating(s.kube.KubeconfigPath, directKubeconfig, d.user, d.groups); err != nil {
		return d, err
	}

	bareArgs := []string{bareCommand, "-kubeconfig", s.kube.KubeconfigPath, "-as", d.user}
	for _, g := range d.groups {
		bareArgs = append(bareArgs, "-as-group", g)
	}
	if d.bare, err = startHelper(bareArgs...); err != nil {
		return d, err
	}
	var br bareReply
	if err := d.bare.read(&br); err != nil {
		return d, err
	}
	d.barePprof = br.PprofAddr
	bareKubeconfig := filepath.Join(d.dir, "bare-kubeconfig.yaml")
	if err := writeServerOnly(bareKubeconfig, br); err != nil {
		return d, err
	}

	log.Info("starting the load process", "workers", o.Workers)
	if d.load, err = startHelper(loadCommand, "-workers", fmt.Sprint(o.Workers),
		"direct="+directKubeconfig, "keyport="+keyportKubeconfig, "bare="+bareKubeconfig); err != nil {
		return d, err
	}
	var ready loadReply
	if err := d.load.read(&ready); err != nil {
		return d, err
	}
	if !ready.Ready {
		return d, fmt.Errorf("load process: %s", ready.Error)
	}
	return d, nil
}

// getOK GETs url and wants a 200.
func getOK(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// whoAmI asks the API server, through kubeconfig, whom it sees (kubectl auth whoami).
func whoAmI(ctx context.Context, kubeconfig string) (string, []string, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return "", nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", nil, err
	}
	r, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return "", nil, fmt.Errorf("self subject review: %w", err)
	}
	ui := r.Status.UserInfo
	if ui.Username == "" {
		return "", nil, errors.New("self subject review: no user name")
	}
	return ui.Username, ui.Groups, nil
}

// writeImpersonating copies the admin kubeconfig with its user impersonating user and
// groups (kubeconfig's as and as-groups).
func writeImpersonating(admin, dst, user string, groups []string) error {
	c, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		return err
	}
	ctx, ok := c.Contexts[c.CurrentContext]
	if !ok || c.AuthInfos[ctx.AuthInfo] == nil {
		return fmt.Errorf("%s: no user in the current context", admin)
	}
	c.AuthInfos[ctx.AuthInfo].Impersonate = user
	c.AuthInfos[ctx.AuthInfo].ImpersonateGroups = groups
	return clientcmd.WriteToFile(*c, dst)
}

// writeServerOnly writes a kubeconfig for the bare proxy: its URL and CA, no credentials
// (the bare proxy sends the admin's).
func writeServerOnly(dst string, br bareReply) error {
	c := clientcmdapi.NewConfig()
	c.Clusters["bare"] = &clientcmdapi.Cluster{Server: br.URL, CertificateAuthorityData: br.CAPEM, TLSServerName: br.ServerName}
	c.AuthInfos["bare"] = &clientcmdapi.AuthInfo{}
	c.Contexts["bare"] = &clientcmdapi.Context{Cluster: "bare", AuthInfo: "bare"}
	c.CurrentContext = "bare"
	return clientcmd.WriteToFile(*c, dst)
}

// measure runs one load round and reads every process's CPU around it.
func (d *deployment) measure(req loadRequest, pathName string) (deployedRound, error) {
	proxyPID := 0
	switch pathName {
	case "keyport":
		proxyPID = d.keyport.Cmd.Process.Pid
	case "bare":
		proxyPID = d.bare.pid()
	}
	snap := func() (load, proxy, cp time.Duration, sys syscalls, err error) {
		if load, err = pidCPU(d.load.pid()); err != nil {
			return
		}
		if proxyPID != 0 {
			if proxy, err = pidCPU(proxyPID); err != nil {
				return
			}
			if sys, err = pidSyscalls(strconv.Itoa(proxyPID)); err != nil {
				return
			}
		}
		cp, err = childCPU(controlPlane...)
		return
	}
	l0, p0, c0, s0, err := snap()
	if err != nil {
		return deployedRound{}, err
	}
	r, err := d.load.round(req)
	if err != nil {
		return deployedRound{}, err
	}
	l1, p1, c1, s1, err := snap()
	if err != nil {
		return deployedRound{}, err
	}
	if r.requests == 0 {
		return deployedRound{}, errNoRequests
	}
	return deployedRound{roundResult: r, load: l1 - l0, proxy: p1 - p0, controlPlane: c1 - c0, proxySys: s1.sub(s0)}, nil
}

// profile takes a CPU profile of a running proxy (keyport's diag port, or the bare
// proxy's) during a round of the same length on its path.
func (d *deployment) profile(ctx context.Context, pathName, file string, dur time.Duration) (deployedRound, error) {
	addr := d.diagAddr
	if pathName == "bare" {
		addr = d.barePprof
	}
	type result struct {
		data []byte
		err  error
	}
	got := make(chan result, 1)
	go func() {
		url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(dur.Seconds()))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			got <- result{err: err}
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s: %s", url, resp.Status, data)
		}
		got <- result{data, err}
	}()
	r, err := d.measure(loadRequest{Path: pathName, Seconds: dur.Seconds()}, pathName)
	p := <-got
	if err != nil {
		return r, err
	}
	if p.err != nil {
		return r, fmt.Errorf("%s's CPU profile: %w", pathName, p.err)
	}
	return r, os.WriteFile(file, p.data, 0o600)
}

// close stops the load process, the bare proxy and keyport.
func (d *deployment) close(log *slog.Logger) {
	for _, h := range []*helper{d.load, d.bare} {
		if h != nil {
			h.stop()
		}
	}
	if d.keyport != nil {
		if err := d.keyport.Stop(); err != nil {
			log.Warn("stopping keyport", "error", err)
		}
	}
}
