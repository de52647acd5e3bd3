package service

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/config"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/gctune"
)

// Main runs the keyport daemon's command line with args and returns the exit code.
func Main(args []string, stdio common.IO) int {
	var g common.Globals
	root := common.NewRoot("keyport", "Keyport access plane daemon", &g, stdio)
	var cfgPath, nodeName string
	var profiling bool
	start := &cobra.Command{
		Use:   "start",
		Short: "Start the Keyport services named in the config file",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := configPath(cfgPath, stdio)
			cfg, err := config.Read(path)
			if err != nil {
				return err
			}
			if nodeName != "" {
				// A pod's name, given by the Helm chart: one host identity per pod.
				cfg.Keyport.NodeName = nodeName
			}
			logger := newLogger(cfg, g.Debug, stdio)
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			gctune.Start(ctx, stdio.Getenv, logger) // a GC heap floor, unless GOGC is set
			if profiling && cfg.Keyport.DiagAddr == "" {
				return &errs.UsageError{Err: fmt.Errorf("--pprof needs keyport.diag_addr in %s: the profiles are served there", path)}
			}
			return Run(ctx, Options{Config: cfg, Logger: logger, Profiling: profiling})
		},
	}
	start.Flags().StringVarP(&cfgPath, "config", "c", "", "path to keyport.yaml (default $KEYPORT_CONFIG or "+config.DefaultPath+")")
	start.Flags().BoolVar(&profiling, "pprof", false, "serve Go's profiles under /debug/pprof/ on keyport.diag_addr (keep that address private)")
	start.Flags().StringVar(&nodeName, "nodename", "", "this process's name, overriding keyport.nodename (the Helm chart passes the pod's name)")
	configure := &cobra.Command{
		Use:   "configure",
		Short: "Print a commented sample keyport.yaml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), config.Sample())
			return err
		},
	}
	root.AddCommand(start, configure)
	return common.Run(root, args, stdio)
}

// configPath applies the SPEC's order: -c, $KEYPORT_CONFIG, /etc/keyport.yaml.
func configPath(flag string, stdio common.IO) string {
	if flag != "" {
		return flag
	}
	if stdio.Getenv != nil {
		if v := stdio.Getenv("KEYPORT_CONFIG"); v != "" {
			return v
		}
	}
	return config.DefaultPath
}

func newLogger(cfg *config.File, debug bool, stdio common.IO) *slog.Logger {
	level := slog.LevelInfo
	switch strings.ToUpper(cfg.Keyport.Log.Severity) {
	case "DEBUG":
		level = slog.LevelDebug
	case "WARN", "WARNING":
		level = slog.LevelWarn
	case "ERROR":
		level = slog.LevelError
	}
	if debug {
		level = slog.LevelDebug
	}
	w := stdio.Err
	if w == nil {
		w = os.Stderr
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Keyport.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func x509CertPool(certs []*x509.Certificate) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool
}
