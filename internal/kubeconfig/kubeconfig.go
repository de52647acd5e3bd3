// Package kubeconfig owns the kubeconfig files Keyport writes for kubectl, Helm and
// client-go: one cluster, user and context per kube cluster, pointing at the proxy's
// /v1/kube/<cluster> path with SNI kube.<keyport cluster>, trusting the host CA, and
// authenticating with embedded certificates or an exec plugin (SPEC section 9).
package kubeconfig

import (
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Cluster is one kube cluster to put in a kubeconfig.
type Cluster struct {
	// ContextName names the cluster, user and context entries.
	ContextName string
	// KubeCluster is the Keyport name of the kube cluster.
	KubeCluster string
}

// Exec describes an exec credential plugin.
type Exec struct {
	Command string
	Args    []string
}

// Params describe a kubeconfig.
type Params struct {
	ProxyAddr   string // host:port of the proxy's public address
	ClusterName string // the Keyport cluster name
	HostCAPEM   []byte
	Clusters    []Cluster
	// CurrentContext defaults to the first cluster's context.
	CurrentContext string
	// Either embedded credentials...
	CertPEM, KeyPEM []byte
	// ...or an exec plugin (per cluster, via ExecFor).
	ExecFor func(c Cluster) *Exec
}

// ServerURL is the address of kube cluster kc behind the proxy.
func ServerURL(proxyAddr, kc string) string {
	return "https://" + proxyAddr + "/v1/kube/" + kc
}

// TLSServerName is the SNI that makes the proxy present its host-CA certificate.
func TLSServerName(clusterName string) string { return "kube." + clusterName }

// Build returns the kubeconfig.
func Build(p Params) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	for _, c := range p.Clusters {
		cl := clientcmdapi.NewCluster()
		cl.Server = ServerURL(p.ProxyAddr, c.KubeCluster)
		cl.TLSServerName = TLSServerName(p.ClusterName)
		cl.CertificateAuthorityData = p.HostCAPEM
		cfg.Clusters[c.ContextName] = cl
		ai := clientcmdapi.NewAuthInfo()
		if p.ExecFor != nil {
			if ex := p.ExecFor(c); ex != nil {
				ai.Exec = &clientcmdapi.ExecConfig{
					APIVersion:      "client.authentication.k8s.io/v1",
					Command:         ex.Command,
					Args:            ex.Args,
					InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
				}
			}
		}
		if ai.Exec == nil {
			ai.ClientCertificateData = p.CertPEM
			ai.ClientKeyData = p.KeyPEM
		}
		cfg.AuthInfos[c.ContextName] = ai
		ctx := clientcmdapi.NewContext()
		ctx.Cluster = c.ContextName
		ctx.AuthInfo = c.ContextName
		cfg.Contexts[c.ContextName] = ctx
	}
	cfg.CurrentContext = p.CurrentContext
	if cfg.CurrentContext == "" && len(p.Clusters) > 0 {
		cfg.CurrentContext = p.Clusters[0].ContextName
	}
	return cfg
}

// Marshal encodes a kubeconfig as YAML.
func Marshal(cfg *clientcmdapi.Config) ([]byte, error) {
	return clientcmd.Write(*cfg)
}
