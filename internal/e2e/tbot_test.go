package e2e

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	"k8s.io/client-go/tools/clientcmd"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tbot"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tbot/destination"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/tlsca"
)

// tbotKubeCluster is the kube cluster the guide's tbot.yaml names.
const tbotKubeCluster = "example-k8s-cluster"

// tbotCluster is a test cluster with a bot "example" (role access) and registered kube
// clusters, as the guide sets them up.
type tbotCluster struct {
	env   *testenv.Env
	admin *client.Client
	token string
	pin   string
}

func newTbotCluster(t testing.TB, kubeClusters ...*pb.KubeCluster) *tbotCluster {
	t.Helper()
	ctx := context.Background()
	env := testenv.New(t)
	admin := env.AdminClient()
	resp, err := admin.CreateBot(ctx, &pb.CreateBotRequest{Name: "example", Roles: []string{"access"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(kubeClusters) == 0 {
		kubeClusters = []*pb.KubeCluster{{Name: tbotKubeCluster, Labels: map[string]string{"env": "dev"}}}
	}
	// Stand in for a Kubernetes Service: the Auth Service issues certificates routed
	// to a kube cluster only once the cluster is registered.
	if _, err := admin.HeartbeatKubeClusters(ctx, &pb.HeartbeatKubeClustersRequest{Clusters: kubeClusters, TtlSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, func() bool {
		l, err := admin.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
		return err == nil && len(l.GetClusters()) == len(kubeClusters)
	})
	return &tbotCluster{env: env, admin: admin, token: resp.GetTokenId(), pin: resp.GetHostCaPin()}
}

// guideConfig is the guide's tbot.yaml (plus ca_pins), pointed at this cluster.
func (c *tbotCluster) guideConfig(t testing.TB, dir, storage, dest, pin string) string {
	t.Helper()
	yaml := fmt.Sprintf(`version: v2
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
    kubernetes_cluster: %s
    destination:
      type: directory
      path: %s
`, c.env.WebAddr, c.token, pin, storage, tbotKubeCluster, dest)
	path := filepath.Join(dir, "tbot-"+filepath.Base(storage)+".yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

type tbotRun struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// runTbot runs the built tbot binary.
func runTbot(t testing.TB, args ...string) tbotRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "tbot"), args...)
	cmd.Env = append(os.Environ(), config.TokenEnv+"=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := tbotRun{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running tbot: %v", err)
	}
	return r
}

func mustMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
	}
}

func readIdentity(t *testing.T, path string) *identityfile.Identity {
	t.Helper()
	id, err := identityfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if id.Identity == nil {
		t.Fatalf("%s carries no Keyport identity", path)
	}
	return id
}

// TestTbotOneshotGuide runs the guide's `tbot start -c tbot.yaml --oneshot` with the built
// binary: join, the kubernetes output's files, the exec plugin, a second run that renews
// from storage, a used token, and a copied storage directory that gets the instance locked.
func TestTbotOneshotGuide(t *testing.T) {
	c := newTbotCluster(t)
	dir := t.TempDir()
	storage, dest := filepath.Join(dir, "bot"), filepath.Join(dir, "machine-id")
	cfg := c.guideConfig(t, dir, storage, dest, c.pin)

	started := time.Now()
	r := runTbot(t, "start", "-c", cfg, "--oneshot")
	if r.code != 0 {
		t.Fatalf("oneshot: exit %d\n%s", r.code, r.stderr)
	}
	if fi, err := os.Stat(filepath.Join(dest, "kubeconfig.yaml")); err == nil {
		t.Logf("tbot start --oneshot (join + kubernetes output): kubeconfig.yaml written %s after process start; exited after %s",
			fi.ModTime().Sub(started).Round(time.Millisecond), r.took.Round(time.Millisecond))
	}

	mustMode(t, storage, 0o700)
	mustMode(t, filepath.Join(storage, "identity"), 0o600)
	mustMode(t, dest, 0o700)
	for _, f := range []string{"kubeconfig.yaml", "identity", "tlscert", "key", "keyport-host-ca.crt"} {
		mustMode(t, filepath.Join(dest, f), 0o600)
	}
	entries, _ := os.ReadDir(dest)
	if len(entries) != 5 {
		t.Errorf("destination holds %d entries, want the 5 files (no temporaries)", len(entries))
	}
	stored := readIdentity(t, filepath.Join(storage, "identity"))
	if !stored.Identity.Renewable || stored.Identity.Generation != 1 || stored.Identity.BotName != "example" {
		t.Fatalf("stored identity = %+v", stored.Identity)
	}

	// The output's identity is non-renewable and routed to the kube cluster, and verifies
	// against the cluster's user CA.
	out := readIdentity(t, filepath.Join(dest, "identity"))
	if out.Identity.Renewable || out.Identity.KubeCluster != tbotKubeCluster || out.Identity.Username != "bot-example" {
		t.Fatalf("output identity = %+v", out.Identity)
	}
	userCA, err := tlsca.ParseCertPEM(out.UserCAs[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(userCA)
	if _, err := tlsca.Verify(pool, out.Cert, time.Now()); err != nil {
		t.Fatalf("output certificate does not verify: %v", err)
	}
	if left := time.Until(out.Cert.NotAfter); left < 50*time.Minute || left > 61*time.Minute {
		t.Errorf("output certificate lives %s, want about credential_ttl (1h)", left)
	}
	tlscert, _ := os.ReadFile(filepath.Join(dest, "tlscert"))
	if !bytes.Equal(tlscert, out.CertPEM) {
		t.Error("tlscert differs from the identity file's certificate")
	}
	hostCA, _ := os.ReadFile(filepath.Join(dest, "keyport-host-ca.crt"))
	if ca, err := tlsca.ParseCertPEM(hostCA); err != nil || tlsca.Pin(ca) != c.pin {
		t.Errorf("keyport-host-ca.crt: pin mismatch (%v)", err)
	}

	// kubeconfig.yaml is what the guide's kubectl reads.
	kc, err := clientcmd.LoadFromFile(filepath.Join(dest, "kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	name := testenv.ClusterName + "-" + tbotKubeCluster
	if kc.CurrentContext != name || kc.Contexts[name] == nil || kc.Contexts[name].Cluster != name || kc.Contexts[name].AuthInfo != name {
		t.Fatalf("contexts = %v, current %q", kc.Contexts, kc.CurrentContext)
	}
	cl := kc.Clusters[name]
	if cl.Server != "https://"+c.env.WebAddr+"/v1/kube/"+tbotKubeCluster || cl.TLSServerName != "kube."+testenv.ClusterName || !bytes.Equal(cl.CertificateAuthorityData, hostCA) {
		t.Fatalf("cluster = %+v", cl)
	}
	ex := kc.AuthInfos[name].Exec
	if ex == nil || ex.Command != filepath.Join(binDir, "tbot") || strings.Join(ex.Args, " ") != "kube credentials --destination-dir="+dest || ex.APIVersion != "client.authentication.k8s.io/v1" {
		t.Fatalf("exec = %+v", ex)
	}

	// The exec plugin, run the way kubectl runs it.
	creds := runTbot(t, ex.Args...)
	if creds.code != 0 {
		t.Fatalf("kube credentials: exit %d: %s", creds.code, creds.stderr)
	}
	var ec clientauthv1.ExecCredential
	if err := json.Unmarshal([]byte(creds.stdout), &ec); err != nil {
		t.Fatalf("ExecCredential: %v\n%s", err, creds.stdout)
	}
	if ec.APIVersion != "client.authentication.k8s.io/v1" || ec.Kind != "ExecCredential" || ec.Status == nil ||
		ec.Status.ClientCertificateData != string(out.CertPEM) || ec.Status.ExpirationTimestamp == nil ||
		!ec.Status.ExpirationTimestamp.Time.Equal(out.Cert.NotAfter.Truncate(time.Second)) {
		t.Fatalf("ExecCredential = %+v", ec)
	}
	if k, err := tlsca.ParseKeyPEM([]byte(ec.Status.ClientKeyData)); err != nil || !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(out.Cert.PublicKey) {
		t.Fatalf("ExecCredential key does not match the certificate: %v", err)
	}
	var total time.Duration
	const calls = 10
	for range calls {
		total += runTbot(t, ex.Args...).took
	}
	t.Logf("tbot kube credentials: %s per call (process start to exit, mean of %d)", total/calls, calls)

	// Keep a copy of the storage as it is now (generation 1).
	copyDir := filepath.Join(dir, "bot-copy")
	copyTree(t, storage, copyDir)

	// Second run: the token is spent, so tbot renews from its storage instead.
	before, _ := os.ReadFile(filepath.Join(dest, "tlscert"))
	r = runTbot(t, "start", "-c", cfg, "--oneshot")
	if r.code != 0 {
		t.Fatalf("second oneshot: exit %d\n%s", r.code, r.stderr)
	}
	if g := readIdentity(t, filepath.Join(storage, "identity")).Identity.Generation; g != 2 {
		t.Fatalf("after renewal: generation %d, want 2", g)
	}
	if after, _ := os.ReadFile(filepath.Join(dest, "tlscert")); bytes.Equal(before, after) {
		t.Error("second oneshot did not rewrite the output")
	}

	// A fresh storage with the used token: exit 1 and one clear line.
	r = runTbot(t, "start", "-c", c.guideConfig(t, dir, filepath.Join(dir, "fresh"), filepath.Join(dir, "out-fresh"), c.pin), "--oneshot")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "ERROR: ") || !strings.Contains(r.stderr, "the join token has already been used") {
		t.Fatalf("used token: exit %d, stderr %q", r.code, r.stderr)
	}

	// The copied storage still holds generation 1: renewing from it proves a second holder
	// of the identity, and the Auth Service locks the instance.
	r = runTbot(t, "start", "-c", c.guideConfig(t, dir, copyDir, filepath.Join(dir, "out-copy"), c.pin), "--oneshot")
	if r.code != 1 || !strings.Contains(r.stderr, "has been locked") || !strings.Contains(r.stderr, "the identity was copied") {
		t.Fatalf("copied storage: exit %d, stderr %q", r.code, r.stderr)
	}
	t.Logf("copied storage refused: %s", strings.TrimSpace(r.stderr))
	// And the original holder is locked out with it.
	if r = runTbot(t, "start", "-c", cfg, "--oneshot"); r.code != 1 || !strings.Contains(r.stderr, "locked") {
		t.Fatalf("original after lock: exit %d, stderr %q", r.code, r.stderr)
	}
}

// copyTree copies a flat directory, keeping modes: what an attacker (or a careless
// backup restore) does with a bot's storage.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTbotCAPinMismatch: with a wrong pin tbot refuses the proxy during the handshake,
// before the token leaves; the token is still unused afterwards, so the right pin joins.
// Without pins, the test cluster's certificate (not publicly trusted) is refused too.
func TestTbotCAPinMismatch(t *testing.T) {
	c := newTbotCluster(t)
	dir := t.TempDir()
	wrong := "sha256:" + strings.Repeat("ab", 32)
	r := runTbot(t, "start", "-c", c.guideConfig(t, dir, filepath.Join(dir, "bot1"), filepath.Join(dir, "out1"), wrong), "--oneshot")
	if r.code != 1 || !strings.Contains(r.stderr, "before sending the join token") || !strings.Contains(r.stderr, "matches none of the configured ca_pins") {
		t.Fatalf("wrong pin: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "out1")); !os.IsNotExist(err) {
		t.Errorf("output directory created after a refused join: %v", err)
	}

	// No pins and no insecure: the proxy must verify against the system roots.
	r = runTbot(t, "start", "kubernetes", "--proxy-server="+c.env.WebAddr, "--token="+c.token, "--oneshot",
		"--storage=memory://", "--destination=file://"+filepath.Join(dir, "out2"), "--kubernetes-cluster="+tbotKubeCluster)
	if r.code != 1 || !strings.Contains(r.stderr, "does not verify against the system roots") {
		t.Fatalf("no pins: exit %d, stderr %q", r.code, r.stderr)
	}

	// The same token with the right pin, through the flags of `tbot start kubernetes`.
	r = runTbot(t, "start", "kubernetes", "--proxy-server="+c.env.WebAddr, "--join-method=token", "--token="+c.token, "--ca-pin="+c.pin,
		"--oneshot", "--storage=memory://", "--destination=file://"+filepath.Join(dir, "out3"), "--kubernetes-cluster="+tbotKubeCluster, "--disable-exec-plugin")
	if r.code != 0 {
		t.Fatalf("right pin: exit %d, stderr %q", r.code, r.stderr)
	}
	kc, err := clientcmd.LoadFromFile(filepath.Join(dir, "out3", "kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ai := kc.AuthInfos[kc.CurrentContext]
	if ai == nil || ai.Exec != nil || len(ai.ClientCertificateData) == 0 || len(ai.ClientKeyData) == 0 {
		t.Fatalf("--disable-exec-plugin: user = %+v", ai)
	}
}

// TestTbotInsecure: --insecure joins without pins, with a loud warning.
func TestTbotInsecure(t *testing.T) {
	c := newTbotCluster(t)
	dir := t.TempDir()
	r := runTbot(t, "start", "identity", "--proxy-server="+c.env.WebAddr, "--token="+c.token, "--insecure", "--oneshot",
		"--storage=memory://", "--destination="+filepath.Join(dir, "id"))
	if r.code != 0 || !strings.Contains(r.stderr, "INSECURE") {
		t.Fatalf("insecure: exit %d, stderr %q", r.code, r.stderr)
	}
	id := readIdentity(t, filepath.Join(dir, "id", "identity"))
	if id.Identity.KubeCluster != "" || id.Identity.Renewable {
		t.Fatalf("identity output = %+v", id.Identity)
	}
	// The identity output works for tctl --identity.
	clt, err := client.New(client.Config{Addr: c.env.WebAddr, Identity: id})
	if err != nil {
		t.Fatal(err)
	}
	defer clt.Close()
	who, err := clt.WhoAmI(context.Background(), &pb.WhoAmIRequest{})
	if err != nil || who.GetUsername() != "bot-example" {
		t.Fatalf("WhoAmI = %v, %v", who, err)
	}
}

// TestTbotSymlinkRefused: a symlink planted in the destination (or as the destination) is
// refused, nothing is written through it, and no file of the set is written.
func TestTbotSymlinkRefused(t *testing.T) {
	c := newTbotCluster(t)
	dir := t.TempDir()
	dest := filepath.Join(dir, "machine-id")
	if err := os.Mkdir(dest, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(dest, "kubeconfig.yaml")); err != nil {
		t.Fatal(err)
	}
	cfg := c.guideConfig(t, dir, filepath.Join(dir, "bot"), dest, c.pin)
	r := runTbot(t, "start", "-c", cfg, "--oneshot")
	if r.code != 1 || !strings.Contains(r.stderr, filepath.Join(dest, "kubeconfig.yaml")+" is a symlink; refusing to write credentials through it") {
		t.Fatalf("planted symlink: exit %d, stderr %q", r.code, r.stderr)
	}
	if data, _ := os.ReadFile(victim); string(data) != "precious\n" {
		t.Fatalf("victim file changed: %q", data)
	}
	entries, _ := os.ReadDir(dest)
	if len(entries) != 1 {
		t.Fatalf("destination holds %d entries after a refused write, want only the planted link", len(entries))
	}

	// The destination directory itself a symlink.
	real := filepath.Join(dir, "real")
	if err := os.Mkdir(real, 0o700); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(dir, "linked")
	if err := os.Symlink(real, linked); err != nil {
		t.Fatal(err)
	}
	// The bot joined above (its storage holds the identity), so this run renews.
	r = runTbot(t, "start", "-c", c.guideConfig(t, dir, filepath.Join(dir, "bot"), linked, c.pin), "--oneshot")
	if r.code != 1 || !strings.Contains(r.stderr, "destination directory "+linked+" is a symlink") {
		t.Fatalf("symlinked directory: exit %d, stderr %q", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(real); len(entries) != 0 {
		t.Fatalf("files written through a symlinked directory: %v", entries)
	}
}

// TestTbotDaemonRenews runs the daemon in process with a fake clock: advancing past the
// renewal interval renews the identity (generation 2) and rewrites the output by rename;
// a reload (SIGHUP) renews again; /readyz and /metrics report it; cancelling stops it.
// The output is kubernetes/v2 with two clusters chosen by name and by label.
func TestTbotDaemonRenews(t *testing.T) {
	c := newTbotCluster(t,
		&pb.KubeCluster{Name: "prod-a", Labels: map[string]string{"env": "prod"}},
		&pb.KubeCluster{Name: "prod-b", Labels: map[string]string{"env": "prod"}},
		&pb.KubeCluster{Name: "dev", Labels: map[string]string{"env": "dev"}},
	)
	dir := t.TempDir()
	dest := filepath.Join(dir, "kube")
	diag := freeport.Addr(t)
	cfg, err := config.Parse("tbot.yaml", []byte(fmt.Sprintf(`version: v2
proxy_server: %s
onboarding: {token: %s, ca_pins: ['%s']}
storage: {type: directory, path: %s}
credential_ttl: 1h
renewal_interval: 20m
diag_addr: %s
outputs:
  - type: kubernetes/v2
    selectors: [{name: prod-a}, {labels: {env: prod}}]
    destination: {type: directory, path: %s}
`, c.env.WebAddr, c.token, c.pin, filepath.Join(dir, "bot"), diag, dest)))
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Now())
	reload := make(chan struct{})
	bot := runTbotDaemon(t, tbot.Options{Config: cfg, Clock: clk, Jitter: func() float64 { return 0.5 }, Reload: reload, Executable: "/usr/local/bin/tbot"})

	outGen := func() uint64 {
		id, err := identityfile.Read(filepath.Join(dest, "identity"))
		if err != nil || id.Identity == nil {
			return 0
		}
		return id.Identity.Generation
	}
	waitUntil(t, 20*time.Second, func() bool { return outGen() == 1 })
	kc, err := clientcmd.LoadFromFile(filepath.Join(dest, "kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(kc.Contexts) != 2 || kc.Contexts[testenv.ClusterName+"-prod-a"] == nil || kc.Contexts[testenv.ClusterName+"-prod-b"] == nil || kc.CurrentContext != testenv.ClusterName+"-prod-a" {
		t.Fatalf("contexts = %v (current %q)", kc.Contexts, kc.CurrentContext)
	}
	if cl := kc.Clusters[testenv.ClusterName+"-prod-b"]; cl.Server != "https://"+c.env.WebAddr+"/v1/kube/prod-b" {
		t.Fatalf("prod-b server = %s", cl.Server)
	}
	waitUntil(t, 10*time.Second, func() bool { return readyz(diag) == http.StatusOK })
	// Hold the old kubeconfig open: after the renewal it must still read whole (the new
	// one was renamed over it, not written into it).
	old, err := os.Open(filepath.Join(dest, "kubeconfig.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	oldData, _ := os.ReadFile(filepath.Join(dest, "kubeconfig.yaml"))
	oldInfo, _ := old.Stat()

	// The identity service waits on the fake clock; moving it past the (jitter-free)
	// interval renews.
	clk.BlockUntil(1)
	clk.Advance(20*time.Minute + time.Second)
	waitUntil(t, 20*time.Second, func() bool { return outGen() == 2 })
	if g := bot.Identity().Generation(); g != 2 {
		t.Fatalf("bot identity generation %d, want 2", g)
	}
	// Files are renamed into place one after another; wait for the last of the set.
	waitUntil(t, 10*time.Second, func() bool {
		fi, err := os.Stat(filepath.Join(dest, "kubeconfig.yaml"))
		return err == nil && !os.SameFile(fi, oldInfo)
	})
	if data, _ := io.ReadAll(old); !bytes.Equal(data, oldData) {
		t.Fatal("the old kubeconfig.yaml changed under an open reader")
	}
	if stored := readIdentity(t, filepath.Join(dir, "bot", "identity")); stored.Identity.Generation != 2 {
		t.Fatalf("storage generation %d, want 2", stored.Identity.Generation)
	}
	entries, _ := os.ReadDir(dest)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}

	// SIGHUP's path: renew now, without the clock moving.
	reload <- struct{}{}
	waitUntil(t, 20*time.Second, func() bool { return outGen() == 3 })

	// A failing renewal is retried with backoff, and the outputs keep their files. Lock
	// the instance and wait until the lock has reached the server's cache.
	cur := bot.Identity().Identity
	if _, err := c.admin.CreateLock(context.Background(), &pb.CreateLockRequest{BotInstanceId: cur.Identity.BotInstanceID, Message: "test lock"}); err != nil {
		t.Fatal(err)
	}
	botClt := c.env.Client(c.env.WebAddr, cur)
	waitUntil(t, 10*time.Second, func() bool {
		_, err := botClt.ListKubeClusters(context.Background(), &pb.ListKubeClustersRequest{})
		return err != nil
	})
	// Two timers wait: the interval timer the reload pre-empted, and the new one.
	clk.BlockUntil(2)
	clk.Advance(20*time.Minute + time.Second)
	failures := func() string {
		for _, l := range strings.Split(httpGet(t, "http://"+diag+"/metrics"), "\n") {
			if strings.HasPrefix(l, "keyport_tbot_identity_renewal_failures_total ") {
				return strings.TrimPrefix(l, "keyport_tbot_identity_renewal_failures_total ")
			}
		}
		return ""
	}
	waitUntil(t, 10*time.Second, func() bool { return failures() == "1" })
	clk.BlockUntil(1) // the first backoff: one second
	clk.Advance(time.Second)
	waitUntil(t, 10*time.Second, func() bool { return failures() == "2" })
	if g := outGen(); g != 3 {
		t.Fatalf("output generation %d after failed renewals, want 3 (old files kept)", g)
	}
	if body := httpGet(t, "http://"+diag+"/readyz"); readyz(diag) != http.StatusServiceUnavailable ||
		!strings.Contains(body, `"identity":{"status":"unhealthy"`) || !strings.Contains(body, "is locked: test lock") {
		t.Errorf("/readyz does not report the failing renewal: %s", body)
	}

	metrics := httpGet(t, "http://"+diag+"/metrics")
	for _, want := range []string{"keyport_tbot_identity_renewals_total 2", "keyport_tbot_identity_renewal_failures_total 2", "keyport_tbot_joins_total 1", "keyport_tbot_identity_expiry_seconds", `keyport_tbot_output_expiry_seconds{output="kubernetes/v2 file://` + dest + `"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(httpGet(t, "http://"+diag+"/readyz"), `"kubernetes/v2 file://`+dest+`":{"status":"healthy"`) {
		t.Errorf("/readyz does not report the output")
	}
}

// TestTbotSIGTERM: the daemon binary renews on SIGHUP and stops cleanly (exit 0) on SIGTERM.
func TestTbotSIGTERM(t *testing.T) {
	c := newTbotCluster(t)
	dir := t.TempDir()
	storage, dest := filepath.Join(dir, "bot"), filepath.Join(dir, "machine-id")
	cmd := exec.Command(filepath.Join(binDir, "tbot"), "start", "-c", c.guideConfig(t, dir, storage, dest, c.pin))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	gen := func() uint64 {
		id, err := identityfile.Read(filepath.Join(storage, "identity"))
		if err != nil || id.Identity == nil {
			return 0
		}
		return id.Identity.Generation
	}
	waitUntil(t, 20*time.Second, func() bool { _, err := os.Stat(filepath.Join(dest, "kubeconfig.yaml")); return err == nil })
	_ = cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 20*time.Second, func() bool { return gen() == 2 })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("tbot exited with %v after SIGTERM; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("tbot did not stop within 10s of SIGTERM")
	}
}

func readyz(addr string) int {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return string(data)
}

// TestTbotArgoCD runs a kubernetes/argo-cd output once, in process, with the cluster
// Secrets captured in memory: one Secret per selected cluster, labelled for Argo CD, whose
// config holds a certificate routed to that cluster alone.
func TestTbotArgoCD(t *testing.T) {
	c := newTbotCluster(t,
		&pb.KubeCluster{Name: "prod-a", Labels: map[string]string{"env": "prod"}},
		&pb.KubeCluster{Name: "dev", Labels: map[string]string{"env": "dev"}},
	)
	cfg, err := config.Parse("tbot.yaml", []byte(fmt.Sprintf(`version: v2
proxy_server: %s
onboarding: {token: %s, ca_pins: ['%s']}
storage: {type: memory}
oneshot: true
outputs:
  - type: kubernetes/argo-cd
    selectors: [{labels: {env: prod}}]
    secret_namespace: argocd
    project: default
`, c.env.WebAddr, c.token, c.pin)))
	if err != nil {
		t.Fatal(err)
	}
	type written struct {
		name, namespace string
		labels          map[string]string
		dest            *destination.Memory
	}
	var secrets []written
	bot, err := tbot.New(tbot.Options{Config: cfg, ArgoCDSecret: func(name, ns string, labels map[string]string) destination.Destination {
		m := destination.NewMemory()
		secrets = append(secrets, written{name, ns, labels, m})
		return m
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bot.OneShot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(secrets) != 1 {
		t.Fatalf("%d secrets written, want 1 (prod-a)", len(secrets))
	}
	s := secrets[0]
	files := s.dest.Files()
	if s.namespace != "argocd" || s.labels["argocd.argoproj.io/secret-type"] != "cluster" || !strings.HasPrefix(s.name, "keyport.argocd-cluster-") {
		t.Fatalf("secret %s/%s labels %v", s.namespace, s.name, s.labels)
	}
	if string(files["name"]) != testenv.ClusterName+"-prod-a" || string(files["server"]) != "https://"+c.env.WebAddr+"/v1/kube/prod-a" || string(files["project"]) != "default" {
		t.Fatalf("secret data: name %q server %q project %q", files["name"], files["server"], files["project"])
	}
	var argo struct {
		TLSClientConfig struct {
			ServerName                string
			CAData, CertData, KeyData []byte
		} `json:"tlsClientConfig"`
	}
	if err := json.Unmarshal(files["config"], &argo); err != nil {
		t.Fatal(err)
	}
	cert, err := tlsca.ParseCertPEM(argo.TLSClientConfig.CertData)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := tlsca.FromCertificate(cert)
	if id == nil || id.KubeCluster != "prod-a" || argo.TLSClientConfig.ServerName != "kube."+testenv.ClusterName || len(argo.TLSClientConfig.KeyData) == 0 || len(argo.TLSClientConfig.CAData) == 0 {
		t.Fatalf("argo config: %+v, identity %+v", argo.TLSClientConfig.ServerName, id)
	}
}

// runTbotDaemon runs tbot in this process until the test ends, and fails the test if it
// does not stop cleanly within 10 s then.
func runTbotDaemon(t *testing.T, opts tbot.Options) *tbot.Bot {
	t.Helper()
	b, err := tbot.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("daemon did not stop in 10s")
		}
	})
	return b
}
