package credsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
	"github.com/aws/smithy-go"
)

// ErrMalformedChain: the default chain's source (container endpoint, STS,
// credential_process) answered with something that is not usable
// credentials.
var ErrMalformedChain = errors.New("malformed answer from the credential source")

// transientAPICodes are AWS error codes (STS's, for web identity) after which
// asking again later may succeed although the HTTP status is a 4xx:
// throttling, timeouts, and a web identity token that expired or could not
// be checked. The token file is rewritten by its owner (the kubelet for
// IRSA, every hour or so) and read anew on every attempt, so an expired
// token is an outage of the rotation, not a configuration error.
var transientAPICodes = func() map[string]bool {
	m := map[string]bool{"ExpiredTokenException": true, "IDPCommunicationError": true}
	for c := range retry.DefaultThrottleErrorCodes {
		m[c] = true
	}
	for c := range retry.DefaultRetryableErrorCodes {
		m[c] = true
	}
	return m
}()

// classifyChain is classify for the default chain's providers. It knows
// their error shapes, and rewrites the one that quotes what the source
// answered (a credential_process output that is not valid JSON is put in
// the SDK's message verbatim, secrets included).
func classifyChain(ctx context.Context, err error) error {
	const op = "default credential chain"
	if ctx.Err() != nil {
		return classify(ctx, op, err, nil)
	}
	var perr *processcreds.ProviderError
	if errors.As(err, &perr) {
		return classifyProcess(perr)
	}
	var api smithy.APIError
	if errors.As(err, &api) && transientAPICodes[api.ErrorCode()] {
		return &Error{Op: op, Transient: true, Err: err}
	}
	var de *smithy.DeserializationError
	if errors.As(err, &de) {
		return &Error{Op: op, Transient: true, Err: fmt.Errorf("%w: %v", ErrMalformedChain, err)}
	}
	return classify(ctx, op, err, nil)
}

// classifyProcess sorts credential_process failures: a program that cannot
// be run (not found, not executable: exit 126/127 from the shell) needs a
// human; any other non-zero exit, a timeout or unusable output may be the
// program's own backend failing, so it is retried.
func classifyProcess(perr *processcreds.ProviderError) error {
	const op = "credential_process"
	var exitErr *exec.ExitError
	switch {
	case errors.As(perr, &exitErr):
		code := exitErr.ExitCode()
		if code == 126 || code == 127 {
			return &Error{Op: op, Err: fmt.Errorf("the command cannot be run (exit status %d from the shell: not found or not executable)", code)}
		}
		return &Error{Op: op, Transient: true, Err: fmt.Errorf("the command failed: %w", exitErr)}
	case strings.Contains(perr.Error(), "timed out"):
		return &Error{Op: op, Transient: true, Err: errors.New("the command timed out")}
	}
	// Output problems. The SDK's message for output that is not JSON holds
	// the output itself: describe it without echoing it.
	what := "not usable"
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(perr, &se):
		what = fmt.Sprintf("not valid JSON (syntax error at byte %d)", se.Offset)
	case errors.As(perr, &te):
		what = fmt.Sprintf("not a credentials document (field %q has the wrong type)", te.Field)
	case strings.Contains(perr.Error(), "wrong version"):
		what = "not Version 1"
	case strings.Contains(perr.Error(), "missing AccessKeyId"):
		what = "missing AccessKeyId"
	case strings.Contains(perr.Error(), "missing SecretAccessKey"):
		what = "missing SecretAccessKey"
	}
	return &Error{Op: op, Transient: true, Err: fmt.Errorf("%w: the output is %s (not shown: it may hold secrets)", ErrMalformedChain, what)}
}
