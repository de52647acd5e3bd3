// Package dexenv starts a real Dex, the OpenID Connect provider the SSO tests sign in
// through: in-memory storage, its password database with static users (and their
// groups), and static clients. The binary comes from package tools (built by `make
// kube-tools`, DEX_VERSION); a test that cannot find it fails, it never skips.
package dexenv

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/keyport/keyport/internal/testenv/freeport"
	"github.com/keyport/keyport/internal/testenv/proc"
	"github.com/keyport/keyport/internal/testenv/tools"
)

// User is a static user of Dex's password database.
type User struct {
	Email, Username, Password string
	Groups                    []string
}

// Client is a static OAuth2 client.
type Client struct {
	ID, Secret   string
	RedirectURIs []string
}

// Options shape the provider.
type Options struct {
	Users   []User
	Clients []Client
}

// Dex is a running provider.
type Dex struct {
	// Issuer is http://127.0.0.1:PORT/dex.
	Issuer  string
	LogPath string
	proc    *proc.Process
}

// Start runs Dex until the test ends.
func Start(t testing.TB, o Options) *Dex {
	t.Helper()
	bin := tools.Path(t, "dex")
	dir := t.TempDir()
	d := &Dex{LogPath: filepath.Join(dir, "dex.log")}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var ports []int
		if ports, err = freeport.Ports(1); err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
		d.Issuer = "http://" + addr + "/dex"
		cfg := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(cfg, []byte(config(t, d.Issuer, addr, o)), 0o600); err != nil {
			t.Fatal(err)
		}
		if d.proc, err = proc.Start("dex", d.LogPath, nil, bin, "serve", cfg); err != nil {
			t.Fatal(err)
		}
		if err = d.waitReady(); err == nil {
			break
		}
		bind := d.proc.BindFailed()
		_ = d.proc.Stop()
		if !bind {
			break
		}
	}
	if err != nil {
		t.Fatalf("dex: %v; its log:\n%s", err, proc.TailFile(d.LogPath, 40))
	}
	t.Cleanup(func() {
		if err := d.proc.Stop(); err != nil {
			t.Errorf("dex: %v", err)
		}
	})
	return d
}

func (d *Dex) waitReady() error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if d.proc.Exited() {
			return fmt.Errorf("dex exited: %w", d.proc.WaitErr)
		}
		resp, err := http.Get(d.Issuer + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("dex at %s not ready after 30s", d.Issuer)
}

// config is Dex's configuration: everything in memory, the password database on, no
// approval screen (the test signs in, it does not consent).
func config(t testing.TB, issuer, addr string, o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "issuer: %s\nstorage:\n  type: memory\nweb:\n  http: %s\n", issuer, addr)
	b.WriteString("oauth2:\n  skipApprovalScreen: true\nenablePasswordDB: true\nlogger:\n  level: debug\n")
	b.WriteString("staticClients:\n")
	for _, c := range o.Clients {
		fmt.Fprintf(&b, "- id: %q\n  name: %q\n  secret: %q\n  redirectURIs:\n", c.ID, c.ID, c.Secret)
		for _, u := range c.RedirectURIs {
			fmt.Fprintf(&b, "  - %q\n", u)
		}
	}
	b.WriteString("staticPasswords:\n")
	for i, u := range o.Users {
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost) // Dex refuses hashes cheaper than cost 10
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "- email: %q\n  hash: %q\n  username: %q\n  userID: \"user-%d\"\n  groups:\n", u.Email, hash, u.Username, i)
		for _, g := range u.Groups {
			fmt.Fprintf(&b, "  - %q\n", g)
		}
	}
	return b.String()
}
