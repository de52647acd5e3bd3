package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyport/keyport/internal/clock"
	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/tlsca"
)

// startKeyportBinary runs the built keyport with config until the test ends and waits
// until diag answers /readyz.
func startKeyportBinary(t *testing.T, dir, config, diag string) {
	t.Helper()
	cfgPath := filepath.Join(dir, "keyport.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "keyport.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "keyport"), "start", "-c", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("keyport did not stop on SIGTERM")
		}
		logf.Close()
		if t.Failed() {
			logs, _ := os.ReadFile(logPath)
			t.Logf("keyport logs:\n%s", logs)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + diag + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			logs, _ := os.ReadFile(logPath)
			t.Fatalf("keyport exited: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("keyport not ready in 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestTshLoginTrustsSystemRoots: a proxy with a public certificate (https_keypairs) that
// the system roots trust is trusted without a question, and its host CA is pinned from
// then on; the same proxy without those roots gets the first-use question.
func TestTshLoginTrustsSystemRoots(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	// A "public" CA standing in for the system roots (SSL_CERT_FILE), and the proxy's
	// certificate from it.
	root, err := tlsca.NewCA("public-root", "host", tlsca.AlgECDSAP256, clock.Rand, now.Add(-time.Hour), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tlsca.GenerateKey(tlsca.AlgECDSAP256, clock.Rand)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := root.Issue(clock.Rand, now, tlsca.CertRequest{PublicKey: key.Public(), Identity: tlsca.Identity{Username: "proxy.public"},
		NotAfter: now.Add(time.Hour), DNSNames: []string{"localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := tlsca.EncodeKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"roots.pem": root.CertPEM, "public.crt": certPEM, "public.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	web, authAddr, diag := freeport.Addr(t), freeport.Addr(t), freeport.Addr(t)
	startKeyportBinary(t, dir, fmt.Sprintf(`version: v3
keyport:
  nodename: trust-node
  data_dir: %[1]s/data
  diag_addr: %[2]s
auth_service:
  cluster_name: keyport.example.com
  listen_addr: %[3]s
proxy_service:
  web_listen_addr: %[4]s
  public_addr: %[4]s
  https_keypairs:
  - cert_file: %[1]s/public.crt
    key_file: %[1]s/public.key
`, dir, diag, authAddr, web), diag)

	tctl := func(args ...string) string {
		out, err := exec.Command(filepath.Join(binDir, "tctl"), append([]string{"-c", filepath.Join(dir, "keyport.yaml")}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	pin := regexp.MustCompile(`CA pin   (sha256:[0-9a-f]{64})`).FindStringSubmatch(tctl("status"))[1]
	inviteURL := regexp.MustCompile(`https://\S+/web/invite/[0-9a-f]{64}`).FindString(tctl("users", "add", "dave", "--roles=access"))
	const password = "dave's password!"
	enrolled, err := completeInvite(context.Background(), inviteURL, password)
	if err != nil {
		t.Fatal(err)
	}

	// Without the roots: the first-use question; "n" stops.
	stranger := newTshUser(t, filepath.Join(dir, "kubeconfig-stranger"))
	if _, errOut, err := stranger.run("n\n", "tsh", "login", "--proxy="+web, "--user=dave"); err == nil || !strings.Contains(errOut, pin) || !strings.Contains(errOut, "was not trusted") {
		t.Fatalf("login without roots: %v\n%s", err, errOut)
	}

	// With the roots: no question, and the host CA's pin is remembered.
	u := newTshUser(t, filepath.Join(dir, "kubeconfig"))
	u.env = append(u.env, "SSL_CERT_FILE="+filepath.Join(dir, "roots.pem"))
	code, _, err := nextTOTP(enrolled.OTPSecret, enrolled.Step)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, err := u.run(password+"\n"+code+"\n", "tsh", "login", "--proxy="+web, "--user=dave")
	if err != nil || strings.Contains(errOut, "Trust this CA") || !strings.Contains(out, "Logged in as:       dave") {
		t.Fatalf("login with system roots: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	known, err := os.ReadFile(filepath.Join(u.home, ".tsh", "known_cas"))
	if err != nil || strings.TrimSpace(string(known)) != web+" "+pin {
		t.Errorf("known_cas = %q, %v; want %s %s", known, err, web, pin)
	}
	if out := u.must("", "tsh", "status"); !strings.Contains(out, "Roles:              access") {
		t.Errorf("tsh status:\n%s", out)
	}
}
