package minioenv

import "syscall"

// sysProcAttr asks the kernel to SIGKILL the server when the test binary dies, so a
// test that crashes or is killed by `go test -timeout` does not leak it. Pdeathsig fires
// when the creating OS thread exits; the Go runtime does not retire threads of
// goroutines that are not locked, so in practice it means the process.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
