package tbot

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tbot/kubecreds"
	"github.com/keyport/keyport/internal/tlsca"
)

func run(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, common.IO{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(k string) string { return env[k] }})
	return out.String(), errb.String(), code
}

func TestUsageAndErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "tbot.yaml")
	if err := os.WriteFile(bad, []byte("version: v2\nproxy_server: p.example.com:3080\noutputs:\n  - type: kubernetes\n    destination: {type: memory}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"version", []string{"version"}, 0, ""},
		{"start without config", []string{"start"}, 2, "ERROR: give -c tbot.yaml"},
		{"unknown flag", []string{"start", "--frobnicate"}, 2, "ERROR: unknown flag: --frobnicate"},
		{"unknown output", []string{"start", "ssh"}, 2, "ERROR: "},
		{"kubernetes without proxy", []string{"start", "kubernetes", "--destination=/tmp/x", "--kubernetes-cluster=c"}, 2, "ERROR: --proxy-server (or --auth-server) is required"},
		{"kubernetes without cluster", []string{"start", "kubernetes", "--proxy-server=p.example.com:3080", "--destination=/tmp/x"}, 2, "ERROR: --kubernetes-cluster is required"},
		{"v2 without selectors", []string{"start", "kubernetes/v2", "--proxy-server=p.example.com:3080", "--destination=/tmp/x"}, 2, "ERROR: give at least one --name-selector or --label-selector"},
		{"bad destination", []string{"start", "kubernetes", "--proxy-server=p.example.com:3080", "--destination=s3://b", "--kubernetes-cluster=c"}, 2, `ERROR: --destination "s3://b": unknown scheme "s3"`},
		{"bad pin flag", []string{"start", "kubernetes", "--proxy-server=p.example.com:3080", "--destination=/tmp/x", "--kubernetes-cluster=c", "--ca-pin=md5:x"}, 1, "ERROR: invalid flags: onboarding.ca_pins[0]: want sha256:"},
		{"bad config file", []string{"start", "-c", bad}, 1, "ERROR: tbot.yaml:4: outputs[0].kubernetes_cluster: required for a kubernetes output"},
		{"missing config file", []string{"start", "-c", filepath.Join(dir, "nope.yaml")}, 1, "ERROR: reading config: open "},
		{"credentials without dir", []string{"kube", "credentials"}, 2, "ERROR: --destination-dir is required"},
		{"credentials from empty dir", []string{"kube", "credentials", "--destination-dir=" + dir}, 1, "ERROR: " + filepath.Join(dir, "identity") + " does not exist: is tbot running"},
		{"github join outside GitHub Actions", []string{"start", "kubernetes", "--proxy-server=127.0.0.1:1", "--join-method=github", "--token=gh", "--storage=memory://", "--destination=memory://", "--kubernetes-cluster=c", "--oneshot"}, 1, "ERROR: join method github: $ACTIONS_ID_TOKEN_REQUEST_URL and $ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set"},
		{"gitlab join without its variable", []string{"start", "kubernetes", "--proxy-server=127.0.0.1:1", "--join-method=gitlab", "--token=gl", "--storage=memory://", "--destination=memory://", "--kubernetes-cluster=c", "--oneshot"}, 1, "ERROR: join method gitlab: $TBOT_GITLAB_JWT is empty"},
		{"oidc join with a file that is no token", []string{"start", "kubernetes", "--proxy-server=127.0.0.1:1", "--join-method=oidc", "--token=ci", "--oidc-token-file=/etc/os-release", "--storage=memory://", "--destination=memory://", "--kubernetes-cluster=c", "--oneshot"}, 1, "ERROR: join method oidc: /etc/os-release does not hold an ID token"},
		{"kubernetes join without token name", []string{"start", "kubernetes", "--proxy-server=127.0.0.1:1", "--join-method=kubernetes", "--storage=memory://", "--destination=memory://", "--kubernetes-cluster=c", "--oneshot"}, 1, "ERROR: join method kubernetes: set onboarding.token"},
		{"no token", []string{"start", "kubernetes", "--proxy-server=127.0.0.1:1", "--storage=memory://", "--destination=memory://", "--kubernetes-cluster=c", "--oneshot"}, 1, "ERROR: no join token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, nil, tt.args...)
			if code != tt.code || !strings.HasPrefix(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d, stderr starting %q", code, errOut, tt.code, tt.want)
			}
			if tt.code != 0 && strings.Count(strings.TrimSpace(errOut), "ERROR") != 1 {
				t.Fatalf("want one ERROR line, got %q", errOut)
			}
			if tt.name == "version" && out != "tbot v0.1.0\n" {
				t.Fatalf("version = %q", out)
			}
		})
	}
}

func TestConfigure(t *testing.T) {
	out, errOut, code := run(t, nil, "configure", "kubernetes", "--proxy-server=keyport.example.com:3080", "--join-method=token",
		"--token=/var/lib/keyport/token", "--destination=file:///opt/machine-id", "--kubernetes-cluster=example-k8s-cluster",
		"--ca-pin=sha256:"+strings.Repeat("0a", 32), "--storage=memory://")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	c, err := config.Parse("tbot.yaml", []byte(out))
	if err != nil {
		t.Fatalf("configure printed an invalid config: %v\n%s", err, out)
	}
	o := c.Outputs[0]
	if c.ProxyServer != "keyport.example.com:3080" || c.Onboarding.Token != "/var/lib/keyport/token" || c.Storage.Type != config.DestMemory ||
		o.Type != config.OutputKubernetes || o.KubernetesCluster != "example-k8s-cluster" || o.Destination.Path != "/opt/machine-id" {
		t.Fatalf("config = %+v", c)
	}

	out, errOut, code = run(t, nil, "configure", "kubernetes/v2", "--proxy-server=keyport.example.com:3080", "--destination=kubernetes-secret:///keyport-kube",
		"--name-selector=prod-a", "--label-selector=env=prod,region=eu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	c, err = config.Parse("tbot.yaml", []byte(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	o = c.Outputs[0]
	if len(o.Selectors) != 2 || o.Selectors[0].Name != "prod-a" || o.Selectors[1].Labels["region"] != "eu" || o.Destination.Type != config.DestKubeSecret || o.Destination.Name != "keyport-kube" {
		t.Fatalf("v2 output = %+v", o)
	}
}

func TestKubeCredentials(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	ca, err := tlsca.NewCA("keyport.example.com", "user", tlsca.AlgECDSAP256, clock.Rand, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	certPEM, err := ca.Issue(clock.Rand, now, tlsca.CertRequest{PublicKey: key.Public(), NotAfter: now.Add(30 * time.Minute),
		Identity: tlsca.Identity{Username: "bot-example", BotName: "example", KubeCluster: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := tlsca.ParseCertPEM(certPEM)
	if err := identityfile.Write(filepath.Join(dir, "identity"), &identityfile.Identity{Key: key, CertPEM: certPEM, Cert: cert, HostCAs: [][]byte{ca.CertPEM}}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, nil, "kube", "credentials", "--destination-dir="+dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var ec kubecreds.ExecCredential
	if err := json.Unmarshal([]byte(out), &ec); err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := tlsca.EncodeKeyPEM(key)
	if ec.APIVersion != kubecreds.APIVersion || ec.Kind != "ExecCredential" || ec.Status.ClientCertificateData != string(certPEM) ||
		ec.Status.ClientKeyData != string(keyPEM) || ec.Status.ExpirationTimestamp != cert.NotAfter.UTC().Format(time.RFC3339) {
		t.Fatalf("ExecCredential = %+v", ec)
	}

	// Expired credentials are an error that says so, not a certificate kubectl would send.
	if _, err := kubecreds.FromDir(dir, now.Add(time.Hour)); err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Fatalf("expired: %v", err)
	}
}

// TestTokenFromEnv: with no --token, $KEYPORT_BOT_TOKEN supplies it (the run then gets as
// far as the network, where nothing listens).
func TestTokenFromEnv(t *testing.T) {
	_, errOut, code := run(t, map[string]string{config.TokenEnv: "secret-from-env"}, "start", "kubernetes", "--proxy-server=127.0.0.1:1", "--insecure",
		"--storage=memory://", "--destination=memory://", "--kubernetes-cluster=c", "--oneshot")
	if code != 1 || strings.Contains(errOut, "no join token") || !strings.Contains(errOut, "cannot reach") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if strings.Contains(errOut, "secret-from-env") {
		t.Fatal("the token appears in the error")
	}
}

// TestKubernetesTokenPathEnv: $KUBERNETES_TOKEN_PATH (as in Teleport) says where the pod's
// service account token is; tbot reads it before it contacts anything.
func TestKubernetesTokenPathEnv(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "join-sa-token")
	_, errOut, code := run(t, map[string]string{"KUBERNETES_TOKEN_PATH": missing}, "start", "kubernetes", "--proxy-server=127.0.0.1:1", "--insecure",
		"--join-method=kubernetes", "--token=k8s-join", "--storage=memory://", "--destination=memory://", "--kubernetes-cluster=c", "--oneshot")
	if code != 1 || !strings.Contains(errOut, "reading the pod's service account token: open "+missing) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
