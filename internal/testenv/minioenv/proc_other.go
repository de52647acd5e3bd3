//go:build !linux

package minioenv

import "syscall"

// sysProcAttr has nothing to set: only Linux can tie the server's life to ours.
func sysProcAttr() *syscall.SysProcAttr { return nil }
