package tbot

import (
	"slices"
	"strings"

	"github.com/keyport/keyport/internal/kubeconfig"
)

// kubeContext is one cluster/user/context entry of a kubeconfig.
type kubeContext struct {
	Name        string
	KubeCluster string
}

// KubeconfigParams describe the kubeconfig an output writes.
type KubeconfigParams struct {
	ClusterName string // the Keyport cluster
	ProxyAddr   string // the proxy's public host:port
	HostCAPEM   []byte
	Contexts    []kubeContext
	// Exec, when set, makes every user an exec plugin; otherwise CertPEM and KeyPEM are
	// embedded.
	Exec            *kubeconfig.Exec
	CertPEM, KeyPEM []byte
}

// BuildKubeconfig renders the kubeconfig; the first context is the current one.
func BuildKubeconfig(p KubeconfigParams) ([]byte, error) {
	kp := kubeconfig.Params{ProxyAddr: p.ProxyAddr, ClusterName: p.ClusterName, HostCAPEM: p.HostCAPEM, CertPEM: p.CertPEM, KeyPEM: p.KeyPEM}
	for _, c := range p.Contexts {
		kp.Clusters = append(kp.Clusters, kubeconfig.Cluster{ContextName: c.Name, KubeCluster: c.KubeCluster})
	}
	if p.Exec != nil {
		kp.ExecFor = func(kubeconfig.Cluster) *kubeconfig.Exec { return p.Exec }
	}
	return kubeconfig.Marshal(kubeconfig.Build(kp))
}

func sortContexts(cs []kubeContext) {
	slices.SortFunc(cs, func(a, b kubeContext) int { return strings.Compare(a.Name, b.Name) })
}
