package bench

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/kubeconfig"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/kubeenv"
	"github.com/keyport/keyport/internal/testenv/tools"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// The guide's names: the kube cluster, the Keyport role, the Kubernetes group it maps to.
const (
	kubeCluster = "example-k8s-cluster"
	roleName    = "example-role"
	benchUser   = "bench-user"
	editorGroup = "editor"
	// systemAuthenticated is added by Keyport to every impersonation; the direct client
	// sends it too so that the API server checks the same impersonation.
	systemAuthenticated = "system:authenticated"

	listNamespace  = "bench-list"
	watchNamespace = "bench-watch"
	podNamespace   = "default"
	podName        = "web-0"
	// configMapPrefix names the LIST's ConfigMaps.
	configMapPrefix = "bench-"
)

// setup is everything the measurements need: the control plane, Keyport, and one client
// config per path that authenticates as the same Kubernetes user and groups.
type setup struct {
	kube    *kubeenv.Env
	keyport *testenv.Cluster
	dir     string

	// direct is the admin config impersonating bench-user in editor and
	// system:authenticated; viaKeyport is bench-user's Keyport certificate against
	// /v1/kube/<cluster>, as in the kubeconfig tbot or tsh would write.
	direct, viaKeyport *rest.Config
	k8sVersion         string

	// bare is the reference: a bare Go reverse proxy in front of the API server.
	bare    *rest.Config
	bareSrv *httptest.Server
}

func startSetup(ctx context.Context, opts Options, log *slog.Logger) (_ *setup, err error) {
	s := &setup{}
	defer func() {
		if err != nil {
			s.close(log)
		}
	}()
	s.dir, err = os.MkdirTemp("", "keyport-bench-")
	if err != nil {
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	log.Info("starting the control plane (etcd, kube-apiserver, kube-controller-manager, kwok)")
	s.kube, err = kubeenv.StartProcess(startCtx, kubeenv.Options{Kwok: true, ContextName: kubeCluster, Logger: opts.kubeLogger})
	if err != nil {
		return nil, fmt.Errorf("control plane: %w", err)
	}
	s.k8sVersion = k8sVersion(s.kube)
	if err := s.kube.CreatePod(startCtx, podNamespace, podName); err != nil {
		return nil, err
	}
	// kubectl create clusterrolebinding keyport-editor-edit --clusterrole=edit --group=editor
	_, err = s.kube.Clientset.RbacV1().ClusterRoleBindings().Create(startCtx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "keyport-editor-edit"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: editorGroup}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create clusterrolebinding: %w", err)
	}

	log.Info("starting Keyport in process")
	s.keyport, err = StartKeyport(startCtx, s.dir, s.kube.KubeconfigPath, map[string]string{"env": "dev"}, opts.keyportLogger)
	if err != nil {
		return nil, err
	}
	admin, err := s.keyport.NewAdminClient()
	if err != nil {
		return nil, err
	}
	defer func() { _ = admin.Close() }()
	if err := poll(startCtx, 30*time.Second, "kube cluster enrolled", func() error {
		resp, err := admin.ListKubeClusters(startCtx, &pb.ListKubeClustersRequest{})
		if err != nil {
			return err
		}
		if len(resp.GetClusters()) != 1 {
			return fmt.Errorf("%d kube clusters", len(resp.GetClusters()))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	s.viaKeyport, err = createBenchUser(startCtx, admin, s.keyport.WebAddr)
	if err != nil {
		return nil, err
	}
	s.direct = rest.CopyConfig(s.kube.Config)
	s.direct.Impersonate = rest.ImpersonationConfig{UserName: benchUser, Groups: []string{editorGroup, systemAuthenticated}}

	if s.bareSrv, s.bare, err = startBareProxy(s.kube.Config, benchUser, []string{editorGroup, systemAuthenticated}); err != nil {
		return nil, fmt.Errorf("bare reverse proxy: %w", err)
	}

	if err := s.createNamespaces(startCtx); err != nil {
		return nil, err
	}
	if opts.ConfigMaps > 0 {
		log.Info("creating ConfigMaps", "count", opts.ConfigMaps, "namespace", listNamespace)
		began := time.Now()
		if err := s.createConfigMaps(startCtx, opts.ConfigMaps); err != nil {
			return nil, err
		}
		log.Info("ConfigMaps created", "took", time.Since(began).Round(time.Millisecond))
	}

	// The role reaches the proxy through the cache's watch: wait until both paths answer.
	for _, cfg := range []*rest.Config{s.direct, s.viaKeyport, s.bare} {
		hc, err := newHTTPClient(cfg)
		if err != nil {
			return nil, err
		}
		url := cfg.Host + podPath
		if err := poll(startCtx, 30*time.Second, "GET "+url, func() error {
			_, err := get(startCtx, hc, url)
			return err
		}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// close stops Keyport and the control plane and removes the state; errors are logged,
// since there is nothing left to do about them.
func (s *setup) close(log *slog.Logger) {
	if s.bareSrv != nil {
		s.bareSrv.Close()
	}
	if s.keyport != nil {
		if err := s.keyport.Stop(); err != nil {
			log.Warn("stopping keyport", "error", err)
		}
	}
	if s.kube != nil {
		if err := s.kube.Stop(); err != nil {
			log.Warn("stopping the control plane", "error", err)
		}
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

func createResource(ctx context.Context, admin *client.Client, r types.Resource) error {
	if err := r.CheckAndSetDefaults(); err != nil {
		return err
	}
	data, err := types.EncodeJSON(r)
	if err != nil {
		return err
	}
	if _, err := admin.CreateResource(ctx, &pb.CreateResourceRequest{Resource: &pb.Resource{Kind: r.GetKind(), Json: data}}); err != nil {
		return fmt.Errorf("create %s %s: %w", r.GetKind(), r.GetName(), err)
	}
	return nil
}

// createBenchUser creates the guide's role and bench-user with it, and returns the client
// config of a certificate signed for bench-user.
func createBenchUser(ctx context.Context, admin *client.Client, webAddr string) (*rest.Config, error) {
	role := types.NewRole(roleName, types.V6, types.RoleSpec{Allow: types.RoleConditions{
		KubernetesLabels:    types.Labels{"*": {"*"}},
		KubernetesGroups:    []string{editorGroup},
		KubernetesResources: []types.KubernetesResource{{Kind: "*", Namespace: "*", Name: "*"}},
	}})
	if err := createResource(ctx, admin, role); err != nil {
		return nil, err
	}
	if _, err := admin.CreateUser(ctx, &pb.CreateUserRequest{Name: benchUser, Roles: []string{roleName}}); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	return signUserConfig(ctx, admin, webAddr)
}

// signUserConfig signs a certificate for bench-user and returns the client config a
// Keyport kubeconfig would give kubectl.
func signUserConfig(ctx context.Context, admin *client.Client, webAddr string) (*rest.Config, error) {
	key, err := tlsca.GenerateKey("", clock.Rand)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	certs, err := admin.SignUser(ctx, &pb.SignUserRequest{User: benchUser, PublicKeyDer: der, TtlSeconds: 3600})
	if err != nil {
		return nil, fmt.Errorf("sign user certificate: %w", err)
	}
	keyPEM, err := tlsca.EncodeKeyPEM(key)
	if err != nil {
		return nil, err
	}
	if len(certs.GetHostCaPems()) == 0 {
		return nil, errors.New("SignUser returned no host CA")
	}
	return &rest.Config{
		Host: kubeconfig.ServerURL(webAddr, kubeCluster),
		TLSClientConfig: rest.TLSClientConfig{
			ServerName: kubeconfig.TLSServerName(ClusterName),
			CAData:     certs.GetHostCaPems()[0],
			CertData:   certs.GetTlsCertPem(),
			KeyData:    keyPEM,
		},
	}, nil
}

func (s *setup) createNamespaces(ctx context.Context) error {
	for _, ns := range []string{listNamespace, watchNamespace} {
		_, err := s.kube.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", ns, err)
		}
	}
	return nil
}

// createConfigMaps creates n small ConfigMaps in parallel, without client-side rate
// limiting (the control plane is private to this run).
func (s *setup) createConfigMaps(ctx context.Context, n int) error {
	cfg := rest.CopyConfig(s.kube.Config)
	cfg.QPS, cfg.Burst = -1, 0
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s%05d", configMapPrefix, i), Labels: map[string]string{"app": "bench"}},
					Data:       map[string]string{"index": strconv.Itoa(i), "greeting": "hello from the keyport bench"},
				}
				_, err := cs.CoreV1().ConfigMaps(listNamespace).Create(ctx, cm, metav1.CreateOptions{})
				if err != nil && !apierrors.IsAlreadyExists(err) {
					once.Do(func() { first = fmt.Errorf("create configmap %s: %w", cm.Name, err); cancel() })
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// newHTTPClient is client-go's HTTP client for cfg (TLS, HTTP/2, impersonation headers
// when cfg asks for them): the same stack kubectl uses, for both paths.
func newHTTPClient(cfg *rest.Config) (*http.Client, error) {
	return rest.HTTPClientFor(cfg)
}

// poll retries f until it succeeds or d passes. Start-up waits on things another
// process does (heartbeats, a cache fed by a watch), which offer no signal to wait on.
func poll(ctx context.Context, d time.Duration, what string, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		if last = f(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last error: %w)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// k8sVersion is the API server's version; binaries built without version stamping
// report v0.0.0-master, and then the version `make kube-tools` installed says more.
func k8sVersion(k *kubeenv.Env) string {
	v, err := k.Clientset.Discovery().ServerVersion()
	if err == nil && !strings.HasPrefix(v.GitVersion, "v0.0.0") {
		return v.GitVersion
	}
	stamp, serr := os.ReadFile(filepath.Join(tools.CacheDir(), "stamps", "k8s"))
	if serr == nil {
		if s, ok := strings.CutPrefix(strings.TrimSpace(string(stamp)), "k8s-"); ok {
			return s + " (installed by make kube-tools)"
		}
	}
	if err != nil {
		return "unknown"
	}
	return v.GitVersion
}
