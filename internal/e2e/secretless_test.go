package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/tbot"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/oidcissuer"
)

// TestTbotSecretlessJoins: a CI bot joins without a secret. Real OIDC issuers on
// loopback (discovery and JWKS over TLS) issue GitHub-, GitLab- and generic-shaped ID
// tokens; a fresh built tbot process joins through each method — GitHub through the
// runner's token service, as in a workflow — and kubectl works with the kubeconfig it
// writes. The issuer rotates its key mid-test. A bound_keypair bot registers its key
// with the one-time secret tctl printed, then rejoins with the key alone. tctl shows
// what each join proved.
func TestTbotSecretlessJoins(t *testing.T) {
	ctx := context.Background()
	ghes := oidcissuer.Start(t, oidcissuer.Options{PathPrefix: "/_services/token"})
	gitlab := oidcissuer.Start(t, oidcissuer.Options{})
	k := startGuideControlPlane(t)
	env := testenv.New(t, testenv.WithKube(k.KubeconfigPath, map[string]string{"env": "dev"}),
		testenv.WithOIDCClient(trustBoth(ghes, gitlab)))
	admin := env.AdminClient()
	waitUntil(t, 10*time.Second, func() bool {
		resp, err := admin.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
		return err == nil && len(resp.GetClusters()) == 1
	})
	createResource(t, admin, guideExampleRole())
	s := &kubeSetup{kube: k, env: env, admin: admin}
	bot, err := admin.CreateBot(ctx, &pb.CreateBotRequest{Name: "ci", Roles: []string{"access", "example-role"}})
	if err != nil {
		t.Fatal(err)
	}
	pin := bot.GetHostCaPin()
	dir := t.TempDir()
	// tbot trusts the issuers' certificates the way a runner trusts GitHub's: roots.
	roots := filepath.Join(dir, "roots.pem")
	writeFile(t, roots, readFile(t, ghes.CAFile)+readFile(t, gitlab.CAFile))

	// The admin's side: tctl tokens add, as the docs show it.
	tctl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(filepath.Join(binDir, "tctl"), append([]string{"-c", env.ConfigPath()}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tctl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tctl("tokens", "add", "--type=bot", "--bot-name=ci", "--join-method=github", "--name=gh-deploy",
		"--enterprise-server-host="+ghes.Host, "--rule=repository=org/app,ref=refs/heads/main", "--rule=repository_owner=org,environment=prod")
	tctl("tokens", "add", "--type=bot", "--bot-name=ci", "--join-method=gitlab", "--name=gl-deploy",
		"--domain="+gitlab.Host, "--rule=project_path=group/*,ref_protected=true")
	tctl("tokens", "add", "--type=bot", "--bot-name=ci", "--join-method=oidc", "--name=circleci",
		"--issuer="+gitlab.URL, "--audience=keyport-ci", "--rule=sub=org/acme/project/*")

	if got := tctl("get", "token/gh-deploy"); !strings.Contains(got, "join_method: github") || !strings.Contains(got, "repository: org/app") {
		t.Fatalf("tctl get token/gh-deploy:\n%s", got)
	}
	kubeOut := func(name string) string {
		return fmt.Sprintf("outputs:\n  - type: kubernetes\n    kubernetes_cluster: %s\n    destination: {type: directory, path: %s}\n", guideCluster, filepath.Join(dir, name))
	}
	joinAndList := func(t *testing.T, name, onboarding string, extraEnv ...string) {
		t.Helper()
		cfg := writeFile(t, filepath.Join(dir, name+".yaml"), fmt.Sprintf("version: v2\nproxy_server: %s\nonboarding:\n%s  ca_pins: ['%s']\nstorage: {type: memory}\n%s",
			env.WebAddr, onboarding, pin, kubeOut(name)))
		r := runTbotEnv(t, append([]string{"SSL_CERT_FILE=" + roots}, extraEnv...), "start", "-c", cfg, "--oneshot")
		if r.code != 0 {
			t.Fatalf("tbot (%s): exit %d\n%s", name, r.code, r.stderr)
		}
		t.Logf("tbot --oneshot with join method %s: %s from start to kubeconfig written", name, r.took.Round(time.Millisecond))
		out, err := kubectl(t, filepath.Join(dir, name, "kubeconfig.yaml"), "get", "pods", "-A")
		if err != nil || !strings.Contains(out, "web-0") {
			t.Fatalf("kubectl get pods -A (%s): %v\n%s", name, err, out)
		}
	}

	t.Run("github", func(t *testing.T) {
		claims := oidcissuer.GitHubClaims("org/app", "refs/heads/main", "")
		ghes.SetRunnerClaims(claims)
		env := []string{tbot.GitHubTokenURLEnv + "=" + ghes.RunnerURL(), tbot.GitHubRequestTokenEnv + "=" + ghes.RunnerRequestToken}
		joinAndList(t, "github", "  join_method: github\n  token: gh-deploy\n", env...)
		if ghes.RunnerHits() != 1 {
			t.Fatalf("the runner's token service was called %d times", ghes.RunnerHits())
		}
		// The issuer rotates its key (dropping the old one); the next job's token is
		// signed with a key id the Auth Service has not seen: it fetches the key set again.
		hits := ghes.JWKSHits()
		ghes.Rotate(true)
		ghes.SetRunnerClaims(oidcissuer.GitHubClaims("org/infra", "refs/heads/release", "prod"))
		joinAndList(t, "github-rotated", "  join_method: github\n  token: gh-deploy\n", env...)
		if ghes.JWKSHits() <= hits {
			t.Fatal("the key set was not fetched again after the rotation")
		}
		// A job of a repository no rule names is refused, naming its own claims.
		ghes.SetRunnerClaims(oidcissuer.GitHubClaims("other/app", "refs/heads/main", ""))
		cfg := writeFile(t, filepath.Join(dir, "gh-bad.yaml"), fmt.Sprintf("version: v2\nproxy_server: %s\nonboarding:\n  join_method: github\n  token: gh-deploy\n  ca_pins: ['%s']\nstorage: {type: memory}\n%s",
			s.env.WebAddr, pin, kubeOut("gh-bad")))
		r := runTbotEnv(t, append([]string{"SSL_CERT_FILE=" + roots}, env...), "start", "-c", cfg, "--oneshot")
		if r.code != 1 || !strings.Contains(r.stderr, `no allow rule of join token "gh-deploy" matches this ID token`) || !strings.Contains(r.stderr, `repository "other/app"`) {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})

	t.Run("gitlab", func(t *testing.T) {
		c := oidcissuer.GitLabClaims("group/app", "main", true)
		c["aud"] = testenv.ClusterName
		joinAndList(t, "gitlab", "  join_method: gitlab\n  token: gl-deploy\n", "TBOT_GITLAB_JWT="+gitlab.Sign(c))
	})

	t.Run("oidc", func(t *testing.T) {
		tokenFile := writeFile(t, filepath.Join(dir, "circleci-token"), gitlab.Sign(map[string]any{"sub": "org/acme/project/42", "aud": "keyport-ci"}))
		joinAndList(t, "oidc", fmt.Sprintf("  join_method: oidc\n  token: circleci\n  oidc: {token_file: %s}\n", tokenFile))
	})

	t.Run("bound_keypair", func(t *testing.T) {
		out := tctl("bots", "add", "edge", "--roles=access,example-role", "--join-method=bound_keypair", "--format=json")
		var created struct {
			Token  string `json:"token_name"`
			Secret string `json:"registration_secret"`
		}
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.Secret == "" {
			t.Fatalf("tctl bots add --join-method=bound_keypair: %v\n%s", err, out)
		}
		storage := filepath.Join(dir, "edge-storage")
		cfg := func(secret string) string {
			ob := fmt.Sprintf("  join_method: bound_keypair\n  token: %s\n", created.Token)
			if secret != "" {
				ob += fmt.Sprintf("  bound_keypair: {registration_secret: %s}\n", secret)
			}
			return writeFile(t, filepath.Join(dir, "edge.yaml"), fmt.Sprintf("version: v2\nproxy_server: %s\nonboarding:\n%s  ca_pins: ['%s']\nstorage: {type: directory, path: %s}\n%s",
				env.WebAddr, ob, pin, storage, kubeOut("edge")))
		}
		if r := runTbotEnv(t, nil, "start", "-c", cfg(created.Secret), "--oneshot"); r.code != 0 {
			t.Fatalf("registration: exit %d\n%s", r.code, r.stderr)
		}
		if fi, err := os.Stat(filepath.Join(storage, "bound_key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("bound key in storage: %v %v", fi, err)
		}
		// The identity expires with the host off; the key joins again without a secret.
		if err := os.Remove(filepath.Join(storage, "identity")); err != nil {
			t.Fatal(err)
		}
		if r := runTbotEnv(t, nil, "start", "-c", cfg(""), "--oneshot"); r.code != 0 {
			t.Fatalf("rejoin with the key: exit %d\n%s", r.code, r.stderr)
		}
		if out, err := kubectl(t, filepath.Join(dir, "edge", "kubeconfig.yaml"), "get", "pods", "-A"); err != nil || !strings.Contains(out, "web-0") {
			t.Fatalf("kubectl: %v\n%s", err, out)
		}
		// Another host with the same secret cannot register a second key.
		other := filepath.Join(dir, "thief-storage")
		thief := writeFile(t, filepath.Join(dir, "thief.yaml"), fmt.Sprintf("version: v2\nproxy_server: %s\nonboarding:\n  join_method: bound_keypair\n  token: %s\n  bound_keypair: {registration_secret: %s}\n  ca_pins: ['%s']\nstorage: {type: directory, path: %s}\n%s",
			env.WebAddr, created.Token, created.Secret, pin, other, kubeOut("thief")))
		if r := runTbotEnv(t, nil, "start", "-c", thief, "--oneshot"); r.code != 1 || !strings.Contains(r.stderr, "already bound to another key") {
			t.Fatalf("second registration: exit %d\n%s", r.code, r.stderr)
		}
	})

	// What each join proved, as an admin sees it.
	ls := tctl("bots", "instances", "ls")
	for _, want := range []string{"org/app@refs/heads/main", "org/infra@refs/heads/release env prod", "group/app@main", "org/acme/project/42", "rejoins left"} {
		if !strings.Contains(ls, want) {
			t.Errorf("tctl bots instances ls lacks %q:\n%s", want, ls)
		}
	}
	list, err := admin.ListBotInstances(ctx, &pb.ListBotInstancesRequest{BotName: "ci"})
	if err != nil || len(list.GetInstances()) == 0 {
		t.Fatal(list, err)
	}
	show := tctl("bots", "instances", "show", "ci/"+list.GetInstances()[0].GetInstanceId())
	if !strings.Contains(show, `"join_claims"`) || !strings.Contains(show, `"iss"`) {
		t.Errorf("tctl bots instances show:\n%s", show)
	}
	// And the audit log's bot.join events carry the claims.
	events := auditJSON(t, env.ConfigPath(), "--type=bot.join")
	found := false
	for _, e := range events {
		if f, ok := e["fields"].(map[string]any); ok {
			if c, ok := f["claims"].(map[string]any); ok && c["repository"] == "org/app" && c["workflow"] == "deploy" {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no bot.join event with the GitHub claims among %d", len(events))
	}
}

// trustBoth is an HTTP client trusting both issuers' TLS certificates.
func trustBoth(a, b *oidcissuer.Issuer) *http.Client {
	pool := x509.NewCertPool()
	for _, is := range []*oidcissuer.Issuer{a, b} {
		data, err := os.ReadFile(is.CAFile)
		if err != nil {
			panic(err)
		}
		pool.AppendCertsFromPEM(data)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
