// Package common owns what the four command-line programs share at their edge: running a
// cobra command tree, turning errors into the one-line `ERROR: …` message and the exit
// code of SPEC section 2 (0 success, 1 user-facing error, 2 bad usage), the --debug flag
// and the `version` command.
package common

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/version"
)

// IO is where a command reads and writes; tests replace it.
type IO struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Getenv func(string) string
}

// StdIO is the process's own standard streams and environment.
func StdIO() IO { return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv} }

// Globals are the flags every binary has.
type Globals struct {
	Debug bool
}

// Logger returns the logger the --debug flag asks for, writing text to w.
func (g *Globals) Logger(w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if g.Debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// NewRoot makes the root command of a binary with the shared flags and the `version`
// subcommand already in place.
func NewRoot(name, short string, g *Globals, stdio IO) *cobra.Command {
	root := &cobra.Command{
		Use:           name,
		Short:         short,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Bad usage is reported by Run with exit code 2.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	root.PersistentFlags().BoolVar(&g.Debug, "debug", false, "verbose logging to stderr")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &errs.UsageError{Err: err}
	})
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "%s v%s\n", name, version.Version)
			return err
		},
	})
	return root
}

// Run executes root with args and returns the process exit code, printing a failure as one
// `ERROR: …` line on stderr. SIGINT and SIGTERM cancel the command's context.
func Run(root *cobra.Command, args []string, stdio IO) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var quiet *QuietExit
	if errors.As(err, &quiet) {
		return quiet.Code
	}
	if isUsage(err) {
		fmt.Fprintf(stdio.Err, "ERROR: %s\nRun '%s --help' for usage.\n", firstLine(err.Error()), root.Name())
		return 2
	}
	fmt.Fprintf(stdio.Err, "ERROR: %s\n", strings.TrimSpace(err.Error()))
	return errs.ExitCode(err)
}

// isUsage recognises bad command lines: our UsageError and cobra's own argument errors.
func isUsage(err error) bool {
	var u *errs.UsageError
	if errors.As(err, &u) {
		return true
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires exactly", "flag needs an argument", "invalid argument"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// UsageErrorf returns a bad-usage error (exit code 2).
func UsageErrorf(format string, args ...any) error {
	return &errs.UsageError{Err: fmt.Errorf(format, args...)}
}

// QuietExit ends a command with Code and no message: the command already printed its
// answer (e.g. "no" from kube can-i, which exits 1 as kubectl auth can-i does).
type QuietExit struct{ Code int }

func (e *QuietExit) Error() string { return fmt.Sprintf("exit status %d", e.Code) }
