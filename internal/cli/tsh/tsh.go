// Package tsh implements the `tsh` command line, the Keyport user client (SPEC section
// 8): login with a password and OTP code, status, logout, and Kubernetes access through
// kubeconfig contexts whose exec plugin is `tsh kube credentials`. It talks to the
// cluster only through the shared client package and must not import the server packages
// (internal/auth, internal/proxy, internal/kube); internal/archtest enforces that. What
// a login leaves on disk is package profile's.
package tsh

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/cli/tsh/profile"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/identityfile"
)

// env is what every tsh command shares.
type env struct {
	g      common.Globals
	stdio  common.IO
	prompt *prompter
	now    func() time.Time
}

// Main runs tsh with args (without the program name) and returns the exit code.
func Main(args []string, stdio common.IO) int {
	e := &env{stdio: stdio, prompt: newPrompter(stdio.In, stdio.Err), now: time.Now}
	root := common.NewRoot("tsh", "Keyport user client", &e.g, stdio)
	root.AddCommand(e.loginCmd(), e.statusCmd(), e.logoutCmd(), e.kubeCmd(), e.playCmd(), e.recordingsCmd(), e.requestCmd())
	return common.Run(root, args, stdio)
}

func (e *env) store() (*profile.Store, error) { return profile.Default(e.stdio.Getenv) }

// session is a logged-in profile with a connection to its proxy.
type session struct {
	store   *profile.Store
	profile *profile.Profile
	id      *identityfile.Identity
	clt     *client.Client
}

// session loads the profile of proxy (the current one when empty) and connects with its
// identity, trusting the host CA the login returned.
func (e *env) session(proxy string) (*session, error) {
	st, err := e.store()
	if err != nil {
		return nil, err
	}
	var p *profile.Profile
	if proxy == "" {
		p, err = st.Current()
	} else {
		var addr string
		if addr, err = profile.NormalizeProxy(proxy); err == nil {
			p, err = st.Get(addr)
		}
	}
	if err != nil {
		return nil, err
	}
	id, err := st.ValidIdentity(p, e.now())
	if err != nil {
		return nil, err
	}
	clt, err := client.New(client.Config{Addr: p.ProxyAddr, Identity: id})
	if err != nil {
		return nil, err
	}
	return &session{store: st, profile: p, id: id, clt: clt}, nil
}

func (s *session) Close() {
	if s.clt != nil {
		_ = s.clt.Close()
		s.clt = nil
	}
}

// withSession runs a command body with a session that is closed afterwards.
func (e *env) withSession(proxy *string, fn func(ctx context.Context, s *session, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		p := ""
		if proxy != nil {
			p = *proxy
		}
		s, err := e.session(p)
		if err != nil {
			return err
		}
		defer s.Close()
		return fn(cmd.Context(), s, args)
	}
}
