// Package imdsfake is a fake EC2 instance metadata service for tests: the
// IMDSv2 token flow and the IAM role credential paths, issuing fresh
// credentials that rotate like the real service, with switchable faults.
//
// It listens on 127.0.0.1 on a kernel-chosen port. Typical use:
//
//	srv := imdsfake.Start(t, imdsfake.Options{Lifetime: time.Hour})
//	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL())
//	...
//	srv.SetFault(imdsfake.FaultServerError)
//	iss, ok := srv.Lookup(accessKeyID) // was this key issued? when does it expire?
//	n := srv.Requests(imdsfake.PathToken)
//
// Served paths:
//
//	PUT /latest/api/token                              IMDSv2 session token; needs header
//	    X-aws-ec2-metadata-token-ttl-seconds (1..21600), else 400
//	GET /latest/meta-data/iam/security-credentials/    role list, one per line (404 if no role)
//	GET /latest/meta-data/iam/security-credentials/R   credentials JSON for role R (404 if unknown)
//
// GET requests need a valid X-aws-ec2-metadata-token header (401 without),
// unless Options.AllowIMDSv1 is set or FaultIMDSv1Only is active.
package imdsfake

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/credfakes"
)

// Paths the fake serves, as counted by Requests.
const (
	PathToken    = "/latest/api/token"
	PathRoleList = "/latest/meta-data/iam/security-credentials/"
)

// PathRole is the credentials path of role.
func PathRole(role string) string { return PathRoleList + role }

// Header names of the IMDSv2 token flow.
const (
	HeaderTokenTTL = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	HeaderToken    = "X-Aws-Ec2-Metadata-Token"
)

// Fault is a failure mode, switched at runtime with SetFault.
type Fault int

const (
	// FaultNone: behave like a healthy IMDS.
	FaultNone Fault = iota
	// FaultConnRefused: every connection is reset (RST) as soon as it is
	// accepted, and requests on already-open connections get their
	// connection closed without an answer. Clients see a connection error
	// as with a refused connection, while the port stays reserved so that
	// switching back is race-free.
	FaultConnRefused
	// FaultHang: requests get no answer until the client gives up (the
	// request context ends) or the server is closed.
	FaultHang
	// FaultServerError: every request gets HTTP 500.
	FaultServerError
	// FaultMalformed: the credentials path answers 200 with broken JSON
	// (token and role list still work).
	FaultMalformed
	// FaultThrottle: every request gets HTTP 429 Too Many Requests.
	FaultThrottle
	// FaultIMDSv1Only: the token endpoint does not exist (PUT answers 404)
	// and GETs are served without a token, like an IMDSv1-only server.
	FaultIMDSv1Only
	// FaultExpired: the credentials path answers with the current
	// credentials (real key, secret and token) but an expiration one minute
	// in the past: a well-formed answer the client must refuse, with the
	// secrets in hand (for checks that refusals never print them).
	FaultExpired
)

func (f Fault) String() string {
	switch f {
	case FaultNone:
		return "none"
	case FaultConnRefused:
		return "conn-refused"
	case FaultHang:
		return "hang"
	case FaultServerError:
		return "server-error"
	case FaultMalformed:
		return "malformed"
	case FaultThrottle:
		return "throttle"
	case FaultIMDSv1Only:
		return "imdsv1-only"
	case FaultExpired:
		return "expired"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Options configures the fake. Zero fields take the defaults noted.
type Options struct {
	// Roles attached to the instance; the first one is what clients pick.
	// Nil: []string{"kvsrelay-test-role"}. Use SetRoles(nil) for "no role".
	Roles []string
	// Lifetime of issued credentials. Zero: 6 h (like real IMDS).
	Lifetime time.Duration
	// RotateBefore: new credentials are issued on the first request made
	// when the current ones have less than this left. Zero: 5 min (real
	// IMDS makes new credentials available at least 5 min before expiry).
	// Must be smaller than Lifetime, or every request rotates.
	RotateBefore time.Duration
	// AllowIMDSv1 serves GETs that carry no token.
	AllowIMDSv1 bool
	// Now is the fake's clock. Nil: time.Now.
	Now func() time.Time
}

// Issued is one set of credentials the fake handed out, for Role.
type Issued struct {
	Role string
	credfakes.Issued
}

// Server is a running fake IMDS. All methods are safe for concurrent use.
type Server struct {
	opts     Options
	ln       *credfakes.ResettingListener
	srv      *http.Server
	url      string
	closing  chan struct{}
	closeMu  sync.Once
	serveErr chan error

	mu       sync.Mutex
	fault    Fault
	roles    []string
	issuers  map[string]*credfakes.Issuer // role -> its rotating credentials
	issued   []Issued                     // from every role, oldest first
	tokens   map[string]time.Time         // token -> expiry
	requests map[string]int               // path -> count
	total    int
	arrived  chan struct{} // closed and replaced on every request
}

// New starts a fake on 127.0.0.1 with a kernel-chosen port.
func New(opts Options) (*Server, error) {
	if opts.Roles == nil {
		opts.Roles = []string{"kvsrelay-test-role"}
	}
	if opts.Lifetime == 0 {
		opts.Lifetime = 6 * time.Hour
	}
	if opts.RotateBefore == 0 {
		opts.RotateBefore = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("imdsfake: listen: %w", err)
	}
	s := &Server{
		opts:     opts,
		url:      "http://" + ln.Addr().String(),
		closing:  make(chan struct{}),
		serveErr: make(chan error, 1),
		roles:    append([]string(nil), opts.Roles...),
		issuers:  map[string]*credfakes.Issuer{},
		tokens:   map[string]time.Time{},
		requests: map[string]int{},
		arrived:  make(chan struct{}),
	}
	s.ln = &credfakes.ResettingListener{Listener: ln, Reset: s.refusing}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.serveErr <- s.srv.Serve(s.ln) }()
	return s, nil
}

// Start is New for tests: it fails tb on error and closes the fake in
// tb.Cleanup.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

// URL is the endpoint to give clients, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.url }

// Close stops the fake, releasing hung requests. Safe to call twice.
func (s *Server) Close() {
	s.closeMu.Do(func() {
		close(s.closing)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		<-s.serveErr
	})
}

// SetFault switches the failure mode; FaultNone heals.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// SetRoles replaces the attached roles (nil or empty: no role attached).
func (s *Server) SetRoles(roles []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles = append([]string(nil), roles...)
}

// Rotate makes the next credentials request for any role issue new
// credentials, whatever the time left on the current ones.
func (s *Server) Rotate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, iss := range s.issuers {
		iss.Rotate()
	}
}

// Issued returns every credential issued so far, oldest first.
func (s *Server) Issued() []Issued {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Issued(nil), s.issued...)
}

// Lookup finds an issued credential by access key id.
func (s *Server) Lookup(accessKeyID string) (Issued, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, is := range s.issued {
		if is.AccessKeyID == accessKeyID {
			return is, true
		}
	}
	return Issued{}, false
}

// Requests counts requests for path (any method, any outcome, including
// those failed by a fault; connections reset by FaultConnRefused before a
// request was read are not counted).
func (s *Server) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// TotalRequests counts every request received.
func (s *Server) TotalRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// WaitForRequests blocks until the fake has received at least n requests in
// total, or ctx ends (then it returns ctx.Err()).
func (s *Server) WaitForRequests(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		total, arrived := s.total, s.arrived
		s.mu.Unlock()
		if total >= n {
			return nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Server) refusing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault == FaultConnRefused
}

// ServeHTTP implements the fake IMDS.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	s.total++
	close(s.arrived)
	s.arrived = make(chan struct{})
	fault := s.fault
	s.mu.Unlock()

	switch fault {
	case FaultConnRefused:
		credfakes.DropConnection(w)
		return
	case FaultHang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	case FaultServerError:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	case FaultThrottle:
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}

	if r.URL.Path == PathToken {
		s.serveToken(w, r, fault)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if fault != FaultIMDSv1Only && !s.opts.AllowIMDSv1 && !s.validToken(r.Header.Get(HeaderToken)) {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	switch {
	case r.URL.Path == PathRoleList || r.URL.Path == strings.TrimSuffix(PathRoleList, "/"):
		s.serveRoleList(w)
	case strings.HasPrefix(r.URL.Path, PathRoleList):
		s.serveRole(w, strings.TrimPrefix(r.URL.Path, PathRoleList), fault)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, fault Fault) {
	if fault == FaultIMDSv1Only {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPut {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get(HeaderTokenTTL))
	if err != nil || ttl < 1 || ttl > 21600 {
		http.Error(w, "missing or invalid "+HeaderTokenTTL, http.StatusBadRequest)
		return
	}
	tok := credfakes.RandomString(44)
	s.mu.Lock()
	s.tokens[tok] = s.opts.Now().Add(time.Duration(ttl) * time.Second)
	s.mu.Unlock()
	w.Header().Set(HeaderTokenTTL, strconv.Itoa(ttl))
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(tok))
}

func (s *Server) validToken(tok string) bool {
	if tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tok]
	return ok && s.opts.Now().Before(exp)
}

func (s *Server) serveRoleList(w http.ResponseWriter) {
	s.mu.Lock()
	roles := append([]string(nil), s.roles...)
	s.mu.Unlock()
	if len(roles) == 0 {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(strings.Join(roles, "\n")))
}

// credentialDoc is the JSON shape real IMDS serves.
type credentialDoc struct {
	Code            string
	LastUpdated     string
	Type            string
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	Token           string
	Expiration      string
}

const rfc3339Seconds = "2006-01-02T15:04:05Z"

func (s *Server) serveRole(w http.ResponseWriter, role string, fault Fault) {
	is, ok := s.credentialsFor(role)
	if !ok {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if fault == FaultExpired {
		is.Expiration = s.opts.Now().Add(-time.Minute).Truncate(time.Second)
	}
	if fault == FaultMalformed {
		// Truncated document: valid start, no end.
		_, _ = w.Write([]byte(`{"Code":"Success","AccessKeyId":"` + is.AccessKeyID[:4]))
		return
	}
	_ = json.NewEncoder(w).Encode(credentialDoc{
		Code:            "Success",
		LastUpdated:     is.IssuedAt.UTC().Format(rfc3339Seconds),
		Type:            "AWS-HMAC",
		AccessKeyID:     is.AccessKeyID,
		SecretAccessKey: is.SecretAccessKey,
		Token:           is.Token,
		Expiration:      is.Expiration.UTC().Format(rfc3339Seconds),
	})
}

// credentialsFor returns role's current credentials, issuing new ones when
// there are none or the current ones have less than RotateBefore left.
func (s *Server) credentialsFor(role string) (Issued, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	known := false
	for _, r := range s.roles {
		known = known || r == role
	}
	if !known {
		return Issued{}, false
	}
	iss := s.issuers[role]
	if iss == nil {
		iss = credfakes.NewIssuer(credfakes.IssuerOptions{
			Lifetime: s.opts.Lifetime, RotateBefore: s.opts.RotateBefore, Now: s.opts.Now,
			TokenLength: 604, // longer than the other fakes' tokens: IMDS role tokens run long
			// Called inside Current, with s.mu held by this function.
			OnIssue: func(c credfakes.Issued) { s.issued = append(s.issued, Issued{Role: role, Issued: c}) },
		})
		s.issuers[role] = iss
	}
	return Issued{Role: role, Issued: iss.Current()}, true
}
