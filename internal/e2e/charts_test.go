package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/keyport/keyport/internal/config"
	tbotconfig "github.com/keyport/keyport/internal/tbot/config"
)

// chartsDir is where the Helm charts live.
const chartsDir = "../../deploy/charts"

// TestHelmCharts: each chart is lint-clean and renders with each documented values
// example; what it renders is what the chart promises (the agent's ClusterRole grants
// only impersonation and SelfSubjectAccessReviews, tbot's Role only its Secret, pods run
// as non-root on a read-only root filesystem), and the config it renders passes Keyport's
// own strict config parser. A wrong value is refused by the schema, naming it.
func TestHelmCharts(t *testing.T) {
	for _, chart := range []string{"keyport-kube-agent", "tbot"} {
		dir := filepath.Join(chartsDir, chart)
		examples, err := filepath.Glob(filepath.Join(dir, "examples", "*.yaml"))
		if err != nil || len(examples) == 0 {
			t.Fatalf("%s: no examples (%v)", chart, err)
		}
		for _, ex := range examples {
			t.Run(chart+"/"+filepath.Base(ex), func(t *testing.T) {
				if out, err := helm(t, "/dev/null", "lint", dir, "--strict", "-f", ex); err != nil {
					t.Fatalf("helm lint: %v\n%s", err, out)
				}
				out, err := helm(t, "/dev/null", "template", "r", dir, "-f", ex, "--namespace", "keyport")
				if err != nil {
					t.Fatalf("helm template: %v\n%s", err, out)
				}
				checkRendered(t, chart, out)
			})
		}
	}

	ex := filepath.Join(chartsDir, "keyport-kube-agent", "examples", "kubernetes-join.yaml")
	for _, c := range []struct {
		set, want string
	}{
		{"replicaCount=two", "/replicaCount': got string, want integer"},
		{"joinMethod=iam", "/joinMethod'"},
		{"proxyaddr=keyport.example.com:443", "additional properties 'proxyaddr' not allowed"},
		{"caPins[0]=md5:abc", "/caPins/0'"},
		{"joinTokenName=", "/joinTokenName'"},
	} {
		t.Run("schema/"+c.set, func(t *testing.T) {
			out, err := helm(t, "/dev/null", "template", "r", filepath.Join(chartsDir, "keyport-kube-agent"), "-f", ex, "--set", c.set)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("--set %s: err %v, want a refusal naming %q:\n%s", c.set, err, c.want, out)
			}
		})
	}
}

// checkRendered decodes a chart's manifests and checks what the chart promises.
func checkRendered(t *testing.T, chart, manifests string) {
	t.Helper()
	objs := decodeManifests(t, manifests)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, kindOf(o))
		switch o := o.(type) {
		case *rbacv1.ClusterRole:
			want := []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"users", "groups", "serviceaccounts"}, Verbs: []string{"impersonate"}},
				{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews"}, Verbs: []string{"create"}},
			}
			if !rulesEqual(o.Rules, want) {
				t.Errorf("ClusterRole rules %+v, want exactly %+v", o.Rules, want)
			}
		case *rbacv1.Role:
			for _, r := range o.Rules {
				if !slices.Equal(r.Resources, []string{"secrets"}) {
					t.Errorf("Role grants %v", r.Resources)
				}
				if !slices.Equal(r.Verbs, []string{"create"}) && len(r.ResourceNames) != 1 {
					t.Errorf("Role rule %+v reaches more than its one Secret", r)
				}
			}
		case *appsv1.Deployment:
			spec := o.Spec.Template.Spec
			if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Error("pods may run as root")
			}
			for _, c := range spec.Containers {
				if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("container %s: root filesystem writable or privilege escalation allowed", c.Name)
				}
				if c.LivenessProbe == nil || c.ReadinessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/livez" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
					t.Errorf("container %s: probes are not /livez and /readyz", c.Name)
				}
			}
		case *corev1.ConfigMap:
			for name, data := range o.Data {
				path := filepath.Join(t.TempDir(), name)
				if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
				switch name {
				case "keyport.yaml":
					if _, err := config.Read(path); err != nil {
						t.Errorf("the rendered keyport.yaml does not parse: %v\n%s", err, data)
					}
				case "tbot.yaml":
					if _, err := tbotconfig.Read(path); err != nil {
						t.Errorf("the rendered tbot.yaml does not parse: %v\n%s", err, data)
					}
				}
			}
		}
	}
	want := map[string][]string{
		"keyport-kube-agent": {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment"},
		"tbot":               {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment"},
	}[chart]
	for _, k := range want {
		if !slices.Contains(kinds, k) {
			t.Errorf("%s renders no %s (it renders %v)", chart, k, kinds)
		}
	}
}

func decodeManifests(t *testing.T, manifests string) []runtime.Object {
	t.Helper()
	dec := serializer.NewCodecFactory(scheme.Scheme).UniversalDeserializer()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifests)))
	var out []runtime.Object
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 || strings.TrimSpace(stripComments(string(doc))) == "" {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("decoding a rendered manifest: %v\n%s", err, doc)
		}
		out = append(out, obj)
	}
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func kindOf(o runtime.Object) string {
	gvks, _, err := scheme.Scheme.ObjectKinds(o)
	if err != nil || len(gvks) == 0 {
		return "?"
	}
	return gvks[0].Kind
}

func rulesEqual(a, b []rbacv1.PolicyRule) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i].APIGroups, b[i].APIGroups) || !slices.Equal(a[i].Resources, b[i].Resources) ||
			!slices.Equal(a[i].Verbs, b[i].Verbs) || len(a[i].ResourceNames) != 0 {
			return false
		}
	}
	return true
}
