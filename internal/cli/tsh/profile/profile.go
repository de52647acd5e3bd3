// Package profile owns what `tsh login` keeps on disk and what tsh and tctl read back:
// under ~/.tsh (0700), a profile per proxy (<proxy>.yaml), the one current profile
// (current-profile), the user's key and certificates as identity files (0600) under
// keys/<proxy>/<user>/, kube certificates cached per kube cluster under
// keys/<proxy>/<user>/kube/<cluster>/identity, and the host CA pins trusted at first
// use (known_cas). Client-side only: it must not import server packages.
package profile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
)

// DirName is the profile directory under the home directory.
const DirName = ".tsh"

// DefaultProxyPort is the port tsh adds to a --proxy without one (the proxy's default
// web_listen_addr port, as in Teleport).
const DefaultProxyPort = "3080"

const (
	currentFile  = "current-profile"
	knownCAsFile = "known_cas"
	keysDir      = "keys"
	identityName = "identity"
)

// Profile is one login: which proxy, as whom, into which cluster.
type Profile struct {
	ProxyAddr   string `json:"web_proxy_addr"`
	User        string `json:"user"`
	ClusterName string `json:"cluster"`
}

// Store is a profile directory.
type Store struct {
	Dir string
}

// Default is ~/.tsh of the user whose environment getenv reads ($HOME).
func Default(getenv func(string) string) (*Store, error) {
	home := ""
	if getenv != nil {
		home = getenv("HOME")
	}
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, errs.BadParameterf("cannot find the home directory for %s: %v", DirName, err)
		}
		home = h
	}
	return &Store{Dir: filepath.Join(home, DirName)}, nil
}

// NormalizeProxy turns HOST or HOST:PORT into HOST:PORT.
func NormalizeProxy(proxy string) (string, error) {
	proxy = strings.TrimSpace(proxy)
	proxy = strings.TrimPrefix(strings.TrimPrefix(proxy, "https://"), "http://")
	proxy = strings.TrimSuffix(proxy, "/")
	if proxy == "" {
		return "", errs.BadParameterf("no proxy address given")
	}
	host, port, err := net.SplitHostPort(proxy)
	if err != nil {
		// No port (or an IPv6 literal without one).
		h := strings.TrimSuffix(strings.TrimPrefix(proxy, "["), "]")
		if strings.ContainsAny(h, "/ ") {
			return "", errs.BadParameterf("proxy address %q is not HOST[:PORT]", proxy)
		}
		return net.JoinHostPort(h, DefaultProxyPort), nil
	}
	if host == "" || port == "" || strings.ContainsAny(host, "/ ") {
		return "", errs.BadParameterf("proxy address %q is not HOST[:PORT]", proxy)
	}
	return proxy, nil
}

// fileName makes a proxy address safe as one path element.
func fileName(proxy string) string {
	return strings.NewReplacer("/", "_", "\\", "_", "..", "_").Replace(proxy)
}

func (s *Store) mkdir(path string) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	return os.Chmod(path, 0o700)
}

func (s *Store) profilePath(proxy string) string {
	return filepath.Join(s.Dir, fileName(proxy)+".yaml")
}

func (s *Store) userDir(p *Profile) string {
	return filepath.Join(s.Dir, keysDir, fileName(p.ProxyAddr), fileName(p.User))
}

// KubeDir is the directory whose identity file holds p's certificate for kube cluster.
func (s *Store) KubeDir(p *Profile, cluster string) string {
	return filepath.Join(s.userDir(p), "kube", fileName(cluster))
}

// Save stores a login: the identity, the profile, and makes it current. A user's older
// kube certificates for this proxy go, since they belong to the previous login.
func (s *Store) Save(p *Profile, id *identityfile.Identity) error {
	if err := s.mkdir(s.Dir); err != nil {
		return err
	}
	dir := s.userDir(p)
	if err := os.RemoveAll(filepath.Join(dir, "kube")); err != nil {
		return fmt.Errorf("removing old kube certificates: %w", err)
	}
	if err := s.mkdir(dir); err != nil {
		return err
	}
	if err := identityfile.Write(filepath.Join(dir, identityName), id); err != nil {
		return err
	}
	data, err := yaml.Marshal(p)
	if err != nil {
		return err
	}
	if err := identityfile.WriteFileAtomic(s.profilePath(p.ProxyAddr), data); err != nil {
		return err
	}
	return identityfile.WriteFileAtomic(filepath.Join(s.Dir, currentFile), []byte(p.ProxyAddr+"\n"))
}

// Current is the profile of the last login.
func (s *Store) Current() (*Profile, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, currentFile))
	if os.IsNotExist(err) {
		return nil, errNotLoggedIn
	}
	if err != nil {
		return nil, fmt.Errorf("reading the current profile: %w", err)
	}
	return s.Get(strings.TrimSpace(string(data)))
}

var errNotLoggedIn = errs.NotFoundf("not logged in: run tsh login --proxy=HOST[:PORT] --user=NAME")

// IsNotLoggedIn reports whether err says that there is no profile.
func IsNotLoggedIn(err error) bool { return errors.Is(err, errNotLoggedIn) }

// Get is the profile of a proxy.
func (s *Store) Get(proxy string) (*Profile, error) {
	if proxy == "" {
		return nil, errNotLoggedIn
	}
	data, err := os.ReadFile(s.profilePath(proxy))
	if os.IsNotExist(err) {
		return nil, errNotLoggedIn
	}
	if err != nil {
		return nil, fmt.Errorf("reading profile: %w", err)
	}
	var p Profile
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", s.profilePath(proxy), err)
	}
	if p.ProxyAddr == "" || p.User == "" {
		return nil, errs.BadParameterf("%s is not a tsh profile: run tsh login again", s.profilePath(proxy))
	}
	return &p, nil
}

// Profiles lists every stored profile.
func (s *Store) Profiles() ([]*Profile, error) {
	matches, err := filepath.Glob(filepath.Join(s.Dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []*Profile
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var p Profile
		if yaml.UnmarshalStrict(data, &p) == nil && p.ProxyAddr != "" {
			out = append(out, &p)
		}
	}
	return out, nil
}

// Identity reads p's login identity.
func (s *Store) Identity(p *Profile) (*identityfile.Identity, error) {
	id, err := identityfile.Read(filepath.Join(s.userDir(p), identityName))
	if errs.IsNotFound(err) {
		return nil, errNotLoggedIn
	}
	return id, err
}

// ValidIdentity reads p's login identity and fails with what to do when it has expired.
func (s *Store) ValidIdentity(p *Profile, now time.Time) (*identityfile.Identity, error) {
	id, err := s.Identity(p)
	if err != nil {
		return nil, err
	}
	if !now.Before(id.Cert.NotAfter) {
		return nil, errs.NotAuthenticatedf("the tsh login of %s at %s expired at %s: run tsh login --proxy=%s --user=%s",
			p.User, p.ProxyAddr, id.Cert.NotAfter.UTC().Format(time.RFC3339), p.ProxyAddr, p.User)
	}
	return id, nil
}

// KubeIdentity reads p's cached certificate for a kube cluster.
func (s *Store) KubeIdentity(p *Profile, cluster string) (*identityfile.Identity, error) {
	return identityfile.Read(filepath.Join(s.KubeDir(p, cluster), identityName))
}

// SaveKubeIdentity caches p's certificate for a kube cluster.
func (s *Store) SaveKubeIdentity(p *Profile, cluster string, id *identityfile.Identity) error {
	dir := s.KubeDir(p, cluster)
	if err := s.mkdir(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := s.mkdir(dir); err != nil {
		return err
	}
	return identityfile.Write(filepath.Join(dir, identityName), id)
}

// Remove deletes p's keys and profile, and the current-profile pointer if it names p.
func (s *Store) Remove(p *Profile) error {
	if err := os.RemoveAll(filepath.Join(s.Dir, keysDir, fileName(p.ProxyAddr))); err != nil {
		return fmt.Errorf("removing keys: %w", err)
	}
	if err := os.Remove(s.profilePath(p.ProxyAddr)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing profile: %w", err)
	}
	if cur, err := os.ReadFile(filepath.Join(s.Dir, currentFile)); err == nil && strings.TrimSpace(string(cur)) == p.ProxyAddr {
		if err := os.Remove(filepath.Join(s.Dir, currentFile)); err != nil {
			return fmt.Errorf("removing current profile: %w", err)
		}
	}
	return nil
}

// TrustedPins are the host CA pins trusted for proxy at first use.
func (s *Store) TrustedPins(proxy string) []string {
	data, err := os.ReadFile(filepath.Join(s.Dir, knownCAsFile))
	if err != nil {
		return nil
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == proxy {
			out = append(out, f[1])
		}
	}
	return out
}

// TrustPin records that proxy's host CA with this pin is trusted.
func (s *Store) TrustPin(proxy, pin string) error {
	for _, p := range s.TrustedPins(proxy) {
		if p == pin {
			return nil
		}
	}
	if err := s.mkdir(s.Dir); err != nil {
		return err
	}
	path := filepath.Join(s.Dir, knownCAsFile)
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	return identityfile.WriteFileAtomic(path, append(old, []byte(proxy+" "+pin+"\n")...))
}
