// Package identityfile owns the one-file form of a Keyport identity: a private key, its
// certificate and the cluster's CA certificates in PEM, the file that `tctl --identity`,
// `tsh --identity`, `tbot kube credentials` and the admin bootstrap read. It also writes
// files the way every credential must be written: atomically, 0600, never through a
// symlink.
package identityfile

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
)

// PEM header that marks which CA a certificate block is.
const caHeader = "Keyport-CA"

// Identity is a key, its certificate and the CAs to trust.
type Identity struct {
	Key      crypto.Signer
	CertPEM  []byte
	Cert     *x509.Certificate
	HostCAs  [][]byte
	UserCAs  [][]byte
	Identity *tlsca.Identity
}

// Encode returns the file's bytes: key, certificate, then CA certificates tagged by type.
func (id *Identity) Encode() ([]byte, error) {
	keyPEM, err := tlsca.EncodeKeyPEM(id.Key)
	if err != nil {
		return nil, err
	}
	out := append([]byte{}, keyPEM...)
	out = append(out, id.CertPEM...)
	for _, c := range id.HostCAs {
		out = append(out, tagCA(c, "host")...)
	}
	for _, c := range id.UserCAs {
		out = append(out, tagCA(c, "user")...)
	}
	return out, nil
}

func tagCA(certPEM []byte, typ string) []byte {
	var out []byte
	for {
		var b *pem.Block
		b, certPEM = pem.Decode(certPEM)
		if b == nil {
			return out
		}
		b.Headers = map[string]string{caHeader: typ}
		out = append(out, pem.EncodeToMemory(b)...)
	}
}

// Decode parses an identity file's bytes. name is used in errors.
func Decode(name string, data []byte) (*Identity, error) {
	id := &Identity{}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE" && b.Headers[caHeader] == "host":
			delete(b.Headers, caHeader)
			id.HostCAs = append(id.HostCAs, pem.EncodeToMemory(b))
		case b.Type == "CERTIFICATE" && b.Headers[caHeader] == "user":
			delete(b.Headers, caHeader)
			id.UserCAs = append(id.UserCAs, pem.EncodeToMemory(b))
		case b.Type == "CERTIFICATE" && id.CertPEM == nil:
			id.CertPEM = pem.EncodeToMemory(b)
		case b.Type == "PRIVATE KEY" || b.Type == "EC PRIVATE KEY" || b.Type == "RSA PRIVATE KEY":
			k, err := tlsca.ParseKeyPEM(pem.EncodeToMemory(b))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			id.Key = k
		}
	}
	if id.Key == nil || id.CertPEM == nil {
		return nil, errs.BadParameterf("%s is not a Keyport identity file: it needs a private key and a certificate", name)
	}
	cert, err := tlsca.ParseCertPEM(id.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	id.Cert = cert
	if ident, err := tlsca.FromCertificate(cert); err == nil {
		id.Identity = ident
	}
	return id, nil
}

// Read loads an identity file.
func Read(path string) (*Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, errs.NotFoundf("identity file %s does not exist", path)
		}
		return nil, fmt.Errorf("reading identity file: %w", err)
	}
	return Decode(path, data)
}

// Write stores the identity at path atomically with mode 0600.
func Write(path string, id *Identity) error {
	data, err := id.Encode()
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, data)
}

// TLSCertificate returns the key pair for a TLS client.
func (id *Identity) TLSCertificate() (tls.Certificate, error) {
	return tlsca.KeyPair(id.CertPEM, id.Key)
}

// HostCAPool returns the host CAs as a pool.
func (id *Identity) HostCAPool() (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, c := range id.HostCAs {
		if !pool.AppendCertsFromPEM(c) {
			return nil, errs.BadParameterf("identity holds an unreadable host CA certificate")
		}
	}
	if len(id.HostCAs) == 0 {
		return nil, errs.BadParameterf("identity holds no host CA certificate")
	}
	return pool, nil
}

// WriteFileAtomic writes data to path through a temporary file in the same directory and
// a rename, so readers see the old file or the new one and never half of one. The file is
// 0600; a symlink at path is replaced, never followed.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
