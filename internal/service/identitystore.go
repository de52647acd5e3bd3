package service

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
)

// identityStore keeps an agent's host identity.
type identityStore interface {
	// load returns the stored identity, or an errs.NotFound error.
	load(ctx context.Context) (*identityfile.Identity, error)
	save(ctx context.Context, id *identityfile.Identity) error
	String() string
}

// identitySecretKey is the Secret key that holds the identity file.
const identitySecretKey = "host-identity"

// identityStore is data_dir/host-identity, or the Secret kubernetes_service.
// identity_secret names in $POD_NAMESPACE, reached with the service's own credentials
// for its one cluster.
func (a *agent) identityStore() (identityStore, error) {
	name := a.cfg.Kube.IdentitySecret
	if name == "" {
		return fileStore(a.identityPath()), nil
	}
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		return nil, errs.BadParameterf("%s: kubernetes_service.identity_secret needs $POD_NAMESPACE (the pod's namespace, from the downward API)", a.cfg.Path)
	}
	clusters := a.kube.Clusters()
	if len(clusters) != 1 {
		return nil, errs.BadParameterf("%s: kubernetes_service.identity_secret needs exactly one cluster, not %d", a.cfg.Path, len(clusters))
	}
	c, _ := a.kube.Cluster(clusters[0].GetName())
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	return &secretStore{secrets: cs.CoreV1().Secrets(ns), ns: ns, name: name}, nil
}

type fileStore string

func (f fileStore) load(context.Context) (*identityfile.Identity, error) {
	return identityfile.Read(string(f))
}

func (f fileStore) save(_ context.Context, id *identityfile.Identity) error {
	return identityfile.Write(string(f), id)
}

func (f fileStore) String() string { return string(f) }

type secretStore struct {
	secrets  corev1client.SecretInterface
	ns, name string
}

func (s *secretStore) String() string { return "secret " + s.ns + "/" + s.name }

func (s *secretStore) load(ctx context.Context) (*identityfile.Identity, error) {
	sec, err := s.secrets.Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, errs.NotFoundf("%s does not exist", s)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the host identity from %s: %w", s, err)
	}
	data, ok := sec.Data[identitySecretKey]
	if !ok {
		return nil, errs.NotFoundf("%s holds no %s", s, identitySecretKey)
	}
	return identityfile.Decode(s.String(), data)
}

// save replaces the Secret's identity in one write (create, or update of the version
// read), so that no reader sees half of it.
func (s *secretStore) save(ctx context.Context, id *identityfile.Identity) error {
	data, err := id.Encode()
	if err != nil {
		return err
	}
	sec, err := s.secrets.Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = s.secrets.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.name, Labels: map[string]string{"app.kubernetes.io/managed-by": "keyport"}},
			Type: corev1.SecretTypeOpaque, Data: map[string][]byte{identitySecretKey: data}}, metav1.CreateOptions{})
	} else if err == nil {
		sec.Data = map[string][]byte{identitySecretKey: data}
		_, err = s.secrets.Update(ctx, sec, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("saving the host identity to %s: %w", s, err)
	}
	return nil
}
