package bench

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"

	"k8s.io/client-go/rest"
)

// startBareProxy starts the reference the Keyport column is read against: a bare
// httputil.ReverseProxy, TLS and HTTP/2 on both sides like Keyport, that sends every
// request to the API server with the admin credentials and the impersonation headers
// Keyport would set (user and groups), and does nothing else (no client certificate, no
// authorisation, no audit). Its cost is what any Go reverse proxy in front of the API
// server pays; Keyport's cost above it is Keyport's own. It returns the server and the
// client config that reaches the API server through it. The in-process section runs it
// in the bench's process, the deployed section in a process of its own (bare-proxy).
func startBareProxy(admin *rest.Config, user string, groups []string) (*httptest.Server, *rest.Config, error) {
	upstream := rest.CopyConfig(admin)
	upstream.Impersonate = rest.ImpersonationConfig{}
	upstream.QPS, upstream.Burst = -1, -1
	tr, err := rest.TransportFor(upstream)
	if err != nil {
		return nil, nil, err
	}
	target, err := url.Parse(upstream.Host)
	if err != nil {
		return nil, nil, err
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Set("Impersonate-User", user)
			pr.Out.Header["Impersonate-Group"] = groups
		},
		Transport: tr,
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	cfg := &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM, ServerName: serverName(srv.Certificate())}}
	return srv, cfg, nil
}

// serverName is a name the httptest certificate is valid for.
func serverName(c *x509.Certificate) string {
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return ""
}

var _ http.Handler = (*httputil.ReverseProxy)(nil)
