package types

import (
	"strings"
	"time"
)

// Lock cuts off an identity: every request of a matching user, role, bot, bot instance or
// login fails, and its open streams end, until the lock is removed or expires.
type Lock struct {
	Header `yaml:",inline"`
	Spec   LockSpec `yaml:"spec" json:"spec"`
}

// LockSpec is the body of a lock.
type LockSpec struct {
	Target  LockTarget `yaml:"target" json:"target"`
	Message string     `yaml:"message,omitempty" json:"message,omitempty"`
	// Expires ends the lock; nil locks until the lock is removed.
	Expires   *time.Time `yaml:"expires,omitempty" json:"expires,omitempty"`
	CreatedAt *time.Time `yaml:"created_at,omitempty" json:"created_at,omitempty"`
	CreatedBy string     `yaml:"created_by,omitempty" json:"created_by,omitempty"`
}

// LockTarget names what is locked. Exactly one field is set: a lock that names two
// things would be read by some as "both" and by others as "either".
type LockTarget struct {
	User          string `yaml:"user,omitempty" json:"user,omitempty"`
	Role          string `yaml:"role,omitempty" json:"role,omitempty"`
	Bot           string `yaml:"bot,omitempty" json:"bot,omitempty"`
	BotInstanceID string `yaml:"bot_instance_id,omitempty" json:"bot_instance_id,omitempty"`
	Login         string `yaml:"login,omitempty" json:"login,omitempty"`
	// AccessRequest locks every certificate issued with that access request.
	AccessRequest string `yaml:"access_request,omitempty" json:"access_request,omitempty"`
}

// fields returns the target's field names and values, in the document's order.
func (t LockTarget) fields() [][2]string {
	return [][2]string{
		{"user", t.User}, {"role", t.Role}, {"bot", t.Bot},
		{"bot_instance_id", t.BotInstanceID}, {"login", t.Login}, {"access_request", t.AccessRequest},
	}
}

// String renders the target as "user=alice", for messages.
func (t LockTarget) String() string {
	var parts []string
	for _, f := range t.fields() {
		if f[1] != "" {
			parts = append(parts, f[0]+"="+f[1])
		}
	}
	return strings.Join(parts, ",")
}

// NewLock returns a lock on target. Call CheckAndSetDefaults before use.
func NewLock(name string, target LockTarget, message string) *Lock {
	return &Lock{Header: Header{Kind: KindLock, Version: V2, Metadata: Metadata{Name: name}}, Spec: LockSpec{Target: target, Message: message}}
}

// CheckAndSetDefaults validates the lock.
func (l *Lock) CheckAndSetDefaults() error {
	if err := l.Header.check(KindLock); err != nil {
		return err
	}
	var set []string
	for _, f := range l.Spec.Target.fields() {
		if f[1] != "" {
			set = append(set, f[0])
		}
	}
	const want = "exactly one of user, role, bot, bot_instance_id, login or access_request"
	switch len(set) {
	case 0:
		return fieldErrorf("spec.target", "needs %s", want)
	case 1:
	default:
		return fieldErrorf("spec.target", "sets %s; a lock targets %s", strings.Join(set, " and "), want)
	}
	if err := normaliseTime("spec.expires", l.Spec.Expires); err != nil {
		return err
	}
	return normaliseTime("spec.created_at", l.Spec.CreatedAt)
}
