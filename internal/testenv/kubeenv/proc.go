package kubeenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a component gets to exit after SIGTERM before SIGKILL. The
// apiserver drains for a while on SIGTERM; nothing here needs a graceful drain, but a
// clean exit keeps etcd's data directory consistent for a developer who inspects it.
const stopGrace = 10 * time.Second

// process is one child program: its own process group (so that SIGTERM/SIGKILL reach
// anything it spawns, e.g. kwok's local exec children), output in a log file.
type process struct {
	name      string
	cmd       *exec.Cmd
	logPath   string
	logOffset int64         // where this run's output starts in logPath
	done      chan struct{} // closed when the process has exited and waitErr is set
	waitErr   error
	stopped   bool // set before we signal, so an exit we caused is not reported as a crash
}

func startProcess(name, logPath string, env []string, bin string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	// Retries append to the same file; remember where this run's output starts.
	st, err := logFile.Stat()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	fmt.Fprintf(logFile, "### %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, logOffset: st.Size(), done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// crashErr describes an exit we did not ask for, with the end of the log, or nil.
func (p *process) crashErr() error {
	if !p.exited() || p.stopped {
		return nil
	}
	return fmt.Errorf("%s exited unexpectedly (%w); last lines of %s:\n%s", p.name, p.waitErr, p.logPath, p.tail(40))
}

// stop sends SIGTERM to the process group and SIGKILL after stopGrace.
func (p *process) stop() error {
	crash := p.crashErr()
	p.stopped = true
	if p.exited() {
		return crash
	}
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that ignored SIGTERM and outlived the leader (kwok exec children) must
	// not leak either; the group id stays valid while any member lives.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return crash
}

// tail returns the last n lines of the process log.
func (p *process) tail(n int) string {
	return tailFile(p.logPath, n)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// bindFailed reports whether the process died because a port was taken between our
// probe and its listen: the one start-up failure worth retrying with other ports.
func (p *process) bindFailed() bool {
	if !p.exited() {
		return false
	}
	f, err := os.Open(p.logPath)
	if err != nil {
		return false
	}
	defer f.Close()
	out, err := io.ReadAll(io.NewSectionReader(f, p.logOffset, 1<<30))
	if err != nil {
		return false
	}
	return bytes.Contains(out, []byte("address already in use"))
}

// errNotReady is what readiness checks return while they should be retried.
var errNotReady = errors.New("not ready")

// waitReady polls check until it returns nil, any watched process exits, ctx ends or
// timeout passes. Polling is short (50ms) because start-up time dominates every test;
// the bound is what matters, never a fixed sleep.
func waitReady(ctx context.Context, timeout time.Duration, what string, watch []*process, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	var last error
	for {
		for _, p := range watch {
			if p.exited() {
				return fmt.Errorf("waiting for %s: %s exited (%w); last lines of %s:\n%s", what, p.name, p.waitErr, p.logPath, p.tail(40))
			}
		}
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("%s not ready after %s (last error: %v)", what, time.Since(start).Round(time.Millisecond), last)
			for _, p := range watch {
				msg += fmt.Sprintf("\nlast lines of %s:\n%s", p.logPath, p.tail(30))
			}
			return errors.New(msg)
		case <-tick.C:
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
