// Package errs owns Keyport's error categories: not found, already exists, access
// denied, bad parameter, compare failed and limit exceeded. Domain code wraps causes with
// %w and tags them with a category; only the edges (CLI exit codes, HTTP statuses, gRPC
// codes) turn a category into something a user or a peer sees.
package errs

import (
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Kind is the category of an error.
type Kind int

// The categories. Unknown means "an internal failure": it maps to exit 1, HTTP 500 and
// gRPC Internal.
const (
	Unknown Kind = iota
	NotFound
	AlreadyExists
	AccessDenied
	BadParameter
	CompareFailed
	LimitExceeded
	NotAuthenticated
)

var kindNames = map[Kind]string{
	Unknown:          "unknown",
	NotFound:         "not found",
	AlreadyExists:    "already exists",
	AccessDenied:     "access denied",
	BadParameter:     "bad parameter",
	CompareFailed:    "compare failed",
	LimitExceeded:    "limit exceeded",
	NotAuthenticated: "not authenticated",
}

func (k Kind) String() string { return kindNames[k] }

// Error is a categorised error. Msg is safe to show to a user; Err is the cause, which
// may carry internal detail and is reachable with errors.Unwrap.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	// Msg already holds the cause's text when New formatted it with %w.
	if e.Msg == "" && e.Err != nil {
		return e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k with a formatted message. A %w verb in format wraps
// its argument as the cause.
func New(k Kind, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: k, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// Wrap tags err with kind k, keeping it as the cause. Wrap(k, nil) is nil.
func Wrap(k Kind, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Kind: k, Err: err}
}

// NotFoundf, AlreadyExistsf, … are shorthands for New with a fixed kind.
func NotFoundf(format string, args ...any) error      { return New(NotFound, format, args...) }
func AlreadyExistsf(format string, args ...any) error { return New(AlreadyExists, format, args...) }
func AccessDeniedf(format string, args ...any) error  { return New(AccessDenied, format, args...) }
func BadParameterf(format string, args ...any) error  { return New(BadParameter, format, args...) }
func CompareFailedf(format string, args ...any) error { return New(CompareFailed, format, args...) }
func LimitExceededf(format string, args ...any) error { return New(LimitExceeded, format, args...) }
func NotAuthenticatedf(format string, args ...any) error {
	return New(NotAuthenticated, format, args...)
}

// KindOf returns the kind of the outermost categorised error in err's chain.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Unknown
}

// Is reports whether err's category is k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// IsNotFound, IsAlreadyExists, … are shorthands for Is.
func IsNotFound(err error) bool      { return Is(err, NotFound) }
func IsAlreadyExists(err error) bool { return Is(err, AlreadyExists) }
func IsAccessDenied(err error) bool  { return Is(err, AccessDenied) }
func IsBadParameter(err error) bool  { return Is(err, BadParameter) }
func IsCompareFailed(err error) bool { return Is(err, CompareFailed) }
func IsLimitExceeded(err error) bool { return Is(err, LimitExceeded) }

// ExitCode maps an error to a CLI exit code: 0 for nil, 2 for bad usage (see UsageError),
// 1 for everything else (SPEC section 2).
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var u *UsageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// UsageError marks a bad command line: exit code 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// HTTPStatus maps an error's kind to an HTTP status code.
func HTTPStatus(err error) int {
	switch KindOf(err) {
	case NotFound:
		return http.StatusNotFound
	case AlreadyExists, CompareFailed:
		return http.StatusConflict
	case AccessDenied:
		return http.StatusForbidden
	case NotAuthenticated:
		return http.StatusUnauthorized
	case BadParameter:
		return http.StatusBadRequest
	case LimitExceeded:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// GRPCCode maps an error's kind to a gRPC status code.
func GRPCCode(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	switch KindOf(err) {
	case NotFound:
		return codes.NotFound
	case AlreadyExists:
		return codes.AlreadyExists
	case CompareFailed:
		return codes.Aborted
	case AccessDenied:
		return codes.PermissionDenied
	case NotAuthenticated:
		return codes.Unauthenticated
	case BadParameter:
		return codes.InvalidArgument
	case LimitExceeded:
		return codes.ResourceExhausted
	default:
		return codes.Internal
	}
}

// FromGRPCCode is the inverse of GRPCCode, used by clients to restore the category of an
// error that crossed the wire.
func FromGRPCCode(c codes.Code) Kind {
	switch c {
	case codes.NotFound:
		return NotFound
	case codes.AlreadyExists:
		return AlreadyExists
	case codes.Aborted:
		return CompareFailed
	case codes.PermissionDenied:
		return AccessDenied
	case codes.Unauthenticated:
		return NotAuthenticated
	case codes.InvalidArgument:
		return BadParameter
	case codes.ResourceExhausted:
		return LimitExceeded
	default:
		return Unknown
	}
}
