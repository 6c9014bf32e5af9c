package credsource

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/test/credfakes"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
)

// issuerOf is what every fake of the default chain's sources offers.
type issuerOf interface {
	Lookup(accessKeyID string) (credfakes.Issued, bool)
	Issued() []credfakes.Issued
}

// chainFake starts one source of the default chain, sets the environment
// that selects it, and returns how to fault it.
type chainFake struct {
	name  string
	start func(t *testing.T) (issuerOf, func(credfakes.Fault))
}

const containerToken = "kvsrelay-container-token-0123456789"

func containerFake(flavor credfakes.Flavor, auth credfakes.Auth) func(t *testing.T) (issuerOf, func(credfakes.Fault)) {
	return func(t *testing.T) (issuerOf, func(credfakes.Fault)) {
		c := credfakes.StartContainer(t, credfakes.ContainerOptions{Flavor: flavor, Token: containerToken})
		credfakes.SetContainerEnv(t, c, auth, containerToken)
		return c, c.SetFault
	}
}

var chainFakes = []chainFake{
	{"ECS task role", containerFake(credfakes.FlavorECS, credfakes.AuthToken)},
	{"Greengrass token exchange", containerFake(credfakes.FlavorGreengrass, credfakes.AuthToken)},
	{"EKS Pod Identity", containerFake(credfakes.FlavorEKSPodIdentity, credfakes.AuthTokenFile)},
	{"IRSA", func(t *testing.T) (issuerOf, func(credfakes.Fault)) {
		s := credfakes.StartSTS(t, credfakes.STSOptions{RoleARN: credfakes.IRSARoleARN})
		credfakes.SetIRSAEnv(t, s, "eyJhbGciOiJSUzI1NiJ9.kvsrelay-web-identity.sig")
		return s, s.SetFault
	}},
	{"credential_process", func(t *testing.T) (issuerOf, func(credfakes.Fault)) {
		p := credfakes.StartProcess(t, credfakes.IssuerOptions{})
		credfakes.SetProcessEnv(t, p, "relay")
		return p, p.SetFault
	}},
}

// newChainSource is New(KindDefault) with a trap IMDS: falling through to
// IMDS instead of the source under test fails the test.
func newChainSource(t *testing.T) *Source {
	t.Helper()
	trap := imdsfake.Start(t, imdsfake.Options{})
	t.Cleanup(func() {
		if n := trap.TotalRequests(); n != 0 {
			t.Errorf("the default chain asked IMDS %d times instead of the source under test", n)
		}
	})
	s, err := New(Options{Kind: KindDefault, Endpoint: trap.URL(), HTTPTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func assertIssued(t *testing.T, iss issuerOf, c credfile.Credentials) {
	t.Helper()
	is, ok := iss.Lookup(c.AccessKeyID)
	if !ok {
		t.Fatalf("%v was never issued by the fake", c)
	}
	if c.SecretAccessKey != is.SecretAccessKey || c.SessionToken != is.Token {
		t.Fatalf("fetched %v differs from what the fake issued", c)
	}
	if !c.Expires.Equal(is.Expiration) {
		t.Fatalf("fetched credentials expire %s, the fake issued them until %s", c.Expires, is.Expiration)
	}
}

// Each source of the default chain, selected by its environment alone:
// Fetch hands over exactly what the source issued, expiry included (the
// SDK's 5-minute cache window is not applied to it), and a second Fetch
// asks the source again.
func TestDefaultChainSources(t *testing.T) {
	for _, f := range chainFakes {
		t.Run(f.name, func(t *testing.T) {
			imdsfake.ClearAWSEnv(t)
			iss, _ := f.start(t)
			s := newChainSource(t)
			c, err := s.Fetch(context.Background())
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			assertIssued(t, iss, c)
			if time.Until(c.Expires) < 5*time.Hour {
				t.Fatalf("credentials expire in %s, the fake issued them for 6 h", time.Until(c.Expires))
			}
			c2, err := s.Fetch(context.Background())
			if err != nil {
				t.Fatalf("second Fetch: %v", err)
			}
			assertIssued(t, iss, c2)
		})
	}
}

// The sources' failures: transient ones (worth asking again soon) apart
// from configuration errors, and no secret in any message.
func TestDefaultChainErrors(t *testing.T) {
	byName := map[string]chainFake{}
	for _, f := range chainFakes {
		byName[f.name] = f
	}
	tests := []struct {
		source    string
		fault     credfakes.Fault
		setup     func(t *testing.T, iss issuerOf) // after the fake started, before New
		transient bool
		is        error
		contains  string
	}{
		{source: "ECS task role", fault: credfakes.FaultDown, transient: true},
		{source: "ECS task role", fault: credfakes.FaultServerError, transient: true, contains: "InternalServerException"},
		{source: "ECS task role", fault: credfakes.FaultThrottle, transient: true, contains: "ThrottlingException"},
		{source: "ECS task role", fault: credfakes.FaultMalformed, transient: true, is: ErrMalformedChain},
		{source: "ECS task role", setup: func(t *testing.T, _ issuerOf) { t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong") }, contains: "AccessDeniedException"},
		{source: "Greengrass token exchange", fault: credfakes.FaultServerError, transient: true},
		{source: "EKS Pod Identity", setup: func(t *testing.T, _ issuerOf) {
			credfakes.WriteTokenFile(t, mustEnv(t, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), "rotated-but-unknown")
		}, contains: "AccessDeniedException"},
		{source: "EKS Pod Identity", fault: credfakes.FaultDown, transient: true},
		{source: "IRSA", fault: credfakes.FaultDown, transient: true},
		{source: "IRSA", fault: credfakes.FaultServerError, transient: true, contains: "InternalFailure"},
		{source: "IRSA", fault: credfakes.FaultThrottle, transient: true, contains: "Throttling"},
		{source: "IRSA", fault: credfakes.FaultMalformed, transient: true, is: ErrMalformedChain},
		{source: "IRSA", setup: func(t *testing.T, _ issuerOf) {
			credfakes.WriteTokenFile(t, mustEnv(t, "AWS_WEB_IDENTITY_TOKEN_FILE"), "never-registered")
		}, contains: "InvalidIdentityToken"},
		{source: "IRSA", setup: func(t *testing.T, iss issuerOf) {
			credfakes.WriteTokenFile(t, mustEnv(t, "AWS_WEB_IDENTITY_TOKEN_FILE"), "expired-web-identity")
			iss.(*credfakes.STSServer).AcceptToken("expired-web-identity", time.Now().Add(-time.Minute))
		}, transient: true, contains: "ExpiredTokenException"},
		{source: "credential_process", fault: credfakes.FaultDown, transient: true, contains: "exit status 1"},
		{source: "credential_process", fault: credfakes.FaultServerError, transient: true, contains: "exit status 2"},
		{source: "credential_process", fault: credfakes.FaultMalformed, transient: true, is: ErrMalformedChain, contains: "not shown"},
	}
	for _, tt := range tests {
		name := tt.source + "/" + tt.fault.String()
		if tt.setup != nil {
			name = tt.source + "/setup"
		}
		t.Run(name, func(t *testing.T) {
			imdsfake.ClearAWSEnv(t)
			iss, setFault := byName[tt.source].start(t)
			s := newChainSource(t)
			// Issue credentials once so the leak check has something to
			// look for.
			if _, err := s.Fetch(context.Background()); err != nil {
				t.Fatalf("Fetch before the fault: %v", err)
			}
			if tt.setup != nil {
				tt.setup(t, iss)
				// Settings read at load time (the inline token) need a
				// new Source.
				s = newChainSource(t)
			}
			setFault(tt.fault)
			_, err := s.Fetch(context.Background())
			if err == nil {
				t.Fatal("Fetch succeeded")
			}
			checkFetchError(t, err, tt.transient, tt.is, tt.contains)
			for _, is := range iss.Issued() {
				if strings.Contains(err.Error(), is.SecretAccessKey) || strings.Contains(err.Error(), is.Token) {
					t.Fatalf("error leaks credentials: %q", err)
				}
			}
		})
	}
}

func mustEnv(t *testing.T, k string) string {
	t.Helper()
	v := os.Getenv(k)
	if v == "" {
		t.Fatalf("%s is not set", k)
	}
	return v
}

// A credential_process that cannot be run is a configuration error, and
// container endpoints over plain HTTP are refused by New unless they are
// loopback or the ECS/EKS agents' addresses (nothing is contacted).
func TestDefaultChainConfigurationErrors(t *testing.T) {
	t.Run("credential_process not found", func(t *testing.T) {
		imdsfake.ClearAWSEnv(t)
		cfg := filepath.Join(t.TempDir(), "config")
		if err := os.WriteFile(cfg, []byte("[profile relay]\ncredential_process = /nonexistent/kvsrelay-helper --role x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_CONFIG_FILE", cfg)
		t.Setenv("AWS_PROFILE", "relay")
		_, err := newChainSource(t).Fetch(context.Background())
		if err == nil || IsTransient(err) || !strings.Contains(err.Error(), "127") {
			t.Fatalf("Fetch = %v (transient %v), want a permanent error naming exit status 127", err, IsTransient(err))
		}
	})
	for _, tt := range []struct {
		uri string
		ok  bool
	}{
		{"http://169.254.170.23/v1/credentials", true},  // the EKS Pod Identity agent
		{"http://169.254.170.2/v2/credentials/x", true}, // the ECS agent
		{"http://[fd00:ec2::23]/v1/credentials", true},  // the EKS agent over IPv6
		{"http://127.0.0.1:1/2016-11-01/credentialprovider/", true},
		// Greengrass's nucleus names its token exchange service by
		// "localhost" (resolved from /etc/hosts, to loopback only).
		{"http://localhost:1/2016-11-01/credentialprovider/", true},
		{"http://192.0.2.10/credentials", false}, // plain HTTP elsewhere
	} {
		t.Run(tt.uri, func(t *testing.T) {
			imdsfake.ClearAWSEnv(t)
			t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", tt.uri)
			t.Setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "x")
			_, err := New(Options{Kind: KindDefault})
			if (err == nil) != tt.ok {
				t.Fatalf("New with FULL_URI %s: %v, want ok=%v", tt.uri, err, tt.ok)
			}
		})
	}
}
