package config

import (
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/errs"
)

// guide is tbot.yaml as Teleport's "Machine ID with Kubernetes Access" guide writes it,
// with only the host name changed.
const guide = `version: v2
proxy_server: keyport.example.com:3080
onboarding:
  join_method: token
  token: abcd123-insecure-do-not-use-this
storage:
  type: directory
  path: /var/lib/keyport/bot
outputs:
  - type: kubernetes
    kubernetes_cluster: example-k8s-cluster
    destination:
      type: directory
      path: /opt/machine-id
`

func TestGuideConfigParses(t *testing.T) {
	c, err := Parse("/etc/tbot.yaml", []byte(guide))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "keyport.example.com:3080" || c.Onboarding.JoinMethod != JoinToken || c.Onboarding.Token != "abcd123-insecure-do-not-use-this" {
		t.Fatalf("config = %+v", c)
	}
	if c.CredentialTTL != time.Hour || c.RenewalInterval != 20*time.Minute {
		t.Fatalf("defaults: ttl %s interval %s", c.CredentialTTL, c.RenewalInterval)
	}
	o := c.Outputs[0]
	if o.Type != OutputKubernetes || o.KubernetesCluster != "example-k8s-cluster" || o.Destination.Path != "/opt/machine-id" || o.Destination.Symlinks != SymlinksTrySecure {
		t.Fatalf("output = %+v / %+v", o, o.Destination)
	}
	// What configure prints reads back as the same config.
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := Parse("tbot.yaml", data)
	if err != nil {
		t.Fatalf("re-parse of\n%s: %v", data, err)
	}
	if c2.Outputs[0].KubernetesCluster != "example-k8s-cluster" || c2.CredentialTTL != time.Hour {
		t.Fatalf("round trip: %+v", c2)
	}
}

func TestFullConfigParses(t *testing.T) {
	const full = `version: v2
proxy_server: keyport.example.com:3080
onboarding:
  join_method: token
  token: /var/lib/keyport/token
  ca_pins: ['sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef']
storage: {type: memory}
credential_ttl: 2h
renewal_interval: 30m
oneshot: true
diag_addr: 127.0.0.1:3001
outputs:
  - type: kubernetes
    kubernetes_cluster: example-k8s-cluster
    disable_exec_plugin: true
    destination: {type: directory, path: /opt/machine-id, symlinks: secure}
  - type: kubernetes/v2
    selectors: [{name: prod-a}, {labels: {env: prod}}]
    destination: {type: kubernetes_secret, name: keyport-kube, labels: {app: x}}
  - type: identity
    destination: {type: directory, path: /opt/machine-id/identity}
  - type: kubernetes/argo-cd
    selectors: [{labels: {env: prod}}]
    secret_namespace: argocd
`
	c, err := Parse("tbot.yaml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	if c.CredentialTTL != 2*time.Hour || !c.Oneshot || c.Storage.Type != DestMemory || len(c.Outputs) != 4 {
		t.Fatalf("config = %+v", c)
	}
	if c.Outputs[1].ContextNameTemplate != DefaultContextNameTemplate || len(c.Outputs[1].Selectors) != 2 {
		t.Fatalf("v2 = %+v", c.Outputs[1])
	}
	if got, _ := ContextName(c.Outputs[1].ContextNameTemplate, "keyport.example.com", "prod-a"); got != "keyport.example.com-prod-a" {
		t.Fatalf("context name = %q", got)
	}
}

func TestBadConfigs(t *testing.T) {
	// head is a valid config up to outputs; cases append to it or replace it.
	const head = "version: v2\nproxy_server: p.example.com:3080\nonboarding:\n  token: t\n"
	const out = "outputs:\n  - type: kubernetes\n    kubernetes_cluster: c\n    destination: {type: directory, path: /tmp/x}\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top key", head + "storge: {type: memory}\n" + out,
			"tbot.yaml:5: storge: unknown field"},
		{"unknown output key", head + "outputs:\n  - type: kubernetes\n    kubernetes_clster: c\n",
			"tbot.yaml:7: outputs[0].kubernetes_clster: unknown field"},
		{"missing version", "proxy_server: p.example.com:3080\n" + out,
			"tbot.yaml:1: version: missing; want v2"},
		{"old version", "version: v1\nproxy_server: p.example.com:3080\n" + out,
			"tbot.yaml:1: version: unsupported version \"v1\"; want v2"},
		{"no server", "version: v2\n" + out,
			"tbot.yaml:1: proxy_server: required (or auth_server)"},
		{"both servers", head + "auth_server: a.example.com:3025\n" + out,
			"tbot.yaml:5: auth_server: set proxy_server or auth_server, not both"},
		{"server without port", "version: v2\nproxy_server: keyport.example.com\n" + out,
			"tbot.yaml:2: proxy_server: \"keyport.example.com\" is not host:port"},
		{"bad join method", "version: v2\nproxy_server: p.example.com:3080\nonboarding:\n  join_method: iam\n" + out,
			"tbot.yaml:4: onboarding.join_method: unknown join method \"iam\" (want token, kubernetes, github, gitlab, oidc or bound_keypair)"},
		{"oidc without a source", "version: v2\nproxy_server: p.example.com:3080\nonboarding:\n  join_method: oidc\n  token: ci\n" + out,
			"tbot.yaml:3: onboarding.oidc: set exactly one of token_file and token_env_var_name (where the platform puts its ID token)"},
		{"oidc with two sources", "version: v2\nproxy_server: p.example.com:3080\nonboarding:\n  join_method: oidc\n  token: ci\n  oidc: {token_file: /t, token_env_var_name: T}\n" + out,
			"tbot.yaml:6: onboarding.oidc: set exactly one of token_file and token_env_var_name (where the platform puts its ID token)"},
		{"gitlab block for github", "version: v2\nproxy_server: p.example.com:3080\nonboarding:\n  join_method: github\n  token: ci\n  gitlab: {token_env_var_name: X}\n" + out,
			"tbot.yaml:6: onboarding.gitlab: is only for join_method gitlab"},
		{"audience for gitlab", "version: v2\nproxy_server: p.example.com:3080\nonboarding:\n  join_method: gitlab\n  token: ci\n  audience: x\n" + out,
			"tbot.yaml:6: onboarding.audience: is only for join_method github"},
		{"bad pin", head + "  ca_pins: [sha1:abc]\n" + out,
			"tbot.yaml:5: onboarding.ca_pins[0]: want sha256: and 64 hex digits"},
		{"ttl without interval", head + "credential_ttl: 2h\n" + out,
			"tbot.yaml:5: credential_ttl: set renewal_interval too (both or neither)"},
		{"interval without ttl", head + "renewal_interval: 10m\n" + out,
			"tbot.yaml:5: renewal_interval: set credential_ttl too (both or neither)"},
		{"ttl too long", head + "credential_ttl: 25h\nrenewal_interval: 1h\n" + out,
			"tbot.yaml:5: credential_ttl: 25h0m0s is longer than the maximum of 24h"},
		{"interval not below ttl", head + "credential_ttl: 1h\nrenewal_interval: 1h\n" + out,
			"tbot.yaml:6: renewal_interval: 1h0m0s must be shorter than credential_ttl (1h0m0s)"},
		{"bad duration", head + "credential_ttl: forever\nrenewal_interval: 1h\n" + out,
			`tbot.yaml:5: credential_ttl: invalid duration "forever" (use Go syntax such as "8h" or "30m")`},
		{"bad storage type", head + "storage: {type: kubernetes_secret, name: x}\n" + out,
			"tbot.yaml:5: storage.type: storage may be directory or memory"},
		{"no outputs", head,
			"tbot.yaml:1: outputs: at least one output is required"},
		{"unknown output type", head + "outputs:\n  - type: ssh\n    destination: {type: memory}\n",
			"tbot.yaml:6: outputs[0].type: unknown output type \"ssh\""},
		{"kubernetes without cluster", head + "outputs:\n  - type: kubernetes\n    destination: {type: memory}\n",
			"tbot.yaml:6: outputs[0].kubernetes_cluster: required for a kubernetes output"},
		{"missing destination", head + "outputs:\n  - type: identity\n",
			"tbot.yaml:6: outputs[0].destination: required for an identity output"},
		{"key of another type", head + "outputs:\n  - type: identity\n    kubernetes_cluster: c\n    destination: {type: memory}\n",
			"tbot.yaml:7: outputs[0].kubernetes_cluster: not valid for an identity output"},
		{"unknown destination", head + "outputs:\n  - type: identity\n    destination:\n      type: s3\n",
			"tbot.yaml:8: outputs[0].destination.type: unknown destination type \"s3\""},
		{"bad symlinks", head + "outputs:\n  - type: identity\n    destination:\n      type: directory\n      path: /x\n      symlinks: sometimes\n",
			"tbot.yaml:10: outputs[0].destination.symlinks: unknown value \"sometimes\" (want secure, try-secure or insecure)"},
		{"directory without path", head + "outputs:\n  - type: identity\n    destination:\n      type: directory\n",
			"tbot.yaml:7: outputs[0].destination.path: required for a directory destination"},
		{"readers", head + "outputs:\n  - type: identity\n    destination:\n      type: directory\n      path: /x\n      readers: [{user: kubectl}]\n",
			"tbot.yaml:10: outputs[0].destination.readers: POSIX ACL readers are not supported yet"},
		{"secret without name", head + "outputs:\n  - type: identity\n    destination:\n      type: kubernetes_secret\n",
			"tbot.yaml:7: outputs[0].destination.name: required for a kubernetes_secret destination"},
		{"shared destination", head + out + "  - type: identity\n    destination: {type: directory, path: /tmp/x/}\n",
			"tbot.yaml:10: outputs[1].destination: directory /tmp/x is already used by outputs[0].destination; two outputs may not share a destination"},
		{"storage shared with output", head + "storage: {type: directory, path: /tmp/x}\n" + out,
			"tbot.yaml:9: outputs[0].destination: directory /tmp/x is already used by storage"},
		{"v2 without selectors", head + "outputs:\n  - type: kubernetes/v2\n    destination: {type: memory}\n",
			"tbot.yaml:6: outputs[0].selectors: at least one selector is required"},
		{"selector with both", head + "outputs:\n  - type: kubernetes/v2\n    selectors:\n      - {name: a, labels: {env: prod}}\n    destination: {type: memory}\n",
			"tbot.yaml:8: outputs[0].selectors[0]: set exactly one of name or labels"},
		{"bad context template", head + "outputs:\n  - type: kubernetes/v2\n    selectors: [{name: a}]\n    context_name_template: '{{.Nope}}'\n    destination: {type: memory}\n",
			"tbot.yaml:8: outputs[0].context_name_template: template: context_name_template:1:2: executing"},
		{"argo with destination", head + "outputs:\n  - type: kubernetes/argo-cd\n    selectors: [{name: a}]\n    destination: {type: memory}\n",
			"tbot.yaml:8: outputs[0].destination: not valid for a kubernetes/argo-cd output"},
		{"wrong type", head + "oneshot: sometimes\n" + out,
			"tbot.yaml:5: oneshot: expected a boolean, got a string"},
		{"bad diag addr", head + "diag_addr: 3001\n" + out,
			"tbot.yaml:5: diag_addr: \"3001\" is not host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("/etc/keyport/tbot.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("no error; got %+v", c)
			}
			if c != nil {
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
