package tlsca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/errs"
)

// Key algorithms a CA may use (SPEC section 3, ca_key_algorithm).
const (
	AlgECDSAP256 = "ecdsa-p256"
	AlgEd25519   = "ed25519"
	AlgRSA2048   = "rsa2048"
)

// GenerateKey makes a private key of the named algorithm from rand.
func GenerateKey(alg string, rand io.Reader) (crypto.Signer, error) {
	switch alg {
	case AlgECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand)
	case AlgEd25519:
		_, k, err := ed25519.GenerateKey(rand)
		return k, err
	case AlgRSA2048:
		return rsa.GenerateKey(rand, 2048)
	default:
		return nil, errs.BadParameterf("unknown key algorithm %q (want ecdsa-p256, ed25519 or rsa2048)", alg)
	}
}

// KeyAlgorithm names the algorithm of a public key.
func KeyAlgorithm(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return AlgECDSAP256
		}
		return "ecdsa-" + k.Curve.Params().Name
	case ed25519.PublicKey:
		return AlgEd25519
	case *rsa.PublicKey:
		return fmt.Sprintf("rsa%d", k.N.BitLen())
	default:
		return "unknown"
	}
}

// CA is a certificate authority: a self-signed certificate and its signer.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	Signer  crypto.Signer
}

// NewCA creates a self-signed CA named after the cluster and the CA type (host or user).
func NewCA(clusterName, caType, alg string, rand io.Reader, now time.Time, ttl time.Duration) (*CA, error) {
	key, err := GenerateKey(alg, rand)
	if err != nil {
		return nil, err
	}
	serial, err := randSerial(rand)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: clusterName, Organization: []string{clusterName}, OrganizationalUnit: []string{caType}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(ttl),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating %s CA certificate: %w", caType, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: EncodeCertPEM(der), Signer: key}, nil
}

// LoadCA parses a CA from PEM certificate and PKCS#8 key.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, err
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, CertPEM: certPEM, Signer: key}, nil
}

// CertRequest describes a certificate to issue.
type CertRequest struct {
	PublicKey crypto.PublicKey
	Identity  Identity
	NotAfter  time.Time
	// DNSNames and IPs make a server certificate (host CA); empty for client certificates.
	DNSNames []string
	IPs      []net.IP
}

// Issue signs a certificate for req with the CA's key.
func (ca *CA) Issue(rand io.Reader, now time.Time, req CertRequest) ([]byte, error) {
	ext, err := req.Identity.Extension()
	if err != nil {
		return nil, err
	}
	serial, err := randSerial(rand)
	if err != nil {
		return nil, err
	}
	notAfter := req.NotAfter
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         req.Identity.Subject(),
		NotBefore:       now.Add(-time.Minute),
		NotAfter:        notAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{ext},
		DNSNames:        req.DNSNames,
		IPAddresses:     req.IPs,
	}
	if _, ok := req.PublicKey.(*rsa.PublicKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if len(req.DNSNames) > 0 || len(req.IPs) > 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	der, err := x509.CreateCertificate(rand, tmpl, ca.Cert, req.PublicKey, ca.Signer)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %q: %w", req.Identity.Username, err)
	}
	return EncodeCertPEM(der), nil
}

// Pin returns the CA pin of a certificate: sha256: and the hex SHA-256 of its
// SubjectPublicKeyInfo (SPEC section 5).
func Pin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// CheckPins reports whether cert matches one of pins.
func CheckPins(cert *x509.Certificate, pins []string) error {
	got := Pin(cert)
	for _, p := range pins {
		if strings.EqualFold(strings.TrimSpace(p), got) {
			return nil
		}
	}
	return errs.AccessDeniedf("the cluster's host CA has pin %s, which matches none of the configured ca_pins", got)
}

// Fingerprint is the hex SHA-256 of a certificate's DER, for tables.
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// EncodeCertPEM wraps DER bytes in a CERTIFICATE PEM block.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// EncodeKeyPEM encodes a private key as PKCS#8 PEM.
func EncodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertPEM parses the first certificate in PEM data.
func ParseCertPEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertsPEM(data)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// ParseCertsPEM parses every certificate in PEM data; there must be at least one.
func ParseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, errs.BadParameterf("parsing certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errs.BadParameterf("no PEM certificate found")
	}
	return out, nil
}

// ParseKeyPEM parses a PKCS#8, PKCS#1 or SEC1 private key.
func ParseKeyPEM(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errs.BadParameterf("no PEM private key found")
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, errs.BadParameterf("parsing private key: %w", err)
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, errs.BadParameterf("private key of type %T cannot sign", k)
			}
			return s, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, errs.BadParameterf("parsing private key: %w", err)
			}
			return k, nil
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, errs.BadParameterf("parsing private key: %w", err)
			}
			return k, nil
		}
	}
}

// Verify checks a client certificate chain against the CA pool at time now, and returns
// the identity it carries. Errors say what is wrong, for a 401 the user can act on.
func Verify(pool *x509.CertPool, cert *x509.Certificate, now time.Time) (*Identity, error) {
	if now.After(cert.NotAfter) {
		return nil, errs.NotAuthenticatedf("certificate for %q expired at %s", cert.Subject.CommonName, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		return nil, errs.NotAuthenticatedf("certificate for %q is not valid until %s", cert.Subject.CommonName, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		var unk x509.UnknownAuthorityError
		if errors.As(err, &unk) {
			return nil, errs.NotAuthenticatedf("certificate for %q was not issued by this cluster's user CA", cert.Subject.CommonName)
		}
		return nil, errs.NotAuthenticatedf("certificate for %q does not verify: %w", cert.Subject.CommonName, err)
	}
	return FromCertificate(cert)
}

// KeyPair builds a tls.Certificate from PEM certificate (chain) and key.
func KeyPair(certPEM []byte, key crypto.Signer) (tls.Certificate, error) {
	keyPEM, err := EncodeKeyPEM(key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func randSerial(rand io.Reader) (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 127)
	n, err := cryptoRandInt(rand, limit)
	if err != nil {
		return nil, fmt.Errorf("generating serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// ServerName is a DNS name every Keyport host certificate carries. Clients that trust
// the cluster's host CA (rather than public roots) verify the server against it, so that
// they can dial any address of the auth server or proxy: the host CA is the trust anchor.
const ServerName = "keyport.cluster.local"
