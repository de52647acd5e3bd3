package proxy

import (
	"net/http"

	"github.com/keyport/keyport/internal/errs"
	"github.com/keyport/keyport/internal/kubestatus"
)

// writeStatus answers with a Kubernetes Status object.
func writeStatus(w http.ResponseWriter, code int, msg string) { kubestatus.Write(w, code, msg) }

// writeError maps an error's category to a Status.
func writeError(w http.ResponseWriter, err error) {
	code := errs.HTTPStatus(err)
	msg := err.Error()
	if code == http.StatusInternalServerError {
		msg = "internal error"
	}
	writeStatus(w, code, msg)
}
