package tsh

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/tsh/profile"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
)

// How tsh login decides to trust a proxy before it sends a password (SPEC section 8):
//
//  1. --insecure: nothing is checked, with a warning.
//  2. A host CA pin trusted before for this proxy (~/.tsh/known_cas).
//  3. The proxy's certificate verifies against the system roots for its host name (a
//     public https_keypairs certificate): its /webapi/ping then names the host CA pin.
//  4. Otherwise (first use of a proxy with the host-CA certificate) tsh shows the pin of
//     the CA the proxy presents and asks; "y" trusts it from then on.
//
// In 2-4 the gRPC connection itself is checked in the TLS handshake: the proxy must
// present a CA with the trusted pin that issued its certificate.

// pinCheck is the handshake check of the gRPC connection.
type pinCheck struct {
	addr string

	mu      sync.Mutex
	pins    []string // trusted pins; empty while capturing
	capture bool     // first use: accept any CA that issued the leaf, and remember it
	ca      *x509.Certificate
	err     error
}

func (c *pinCheck) verify(raw [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		cert, err := x509.ParseCertificate(r)
		if err != nil {
			c.err = errs.AccessDeniedf("the proxy at %s presented an unreadable certificate: %v", c.addr, err)
			return c.err
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		c.err = errs.AccessDeniedf("the proxy at %s presented no certificate", c.addr)
		return c.err
	}
	leaf := certs[0]
	var pinErr error
	for _, ca := range certs[1:] {
		if !ca.IsCA {
			continue
		}
		if !c.capture && !slices.Contains(c.pins, tlsca.Pin(ca)) {
			pinErr = fmt.Errorf("its host CA has pin %s, but the pin trusted for it is %s", tlsca.Pin(ca), strings.Join(c.pins, " or "))
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: tlsca.ServerName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			continue
		}
		c.ca = ca
		return nil
	}
	if pinErr != nil {
		c.err = errs.AccessDeniedf("refusing the proxy at %s: %v. If the cluster's CA really changed, remove its line from ~/.tsh/known_cas", c.addr, pinErr)
	} else {
		c.err = errs.AccessDeniedf("refusing the proxy at %s: it presented no Keyport host CA that issued its certificate (is it a Keyport proxy?)", c.addr)
	}
	return c.err
}

// trust fixes the pin after the user agreed to it at first use.
func (c *pinCheck) trust(pin string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pins, c.capture = []string{pin}, false
}

func (c *pinCheck) caPin() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ca == nil {
		return ""
	}
	return tlsca.Pin(c.ca)
}

// explain replaces a connection error with the handshake check's reason.
func (c *pinCheck) explain(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && c.err != nil {
		return c.err
	}
	return err
}

// dialProxy connects to the proxy for a login, deciding trust as described above. It
// returns the connection and the cluster's Ping; nothing secret has been sent.
func (e *env) dialProxy(ctx context.Context, st *profile.Store, addr string, insecure bool) (*client.Client, *pb.PingResponse, error) {
	if insecure {
		fmt.Fprintf(e.stdio.Err, "WARNING: --insecure: the certificate of the proxy at %s is not verified; anyone on the network path could read your password.\n", addr)
		clt, err := client.New(client.Config{Addr: addr, InsecureSkipVerify: true})
		if err != nil {
			return nil, nil, err
		}
		ping, err := clt.Ping(ctx, &pb.PingRequest{})
		if err != nil {
			_ = clt.Close()
			return nil, nil, err
		}
		return clt, ping, nil
	}
	check := &pinCheck{addr: addr, pins: st.TrustedPins(addr)}
	if len(check.pins) == 0 {
		if pin, ok := e.pinFromSystemRoots(ctx, addr); ok {
			check.pins = []string{pin}
		}
	}
	check.capture = len(check.pins) == 0
	clt, err := client.New(client.Config{Addr: addr, VerifyServer: check.verify})
	if err != nil {
		return nil, nil, err
	}
	ping, err := clt.Ping(ctx, &pb.PingRequest{})
	if err != nil {
		_ = clt.Close()
		return nil, nil, check.explain(err)
	}
	if !check.capture {
		if err := st.TrustPin(addr, check.caPin()); err != nil {
			_ = clt.Close()
			return nil, nil, err
		}
		return clt, ping, nil
	}
	pin := check.caPin()
	if pin == "" || pin != ping.GetHostCaPin() {
		_ = clt.Close()
		return nil, nil, errs.AccessDeniedf("refusing the proxy at %s: the host CA it presents (%s) is not the one it reports (%s)", addr, pin, ping.GetHostCaPin())
	}
	fmt.Fprintf(e.stdio.Err, "The proxy at %s is not trusted by this system's root certificates.\n"+
		"Keyport cluster %q presents a host CA with the pin\n  %s\n"+
		"Compare it with the \"CA pin\" line of `tctl status` on the cluster's Auth Service host.\n", addr, ping.GetClusterName(), pin)
	answer, err := e.prompt.Line("Trust this CA and continue? [y/N]: ", "answer")
	if err != nil {
		_ = clt.Close()
		return nil, nil, err
	}
	if a := strings.ToLower(answer); a != "y" && a != "yes" {
		_ = clt.Close()
		return nil, nil, errs.AccessDeniedf("the proxy at %s was not trusted; nothing was sent to it", addr)
	}
	check.trust(pin)
	if err := st.TrustPin(addr, pin); err != nil {
		_ = clt.Close()
		return nil, nil, err
	}
	return clt, ping, nil
}

// pinFromSystemRoots asks the proxy's /webapi/ping over HTTPS verified by the system
// roots for the host CA pin. It fails quietly: the caller falls back to asking.
func (e *env) pinFromSystemRoots(ctx context.Context, addr string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/webapi/ping", nil)
	if err != nil {
		return "", false
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	var ping struct {
		HostCAPin string `json:"host_ca_pin"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&ping) != nil || !strings.HasPrefix(ping.HostCAPin, "sha256:") {
		return "", false
	}
	return ping.HostCAPin, true
}
