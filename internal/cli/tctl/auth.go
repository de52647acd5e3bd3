package tctl

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
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
