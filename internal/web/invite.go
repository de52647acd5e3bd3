// Package web owns the pages the proxy serves to browsers: the invite page at
// /web/invite/<secret>, where a new (or reset) local user sets a password and, when the
// cluster requires a second factor, enrols a TOTP device; and the SSO callback at
// /v1/webapi/{oidc,github}/callback, where an identity provider sends the browser back. Pages are rendered on the server
// from html/template with inline CSS and a QR code as a PNG data URI: no JavaScript, no
// external assets, and a Content-Security-Policy that allows nothing else.
package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/keyport/keyport/internal/auth"
	"github.com/keyport/keyport/internal/errs"
)

// Invites is what the invite page needs of the Auth Service.
type Invites interface {
	Invite(ctx context.Context, secret string) (*auth.InviteInfo, error)
	CompleteInvite(ctx context.Context, req auth.CompleteInviteRequest) (string, error)
}

// Config configures the pages.
type Config struct {
	Invites Invites
	// SSO completes SSO logins at /v1/webapi/{oidc,github}/callback; nil serves none.
	SSO SSO
	// ProxyAddr is the proxy's public address, for the `tsh login` line shown at the end.
	ProxyAddr string
	Logger    *slog.Logger
}

//go:embed templates/*.html templates/style.css
var files embed.FS

var (
	pages = template.Must(template.New("").Funcs(template.FuncMap{"group": group}).ParseFS(files, "templates/*.html"))
	style = func() string {
		b, err := files.ReadFile("templates/style.css")
		if err != nil {
			panic(err)
		}
		return string(b)
	}()
	// The policy allows exactly the one inline style sheet, data: images and posting the
	// form back here; no scripts at all.
	csp = func() string {
		sum := sha256.Sum256([]byte(style))
		return "default-src 'none'; img-src data:; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
			"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	}()
)

// maxForm bounds what a form post may carry.
const maxForm = 16 << 10

// NewHandler serves /web/….
func NewHandler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &handler{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /web/invite/{secret}", h.showInvite)
	mux.HandleFunc("POST /web/invite/{secret}", h.completeInvite)
	mux.HandleFunc("GET /v1/webapi/oidc/callback", h.ssoCallback("oidc"))
	mux.HandleFunc("GET /v1/webapi/github/callback", h.ssoCallback("github"))
	mux.HandleFunc("/web/", func(w http.ResponseWriter, _ *http.Request) {
		h.render(w, http.StatusNotFound, "message.html", messagePage{Title: "Page not found", Message: "There is nothing here."})
	})
	return mux
}

type handler struct{ cfg Config }

// invitePage is the data of invite.html.
type invitePage struct {
	Style     template.CSS
	Info      *auth.InviteInfo
	QR        template.URL
	Error     string
	MinLength int
	Expires   string
}

// messagePage is the data of message.html: the end of the flow, or why it cannot start.
type messagePage struct {
	Style   template.CSS
	Title   string
	Message string
	Command string
	OK      bool
}

func (h *handler) showInvite(w http.ResponseWriter, r *http.Request) {
	h.invitePage(w, r, http.StatusOK, "")
}

func (h *handler) invitePage(w http.ResponseWriter, r *http.Request, status int, formErr string) {
	info, err := h.cfg.Invites.Invite(r.Context(), r.PathValue("secret"))
	if err != nil {
		h.fail(w, err)
		return
	}
	page := invitePage{Info: info, Error: formErr, MinLength: auth.MinPasswordLength, Expires: info.Expires.UTC().Format("2006-01-02 15:04 MST")}
	if info.OTP {
		// Four pixels per module: sharp at its natural size, about 200 pixels wide.
		png, err := qrcode.Encode(info.OTPURL, qrcode.Medium, -4)
		if err != nil {
			h.fail(w, err)
			return
		}
		page.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	}
	h.render(w, status, "invite.html", page)
}

func (h *handler) completeInvite(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		h.render(w, http.StatusBadRequest, "message.html", messagePage{Title: "Bad request", Message: "The form could not be read."})
		return
	}
	user, err := h.cfg.Invites.CompleteInvite(r.Context(), auth.CompleteInviteRequest{
		Secret:          r.PathValue("secret"),
		Password:        r.PostForm.Get("password"),
		PasswordConfirm: r.PostForm.Get("password_confirm"),
		OTPCode:         r.PostForm.Get("otp_code"),
		Addr:            r.RemoteAddr,
	})
	switch {
	case err == nil:
		h.render(w, http.StatusOK, "message.html", messagePage{OK: true, Title: "Your account is ready",
			Message: "Log in from a terminal with tsh:", Command: "tsh login --proxy=" + h.cfg.ProxyAddr + " --user=" + user})
	case errs.IsBadParameter(err) || errs.IsLimitExceeded(err):
		// Show the form again with what to fix; the OTP secret stays the same.
		h.invitePage(w, r, errs.HTTPStatus(err), sentence(err.Error()))
	default:
		h.fail(w, err)
	}
}

// fail shows why the page cannot be used. Messages of internal errors stay in the log.
func (h *handler) fail(w http.ResponseWriter, err error) {
	status := errs.HTTPStatus(err)
	page := messagePage{Title: "This invite link cannot be used", Message: sentence(err.Error())}
	if status == http.StatusInternalServerError {
		h.cfg.Logger.Error("invite page", "error", err)
		page = messagePage{Title: "Something went wrong", Message: "The server could not complete the request. Try again in a moment."}
	}
	h.render(w, status, "message.html", page)
}

func (h *handler) render(w http.ResponseWriter, status int, name string, data any) {
	switch d := data.(type) {
	case invitePage:
		d.Style = template.CSS(style)
		data = d
	case messagePage:
		d.Style = template.CSS(style)
		data = d
	}
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		h.cfg.Logger.Error("rendering page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", csp)
	// The URL holds the invite secret: keep it out of Referer headers and caches.
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// group writes a base32 secret in blocks of four, as authenticator apps show them.
func group(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sentence starts an error message with a capital letter, for a page.
func sentence(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}
