package types

import "time"

// User is a person (or, for bot-NAME users, a bot's identity) known to the Auth Service.
// Secrets — password hashes, OTP keys — are deliberately not part of it: a User is printed
// by `tctl get` and cached by proxies, so the auth package stores credentials under their
// own keys.
type User struct {
	Header `yaml:",inline"`
	Spec   UserSpec `yaml:"spec" json:"spec"`
}

// UserSpec is the body of a user.
type UserSpec struct {
	Roles  []string   `yaml:"roles,omitempty" json:"roles,omitempty"`
	Traits Traits     `yaml:"traits,omitempty" json:"traits,omitempty"`
	Status UserStatus `yaml:"status,omitempty" json:"status,omitzero"`
	// CreatedBy is set on users an SSO login created: they are temporary, and expire
	// (metadata.expires) with the certificate of their last login.
	CreatedBy *CreatedBy `yaml:"created_by,omitempty" json:"created_by,omitempty"`
}

// CreatedBy says which SSO connector created a user, for whom, and when.
type CreatedBy struct {
	Connector ConnectorRef `yaml:"connector" json:"connector"`
	Time      string       `yaml:"time" json:"time"`
}

// ConnectorRef names a connector and the identity it vouched for.
type ConnectorRef struct {
	Type     string `yaml:"type" json:"type"`
	ID       string `yaml:"id" json:"id"`
	Identity string `yaml:"identity" json:"identity"`
}

// UserStatus is the user's login lock state, set by the Auth Service (for example after
// too many failed logins) and shown by `tctl get`.
type UserStatus struct {
	IsLocked      bool       `yaml:"is_locked,omitempty" json:"is_locked,omitempty"`
	LockedMessage string     `yaml:"locked_message,omitempty" json:"locked_message,omitempty"`
	LockedTime    *time.Time `yaml:"locked_time,omitempty" json:"locked_time,omitempty"`
	LockExpires   *time.Time `yaml:"lock_expires,omitempty" json:"lock_expires,omitempty"`
}

// Traits of users that the built-in access role expands.
const (
	TraitKubeGroups = "kubernetes_groups"
	TraitKubeUsers  = "kubernetes_users"
)

// LabelBot marks the user and role made for a bot; its value is the bot's name. It lets
// `tctl users ls` hide bot users and lets the auth package refuse to edit them directly.
const LabelBot = "keyport.internal/bot"

// NewUser returns a user with the given roles. Call CheckAndSetDefaults before use.
func NewUser(name string, roles ...string) *User {
	return &User{Header: Header{Kind: KindUser, Version: V2, Metadata: Metadata{Name: name}}, Spec: UserSpec{Roles: roles}}
}

// CheckAndSetDefaults validates the user.
func (u *User) CheckAndSetDefaults() error {
	if err := u.Header.check(KindUser); err != nil {
		return err
	}
	if err := checkRoleNames("spec.roles", u.Spec.Roles); err != nil {
		return err
	}
	if err := checkTraits("spec.traits", u.Spec.Traits); err != nil {
		return err
	}
	if err := normaliseTime("spec.status.locked_time", u.Spec.Status.LockedTime); err != nil {
		return err
	}
	return normaliseTime("spec.status.lock_expires", u.Spec.Status.LockExpires)
}

// Bot is a machine identity (Machine ID). The Auth Service backs each bot with a user and
// a role both named bot-NAME (see BotResourceNames).
type Bot struct {
	Header `yaml:",inline"`
	Spec   BotSpec `yaml:"spec" json:"spec"`
}

// BotSpec is the body of a bot.
type BotSpec struct {
	// Roles are the roles the bot's certificates carry.
	Roles  []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	Traits Traits   `yaml:"traits,omitempty" json:"traits,omitempty"`
	// MaxSessionTTL caps the bot's credential TTL; zero leaves the cap to the Auth Service.
	MaxSessionTTL Duration `yaml:"max_session_ttl,omitempty" json:"max_session_ttl,omitzero"`
}

// NewBot returns a bot with the given roles. Call CheckAndSetDefaults before use.
func NewBot(name string, roles ...string) *Bot {
	return &Bot{Header: Header{Kind: KindBot, Version: V1, Metadata: Metadata{Name: name}}, Spec: BotSpec{Roles: roles}}
}

// BotResourceNames returns the names of the user and the role that back a bot.
func BotResourceNames(bot string) (user, role string) {
	return "bot-" + bot, "bot-" + bot
}

// CheckAndSetDefaults validates the bot.
func (b *Bot) CheckAndSetDefaults() error {
	if err := b.Header.check(KindBot); err != nil {
		return err
	}
	// The backing user and role are named bot-NAME, so NAME must leave room for the prefix.
	if len(b.Metadata.Name) > maxNameLen-len("bot-") {
		return fieldErrorf("metadata.name", "is longer than %d characters", maxNameLen-len("bot-"))
	}
	if err := checkRoleNames("spec.roles", b.Spec.Roles); err != nil {
		return err
	}
	if err := checkTraits("spec.traits", b.Spec.Traits); err != nil {
		return err
	}
	if b.Spec.MaxSessionTTL < 0 {
		return fieldErrorf("spec.max_session_ttl", "must not be negative")
	}
	return nil
}

func checkRoleNames(path string, roles []string) error {
	for i, r := range roles {
		if err := checkName(indexPath(path, i), r); err != nil {
			return err
		}
	}
	return nil
}

func checkTraits(path string, traits Traits) error {
	for k := range traits {
		if k == "" {
			return fieldErrorf(keyPath(path, k), "trait name must not be empty")
		}
	}
	return nil
}
