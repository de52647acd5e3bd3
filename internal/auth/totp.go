package auth

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"net/url"
	"strings"
	"time"
)

// TOTP as every authenticator app does it by default (RFC 6238 over RFC 4226): HMAC-SHA1,
// six digits, 30-second steps, a 160-bit secret shown in base32. A code is accepted for
// one step either side of the server's clock, and never twice (the last accepted step is
// stored with the user's password).
const (
	totpDigits     = 6
	totpPeriod     = 30 * time.Second
	totpSkew       = 1
	totpSecretSize = 20
)

var totpEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret returns a fresh secret in the base32 form authenticator apps take.
func NewTOTPSecret(r io.Reader) (string, error) {
	buf := make([]byte, totpSecretSize)
	if _, err := io.ReadFull(r, buf); err != nil {
		return "", fmt.Errorf("generating OTP secret: %w", err)
	}
	return totpEncoding.EncodeToString(buf), nil
}

func decodeTOTPSecret(secret string) ([]byte, error) {
	s := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(secret), " ", ""))
	s = strings.TrimRight(s, "=")
	return totpEncoding.DecodeString(s)
}

// TOTPStep is the time step t falls in.
func TOTPStep(t time.Time) int64 { return t.Unix() / int64(totpPeriod/time.Second) }

// TOTPCode returns the code for secret (base32) in time step step.
func TOTPCode(secret string, step int64) (string, error) {
	key, err := decodeTOTPSecret(secret)
	if err != nil {
		return "", fmt.Errorf("OTP secret is not base32: %w", err)
	}
	return hotp(sha1.New, key, uint64(step), totpDigits), nil
}

// hotp is RFC 4226 section 5.3 with the hash as a parameter, as RFC 6238 allows.
func hotp(h func() hash.Hash, key []byte, counter uint64, digits int) string {
	mac := hmac.New(h, key)
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// checkTOTP finds the step within the allowed skew of now whose code is code, later than
// lastStep (0: none used yet). It compares every candidate in constant time.
func checkTOTP(secret, code string, now time.Time, lastStep int64) (step int64, ok, replayed bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != totpDigits {
		return 0, false, false
	}
	cur := TOTPStep(now)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		want, err := TOTPCode(secret, s)
		if err != nil {
			return 0, false, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			if s <= lastStep {
				return s, false, true
			}
			return s, true, false
		}
	}
	return 0, false, false
}

// TOTPURL is the otpauth:// URL that an authenticator app reads from a QR code.
func TOTPURL(issuer, account, secret string) string {
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", fmt.Sprint(totpDigits))
	v.Set("period", fmt.Sprint(int(totpPeriod/time.Second)))
	label := url.PathEscape(issuer) + ":" + url.PathEscape(account)
	return "otpauth://totp/" + label + "?" + v.Encode()
}
