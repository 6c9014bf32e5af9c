// Package credsource fetches temporary AWS credentials with aws-sdk-go-v2,
// either from the EC2 instance metadata service (IMDSv2) or from the SDK's
// default credential chain, and hands them over as credfile.Credentials.
//
// Every Fetch asks the source anew: nothing is cached here (the SDK's
// credential cache is invalidated before each default-chain call), because
// the caller (credrefresh) decides when to ask. The only thing the SDK keeps
// between calls is the IMDSv2 session token, which is not a credential.
package credsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/middleware"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

// Kind selects where credentials come from.
type Kind int

const (
	// KindIMDS reads the instance role's credentials from EC2 IMDS (IMDSv2
	// unless Options.AllowIMDSv1). The zero Kind means KindIMDS.
	KindIMDS Kind = iota
	// KindDefault uses the SDK's default chain (environment, shared
	// config/credentials files and profile, SSO, web identity, ECS, IMDS).
	// Long-term keys from the environment or the shared files are read
	// once, by New, as the SDK does; refreshing providers (SSO, web
	// identity, ECS, IMDS) are asked again on every Fetch.
	KindDefault
)

// String gives the name used by the element property and CLI flag.
func (k Kind) String() string {
	switch k {
	case KindIMDS:
		return "imds"
	case KindDefault:
		return "default"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// ParseKind maps "imds" or "default" (case-insensitive) to a Kind.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "imds":
		return KindIMDS, nil
	case "default":
		return KindDefault, nil
	default:
		return 0, fmt.Errorf("unknown credential source %q (want \"imds\" or \"default\")", s)
	}
}

// Defaults applied by New to zero Options fields.
const (
	DefaultHTTPTimeout = 2 * time.Second
	// DefaultMaxAttempts bounds the SDK's own retries: each IMDS operation
	// (token, role list, role credentials) is tried at most this many times
	// per Fetch. The caller retries on its own schedule, so the SDK must not
	// hammer a struggling IMDS.
	DefaultMaxAttempts = 2
	// StaticLifetime is the expiration given to credentials from the default
	// chain that do not expire (long-term keys). kvssink caps any expiration
	// at now+40 min anyway, and the keeper re-fetches well before this.
	StaticLifetime = time.Hour
)

// Options configures a Source.
type Options struct {
	Kind Kind
	// Role is the IAM role name for KindIMDS. Empty: the first role that
	// IMDS lists (an instance profile holds one role).
	Role string
	// Profile is the shared-config profile for KindDefault. Empty: the SDK's
	// usual choice (AWS_PROFILE, else "default").
	Profile string
	// Endpoint overrides the IMDS endpoint, e.g. "http://127.0.0.1:1338".
	// Empty: the SDK's choice, which honours AWS_EC2_METADATA_SERVICE_ENDPOINT
	// and otherwise uses http://169.254.169.254.
	Endpoint string
	// HTTPTimeout bounds each HTTP request (connect to last byte). Zero:
	// DefaultHTTPTimeout.
	HTTPTimeout time.Duration
	// MaxAttempts is the SDK retryer's attempt limit per operation. Zero:
	// DefaultMaxAttempts.
	MaxAttempts int
	// AllowIMDSv1 permits falling back to IMDSv1 (no session token) when the
	// token request is refused. Off by default: IMDSv1 is open to SSRF, and
	// a server that refuses tokens is treated as misconfigured.
	AllowIMDSv1 bool
	// Now is the clock used for StaticLifetime. Nil: time.Now.
	Now func() time.Time
}

// Source fetches credentials. It is safe for concurrent use.
type Source struct {
	opts  Options
	imds  *imds.Client            // KindIMDS
	chain *aws.CredentialsCache   // KindDefault, nil if the chain is not cached
	prov  aws.CredentialsProvider // KindDefault
}

// New validates opts and builds the SDK clients. It makes no network calls;
// for KindDefault it reads the shared config files, so an unknown Profile is
// reported here.
func New(opts Options) (*Source, error) {
	if opts.HTTPTimeout < 0 {
		return nil, fielderr.New("HTTPTimeout", opts.HTTPTimeout, "must not be negative")
	}
	if opts.HTTPTimeout == 0 {
		opts.HTTPTimeout = DefaultHTTPTimeout
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if strings.ContainsAny(opts.Role, "/ \t\n") {
		return nil, fielderr.New("Role", strconv.Quote(opts.Role), "is not a valid IAM role name")
	}
	if opts.Endpoint != "" && !strings.HasPrefix(opts.Endpoint, "http://") && !strings.HasPrefix(opts.Endpoint, "https://") {
		return nil, fielderr.New("Endpoint", strconv.Quote(opts.Endpoint), "must start with http:// or https://")
	}

	s := &Source{opts: opts, imds: newIMDSClient(opts)}
	switch opts.Kind {
	case KindIMDS:
		if opts.Profile != "" {
			return nil, fielderr.New("Profile", strconv.Quote(opts.Profile), "is only used with Kind default")
		}
	case KindDefault:
		if opts.Role != "" {
			return nil, fielderr.New("Role", strconv.Quote(opts.Role), "is only used with Kind imds")
		}
		loadOpts := []func(*config.LoadOptions) error{
			config.WithRetryer(func() aws.Retryer { return newRetryer(opts.MaxAttempts) }),
			config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(opts.HTTPTimeout)),
			// The chain's IMDS step uses the same client as KindIMDS, so
			// the endpoint override and the IMDSv1 refusal apply there too.
			config.WithEC2RoleCredentialOptions(func(o *ec2rolecreds.Options) { o.Client = s.imds }),
			// The SDK caches container credentials with a 5-minute
			// expiry window, which it applies by moving the expiration
			// they carry 5 minutes earlier. Fetch must hand over the
			// source's own expiration: the file would otherwise say the
			// credentials die 5 minutes before they do, so 15-minute
			// credentials (a Greengrass role alias at its shortest) would
			// be due for refresh on arrival, and shorter ones expired.
			config.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) {
				o.ExpiryWindow = 0
				o.ExpiryWindowJitterFrac = 0
			}),
		}
		if opts.Profile != "" {
			loadOpts = append(loadOpts, config.WithSharedConfigProfile(opts.Profile))
		}
		cfg, err := config.LoadDefaultConfig(context.Background(), loadOpts...)
		if err != nil {
			return nil, fmt.Errorf("credsource: loading AWS config (profile %q): %w", opts.Profile, err)
		}
		if cfg.Credentials == nil {
			return nil, errors.New("credsource: the default credential chain found no credential source")
		}
		s.prov = cfg.Credentials
		s.chain, _ = cfg.Credentials.(*aws.CredentialsCache)
	default:
		return nil, fielderr.New("Kind", opts.Kind, "is not a known source kind")
	}
	return s, nil
}

// newRetryer is the SDK standard retryer with few attempts and no client-side
// retry quota (the quota would otherwise turn a long outage into "retry quota
// exceeded" errors that hide the real cause).
func newRetryer(maxAttempts int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = maxAttempts
		o.RateLimiter = ratelimit.None
	})
}

func newIMDSClient(opts Options) *imds.Client {
	fallback := aws.FalseTernary
	if opts.AllowIMDSv1 {
		fallback = aws.TrueTernary
	}
	dialer := &net.Dialer{Timeout: opts.HTTPTimeout}
	transport := &http.Transport{
		// IMDS is link-local: never send it through an HTTP proxy from
		// the environment.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ResponseHeaderTimeout: opts.HTTPTimeout,
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
	}
	return imds.New(imds.Options{
		Endpoint:       opts.Endpoint,
		EnableFallback: fallback,
		APIOptions:     []func(*middleware.Stack) error{addTokenTrace},
		Retryer:        newRetryer(opts.MaxAttempts),
		// A plain *http.Client (not the SDK's BuildableClient) keeps the SDK
		// from overriding our timeouts with its 250 ms / 500 ms defaults.
		HTTPClient: &http.Client{Transport: transport, Timeout: opts.HTTPTimeout},
	})
}

// Describe names the source for logs, e.g. `imds role=(first listed)`.
func (s *Source) Describe() string {
	ep := s.opts.Endpoint
	if ep == "" {
		ep = "sdk default"
	}
	switch s.opts.Kind {
	case KindDefault:
		p := s.opts.Profile
		if p == "" {
			p = "(sdk default)"
		}
		return fmt.Sprintf("default chain profile=%s", p)
	default:
		r := s.opts.Role
		if r == "" {
			r = "(first listed)"
		}
		v := "IMDSv2 only"
		if s.opts.AllowIMDSv1 {
			v = "IMDSv1 fallback allowed"
		}
		return fmt.Sprintf("imds role=%s endpoint=%s %s", r, ep, v)
	}
}

// Fetch asks the source for credentials now. The result always carries an
// expiration: KindIMDS fails if IMDS gives none, KindDefault gives
// non-expiring keys Now()+StaticLifetime. Errors wrap *Error, so IsTransient
// tells whether trying again later may help; they never contain secrets.
func (s *Source) Fetch(ctx context.Context) (credfile.Credentials, error) {
	switch s.opts.Kind {
	case KindDefault:
		return s.fetchDefault(ctx)
	default:
		return s.fetchIMDS(ctx)
	}
}

func (s *Source) fetchDefault(ctx context.Context) (credfile.Credentials, error) {
	if s.chain != nil {
		// Ask the chain itself, not the SDK's cache, so that every Fetch
		// sees what the source currently hands out.
		s.chain.Invalidate()
	}
	c, err := s.prov.Retrieve(ctx)
	if err != nil {
		return credfile.Credentials{}, classifyChain(ctx, err)
	}
	out := credfile.Credentials{
		AccessKeyID:     c.AccessKeyID,
		SecretAccessKey: c.SecretAccessKey,
		SessionToken:    c.SessionToken,
		Expires:         c.Expires,
	}
	if !c.CanExpire || c.Expires.IsZero() {
		out.Expires = s.opts.Now().Add(StaticLifetime)
	}
	if out.AccessKeyID == "" || out.SecretAccessKey == "" {
		return credfile.Credentials{}, &Error{Op: "default credential chain", Err: errors.New("returned empty credentials")}
	}
	return out, nil
}
