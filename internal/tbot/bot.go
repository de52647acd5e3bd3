// Package tbot is the core of Keyport's Machine ID agent: it joins the cluster once with a
// single-use token or, in a pod, with its service account token (join method
// kubernetes), keeps the bot's renewable identity in its storage, renews it every
// renewal_interval, and keeps each output (kubeconfig, identity file, Argo CD Secrets)
// fresh with short-lived certificates. The daemon is a list of components — the identity
// service, one service per output and the diagnostics server — that stop together; each
// output also has a one-shot form for `tbot start --oneshot`.
//
// tbot runs on machines that must not carry server code: it talks to the cluster only
// through internal/client, and internal/archtest keeps internal/auth, internal/proxy,
// internal/kube and internal/service out of its imports.
package tbot

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/runner"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tbot/destination"
)

// The pod's service account token for join method kubernetes, where Teleport's tbot
// looks for it: the default service account token every pod has, unless
// $KUBERNETES_TOKEN_PATH names another file — typically a projected token volume such as
// /var/run/secrets/tokens/join-sa-token, as Teleport's Helm charts mount it.
const (
	DefaultKubernetesTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	KubernetesTokenPathEnv     = "KUBERNETES_TOKEN_PATH"
)

// Options configure a Bot. Only Config is required; the rest are injected so that tests
// control time, randomness and the environment.
type Options struct {
	Config *config.Config
	Logger *slog.Logger
	// Clock drives renewals and backoff (default: the wall clock).
	Clock clock.Clock
	// Rand is the randomness for private keys (default: the OS CSPRNG).
	Rand io.Reader
	// Jitter returns a number in [0, 1) that spreads renewals over ±10% of the interval
	// (default: math/rand/v2).
	Jitter func() float64
	// Executable is the tbot path written into exec-plugin kubeconfigs (default:
	// os.Executable()).
	Executable string
	// Hostname is reported to the Auth Service at join (default: os.Hostname()).
	Hostname string
	// KubernetesTokenPath is the pod's service account token for join method kubernetes
	// (default DefaultKubernetesTokenPath; the CLI takes $KUBERNETES_TOKEN_PATH).
	KubernetesTokenPath string
	// HTTPClient fetches ID tokens from a CI platform (GitHub Actions' runner); the
	// default trusts the system roots.
	HTTPClient *http.Client
	// Reload asks for a renewal now (SIGHUP).
	Reload <-chan struct{}
	// SystemRoots verifies the proxy on first contact when no ca_pins are set (default:
	// the system's roots).
	SystemRoots *x509.CertPool
	// Storage overrides the configured storage (tests).
	Storage destination.Destination
	// KubeAPI overrides how kubernetes_secret destinations (and kubernetes/argo-cd
	// Secrets) reach the Kubernetes API (default: in-cluster, with the pod's service
	// account). For tests against an API server tbot does not run in.
	KubeAPI *destination.KubeAPI
	// ArgoCDSecret overrides where kubernetes/argo-cd outputs write each cluster Secret
	// (default: a Secret through the in-cluster Kubernetes API).
	ArgoCDSecret func(name, namespace string, labels map[string]string) destination.Destination
}

// Bot is a configured tbot.
type Bot struct {
	cfg     *config.Config
	log     *slog.Logger
	clock   clock.Clock
	rand    io.Reader
	jitter  func() float64
	opts    Options
	ident   *identityService
	outputs []*outputService
	metrics *metrics
	status  *statusBoard
}

// New checks the options and builds the bot's services; nothing talks to the network yet.
func New(opts Options) (*Bot, error) {
	if opts.Config == nil {
		return nil, errors.New("tbot: no config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Rand == nil {
		opts.Rand = clock.Rand
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	if opts.KubernetesTokenPath == "" {
		opts.KubernetesTokenPath = DefaultKubernetesTokenPath
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	b := &Bot{cfg: opts.Config, log: opts.Logger, clock: opts.Clock, rand: opts.Rand, jitter: opts.Jitter, opts: opts,
		status: newStatusBoard()}
	b.metrics = newMetrics(b)
	store := opts.Storage
	if store == nil {
		var err error
		if store, err = destination.New(b.cfg.Storage, b.log.With("destination", "storage")); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
	}
	b.ident = newIdentityService(b, store)
	b.status.add(b.ident.Name())
	for i := range b.cfg.Outputs {
		oc := &b.cfg.Outputs[i]
		var dest destination.Destination
		if oc.Destination != nil {
			var err error
			if dest, err = destination.New(oc.Destination, b.log.With("output", oc.Type)); err != nil {
				return nil, fmt.Errorf("output %d (%s): %w", i+1, oc.Type, err)
			}
			if ks, ok := dest.(*destination.KubeSecret); ok && opts.KubeAPI != nil {
				ks.UseAPI(opts.KubeAPI)
			}
		}
		o := newOutputService(b, oc, dest)
		b.outputs = append(b.outputs, o)
		b.status.add(o.Name())
	}
	if b.cfg.Insecure {
		b.log.Warn("INSECURE: tbot will not verify the proxy's certificate when it joins; anyone between this host and the proxy can impersonate the cluster and steal the join token. Use onboarding.ca_pins instead.")
	}
	return b, nil
}

// service is one component of the daemon.
type service interface {
	Name() string
	Run(ctx context.Context) error
}

// OneShot joins or renews once, writes every output once and returns. It fails if any
// output could not be written; the others are still attempted, so one broken output does
// not leave the rest stale.
func (b *Bot) OneShot(ctx context.Context) error {
	if err := b.ident.Init(ctx); err != nil {
		return err
	}
	var failed []string
	for _, o := range b.outputs {
		if err := o.OneShot(ctx); err != nil {
			b.log.Error("output failed", "output", o.Name(), "error", err)
			failed = append(failed, fmt.Sprintf("%s: %v", o.Name(), err))
			continue
		}
		b.log.Info("output written", "output", o.Name())
	}
	switch len(failed) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("output %s", failed[0])
	default:
		return fmt.Errorf("%d outputs failed: %s", len(failed), strings.Join(failed, "; "))
	}
}

// Run is the daemon: the identity service, every output and the diagnostics server run
// until ctx ends or one of them fails; then all stop together.
func (b *Bot) Run(ctx context.Context) error {
	comps := []service{b.ident}
	for _, o := range b.outputs {
		comps = append(comps, o)
	}
	if b.cfg.DiagAddr != "" {
		d, err := newDiagServer(b, b.cfg.DiagAddr)
		if err != nil {
			return err
		}
		comps = append(comps, d)
	}
	tasks := make([]runner.Task, len(comps))
	for i, c := range comps {
		tasks[i] = runner.Task{Name: c.Name(), Run: c.Run}
	}
	return runner.All(ctx, b.log, tasks)
}

// Identity is the bot's renewable identity as it stands, for tests and diagnostics.
func (b *Bot) Identity() *Current { return b.ident.current() }

// jittered spreads d over ±10%, so that a fleet of bots started together does not renew
// in lockstep.
func (b *Bot) jittered(d time.Duration) time.Duration {
	f := 0.9 + 0.2*b.jitter()
	return time.Duration(float64(d) * f)
}

// backoff is the wait before retry number attempt (0-based): doubling from one second,
// capped at a quarter of the renewal interval (but at least a second), so a failing bot
// retries several times before its credentials run out.
func (b *Bot) backoff(attempt int) time.Duration {
	limit := max(b.cfg.RenewalInterval/4, time.Second)
	d := time.Second
	for i := 0; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
