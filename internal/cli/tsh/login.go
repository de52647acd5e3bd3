package tsh

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/cli/sso"
	"github.com/keyport/keyport/internal/cli/tsh/profile"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tlsca"
)

// otpRequired is the message of the Auth Service's Login when the password was right and
// a second factor is needed (auth.OTPRequiredMessage; tsh cannot import the server).
const otpRequired = "an OTP code is required"

func (e *env) loginCmd() *cobra.Command {
	var (
		proxy, user string
		ttl         time.Duration
		insecure    bool
		requestIDs  []string
		authName    string
		browser     string
	)
	cmd := &cobra.Command{
		Use:   "login --proxy=HOST[:PORT] [--user=NAME | --auth=CONNECTOR]",
		Short: "Log in to a Keyport cluster with a password and OTP code, or through an SSO connector",
		Long: "Log in to a Keyport cluster. tsh asks for the password (without echo on a terminal; one line\n" +
			"from standard input otherwise) and, when the cluster requires it, an OTP code. The profile\n" +
			"is kept in ~/.tsh. The port of --proxy defaults to " + profile.DefaultProxyPort + ".",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(requestIDs) > 0 {
				return e.loginWithRequests(cmd.Context(), proxy, requestIDs)
			}
			if authName != "" && authName != "local" {
				return e.ssoLogin(cmd.Context(), proxy, authName, browser, ttl, insecure)
			}
			return e.login(cmd.Context(), proxy, user, ttl, insecure)
		},
	}
	f := cmd.Flags()
	f.StringVar(&proxy, "proxy", "", "address of the Keyport proxy, HOST[:PORT] (default: the current profile's)")
	f.StringVar(&user, "user", "", "Keyport user name (default: the current profile's, or $USER)")
	f.DurationVar(&ttl, "ttl", 0, "how long the certificate should be valid (default 12h, capped by the roles' max_session_ttl)")
	f.BoolVar(&insecure, "insecure", false, "do not verify the proxy's certificate (dangerous: for tests only)")
	f.StringVar(&authName, "auth", "", "sign in through this SSO connector (oidc or github) instead of a password; local is the password")
	f.StringVar(&browser, "browser", "", "with --auth: none prints the sign-in URL without opening a browser")
	f.StringSliceVar(&requestIDs, "request-id", nil, "reissue the current login with the roles of approved access requests (no password asked)")
	return cmd
}

// loginTarget resolves a login's proxy: --proxy, or the current profile's. It returns the
// profile store, the current profile (nil when there is none) and the normalised address.
func (e *env) loginTarget(proxy string) (*profile.Store, *profile.Profile, string, error) {
	st, err := e.store()
	if err != nil {
		return nil, nil, "", err
	}
	cur, _ := st.Current()
	if proxy == "" {
		if cur == nil {
			return nil, nil, "", common.UsageErrorf("--proxy is required (the address of the Keyport proxy, HOST[:PORT])")
		}
		proxy = cur.ProxyAddr
	}
	addr, err := profile.NormalizeProxy(proxy)
	if err != nil {
		return nil, nil, "", common.UsageErrorf("--proxy: %v", err)
	}
	return st, cur, addr, nil
}

// ssoLogin signs in through an SSO connector: the browser goes to the identity provider,
// comes back through the proxy to a loopback listener of this tsh, and tsh collects the
// certificate with the request's secret (package sso).
func (e *env) ssoLogin(ctx context.Context, proxy, connector, browser string, ttl time.Duration, insecure bool) error {
	st, _, addr, err := e.loginTarget(proxy)
	if err != nil {
		return err
	}
	if browser != "" && browser != "none" {
		return common.UsageErrorf("--browser: only none is supported (print the URL without opening a browser)")
	}
	clt, _, err := e.dialProxy(ctx, st, addr, insecure)
	if err != nil {
		return err
	}
	defer func() { _ = clt.Close() }()
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		return err
	}
	res, err := sso.Run(ctx, clt, sso.Options{Connector: connector, PublicKey: key.Public(), TTL: ttl, Browser: browser, Out: e.stdio.Err})
	if err != nil {
		return fmt.Errorf("SSO login failed: %w", err)
	}
	certs := res.Certs
	return e.saveLogin(st, &profile.Profile{ProxyAddr: addr, User: res.Mapping.User, ClusterName: certs.GetClusterName()}, key, certs)
}

// loginWithRequests reissues the current login's certificate with the roles (and resource
// restrictions) of approved access requests; it ends when the first request's access
// does, or when the login would have.
func (e *env) loginWithRequests(ctx context.Context, proxy string, ids []string) error {
	s, err := e.session(proxy)
	if err != nil {
		return fmt.Errorf("tsh login --request-id reissues your current login: log in first (%w)", err)
	}
	defer s.Close()
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	certs, err := s.clt.SignUser(ctx, &pb.SignUserRequest{User: s.profile.User, PublicKeyDer: der, AccessRequestIds: ids})
	if err != nil {
		return fmt.Errorf("login with access request failed: %w", err)
	}
	return e.saveLogin(s.store, s.profile, key, certs)
}

func (e *env) login(ctx context.Context, proxy, user string, ttl time.Duration, insecure bool) error {
	st, cur, addr, err := e.loginTarget(proxy)
	if err != nil {
		return err
	}
	if user == "" && cur != nil && cur.ProxyAddr == addr {
		user = cur.User
	}
	if user == "" {
		user = e.stdio.Getenv("USER")
	}
	if user == "" {
		return common.UsageErrorf("--user is required")
	}
	if ttl < 0 {
		return common.UsageErrorf("--ttl must be positive")
	}
	clt, _, err := e.dialProxy(ctx, st, addr, insecure)
	if err != nil {
		return err
	}
	defer func() { _ = clt.Close() }()
	password, err := e.prompt.Password(fmt.Sprintf("Enter password for Keyport user %s: ", user), "password")
	if err != nil {
		return err
	}
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	req := &pb.LoginRequest{User: user, Password: password, PublicKeyDer: der, TtlSeconds: int64(ttl / time.Second)}
	certs, err := clt.Login(ctx, req)
	if errs.Is(err, errs.NotAuthenticated) && strings.Contains(err.Error(), otpRequired) {
		code, perr := e.prompt.Line("Enter an OTP code from a device: ", "OTP code")
		if perr != nil {
			return perr
		}
		req.OtpCode = code
		certs, err = clt.Login(ctx, req)
	}
	if err != nil {
		return fmt.Errorf("login failed: %w", err)
	}
	return e.saveLogin(st, &profile.Profile{ProxyAddr: addr, User: user, ClusterName: certs.GetClusterName()}, key, certs)
}

// saveLogin keeps a login's key and certificates as profile p and prints its status.
func (e *env) saveLogin(st *profile.Store, p *profile.Profile, key crypto.Signer, certs *pb.Certs) error {
	cert, err := tlsca.ParseCertPEM(certs.GetTlsCertPem())
	if err != nil {
		return fmt.Errorf("the proxy returned an unreadable certificate: %w", err)
	}
	id := &identityfile.Identity{Key: key, CertPEM: certs.GetTlsCertPem(), Cert: cert, HostCAs: certs.GetHostCaPems(), UserCAs: certs.GetUserCaPems()}
	if ident, err := tlsca.FromCertificate(cert); err == nil {
		id.Identity = ident
	}
	if err := st.Save(p, id); err != nil {
		return err
	}
	e.printStatus(e.stdio.Out, p, id)
	return nil
}

func (e *env) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the current login: user, roles, Kubernetes groups and users, cluster, expiry",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			st, err := e.store()
			if err != nil {
				return err
			}
			p, err := st.Current()
			if err != nil {
				return err
			}
			id, err := st.Identity(p)
			if err != nil {
				return err
			}
			e.printStatus(e.stdio.Out, p, id)
			return nil
		},
	}
}

// printStatus prints a profile the way Teleport's tsh status does.
func (e *env) printStatus(w io.Writer, p *profile.Profile, id *identityfile.Identity) {
	var roles, groups, users []string
	if id.Identity != nil {
		roles = id.Identity.Roles
		groups = id.Identity.Traits["kubernetes_groups"]
		users = id.Identity.Traits["kubernetes_users"]
	}
	exp := id.Cert.NotAfter
	validity := fmt.Sprintf("[valid for %s]", exp.Sub(e.now()).Round(time.Minute))
	if !e.now().Before(exp) {
		validity = "[EXPIRED]"
	}
	row := func(k, v string) { fmt.Fprintf(w, "  %-19s %s\n", k+":", v) }
	fmt.Fprintf(w, "> %-19s %s\n", "Profile URL:", "https://"+p.ProxyAddr)
	row("Logged in as", p.User)
	row("Cluster", p.ClusterName)
	row("Roles", orNone(roles))
	row("Kubernetes groups", orNone(groups))
	row("Kubernetes users", orNone(users))
	if id.Identity != nil && len(id.Identity.ActiveRequests) > 0 {
		row("Active requests", strings.Join(id.Identity.ActiveRequests, ", "))
	}
	if id.Identity != nil && len(id.Identity.AllowedResources) > 0 {
		row("Allowed resources", strings.Join(id.Identity.AllowedResources, ", "))
	}
	row("Valid until", exp.Local().Format("2006-01-02 15:04:05 -0700 MST")+" "+validity)
}

func orNone(v []string) string {
	if len(v) == 0 {
		return "(none)"
	}
	return strings.Join(v, ", ")
}

func (e *env) logoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Delete the keys of every tsh login and the kubeconfig contexts tsh added",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			st, err := e.store()
			if err != nil {
				return err
			}
			profiles, err := st.Profiles()
			if err != nil {
				return err
			}
			if len(profiles) == 0 {
				fmt.Fprintln(e.stdio.Out, "You are not logged in.")
				return nil
			}
			for _, p := range profiles {
				if err := removeKubeContexts(e.kubeconfigPath(), p.ProxyAddr); err != nil {
					fmt.Fprintf(e.stdio.Err, "WARNING: could not remove the Keyport contexts from %s: %v\n", e.kubeconfigPath(), err)
				}
				if err := st.Remove(p); err != nil {
					return err
				}
				fmt.Fprintf(e.stdio.Out, "Logged out %s from %s.\n", p.User, p.ProxyAddr)
			}
			return nil
		},
	}
}

// executable is the absolute path of this tsh, for the kubeconfig's exec plugin.
func executable() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the tsh executable: %w", err)
	}
	return p, nil
}
