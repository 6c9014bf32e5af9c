package credsource

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/fielderr"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
)

const role = "kvsrelay-test-role"

// newIMDSSource gives every request a generous timeout: a local fake that
// answers can still take a while on a loaded machine (with -race), and a
// short timeout there fails a test that expects an answer. Only the tests
// of a hanging IMDS shorten it.
func newIMDSSource(t *testing.T, srv *imdsfake.Server, mod func(*Options)) *Source {
	t.Helper()
	o := Options{Kind: KindIMDS, Endpoint: srv.URL(), HTTPTimeout: 10 * time.Second}
	if mod != nil {
		mod(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func assertMatchesIssued(t *testing.T, srv *imdsfake.Server, c credfile.Credentials) {
	t.Helper()
	is, ok := srv.Lookup(c.AccessKeyID)
	if !ok {
		t.Fatalf("%v was never issued by the fake", c)
	}
	if c.SecretAccessKey != is.SecretAccessKey || c.SessionToken != is.Token || !c.Expires.Equal(is.Expiration) {
		t.Fatalf("fetched %v differs from issued credentials expiring %s", c, is.Expiration)
	}
}

func assertNoSecrets(t *testing.T, srv *imdsfake.Server, msg string) {
	t.Helper()
	for _, is := range srv.Issued() {
		if strings.Contains(msg, is.SecretAccessKey) || strings.Contains(msg, is.Token) || strings.Contains(msg, is.AccessKeyID) {
			t.Fatalf("message leaks credentials: %q", msg)
		}
	}
}

func TestFetchIMDSv2DiscoversRole(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{})
	s := newIMDSSource(t, srv, nil)

	c, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	assertMatchesIssued(t, srv, c)
	if srv.Requests(imdsfake.PathToken) != 1 || srv.Requests(imdsfake.PathRoleList) != 1 || srv.Requests(imdsfake.PathRole(role)) != 1 {
		t.Fatalf("requests: token %d list %d role %d, want 1 each", srv.Requests(imdsfake.PathToken), srv.Requests(imdsfake.PathRoleList), srv.Requests(imdsfake.PathRole(role)))
	}

	// A second Fetch asks IMDS again (no credential caching) and picks up
	// rotated credentials; the session token is reused.
	srv.Rotate()
	c2, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if c2.AccessKeyID == c.AccessKeyID {
		t.Fatal("second Fetch returned the old credentials after IMDS rotated")
	}
	assertMatchesIssued(t, srv, c2)
	if srv.Requests(imdsfake.PathRole(role)) != 2 {
		t.Fatalf("role requested %d times, want 2", srv.Requests(imdsfake.PathRole(role)))
	}
}

func TestFetchExplicitRoleSkipsListing(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{Roles: []string{"first", "second"}})
	s := newIMDSSource(t, srv, func(o *Options) { o.Role = "second" })
	c, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if is, _ := srv.Lookup(c.AccessKeyID); is.Role != "second" {
		t.Fatalf("credentials of role %q, want second", is.Role)
	}
	if n := srv.Requests(imdsfake.PathRoleList); n != 0 {
		t.Fatalf("role list requested %d times although the role was given", n)
	}
}

func TestFetchHonoursEndpointEnv(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{})
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL())
	s, err := New(Options{Kind: KindIMDS})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch via AWS_EC2_METADATA_SERVICE_ENDPOINT: %v", err)
	}
	assertMatchesIssued(t, srv, c)
}

func TestFetchErrors(t *testing.T) {
	tests := []struct {
		name      string
		setup     func(*imdsfake.Server)
		opts      func(*Options)
		transient bool
		is        error
		contains  string
	}{
		{name: "connection refused", setup: func(s *imdsfake.Server) { s.SetFault(imdsfake.FaultConnRefused) }, transient: true},
		{name: "hang", setup: func(s *imdsfake.Server) { s.SetFault(imdsfake.FaultHang) }, transient: true,
			opts: func(o *Options) { o.HTTPTimeout = 300 * time.Millisecond }},
		{name: "500", setup: func(s *imdsfake.Server) { s.SetFault(imdsfake.FaultServerError) }, transient: true, contains: "500"},
		{name: "429", setup: func(s *imdsfake.Server) { s.SetFault(imdsfake.FaultThrottle) }, transient: true, contains: "429"},
		{name: "malformed JSON", setup: func(s *imdsfake.Server) { s.SetFault(imdsfake.FaultMalformed) }, transient: true, is: ErrMalformed},
		{name: "IMDSv1-only refused", setup: func(s *imdsfake.Server) { s.SetFault(imdsfake.FaultIMDSv1Only) }, is: ErrIMDSv1Only},
		{name: "no role attached", setup: func(s *imdsfake.Server) { s.SetRoles(nil) }, is: ErrNoRole},
		{name: "unknown role", opts: func(o *Options) { o.Role = "nope" }, is: ErrNoRole, contains: `"nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imdsfake.ClearAWSEnv(t)
			srv := imdsfake.Start(t, imdsfake.Options{})
			// Issue credentials once so the leak check has something to look for.
			if _, err := newIMDSSource(t, srv, nil).Fetch(context.Background()); err != nil {
				t.Fatal(err)
			}
			s := newIMDSSource(t, srv, tt.opts)
			if tt.setup != nil {
				tt.setup(srv)
			}
			before := srv.TotalRequests()
			_, err := s.Fetch(context.Background())
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			checkFetchError(t, err, tt.transient, tt.is, tt.contains)
			assertNoSecrets(t, srv, err.Error())
			// The SDK's retries are bounded: a failing IMDS sees only a few
			// requests per Fetch.
			if n := srv.TotalRequests() - before; n > 2*DefaultMaxAttempts {
				t.Fatalf("one Fetch made %d requests, want at most %d", n, 2*DefaultMaxAttempts)
			}
		})
	}
}

func TestIMDSv1AllowedWhenAsked(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{})
	srv.SetFault(imdsfake.FaultIMDSv1Only)
	s := newIMDSSource(t, srv, func(o *Options) { o.AllowIMDSv1 = true })
	c, err := s.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch with IMDSv1 allowed: %v", err)
	}
	assertMatchesIssued(t, srv, c)
}

func TestFetchCanceled(t *testing.T) {
	imdsfake.ClearAWSEnv(t)
	srv := imdsfake.Start(t, imdsfake.Options{})
	srv.SetFault(imdsfake.FaultHang)
	s := newIMDSSource(t, srv, func(o *Options) { o.HTTPTimeout = time.Minute })
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the request is hanging in the server.
		wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer wcancel()
		_ = srv.WaitForRequests(wctx, 1)
		cancel()
	}()
	_, err := s.Fetch(ctx)
	if !errors.Is(err, context.Canceled) || IsTransient(err) {
		t.Fatalf("Fetch after cancel = %v (transient %v), want non-transient context.Canceled", err, IsTransient(err))
	}
}

func TestDefaultChain(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	t.Run("static keys from the environment", func(t *testing.T) {
		imdsfake.ClearAWSEnv(t)
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENVKEY000000WXYZ")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
		s, err := New(Options{Kind: KindDefault, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Fetch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if c.AccessKeyID != "AKIAENVKEY000000WXYZ" || c.SecretAccessKey != "envsecret" || !c.Expires.Equal(now.Add(StaticLifetime)) {
			t.Fatalf("got %v", c)
		}
	})
	t.Run("profile from shared files", func(t *testing.T) {
		imdsfake.ClearAWSEnv(t)
		dir := t.TempDir()
		credPath := filepath.Join(dir, "credentials")
		if err := os.WriteFile(credPath, []byte("[relay]\naws_access_key_id = AKIAPROFILE00001234\naws_secret_access_key = profsecret\naws_session_token = proftoken\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", credPath)
		s, err := New(Options{Kind: KindDefault, Profile: "relay"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Fetch(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if c.AccessKeyID != "AKIAPROFILE00001234" || c.SessionToken != "proftoken" {
			t.Fatalf("got %v", c)
		}
		if _, err := New(Options{Kind: KindDefault, Profile: "missing"}); err == nil || !strings.Contains(err.Error(), `"missing"`) {
			t.Fatalf("unknown profile: New error %v, want one naming the profile", err)
		}
	})
	t.Run("falls through to IMDSv2", func(t *testing.T) {
		imdsfake.ClearAWSEnv(t)
		srv := imdsfake.Start(t, imdsfake.Options{})
		s, err := New(Options{Kind: KindDefault, Endpoint: srv.URL()})
		if err != nil {
			t.Fatal(err)
		}
		c, err := s.Fetch(context.Background())
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if _, ok := srv.Lookup(c.AccessKeyID); !ok || c.Expires.IsZero() {
			t.Fatalf("got %v, want credentials issued by the fake IMDS", c)
		}
		if srv.Requests(imdsfake.PathToken) == 0 {
			t.Fatal("default chain did not use the IMDSv2 token")
		}
		// A fresh Source (no cached IMDSv2 session token) against an
		// IMDSv1-only server must fail.
		srv.SetFault(imdsfake.FaultIMDSv1Only)
		s, err = New(Options{Kind: KindDefault, Endpoint: srv.URL()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Fetch(context.Background()); err == nil {
			t.Fatal("default chain accepted an IMDSv1-only server")
		}
	})
}

// Each bad option is refused with a *fielderr.Error naming its field, which
// the element and the CLI rename to their property or flag.
func TestOptionsValidation(t *testing.T) {
	for name, tt := range map[string]struct {
		opts  Options
		field string
	}{
		"role with slash":   {Options{Role: "a/b"}, "Role"},
		"endpoint scheme":   {Options{Endpoint: "127.0.0.1:80"}, "Endpoint"},
		"profile with imds": {Options{Profile: "x"}, "Profile"},
		"role with default": {Options{Kind: KindDefault, Role: "x"}, "Role"},
		"negative timeout":  {Options{HTTPTimeout: -time.Second}, "HTTPTimeout"},
		"unknown kind":      {Options{Kind: Kind(7)}, "Kind"},
	} {
		_, err := New(tt.opts)
		var fe *fielderr.Error
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: New(%+v) = %v, want a fielderr naming %s", name, tt.opts, err, tt.field)
		}
	}
	for in, want := range map[string]Kind{"imds": KindIMDS, "IMDS": KindIMDS, "default": KindDefault} {
		if k, err := ParseKind(in); err != nil || k != want {
			t.Errorf("ParseKind(%q) = %v, %v", in, k, err)
		}
	}
	if _, err := ParseKind("static"); err == nil || !strings.Contains(err.Error(), "static") {
		t.Errorf("ParseKind(static) error %v", err)
	}
}

// checkFetchError fails t unless err, a failed Fetch, is classified as
// transient (or not) as wanted, wraps is (when set) and says contains (when
// set).
func checkFetchError(t *testing.T, err error, transient bool, is error, contains string) {
	t.Helper()
	if got := IsTransient(err); got != transient {
		t.Fatalf("IsTransient(%v) = %v, want %v", err, got, transient)
	}
	if is != nil && !errors.Is(err, is) {
		t.Fatalf("error %v is not %v", err, is)
	}
	if contains != "" && !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q lacks %q", err, contains)
	}
}
