package proc

import "syscall"

// sysProcAttr puts each component in its own process group (so Stop can signal the
// whole group) and asks the kernel to SIGKILL it when the parent dies, so a test binary
// that crashes or is killed by `go test -timeout` does not leak a control plane.
// Pdeathsig fires when the creating OS thread exits; the Go runtime does not retire
// threads of goroutines that are not locked, so in practice it means the process.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
