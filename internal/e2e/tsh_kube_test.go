package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/testenv/tools"
	"github.com/keyport/keyport/internal/tlsca"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files under testdata/")

// tshUser is a person with a HOME of their own, running the built tsh.
type tshUser struct {
	t    *testing.T
	home string
	env  []string
}

func newTshUser(t *testing.T, kubeconfig string) *tshUser {
	home := t.TempDir()
	return &tshUser{t: t, home: home, env: []string{
		"HOME=" + home, "KUBECONFIG=" + kubeconfig,
		"PATH=" + binDir + string(os.PathListSeparator) + tools.BinDir() + string(os.PathListSeparator) + os.Getenv("PATH"),
	}}
}

// run runs a program of binDir (or kubectl) as this user with stdin.
func (u *tshUser) run(stdin, prog string, args ...string) (string, string, error) {
	u.t.Helper()
	path := filepath.Join(binDir, prog)
	if prog == "kubectl" {
		path = tools.Path(u.t, "kubectl")
	}
	cmd := exec.Command(path, args...)
	cmd.Env = u.env
	cmd.Dir = u.home
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (u *tshUser) must(stdin, prog string, args ...string) string {
	u.t.Helper()
	out, errOut, err := u.run(stdin, prog, args...)
	if err != nil {
		u.t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", prog, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// TestTshKubeLogin: a user who set a password on the invite page logs in with tsh, adds
// the guide's cluster to a kubeconfig that already has other contexts, and runs kubectl
// against the real API server through Keyport with the exec plugin. The merged file is
// compared with a golden file, and the other contexts must come out exactly as they went
// in, after login and after logout.
func TestTshKubeLogin(t *testing.T) {
	s := newKubeSetup(t)
	ctx := context.Background()
	resp, err := s.admin.CreateUser(ctx, &pb.CreateUserRequest{Name: "kim", Roles: []string{"example-role"}})
	if err != nil {
		t.Fatal(err)
	}
	const password = "kim's password 1"
	enrolled, err := completeInvite(ctx, resp.GetInviteUrl(), password)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile("testdata/tsh/kubeconfig-before.yaml")
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(kcPath, before, 0o600); err != nil {
		t.Fatal(err)
	}
	u := newTshUser(t, kcPath)

	code, _, err := nextTOTP(enrolled.OTPSecret, enrolled.Step)
	if err != nil {
		t.Fatal(err)
	}
	out := u.must("y\n"+password+"\n"+code+"\n", "tsh", "login", "--proxy="+s.env.WebAddr, "--user=kim")
	if !strings.Contains(out, "Logged in as:       kim") {
		t.Fatalf("tsh login:\n%s", out)
	}
	out = u.must("", "tsh", "kube", "ls")
	if !strings.Contains(out, "example-k8s-cluster  env=dev") || strings.Contains(out, "*") {
		t.Errorf("tsh kube ls:\n%s", out)
	}
	out = u.must("", "tsh", "kube", "login", guideCluster)
	if !strings.Contains(out, `Logged into Kubernetes cluster "example-k8s-cluster"`) {
		t.Errorf("tsh kube login:\n%s", out)
	}

	// The merged kubeconfig, with this run's addresses replaced.
	merged, err := os.ReadFile(kcPath)
	if err != nil {
		t.Fatal(err)
	}
	hostCA := base64.StdEncoding.EncodeToString(s.env.Process.Auth.HostCA().CertPEM)
	normalized := strings.NewReplacer(filepath.Join(binDir, "tsh"), "/path/to/tsh", s.env.WebAddr, "PROXY_ADDR", hostCA, "HOST_CA_DATA").Replace(string(merged))
	golden := "testdata/tsh/kubeconfig-after-login.golden.yaml"
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(normalized), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if normalized != string(want) {
		t.Errorf("merged kubeconfig differs from %s (run with -update to accept):\n%s", golden, normalized)
	}
	checkOthersUntouched(t, before, merged)

	// kubectl through Keyport, authenticated by `tsh kube credentials`.
	out = u.must("", "kubectl", "get", "pods", "-A")
	for _, w := range []string{"default", "web-0", "kube-system", "dns-0", "Running"} {
		if !strings.Contains(out, w) {
			t.Errorf("kubectl get pods -A lacks %q:\n%s", w, out)
		}
	}
	if out = u.must("", "tsh", "kube", "ls"); !regexp.MustCompile(`(?m)^example-k8s-cluster +env=dev +\*$`).MatchString(out) {
		t.Errorf("tsh kube ls does not mark the current context:\n%s", out)
	}

	// The plugin's answer is an ExecCredential with a certificate routed to the cluster,
	// cached until it nears expiry.
	credsFile := filepath.Join(u.home, ".tsh", "keys", s.env.WebAddr, "kim", "kube", guideCluster, "identity")
	st1, err := os.Stat(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	out = u.must("", "tsh", "kube", "credentials", "--kube-cluster="+guideCluster)
	var ec struct {
		APIVersion, Kind string
		Status           struct{ ClientCertificateData, ClientKeyData, ExpirationTimestamp string }
	}
	if err := json.Unmarshal([]byte(out), &ec); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if ec.APIVersion != "client.authentication.k8s.io/v1" || ec.Kind != "ExecCredential" || ec.Status.ExpirationTimestamp == "" {
		t.Errorf("ExecCredential %+v", ec)
	}
	cert, err := tlsca.ParseCertPEM([]byte(ec.Status.ClientCertificateData))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := tlsca.FromCertificate(cert); err != nil || id.Username != "kim" || id.KubeCluster != guideCluster {
		t.Errorf("kube certificate identity %+v, %v", id, err)
	}
	if st2, err := os.Stat(credsFile); err != nil || !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("the cached kube certificate was replaced while still good")
	}
	// A certificate routed to one cluster cannot mint others, and a login renewal never
	// outlives the login.
	kubeID, err := identityfile.Read(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	loginID, err := identityfile.Read(filepath.Join(u.home, ".tsh", "keys", s.env.WebAddr, "kim", "identity"))
	if err != nil {
		t.Fatal(err)
	}
	if kubeID.Cert.NotAfter.After(loginID.Cert.NotAfter.Add(time.Second)) {
		t.Errorf("kube certificate expires at %s, after the login (%s)", kubeID.Cert.NotAfter, loginID.Cert.NotAfter)
	}
	der, _ := x509.MarshalPKIXPublicKey(kubeID.Key.Public())
	_, err = s.env.Client(s.env.WebAddr, kubeID).SignUser(ctx, &pb.SignUserRequest{User: "kim", PublicKeyDer: der, TtlSeconds: 3600})
	if !errs.IsAccessDenied(err) || !strings.Contains(err.Error(), "routed to kube cluster") {
		t.Errorf("SignUser with a kube-routed certificate: %v", err)
	}
	certs, err := s.env.Client(s.env.WebAddr, loginID).SignUser(ctx, &pb.SignUserRequest{User: "kim", PublicKeyDer: der, TtlSeconds: 30 * 3600})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := tlsca.ParseCertPEM(certs.GetTlsCertPem()); err != nil || c.NotAfter.After(loginID.Cert.NotAfter.Add(time.Second)) {
		t.Errorf("a renewal outlives the login: %v %v", c.NotAfter, err)
	}
	if _, errOut, err := u.run("", "tsh", "kube", "login", "no-such-cluster"); err == nil || !strings.Contains(errOut, `kube cluster "no-such-cluster" is not registered`) {
		t.Errorf("kube login of an unknown cluster: %v %s", err, errOut)
	}

	// Logout takes tsh's context away and leaves the others.
	u.must("", "tsh", "logout")
	after, err := os.ReadFile(kcPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(after)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Contexts["keyport.example.com-example-k8s-cluster"]; ok || len(cfg.Contexts) != 2 {
		t.Errorf("contexts after logout: %v", cfg.Contexts)
	}
	checkOthersUntouched(t, before, after)
	if _, errOut, err := u.run("", "kubectl", "--context=keyport.example.com-example-k8s-cluster", "get", "pods"); err == nil {
		t.Errorf("kubectl works after logout: %s", errOut)
	}
}

// checkOthersUntouched fails unless every cluster, user and context of before is in
// after, unchanged.
func checkOthersUntouched(t *testing.T, before, after []byte) {
	t.Helper()
	b, err := clientcmd.Load(before)
	if err != nil {
		t.Fatal(err)
	}
	a, err := clientcmd.Load(after)
	if err != nil {
		t.Fatal(err)
	}
	strip := func(c *clientcmdapi.Config) {
		for _, x := range c.Clusters {
			x.LocationOfOrigin = ""
		}
		for _, x := range c.AuthInfos {
			x.LocationOfOrigin = ""
		}
		for _, x := range c.Contexts {
			x.LocationOfOrigin = ""
		}
	}
	strip(a)
	strip(b)
	for name, v := range b.Clusters {
		if !reflect.DeepEqual(a.Clusters[name], v) {
			t.Errorf("cluster %q changed: %+v -> %+v", name, v, a.Clusters[name])
		}
	}
	for name, v := range b.AuthInfos {
		if !reflect.DeepEqual(a.AuthInfos[name], v) {
			t.Errorf("user %q changed: %+v -> %+v", name, v, a.AuthInfos[name])
		}
	}
	for name, v := range b.Contexts {
		if !reflect.DeepEqual(a.Contexts[name], v) {
			t.Errorf("context %q changed: %+v -> %+v", name, v, a.Contexts[name])
		}
	}
}
