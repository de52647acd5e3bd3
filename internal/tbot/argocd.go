package tbot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/kubeconfig"
	"github.com/keyport/keyport/internal/tbot/destination"
	"github.com/keyport/keyport/internal/tlsca"
)

// Argo CD discovers clusters from Secrets that carry this label (its declarative setup).
const (
	argoSecretTypeLabel     = "argocd.argoproj.io/secret-type"
	defaultArgoSecretPrefix = "keyport.argocd-cluster"
)

// argoClusterConfig is the part of Argo CD's cluster config that tbot fills in; the
// byte fields are PEM, which encoding/json writes as base64 as Argo CD expects.
type argoClusterConfig struct {
	TLSClientConfig struct {
		Insecure   bool   `json:"insecure"`
		ServerName string `json:"serverName"`
		CAData     []byte `json:"caData"`
		CertData   []byte `json:"certData"`
		KeyData    []byte `json:"keyData"`
	} `json:"tlsClientConfig"`
}

// generateArgoCD writes one Argo CD cluster Secret per selected kube cluster, each with a
// certificate routed to that cluster only. It tries every cluster and reports the ones
// that failed.
func (o *outputService) generateArgoCD(ctx context.Context, clt *client.Client, cur *Current) error {
	contexts, err := o.selectClusters(ctx, clt, cur)
	if err != nil {
		return err
	}
	if cur.ProxyAddr == "" {
		return errs.BadParameterf("the cluster did not say where its proxy is; set proxy_server so that Argo CD can reach it")
	}
	prefix := o.cfg.SecretNamePrefix
	if prefix == "" {
		prefix = defaultArgoSecretPrefix
	}
	var failed []string
	for _, c := range contexts {
		if err := o.writeArgoSecret(ctx, clt, cur, c, prefix); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", c.KubeCluster, err))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("argo-cd cluster secrets: %s", strings.Join(failed, "; "))
	}
	return nil
}

func (o *outputService) writeArgoSecret(ctx context.Context, clt *client.Client, cur *Current, c kubeContext, prefix string) error {
	id, err := o.issue(ctx, clt, cur, c.KubeCluster)
	if err != nil {
		return err
	}
	keyPEM, err := tlsca.EncodeKeyPEM(id.Key)
	if err != nil {
		return err
	}
	var cfg argoClusterConfig
	cfg.TLSClientConfig.ServerName = kubeconfig.TLSServerName(cur.ClusterName)
	cfg.TLSClientConfig.CAData = bytes.Join(id.HostCAs, nil)
	cfg.TLSClientConfig.CertData = id.CertPEM
	cfg.TLSClientConfig.KeyData = keyPEM
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	data := map[string][]byte{
		"name":   []byte(c.Name),
		"server": []byte(kubeconfig.ServerURL(cur.ProxyAddr, c.KubeCluster)),
		"config": cfgJSON,
	}
	if o.cfg.Project != "" {
		data["project"] = []byte(o.cfg.Project)
	}
	labels := maps.Clone(o.cfg.SecretLabels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[argoSecretTypeLabel] = "cluster"
	// The name hashes the cluster pair: kube cluster names need not be valid Secret names.
	sum := sha256.Sum256([]byte(cur.ClusterName + "/" + c.KubeCluster))
	name := prefix + "-" + hex.EncodeToString(sum[:8])
	dest := o.b.argoSecret(name, o.cfg.SecretNamespace, labels)
	if err := dest.Write(ctx, data); err != nil {
		return err
	}
	o.b.metrics.setOutputExpiry(o.name+" "+c.KubeCluster, id.Cert.NotAfter)
	return nil
}

// argoSecret is where one Argo CD cluster Secret goes.
func (b *Bot) argoSecret(name, namespace string, labels map[string]string) destination.Destination {
	if b.opts.ArgoCDSecret != nil {
		return b.opts.ArgoCDSecret(name, namespace, labels)
	}
	ks := destination.NewKubeSecret(name, namespace, labels)
	if b.opts.KubeAPI != nil {
		ks.UseAPI(b.opts.KubeAPI)
	}
	return ks
}
