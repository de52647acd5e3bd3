//go:build unix

package destination

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tbot/config"
)

// Directory writes files into a directory on disk. Every file is written to a temporary
// file in the same directory and renamed over the old one, so readers (kubectl, the exec
// plugin) see the old file or the new one, never half of one. Names are resolved relative
// to a descriptor of the directory that was opened without following symlinks, so a
// symlink planted in the path or in the directory cannot redirect a credential elsewhere.
type Directory struct {
	path     string
	symlinks string
	log      *slog.Logger
	warnOnce sync.Once
	// noOpenat2 forces the fallback path, for tests of try-secure on old kernels.
	noOpenat2 bool
}

// NewDirectory returns a directory destination at path (made absolute) with the given
// symlink policy (secure, try-secure or insecure; empty means try-secure).
func NewDirectory(path, symlinks string, log *slog.Logger) (*Directory, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	switch symlinks {
	case "":
		symlinks = config.SymlinksTrySecure
	case config.SymlinksSecure, config.SymlinksTrySecure, config.SymlinksInsecure:
	default:
		return nil, errs.BadParameterf("unknown symlinks policy %q (want secure, try-secure or insecure)", symlinks)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Directory{path: abs, symlinks: symlinks, log: log}, nil
}

// Path is the directory's absolute path.
func (d *Directory) Path() string { return d.path }

func (d *Directory) String() string { return "file://" + d.path }

// ensure creates the directory 0700 if it is missing, refuses one that is a symlink
// (unless insecure), and tightens the mode of one that others can read: the files in it
// are private keys.
func (d *Directory) ensure() error {
	fi, err := os.Lstat(d.path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(d.path, 0o700); err != nil {
			return fmt.Errorf("creating destination directory %s: %w", d.path, err)
		}
		fi, err = os.Lstat(d.path)
	}
	if err != nil {
		return fmt.Errorf("destination directory %s: %w", d.path, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if d.symlinks != config.SymlinksInsecure {
			return errs.AccessDeniedf("destination directory %s is a symlink; refusing to write credentials through it (use the real path, or symlinks: insecure)", d.path)
		}
		if fi, err = os.Stat(d.path); err != nil {
			return fmt.Errorf("destination directory %s: %w", d.path, err)
		}
	}
	if !fi.IsDir() {
		return errs.BadParameterf("destination %s exists and is not a directory", d.path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(d.path, 0o700); err != nil {
			d.log.Warn("destination directory is readable by others and could not be tightened to 0700", "path", d.path, "mode", fi.Mode().Perm().String(), "error", err)
		} else {
			d.log.Info("tightened destination directory to 0700", "path", d.path, "was", fi.Mode().Perm().String())
		}
	}
	return nil
}

// openDir opens the directory itself according to the symlink policy.
func (d *Directory) openDir() (int, error) {
	if d.symlinks == config.SymlinksInsecure {
		fd, err := unix.Open(d.path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, fmt.Errorf("opening destination directory %s: %w", d.path, err)
		}
		return fd, nil
	}
	if !d.noOpenat2 {
		fd, err := openNoSymlinks(d.path)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ELOOP):
			return -1, errs.AccessDeniedf("destination directory %s: the path contains a symlink, which symlinks: %s refuses (use the real path, or symlinks: insecure)", d.path, d.symlinks)
		case errors.Is(err, errNoOpenat2):
			if d.symlinks == config.SymlinksSecure {
				return -1, errs.BadParameterf("destination directory %s: symlinks: secure needs openat2 (Linux 5.6 or later), which this system lacks; use symlinks: try-secure", d.path)
			}
			d.warnOnce.Do(func() {
				d.log.Warn("openat2 is not available; checking the destination path for symlinks component by component (symlinks: try-secure)", "path", d.path)
			})
		default:
			return -1, fmt.Errorf("opening destination directory %s: %w", d.path, err)
		}
	}
	return openWalkingNoSymlinks(d.path, d.symlinks)
}

// openWalkingNoSymlinks is try-secure's fallback: open every component relative to its
// parent with O_NOFOLLOW, so a symlink anywhere in the path is refused as openat2 would.
func openWalkingNoSymlinks(path, policy string) (int, error) {
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, c := range strings.Split(strings.Trim(path, "/"), "/") {
		if c == "" {
			continue
		}
		next, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		_ = unix.Close(fd)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, errs.AccessDeniedf("destination directory %s: the path contains a symlink (%s), which symlinks: %s refuses (use the real path, or symlinks: insecure)", path, c, policy)
		}
		if err != nil {
			return -1, fmt.Errorf("opening destination directory %s: %w", path, err)
		}
		fd = next
	}
	return fd, nil
}

// Write implements Destination. It refuses symlinks at any of the target names before it
// writes anything, writes every file to a temporary name, and only then renames them into
// place, so a failure leaves the old set untouched.
func (d *Directory) Write(_ context.Context, files map[string][]byte) error {
	if err := d.ensure(); err != nil {
		return err
	}
	dirfd, err := d.openDir()
	if err != nil {
		return err
	}
	defer func() { _ = unix.Close(dirfd) }()
	names := sortedNames(files)
	for _, name := range names {
		if err := checkName(name); err != nil {
			return err
		}
		var st unix.Stat_t
		err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK && d.symlinks != config.SymlinksInsecure {
			return errs.AccessDeniedf("%s is a symlink; refusing to write credentials through it (remove it, or use symlinks: insecure)", filepath.Join(d.path, name))
		}
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return errs.BadParameterf("%s is a directory; tbot needs to write a file there", filepath.Join(d.path, name))
		}
	}
	temps := map[string]string{}
	defer func() {
		for _, tmp := range temps {
			_ = unix.Unlinkat(dirfd, tmp, 0)
		}
	}()
	for _, name := range names {
		tmp, err := writeTemp(dirfd, name, files[name])
		if err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Join(d.path, name), err)
		}
		temps[name] = tmp
	}
	for _, name := range names {
		// rename(2) replaces the name itself, never what a symlink there points to.
		if err := unix.Renameat(dirfd, temps[name], dirfd, name); err != nil {
			return fmt.Errorf("writing %s: %w", filepath.Join(d.path, name), err)
		}
		delete(temps, name)
	}
	// Make the renames durable before the caller relies on them (the bot's own identity
	// must not roll back a generation after a crash).
	_ = unix.Fsync(dirfd)
	return nil
}

func writeTemp(dirfd int, name string, data []byte) (string, error) {
	var rnd [8]byte
	if _, err := clock.Rand.Read(rnd[:]); err != nil {
		return "", err
	}
	tmp := "." + name + ".tmp-" + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(dirfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), tmp)
	// The umask may only narrow the mode; set it exactly so a reader's ACL cannot widen it.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return "", err
	}
	if err := f.Close(); err != nil {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		return "", err
	}
	return tmp, nil
}

// Read implements Destination; it does not follow a symlink at name.
func (d *Directory) Read(_ context.Context, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(d.path); errors.Is(err, fs.ErrNotExist) {
		return nil, errs.NotFoundf("%s does not exist", filepath.Join(d.path, name))
	}
	dirfd, err := d.openDir()
	if err != nil {
		return nil, err
	}
	defer func() { _ = unix.Close(dirfd) }()
	flags := unix.O_RDONLY | unix.O_CLOEXEC
	if d.symlinks != config.SymlinksInsecure {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Openat(dirfd, name, flags, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, errs.NotFoundf("%s does not exist", filepath.Join(d.path, name))
	}
	if errors.Is(err, unix.ELOOP) {
		return nil, errs.AccessDeniedf("%s is a symlink; refusing to read credentials through it", filepath.Join(d.path, name))
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(d.path, name), err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(d.path, name), err)
	}
	return data, nil
}

// checkName keeps file names inside the directory.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return errs.BadParameterf("invalid file name %q", name)
	}
	return nil
}
