package tbot

import (
	"crypto/x509"
	"net"
	"strings"
	"sync"

	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tbot/config"
	"github.com/keyport/keyport/internal/tlsca"
)

// firstContact decides whether to trust a server before the bot has a host CA of its own
// (SPEC section 9): with ca_pins, the server must present a CA whose pin is listed and
// that signed its certificate; without pins, its certificate must verify against the
// system roots; with insecure, nothing is checked. The check runs in the TLS handshake,
// so the join token is never sent to a server that fails it.
type firstContact struct {
	pins     []string
	insecure bool
	roots    *x509.CertPool
	addr     string

	mu  sync.Mutex
	err error // why the last handshake was refused, for a clear message
	ca  *x509.Certificate
}

func newFirstContact(cfg *config.Config, roots *x509.CertPool) *firstContact {
	return &firstContact{pins: cfg.Onboarding.CAPins, insecure: cfg.Insecure, roots: roots, addr: cfg.Addr()}
}

func (f *firstContact) clientConfig(addr string) client.Config {
	if f.insecure && len(f.pins) == 0 {
		return client.Config{Addr: addr, InsecureSkipVerify: true}
	}
	cfg := client.Config{Addr: addr, VerifyServer: f.verify}
	if len(f.pins) == 0 {
		// The proxy presents its public (https_keypairs) certificate to any SNI other
		// than Keyport's internal name; that is the certificate the system roots can
		// verify, for the name tbot dialled. (For an IP address no SNI is sent, which
		// selects the public certificate too.)
		cfg.ServerName = hostOf(addr)
	}
	return cfg
}

func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

func (f *firstContact) refuse(err error) error {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
	return err
}

// verify is the handshake check. Keyport servers present their leaf followed by the host
// CA certificate, which is what makes a pin check possible before anything is sent.
func (f *firstContact) verify(raw [][]byte) error {
	if len(raw) == 0 {
		return f.refuse(errs.AccessDeniedf("the server at %s presented no certificate", f.addr))
	}
	certs := make([]*x509.Certificate, 0, len(raw))
	for _, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return f.refuse(errs.AccessDeniedf("the server at %s presented an unreadable certificate: %v", f.addr, err))
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	if len(f.pins) > 0 {
		var lastPinErr error
		for _, ca := range certs[1:] {
			if !ca.IsCA {
				continue
			}
			if err := tlsca.CheckPins(ca, f.pins); err != nil {
				lastPinErr = err
				continue
			}
			pool := x509.NewCertPool()
			pool.AddCert(ca)
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: tlsca.ServerName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return f.refuse(errs.AccessDeniedf("the server at %s presented a CA that matches onboarding.ca_pins, but its certificate was not issued by that CA: %v", f.addr, err))
			}
			f.mu.Lock()
			f.ca = ca
			f.mu.Unlock()
			return nil
		}
		if lastPinErr != nil {
			return f.refuse(errs.AccessDeniedf("refusing %s before sending the join token: %v", f.addr, lastPinErr))
		}
		return f.refuse(errs.AccessDeniedf("refusing %s before sending the join token: it presented no CA certificate to check against onboarding.ca_pins (is it a Keyport proxy?)", f.addr))
	}
	// No pins: the proxy must have a certificate the system trusts (https_keypairs).
	roots := f.roots
	if roots == nil {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			return f.refuse(errs.AccessDeniedf("no onboarding.ca_pins and no system roots to verify %s: %v", f.addr, err))
		}
	}
	host := hostOf(f.addr)
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host}); err != nil {
		return f.refuse(errs.AccessDeniedf("refusing %s before sending the join token: its certificate does not verify against the system roots (%v); "+
			"set onboarding.ca_pins (or --ca-pin) to the pin `tctl status` prints, or for a test only use insecure: true", f.addr, err))
	}
	return nil
}

// explain replaces a failed call's connection error with the trust check's own reason.
func (f *firstContact) explain(err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil && err != nil {
		return f.err
	}
	return err
}

// checkIssuedCAs makes sure the host CA handed over at join is the one the pins named:
// after joining, tbot trusts only that CA.
func (f *firstContact) checkIssuedCAs(id *identityfile.Identity) error {
	if len(f.pins) == 0 {
		return nil
	}
	for _, p := range id.HostCAs {
		certs, err := tlsca.ParseCertsPEM(p)
		if err != nil {
			return err
		}
		for _, c := range certs {
			if tlsca.CheckPins(c, f.pins) == nil {
				return nil
			}
		}
	}
	return errs.AccessDeniedf("the host CA returned at join matches none of onboarding.ca_pins")
}

func pinListed(pin string, pins []string) bool {
	for _, p := range pins {
		if strings.EqualFold(strings.TrimSpace(p), pin) {
			return true
		}
	}
	return false
}
