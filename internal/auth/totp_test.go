package auth

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"strings"
	"testing"
	"time"
)

// TestTOTPRFC6238 checks the HOTP/TOTP core against the test vectors of RFC 6238
// appendix B (eight digits, the three hashes, their 20/32/64-byte seeds).
func TestTOTPRFC6238(t *testing.T) {
	seeds := map[string]struct {
		h   func() hash.Hash
		key []byte
	}{
		"SHA1":   {sha1.New, []byte("12345678901234567890")},
		"SHA256": {sha256.New, []byte("12345678901234567890123456789012")},
		"SHA512": {sha512.New, []byte("1234567890123456789012345678901234567890123456789012345678901234")},
	}
	vectors := []struct {
		unix int64
		alg  string
		want string
	}{
		{59, "SHA1", "94287082"}, {59, "SHA256", "46119246"}, {59, "SHA512", "90693936"},
		{1111111109, "SHA1", "07081804"}, {1111111109, "SHA256", "68084774"}, {1111111109, "SHA512", "25091201"},
		{1111111111, "SHA1", "14050471"}, {1111111111, "SHA256", "67062674"}, {1111111111, "SHA512", "99943326"},
		{1234567890, "SHA1", "89005924"}, {1234567890, "SHA256", "91819424"}, {1234567890, "SHA512", "93441116"},
		{2000000000, "SHA1", "69279037"}, {2000000000, "SHA256", "90698825"}, {2000000000, "SHA512", "38618901"},
		{20000000000, "SHA1", "65353130"}, {20000000000, "SHA256", "77737706"}, {20000000000, "SHA512", "47863826"},
	}
	for _, v := range vectors {
		s := seeds[v.alg]
		step := TOTPStep(time.Unix(v.unix, 0))
		if got := hotp(s.h, s.key, uint64(step), 8); got != v.want {
			t.Errorf("T=%d %s: got %s, want %s", v.unix, v.alg, got, v.want)
		}
	}
	// The six-digit SHA-1 code apps show is the last six digits of the same number.
	secret := totpEncoding.EncodeToString(seeds["SHA1"].key)
	code, err := TOTPCode(secret, TOTPStep(time.Unix(59, 0)))
	if err != nil || code != "287082" {
		t.Errorf("TOTPCode = %q, %v; want 287082", code, err)
	}
}

func TestCheckTOTP(t *testing.T) {
	secret, err := NewTOTPSecret(bytes.NewReader(bytes.Repeat([]byte{7}, 20)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	cur := TOTPStep(now)
	code := func(step int64) string {
		c, err := TOTPCode(secret, step)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name         string
		code         string
		last         int64
		ok, replayed bool
	}{
		{"current step", code(cur), 0, true, false},
		{"previous step (clock skew)", code(cur - 1), 0, true, false},
		{"next step (clock skew)", code(cur + 1), 0, true, false},
		{"two steps old", code(cur - 2), 0, false, false},
		{"spaces are ignored", code(cur)[:3] + " " + code(cur)[3:], 0, true, false},
		{"used already", code(cur), cur, false, true},
		{"older than the last used", code(cur - 1), cur, false, true},
		{"later than the last used", code(cur + 1), cur, true, false},
		{"wrong length", "12345", 0, false, false},
		{"empty", "", 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, replayed := checkTOTP(secret, tt.code, now, tt.last)
			if ok != tt.ok || replayed != tt.replayed {
				t.Errorf("checkTOTP = ok %v replayed %v; want %v %v", ok, replayed, tt.ok, tt.replayed)
			}
		})
	}
	// A lower-case secret with spaces, as people type it, is the same secret.
	spaced := strings.ToLower(secret[:4] + " " + secret[4:])
	if c, err := TOTPCode(spaced, cur); err != nil || c != code(cur) {
		t.Errorf("TOTPCode(spaced) = %q, %v", c, err)
	}
}

func TestTOTPURL(t *testing.T) {
	got := TOTPURL("keyport.example.com", "alice", "ABC")
	want := "otpauth://totp/keyport.example.com:alice?algorithm=SHA1&digits=6&issuer=keyport.example.com&period=30&secret=ABC"
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}
