// Package tlsca owns the mapping between a Keyport identity and X.509 certificate fields,
// the certificate authorities' signing operations, and CA pins. A client certificate's
// subject CN is the user name (bot-NAME for bots); everything else Keyport needs — roles,
// traits, the kube cluster the certificate is routed to, bot name and instance, renewable
// flag and generation — travels in one private extension, so the proxy can trust a
// certificate after verifying it against the user CA and nothing else.
package tlsca

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/keyport/keyport/internal/errs"
)

// IdentityOID marks Keyport's identity extension. 1.3.9999 is an unassigned arc that
// private PKIs (Teleport among them) use for their own extensions; Keyport takes
// 1.3.9999.1729.1 under it. Only Keyport's own CAs issue certificates that carry it.
var IdentityOID = asn1.ObjectIdentifier{1, 3, 9999, 1729, 1}

// identityVersion lets later releases change the extension's shape.
const identityVersion = 1

// Identity is who a certificate speaks for.
type Identity struct {
	// Username is the certificate's subject CN: a user name, or bot-NAME for bots.
	Username string `json:"username"`
	// Roles are the Keyport roles, resolved when the certificate was issued.
	Roles []string `json:"roles,omitempty"`
	// Traits feed role templates such as {{internal.kubernetes_groups}}.
	Traits map[string][]string `json:"traits,omitempty"`
	// KubeCluster, when set, is the only kube cluster this certificate may reach.
	KubeCluster string `json:"kube_cluster,omitempty"`
	// BotName and BotInstanceID are set on bot certificates.
	BotName       string `json:"bot_name,omitempty"`
	BotInstanceID string `json:"bot_instance_id,omitempty"`
	// Renewable marks a bot's internal identity, the one that may ask for its own renewal.
	Renewable bool `json:"renewable,omitempty"`
	// Generation is the bot instance's renewal counter at issue time.
	Generation uint64 `json:"generation,omitempty"`
	// ActiveRequests are the approved access requests whose roles the certificate
	// carries; a lock on one of them locks the certificate.
	ActiveRequests []string `json:"active_requests,omitempty"`
	// AllowedResources, when set, are the only kube resources the certificate may reach
	// (resource access requests): each is a resource ID, /CLUSTER/kind/KUBE[/NS[/POD]].
	AllowedResources []string `json:"allowed_resources,omitempty"`
	// SystemRole is set on host certificates: auth, proxy, kube or admin.
	SystemRole string `json:"system_role,omitempty"`
	// Expires is the certificate's NotAfter.
	Expires time.Time `json:"-"`
}

type identityExt struct {
	V int `json:"v"`
	Identity
}

// IsBot reports whether the identity belongs to a bot.
func (id *Identity) IsBot() bool { return id.BotName != "" }

// Subject returns the certificate subject of id.
func (id *Identity) Subject() pkix.Name {
	return pkix.Name{CommonName: id.Username, Organization: slices.Clone(id.Roles)}
}

// Extension encodes id as the Keyport certificate extension.
func (id *Identity) Extension() (pkix.Extension, error) {
	if id.Username == "" {
		return pkix.Extension{}, errs.BadParameterf("identity has no user name")
	}
	raw, err := json.Marshal(identityExt{V: identityVersion, Identity: *id})
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encoding identity: %w", err)
	}
	// Wrap in an ASN.1 OCTET STRING so the extension value is well-formed DER.
	der, err := asn1.Marshal(raw)
	if err != nil {
		return pkix.Extension{}, fmt.Errorf("encoding identity: %w", err)
	}
	return pkix.Extension{Id: IdentityOID, Value: der}, nil
}

// FromCertificate reads the identity out of a certificate that the caller has already
// verified against the right CA. It trusts the certificate's content; it does not verify.
func FromCertificate(cert *x509.Certificate) (*Identity, error) {
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(IdentityOID) {
			continue
		}
		var raw []byte
		if rest, err := asn1.Unmarshal(ext.Value, &raw); err != nil || len(rest) != 0 {
			return nil, errs.NotAuthenticatedf("certificate has a malformed Keyport identity extension")
		}
		var e identityExt
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, errs.NotAuthenticatedf("certificate has a malformed Keyport identity extension")
		}
		if e.V != identityVersion {
			return nil, errs.NotAuthenticatedf("certificate identity version %d is not supported", e.V)
		}
		if e.Username != cert.Subject.CommonName {
			return nil, errs.NotAuthenticatedf("certificate identity does not match its subject")
		}
		id := e.Identity
		id.Expires = cert.NotAfter
		return &id, nil
	}
	return nil, errs.NotAuthenticatedf("certificate %q carries no Keyport identity", cert.Subject.CommonName)
}
