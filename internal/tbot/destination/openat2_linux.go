package destination

import (
	"errors"

	"golang.org/x/sys/unix"
)

// errNoOpenat2 says the kernel (or a seccomp filter in front of it) has no openat2.
var errNoOpenat2 = errors.New("openat2 is not available")

// openNoSymlinks opens the directory at path with openat2(RESOLVE_NO_SYMLINKS): the kernel
// refuses a symlink in any component, with no window between check and use.
func openNoSymlinks(path string) (int, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS,
	})
	// ENOSYS: kernel before 5.6; EPERM: container seccomp profiles that predate openat2.
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		return -1, errNoOpenat2
	}
	return fd, err
}
