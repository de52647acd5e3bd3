// Package kubecreds owns what `tbot kube credentials` prints: a Kubernetes ExecCredential
// (client.authentication.k8s.io/v1) built from the identity file a kubernetes output keeps
// in its directory. kubectl runs it before every connection, so it reads one local file,
// makes no network call and imports nothing heavier than the identity file's parser.
package kubecreds

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
	"github.com/keyport/keyport/internal/tlsca"
)

// IdentityFile is the file, in an output's directory, that the credentials come from.
const IdentityFile = "identity"

// APIVersion is the ExecCredential version the kubeconfigs tbot writes ask for.
const APIVersion = "client.authentication.k8s.io/v1"

// ExecCredential is the subset of client.authentication.k8s.io/v1 ExecCredential that an
// exec plugin returns. Defined here rather than imported from client-go so that this path
// stays small and fast.
type ExecCredential struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Interactive bool `json:"interactive"`
	} `json:"spec"`
	Status *Status `json:"status"`
}

// Status carries the client certificate and when kubectl must ask again.
type Status struct {
	ExpirationTimestamp   string `json:"expirationTimestamp"`
	ClientCertificateData string `json:"clientCertificateData"`
	ClientKeyData         string `json:"clientKeyData"`
}

// FromDir builds the ExecCredential from DIR/identity as JSON. An expired certificate is
// an error that says so, rather than credentials kubectl would send only to be refused.
func FromDir(dir string, now time.Time) ([]byte, error) {
	path := filepath.Join(dir, IdentityFile)
	id, err := identityfile.Read(path)
	if err != nil {
		if errs.IsNotFound(err) {
			return nil, errs.NotFoundf("%s does not exist: is tbot running with a kubernetes output in %s?", path, dir)
		}
		return nil, err
	}
	if !now.Before(id.Cert.NotAfter) {
		return nil, errs.NotAuthenticatedf("the credentials in %s expired at %s: is tbot running and renewing them?", path, id.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	keyPEM, err := tlsca.EncodeKeyPEM(id.Key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ec := ExecCredential{APIVersion: APIVersion, Kind: "ExecCredential", Status: &Status{
		ExpirationTimestamp:   id.Cert.NotAfter.UTC().Format(time.RFC3339),
		ClientCertificateData: string(id.CertPEM),
		ClientKeyData:         string(keyPEM),
	}}
	out, err := json.Marshal(ec)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
