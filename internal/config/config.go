// Package config owns keyport.yaml (SPEC section 3): its shape, strict decoding with
// file/line/key errors, defaults, validation and the commented sample that
// `keyport configure` prints. tctl reads the same file on the Auth host to find the data
// directory and the admin identity.
package config

import (
	_ "embed"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/recording"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/yamlpos"
)

// DefaultPath is where keyport and tctl look when no -c flag or $KEYPORT_CONFIG is given.
const DefaultPath = "/etc/keyport.yaml"

// File is keyport.yaml.
type File struct {
	Version string       `yaml:"version"`
	Keyport Keyport      `yaml:"keyport"`
	Auth    AuthService  `yaml:"auth_service"`
	Proxy   ProxyService `yaml:"proxy_service"`
	Kube    KubeService  `yaml:"kubernetes_service"`

	// Path is the file the config was read from.
	Path string `yaml:"-"`
}

// Keyport holds the settings every process has.
type Keyport struct {
	NodeName    string     `yaml:"nodename"`
	DataDir     string     `yaml:"data_dir"`
	Log         Log        `yaml:"log"`
	Storage     Storage    `yaml:"storage"`
	AuthServer  string     `yaml:"auth_server"`
	ProxyServer string     `yaml:"proxy_server"`
	JoinParams  JoinParams `yaml:"join_params"`
	CAPins      []string   `yaml:"ca_pins"`
	DiagAddr    string     `yaml:"diag_addr"`
}

// Log configures the process log on stderr.
type Log struct {
	Severity string `yaml:"severity"`
	Format   string `yaml:"format"`
}

// Storage selects the backend. The etcd settings sit beside `type`, as in teleport.yaml.
type Storage struct {
	Type        string   `yaml:"type"`
	Path        string   `yaml:"path"`
	Peers       []string `yaml:"peers"`
	Prefix      string   `yaml:"prefix"`
	TLSCertFile string   `yaml:"tls_cert_file"`
	TLSKeyFile  string   `yaml:"tls_key_file"`
	TLSCAFile   string   `yaml:"tls_ca_file"`
}

// JoinParams is how an agent process joins the cluster.
type JoinParams struct {
	Method    string `yaml:"method"`
	TokenName string `yaml:"token_name"`
}

// AuthService configures the Auth Service.
type AuthService struct {
	Enabled        *bool          `yaml:"enabled"`
	ClusterName    string         `yaml:"cluster_name"`
	ListenAddr     string         `yaml:"listen_addr"`
	Authentication Authentication `yaml:"authentication"`
	CAKeyAlgorithm string         `yaml:"ca_key_algorithm"`
	// SessionRecordingURI is where finished session recordings are stored: empty for
	// data_dir/records, file:///path, or s3://bucket/prefix?endpoint=…&region=….
	SessionRecordingURI string `yaml:"session_recording_uri"`
}

// Authentication configures local users.
type Authentication struct {
	Type         string `yaml:"type"`
	SecondFactor string `yaml:"second_factor"`
	// MaxLoginFailures failed logins within LoginFailureWindow lock the account for
	// AccountLockTTL. Zero takes the defaults (5, 30m, 20m).
	MaxLoginFailures   int           `yaml:"max_login_failures"`
	LoginFailureWindow time.Duration `yaml:"login_failure_window"`
	AccountLockTTL     time.Duration `yaml:"account_lock_ttl"`
}

// ProxyService configures the proxy's one TLS port.
type ProxyService struct {
	Enabled       *bool     `yaml:"enabled"`
	WebListenAddr string    `yaml:"web_listen_addr"`
	PublicAddr    string    `yaml:"public_addr"`
	HTTPSKeypairs []Keypair `yaml:"https_keypairs"`
	// TunnelPublicAddr is where Kubernetes Services reach this proxy itself (not a load
	// balancer in front of several) for a reverse tunnel; default: the web listener, or
	// nodename with its port when it listens on every address.
	TunnelPublicAddr string `yaml:"tunnel_public_addr"`
}

// Keypair is a certificate and key on disk.
type Keypair struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// KubeService configures the Kubernetes Service.
type KubeService struct {
	Enabled         *bool             `yaml:"enabled"`
	KubeconfigFile  string            `yaml:"kubeconfig_file"`
	KubeClusterName string            `yaml:"kube_cluster_name"`
	Labels          map[string]string `yaml:"labels"`
	// IdentitySecret keeps an agent's host identity in this Secret of the pod's
	// namespace ($POD_NAMESPACE) instead of data_dir, written with the service's own
	// credentials for its cluster, so that a rescheduled pod does not join again.
	IdentitySecret string `yaml:"identity_secret"`
}

// Defaults.
const (
	DefaultDataDir    = "/var/lib/keyport"
	DefaultAuthListen = "0.0.0.0:3025"
	DefaultWebListen  = "0.0.0.0:3080"
	DefaultEtcdPrefix = "/keyport"
	StorageSQLite     = "sqlite"
	StorageEtcd       = "etcd"
)

// AuthEnabled, ProxyEnabled and KubeEnabled say which services run. Auth and proxy are
// on unless disabled, as in Teleport; the Kubernetes Service is off unless enabled.
func (f *File) AuthEnabled() bool  { return f.Auth.Enabled == nil || *f.Auth.Enabled }
func (f *File) ProxyEnabled() bool { return f.Proxy.Enabled == nil || *f.Proxy.Enabled }
func (f *File) KubeEnabled() bool  { return f.Kube.Enabled != nil && *f.Kube.Enabled }

// Read loads and validates the config at path.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a config file's bytes; path is used in errors and to resolve
// relative paths.
func Parse(path string, data []byte) (*File, error) {
	f := &File{}
	name := filepath.Base(path)
	if err := yamlpos.DecodeStrict(name, data, f, f.CheckAndSetDefaults); err != nil {
		return nil, err
	}
	f.Path = path
	if !filepath.IsAbs(f.Keyport.DataDir) {
		abs, err := filepath.Abs(filepath.Join(filepath.Dir(path), f.Keyport.DataDir))
		if err != nil {
			return nil, err
		}
		f.Keyport.DataDir = abs
	}
	if f.Kube.KubeconfigFile != "" && !filepath.IsAbs(f.Kube.KubeconfigFile) {
		f.Kube.KubeconfigFile = filepath.Join(filepath.Dir(path), f.Kube.KubeconfigFile)
	}
	return f, nil
}

// CheckAndSetDefaults validates the file and fills in defaults. Errors are
// yamlpos.FieldErrors so that they can be positioned in the file.
func (f *File) CheckAndSetDefaults() error {
	if f.Version != "v3" {
		if f.Version == "" {
			return yamlpos.Fieldf("version", "missing; want v3")
		}
		return yamlpos.Fieldf("version", "unsupported version %q; want v3", f.Version)
	}
	k := &f.Keyport
	if k.NodeName == "" {
		h, _ := os.Hostname()
		k.NodeName = h
	}
	if k.DataDir == "" {
		k.DataDir = DefaultDataDir
	}
	switch strings.ToUpper(k.Log.Severity) {
	case "":
		k.Log.Severity = "INFO"
	case "DEBUG", "INFO", "WARN", "WARNING", "ERROR":
		k.Log.Severity = strings.ToUpper(k.Log.Severity)
	default:
		return yamlpos.Fieldf("keyport.log.severity", "unknown severity %q (want DEBUG, INFO, WARN or ERROR)", k.Log.Severity)
	}
	switch k.Log.Format {
	case "":
		k.Log.Format = "text"
	case "text", "json":
	default:
		return yamlpos.Fieldf("keyport.log.format", "unknown format %q (want text or json)", k.Log.Format)
	}
	switch k.Storage.Type {
	case "", StorageSQLite:
		k.Storage.Type = StorageSQLite
		if len(k.Storage.Peers) > 0 {
			return yamlpos.Fieldf("keyport.storage.peers", "only for type etcd")
		}
	case StorageEtcd:
		if len(k.Storage.Peers) == 0 {
			return yamlpos.Fieldf("keyport.storage.peers", "etcd storage needs at least one peer")
		}
		if k.Storage.Prefix == "" {
			k.Storage.Prefix = DefaultEtcdPrefix
		}
		if (k.Storage.TLSCertFile == "") != (k.Storage.TLSKeyFile == "") {
			return yamlpos.Fieldf("keyport.storage.tls_cert_file", "tls_cert_file and tls_key_file go together")
		}
	default:
		return yamlpos.Fieldf("keyport.storage.type", "unknown storage type %q (want sqlite or etcd)", k.Storage.Type)
	}
	for i, p := range k.CAPins {
		if !strings.HasPrefix(p, "sha256:") || len(p) != len("sha256:")+64 {
			return yamlpos.Fieldf(fmt.Sprintf("keyport.ca_pins[%d]", i), "want sha256: and 64 hex digits")
		}
	}
	if k.DiagAddr != "" {
		if err := checkHostPort(k.DiagAddr); err != nil {
			return yamlpos.Fieldf("keyport.diag_addr", "%v", err)
		}
	}
	if f.AuthEnabled() {
		a := &f.Auth
		if a.ClusterName == "" {
			return yamlpos.Fieldf("auth_service.cluster_name", "required when the auth service is enabled")
		}
		if a.ListenAddr == "" {
			a.ListenAddr = DefaultAuthListen
		}
		if err := checkHostPort(a.ListenAddr); err != nil {
			return yamlpos.Fieldf("auth_service.listen_addr", "%v", err)
		}
		switch a.Authentication.Type {
		case "":
			a.Authentication.Type = "local"
		case "local":
		default:
			return yamlpos.Fieldf("auth_service.authentication.type", "unknown type %q (want local)", a.Authentication.Type)
		}
		switch a.Authentication.SecondFactor {
		case "":
			a.Authentication.SecondFactor = "otp"
		case "otp", "off":
		default:
			return yamlpos.Fieldf("auth_service.authentication.second_factor", "unknown second factor %q (want otp or off)", a.Authentication.SecondFactor)
		}
		if a.Authentication.MaxLoginFailures < 0 {
			return yamlpos.Fieldf("auth_service.authentication.max_login_failures", "must not be negative")
		}
		if a.Authentication.LoginFailureWindow < 0 {
			return yamlpos.Fieldf("auth_service.authentication.login_failure_window", "must not be negative")
		}
		if a.Authentication.AccountLockTTL < 0 {
			return yamlpos.Fieldf("auth_service.authentication.account_lock_ttl", "must not be negative")
		}
		switch a.CAKeyAlgorithm {
		case "":
			a.CAKeyAlgorithm = tlsca.AlgECDSAP256
		case tlsca.AlgECDSAP256, tlsca.AlgEd25519, tlsca.AlgRSA2048:
		default:
			return yamlpos.Fieldf("auth_service.ca_key_algorithm", "unknown algorithm %q (want ecdsa-p256, ed25519 or rsa2048)", a.CAKeyAlgorithm)
		}
		if _, _, err := recording.ParseURI(a.SessionRecordingURI); err != nil {
			return yamlpos.Fieldf("auth_service.session_recording_uri", "%v", err)
		}
	} else if k.AuthServer == "" && k.ProxyServer == "" {
		return yamlpos.Fieldf("keyport.auth_server", "a process without auth_service needs auth_server or proxy_server")
	}
	if k.AuthServer != "" {
		if err := checkHostPort(k.AuthServer); err != nil {
			return yamlpos.Fieldf("keyport.auth_server", "%v", err)
		}
	}
	if f.ProxyEnabled() {
		p := &f.Proxy
		if p.WebListenAddr == "" {
			p.WebListenAddr = DefaultWebListen
		}
		if err := checkHostPort(p.WebListenAddr); err != nil {
			return yamlpos.Fieldf("proxy_service.web_listen_addr", "%v", err)
		}
		if p.PublicAddr != "" {
			if err := checkHostPort(p.PublicAddr); err != nil {
				return yamlpos.Fieldf("proxy_service.public_addr", "%v", err)
			}
		}
		for i, kp := range p.HTTPSKeypairs {
			if kp.CertFile == "" || kp.KeyFile == "" {
				return yamlpos.Fieldf(fmt.Sprintf("proxy_service.https_keypairs[%d]", i), "needs cert_file and key_file")
			}
		}
	}
	if f.Kube.IdentitySecret != "" && f.AuthEnabled() {
		return yamlpos.Fieldf("kubernetes_service.identity_secret", "is for a Kubernetes Service that joins a cluster (auth_service.enabled: false)")
	}
	if f.KubeEnabled() {
		if f.Kube.KubeconfigFile == "" && f.Kube.KubeClusterName == "" {
			return yamlpos.Fieldf("kubernetes_service.kubeconfig_file", "set kubeconfig_file, or kube_cluster_name when running in a cluster")
		}
	}
	switch k.JoinParams.Method {
	case "", "token", "kubernetes":
	default:
		return yamlpos.Fieldf("keyport.join_params.method", "unknown join method %q (want token or kubernetes)", k.JoinParams.Method)
	}
	return nil
}

// PublicAddr is the proxy address that clients are told to use.
func (f *File) PublicAddr() string {
	if f.Proxy.PublicAddr != "" {
		return f.Proxy.PublicAddr
	}
	return f.Proxy.WebListenAddr
}

// LocalAuthAddr is the address a process on this host dials to reach its own Auth Service.
func (f *File) LocalAuthAddr() string { return dialable(f.Auth.ListenAddr) }

// dialable turns a wildcard listen address into a loopback one.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	return nil
}

//go:embed sample.yaml
var sample string

// Sample is the commented configuration `keyport configure` prints.
func Sample() string { return sample }
