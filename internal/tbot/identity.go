package tbot

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tbot/destination"
	"github.com/keyport/keyport/internal/tlsca"
)

// storageIdentity is the file in the bot's storage that holds its renewable identity.
const storageIdentity = "identity"

// Current is the renewable identity and what the cluster said about itself.
type Current struct {
	Identity *identityfile.Identity
	// ClusterName is the Keyport cluster's name.
	ClusterName string
	// ProxyAddr is the proxy's public address (for kubeconfig servers).
	ProxyAddr string
}

// Generation is the renewal counter carried by the identity's certificate.
func (c *Current) Generation() uint64 {
	if c == nil || c.Identity == nil || c.Identity.Identity == nil {
		return 0
	}
	return c.Identity.Identity.Generation
}

// identityService owns the bot's renewable identity: first join, renewal on a timer (or
// on SIGHUP), and the copy in storage. Outputs subscribe to hear of each new identity.
type identityService struct {
	b     *Bot
	store destination.Destination

	mu    sync.Mutex
	cur   *Current
	subs  []chan struct{}
	ready chan struct{}
	once  sync.Once
}

func newIdentityService(b *Bot, store destination.Destination) *identityService {
	return &identityService{b: b, store: store, ready: make(chan struct{})}
}

func (s *identityService) Name() string { return "identity" }

func (s *identityService) current() *Current {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// subscribe returns a channel that receives a value after each renewal. It holds at most
// one pending notice: an output that is busy sees only that something changed.
func (s *identityService) subscribe() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{}, 1)
	s.subs = append(s.subs, ch)
	return ch
}

func (s *identityService) set(cur *Current) {
	s.mu.Lock()
	s.cur = cur
	subs := s.subs
	s.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.b.metrics.setIdentityExpiry(cur.Identity.Cert.NotAfter)
	s.b.status.set(s.Name(), nil)
	s.once.Do(func() { close(s.ready) })
}

// Init gets the first identity of this run. A stored identity is renewed rather than
// joining again: the join token is single-use, and the stored identity is the bot's
// standing in the cluster.
func (s *identityService) Init(ctx context.Context) error {
	stored, err := s.load(ctx)
	if err != nil {
		return err
	}
	if stored != nil {
		if s.b.clock.Now().Before(stored.Cert.NotAfter) {
			s.b.log.Info("renewing the stored identity", "storage", s.store.String(), "generation", generationOf(stored))
			if err := s.renew(ctx, stored); err != nil {
				s.b.metrics.renewalFailures.Inc()
				return fmt.Errorf("renewing the bot identity stored in %s: %w", s.store, err)
			}
			return nil
		}
		if s.b.cfg.Onboarding.Token == "" {
			return errs.AccessDeniedf("the bot identity stored in %s expired at %s; give a new join token (onboarding.token, --token or $%s) to join again",
				s.store, stored.Cert.NotAfter.UTC().Format(time.RFC3339), config.TokenEnv)
		}
		s.b.log.Warn("the stored identity has expired; joining again with the configured token", "expired", stored.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return s.join(ctx)
}

// Run renews every renewal_interval (±10%), on Reload, and with backoff after a failure.
func (s *identityService) Run(ctx context.Context) error {
	// A daemon may start before the network or the cluster is up: keep trying while
	// the cluster cannot be reached, but stop on an answer that retrying cannot change.
	for attempt := 0; s.current() == nil; attempt++ {
		err := s.Init(ctx)
		if err == nil {
			break
		}
		s.b.status.set(s.Name(), err)
		if ctx.Err() != nil {
			return nil
		}
		if !transient(err) {
			return err
		}
		wait := s.b.backoff(attempt)
		s.b.log.Error("cannot get the bot identity yet; will retry", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-s.b.clock.After(wait):
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.b.clock.After(s.b.jittered(s.b.cfg.RenewalInterval)):
		case <-s.b.opts.Reload:
			s.b.log.Info("renewing now (reload requested)")
		}
		for attempt := 0; ; attempt++ {
			err := s.renew(ctx, s.current().Identity)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			s.b.metrics.renewalFailures.Inc()
			s.b.status.set(s.Name(), err)
			wait := s.b.backoff(attempt)
			s.b.log.Error("renewing the bot identity failed; will retry", "error", err, "retry_in", wait, "expires", s.current().Identity.Cert.NotAfter.UTC().Format(time.RFC3339))
			select {
			case <-ctx.Done():
				return nil
			case <-s.b.clock.After(wait):
			case <-s.b.opts.Reload:
			}
		}
	}
}

func (s *identityService) load(ctx context.Context) (*identityfile.Identity, error) {
	data, err := s.store.Read(ctx, storageIdentity)
	if errs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the bot's storage %s: %w", s.store, err)
	}
	id, err := identityfile.Decode(s.store.String()+"/"+storageIdentity, data)
	if err != nil {
		return nil, fmt.Errorf("the bot's storage %s holds an unreadable identity (remove it to join again): %w", s.store, err)
	}
	if id.Identity == nil || !id.Identity.Renewable {
		return nil, errs.BadParameterf("the bot's storage %s holds an identity that is not a renewable bot identity; remove it to join again", s.store)
	}
	return id, nil
}

// join exchanges the join token for the first renewable identity. The server is checked
// (ca_pins, system roots, or nothing with insecure) during the TLS handshake, before the
// token is sent.
func (s *identityService) join(ctx context.Context) error {
	cfg := s.b.cfg
	// What can be wrong on this host is said before the network is touched.
	if err := s.preflight(); err != nil {
		return err
	}
	trust := newFirstContact(cfg, s.b.opts.SystemRoots)
	clt, err := client.New(trust.clientConfig(cfg.Addr()))
	if err != nil {
		return err
	}
	defer func() { _ = clt.Close() }()
	// Ping first: it proves the server passed the trust check before any secret leaves,
	// and says which cluster this is.
	ping, err := clt.Ping(ctx, &pb.PingRequest{})
	if err != nil {
		return trust.explain(err)
	}
	if len(cfg.Onboarding.CAPins) > 0 && ping.GetHostCaPin() != "" {
		if !pinListed(ping.GetHostCaPin(), cfg.Onboarding.CAPins) {
			return errs.AccessDeniedf("the cluster at %s reports host CA pin %s, which matches none of onboarding.ca_pins; not sending the join token", cfg.Addr(), ping.GetHostCaPin())
		}
	}
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, s.b.rand)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	req := &pb.JoinBotRequest{JoinMethod: cfg.Onboarding.JoinMethod, PublicKeyDer: pub,
		Hostname: s.b.opts.Hostname, TtlSeconds: int64(cfg.CredentialTTL / time.Second)}
	if cfg.Onboarding.JoinMethod == config.JoinBoundKeypair {
		err = s.boundKeypairProof(ctx, clt, ping.GetClusterName(), req)
	} else {
		req.Token, err = s.joinSecret(ctx, ping.GetClusterName())
	}
	if err != nil {
		return err
	}
	certs, err := clt.JoinBot(ctx, req)
	if err != nil {
		return fmt.Errorf("joining %s: %w", cfg.Addr(), trust.explain(err))
	}
	id, err := identityFromCerts(key, certs)
	if err != nil {
		return err
	}
	if err := trust.checkIssuedCAs(id); err != nil {
		return err
	}
	if err := s.save(ctx, id); err != nil {
		return err
	}
	s.b.metrics.joins.Inc()
	s.b.log.Info("joined the cluster", "cluster", certs.GetClusterName(), "bot", id.Identity.BotName, "instance", id.Identity.BotInstanceID)
	s.set(&Current{Identity: id, ClusterName: pickString(ping.GetClusterName(), certs.GetClusterName()), ProxyAddr: s.proxyAddr(ping)})
	return nil
}

// joinSecret is what JoinBotRequest.token carries: the join token for method token; for
// method kubernetes, the token resource's name (onboarding.token, as in Teleport) and
// the pod's service account token read now from its file (the kubelet rotates it), as
// "<name>\n<JWT>" — the request has one field for both, and a newline can be in neither.
//
// The CI methods (github, gitlab, oidc) send "<name>\n<ID token>" the same way, with the
// ID token fetched from the platform now; clusterName is the audience GitHub's token
// service is asked for unless onboarding.audience says otherwise.
func (s *identityService) joinSecret(ctx context.Context, clusterName string) (string, error) {
	ob := s.b.cfg.Onboarding
	if ob.JoinMethod == config.JoinToken {
		return resolveToken(ob.Token)
	}
	name := strings.TrimSpace(ob.Token)
	if name == "" {
		return "", errs.BadParameterf("join method %s: set onboarding.token (or --token, or $%s) to the name of the join token (`tctl get tokens`)", ob.JoinMethod, config.TokenEnv)
	}
	var (
		idToken string
		err     error
	)
	switch ob.JoinMethod {
	case config.JoinGitHub:
		aud := ob.Audience
		if aud == "" {
			aud = clusterName
		}
		idToken, err = githubIDToken(ctx, s.b.opts.HTTPClient, aud)
	case config.JoinGitLab:
		idToken, err = envIDToken(ob.GitLab.TokenEnvVarName, "declare it in the job's id_tokens: block with aud set to the cluster name")
	case config.JoinOIDC:
		if ob.OIDC.TokenFile != "" {
			idToken, err = fileIDToken(ob.OIDC.TokenFile)
		} else {
			idToken, err = envIDToken(ob.OIDC.TokenEnvVarName, "the platform sets it in the job's environment")
		}
	case config.JoinKubernetes:
		idToken, err = s.kubernetesToken()
	default:
		return "", errs.BadParameterf("join method %s is not supported here", ob.JoinMethod)
	}
	if err != nil {
		return "", fmt.Errorf("join method %s: %w", ob.JoinMethod, err)
	}
	return name + "\n" + idToken, nil
}

// preflight checks the join parameters that need no cluster: the token (or the token
// resource's name) and the local source of the proof.
func (s *identityService) preflight() error {
	ob := s.b.cfg.Onboarding
	switch ob.JoinMethod {
	case config.JoinGitHub:
		if strings.TrimSpace(ob.Token) == "" {
			return errs.BadParameterf("join method github: set onboarding.token (or --token, or $%s) to the name of the join token (`tctl get tokens`)", config.TokenEnv)
		}
		if os.Getenv(GitHubTokenURLEnv) == "" || os.Getenv(GitHubRequestTokenEnv) == "" {
			return errs.BadParameterf("join method github: $%s and $%s are not set: run tbot in a GitHub Actions job with `permissions: id-token: write`", GitHubTokenURLEnv, GitHubRequestTokenEnv)
		}
		return nil
	case config.JoinBoundKeypair:
		if strings.TrimSpace(ob.Token) == "" {
			return errs.BadParameterf("join method bound_keypair: set onboarding.token (or --token) to the join token's name `tctl bots add` printed")
		}
		return nil
	}
	_, err := s.joinSecret(context.Background(), "")
	return err
}

// kubernetesToken reads the pod's projected service account token now (the kubelet
// rotates it).
func (s *identityService) kubernetesToken() (string, error) {
	path := s.b.opts.KubernetesTokenPath
	data, err := os.ReadFile(path)
	if err != nil {
		return "", errs.BadParameterf("reading the pod's service account token: %v (mount a projected service account token there, or set $%s to its path)", err, KubernetesTokenPathEnv)
	}
	jwt := strings.TrimSpace(string(data))
	if jwt == "" || strings.ContainsAny(jwt, " \t\r\n") {
		return "", errs.BadParameterf("%s does not hold a service account token", path)
	}
	return jwt, nil
}

// renew exchanges from (the current renewable identity) for the next generation.
func (s *identityService) renew(ctx context.Context, from *identityfile.Identity) error {
	cfg := s.b.cfg
	clt, err := client.New(client.Config{Addr: cfg.Addr(), Identity: from})
	if err != nil {
		return err
	}
	defer func() { _ = clt.Close() }()
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, s.b.rand)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	certs, err := clt.RenewBot(ctx, &pb.RenewBotRequest{PublicKeyDer: pub, TtlSeconds: int64(cfg.CredentialTTL / time.Second)})
	if err != nil {
		return err
	}
	id, err := identityFromCerts(key, certs)
	if err != nil {
		return err
	}
	// Save before anything else: the server has moved to the new generation, and losing
	// it would make the next start renew a stale one and lock this instance.
	if err := s.save(ctx, id); err != nil {
		return err
	}
	cur := &Current{Identity: id, ClusterName: certs.GetClusterName()}
	if prev := s.current(); prev != nil {
		cur.ProxyAddr = prev.ProxyAddr
	}
	if ping, err := clt.Ping(ctx, &pb.PingRequest{}); err == nil {
		cur.ClusterName = pickString(ping.GetClusterName(), cur.ClusterName)
		cur.ProxyAddr = s.proxyAddr(ping)
	} else if cur.ProxyAddr == "" {
		cur.ProxyAddr = s.proxyAddr(nil)
	}
	s.b.metrics.renewals.Inc()
	s.b.log.Info("renewed the bot identity", "generation", generationOf(id), "expires", id.Cert.NotAfter.UTC().Format(time.RFC3339))
	s.set(cur)
	return nil
}

func (s *identityService) save(ctx context.Context, id *identityfile.Identity) error {
	data, err := id.Encode()
	if err != nil {
		return err
	}
	if err := s.store.Write(ctx, map[string][]byte{storageIdentity: data}); err != nil {
		return fmt.Errorf("saving the bot identity to %s: %w", s.store, err)
	}
	return nil
}

// proxyAddr is where kube clients reach the proxy: its advertised public address, else
// the address tbot itself uses.
func (s *identityService) proxyAddr(ping *pb.PingResponse) string {
	if ping != nil && ping.GetProxyPublicAddr() != "" {
		addr := ping.GetProxyPublicAddr()
		// A proxy without public_addr advertises its listen address, which may be a
		// wildcard that no client can dial; the address tbot used is better then.
		host, _, err := net.SplitHostPort(addr)
		wildcard := err == nil && (host == "" || net.ParseIP(host) != nil && net.ParseIP(host).IsUnspecified())
		if !wildcard || s.b.cfg.ProxyServer == "" {
			return addr
		}
	}
	if s.b.cfg.ProxyServer != "" {
		return s.b.cfg.ProxyServer
	}
	return ""
}

func identityFromCerts(key crypto.Signer, certs *pb.Certs) (*identityfile.Identity, error) {
	cert, err := tlsca.ParseCertPEM(certs.GetTlsCertPem())
	if err != nil {
		return nil, fmt.Errorf("the server returned an unreadable certificate: %w", err)
	}
	if len(certs.GetHostCaPems()) == 0 {
		return nil, errs.BadParameterf("the server returned no host CA")
	}
	id := &identityfile.Identity{Key: key, CertPEM: certs.GetTlsCertPem(), Cert: cert, HostCAs: certs.GetHostCaPems(), UserCAs: certs.GetUserCaPems()}
	if id.Identity, err = tlsca.FromCertificate(cert); err != nil {
		return nil, err
	}
	return id, nil
}

func generationOf(id *identityfile.Identity) uint64 {
	if id == nil || id.Identity == nil {
		return 0
	}
	return id.Identity.Generation
}

// resolveToken returns the token: the value itself, or the content of the file it names
// (so that the secret need not appear in tbot.yaml or on a command line).
func resolveToken(tok string) (string, error) {
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", errs.BadParameterf("no join token: set onboarding.token (the token or a file holding it), --token, or $%s", config.TokenEnv)
	}
	if fi, err := os.Stat(tok); err == nil && fi.Mode().IsRegular() {
		data, err := os.ReadFile(tok)
		if err != nil {
			return "", fmt.Errorf("reading the join token file: %w", err)
		}
		v := strings.TrimSpace(string(data))
		if v == "" {
			return "", errs.BadParameterf("the join token file %s is empty", tok)
		}
		return v, nil
	}
	if strings.ContainsRune(tok, '/') {
		return "", errs.BadParameterf("the join token file %s does not exist", tok)
	}
	return tok, nil
}

func pickString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// transient reports failures that a later attempt may not have: the cluster could not be
// reached, did not answer, or asked us to slow down.
func transient(err error) bool {
	if errs.IsLimitExceeded(err) {
		return true
	}
	msg := err.Error()
	return errs.KindOf(err) == errs.Unknown &&
		(strings.Contains(msg, "cannot reach the Keyport auth server") || strings.Contains(msg, "did not answer in time"))
}
