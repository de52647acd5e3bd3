// Package proc owns the child programs the test environments run (etcd, kube-apiserver,
// kwok, MinIO …): each in its own process group with its output in a log file, killed
// with the test binary, stopped with SIGTERM then SIGKILL, its crashes reported with the
// end of its log, and the one start-up failure worth a retry (a port taken meanwhile)
// recognised.
package proc

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long a component gets to exit after SIGTERM before SIGKILL. The
// apiserver drains for a while on SIGTERM; nothing here needs a graceful drain, but a
// clean exit keeps etcd's data directory consistent for a developer who inspects it.
const stopGrace = 10 * time.Second

// Process is one child program: its own process group (so that SIGTERM/SIGKILL reach
// anything it spawns, e.g. kwok's local exec children), output in a log file.
type Process struct {
	Name      string
	Cmd       *exec.Cmd
	LogPath   string
	logOffset int64         // where this run's output starts in LogPath
	Done      chan struct{} // closed when the process has exited and WaitErr is set
	WaitErr   error
	// Stopped is set before the process is signalled, so an exit we caused is not
	// reported as a crash.
	Stopped bool
}

// Start runs bin with args and env (added to this process's), its output appended to
// logPath.
func Start(name, logPath string, env []string, bin string, args ...string) (*Process, error) {
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
	p := &Process{Name: name, Cmd: cmd, LogPath: logPath, logOffset: st.Size(), Done: make(chan struct{})}
	go func() {
		p.WaitErr = cmd.Wait()
		logFile.Close()
		close(p.Done)
	}()
	return p, nil
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// CrashErr describes an exit we did not ask for, with the end of the log, or nil.
func (p *Process) CrashErr() error {
	if !p.Exited() || p.Stopped {
		return nil
	}
	return fmt.Errorf("%s exited unexpectedly (%w); last lines of %s:\n%s", p.Name, p.WaitErr, p.LogPath, p.Tail(40))
}

// Stop sends SIGTERM to the process group and SIGKILL after stopGrace.
func (p *Process) Stop() error {
	crash := p.CrashErr()
	p.Stopped = true
	if p.Exited() {
		return crash
	}
	pgid := p.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.Done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.Done
	}
	// Children that ignored SIGTERM and outlived the leader (kwok exec children) must
	// not leak either; the group id stays valid while any member lives.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return crash
}

// Tail returns the last n lines of the process log.
func (p *Process) Tail(n int) string {
	return TailFile(p.LogPath, n)
}

// TailFile returns the last n lines of a file.
func TailFile(path string, n int) string {
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

// BindFailed reports whether the process died because a port was taken between our
// probe and its listen: the one start-up failure worth retrying with other ports.
func (p *Process) BindFailed() bool {
	if !p.Exited() {
		return false
	}
	f, err := os.Open(p.LogPath)
	if err != nil {
		return false
	}
	defer f.Close()
	out, err := io.ReadAll(io.NewSectionReader(f, p.logOffset, 1<<30))
	if err != nil {
		return false
	}
	return bytes.Contains(out, []byte("address already in use")) || bytes.Contains(out, []byte("is already in use"))
}

// Kill sends SIGKILL to the process group and waits for the exit.
func (p *Process) Kill() {
	p.Stopped = true
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.Done
}
