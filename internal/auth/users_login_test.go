package auth

import (
	"context"
	"crypto"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/audit"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/tlsca"
	"github.com/keyport/keyport/internal/types"
)

type loginEnv struct {
	s     *Server
	clk   *clock.Fake
	audit *audit.Recorder
	pub   crypto.PublicKey
}

func newLoginEnv(t *testing.T, secondFactor string) *loginEnv {
	t.Helper()
	rec := &audit.Recorder{}
	s, clk := newTestServer(t, Config{Audit: rec, ProxyPublicAddr: "keyport.example.com:3080", SecondFactor: secondFactor})
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	return &loginEnv{s: s, clk: clk, audit: rec, pub: key.Public()}
}

// addUser creates a user and completes its invite; it returns the OTP secret.
func (e *loginEnv) addUser(t *testing.T, name, password string) string {
	t.Helper()
	ctx := context.Background()
	url, _, err := e.s.CreateUser(ctx, Actor{}, types.NewUser(name, "access"))
	if err != nil {
		t.Fatal(err)
	}
	secret := url[strings.LastIndex(url, "/")+1:]
	info, err := e.s.Invite(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	code := ""
	if info.OTP {
		code = e.code(t, info.OTPSecret, 0)
	}
	if _, err := e.s.CompleteInvite(ctx, CompleteInviteRequest{Secret: secret, Password: password, PasswordConfirm: password, OTPCode: code, Addr: "10.0.0.1:1000"}); err != nil {
		t.Fatal(err)
	}
	return info.OTPSecret
}

// code is the OTP code offset steps from now.
func (e *loginEnv) code(t *testing.T, secret string, offset int64) string {
	t.Helper()
	c, err := TOTPCode(secret, TOTPStep(e.clk.Now())+offset)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *loginEnv) login(user, password, code, addr string) error {
	_, err := e.s.Login(context.Background(), LoginRequest{User: user, Password: password, OTPCode: code, PublicKey: e.pub, Addr: addr})
	return err
}

const goodPassword = "correct horse battery"

func TestInvite(t *testing.T) {
	ctx := context.Background()
	e := newLoginEnv(t, SecondFactorOTP)
	url, exp, err := e.s.CreateUser(ctx, Actor{}, types.NewUser("alice", "access"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "https://keyport.example.com:3080/web/invite/") || exp.Sub(e.clk.Now()) != DefaultInviteTTL {
		t.Fatalf("invite %s expiring %s", url, exp)
	}
	secret := url[strings.LastIndex(url, "/")+1:]
	info, err := e.s.Invite(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if info.User != "alice" || !info.OTP || len(info.OTPSecret) != 32 || !strings.HasPrefix(info.OTPURL, "otpauth://totp/keyport.example.com:alice?") {
		t.Fatalf("invite info %+v", info)
	}
	again, err := e.s.Invite(ctx, secret)
	if err != nil || again.OTPSecret != info.OTPSecret {
		t.Fatalf("a second view shows another OTP secret: %v %v", again, err)
	}
	complete := func(pw, confirm, code string) error {
		_, err := e.s.CompleteInvite(ctx, CompleteInviteRequest{Secret: secret, Password: pw, PasswordConfirm: confirm, OTPCode: code, Addr: "10.0.0.1:1"})
		return err
	}
	for _, tt := range []struct{ name, pw, confirm, code, want string }{
		{"short", "short", "short", e.code(t, info.OTPSecret, 0), "at least 12 characters"},
		{"mismatch", goodPassword, goodPassword + "x", e.code(t, info.OTPSecret, 0), "do not match"},
		{"too long for bcrypt", strings.Repeat("x", 73), strings.Repeat("x", 73), e.code(t, info.OTPSecret, 0), "at most 72 bytes"},
		{"wrong code", goodPassword, goodPassword, e.code(t, info.OTPSecret, 5), "OTP code is not valid"},
		{"no code", goodPassword, goodPassword, "", "OTP code is not valid"},
	} {
		if err := complete(tt.pw, tt.confirm, tt.code); err == nil || !strings.Contains(err.Error(), tt.want) || !errs.IsBadParameter(err) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
	if err := complete(goodPassword, goodPassword, e.code(t, info.OTPSecret, 0)); err != nil {
		t.Fatal(err)
	}
	// Single use.
	if err := complete(goodPassword, goodPassword, e.code(t, info.OTPSecret, 0)); !errs.IsNotFound(err) {
		t.Errorf("second use: %v", err)
	}
	if _, err := e.s.Invite(ctx, secret); !errs.IsNotFound(err) {
		t.Errorf("used invite still shown: %v", err)
	}
	// The enrolment code cannot log in; the next one can.
	if err := e.login("alice", goodPassword, e.code(t, info.OTPSecret, 0), "10.0.0.2:5"); err == nil || !strings.Contains(err.Error(), "already been used") {
		t.Errorf("enrolment code reused: %v", err)
	}
	if err := e.login("alice", goodPassword, e.code(t, info.OTPSecret, 1), "10.0.0.2:5"); err != nil {
		t.Fatal(err)
	}
	if e.audit.Count(EventInviteComplete) == 0 || e.audit.Count(audit.UserLogin) != 1 {
		t.Errorf("audit: %+v", e.audit.Events())
	}

	// Expired and garbage invites.
	url2, _, err := e.s.ResetUser(ctx, Actor{}, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.login("alice", goodPassword, e.code(t, info.OTPSecret, 1), "10.0.0.2:5"); err == nil {
		t.Error("a reset user still logs in with the old password")
	}
	e.clk.Advance(DefaultInviteTTL + time.Second)
	if _, err := e.s.Invite(ctx, url2[strings.LastIndex(url2, "/")+1:]); !errs.IsNotFound(err) {
		t.Errorf("expired invite: %v", err)
	}
	if _, err := e.s.Invite(ctx, "../../etc"); !errs.IsNotFound(err) {
		t.Errorf("garbage invite: %v", err)
	}
}

func TestResetInvalidatesOlderInvites(t *testing.T) {
	ctx := context.Background()
	e := newLoginEnv(t, SecondFactorOff)
	url1, _, err := e.s.CreateUser(ctx, Actor{}, types.NewUser("bob", "access"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.ResetUser(ctx, Actor{}, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Invite(ctx, url1[strings.LastIndex(url1, "/")+1:]); !errs.IsNotFound(err) {
		t.Errorf("older invite still works: %v", err)
	}
}

func TestLogin(t *testing.T) {
	e := newLoginEnv(t, SecondFactorOTP)
	secret := e.addUser(t, "alice", goodPassword)
	tests := []struct {
		name, user, password, code string
		kind                       errs.Kind
		want                       string
	}{
		{"unknown user", "nobody", goodPassword, "", errs.AccessDenied, "invalid user name or password"},
		{"wrong password", "alice", "wrong password!", e.code(t, secret, 1), errs.AccessDenied, "invalid user name or password"},
		{"password right, no code", "alice", goodPassword, "", errs.NotAuthenticated, OTPRequiredMessage},
		{"wrong code", "alice", goodPassword, e.code(t, secret, 4), errs.AccessDenied, "invalid OTP code"},
		{"right", "alice", goodPassword, e.code(t, secret, 1), errs.Unknown, ""},
		{"replay", "alice", goodPassword, e.code(t, secret, 1), errs.AccessDenied, "already been used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.login(tt.user, tt.password, tt.code, "10.0.0.9:1")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || errs.KindOf(err) != tt.kind {
				t.Fatalf("got %v (%v), want %s %q", err, errs.KindOf(err), tt.kind, tt.want)
			}
		})
	}
	if n := e.audit.Count(audit.UserLoginFailure); n != 4 {
		t.Errorf("%d login failures audited, want 4 (the missing code is not one)", n)
	}
}

func TestLoginWithoutSecondFactor(t *testing.T) {
	e := newLoginEnv(t, SecondFactorOff)
	if secret := e.addUser(t, "carol", goodPassword); secret != "" {
		t.Fatalf("OTP offered with second_factor off")
	}
	if err := e.login("carol", goodPassword, "", "10.0.0.1:2"); err != nil {
		t.Fatal(err)
	}
}

func TestLoginLockout(t *testing.T) {
	ctx := context.Background()
	e := newLoginEnv(t, SecondFactorOTP)
	secret := e.addUser(t, "dave", goodPassword)
	// Four failures from different sources (so that the rate limit stays out of it).
	for i := range DefaultMaxLoginFailures - 1 {
		err := e.login("dave", "not the password", "", "10.0.1."+string(rune('1'+i))+":1")
		if err == nil || strings.Contains(err.Error(), "locked") {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	// A wrong OTP code counts too, and the fifth failure locks.
	err := e.login("dave", goodPassword, e.code(t, secret, 5), "10.0.2.1:1")
	if err == nil || !strings.Contains(err.Error(), "invalid OTP code") || !strings.Contains(err.Error(), `user "dave" is locked until 2026-03-01T10:20:00Z`) {
		t.Fatalf("fifth failure: %v", err)
	}
	if e.audit.Count(audit.UserLocked) != 1 {
		t.Errorf("no user.locked event")
	}
	r, _ := e.s.GetResource(ctx, types.KindUser, "dave")
	if st := r.(*types.User).Spec.Status; !st.IsLocked || st.LockExpires == nil {
		t.Errorf("status %+v", st)
	}
	// Locked: even the right password and code are refused.
	err = e.login("dave", goodPassword, e.code(t, secret, 1), "10.0.3.1:1")
	if err == nil || !strings.Contains(err.Error(), "is locked until") {
		t.Fatalf("locked login: %v", err)
	}
	// After the lock time it works again, and the lock is cleared.
	e.clk.Advance(DefaultAccountLockTTL)
	if err := e.login("dave", goodPassword, e.code(t, secret, 0), "10.0.3.1:1"); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	r, _ = e.s.GetResource(ctx, types.KindUser, "dave")
	if r.(*types.User).Spec.Status.IsLocked {
		t.Error("lock not cleared after a good login")
	}
	// Failures older than the window do not add up.
	for range DefaultMaxLoginFailures - 1 {
		_ = e.login("dave", "nope nope nope", "", "10.0.4.1:1")
	}
	e.clk.Advance(DefaultLoginFailureWindow + time.Minute)
	if err := e.login("dave", "nope nope nope", "", "10.0.4.2:1"); err == nil || strings.Contains(err.Error(), "locked") {
		t.Errorf("old failures counted: %v", err)
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newLoginEnv(t, SecondFactorOTP)
	secret := e.addUser(t, "erin", goodPassword)
	e.s.cfg.Login.MaxFailures = 1000 // only the rate limit here
	for range DefaultLoginRate {
		_ = e.login("erin", "wrong password", "", "10.9.9.9:1")
	}
	err := e.login("erin", goodPassword, e.code(t, secret, 1), "10.9.9.9:2")
	if !errs.IsLimitExceeded(err) || !strings.Contains(err.Error(), `too many login attempts for user "erin" from 10.9.9.9`) {
		t.Fatalf("got %v", err)
	}
	// Another source is not limited by this one.
	if err := e.login("erin", goodPassword, e.code(t, secret, 1), "10.9.9.8:1"); err != nil {
		t.Fatal(err)
	}
	// And the window passes.
	e.clk.Advance(time.Minute + time.Second)
	if err := e.login("erin", goodPassword, e.code(t, secret, 0), "10.9.9.9:3"); err != nil {
		t.Fatal(err)
	}
}

func TestDeletedUserLosesPassword(t *testing.T) {
	ctx := context.Background()
	e := newLoginEnv(t, SecondFactorOff)
	e.addUser(t, "frank", goodPassword)
	if err := e.s.DeleteResource(ctx, Actor{}, types.KindUser, "frank"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.s.CreateUser(ctx, Actor{}, types.NewUser("frank", "access")); err != nil {
		t.Fatal(err)
	}
	if err := e.login("frank", goodPassword, "", "10.0.0.1:1"); err == nil {
		t.Fatal("a new user of the same name logs in with the old password")
	}
}
