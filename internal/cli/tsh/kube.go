package tsh

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/tsh/profile"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/kubeconfig"
	"github.com/keyport/keyport/internal/tbot/kubecreds"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// kubeCertMargin: a cached kube certificate this close to expiry is replaced, so that
// kubectl never starts a request with one about to run out.
const kubeCertMargin = time.Minute

func (e *env) kubeCmd() *cobra.Command {
	kube := &cobra.Command{Use: "kube", Short: "Kubernetes access through Keyport"}
	var proxy string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the Kubernetes clusters you may reach",
		Args:  cobra.NoArgs,
		RunE:  e.withSession(nil, e.kubeLS),
	}
	login := &cobra.Command{
		Use:   "login CLUSTER",
		Short: "Add a kubeconfig context for CLUSTER ($KUBECONFIG or ~/.kube/config) and make it current",
		Args:  cobra.ExactArgs(1),
		RunE:  e.withSession(nil, e.kubeLogin),
	}
	var kubeCluster string
	creds := &cobra.Command{
		Use:   "credentials --kube-cluster=CLUSTER",
		Short: "Print an ExecCredential for kubectl (the exec plugin of the contexts tsh kube login writes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if kubeCluster == "" {
				return &errs.UsageError{Err: fmt.Errorf("--kube-cluster is required")}
			}
			return e.kubeCredentials(cmd.Context(), proxy, kubeCluster)
		},
	}
	creds.Flags().StringVar(&kubeCluster, "kube-cluster", "", "the kube cluster")
	creds.Flags().StringVar(&proxy, "proxy", "", "the proxy whose profile to use (default: the current profile)")
	kube.AddCommand(ls, login, creds, e.kubeSessionsCmd(), e.kubeJoinCmd())
	return kube
}

// contextName is the kubeconfig context tsh kube login writes: <keyport cluster>-<kube
// cluster>, as tbot's kubernetes output and Teleport's tsh name theirs.
func contextName(p *profile.Profile, kubeCluster string) string {
	return p.ClusterName + "-" + kubeCluster
}

func (e *env) kubeLS(ctx context.Context, s *session, _ []string) error {
	resp, err := s.clt.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
	if err != nil {
		return err
	}
	current := ""
	if cfg, err := loadKubeconfig(e.kubeconfigPath()); err == nil {
		current = cfg.CurrentContext
	}
	tw := tabwriter.NewWriter(e.stdio.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Kube Cluster Name\tLabels\tSelected")
	fmt.Fprintln(tw, "-----------------\t------\t--------")
	for i, c := range resp.GetClusters() {
		if i >= len(resp.GetAccessible()) || !resp.GetAccessible()[i] {
			continue
		}
		sel := ""
		if current == contextName(s.profile, c.GetName()) {
			sel = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.GetName(), types.FormatLabels(c.GetLabels(), ","), sel)
	}
	return tw.Flush()
}

func (e *env) kubeLogin(ctx context.Context, s *session, args []string) error {
	name := args[0]
	resp, err := s.clt.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
	if err != nil {
		return err
	}
	i := slices.IndexFunc(resp.GetClusters(), func(c *pb.KubeCluster) bool { return c.GetName() == name })
	if i < 0 {
		return errs.NotFoundf("kube cluster %q is not registered with %s (see tsh kube ls)", name, s.profile.ClusterName)
	}
	if i >= len(resp.GetAccessible()) || !resp.GetAccessible()[i] {
		return errs.AccessDeniedf("your roles do not grant access to kube cluster %q (see tsh kube ls)", name)
	}
	// Get the certificate now, so that a problem shows here rather than in kubectl.
	if _, err := e.kubeIdentity(ctx, s.store, s.profile, s, name); err != nil {
		return err
	}
	tsh, err := executable()
	if err != nil {
		return err
	}
	path := e.kubeconfigPath()
	ctxName := contextName(s.profile, name)
	entry := kubeconfig.Build(kubeconfig.Params{
		ProxyAddr: s.profile.ProxyAddr, ClusterName: s.profile.ClusterName, HostCAPEM: joinPEM(s.id.HostCAs),
		Clusters: []kubeconfig.Cluster{{ContextName: ctxName, KubeCluster: name}},
		ExecFor: func(c kubeconfig.Cluster) *kubeconfig.Exec {
			return &kubeconfig.Exec{Command: tsh, Args: credentialsArgs(s.profile, c.KubeCluster)}
		},
	})
	if err := mergeKubeconfig(path, entry, ctxName); err != nil {
		return err
	}
	fmt.Fprintf(e.stdio.Out, "Logged into Kubernetes cluster %q. Context %q in %s is now current.\nTry 'kubectl version' to test the connection.\n", name, ctxName, path)
	return nil
}

// credentialsArgs are the exec plugin's arguments.
func credentialsArgs(p *profile.Profile, kubeCluster string) []string {
	return []string{"kube", "credentials", "--kube-cluster=" + kubeCluster, "--proxy=" + p.ProxyAddr}
}

func joinPEM(blocks [][]byte) []byte {
	var out []byte
	for _, b := range blocks {
		out = append(out, b...)
	}
	return out
}

// kubeCredentials prints the ExecCredential for a kube cluster. It uses the cached
// certificate while it is good, and otherwise asks the Auth Service for a new one with
// the login's identity.
func (e *env) kubeCredentials(ctx context.Context, proxy, kubeCluster string) error {
	st, err := e.store()
	if err != nil {
		return err
	}
	var p *profile.Profile
	if proxy == "" {
		p, err = st.Current()
	} else {
		var addr string
		if addr, err = profile.NormalizeProxy(proxy); err == nil {
			p, err = st.Get(addr)
		}
	}
	if err != nil {
		return err
	}
	if _, err := e.kubeIdentity(ctx, st, p, nil, kubeCluster); err != nil {
		return err
	}
	out, err := kubecreds.FromDir(st.KubeDir(p, kubeCluster), e.now())
	if err != nil {
		return err
	}
	_, err = e.stdio.Out.Write(out)
	return err
}

// kubeIdentity returns a certificate routed to kubeCluster: the cached one if it is good
// for a while yet, else a new one signed for this user, valid no longer than the login.
// s may be nil; a session is opened only when a certificate must be issued.
func (e *env) kubeIdentity(ctx context.Context, st *profile.Store, p *profile.Profile, s *session, kubeCluster string) (*identityfile.Identity, error) {
	now := e.now()
	login, err := st.ValidIdentity(p, now)
	if err != nil {
		return nil, err
	}
	// The cache belongs to this login: tsh login empties it.
	if id, err := st.KubeIdentity(p, kubeCluster); err == nil && id.Cert.NotAfter.Sub(now) > kubeCertMargin &&
		id.Identity != nil && id.Identity.KubeCluster == kubeCluster {
		return id, nil
	}
	if s == nil {
		if s, err = e.session(p.ProxyAddr); err != nil {
			return nil, err
		}
		defer s.Close()
	}
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	ttl := login.Cert.NotAfter.Sub(now)
	certs, err := s.clt.SignUser(ctx, &pb.SignUserRequest{User: p.User, PublicKeyDer: der, TtlSeconds: int64(ttl / time.Second), KubeCluster: kubeCluster})
	if err != nil {
		return nil, err
	}
	cert, err := tlsca.ParseCertPEM(certs.GetTlsCertPem())
	if err != nil {
		return nil, fmt.Errorf("the proxy returned an unreadable certificate: %w", err)
	}
	id := &identityfile.Identity{Key: key, CertPEM: certs.GetTlsCertPem(), Cert: cert, HostCAs: certs.GetHostCaPems(), UserCAs: certs.GetUserCaPems()}
	if ident, err := tlsca.FromCertificate(cert); err == nil {
		id.Identity = ident
	}
	if err := st.SaveKubeIdentity(p, kubeCluster, id); err != nil {
		return nil, err
	}
	return id, nil
}

// kubeconfigPath is where kube contexts go: the first file of $KUBECONFIG, or
// ~/.kube/config, as kubectl itself decides where new entries go.
func (e *env) kubeconfigPath() string {
	if v := e.stdio.Getenv("KUBECONFIG"); v != "" {
		for _, p := range filepath.SplitList(v) {
			if p != "" {
				return p
			}
		}
	}
	home := e.stdio.Getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".kube", "config")
}

func loadKubeconfig(path string) (*clientcmdapi.Config, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if os.IsNotExist(err) {
		return clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// mergeKubeconfig adds entry's cluster, user and context to the kubeconfig at path,
// replacing entries of the same name and leaving every other entry as it was, and makes
// ctxName current.
func mergeKubeconfig(path string, entry *clientcmdapi.Config, ctxName string) error {
	cfg, err := loadKubeconfig(path)
	if err != nil {
		return err
	}
	for k, v := range entry.Clusters {
		cfg.Clusters[k] = v
	}
	for k, v := range entry.AuthInfos {
		cfg.AuthInfos[k] = v
	}
	for k, v := range entry.Contexts {
		cfg.Contexts[k] = v
	}
	cfg.CurrentContext = ctxName
	return writeKubeconfig(path, cfg)
}

// removeKubeContexts deletes the contexts (and their clusters and users) whose exec
// plugin is tsh for proxy; a current context among them is unset.
func removeKubeContexts(path, proxy string) error {
	cfg, err := clientcmd.LoadFromFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	changed := false
	for name, c := range cfg.Contexts {
		ai := cfg.AuthInfos[c.AuthInfo]
		if ai == nil || ai.Exec == nil || !slices.Contains(ai.Exec.Args, "--proxy="+proxy) || !slices.Contains(ai.Exec.Args, "credentials") {
			continue
		}
		delete(cfg.AuthInfos, c.AuthInfo)
		delete(cfg.Clusters, c.Cluster)
		delete(cfg.Contexts, name)
		if cfg.CurrentContext == name {
			cfg.CurrentContext = ""
		}
		changed = true
	}
	if !changed {
		return nil
	}
	return writeKubeconfig(path, cfg)
}

// writeKubeconfig replaces the file at path (through a symlink to its target)
// atomically, 0600, creating its directory if needed.
func writeKubeconfig(path string, cfg *clientcmdapi.Config) error {
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	return identityfile.WriteFileAtomic(path, data)
}
