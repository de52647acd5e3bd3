package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/testenv/dexenv"
	"github.com/keyport/keyport/internal/testenv/proc"
	"github.com/keyport/keyport/internal/testenv/tools"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// bgProc is a built program running in the background whose standard error the test
// watches (tsh and tctl print the sign-in URL there).
type bgProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	stdout bytes.Buffer
	done   chan error
}

func startBg(t *testing.T, env []string, dir, stdin, prog string, args ...string) *bgProc {
	t.Helper()
	p := &bgProc{cmd: exec.Command(filepath.Join(binDir, prog), args...), done: make(chan error, 1)}
	p.cmd.Env, p.cmd.Dir = env, dir
	p.cmd.Stdin = strings.NewReader(stdin)
	p.cmd.Stdout, p.cmd.Stderr = lockedBuf{p, &p.stdout}, lockedBuf{p, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	return p
}

type lockedBuf struct {
	p *bgProc
	b *bytes.Buffer
}

func (l lockedBuf) Write(b []byte) (int, error) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	return l.b.Write(b)
}

func (p *bgProc) output() (string, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String(), p.stderr.String()
}

var signInURL = regexp.MustCompile(`(?m)^  (http://\S+)$`)

// url waits for the sign-in URL the program prints.
func (p *bgProc) url(t *testing.T) string {
	t.Helper()
	var u string
	waitUntil(t, 30*time.Second, func() bool {
		_, errOut := p.output()
		if m := signInURL.FindStringSubmatch(errOut); m != nil {
			u = m[1]
			return true
		}
		return false
	})
	return u
}

func (p *bgProc) wait(t *testing.T) (string, string, error) {
	t.Helper()
	select {
	case err := <-p.done:
		out, errOut := p.output()
		return out, errOut, err
	case <-time.After(60 * time.Second):
		out, errOut := p.output()
		t.Fatalf("%s did not finish:\n%s%s", p.cmd.Args[0], out, errOut)
		return "", "", nil
	}
}

// dexSignIn signs in at Dex's password form, and returns the proxy callback URLs the
// browser went through.
func dexSignIn(t *testing.T, ctx context.Context, authURL, email, password string) []string {
	t.Helper()
	var mu sync.Mutex
	var callbacks []string
	// The listener lives as long as the tab: a context derived just for it would close the
	// tab when cancelled, if it were the first to use the tab.
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && strings.Contains(e.Request.URL, "/v1/webapi/oidc/callback") {
			mu.Lock()
			callbacks = append(callbacks, e.Request.URL)
			mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("login"))); err != nil {
		t.Fatalf("Dex's login form: %v", err)
	}
	screenshot(t, ctx, "dex-login.png")
	sctx, cancelStep := context.WithTimeout(ctx, 45*time.Second)
	defer cancelStep()
	if err := chromedp.Do(sctx,
		chromedp.SendKeys(chromedp.ID("login"), email),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit-login")),
		chromedp.WaitVisible(chromedp.ID("title")),
	); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		loc, _ := chromedp.Run(dctx, chromedp.Location())
		body, _ := chromedp.Run(dctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("signing in at Dex: %v; the browser is at %s:\n%s", err, loc, body)
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]string(nil), callbacks...)
}

// TestSSOLoginDex: a person signs in with tsh login --auth=dex through a real Dex and a
// real headless browser; the roles and traits mapped from Dex's claims are in the
// certificate, and kubectl works through Keyport with the Kubernetes groups taken from the
// provider's groups claim. tctl sso test shows the mapping and issues nothing. Refused,
// each with its own message: a user whose claims map to no role, a callback with a wrong
// state, and a replayed callback.
func TestSSOLoginDex(t *testing.T) {
	s := newKubeSetup(t)
	ctx := context.Background()
	callback := "https://" + s.env.WebAddr + "/v1/webapi/oidc/callback"
	dex := dexenv.Start(t, dexenv.Options{
		Clients: []dexenv.Client{{ID: "keyport", Secret: "keyport-dex-secret", RedirectURIs: []string{callback}}},
		Users: []dexenv.User{
			{Email: "alice@example.com", Username: "alice", Password: "alice's dex password", Groups: []string{"platform", "developers"}},
			{Email: "bob@example.com", Username: "bob", Password: "bob's dex password", Groups: []string{"interns"}},
		},
	})
	// The Kubernetes groups come from the provider: group platform may view.
	if _, err := s.kube.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "platform-view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "platform"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createResource(t, s.admin, types.NewRole("sso-kube", types.V7, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels: types.Labels{"*": {"*"}}, KubernetesGroups: []string{"{{external.groups}}"},
		KubernetesResources: []types.KubernetesResource{{Kind: "*", Namespace: "*", Name: "*", Verbs: []string{"*"}}}}}))
	createResource(t, s.admin, &types.OIDCConnector{Header: types.Header{Kind: types.KindOIDC, Version: types.V3, Metadata: types.Metadata{Name: "dex"}},
		Spec: types.OIDCConnectorSpec{IssuerURL: dex.Issuer, ClientID: "keyport", ClientSecret: "keyport-dex-secret", RedirectURL: callback,
			Scope: []string{"email", "groups", "profile"}, ClaimsToRoles: []types.ClaimMapping{{Claim: "groups", Value: "platform", Roles: []string{"sso-kube"}}}}})
	// tctl get shows the connector without its secret.
	if got, err := s.admin.GetResource(ctx, &pb.GetResourceRequest{Kind: types.KindOIDC, Name: "dex"}); err != nil || bytes.Contains(got.GetJson(), []byte("keyport-dex-secret")) {
		t.Errorf("the connector as read back: %v %s", err, got.GetJson())
	}
	br := browser(t)

	// tsh login --auth=dex.
	u := newTshUser(t, filepath.Join(t.TempDir(), "kubeconfig"))
	login := startBg(t, u.env, u.home, "y\n", "tsh", "login", "--proxy="+s.env.WebAddr, "--auth=dex", "--browser=none")
	t.Cleanup(func() {
		if t.Failed() {
			out, errOut := login.output()
			t.Logf("tsh login output:\n%s%s\ndex log:\n%s", out, errOut, proc.TailFile(dex.LogPath, 30))
		}
	})
	callbacks := dexSignIn(t, br, login.url(t), "alice@example.com", "alice's dex password")
	title, err := chromedp.Run(br, chromedp.Text(chromedp.ID("title")))
	if err != nil || title != "Signed in" {
		t.Errorf("the page after signing in: %q, %v", title, err)
	}
	if msg, _ := chromedp.Run(br, chromedp.Text(chromedp.ID("message"))); !strings.Contains(msg, "alice@example.com") || !strings.Contains(msg, "sso-kube") {
		t.Errorf("the page's message: %q", msg)
	}
	screenshot(t, br, "sso-signed-in.png")
	out, errOut, err := login.wait(t)
	if err != nil || !strings.Contains(out, "Logged in as:       alice@example.com") || !strings.Contains(out, "Roles:              sso-kube") {
		t.Fatalf("tsh login --auth=dex: %v\n%s%s", err, out, errOut)
	}
	if len(callbacks) != 1 {
		t.Fatalf("callback URLs seen: %v", callbacks)
	}
	// The temporary user, created by the connector, expiring with the certificate.
	ur, err := s.admin.GetResource(ctx, &pb.GetResourceRequest{Kind: types.KindUser, Name: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	var user types.User
	if err := json.Unmarshal(ur.GetJson(), &user); err != nil {
		t.Fatal(err)
	}
	if user.Spec.CreatedBy == nil || user.Spec.CreatedBy.Connector.ID != "dex" || user.Metadata.Expires == nil ||
		strings.Join(user.Spec.Traits["groups"], ",") != "platform,developers" {
		t.Errorf("the SSO user: %+v", user)
	}
	// kubectl through Keyport, as groups platform and developers.
	u.must("", "tsh", "kube", "login", guideCluster)
	if out := u.must("", "kubectl", "get", "pods", "-A"); !strings.Contains(out, "web-0") {
		t.Errorf("kubectl get pods -A:\n%s", out)
	}
	if out, errOut, err := u.run("", "kubectl", "delete", "pod", "web-0"); err == nil || !strings.Contains(errOut, "forbidden") {
		t.Errorf("view only: delete pod: %v\n%s%s", err, out, errOut)
	}

	// A replayed callback, and a callback with a state no login started.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for name, url := range map[string]string{"replayed": callbacks[0], "wrong state": callback + "?state=not-a-state&code=whatever"} {
		resp, err := insecure.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Unknown, expired or already used SSO login state") {
			t.Errorf("%s callback: %s\n%s", name, resp.Status, body)
		}
	}
	// The used code under a new login's state: Dex refuses it (used once, and the new
	// login's PKCE verifier is not the one it was issued for), and the client is told.
	oldCode := regexp.MustCompile(`[?&]code=([^&]+)`).FindStringSubmatch(callbacks[0])[1]
	secret := []byte("replay test secret")
	sum := sha256.Sum256(secret)
	start, err := s.admin.CreateSSOAuthRequest(ctx, &pb.CreateSSOAuthRequestRequest{Connector: "dex", PublicKeyDer: publicKeyDER(t),
		ClientRedirectUrl: "http://127.0.0.1:9/callback", SecretSha256: sum[:]})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := insecure.Get(callback + "?state=" + start.GetRequestId() + "&code=" + oldCode)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://127.0.0.1:9/callback?status=error" {
		t.Errorf("a replayed code: %s, Location %q", resp.Status, resp.Header.Get("Location"))
	}
	if _, err := s.admin.FinishSSOLogin(ctx, &pb.FinishSSOLoginRequest{RequestId: start.GetRequestId(), Secret: secret}); err == nil ||
		!strings.Contains(err.Error(), "the identity provider refused the code") {
		t.Errorf("the result of a replayed code: %v", err)
	}
	if err := chromedp.Do(br, chromedp.Navigate(callback+"?state=not-a-state&code=whatever"), chromedp.WaitVisible(chromedp.ID("title"))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, br, "sso-wrong-state.png")

	// tctl sso test shows the mapping and issues nothing.
	test := startBg(t, nil, t.TempDir(), "", "tctl", "-c", s.env.ConfigPath(), "sso", "test", "dex", "--browser=none")
	dexSignIn(t, br, test.url(t), "alice@example.com", "alice's dex password")
	if title, _ := chromedp.Run(br, chromedp.Text(chromedp.ID("title"))); title != "SSO test complete" {
		t.Errorf("the test's page: %q", title)
	}
	screenshot(t, br, "sso-test.png")
	out, errOut, err = test.wait(t)
	for _, want := range []string{`SSO test of oidc connector "dex": success`, "User:   alice@example.com", "Roles:  sso-kube",
		"claims_to_roles[0]: groups=platform -> sso-kube", "Nothing was issued"} {
		if !strings.Contains(out, want) {
			t.Errorf("tctl sso test output lacks %q: %v\n%s%s", want, err, out, errOut)
		}
	}
	if !regexp.MustCompile(`(?m)^  groups:\s+platform, developers$`).MatchString(out) || strings.Contains(out, "at_hash:") {
		t.Errorf("tctl sso test traits:\n%s", out)
	}

	// A user whose claims map to no role is refused, on the page and in tsh.
	v := newTshUser(t, filepath.Join(t.TempDir(), "kubeconfig"))
	refused := startBg(t, v.env, v.home, "y\n", "tsh", "login", "--proxy="+s.env.WebAddr, "--auth=dex", "--browser=none")
	brBob := browser(t)
	dexSignIn(t, brBob, refused.url(t), "bob@example.com", "bob's dex password")
	if msg, _ := chromedp.Run(brBob, chromedp.Text(chromedp.ID("message"))); !strings.Contains(msg, "maps bob@example.com to no role") {
		t.Errorf("bob's page: %q", msg)
	}
	screenshot(t, brBob, "sso-no-role.png")
	out, errOut, err = refused.wait(t)
	if err == nil || !strings.Contains(errOut, "maps bob@example.com to no role") {
		t.Errorf("tsh login for bob: %v\n%s%s", err, out, errOut)
	}

	// The audit log: one SSO login, and the refusals.
	ev, err := s.admin.SearchAudit(ctx, &pb.SearchAuditRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var logins, failures int
	for _, e := range ev.GetEvents() {
		var x audit.Event
		if err := json.Unmarshal(e.GetJson(), &x); err != nil {
			t.Fatal(err)
		}
		switch {
		case x.Type == audit.UserLogin && x.Fields["method"] == "oidc":
			logins++
		case x.Type == audit.UserLoginFailure:
			failures++
		}
	}
	if logins != 1 || failures < 4 {
		t.Errorf("audit: %d SSO logins, %d failures; want 1 and at least 4", logins, failures)
	}
	_ = tools.BinDir
}

func publicKeyDER(t *testing.T) []byte {
	t.Helper()
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return der
}
