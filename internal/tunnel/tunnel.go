// Package tunnel owns the reverse tunnel's wire protocol, both of its ends: how a
// Kubernetes Service that reaches the proxy only outbound opens a tunnel (Dial) and
// serves the proxy's requests on it (Serve, ServeUpgrade), and how the proxy accepts one
// (Accept) and sends requests and connection upgrades through it (Client). Who may open
// a tunnel and which clusters it may carry are the proxy's business (package proxy);
// what is forwarded to which API server is the Kubernetes Service's (package kube).
//
// The protocol. The service opens a TLS connection to the proxy's one port with its host
// certificate and asks, in HTTP/1.1, to switch it to Protocol, naming its clusters in
// HeaderClusters. After the proxy's 101 the roles turn around: the proxy is the HTTP/2
// client and the service the HTTP/2 server (prior knowledge, inside the TLS the service
// opened). Ordinary requests are HTTP/2 streams to Prefix + cluster + the API path.
// Connection upgrades (exec, attach, port-forward over SPDY or WebSocket) cannot be HTTP/2
// requests, so the proxy sends them as a streaming request that carries the upgrade in
// HeaderUpgrade; the service performs the upgrade against the API server and answers 200
// with HeaderUpgradeStatus 101, and from then on the stream's two bodies are the two
// directions of the upgraded connection.
package tunnel

import (
	"net/http"
	"time"
)

const (
	// Path is where the proxy accepts tunnels.
	Path = "/v1/tunnel"
	// Protocol is the Upgrade token of a tunnel.
	Protocol = "keyport-tunnel"
	// HeaderClusters lists, comma-separated, the kube clusters a tunnel serves.
	HeaderClusters = "Keyport-Kube-Clusters"
	// HeaderUpgrade carries a request's Upgrade value through the tunnel, where HTTP/2
	// forbids the Upgrade and Connection headers.
	HeaderUpgrade = "Keyport-Upgrade"
	// HeaderUpgradeStatus is 101 on a tunnelled response whose upgrade succeeded.
	HeaderUpgradeStatus = "Keyport-Upgrade-Status"
	// Prefix starts the path of every tunnelled request: /v1/kube/<cluster>/<API path>.
	Prefix = "/v1/kube/"
)

// HTTP2 is the HTTP/2 tuning both ends use: pings keep NAT mappings alive and find a
// dead peer within about 45 s, and one tunnel carries many watches.
func HTTP2() *http.HTTP2Config {
	return &http.HTTP2Config{MaxConcurrentStreams: 10000, SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
}

// Protocols is HTTP/2 with prior knowledge: the tunnel's TLS is already set up.
func Protocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// hopHeaders are connection-specific: never copied between the HTTP/2 tunnel and an
// HTTP/1.1 connection.
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}
