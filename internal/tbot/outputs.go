package tbot

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/kubeconfig"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tbot/destination"
	"github.com/keyport/keyport/internal/tlsca"
)

// File names an output writes (SPEC section 9).
const (
	FileKubeconfig = "kubeconfig.yaml"
	FileIdentity   = "identity"
	FileTLSCert    = "tlscert"
	FileKey        = "key"
	FileHostCA     = "keyport-host-ca.crt"
	// FileTLSCACerts is the host CA's key in a kubernetes_secret destination, named as
	// Kubernetes TLS Secrets name theirs.
	FileTLSCACerts = "tlscacerts"
)

// outputService keeps one output fresh: it writes at start and after every renewal of the
// bot's identity, retrying with backoff when a write fails.
type outputService struct {
	b    *Bot
	cfg  *config.Output
	dest destination.Destination
	name string
}

func newOutputService(b *Bot, cfg *config.Output, dest destination.Destination) *outputService {
	name := cfg.Type
	switch {
	case dest != nil:
		name += " " + dest.String()
	case cfg.Type == config.OutputArgoCD:
		name += " " + cfg.SecretNamespace
	}
	return &outputService{b: b, cfg: cfg, dest: dest, name: name}
}

func (o *outputService) Name() string { return o.name }

// OneShot writes the output once.
func (o *outputService) OneShot(ctx context.Context) error {
	err := o.generate(ctx)
	o.record(err)
	return err
}

// Run writes the output now and after each renewal until ctx ends.
func (o *outputService) Run(ctx context.Context) error {
	sub := o.b.ident.subscribe()
	select {
	case <-ctx.Done():
		return nil
	case <-o.b.ident.ready:
	}
	for attempt := 0; ; {
		// This run uses the identity as it is now; a notice already pending is about it.
		select {
		case <-sub:
		default:
		}
		err := o.generate(ctx)
		if ctx.Err() != nil {
			return nil
		}
		o.record(err)
		var retry <-chan time.Time
		if err != nil {
			wait := o.b.backoff(attempt)
			attempt++
			o.b.log.Error("output failed; will retry", "output", o.name, "error", err, "retry_in", wait)
			retry = o.b.clock.After(wait)
		} else {
			attempt = 0
			o.b.log.Info("output written", "output", o.name)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sub:
			attempt = 0
		case <-retry:
		}
	}
}

func (o *outputService) record(err error) {
	o.b.status.set(o.name, err)
	if err != nil {
		o.b.metrics.outputFailures.WithLabelValues(o.name).Inc()
	} else {
		o.b.metrics.outputRenewals.WithLabelValues(o.name).Inc()
	}
}

// generate gets fresh certificates with the bot's current renewable identity and writes
// the output's files.
func (o *outputService) generate(ctx context.Context) error {
	cur := o.b.ident.current()
	if cur == nil {
		return errs.BadParameterf("the bot has no identity yet")
	}
	clt, err := client.New(client.Config{Addr: o.b.cfg.Addr(), Identity: cur.Identity})
	if err != nil {
		return err
	}
	defer func() { _ = clt.Close() }()
	if o.cfg.Type == config.OutputArgoCD {
		return o.generateArgoCD(ctx, clt, cur)
	}
	var (
		contexts    []kubeContext
		kubeCluster string
	)
	switch o.cfg.Type {
	case config.OutputKubernetes:
		kubeCluster = o.cfg.KubernetesCluster
		contexts = []kubeContext{{Name: cur.ClusterName + "-" + kubeCluster, KubeCluster: kubeCluster}}
	case config.OutputKubernetesV2:
		if contexts, err = o.selectClusters(ctx, clt, cur); err != nil {
			return err
		}
	}
	id, err := o.issue(ctx, clt, cur, kubeCluster)
	if err != nil {
		return err
	}
	files, err := o.files(cur, id, contexts)
	if err != nil {
		return err
	}
	if err := o.dest.Write(ctx, files); err != nil {
		return err
	}
	o.b.metrics.setOutputExpiry(o.name, id.Cert.NotAfter)
	return nil
}

// issue asks for a non-renewable certificate for a new key; kubeCluster routes it.
func (o *outputService) issue(ctx context.Context, clt *client.Client, cur *Current, kubeCluster string) (*identityfile.Identity, error) {
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, o.b.rand)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	certs, err := clt.GenerateBotCerts(ctx, &pb.GenerateBotCertsRequest{PublicKeyDer: pub,
		TtlSeconds: int64(o.b.cfg.CredentialTTL / time.Second), KubeCluster: kubeCluster})
	if err != nil {
		return nil, err
	}
	return identityFromCerts(key, certs)
}

// files is the set of files the output holds.
func (o *outputService) files(cur *Current, id *identityfile.Identity, contexts []kubeContext) (map[string][]byte, error) {
	keyPEM, err := tlsca.EncodeKeyPEM(id.Key)
	if err != nil {
		return nil, err
	}
	hostCAs := bytes.Join(id.HostCAs, nil)
	identityData, err := id.Encode()
	if err != nil {
		return nil, err
	}
	_, secret := o.dest.(*destination.KubeSecret)
	files := map[string][]byte{FileTLSCert: id.CertPEM, FileKey: keyPEM}
	if secret {
		files[FileTLSCACerts] = hostCAs
	} else {
		files[FileIdentity] = identityData
		files[FileHostCA] = hostCAs
	}
	if o.cfg.Type == config.OutputIdentity {
		return files, nil
	}
	p := KubeconfigParams{ClusterName: cur.ClusterName, ProxyAddr: cur.ProxyAddr, HostCAPEM: hostCAs, Contexts: contexts}
	dir, isDir := o.dest.(*destination.Directory)
	if isDir && !o.cfg.DisableExecPlugin {
		exe, err := o.executable()
		if err != nil {
			return nil, err
		}
		p.Exec = &kubeconfig.Exec{Command: exe, Args: []string{"kube", "credentials", "--destination-dir=" + dir.Path()}}
	} else {
		p.CertPEM, p.KeyPEM = id.CertPEM, keyPEM
	}
	if p.ProxyAddr == "" {
		return nil, errs.BadParameterf("the cluster did not say where its proxy is; set proxy_server so that the kubeconfig can point at it")
	}
	kc, err := BuildKubeconfig(p)
	if err != nil {
		return nil, err
	}
	files[FileKubeconfig] = kc
	return files, nil
}

func (o *outputService) executable() (string, error) {
	if o.b.opts.Executable != "" {
		return o.b.opts.Executable, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the tbot executable for the kubeconfig's exec plugin (set disable_exec_plugin to embed credentials instead): %w", err)
	}
	return filepath.Abs(exe)
}

// selectClusters lists the kube clusters the bot may reach that match the output's
// selectors, in name order, as kubeconfig contexts. A selector that matches nothing is
// logged; an output that matches nothing at all fails, since an empty kubeconfig would
// break every client that reads it.
func (o *outputService) selectClusters(ctx context.Context, clt *client.Client, cur *Current) ([]kubeContext, error) {
	resp, err := clt.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
	if err != nil {
		return nil, err
	}
	acc := resp.GetAccessible()
	var out []kubeContext
	seen := map[string]bool{}
	for i, sel := range o.cfg.Selectors {
		matched := 0
		for j, kc := range resp.GetClusters() {
			if !selectorMatches(sel, kc) {
				continue
			}
			if j < len(acc) && !acc[j] {
				o.b.log.Warn("kube cluster matches a selector but the bot's roles do not allow it; skipping", "output", o.name, "kube_cluster", kc.GetName())
				continue
			}
			matched++
			if seen[kc.GetName()] {
				continue
			}
			seen[kc.GetName()] = true
			tmpl := o.cfg.ContextNameTemplate
			if tmpl == "" {
				tmpl = config.DefaultContextNameTemplate
			}
			name, err := config.ContextName(tmpl, cur.ClusterName, kc.GetName())
			if err != nil {
				return nil, errs.BadParameterf("context_name_template: %v", err)
			}
			out = append(out, kubeContext{Name: name, KubeCluster: kc.GetName()})
		}
		if matched == 0 {
			o.b.log.Warn("a selector matches no kube cluster the bot may reach", "output", o.name, "selector", i)
		}
	}
	if len(out) == 0 {
		return nil, errs.NotFoundf("no kube cluster that the bot may reach matches the selectors of this output (see `tctl kube ls`)")
	}
	sortContexts(out)
	return out, nil
}

func selectorMatches(sel config.Selector, kc *pb.KubeCluster) bool {
	if sel.Name != "" {
		return sel.Name == kc.GetName()
	}
	for k, v := range sel.Labels {
		if got, ok := kc.GetLabels()[k]; !ok || got != v {
			return false
		}
	}
	return len(sel.Labels) > 0
}
