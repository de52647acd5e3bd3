package tctl

import (
	"context"
	"crypto/x509"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/kubeconfig"
	"github.com/keyport/keyport/internal/tlsca"
)

func (e *env) kubeCmd() *cobra.Command {
	kube := &cobra.Command{Use: "kube", Short: "Kubernetes clusters enrolled in Keyport"}
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List kube clusters, their labels, and whether you may reach them",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			resp, err := clt.ListKubeClusters(ctx, &pb.ListKubeClustersRequest{})
			if err != nil {
				return err
			}
			var rows [][]string
			for i, c := range resp.GetClusters() {
				access := "no"
				if i < len(resp.GetAccessible()) && resp.GetAccessible()[i] {
					access = "yes"
				}
				rows = append(rows, []string{c.GetName(), fmtLabels(c.GetLabels()), access})
			}
			table(e.stdio.Out, []string{"Kube Cluster Name", "Labels", "Access"}, rows)
			return nil
		}),
	}
	var canUser, canBot, canCluster, canNS string
	can := &cobra.Command{
		Use:   "can-i --user=NAME|--bot=NAME --cluster=C VERB RESOURCE[/SUBRESOURCE] [NAME] [-n NS]",
		Short: "Whether a user or bot may do something in a kube cluster: Keyport RBAC and the cluster's own",
		Long: "Prints yes, or no with the layer that refused (Keyport or the cluster's RBAC) and why.\n" +
			"Exits 0 for yes and 1 for no, as kubectl auth can-i does.",
		Args: cobra.RangeArgs(2, 3),
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, args []string) error {
			if (canUser == "") == (canBot == "") {
				return common.UsageErrorf("give exactly one of --user and --bot")
			}
			if canCluster == "" {
				return common.UsageErrorf("--cluster is required")
			}
			req := &pb.KubeCanIRequest{User: canUser, Bot: canBot, Cluster: canCluster, Verb: args[0], Resource: args[1], Namespace: canNS}
			if len(args) == 3 {
				req.Name = args[2]
			}
			resp, err := clt.KubeCanI(ctx, req)
			if err != nil {
				return err
			}
			if resp.GetAllowed() {
				fmt.Fprintln(e.stdio.Out, "yes")
				return nil
			}
			layer := "Keyport"
			if resp.GetDeniedBy() == "kubernetes" {
				layer = "the cluster's RBAC (as " + resp.GetImpersonatedUser() + ", groups " + strings.Join(resp.GetImpersonatedGroups(), ",") + ")"
			}
			fmt.Fprintf(e.stdio.Out, "no - denied by %s: %s\n", layer, resp.GetReason())
			return &common.QuietExit{Code: 1}
		}),
	}
	can.Flags().StringVar(&canUser, "user", "", "the user to ask about")
	can.Flags().StringVar(&canBot, "bot", "", "the bot to ask about")
	can.Flags().StringVar(&canCluster, "cluster", "", "the kube cluster")
	can.Flags().StringVarP(&canNS, "namespace", "n", "", "the namespace (default: cluster-wide)")
	kube.AddCommand(ls, can)
	return kube
}

func fmtLabels(l map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

func (e *env) lockCmd() *cobra.Command {
	var user, role, bot, instance, message, expires string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "lock --user=NAME | --role=NAME | --bot=NAME | --bot-instance-id=ID",
		Short: "Lock an identity out of the cluster",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			n := 0
			for _, v := range []string{user, role, bot, instance} {
				if v != "" {
					n++
				}
			}
			if n != 1 {
				return common.UsageErrorf("give exactly one of --user, --role, --bot, --bot-instance-id")
			}
			req := &pb.CreateLockRequest{User: user, Role: role, Bot: bot, BotInstanceId: instance, Message: message, TtlSeconds: int64(ttl / time.Second)}
			if expires != "" {
				t, err := time.Parse(time.RFC3339, expires)
				if err != nil {
					return common.UsageErrorf("--expires: want RFC 3339 time such as 2026-12-01T15:04:05Z")
				}
				req.ExpiresUnix = t.Unix()
			}
			p, err := clt.CreateLock(ctx, req)
			if err != nil {
				return err
			}
			r, err := fromPB(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdio.Out, "Created a lock with name %q.\n", r.GetName())
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "lock a user")
	f.StringVar(&role, "role", "", "lock everyone with a role")
	f.StringVar(&bot, "bot", "", "lock a bot (all its instances)")
	f.StringVar(&instance, "bot-instance-id", "", "lock one bot instance")
	f.StringVar(&message, "message", "", "message shown to the locked identity")
	f.DurationVar(&ttl, "ttl", 0, "lock duration (default: until removed)")
	f.StringVar(&expires, "expires", "", "lock expiry time (RFC 3339)")
	return cmd
}

func (e *env) authCmd() *cobra.Command {
	authCmd := &cobra.Command{Use: "auth", Short: "Certificate operations"}
	var user, format, kubeCluster, out, proxy string
	var ttl time.Duration
	sign := &cobra.Command{
		Use:   "sign --user=NAME --format=kubernetes|identity --out=FILE",
		Short: "Issue short-lived credentials for a user (break-glass, CI)",
		Args:  cobra.NoArgs,
		RunE: e.run(func(ctx context.Context, clt *client.Client, _ *cobra.Command, _ []string) error {
			if user == "" || out == "" {
				return common.UsageErrorf("--user and --out are required")
			}
			if format != "kubernetes" && format != "identity" {
				return common.UsageErrorf("--format must be kubernetes or identity")
			}
			if format == "kubernetes" && kubeCluster == "" {
				return common.UsageErrorf("--format=kubernetes needs --kube-cluster")
			}
			key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
			if err != nil {
				return err
			}
			der, err := x509.MarshalPKIXPublicKey(key.Public())
			if err != nil {
				return err
			}
			certs, err := clt.SignUser(ctx, &pb.SignUserRequest{User: user, PublicKeyDer: der, TtlSeconds: int64(ttl / time.Second), KubeCluster: kubeCluster})
			if err != nil {
				return err
			}
			cert, err := tlsca.ParseCertPEM(certs.GetTlsCertPem())
			if err != nil {
				return err
			}
			var data []byte
			switch format {
			case "identity":
				id := &identityfile.Identity{Key: key, CertPEM: certs.GetTlsCertPem(), Cert: cert, HostCAs: certs.GetHostCaPems(), UserCAs: certs.GetUserCaPems()}
				data, err = id.Encode()
			default:
				if proxy == "" {
					ping, perr := clt.Ping(ctx, &pb.PingRequest{})
					if perr != nil {
						return perr
					}
					proxy = ping.GetProxyPublicAddr()
				}
				if proxy == "" {
					return errs.BadParameterf("the cluster has no proxy public address; pass --proxy=HOST:PORT")
				}
				keyPEM, kerr := tlsca.EncodeKeyPEM(key)
				if kerr != nil {
					return kerr
				}
				name := certs.GetClusterName() + "-" + kubeCluster
				cfg := kubeconfig.Build(kubeconfig.Params{ProxyAddr: proxy, ClusterName: certs.GetClusterName(), HostCAPEM: joinPEM(certs.GetHostCaPems()),
					Clusters: []kubeconfig.Cluster{{ContextName: name, KubeCluster: kubeCluster}}, CertPEM: certs.GetTlsCertPem(), KeyPEM: keyPEM})
				data, err = kubeconfig.Marshal(cfg)
			}
			if err != nil {
				return err
			}
			if err := identityfile.WriteFileAtomic(out, data); err != nil {
				return err
			}
			fmt.Fprintf(e.stdio.Out, "The credentials have been written to %s, valid until %s.\n", out, cert.NotAfter.UTC().Format(time.RFC3339))
			return nil
		}),
	}
	f := sign.Flags()
	f.StringVar(&user, "user", "", "the user to sign for")
	f.StringVar(&format, "format", "identity", "kubernetes (a kubeconfig) or identity")
	f.StringVar(&kubeCluster, "kube-cluster", "", "the kube cluster (for --format=kubernetes)")
	f.StringVarP(&out, "out", "o", "", "output file (written 0600)")
	f.DurationVar(&ttl, "ttl", time.Hour, "certificate lifetime")
	f.StringVar(&proxy, "proxy", "", "proxy address for the kubeconfig (default: the cluster's public address)")
	authCmd.AddCommand(sign)
	_ = os.Stdout
	return authCmd
}

func joinPEM(blocks [][]byte) []byte {
	var out []byte
	for _, b := range blocks {
		out = append(out, b...)
	}
	return out
}
