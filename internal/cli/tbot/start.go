package tbot

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tbot"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/yamlpos"
)

// botFlags are the flags that describe a bot without a config file.
type botFlags struct {
	proxyServer, authServer string
	joinMethod, token       string
	gitlabTokenEnv          string
	oidcTokenFile           string
	oidcTokenEnv            string
	registrationSecret      string
	caPins                  []string
	insecure                bool
	storage                 string
	credentialTTL           time.Duration
	renewalInterval         time.Duration
	diagAddr                string
	oneshot                 bool

	// output
	destination         string
	kubernetesCluster   string
	disableExecPlugin   bool
	nameSelectors       []string
	labelSelectors      []string
	contextNameTemplate string
}

func (f *botFlags) register(fs *pflag.FlagSet, outputType string) {
	fs.StringVar(&f.proxyServer, "proxy-server", "", "address of the Keyport proxy (host:port)")
	fs.StringVar(&f.authServer, "auth-server", "", "address of the auth server, when not joining through the proxy")
	fs.StringVar(&f.joinMethod, "join-method", config.JoinToken, "join method: token, kubernetes, github, gitlab, oidc or bound_keypair")
	fs.StringVar(&f.token, "token", "", "join token, or a file holding it (default $"+config.TokenEnv+"); with any other join method, the token's name")
	fs.StringVar(&f.gitlabTokenEnv, "gitlab-token-env", "", "gitlab: the variable the job's id_tokens: block sets (default "+config.DefaultGitLabTokenEnv+")")
	fs.StringVar(&f.oidcTokenFile, "oidc-token-file", "", "oidc: the file the platform writes its ID token to")
	fs.StringVar(&f.oidcTokenEnv, "oidc-token-env", "", "oidc: the variable that holds the platform's ID token")
	fs.StringVar(&f.registrationSecret, "registration-secret", "", "bound_keypair: the one-time registration secret, or a file holding it")
	fs.StringSliceVar(&f.caPins, "ca-pin", nil, "host CA pin(s) the cluster must match (sha256:…, as tctl status prints)")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the proxy on first contact (dangerous; for tests)")
	fs.StringVar(&f.storage, "storage", "", "where the bot keeps its identity: file:///DIR or memory:// (default file://"+config.DefaultStoragePath+")")
	fs.DurationVar(&f.credentialTTL, "credential-ttl", 0, "lifetime of issued credentials (default 1h; set with --renewal-interval)")
	fs.DurationVar(&f.renewalInterval, "renewal-interval", 0, "how often to renew (default 20m; set with --credential-ttl)")
	fs.StringVar(&f.diagAddr, "diag-addr", "", "serve /livez, /readyz and /metrics on this address")
	fs.BoolVar(&f.oneshot, "oneshot", false, "write the outputs once and exit")
	fs.StringVar(&f.destination, "destination", "", "where the output goes: file:///DIR, memory:// or kubernetes-secret:///NAME")
	switch outputType {
	case config.OutputKubernetes:
		fs.StringVar(&f.kubernetesCluster, "kubernetes-cluster", "", "the kube cluster the kubeconfig is for")
		fs.BoolVar(&f.disableExecPlugin, "disable-exec-plugin", false, "embed the certificate in the kubeconfig instead of running tbot kube credentials")
	case config.OutputKubernetesV2:
		fs.StringSliceVar(&f.nameSelectors, "name-selector", nil, "include the kube cluster with this name (repeatable)")
		fs.StringArrayVar(&f.labelSelectors, "label-selector", nil, "include kube clusters with these labels, k=v[,k2=v2] (repeatable)")
		fs.StringVar(&f.contextNameTemplate, "context-name-template", "", "name of each context (default "+config.DefaultContextNameTemplate+")")
		fs.BoolVar(&f.disableExecPlugin, "disable-exec-plugin", false, "embed the certificate in the kubeconfig instead of running tbot kube credentials")
	}
}

// onboarding is the onboarding block the join flags mean.
func (f *botFlags) onboarding() config.Onboarding {
	ob := config.Onboarding{JoinMethod: f.joinMethod, Token: f.token, CAPins: f.caPins}
	if f.gitlabTokenEnv != "" {
		ob.GitLab = &config.GitLabOnboarding{TokenEnvVarName: f.gitlabTokenEnv}
	}
	if f.oidcTokenFile != "" || f.oidcTokenEnv != "" {
		ob.OIDC = &config.OIDCOnboarding{TokenFile: f.oidcTokenFile, TokenEnvVarName: f.oidcTokenEnv}
	}
	if f.registrationSecret != "" {
		ob.BoundKeypair = &config.BoundKeypairOnboarding{RegistrationSecret: f.registrationSecret}
	}
	return ob
}

// config builds the tbot.yaml that the flags mean. Missing required flags are usage
// errors named by flag; the rest of the validation is the config file's own.
func (f *botFlags) config(outputType string) (*config.Config, error) {
	if f.proxyServer == "" && f.authServer == "" {
		return nil, usagef("--proxy-server (or --auth-server) is required")
	}
	if f.destination == "" {
		return nil, usagef("--destination is required (file:///DIR, memory:// or kubernetes-secret:///NAME)")
	}
	dest, err := parseDestination(f.destination, "--destination")
	if err != nil {
		return nil, err
	}
	out := config.Output{Type: outputType, Destination: dest}
	switch outputType {
	case config.OutputKubernetes:
		if f.kubernetesCluster == "" {
			return nil, usagef("--kubernetes-cluster is required")
		}
		out.KubernetesCluster = f.kubernetesCluster
		out.DisableExecPlugin = f.disableExecPlugin
	case config.OutputKubernetesV2:
		for _, n := range f.nameSelectors {
			out.Selectors = append(out.Selectors, config.Selector{Name: n})
		}
		for _, l := range f.labelSelectors {
			labels, err := parseLabels(l)
			if err != nil {
				return nil, err
			}
			out.Selectors = append(out.Selectors, config.Selector{Labels: labels})
		}
		if len(out.Selectors) == 0 {
			return nil, usagef("give at least one --name-selector or --label-selector")
		}
		out.ContextNameTemplate = f.contextNameTemplate
		out.DisableExecPlugin = f.disableExecPlugin
	}
	cfg := &config.Config{
		Version:         config.Version,
		ProxyServer:     f.proxyServer,
		AuthServer:      f.authServer,
		Onboarding:      f.onboarding(),
		CredentialTTL:   f.credentialTTL,
		RenewalInterval: f.renewalInterval,
		Oneshot:         f.oneshot,
		DiagAddr:        f.diagAddr,
		Insecure:        f.insecure,
		Outputs:         []config.Output{out},
	}
	if f.storage != "" {
		if cfg.Storage, err = parseDestination(f.storage, "--storage"); err != nil {
			return nil, err
		}
	}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, flagError(err)
	}
	return cfg, nil
}

// flagError turns a config validation error (which names a YAML field) into one that
// reads right for flags.
func flagError(err error) error {
	var fe *yamlpos.FieldError
	if errors.As(err, &fe) {
		return errs.BadParameterf("invalid flags: %s: %s", fe.Path, fe.Msg)
	}
	return err
}

// parseDestination reads file:///DIR, memory:// or kubernetes-secret:///NAME
// (kubernetes-secret://NAMESPACE/NAME); a bare path means a directory.
func parseDestination(s, flag string) (*config.Destination, error) {
	if !strings.Contains(s, "://") {
		return &config.Destination{Type: config.DestDirectory, Path: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, usagef("%s %q: %v", flag, s, err)
	}
	switch u.Scheme {
	case "file":
		p := u.Host + u.Path
		if p == "" {
			return nil, usagef("%s %q: no directory (want file:///DIR)", flag, s)
		}
		return &config.Destination{Type: config.DestDirectory, Path: p}, nil
	case "memory":
		return &config.Destination{Type: config.DestMemory}, nil
	case "kubernetes-secret":
		name := strings.Trim(u.Path, "/")
		if name == "" || strings.Contains(name, "/") {
			return nil, usagef("%s %q: want kubernetes-secret:///NAME or kubernetes-secret://NAMESPACE/NAME", flag, s)
		}
		return &config.Destination{Type: config.DestKubeSecret, Name: name, Namespace: u.Host}, nil
	}
	return nil, usagef("%s %q: unknown scheme %q (want file, memory or kubernetes-secret)", flag, s, u.Scheme)
}

func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, usagef("--label-selector %q: want key=value[,key=value]", s)
		}
		out[k] = v
	}
	return out, nil
}

// startCmd is `tbot start -c FILE` and `tbot start <output> --flags`.
func (e *env) startCmd() *cobra.Command {
	var (
		cfgPath  string
		oneshot  bool
		diagAddr string
		insecure bool
	)
	start := &cobra.Command{
		Use:   "start -c tbot.yaml [--oneshot]",
		Short: "Start the bot: join or renew, then keep the outputs fresh",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfgPath == "" {
				return usagef("give -c tbot.yaml, or an output: tbot start kubernetes|kubernetes/v2|identity --help")
			}
			cfg, err := config.Read(cfgPath)
			if err != nil {
				return err
			}
			// Flags override the file.
			if oneshot {
				cfg.Oneshot = true
			}
			if cmd.Flags().Changed("diag-addr") {
				cfg.DiagAddr = diagAddr
			}
			if insecure {
				cfg.Insecure = true
			}
			return e.run(cmd.Context(), cfg)
		},
	}
	start.Flags().StringVarP(&cfgPath, "config", "c", "", "tbot.yaml")
	start.Flags().BoolVar(&oneshot, "oneshot", false, "write the outputs once and exit")
	start.Flags().StringVar(&diagAddr, "diag-addr", "", "serve /livez, /readyz and /metrics on this address (overrides diag_addr)")
	start.Flags().BoolVar(&insecure, "insecure", false, "do not verify the proxy on first contact (dangerous; for tests)")
	for _, t := range []struct{ typ, short string }{
		{config.OutputKubernetes, "Keep a kubeconfig for one kube cluster fresh"},
		{config.OutputKubernetesV2, "Keep a kubeconfig with one context per selected kube cluster fresh"},
		{config.OutputIdentity, "Keep an identity file for tctl/tsh --identity fresh"},
	} {
		var f botFlags
		sub := &cobra.Command{
			Use:   t.typ,
			Short: t.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg, err := f.config(t.typ)
				if err != nil {
					return err
				}
				return e.run(cmd.Context(), cfg)
			},
		}
		f.register(sub.Flags(), t.typ)
		start.AddCommand(sub)
	}
	return start
}

// run starts the bot described by cfg: once with oneshot, else as a daemon until SIGTERM
// or SIGINT (which cancel ctx). SIGHUP renews now.
func (e *env) run(ctx context.Context, cfg *config.Config) error {
	if cfg.Onboarding.Token == "" && e.stdio.Getenv != nil {
		cfg.Onboarding.Token = e.stdio.Getenv(config.TokenEnv)
	}
	log := e.g.Logger(e.stdio.Err)
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				select {
				case reload <- struct{}{}:
				default:
				}
			}
		}
	}()
	opts := tbot.Options{Config: cfg, Logger: log, Reload: reload}
	if e.stdio.Getenv != nil {
		opts.KubernetesTokenPath = e.stdio.Getenv(tbot.KubernetesTokenPathEnv)
	}
	bot, err := tbot.New(opts)
	if err != nil {
		return err
	}
	if cfg.Oneshot {
		return bot.OneShot(ctx)
	}
	return bot.Run(ctx)
}

// configureCmd is `tbot configure <output> --flags`: the YAML the same flags of
// `tbot start` mean, to keep as tbot.yaml.
func (e *env) configureCmd() *cobra.Command {
	configure := &cobra.Command{
		Use:   "configure",
		Short: "Print the tbot.yaml that `tbot start <output>` flags mean",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return usagef("name an output: tbot configure kubernetes|kubernetes/v2|identity --help")
		},
	}
	for _, typ := range []string{config.OutputKubernetes, config.OutputKubernetesV2, config.OutputIdentity} {
		var (
			f   botFlags
			out string
		)
		sub := &cobra.Command{
			Use:   typ,
			Short: "Print the tbot.yaml for a " + typ + " output",
			Args:  cobra.NoArgs,
			RunE: func(*cobra.Command, []string) error {
				cfg, err := f.config(typ)
				if err != nil {
					return err
				}
				data, err := cfg.Marshal()
				if err != nil {
					return err
				}
				if out == "" {
					_, err = e.stdio.Out.Write(data)
					return err
				}
				if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(out, data, 0o600); err != nil {
					return fmt.Errorf("writing %s: %w", out, err)
				}
				fmt.Fprintf(e.stdio.Out, "Wrote %s\n", out)
				return nil
			},
		}
		f.register(sub.Flags(), typ)
		sub.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
		configure.AddCommand(sub)
	}
	return configure
}
