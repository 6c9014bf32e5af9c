package credsource

import (
	"context"
	"strings"
	"sync"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// tokenTrace records the outcome of the IMDSv2 token requests (PUT
// /latest/api/token) made during one Fetch, see classify.
type tokenTrace struct {
	mu      sync.Mutex
	status  int  // HTTP status of the last token response, 0 if none
	sendErr bool // the last token request got no response at all
	seen    bool
}

type tokenTraceKey struct{}

func withTokenTrace(ctx context.Context) (context.Context, *tokenTrace) {
	tr := &tokenTrace{}
	return context.WithValue(ctx, tokenTraceKey{}, tr), tr
}

// lastFailure returns the last token request's status (or that it got no
// response) if that request failed.
func (t *tokenTrace) lastFailure() (status int, sendErr, failed bool) {
	if t == nil {
		return 0, false, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.seen {
		return 0, false, false
	}
	failed = t.sendErr || t.status < 200 || t.status >= 300
	return t.status, t.sendErr, failed
}

func (t *tokenTrace) record(status int, sendErr bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status, t.sendErr, t.seen = status, sendErr, true
}

// addTokenTrace is an IMDS client API option: a deserialize-step middleware
// that, for token requests, records the response status (or its absence) in
// the tokenTrace found in the context. It sees every attempt, including the
// SDK's retries.
func addTokenTrace(stack *middleware.Stack) error {
	return stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("KvsrelayTokenTrace",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
			middleware.DeserializeOutput, middleware.Metadata, error,
		) {
			out, md, err := next.HandleDeserialize(ctx, in)
			tr, _ := ctx.Value(tokenTraceKey{}).(*tokenTrace)
			req, _ := in.Request.(*smithyhttp.Request)
			if tr == nil || req == nil || !strings.HasSuffix(req.URL.Path, "/api/token") {
				return out, md, err
			}
			// On a send failure smithy still hands up a response, with
			// status 0.
			status := 0
			if resp, ok := out.RawResponse.(*smithyhttp.Response); ok && resp != nil && resp.Response != nil {
				status = resp.StatusCode
			}
			tr.record(status, status == 0)
			return out, md, err
		}), middleware.After)
}
