package auth

import (
	"context"
	"crypto"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/backend"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

// Local users: a password (bcrypt) and, when auth_service.authentication.second_factor is
// otp (the default), a TOTP device, both set once through the invite page and kept under
// /passwords/<user>. Login exchanges them for a user certificate.

// Second factor settings (auth_service.authentication.second_factor).
const (
	SecondFactorOTP = "otp"
	SecondFactorOff = "off"
)

// Password rules. Length is counted in characters; bcrypt reads at most 72 bytes, so a
// longer password is refused rather than silently cut.
const (
	MinPasswordLength = 12
	MaxPasswordBytes  = 72
	bcryptCost        = bcrypt.DefaultCost
)

// OTPRequiredMessage is the error a login without an OTP code gets when the password is
// right and the cluster needs a second factor; tsh then asks for the code.
const OTPRequiredMessage = "an OTP code is required"

// EventInviteComplete is the audit event of a user setting a password through an invite.
const EventInviteComplete = "user.invite.complete"

const loginFailurePrefix = "/login_failures/"

// LoginPolicy limits password logins. The defaults are Teleport's: 5 failed logins within
// 30 minutes lock the account for 20 minutes; and one user name from one source address
// may try 10 times a minute (the invite page: 10 submissions a minute per source).
type LoginPolicy struct {
	// MaxFailures is how many failed logins within FailureWindow lock the account.
	MaxFailures   int
	FailureWindow time.Duration
	// LockTTL is how long the account stays locked.
	LockTTL time.Duration
	// Rate is how many login attempts one user name may make from one source per minute.
	Rate int
}

// Defaults of LoginPolicy.
const (
	DefaultMaxLoginFailures   = 5
	DefaultLoginFailureWindow = 30 * time.Minute
	DefaultAccountLockTTL     = 20 * time.Minute
	DefaultLoginRate          = 10
)

func (p *LoginPolicy) setDefaults() {
	if p.MaxFailures <= 0 {
		p.MaxFailures = DefaultMaxLoginFailures
	}
	if p.FailureWindow <= 0 {
		p.FailureWindow = DefaultLoginFailureWindow
	}
	if p.LockTTL <= 0 {
		p.LockTTL = DefaultAccountLockTTL
	}
	if p.Rate <= 0 {
		p.Rate = DefaultLoginRate
	}
}

// localAuth is what /passwords/<user> holds.
type localAuth struct {
	PasswordHash []byte    `json:"password_hash"`
	TOTPSecret   string    `json:"totp_secret,omitempty"`
	TOTPLastStep int64     `json:"totp_last_step,omitempty"`
	Set          time.Time `json:"set"`
}

// loginFailures counts failed logins of one user within the failure window.
type loginFailures struct {
	Count int       `json:"count"`
	First time.Time `json:"first"`
}

func (s *Server) secondFactor() string {
	if s.cfg.SecondFactor == SecondFactorOff {
		return SecondFactorOff
	}
	return SecondFactorOTP
}

// dummyHash is compared against when a user has no password, so that an unknown user
// costs as much time as a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("keyport: no such user, no such password"), bcryptCost)
	return h
})

// CheckPassword applies the password rules to a new password and its confirmation.
func CheckPassword(password, confirm string) error {
	switch {
	case password != confirm:
		return errs.BadParameterf("the passwords do not match")
	case utf8.RuneCountInString(password) < MinPasswordLength:
		return errs.BadParameterf("the password must be at least %d characters long", MinPasswordLength)
	case len(password) > MaxPasswordBytes:
		return errs.BadParameterf("the password must be at most %d bytes long", MaxPasswordBytes)
	}
	return nil
}

// InviteInfo is what the invite page shows.
type InviteInfo struct {
	User        string
	ClusterName string
	Expires     time.Time
	// OTP is set when the cluster needs a second factor: the secret to enrol and the
	// otpauth:// URL for the QR code.
	OTP       bool
	OTPSecret string
	OTPURL    string
}

var errBadInvite = errs.NotFoundf("this invite link is not valid: it has been used, replaced by a newer one, or it expired. Ask your Keyport administrator for a new one (tctl users reset NAME)")

// getInvite finds an invite by its secret.
func (s *Server) getInvite(ctx context.Context, secret string) (*backend.Item, *invite, error) {
	if _, err := hex.DecodeString(secret); err != nil || len(secret) != 64 {
		return nil, nil, errBadInvite
	}
	it, err := s.cfg.Backend.Get(ctx, []byte(invitePrefix+HashToken(secret)))
	if errs.IsNotFound(err) {
		return nil, nil, errBadInvite
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading invite: %w", err)
	}
	var inv invite
	if err := json.Unmarshal(it.Value, &inv); err != nil {
		return nil, nil, fmt.Errorf("decoding invite: %w", err)
	}
	if !s.cfg.Clock.Now().Before(inv.Expires) {
		return nil, nil, errBadInvite
	}
	if _, err := s.GetResource(ctx, types.KindUser, inv.User); err != nil {
		if errs.IsNotFound(err) {
			return nil, nil, errBadInvite
		}
		return nil, nil, err
	}
	return it, &inv, nil
}

// Invite describes the invite with this secret for the invite page. When the cluster
// needs OTP it makes the invite's TOTP secret on first view and shows the same one after.
func (s *Server) Invite(ctx context.Context, secret string) (*InviteInfo, error) {
	for range 5 {
		it, inv, err := s.getInvite(ctx, secret)
		if err != nil {
			return nil, err
		}
		info := &InviteInfo{User: inv.User, ClusterName: s.cfg.ClusterName, Expires: inv.Expires}
		if s.secondFactor() != SecondFactorOTP {
			return info, nil
		}
		if inv.OTPSecret == "" {
			if inv.OTPSecret, err = NewTOTPSecret(s.cfg.Rand); err != nil {
				return nil, err
			}
			data, _ := json.Marshal(inv)
			_, err := s.cfg.Backend.CompareAndSwap(ctx, backend.Item{Key: it.Key, Value: data, Expires: inv.Expires}, it.Revision)
			switch {
			case errs.IsCompareFailed(err):
				continue // another view of the page made one first: show that one
			case errs.IsNotFound(err):
				return nil, errBadInvite
			case err != nil:
				return nil, fmt.Errorf("storing invite: %w", err)
			}
		}
		info.OTP, info.OTPSecret = true, inv.OTPSecret
		info.OTPURL = TOTPURL(s.cfg.ClusterName, inv.User, inv.OTPSecret)
		return info, nil
	}
	return nil, errs.CompareFailedf("the invite is being changed concurrently; reload the page")
}

// CompleteInviteRequest is the invite page's form.
type CompleteInviteRequest struct {
	Secret          string
	Password        string
	PasswordConfirm string
	OTPCode         string
	// Addr is the browser's address, for the rate limit and the audit log.
	Addr string
}

// CompleteInvite sets the user's password (and OTP device) and uses up the invite. It
// returns the user name.
func (s *Server) CompleteInvite(ctx context.Context, req CompleteInviteRequest) (string, error) {
	actor := Actor{Addr: req.Addr}
	if !s.loginLimiter.Allow("invite\x00" + sourceHost(req.Addr)) {
		return "", errs.LimitExceededf("too many attempts from %s; wait a minute and try again", sourceHost(req.Addr))
	}
	it, inv, err := s.getInvite(ctx, req.Secret)
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		s.emit(ctx, actor, audit.Event{Type: EventInviteComplete, User: inv.User, Message: err.Error()})
		return "", err
	}
	if err := CheckPassword(req.Password, req.PasswordConfirm); err != nil {
		return fail(err)
	}
	now := s.cfg.Clock.Now()
	la := localAuth{Set: now.UTC()}
	if s.secondFactor() == SecondFactorOTP {
		if inv.OTPSecret == "" {
			return fail(errs.BadParameterf("no OTP device was offered for this invite; reload the page and scan the QR code"))
		}
		step, ok, _ := checkTOTP(inv.OTPSecret, req.OTPCode, now, 0)
		if !ok {
			return fail(errs.BadParameterf("the OTP code is not valid: enter the current code from your authenticator app, and check that the device's clock is right"))
		}
		// The code used to enrol cannot be used again to log in.
		la.TOTPSecret, la.TOTPLastStep = inv.OTPSecret, step
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	la.PasswordHash = hash
	// Deleting the invite claims it: of two submissions at once, one wins.
	if err := s.cfg.Backend.Delete(ctx, it.Key); err != nil {
		if errs.IsNotFound(err) {
			return "", errBadInvite
		}
		return "", fmt.Errorf("using invite: %w", err)
	}
	data, _ := json.Marshal(la)
	if _, err := s.cfg.Backend.Put(ctx, backend.Item{Key: []byte(passwordPrefix + inv.User), Value: data}); err != nil {
		return "", fmt.Errorf("storing password: %w", err)
	}
	s.clearLoginLock(ctx, inv.User)
	s.emit(ctx, actor, audit.Event{Type: EventInviteComplete, Success: true, User: inv.User, Fields: map[string]any{"otp": la.TOTPSecret != ""}})
	return inv.User, nil
}

// LoginRequest is a password login.
type LoginRequest struct {
	User, Password, OTPCode string
	PublicKey               crypto.PublicKey
	TTL                     time.Duration
	// Addr is the client's address, for the rate limit and the audit log.
	Addr string
}

// Login checks a local user's password and OTP code and issues a user certificate for
// PublicKey. Attempts are limited per user and source; LoginPolicy.MaxFailures failed
// logins lock the account for LoginPolicy.LockTTL (user.locked in the audit log).
//
// A wrong password and a wrong OTP code get different messages, so that people know
// which to fix; the password message does not say whether the user exists.
func (s *Server) Login(ctx context.Context, req LoginRequest) ([]byte, error) {
	actor := Actor{Addr: req.Addr}
	src := sourceHost(req.Addr)
	fail := func(err error) ([]byte, error) {
		s.emit(ctx, actor, audit.Event{Type: audit.UserLoginFailure, User: req.User, Message: err.Error()})
		return nil, err
	}
	if req.User == "" {
		return nil, errs.BadParameterf("no user name given")
	}
	if !s.loginLimiter.Allow("login\x00" + req.User + "\x00" + src) {
		return fail(errs.LimitExceededf("too many login attempts for user %q from %s; wait a minute and try again", req.User, src))
	}
	badPassword := errs.AccessDeniedf("invalid user name or password (a new user sets a password with the invite link first)")
	r, err := s.GetResource(ctx, types.KindUser, req.User)
	if errs.IsNotFound(err) {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(req.Password))
		return fail(badPassword)
	}
	if err != nil {
		return nil, err
	}
	user := r.(*types.User)
	now := s.cfg.Clock.Now()
	if st := user.Spec.Status; st.IsLocked {
		switch {
		case st.LockExpires == nil:
			msg := st.LockedMessage
			if msg == "" {
				msg = "ask an administrator"
			}
			return fail(errs.AccessDeniedf("user %q is locked: %s", req.User, msg))
		case now.Before(*st.LockExpires):
			return fail(errs.AccessDeniedf("user %q is locked until %s after too many failed logins; try again then, or ask an administrator to reset the user (tctl users reset)",
				req.User, st.LockExpires.UTC().Format(time.RFC3339)))
		}
	}
	it, err := s.cfg.Backend.Get(ctx, []byte(passwordPrefix+req.User))
	if errs.IsNotFound(err) {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(req.Password))
		return fail(badPassword)
	}
	if err != nil {
		return nil, fmt.Errorf("reading password: %w", err)
	}
	var la localAuth
	if err := json.Unmarshal(it.Value, &la); err != nil {
		return nil, fmt.Errorf("decoding password: %w", err)
	}
	if bcrypt.CompareHashAndPassword(la.PasswordHash, []byte(req.Password)) != nil {
		return fail(s.recordFailure(ctx, actor, req.User, badPassword))
	}
	method := "password"
	if s.secondFactor() == SecondFactorOTP {
		method = "password+otp"
		if la.TOTPSecret == "" {
			return fail(errs.AccessDeniedf("user %q has no OTP device, but this cluster requires one: ask an administrator for a new invite (tctl users reset %s)", req.User, req.User))
		}
		if req.OTPCode == "" {
			// Not a failure: the password was right, and tsh asks for the code next.
			return nil, errs.NotAuthenticatedf("%s", OTPRequiredMessage)
		}
		step, ok, replayed := checkTOTP(la.TOTPSecret, req.OTPCode, now, la.TOTPLastStep)
		if replayed {
			return fail(errs.AccessDeniedf("this OTP code has already been used; wait for the next one"))
		}
		if !ok {
			return fail(s.recordFailure(ctx, actor, req.User, errs.AccessDeniedf("invalid OTP code: enter the current code from your authenticator app")))
		}
		la.TOTPLastStep = step
		data, _ := json.Marshal(la)
		if _, err := s.cfg.Backend.CompareAndSwap(ctx, backend.Item{Key: it.Key, Value: data}, it.Revision); err != nil {
			if errs.IsCompareFailed(err) || errs.IsNotFound(err) {
				// A concurrent login used this code, or the password was just reset.
				return fail(errs.AccessDeniedf("this OTP code has already been used; wait for the next one"))
			}
			return nil, fmt.Errorf("storing OTP state: %w", err)
		}
	}
	s.clearLoginLock(ctx, req.User)
	actor.Identity = &tlsca.Identity{Username: req.User, Roles: user.Spec.Roles}
	cert, err := s.SignUser(ctx, actor, req.User, req.PublicKey, req.TTL, "", nil)
	if err != nil {
		return fail(err)
	}
	s.emit(ctx, actor, audit.Event{Type: audit.UserLogin, Success: true, Fields: map[string]any{"method": method}})
	return cert, nil
}

// recordFailure counts a failed login of user and locks the account when the count
// reaches the policy's maximum. It returns the error to give the caller: cause, plus
// the lock when this failure set it.
func (s *Server) recordFailure(ctx context.Context, actor Actor, user string, cause error) error {
	p := s.cfg.Login
	key := []byte(loginFailurePrefix + user)
	b := s.cfg.Backend
	for range 10 {
		now := s.cfg.Clock.Now()
		var f loginFailures
		it, err := b.Get(ctx, key)
		switch {
		case errs.IsNotFound(err):
			f = loginFailures{Count: 1, First: now.UTC()}
			data, _ := json.Marshal(f)
			_, err = b.Create(ctx, backend.Item{Key: key, Value: data, Expires: now.Add(p.FailureWindow)})
			if errs.IsAlreadyExists(err) {
				continue
			}
		case err != nil:
			s.cfg.Logger.Warn("reading failed logins", "user", user, "error", err)
			return cause
		default:
			if json.Unmarshal(it.Value, &f) != nil || now.Sub(f.First) > p.FailureWindow {
				f = loginFailures{First: now.UTC()}
			}
			f.Count++
			data, _ := json.Marshal(f)
			_, err = b.CompareAndSwap(ctx, backend.Item{Key: key, Value: data, Expires: f.First.Add(p.FailureWindow)}, it.Revision)
			if errs.IsCompareFailed(err) || errs.IsNotFound(err) {
				continue
			}
		}
		if err != nil {
			s.cfg.Logger.Warn("counting failed logins", "user", user, "error", err)
			return cause
		}
		if f.Count < p.MaxFailures {
			return cause
		}
		until := now.Add(p.LockTTL).UTC()
		if err := s.lockUser(ctx, actor, user, now.UTC(), until, f.Count); err != nil {
			s.cfg.Logger.Warn("locking user after failed logins", "user", user, "error", err)
			return cause
		}
		_ = b.Delete(ctx, key)
		return errs.AccessDeniedf("%v; after %d failed logins user %q is locked until %s", cause, f.Count, user, until.Format(time.RFC3339))
	}
	return cause
}

// lockUser sets the user's login lock (spec.status), which `tctl get user/NAME` shows.
func (s *Server) lockUser(ctx context.Context, actor Actor, user string, now, until time.Time, failures int) error {
	msg := fmt.Sprintf("%d failed logins", failures)
	err := s.updateUserStatus(ctx, user, func(st *types.UserStatus) bool {
		*st = types.UserStatus{IsLocked: true, LockedMessage: msg, LockedTime: &now, LockExpires: &until}
		return true
	})
	if err != nil {
		return err
	}
	s.emit(ctx, actor, audit.Event{Type: audit.UserLocked, Success: true, User: user, Message: msg,
		Fields: map[string]any{"lock_expires": until.Format(time.RFC3339)}})
	return nil
}

// clearLoginLock forgets failed logins and a lock set by them (not one set by an admin,
// which has no expiry), after a good login or a completed invite.
func (s *Server) clearLoginLock(ctx context.Context, user string) {
	_ = s.cfg.Backend.Delete(ctx, []byte(loginFailurePrefix+user))
	err := s.updateUserStatus(ctx, user, func(st *types.UserStatus) bool {
		if !st.IsLocked || st.LockExpires == nil {
			return false
		}
		*st = types.UserStatus{}
		return true
	})
	if err != nil && !errs.IsNotFound(err) {
		s.cfg.Logger.Warn("clearing login lock", "user", user, "error", err)
	}
}

// updateUserStatus changes a user's status with a compare-and-swap, retrying on races
// with other writers. change reports whether it changed anything.
func (s *Server) updateUserStatus(ctx context.Context, user string, change func(*types.UserStatus) bool) error {
	for range 10 {
		r, err := s.GetResource(ctx, types.KindUser, user)
		if err != nil {
			return err
		}
		u := r.(*types.User)
		if !change(&u.Spec.Status) {
			return nil
		}
		it, err := itemFor(u)
		if err != nil {
			return err
		}
		_, err = s.cfg.Backend.CompareAndSwap(ctx, it, u.Metadata.Revision)
		if errs.IsCompareFailed(err) {
			continue
		}
		return err
	}
	return errs.CompareFailedf("user %q is being changed concurrently", user)
}

// deleteInvitesOf removes every invite of user.
func (s *Server) deleteInvitesOf(ctx context.Context, user string) error {
	items, err := s.cfg.Backend.GetRange(ctx, []byte(invitePrefix), 0)
	if err != nil {
		return fmt.Errorf("listing invites: %w", err)
	}
	for _, it := range items {
		var inv invite
		if json.Unmarshal(it.Value, &inv) == nil && inv.User == user {
			if err := s.cfg.Backend.Delete(ctx, it.Key); err != nil && !errs.IsNotFound(err) {
				return fmt.Errorf("deleting invite: %w", err)
			}
		}
	}
	return nil
}
