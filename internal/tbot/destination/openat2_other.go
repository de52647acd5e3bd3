//go:build unix && !linux

package destination

import "errors"

// errNoOpenat2 says the kernel has no openat2 (it is Linux-only).
var errNoOpenat2 = errors.New("openat2 is not available")

func openNoSymlinks(string) (int, error) { return -1, errNoOpenat2 }
