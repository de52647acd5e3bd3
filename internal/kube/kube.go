// Package kube is the Kubernetes Service: it enrolls clusters (each context of a
// kubeconfig file becomes a kube cluster named after the context, or the in-cluster
// service account), keeps one pooled transport per cluster with the service's own
// credentials, forwards requests the proxy has already authorised, and reports its
// clusters to the Auth Service in heartbeats.
package kube

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	memory "k8s.io/client-go/discovery/cached"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/types"
)

// Cluster is one enrolled kube cluster.
type Cluster struct {
	Name   string
	Labels map[string]string
	// Server is the API server's base URL.
	Server *url.URL
	// Transport carries the service's own credentials; it is pooled and speaks HTTP/2
	// where the API server does.
	Transport http.RoundTripper
	// UpgradeTransport speaks only HTTP/1.1, for connection upgrades (SPDY and WebSocket
	// exec, attach, port-forward), which HTTP/2 cannot carry.
	UpgradeTransport http.RoundTripper
	// Config is the service's rest.Config for this cluster (SubjectAccessReviews).
	Config *rest.Config

	mapper atomic.Pointer[resourceMapper] // set by the first ResolveResource
}

// Config configures the Kubernetes Service.
type Config struct {
	KubeconfigFile  string
	KubeClusterName string // in-cluster mode
	Labels          map[string]string
	ServiceName     string
	Logger          *slog.Logger
	Clock           clock.Clock
}

// Service holds the enrolled clusters.
type Service struct {
	cfg      Config
	clusters map[string]*Cluster
}

// New enrolls the clusters.
func New(cfg Config) (*Service, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, clusters: map[string]*Cluster{}}
	switch {
	case cfg.KubeconfigFile != "":
		raw, err := clientcmd.LoadFromFile(cfg.KubeconfigFile)
		if err != nil {
			return nil, errs.BadParameterf("kubernetes_service.kubeconfig_file %s: %w", cfg.KubeconfigFile, err)
		}
		if len(raw.Contexts) == 0 {
			return nil, errs.BadParameterf("kubernetes_service.kubeconfig_file %s has no contexts", cfg.KubeconfigFile)
		}
		for _, name := range slices.Sorted(maps.Keys(raw.Contexts)) {
			rc, err := clientcmd.NewNonInteractiveClientConfig(*raw, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
			if err != nil {
				return nil, errs.BadParameterf("kubeconfig %s, context %q: %w", cfg.KubeconfigFile, name, err)
			}
			if err := s.add(name, rc); err != nil {
				return nil, err
			}
		}
	case cfg.KubeClusterName != "":
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, errs.BadParameterf("kubernetes_service.kube_cluster_name is set but this process is not in a cluster: %w", err)
		}
		if err := s.add(cfg.KubeClusterName, rc); err != nil {
			return nil, err
		}
	default:
		return nil, errs.BadParameterf("kubernetes_service needs kubeconfig_file or kube_cluster_name")
	}
	return s, nil
}

func (s *Service) add(name string, rc *rest.Config) error {
	// Keyport forwards many concurrent requests per cluster: let the pool grow.
	rc.QPS, rc.Burst = -1, -1
	tr, err := rest.TransportFor(rc)
	if err != nil {
		return fmt.Errorf("transport for kube cluster %q: %w", name, err)
	}
	h1 := rest.CopyConfig(rc)
	h1.NextProtos = []string{"http/1.1"}
	utr, err := rest.TransportFor(h1)
	if err != nil {
		return fmt.Errorf("upgrade transport for kube cluster %q: %w", name, err)
	}
	u, err := url.Parse(rc.Host)
	if err != nil {
		return errs.BadParameterf("kube cluster %q: server %q: %w", name, rc.Host, err)
	}
	if u.Scheme == "" {
		u.Scheme = "https"
	}
	s.clusters[name] = &Cluster{Name: name, Labels: maps.Clone(s.cfg.Labels), Server: u, Transport: tr, UpgradeTransport: utr, Config: rc}
	s.cfg.Logger.Info("enrolled kube cluster", "name", name, "server", u.Host)
	return nil
}

// Cluster returns an enrolled cluster.
func (s *Service) Cluster(name string) (*Cluster, bool) {
	c, ok := s.clusters[name]
	return c, ok
}

// Clusters lists the enrolled clusters as kube_cluster resources.
func (s *Service) Clusters() []*types.KubeCluster {
	var out []*types.KubeCluster
	for _, name := range slices.Sorted(maps.Keys(s.clusters)) {
		c := s.clusters[name]
		out = append(out, types.NewKubeCluster(c.Name, s.cfg.ServiceName, c.Labels))
	}
	return out
}

// Heartbeater is where heartbeats go (the Auth Service, in process or over the API).
type Heartbeater interface {
	HeartbeatKubeClusters(ctx context.Context, clusters []*types.KubeCluster, ttl time.Duration) error
}

// HeartbeatInterval and HeartbeatTTL: a cluster disappears from `kube ls` within a
// minute and a half of its service stopping.
const (
	HeartbeatInterval = 30 * time.Second
	HeartbeatTTL      = 90 * time.Second
)

// RunHeartbeats reports the clusters now and every HeartbeatInterval until ctx ends.
func (s *Service) RunHeartbeats(ctx context.Context, hb Heartbeater) error {
	for {
		if err := hb.HeartbeatKubeClusters(ctx, s.Clusters(), HeartbeatTTL); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("kube cluster heartbeat failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.cfg.Clock.After(HeartbeatInterval):
		}
	}
}

// SubjectAccessReview asks cluster's API server whether user with groups may do what
// attrs describe, with the service's own credentials.
func (s *Service) SubjectAccessReview(ctx context.Context, cluster, user string, groups []string, verb, group, resource, subresource, namespace, name string) (bool, string, error) {
	c, ok := s.clusters[cluster]
	if !ok {
		return false, "", errs.NotFoundf("kube cluster %q is not served here", cluster)
	}
	return c.SubjectAccessReview(ctx, user, groups, verb, group, resource, subresource, namespace, name)
}

// SubjectAccessReview asks the cluster's API server whether user, in groups, may do verb
// on the resource. It sends a SelfSubjectAccessReview impersonating user and groups, as
// the proxy sends every request: the Kubernetes Service's credentials need nothing beyond
// the impersonate permission they already have, and a cluster behind a reverse tunnel
// (no Config; the agent adds its credentials) answers it like any forwarded request. It
// returns the answer and the API server's reason.
func (c *Cluster) SubjectAccessReview(ctx context.Context, user string, groups []string, verb, group, resource, subresource, namespace, name string) (bool, string, error) {
	rc := c.restConfig()
	rc.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return false, "", err
	}
	ssar := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Group: group, Resource: resource, Subresource: subresource, Namespace: namespace, Name: name},
	}}
	out, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, ssar, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("SelfSubjectAccessReview as %q on %q: %w", user, c.Name, err)
	}
	reason := out.Status.Reason
	if out.Status.EvaluationError != "" {
		reason = strings.TrimSpace(reason + " " + out.Status.EvaluationError)
	}
	return out.Status.Allowed, reason, nil
}

// TokenReviewResult is what a cluster's API server said about a bearer token.
type TokenReviewResult struct {
	// Cluster is the kube cluster that reviewed the token.
	Cluster       string
	Authenticated bool
	// Error is the API server's reason when the token was not authenticated.
	Error    string
	Username string
	Groups   []string
	Extra    map[string][]string
}

// TokenReview asks the API server whether token (a service account token, for the
// kubernetes join method) is valid, with the service's own credentials; they need create
// on tokenreviews.authentication.k8s.io (ClusterRole system:auth-delegator). Only a
// service with exactly one cluster — the one it runs in, or the one context of its
// kubeconfig — can review: with several, a token valid in any of them would be trusted
// by join tokens that cannot say which cluster they mean.
func (s *Service) TokenReview(ctx context.Context, token string) (*TokenReviewResult, error) {
	if len(s.clusters) != 1 {
		return nil, errs.BadParameterf("the kubernetes join method checks service account tokens with the one cluster of the Kubernetes Service in the auth server's process, but it serves %d (%s)",
			len(s.clusters), strings.Join(slices.Sorted(maps.Keys(s.clusters)), ", "))
	}
	var c *Cluster
	for _, v := range s.clusters {
		c = v
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	tr, err := cs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("TokenReview on kube cluster %q: %w", c.Name, err)
	}
	st := tr.Status
	out := &TokenReviewResult{Cluster: c.Name, Authenticated: st.Authenticated, Error: st.Error,
		Username: st.User.Username, Groups: st.User.Groups}
	if len(st.User.Extra) > 0 {
		out.Extra = make(map[string][]string, len(st.User.Extra))
		for k, v := range st.User.Extra {
			out.Extra[k] = []string(v)
		}
	}
	return out, nil
}

// restConfig is a copy of the service's rest.Config for the cluster, or one over its
// transport (a cluster behind a tunnel).
func (c *Cluster) restConfig() *rest.Config {
	if c.Config != nil {
		return rest.CopyConfig(c.Config)
	}
	return &rest.Config{Host: c.Server.String(), Transport: c.Transport}
}

// resourceMapper resolves resource names as kubectl does, from the cluster's discovery,
// cached; a name it does not know refreshes the cache once.
type resourceMapper struct {
	deferred *restmapper.DeferredDiscoveryRESTMapper
	mapper   meta.RESTMapper
}

// ResolveResource reads a resource as a person types it to kubectl (`deployments`,
// `deploy`, `po`, `deployments.apps`, `deployments.v1.apps`, `*`) and returns its API
// group and plural name, from the cluster's discovery (short names and all, through a
// client-go RESTMapper cached per cluster). The discovery requests impersonate user and
// groups. An unknown resource is a not-found error that names it.
func (c *Cluster) ResolveResource(ctx context.Context, user string, groups []string, resource string) (group, plural string, err error) {
	if resource == "*" {
		return "", "*", nil
	}
	rm := c.mapper.Load()
	if rm == nil {
		rc := c.restConfig()
		rc.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
		dc, err := discovery.NewDiscoveryClientForConfig(rc)
		if err != nil {
			return "", "", err
		}
		cached := memory.NewMemCacheClient(dc)
		deferred := restmapper.NewDeferredDiscoveryRESTMapper(cached)
		rm = &resourceMapper{deferred: deferred, mapper: restmapper.NewShortcutExpander(deferred, cached, nil)}
		c.mapper.Store(rm)
	}
	gr, err := resolveResource(rm.mapper, resource)
	if err != nil && meta.IsNoMatchError(err) {
		// A resource type added since the cache was filled (a new CRD): look again.
		rm.deferred.Reset()
		gr, err = resolveResource(rm.mapper, resource)
	}
	if err != nil {
		if meta.IsNoMatchError(err) {
			return "", "", errs.NotFoundf("kube cluster %q has no resource type %q (see kubectl api-resources)", c.Name, resource)
		}
		return "", "", fmt.Errorf("discovery of kube cluster %q: %w", c.Name, err)
	}
	return gr.Group, gr.Resource, nil
}

// resolveResource is kubectl auth can-i's reading of a resource argument: a fully
// qualified resource.version.group first, then resource[.group] with any version.
func resolveResource(m meta.RESTMapper, arg string) (schema.GroupResource, error) {
	full, gr := schema.ParseResourceArg(strings.ToLower(arg))
	if full != nil {
		if gvr, err := m.ResourceFor(*full); err == nil {
			return gvr.GroupResource(), nil
		}
	}
	gvr, err := m.ResourceFor(gr.WithVersion(""))
	if err != nil {
		return schema.GroupResource{}, err
	}
	return gvr.GroupResource(), nil
}
