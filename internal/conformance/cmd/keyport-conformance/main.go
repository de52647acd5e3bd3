// Command keyport-conformance is `make conformance`: see package conformance.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/keyport/keyport/internal/conformance"
)

func main() {
	opts := conformance.Options{Out: os.Stdout, Log: slog.New(slog.NewTextHandler(os.Stderr, nil))}
	flag.StringVar(&opts.E2E, "e2e", "", "the e2e.test binary")
	flag.StringVar(&opts.Tbot, "tbot", "bin/tbot", "the built tbot")
	flag.StringVar(&opts.Focus, "focus", conformance.DefaultFocus, "ginkgo focus")
	flag.StringVar(&opts.Skip, "skip", conformance.DefaultSkip, "ginkgo skip")
	flag.StringVar(&opts.Kubectl, "kubectl", "kubectl", "the kubectl the e2e tests run")
	ci := flag.Bool("ci", false, "run only the selection `make test` runs (conformance.CISelection)")
	verbose := flag.Bool("v", false, "print each test's time on both paths")
	flag.Parse()
	if *ci {
		opts.Focus, opts.Skip = conformance.FocusOn(conformance.CISelection), ""
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := conformance.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ERROR:", err)
		os.Exit(1)
	}
	rep.Print(os.Stdout, *verbose)
	if len(rep.Regressions) > 0 {
		os.Exit(1)
	}
}
