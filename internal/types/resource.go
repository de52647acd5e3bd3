package types

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/yamlpos"
)

// Resource kinds, as written in the `kind` field.
const (
	KindRole          = "role"
	KindUser          = "user"
	KindBot           = "bot"
	KindToken         = "token"
	KindKubeCluster   = "kube_cluster"
	KindLock          = "lock"
	KindCertAuthority = "cert_authority"
	KindBotInstance   = "bot_instance"
	KindEvent         = "event"
	// KindSession names session recordings in role rules (list: tsh recordings ls;
	// read: tsh play).
	KindSession = "session"
	// KindAccessRequest names access requests in role rules (list, read; update to
	// approve or deny any; delete).
	KindAccessRequest = "access_request"
)

// Resource versions.
const (
	V1 = "v1"
	V2 = "v2"
	V3 = "v3"
	V5 = "v5"
	V6 = "v6"
	V7 = "v7"
	V8 = "v8"
)

// Wildcard matches everything where a pattern is accepted.
const Wildcard = "*"

// Resource is what every stored, created and printed object is.
type Resource interface {
	GetKind() string
	GetVersion() string
	GetName() string
	GetMetadata() *Metadata
	// CheckAndSetDefaults validates the resource and fills in defaults. Its errors are of
	// category errs.BadParameter and carry a *FieldError naming the offending field, which
	// Decode turns into a file and line.
	CheckAndSetDefaults() error
}

// Metadata is the part of every resource that is not kind-specific.
type Metadata struct {
	Name        string            `yaml:"name" json:"name"`
	Description string            `yaml:"description,omitempty" json:"description,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Expires     *time.Time        `yaml:"expires,omitempty" json:"expires,omitempty"`
	// Revision is the backend's revision for optimistic concurrency. It is never part of
	// the YAML or JSON form: a file a user edits must not pin a stale revision, and storage
	// keeps it next to the value rather than inside it.
	Revision int64 `yaml:"-" json:"-"`
}

// Header is the part of the document shared by all kinds: kind, version and metadata.
// It is embedded inline so the YAML form stays flat.
type Header struct {
	Kind     string   `yaml:"kind" json:"kind"`
	Version  string   `yaml:"version" json:"version"`
	Metadata Metadata `yaml:"metadata" json:"metadata"`
}

func (h *Header) GetKind() string        { return h.Kind }
func (h *Header) GetVersion() string     { return h.Version }
func (h *Header) GetName() string        { return h.Metadata.Name }
func (h *Header) GetMetadata() *Metadata { return &h.Metadata }

// Expiry returns metadata.expires, or the zero time when the resource does not expire.
func (m *Metadata) Expiry() time.Time {
	if m.Expires == nil {
		return time.Time{}
	}
	return *m.Expires
}

// kindInfo describes one kind: its versions, newest last, and how to make an empty value.
type kindInfo struct {
	versions []string
	new      func() Resource
}

var kinds = map[string]kindInfo{
	KindRole:        {[]string{V5, V6, V7, V8}, func() Resource { return &Role{} }},
	KindUser:        {[]string{V2}, func() Resource { return &User{} }},
	KindBot:         {[]string{V1}, func() Resource { return &Bot{} }},
	KindToken:       {[]string{V2}, func() Resource { return &Token{} }},
	KindKubeCluster: {[]string{V3}, func() Resource { return &KubeCluster{} }},
	KindLock:        {[]string{V2}, func() Resource { return &Lock{} }},
	KindOIDC:        {[]string{V3}, func() Resource { return &OIDCConnector{} }},
	KindGithub:      {[]string{V3}, func() Resource { return &GithubConnector{} }},
}

// kindOrder is the order kinds are listed in messages.
var kindOrder = []string{KindRole, KindUser, KindBot, KindToken, KindKubeCluster, KindLock, KindOIDC, KindGithub}

// Kinds returns the kinds of resources Keyport reads and writes.
func Kinds() []string { return slices.Clone(kindOrder) }

// ParseKind maps what a user types after `tctl get` (singular or plural, any case) to a
// kind.
func ParseKind(s string) (string, bool) {
	s = strings.ToLower(s)
	for _, k := range kindOrder {
		if s == k || s == k+"s" {
			return k, true
		}
	}
	switch s {
	case "kube", "kubes", "kubernetes_cluster", "kubernetes_clusters":
		return KindKubeCluster, true
	case "join_token", "join_tokens":
		return KindToken, true
	}
	return "", false
}

// New returns an empty resource of the given kind and version, ready to be filled in by
// a decoder. It fails for unknown kinds and versions.
func New(kind, version string) (Resource, error) {
	info, ok := kinds[kind]
	if kind == "" {
		return nil, fieldErrorf("kind", "is required (want %s)", orList(kindOrder))
	}
	if !ok {
		return nil, fieldErrorf("kind", "unknown kind %q (want %s)", kind, orList(kindOrder))
	}
	if !slices.Contains(info.versions, version) {
		if version == "" {
			return nil, fieldErrorf("version", "is required (want %s)", orList(info.versions))
		}
		return nil, fieldErrorf("version", "unknown version %q for kind %s (want %s)", version, kind, orList(info.versions))
	}
	r := info.new()
	h := header(r)
	h.Kind, h.Version = kind, version
	return r, nil
}

func header(r Resource) *Header {
	switch r := r.(type) {
	case *Role:
		return &r.Header
	case *User:
		return &r.Header
	case *Bot:
		return &r.Header
	case *Token:
		return &r.Header
	case *KubeCluster:
		return &r.Header
	case *Lock:
		return &r.Header
	case *OIDCConnector:
		return &r.Header
	case *GithubConnector:
		return &r.Header
	}
	panic(fmt.Sprintf("types: unknown resource type %T", r))
}

// check validates the header against the kind it is embedded in and normalises the
// metadata. An empty kind is filled in so that resources built in Go need not repeat it;
// an empty version is filled in only for kinds that have a single version, because for
// roles the version changes meaning.
func (h *Header) check(kind string) error {
	if h.Kind == "" {
		h.Kind = kind
	}
	if h.Kind != kind {
		return fieldErrorf("kind", "is %q, want %q", h.Kind, kind)
	}
	versions := kinds[kind].versions
	if h.Version == "" && len(versions) == 1 {
		h.Version = versions[0]
	}
	if !slices.Contains(versions, h.Version) {
		if h.Version == "" {
			return fieldErrorf("version", "is required (want %s)", orList(versions))
		}
		return fieldErrorf("version", "unknown version %q for kind %s (want %s)", h.Version, kind, orList(versions))
	}
	return h.Metadata.check()
}

func (m *Metadata) check() error {
	if err := checkName("metadata.name", m.Name); err != nil {
		return err
	}
	for k := range m.Labels {
		if !labelKeyRE.MatchString(k) {
			return fieldErrorf(keyPath("metadata.labels", k), "invalid label key %q: use letters, digits and / . _ : * -", k)
		}
	}
	if len(m.Labels) == 0 {
		m.Labels = nil
	}
	return normaliseTime("metadata.expires", m.Expires)
}

// normaliseTime keeps times in UTC without a monotonic reading, so that a resource read
// back from YAML or JSON compares equal to the one written.
func normaliseTime(path string, t *time.Time) error {
	if t == nil {
		return nil
	}
	*t = t.UTC().Round(0)
	if y := t.Year(); y < 1 || y > 9999 {
		return fieldErrorf(path, "year %d is out of range", y)
	}
	return nil
}

var (
	// Names end up in URLs, backend keys and certificate fields, so they are kept to a
	// charset that needs no escaping anywhere and never contains "/". "@" and "+" are in
	// because user names are often e-mail addresses.
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9@._:+=-]+$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9/._:*-]+$`)
)

const maxNameLen = 253

func checkName(path, name string) error {
	switch {
	case name == "":
		return fieldErrorf(path, "is required")
	case len(name) > maxNameLen:
		return fieldErrorf(path, "is longer than %d characters", maxNameLen)
	case strings.Contains(name, "/"):
		return fieldErrorf(path, "invalid name %q: must not contain \"/\"", name)
	case name == "." || name == "..":
		return fieldErrorf(path, "invalid name %q", name)
	case !nameRE.MatchString(name):
		return fieldErrorf(path, "invalid name %q: use letters, digits and - _ . @ : + =", name)
	}
	return nil
}

// FieldError is a validation failure of one field. Path is the field's path in the
// document, e.g. "spec.allow.kubernetes_resources[0].verbs[1]", in the same syntax the
// decoder uses, so that Decode can find the line it came from.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

func fieldErrorf(path, format string, args ...any) error {
	return errs.Wrap(errs.BadParameter, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// AsFieldError returns the *FieldError in err's chain, if any.
func AsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}

// Field paths: "a.b" for fields, "a[0]" for list items, "a.key" or `a["k.e/y"]` for map
// keys that are not plain identifiers.

// keyPath and indexPath build field paths as the decoder reports them.
var (
	keyPath   = yamlpos.KeyPath
	indexPath = yamlpos.IndexPath
)

// orList renders ["a", "b", "c"] as "a, b or c".
func orList(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
