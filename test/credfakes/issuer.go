// Package credfakes holds local stand-ins for the credential sources of the
// AWS SDK's default chain other than IMDS (see test/imdsfake for that one):
//
//   - ContainerServer: the container credentials endpoint the SDK reaches
//     through AWS_CONTAINER_CREDENTIALS_FULL_URI, shaped as the ECS agent,
//     the EKS Pod Identity agent or the Greengrass token exchange service
//     answer, checking the Authorization header the SDK sends
//     (AWS_CONTAINER_AUTHORIZATION_TOKEN or _TOKEN_FILE);
//   - STSServer: a minimal STS answering AssumeRoleWithWebIdentity in the
//     query protocol's XML, for IRSA (AWS_WEB_IDENTITY_TOKEN_FILE and
//     AWS_ROLE_ARN, reached through AWS_ENDPOINT_URL_STS);
//   - Process: a credential_process program (fakecredprocess, built on
//     first use) whose answers and faults the test drives through a state
//     folder.
//
// Every fake issues credentials through an Issuer, which rotates them the
// way the real services do: the same credentials until less than
// RotateBefore is left, then new ones. Servers listen on 127.0.0.1 only.
package credfakes

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Fault is a failure mode a fake is switched into with SetFault.
type Fault int

const (
	// FaultNone: behave like the healthy service.
	FaultNone Fault = iota
	// FaultDown: connections are reset as soon as they are accepted
	// (servers) or the program exits 1 with a message on stderr (Process):
	// the endpoint is down.
	FaultDown
	// FaultServerError: HTTP 500 (servers); Process exits 2.
	FaultServerError
	// FaultThrottle: HTTP 429 (container) or STS's 400 Throttling error.
	FaultThrottle
	// FaultMalformed: a 200 answer (exit 0 for Process) whose body is cut
	// off in the middle of the credentials document.
	FaultMalformed
	// FaultExpired: the current credentials with an expiration one minute
	// in the past.
	FaultExpired
)

func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultDown:
		return "down"
	case FaultServerError:
		return "server error"
	case FaultThrottle:
		return "throttle"
	case FaultMalformed:
		return "malformed"
	case FaultExpired:
		return "expired"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Issued is one set of credentials a fake handed out.
type Issued struct {
	AccessKeyID     string
	SecretAccessKey string
	Token           string
	IssuedAt        time.Time
	Expiration      time.Time // whole seconds, as the services send it
}

// IssuerOptions configures an Issuer. Zero fields take the defaults.
type IssuerOptions struct {
	// Lifetime of each credential (default 6 h).
	Lifetime time.Duration
	// RotateBefore: new credentials are issued once the current ones have
	// less than this left (default 5 min).
	RotateBefore time.Duration
	// Now is the fake's clock (default time.Now).
	Now func() time.Time
	// TokenLength is the session token's length in characters (default
	// 304). Real tokens vary from a few hundred to over a thousand; a long
	// one checks that nothing truncates it.
	TokenLength int
	// OnIssue, when set, is called with every new credential, inside
	// Current (with the Issuer's lock held: it must not call back into the
	// Issuer). A fake serving several issuers keeps one ordered log with it.
	OnIssue func(Issued)
}

// Issuer hands out rotating credentials. It is safe for concurrent use.
type Issuer struct {
	opts    IssuerOptions
	mu      sync.Mutex
	current *Issued
	issued  []Issued
}

// NewIssuer applies the defaults to opts.
func NewIssuer(opts IssuerOptions) *Issuer {
	if opts.Lifetime == 0 {
		opts.Lifetime = 6 * time.Hour
	}
	if opts.RotateBefore == 0 {
		opts.RotateBefore = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.TokenLength == 0 {
		opts.TokenLength = 304
	}
	return &Issuer{opts: opts}
}

// Current returns the credentials to serve now, issuing new ones when there
// are none or the current ones have less than RotateBefore left.
func (i *Issuer) Current() Issued {
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.opts.Now()
	if i.current != nil && i.current.Expiration.Sub(now) >= i.opts.RotateBefore {
		return *i.current
	}
	is := Issued{
		AccessKeyID:     "ASIA" + RandomString(16),
		SecretAccessKey: RandomString(40),
		Token:           "IQoJ" + RandomString(max(i.opts.TokenLength-4, 0)),
		IssuedAt:        now,
		Expiration:      now.Add(i.opts.Lifetime).Truncate(time.Second),
	}
	i.issued = append(i.issued, is)
	i.current = &is
	if i.opts.OnIssue != nil {
		i.opts.OnIssue(is)
	}
	return is
}

// Now reads the issuer's clock.
func (i *Issuer) Now() time.Time { return i.opts.Now() }

// Rotate makes the next Current issue new credentials.
func (i *Issuer) Rotate() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.current = nil
}

// Issued returns every credential issued so far, oldest first.
func (i *Issuer) Issued() []Issued {
	i.mu.Lock()
	defer i.mu.Unlock()
	return append([]Issued(nil), i.issued...)
}

// Lookup finds an issued credential by access key id.
func (i *Issuer) Lookup(accessKeyID string) (Issued, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	for _, is := range i.issued {
		if is.AccessKeyID == accessKeyID {
			return is, true
		}
	}
	return Issued{}, false
}

// issuerState is an Issuer's state as fakecredprocess keeps it in a file
// between runs.
type issuerState struct {
	Lifetime     time.Duration
	RotateBefore time.Duration
	Current      *Issued
	Issued       []Issued
}

func (i *Issuer) marshal() ([]byte, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return json.Marshal(issuerState{Lifetime: i.opts.Lifetime, RotateBefore: i.opts.RotateBefore, Current: i.current, Issued: i.issued})
}

func unmarshalIssuer(data []byte) (*Issuer, error) {
	var st issuerState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, err
	}
	i := NewIssuer(IssuerOptions{Lifetime: st.Lifetime, RotateBefore: st.RotateBefore})
	i.current, i.issued = st.Current, st.Issued
	return i, nil
}

// rfc3339Seconds is the expiration format every source uses.
const rfc3339Seconds = "2006-01-02T15:04:05Z"

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

// RandomString is n characters of the alphabet AWS uses in key ids, for
// fake keys, tokens and request ids.
func RandomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("credfakes: crypto/rand failed: %v", err))
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
