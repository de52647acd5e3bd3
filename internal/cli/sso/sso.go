// Package sso owns the client side of single sign-on that tsh (`tsh login --auth=NAME`)
// and tctl (`tctl sso test NAME`) share: a loopback listener for the browser's return,
// the one-time secret that lets only this client collect the result, opening the browser
// (or printing the URL), the page the browser lands on, and the text `tctl sso test`
// prints. It talks to the cluster through the Auth API client only.
package sso

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"

	pb "github.com/keyport/keyport/api/gen/keyportv1"
)

// API is the part of the Auth API client the flow uses.
type API interface {
	CreateSSOAuthRequest(ctx context.Context, in *pb.CreateSSOAuthRequestRequest, opts ...grpc.CallOption) (*pb.CreateSSOAuthRequestResponse, error)
	CreateSSOTestRequest(ctx context.Context, in *pb.CreateSSOAuthRequestRequest, opts ...grpc.CallOption) (*pb.CreateSSOAuthRequestResponse, error)
	FinishSSOLogin(ctx context.Context, in *pb.FinishSSOLoginRequest, opts ...grpc.CallOption) (*pb.SSOLoginResult, error)
}

// Options describe one login or test.
type Options struct {
	Kind      string // oidc, github, or "" for whichever connector has the name
	Connector string
	// PublicKey is the key the certificate is for (nil for a test).
	PublicKey any
	TTL       time.Duration
	Test      bool
	// Browser is "" (open the system browser, and print the URL too) or "none" (print
	// the URL only).
	Browser string
	// Out receives the URL and instructions.
	Out io.Writer
	// Timeout bounds the wait for the browser (default 10 minutes, the request's life).
	Timeout time.Duration
}

// Result is a completed login or test: the mapping and, for a login, the certificates.
type Result struct {
	Kind    string
	Mapping Mapping
	Certs   *pb.Certs
}

// Mapping is the Auth Service's SSOResult, as the client reads it.
type Mapping struct {
	User     string              `json:"user"`
	Roles    []string            `json:"roles"`
	Traits   map[string][]string `json:"traits"`
	Claims   map[string]any      `json:"claims,omitempty"`
	Expires  time.Time           `json:"expires"`
	Mappings []string            `json:"mappings,omitempty"`
}

// Run performs the flow and returns when the browser has come back and the result is
// collected, or on failure.
func Run(ctx context.Context, api API, o Options) (*Result, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening on loopback for the browser's return: %w", err)
	}
	defer l.Close()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(secret)
	req := &pb.CreateSSOAuthRequestRequest{Kind: o.Kind, Connector: o.Connector, SecretSha256: sum[:],
		ClientRedirectUrl: "http://" + l.Addr().String() + "/callback", TtlSeconds: int64(o.TTL / time.Second)}
	if o.PublicKey != nil {
		if req.PublicKeyDer, err = x509.MarshalPKIXPublicKey(o.PublicKey); err != nil {
			return nil, err
		}
	}
	var start *pb.CreateSSOAuthRequestResponse
	if o.Test {
		start, err = api.CreateSSOTestRequest(ctx, req)
	} else {
		start, err = api.CreateSSOAuthRequest(ctx, req)
	}
	if err != nil {
		return nil, err
	}
	type outcome struct {
		res *Result
		err error
	}
	done := make(chan outcome, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		res, err := finish(r.Context(), api, start, secret)
		page := Page{OK: err == nil, Test: o.Test, Connector: o.Connector}
		if err != nil {
			page.Error = err.Error()
		} else {
			page.User, page.Roles = res.Mapping.User, res.Mapping.Roles
		}
		WritePage(w, page)
		select {
		case done <- outcome{res, err}:
		default:
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer func() { _ = srv.Close() }()

	fmt.Fprintf(o.Out, "Sign in through %s connector %q in your browser. If no browser opens, open this URL:\n  %s\n", start.GetKind(), o.Connector, start.GetAuthUrl())
	if o.Browser != "none" {
		openBrowser(start.GetAuthUrl())
	}
	select {
	case out := <-done:
		// Let the page reach the browser before the listener closes.
		time.Sleep(100 * time.Millisecond)
		return out.res, out.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(o.Timeout):
		return nil, fmt.Errorf("the browser did not come back within %s; run the command again", o.Timeout)
	}
}

func finish(ctx context.Context, api API, start *pb.CreateSSOAuthRequestResponse, secret []byte) (*Result, error) {
	r, err := api.FinishSSOLogin(ctx, &pb.FinishSSOLoginRequest{RequestId: start.GetRequestId(), Secret: secret})
	if err != nil {
		return nil, err
	}
	res := &Result{Kind: start.GetKind(), Certs: r.GetCerts()}
	if err := json.Unmarshal(r.GetJson(), &res.Mapping); err != nil {
		return nil, fmt.Errorf("the cluster returned an unreadable SSO result: %w", err)
	}
	return res, nil
}

// openBrowser starts the system's browser on url when there is one to start; the URL is
// printed either way.
func openBrowser(url string) {
	for _, prog := range []string{"xdg-open", "open"} {
		if p, err := exec.LookPath(prog); err == nil {
			cmd := exec.Command(p, url)
			if cmd.Start() == nil {
				go func() { _ = cmd.Wait() }()
			}
			return
		}
	}
}

//go:embed page.html
var files embed.FS

var pageTmpl = template.Must(template.ParseFS(files, "page.html"))

// Page is the data of the page the browser lands on at the end of the flow.
type Page struct {
	OK, Test  bool
	Connector string
	User      string
	Roles     []string
	Error     string
}

// csp allows the page's one inline style sheet and nothing else.
var csp = func() string {
	var buf bytes.Buffer
	_ = pageTmpl.ExecuteTemplate(&buf, "style", nil)
	sum := sha256.Sum256(buf.Bytes())
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
}()

// WritePage renders p.
func WritePage(w http.ResponseWriter, p Page) {
	var buf bytes.Buffer
	if err := pageTmpl.ExecuteTemplate(&buf, "page.html", p); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	status := http.StatusOK
	if !p.OK {
		status = http.StatusForbidden
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// FormatTest writes what `tctl sso test` shows: the user name, roles and traits the login
// would get, which mapping entries matched, and the provider's claims.
func FormatTest(w io.Writer, kind, name string, m Mapping) error {
	fmt.Fprintf(w, "SSO test of %s connector %q: success\n\n", kind, name)
	fmt.Fprintf(w, "User:   %s\n", m.User)
	fmt.Fprintf(w, "Roles:  %s\n", strings.Join(m.Roles, ", "))
	fmt.Fprintln(w, "Traits:")
	keys := make([]string, 0, len(m.Traits))
	width := 0
	for k := range m.Traits {
		keys = append(keys, k)
		width = max(width, len(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-*s  %s\n", width+1, k+":", strings.Join(m.Traits[k], ", "))
	}
	fmt.Fprintln(w, "Matched mappings:")
	for _, s := range m.Mappings {
		fmt.Fprintf(w, "  %s\n", s)
	}
	if len(m.Claims) > 0 {
		fmt.Fprintln(w, "Claims of the ID token:")
		data, err := json.MarshalIndent(m.Claims, "  ", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %s\n", data)
	}
	fmt.Fprintln(w, "\nNothing was issued and no user was created: this was a test.")
	return nil
}

// ErrNoRoles is what a test reports when the login would be refused.
var ErrNoRoles = errors.New("the login maps to no role")
