package credsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Sentinel causes, usable with errors.Is on anything Fetch returns.
var (
	// ErrNoRole: no IAM role attached, or the configured role does not exist.
	ErrNoRole = errors.New("no IAM role")
	// ErrIMDSv1Only: the IMDSv2 token request was refused (403/404/405), so
	// the server only speaks IMDSv1, which is not allowed by default.
	ErrIMDSv1Only = errors.New("IMDS refused the IMDSv2 token request (IMDSv1-only server); IMDSv1 is not allowed unless explicitly enabled")
	// ErrMalformed: IMDS answered, but with a document that cannot be used.
	ErrMalformed = errors.New("malformed IMDS answer")
)

// Error is what Fetch returns: the operation that failed, whether trying
// again later may help, and the cause (never holding secrets).
type Error struct {
	Op        string
	Transient bool
	Err       error
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// IsTransient reports whether err is worth retrying soon: connection
// refused/reset, timeouts, HTTP 5xx, 429 throttling, 401 (token expired in
// flight) and malformed answers. Permanent errors are configuration problems
// (no role, unknown role, IMDSv1-only server while IMDSv2 is required, other
// 4xx, bad profile) that need a human; retrying them often only adds load.
// Context cancellation by the caller is neither: IsTransient returns false.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Transient
	}
	return rawTransient(err)
}

// classify wraps an SDK error in *Error with its transient flag. tr holds
// what the IMDSv2 token requests of this call did: the SDK wraps token
// failures in an error type without Unwrap, so their HTTP status and
// transport error are invisible to errors.As and are taken from tr instead.
func classify(ctx context.Context, op string, err error, tr *tokenTrace) error {
	if ctx.Err() != nil {
		// The caller gave up; report that rather than the SDK's view.
		return &Error{Op: op, Err: fmt.Errorf("%w (%v)", ctx.Err(), err)}
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if visibleCause(err) {
		return &Error{Op: op, Transient: rawTransient(err), Err: err}
	}
	if status, sendErr, failed := tr.lastFailure(); failed {
		switch {
		case sendErr:
			return &Error{Op: op, Transient: true, Err: err}
		case status == http.StatusForbidden || status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
			return &Error{Op: op, Err: fmt.Errorf("%w: %v", ErrIMDSv1Only, err)}
		default:
			return &Error{Op: op, Transient: transientStatus(status), Err: err}
		}
	}
	return &Error{Op: op, Transient: rawTransient(err), Err: err}
}

func statusOf(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func transientStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusUnauthorized
}

// visibleCause reports whether err carries an HTTP status or a transport
// error that errors.As can see.
func visibleCause(err error) bool {
	var send *smithyhttp.RequestSendError
	var netErr net.Error
	return statusOf(err) != 0 || errors.As(err, &send) || errors.As(err, &netErr)
}

func rawTransient(err error) bool {
	if errors.Is(err, context.Canceled) {
		// Could be the SDK's own operation timeout cancelling; without the
		// caller's context we cannot tell, and retrying is harmless.
		return true
	}
	if code := statusOf(err); code != 0 {
		return transientStatus(code)
	}
	var send *smithyhttp.RequestSendError
	var canceled *smithy.CanceledError
	var netErr net.Error
	switch {
	case errors.As(err, &send), errors.As(err, &canceled),
		errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr):
		return true
	}
	// Errors without a recognisable network or HTTP cause come from
	// configuration (unknown profile, no provider in the chain).
	return false
}
