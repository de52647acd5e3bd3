package e2e

import (
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/testenv"
	"github.com/keyport/keyport/internal/testenv/tools"
	"github.com/keyport/keyport/internal/tlsca"
)

// browser starts headless Debian Chromium (installed by `make kube-tools`) with a fresh
// profile and returns a chromedp context for one tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(tools.Path(t, "chromium")),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 1100),
		// The proxy serves its host-CA certificate, which the browser does not know.
		chromedp.IgnoreCertErrors,
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelTab(); cancelAlloc() })
	return ctx
}

// screenshot saves the page as PNG in the test's artifact directory (kept with
// `go test -artifacts -outputdir=DIR`, otherwise under the test's temporary directory).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestInvitePageInBrowser drives the invite page in a real browser: it reads the OTP key
// off the page, fails cleanly on a wrong code, sets the password with the right one, and
// the password and device then log in.
func TestInvitePageInBrowser(t *testing.T) {
	env := testenv.New(t)
	admin := env.AdminClient()
	bg := context.Background()
	resp, err := admin.CreateUser(bg, &pb.CreateUserRequest{Name: "alice", Roles: []string{"editor", "access"}})
	if err != nil {
		t.Fatal(err)
	}
	inviteURL := resp.GetInviteUrl()
	ctx := browser(t)
	const password = "correct horse battery staple"

	if err := chromedp.Do(ctx, chromedp.Navigate(inviteURL), chromedp.WaitVisible(chromedp.ID("otp-secret"))); err != nil {
		t.Fatal(err)
	}
	user, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("user")))
	if err != nil || user != "alice" {
		t.Fatalf("user on the page: %q, %v", user, err)
	}
	shown, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("otp-secret")))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.ReplaceAll(strings.TrimSpace(shown), " ", "")
	if len(secret) != 32 {
		t.Fatalf("OTP key on the page: %q", shown)
	}
	// The QR code is an image the browser decoded (a broken data URI has no width).
	width, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById("qr").naturalWidth`))
	if err != nil || width < 100 {
		t.Errorf("QR image natural width %v, %v", width, err)
	}
	screenshot(t, ctx, "invite.png")

	fill := func(code string) error {
		return chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.ID("password"), password),
			chromedp.SendKeys(chromedp.ID("password_confirm"), password),
			chromedp.SendKeys(chromedp.ID("otp_code"), code),
			chromedp.Click(chromedp.ID("submit")),
		)
	}
	// A wrong code: the form comes back with the reason and the same key.
	wrong, err := auth.TOTPCode(secret, auth.TOTPStep(time.Now())+50)
	if err != nil {
		t.Fatal(err)
	}
	if err := fill(wrong); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("error"))); err != nil {
		t.Fatal(err)
	}
	msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("error")))
	if err != nil || !strings.Contains(msg, "The OTP code is not valid") {
		t.Errorf("error shown: %q, %v", msg, err)
	}
	if again, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("otp-secret"))); again != shown {
		t.Errorf("the key changed after a wrong code: %q -> %q", shown, again)
	}
	screenshot(t, ctx, "invite-wrong-code.png")

	// The right code.
	step := auth.TOTPStep(time.Now())
	code, err := auth.TOTPCode(secret, step)
	if err != nil {
		t.Fatal(err)
	}
	if err := fill(code); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("command"))); err != nil {
		t.Fatal(err)
	}
	title, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("title")))
	command, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("command")))
	if title != "Your account is ready" || command != "tsh login --proxy="+env.WebAddr+" --user=alice" {
		t.Errorf("done page: %q / %q", title, command)
	}
	screenshot(t, ctx, "invite-done.png")

	// The link is used up.
	if err := chromedp.Do(ctx, chromedp.Navigate(inviteURL), chromedp.WaitVisible(chromedp.ID("title"))); err != nil {
		t.Fatal(err)
	}
	if title, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("title"))); title != "This invite link cannot be used" {
		t.Errorf("used link shows %q", title)
	}

	// The password and the enrolled device log in (with a later code than the one used).
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(key.Public())
	clt, err := client.New(client.Config{Addr: env.WebAddr, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer clt.Close()
	next, _, err := nextTOTP(secret, step)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := clt.Login(bg, &pb.LoginRequest{User: "alice", Password: password, OtpCode: next, PublicKeyDer: der})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsca.ParseCertPEM(certs.GetTlsCertPem())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := tlsca.FromCertificate(cert); err != nil || id.Username != "alice" || strings.Join(id.Roles, ",") != "editor,access" {
		t.Errorf("login certificate: %+v %v", id, err)
	}
}
