//go:build unix && !linux

package proc

import "syscall"

// sysProcAttr puts each component in its own process group so Stop can signal the
// whole group. Only Linux can also tie the child's life to ours (Pdeathsig).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
