package types

// KubeCluster is the read-only view of an enrolled kube cluster, published by the
// Kubernetes Service that serves it. Users match roles' kubernetes_labels against
// metadata.labels.
type KubeCluster struct {
	Header `yaml:",inline"`
	Spec   KubeClusterSpec `yaml:"spec" json:"spec"`
}

// KubeClusterSpec is the body of a kube cluster.
type KubeClusterSpec struct {
	// Service is the name (nodename) of the Kubernetes Service that serves the cluster.
	Service string `yaml:"service,omitempty" json:"service,omitempty"`
}

// NewKubeCluster returns a kube cluster served by service. Call CheckAndSetDefaults before
// use.
func NewKubeCluster(name, service string, labels map[string]string) *KubeCluster {
	return &KubeCluster{Header: Header{Kind: KindKubeCluster, Version: V3, Metadata: Metadata{Name: name, Labels: labels}}, Spec: KubeClusterSpec{Service: service}}
}

// CheckAndSetDefaults validates the kube cluster.
func (k *KubeCluster) CheckAndSetDefaults() error {
	return k.Header.check(KindKubeCluster)
}
