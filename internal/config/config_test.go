package config

import (
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/errs"
)

func TestSampleParses(t *testing.T) {
	f, err := Parse("/etc/keyport.yaml", []byte(Sample()))
	if err != nil {
		t.Fatal(err)
	}
	if !f.AuthEnabled() || !f.ProxyEnabled() || !f.KubeEnabled() {
		t.Fatal("services not enabled")
	}
	if f.Auth.Authentication.AccountLockTTL != 20*time.Minute || f.Auth.Authentication.MaxLoginFailures != 5 {
		t.Fatalf("lockout settings: %+v", f.Auth.Authentication)
	}
	if f.Auth.ClusterName != "keyport.example.com" || f.Kube.Labels["env"] != "dev" || f.Keyport.Storage.Type != StorageSQLite {
		t.Fatalf("unexpected %+v", f)
	}
	if f.LocalAuthAddr() != "127.0.0.1:3025" {
		t.Fatalf("LocalAuthAddr = %s", f.LocalAuthAddr())
	}
}

func TestDefaults(t *testing.T) {
	f, err := Parse("/x/k.yaml", []byte("version: v3\nkeyport:\n  data_dir: data\nauth_service:\n  cluster_name: c\n"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Keyport.DataDir != "/x/data" || f.Auth.ListenAddr != DefaultAuthListen || f.Proxy.WebListenAddr != DefaultWebListen ||
		f.Auth.CAKeyAlgorithm != "ecdsa-p256" || f.Auth.Authentication.SecondFactor != "otp" || f.KubeEnabled() {
		t.Fatalf("defaults: %+v", f)
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top key", "version: v3\nauth_servce:\n  cluster_name: c\n", "keyport.yaml:2: auth_servce: unknown field"},
		{"unknown nested key", "version: v3\nauth_service:\n  cluster_name: c\n  listen_adr: 1.2.3.4:1\n", "keyport.yaml:4: auth_service.listen_adr: unknown field"},
		{"wrong type", "version: v3\nauth_service:\n  cluster_name: c\nkubernetes_service:\n  labels: [a]\n", "keyport.yaml:5: kubernetes_service.labels: expected a mapping, got a list"},
		{"bool wanted", "version: v3\nauth_service:\n  enabled: yes please\n  cluster_name: c\n", "keyport.yaml:3: auth_service.enabled: expected a boolean, got a string"},
		{"missing version", "auth_service:\n  cluster_name: c\n", "keyport.yaml:1: version: missing; want v3"},
		{"bad version", "version: v2\nauth_service:\n  cluster_name: c\n", "keyport.yaml:1: version: unsupported version \"v2\"; want v3"},
		{"no cluster name", "version: v3\nauth_service:\n  enabled: true\n", "keyport.yaml:2: auth_service.cluster_name: required when the auth service is enabled"},
		{"bad storage", "version: v3\nkeyport:\n  storage:\n    type: mysql\nauth_service:\n  cluster_name: c\n", "keyport.yaml:4: keyport.storage.type: unknown storage type \"mysql\" (want sqlite or etcd)"},
		{"etcd without peers", "version: v3\nkeyport:\n  storage:\n    type: etcd\nauth_service:\n  cluster_name: c\n", "keyport.yaml:3: keyport.storage.peers: etcd storage needs at least one peer"},
		{"bad listen", "version: v3\nauth_service:\n  cluster_name: c\n  listen_addr: nowhere\n", "keyport.yaml:4: auth_service.listen_addr: \"nowhere\" is not host:port"},
		{"bad algorithm", "version: v3\nauth_service:\n  cluster_name: c\n  ca_key_algorithm: dsa\n", "keyport.yaml:4: auth_service.ca_key_algorithm: unknown algorithm \"dsa\""},
		{"bad recording uri", "version: v3\nauth_service:\n  cluster_name: c\n  session_recording_uri: s3://\n", `keyport.yaml:4: auth_service.session_recording_uri: "s3://": no bucket (want s3://bucket/prefix)`},
		{"recording uri with a secret", "version: v3\nauth_service:\n  cluster_name: c\n  session_recording_uri: s3://k:s@b/p\n", `keyport.yaml:4: auth_service.session_recording_uri: credentials do not belong in the URI`},
		{"bad pin", "version: v3\nkeyport:\n  ca_pins: [sha1:00]\nauth_service:\n  cluster_name: c\n", "keyport.yaml:3: keyport.ca_pins[0]: want sha256: and 64 hex digits"},
		{"agent without server", "version: v3\nauth_service:\n  enabled: false\n", "keyport.yaml:1: keyport.auth_server: a process without auth_service needs auth_server or proxy_server"},
		{"kube without source", "version: v3\nauth_service:\n  cluster_name: c\nkubernetes_service:\n  enabled: true\n", "keyport.yaml:4: kubernetes_service.kubeconfig_file: set kubeconfig_file"},
		{"empty", "", "keyport.yaml: file is empty"},
		{"syntax", "version: v3\nauth_service: [\n", "keyport.yaml:3: did not find expected node content"},
		{"negative lock", "version: v3\nauth_service:\n  cluster_name: c\n  authentication:\n    account_lock_ttl: -1m\n", "keyport.yaml:5: auth_service.authentication.account_lock_ttl: must not be negative"},
		{"lock ttl not a duration", "version: v3\nauth_service:\n  cluster_name: c\n  authentication:\n    account_lock_ttl: soon\n", `keyport.yaml:5: auth_service.authentication.account_lock_ttl: invalid duration "soon" (use Go syntax such as "8h" or "30m")`},
		{"bad severity", "version: v3\nkeyport:\n  log:\n    severity: LOUD\nauth_service:\n  cluster_name: c\n", "keyport.yaml:4: keyport.log.severity: unknown severity \"LOUD\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("/etc/keyport.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; got %+v", f)
			}
			if f != nil {
				t.Fatal("partial config returned with an error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error\n got: %s\nwant: %s", err, tt.want)
			}
			if !errs.IsBadParameter(err) {
				t.Fatalf("error kind %v", errs.KindOf(err))
			}
		})
	}
}
