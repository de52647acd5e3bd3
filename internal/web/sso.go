package web

import (
	"context"
	"net/http"

	"github.com/keyport/keyport/internal/errs"
)

// SSO is what the SSO callback needs of the Auth Service.
type SSO interface {
	ValidateSSOCallback(ctx context.Context, addr, kind, state, code, idpError string) (string, error)
}

// ssoCallback is where an identity provider sends the browser back:
// /v1/webapi/{oidc,github}/callback?state=…&code=… (or ?error=…). A valid state sends the
// browser on to the client's loopback listener, which shows the outcome; an unknown or
// used state gets a page saying so.
func (h *handler) ssoCallback(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.cfg.SSO == nil {
			h.render(w, http.StatusNotFound, "message.html", messagePage{Title: "Page not found", Message: "There is nothing here."})
			return
		}
		q := r.URL.Query()
		idpErr := q.Get("error")
		if d := q.Get("error_description"); d != "" {
			idpErr += ": " + d
		}
		next, err := h.cfg.SSO.ValidateSSOCallback(r.Context(), r.RemoteAddr, kind, q.Get("state"), q.Get("code"), idpErr)
		if err != nil {
			status := errs.HTTPStatus(err)
			page := messagePage{Title: "Sign-in failed", Message: sentence(err.Error())}
			if status == http.StatusInternalServerError {
				h.cfg.Logger.Error("SSO callback", "error", err)
				page.Message = "The server could not complete the sign-in. Try again in a moment."
			}
			h.render(w, status, "message.html", page)
			return
		}
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, next, http.StatusFound)
	}
}
