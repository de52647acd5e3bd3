package web

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/errs"
)

// fakeInvites is one invite "s3cret" for alice.
type fakeInvites struct {
	otp  bool
	got  auth.CompleteInviteRequest
	used bool
}

func (f *fakeInvites) Invite(_ context.Context, secret string) (*auth.InviteInfo, error) {
	if secret != "s3cret" || f.used {
		return nil, errs.NotFoundf("this invite link is not valid")
	}
	info := &auth.InviteInfo{User: "alice", ClusterName: "keyport.example.com", Expires: time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)}
	if f.otp {
		info.OTP, info.OTPSecret = true, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
		info.OTPURL = auth.TOTPURL(info.ClusterName, info.User, info.OTPSecret)
	}
	return info, nil
}

func (f *fakeInvites) CompleteInvite(_ context.Context, req auth.CompleteInviteRequest) (string, error) {
	f.got = req
	if err := auth.CheckPassword(req.Password, req.PasswordConfirm); err != nil {
		return "", err
	}
	if f.otp && req.OTPCode != "123456" {
		return "", errs.BadParameterf("the OTP code is not valid")
	}
	f.used = true
	return "alice", nil
}

// response is what the handler answered.
type response struct {
	StatusCode int
	Header     http.Header
}

func do(t *testing.T, h http.Handler, method, path string, form url.Values) (response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{StatusCode: rec.Code, Header: rec.Header()}, rec.Body.String()
}

func TestInvitePage(t *testing.T) {
	f := &fakeInvites{otp: true}
	h := NewHandler(Config{Invites: f, ProxyAddr: "keyport.example.com:3080"})

	resp, body := do(t, h, http.MethodGet, "/web/invite/s3cret", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{`id="user">alice<`, `name="password"`, `name="password_confirm"`, `name="otp_code"`,
		`<img src="data:image/png;base64,iVBORw0KGgo`, `id="otp-secret">JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP<`, "At least 12 characters", "2026-03-01 11:00 UTC"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("page has a script")
	}
	// The one inline style sheet is what the CSP allows, byte for byte.
	m := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no style element")
	}
	sum := sha256.Sum256([]byte(m[1]))
	if c := resp.Header.Get("Content-Security-Policy"); !strings.Contains(c, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'") || !strings.Contains(c, "default-src 'none'") {
		t.Errorf("CSP %q does not allow the page's style", c)
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", resp.Header)
	}

	// A wrong code shows the form again with the reason.
	resp, body = do(t, h, http.MethodPost, "/web/invite/s3cret", url.Values{"password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}, "otp_code": {"000000"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `id="error" role="alert">The OTP code is not valid<`) || !strings.Contains(body, `name="otp_code"`) {
		t.Fatalf("wrong code: %d\n%s", resp.StatusCode, body)
	}
	resp, body = do(t, h, http.MethodPost, "/web/invite/s3cret", url.Values{"password": {"short"}, "password_confirm": {"short"}, "otp_code": {"123456"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "The password must be at least 12 characters") {
		t.Fatalf("short password: %d\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, "short") && strings.Contains(body, `value="short"`) {
		t.Error("the password is echoed back into the page")
	}

	resp, body = do(t, h, http.MethodPost, "/web/invite/s3cret", url.Values{"password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}, "otp_code": {"123456"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Your account is ready") || !strings.Contains(body, "tsh login --proxy=keyport.example.com:3080 --user=alice") {
		t.Fatalf("success: %d\n%s", resp.StatusCode, body)
	}
	if f.got.Addr == "" {
		t.Error("the source address is not passed on")
	}

	// Used, unknown, and other paths.
	for _, p := range []string{"/web/invite/s3cret", "/web/invite/other"} {
		resp, body = do(t, h, http.MethodGet, p, nil)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "This invite link cannot be used") {
			t.Errorf("%s: %d\n%s", p, resp.StatusCode, body)
		}
	}
	if resp, _ := do(t, h, http.MethodGet, "/web/nothing", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/web/nothing: %d", resp.StatusCode)
	}
}

func TestInvitePageWithoutOTP(t *testing.T) {
	h := NewHandler(Config{Invites: &fakeInvites{}, ProxyAddr: "p:3080"})
	_, body := do(t, h, http.MethodGet, "/web/invite/s3cret", nil)
	if strings.Contains(body, "otp_code") || strings.Contains(body, "<img") {
		t.Errorf("OTP enrolment shown with second_factor off:\n%s", body)
	}
	resp, body := do(t, h, http.MethodPost, "/web/invite/s3cret", url.Values{"password": {"correct horse battery"}, "password_confirm": {"correct horse battery"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Your account is ready") {
		t.Fatalf("%d\n%s", resp.StatusCode, body)
	}
}

func TestGroup(t *testing.T) {
	if got := sentence("the code"); got != "The code" {
		t.Errorf("sentence: %q", got)
	}
	for in, want := range map[string]string{"": "", "ABC": "ABC", "ABCD": "ABCD", "ABCDE": "ABCD E", "ABCDEFGH": "ABCD EFGH"} {
		if got := group(in); got != want {
			t.Errorf("group(%q) = %q, want %q", in, got, want)
		}
	}
}
