// Package tctl implements the `tctl` command line, the admin tool of a Keyport cluster
// (SPEC section 7). It talks to the cluster only through the shared client package and
// must not import the server packages (internal/auth, internal/proxy, internal/kube);
// internal/archtest enforces that. On the Auth host it authenticates with the admin
// identity the daemon keeps in data_dir; elsewhere with --identity or as the user of the
// current `tsh login` profile (package profile).
package tctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
	"github.com/keyport/keyport/internal/cli/common"
	"github.com/keyport/keyport/internal/cli/tsh/profile"
	"github.com/keyport/keyport/internal/client"
	"github.com/keyport/keyport/internal/config"
	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/identityfile"
)

// AdminIdentityFile is the admin identity's file name under data_dir (written by keyport).
const AdminIdentityFile = "admin-identity"

// env is what every tctl command shares.
type env struct {
	g            common.Globals
	stdio        common.IO
	cfgPath      string
	authServer   string
	identityPath string
	insecure     bool

	clt *client.Client
}

// Main runs tctl with args (without the program name) and returns the exit code.
func Main(args []string, stdio common.IO) int {
	e := &env{stdio: stdio}
	root := common.NewRoot("tctl", "Admin tool for the Keyport cluster", &e.g, stdio)
	pf := root.PersistentFlags()
	pf.StringVarP(&e.cfgPath, "config", "c", "", "keyport.yaml of the Auth host (default $KEYPORT_CONFIG or "+config.DefaultPath+")")
	pf.StringVar(&e.authServer, "auth-server", "", "address of the auth server or proxy (host:port)")
	pf.StringVarP(&e.identityPath, "identity", "i", "", "identity file (from tbot's identity output or tctl auth sign --format=identity)")
	pf.BoolVar(&e.insecure, "insecure", false, "do not verify the server's certificate (dangerous)")
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if e.clt != nil {
			_ = e.clt.Close()
		}
	}
	root.AddCommand(
		e.statusCmd(),
		e.createCmd(), e.getCmd(), e.rmCmd(), e.editCmd(),
		e.usersCmd(), e.botsCmd(), e.tokensCmd(), e.proxiesCmd(),
		e.kubeCmd(), e.lockCmd(), e.authCmd(), e.auditCmd(), e.recordingsCmd(), e.requestCmd(), e.ssoCmd(),
	)
	return common.Run(root, args, stdio)
}

// client connects on first use: with --identity and --auth-server, or as the local admin
// with the config file.
func (e *env) client(ctx context.Context) (*client.Client, error) {
	if e.clt != nil {
		return e.clt, nil
	}
	var (
		id   *identityfile.Identity
		addr = e.authServer
		err  error
	)
	switch {
	case e.identityPath != "":
		id, err = identityfile.Read(e.identityPath)
		if err != nil {
			return nil, err
		}
		if addr == "" {
			return nil, common.UsageErrorf("--identity needs --auth-server (the auth server or proxy address)")
		}
	default:
		path, explicit := e.configPath()
		cfg, err := config.Read(path)
		if err != nil {
			if !explicit && errors.Is(err, fs.ErrNotExist) {
				// Not on the Auth host: act as the user of the tsh login.
				return e.profileClient()
			}
			return nil, err
		}
		idPath := filepath.Join(cfg.Keyport.DataDir, AdminIdentityFile)
		id, err = identityfile.Read(idPath)
		if err != nil {
			if errs.IsNotFound(err) {
				return nil, errs.NotFoundf("admin identity %s not found: is keyport running with %s?", idPath, path)
			}
			return nil, err
		}
		if addr == "" {
			addr = cfg.LocalAuthAddr()
		}
	}
	clt, err := client.New(client.Config{Addr: addr, Identity: id, InsecureSkipVerify: e.insecure})
	if err != nil {
		return nil, err
	}
	e.clt = clt
	return clt, nil
}

// profileClient connects as the user of the current `tsh login` profile, through the
// proxy it logged in to (or --auth-server), trusting the host CA the login returned.
func (e *env) profileClient() (*client.Client, error) {
	st, err := profile.Default(e.stdio.Getenv)
	if err != nil {
		return nil, err
	}
	p, err := st.Current()
	if profile.IsNotLoggedIn(err) {
		return nil, errs.BadParameterf("no credentials: log in with tsh login --proxy=HOST[:PORT] --user=NAME, run tctl on the Auth host with -c keyport.yaml, or pass --auth-server and --identity")
	}
	if err != nil {
		return nil, err
	}
	id, err := st.ValidIdentity(p, time.Now())
	if err != nil {
		return nil, err
	}
	addr := e.authServer
	if addr == "" {
		addr = p.ProxyAddr
	}
	clt, err := client.New(client.Config{Addr: addr, Identity: id, InsecureSkipVerify: e.insecure})
	if err != nil {
		return nil, err
	}
	e.clt = clt
	return clt, nil
}

func (e *env) configPath() (string, bool) {
	if e.cfgPath != "" {
		return e.cfgPath, true
	}
	if v := e.stdio.Getenv("KEYPORT_CONFIG"); v != "" {
		return v, true
	}
	return config.DefaultPath, false
}

// run wraps a command body that needs a client.
func (e *env) run(fn func(ctx context.Context, clt *client.Client, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		clt, err := e.client(cmd.Context())
		if err != nil {
			return err
		}
		return fn(cmd.Context(), clt, cmd, args)
	}
}

// table prints rows under a header with aligned columns.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	seps := make([]string, len(header))
	for i, h := range header {
		seps[i] = strings.Repeat("-", len(h))
	}
	fmt.Fprintln(tw, strings.Join(seps, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

func toTraits(t map[string][]string) map[string]*pb.StringList {
	out := map[string]*pb.StringList{}
	for k, v := range t {
		out[k] = &pb.StringList{Values: v}
	}
	return out
}
