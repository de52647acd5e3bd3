package errs

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestKinds(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		kind  Kind
		exit  int
		http  int
		grpc  codes.Code
		text  string
		cause error
	}{
		{"nil", nil, Unknown, 0, 500, codes.OK, "", nil},
		{"plain", io.EOF, Unknown, 1, 500, codes.Internal, "EOF", nil},
		{"not found", NotFoundf("role %q not found", "x"), NotFound, 1, 404, codes.NotFound, `role "x" not found`, nil},
		{"exists", AlreadyExistsf("role 'x' already exists"), AlreadyExists, 1, 409, codes.AlreadyExists, "role 'x' already exists", nil},
		{"denied", AccessDeniedf("access denied to role"), AccessDenied, 1, 403, codes.PermissionDenied, "access denied to role", nil},
		{"bad", BadParameterf("bad: %w", io.EOF), BadParameter, 1, 400, codes.InvalidArgument, "bad: EOF", io.EOF},
		{"cas", CompareFailedf("revision changed"), CompareFailed, 1, 409, codes.Aborted, "revision changed", nil},
		{"limit", LimitExceededf("slow down"), LimitExceeded, 1, 429, codes.ResourceExhausted, "slow down", nil},
		{"authn", NotAuthenticatedf("expired"), NotAuthenticated, 1, 401, codes.Unauthenticated, "expired", nil},
		{"wrapped twice", fmt.Errorf("loading: %w", NotFoundf("gone")), NotFound, 1, 404, codes.NotFound, "loading: gone", nil},
		{"wrap", Wrap(AccessDenied, io.ErrUnexpectedEOF), AccessDenied, 1, 403, codes.PermissionDenied, "unexpected EOF", io.ErrUnexpectedEOF},
		{"usage", &UsageError{Err: errors.New("unknown flag")}, Unknown, 2, 500, codes.Internal, "unknown flag", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.kind {
				t.Errorf("KindOf = %v, want %v", got, tt.kind)
			}
			if got := ExitCode(tt.err); got != tt.exit {
				t.Errorf("ExitCode = %d, want %d", got, tt.exit)
			}
			if tt.err != nil {
				if got := HTTPStatus(tt.err); got != tt.http {
					t.Errorf("HTTPStatus = %d, want %d", got, tt.http)
				}
				if got := tt.err.Error(); got != tt.text {
					t.Errorf("Error() = %q, want %q", got, tt.text)
				}
			}
			if got := GRPCCode(tt.err); got != tt.grpc {
				t.Errorf("GRPCCode = %v, want %v", got, tt.grpc)
			}
			if tt.err != nil && tt.kind != Unknown && FromGRPCCode(GRPCCode(tt.err)) != tt.kind {
				t.Errorf("FromGRPCCode does not invert GRPCCode for %v", tt.kind)
			}
			if tt.cause != nil && !errors.Is(tt.err, tt.cause) {
				t.Errorf("errors.Is(err, %v) = false", tt.cause)
			}
		})
	}
	if Wrap(NotFound, nil) != nil {
		t.Error("Wrap(nil) != nil")
	}
	_ = http.StatusOK
}
