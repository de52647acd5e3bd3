package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/keyport/keyport/internal/auth"
)

// The testscript commands of the tsh scripts (testdata/script/tsh*.txtar): completing an
// invite as a browser would, and reading codes off the "authenticator app".

// inviteResult is what a completed invite enrolled.
type inviteResult struct {
	OTPSecret string // "" when the cluster has second_factor: off
	Step      int64  // the TOTP step whose code enrolled the device
}

var otpSecretRE = regexp.MustCompile(`id="otp-secret">([A-Z2-7 ]+)<`)

// completeInvite opens an invite page, reads the OTP key it shows, and submits the form
// with password and the current code. The proxy's certificate is not checked: this is
// the test's own cluster on loopback.
func completeInvite(ctx context.Context, inviteURL, password string) (*inviteResult, error) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, inviteURL, nil)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s\n%s", inviteURL, resp.Status, page)
	}
	res := &inviteResult{}
	form := url.Values{"password": {password}, "password_confirm": {password}}
	if m := otpSecretRE.FindSubmatch(page); m != nil {
		res.OTPSecret = strings.ReplaceAll(string(m[1]), " ", "")
		res.Step = auth.TOTPStep(time.Now())
		code, err := auth.TOTPCode(res.OTPSecret, res.Step)
		if err != nil {
			return nil, err
		}
		form.Set("otp_code", code)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, inviteURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = hc.Do(req)
	if err != nil {
		return nil, err
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Your account is ready") {
		return nil, fmt.Errorf("POST %s: %s\n%s", inviteURL, resp.Status, page)
	}
	return res, nil
}

// nextTOTP returns a code of secret for a step later than last that the server accepts
// now and for a while (the current step or the next), waiting for the clock if both were
// used already. It returns the step used.
func nextTOTP(secret string, last int64) (string, int64, error) {
	for {
		cur := auth.TOTPStep(time.Now())
		for _, s := range []int64{cur, cur + 1} {
			if s > last {
				code, err := auth.TOTPCode(secret, s)
				return code, s, err
			}
		}
		time.Sleep(time.Second)
	}
}

// cmdInvite: invite URL PASSWORD VAR completes an invite and sets VAR to the OTP key.
func cmdInvite(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: invite URL PASSWORD VAR")
	}
	res, err := completeInvite(context.Background(), args[0], args[1])
	if neg {
		if err == nil {
			ts.Fatalf("invite completed")
		}
		return
	}
	ts.Check(err)
	ts.Setenv(args[2], res.OTPSecret)
	ts.Setenv("TOTP_LAST_"+args[2], strconv.FormatInt(res.Step, 10))
	fmt.Fprintf(ts.Stdout(), "Your account is ready\n")
}

// cmdTOTP: totp [-wrong] VAR CODEVAR sets CODEVAR to an unused code of the key in $VAR
// (or, with -wrong, to a code the server refuses).
func cmdTOTP(ts *testscript.TestScript, _ bool, args []string) {
	wrong := len(args) > 0 && args[0] == "-wrong"
	if wrong {
		args = args[1:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: totp [-wrong] SECRET_VAR CODE_VAR")
	}
	secret := ts.Getenv(args[0])
	if secret == "" {
		ts.Fatalf("$%s is empty", args[0])
	}
	if wrong {
		code, err := auth.TOTPCode(secret, auth.TOTPStep(time.Now())+100)
		ts.Check(err)
		ts.Setenv(args[1], code)
		return
	}
	last, _ := strconv.ParseInt(ts.Getenv("TOTP_LAST_"+args[0]), 10, 64)
	code, step, err := nextTOTP(secret, last)
	ts.Check(err)
	ts.Setenv("TOTP_LAST_"+args[0], strconv.FormatInt(step, 10))
	ts.Setenv(args[1], code)
}
