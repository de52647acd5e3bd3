package kubeenv_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/tools"
)

// eventually retries f every 50ms until it returns nil or timeout passes. RBAC and
// audit are eventually consistent within milliseconds; the bound keeps a bug from
// hanging the test.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGuideClusterRoleBinding replays the guide's RBAC step: members of group "editor"
// get the built-in "edit" ClusterRole, which only works when the aggregation
// controller has filled it.
func TestGuideClusterRoleBinding(t *testing.T) {
	t.Parallel()
	env := kubeenv.Start(t, kubeenv.Options{})
	ctx := t.Context()

	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "teleport-editor-edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: "editor"}},
	}
	if _, err := env.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		verb        string
		group       string
		resource    string
		namespace   string
		wantAllowed bool
	}{
		// Every case is retried: the authorizer's RBAC cache learns of the new binding
		// a moment after the create returns. An allowed case comes first so that the
		// denied ones run against a cache that already has the binding.
		{name: "create deployments", verb: "create", group: "apps", resource: "deployments", namespace: "default", wantAllowed: true},
		{name: "get pods", verb: "get", group: "", resource: "pods", namespace: "default", wantAllowed: true},
		{name: "create clusterrolebindings", verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings", wantAllowed: false},
		{name: "create rolebindings", verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings", namespace: "default", wantAllowed: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User:   "bot-example",
				Groups: []string{"editor"},
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: tc.verb, Group: tc.group, Resource: tc.resource, Namespace: tc.namespace,
				},
			}}
			eventually(t, 10*time.Second, func() error {
				got, err := env.Clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
				if err != nil {
					return err
				}
				if got.Status.Allowed != tc.wantAllowed {
					return fmt.Errorf("allowed = %v, want %v (reason %q)", got.Status.Allowed, tc.wantAllowed, got.Status.Reason)
				}
				return nil
			})
		})
	}

	t.Run("client certificate identity", func(t *testing.T) {
		cfg, err := env.ClientConfig("bot-example", "editor")
		if err != nil {
			t.Fatal(err)
		}
		cs := kubernetes.NewForConfigOrDie(cfg)
		if _, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("list pods as editor: %v", err)
		}
		other := crb.DeepCopy()
		other.Name = "escalate"
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, other, metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) {
			t.Fatalf("create clusterrolebinding as editor: err = %v, want Forbidden", err)
		}
	})

	t.Run("audit log", func(t *testing.T) {
		eventually(t, 10*time.Second, func() error {
			events, err := env.AuditEvents()
			if err != nil {
				return err
			}
			var adminCreate, forbidden bool
			for _, ev := range events {
				if ev.ObjectRef == nil || ev.ObjectRef.Resource != "clusterrolebindings" || ev.Verb != "create" || ev.ResponseStatus == nil {
					continue
				}
				if ev.ObjectRef.Name == "teleport-editor-edit" && ev.User.Username == "kubernetes-admin" && ev.ResponseStatus.Code == http.StatusCreated {
					adminCreate = true
				}
				if ev.User.Username == "bot-example" && ev.ResponseStatus.Code == http.StatusForbidden {
					forbidden = true
				}
			}
			if !adminCreate || !forbidden {
				return fmt.Errorf("in %d events: admin create logged %v, forbidden create logged %v", len(events), adminCreate, forbidden)
			}
			return nil
		})
	})
}

// TestKwokPods checks what later end-to-end tests rely on: pods on the kwok Node reach
// Running and answer kubectl get, exec, logs (also -f) and port-forward.
func TestKwokPods(t *testing.T) {
	t.Parallel()
	env := kubeenv.Start(t, kubeenv.Options{Kwok: true})
	ctx := t.Context()
	kubectl := tools.Path(t, "kubectl")

	pods := []string{"web-0", "web-1"}
	for _, name := range pods {
		began := time.Now()
		if err := env.CreatePod(ctx, "default", name); err != nil {
			t.Fatal(err)
		}
		t.Logf("pod %s Running after %s", name, time.Since(began).Round(time.Millisecond))
	}

	run := func(t *testing.T, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", env.KubeconfigPath}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	t.Run("get pods", func(t *testing.T) {
		out := run(t, "get", "pods", "-A", "-o", "wide")
		for _, name := range pods {
			if !regexp.MustCompile(`(?m)^default\s+` + name + `\s+1/1\s+Running\s.*` + kubeenv.NodeName).MatchString(out) {
				t.Errorf("pod %s not listed Running on %s:\n%s", name, kubeenv.NodeName, out)
			}
		}
	})

	t.Run("exec", func(t *testing.T) {
		if out := run(t, "exec", pods[0], "--", "echo", "hi"); out != "hi\n" {
			t.Errorf("exec output = %q, want %q", out, "hi\n")
		}
	})

	t.Run("logs", func(t *testing.T) {
		if out := run(t, "logs", pods[1]); !strings.Contains(out, kubeenv.PodLogText) {
			t.Errorf("logs = %q, want it to contain %q", out, kubeenv.PodLogText)
		}
	})

	t.Run("logs follow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", env.KubeconfigPath, "logs", "-f", pods[0])
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-ctx.Done():
					return
				}
			}
		}()
		want := kubeenv.PodLogText
		appended := false
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl logs -f ended before %q", want)
				}
				if line != want {
					continue
				}
				if appended {
					return
				}
				// The existing line arrived, so the stream is open: a new line must
				// now arrive through the follow, not through the first read.
				want = "appended while following"
				appended = true
				if err := env.AppendPodLog(want); err != nil {
					t.Fatal(err)
				}
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %q in kubectl logs -f", want)
			}
		}
	})

	t.Run("attach", func(t *testing.T) {
		// kwok's attach follows the pod log from its end: lines appended after the
		// attach has started come out of kubectl attach.
		if err := kubeenv.CheckAttach(ctx, kubectl, env.KubeconfigPath, pods[0], env.AppendPodLog); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("port-forward", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		// ":8080" makes kubectl pick a free local port and print it.
		cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", env.KubeconfigPath, "port-forward", "pod/"+pods[1], ":8080")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); _ = cmd.Wait() }()
		local := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			re := regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> 8080`)
			for sc.Scan() {
				if m := re.FindStringSubmatch(sc.Text()); m != nil {
					select {
					case local <- m[1]:
					default: // only the first address matters; keep draining
					}
				}
			}
		}()
		var port string
		select {
		case port = <-local:
		case <-ctx.Done():
			t.Fatal("kubectl port-forward did not report its local port")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if string(body) != kubeenv.PortForwardResponse {
			t.Errorf("body through port-forward = %q, want %q", body, kubeenv.PortForwardResponse)
		}
	})
}
