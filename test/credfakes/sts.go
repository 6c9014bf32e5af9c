package credfakes

import (
	"encoding/xml"
	"net/http"
	"sync"
	"testing"
	"time"
)

// STSOptions configures an STSServer.
type STSOptions struct {
	Issuer IssuerOptions
	// RoleARN is the only role the server lets callers assume.
	RoleARN string
}

// STSServer answers STS AssumeRoleWithWebIdentity (query protocol, XML) on
// 127.0.0.1, the call the SDK's web identity provider makes for IRSA. Web
// identity tokens are accepted once registered with AcceptToken, and only
// until their expiry, like an OIDC token checked by STS.
type STSServer struct {
	*server
	*Issuer
	roleARN string

	tokMu   sync.Mutex
	tokens  map[string]time.Time // web identity token -> expiry
	seen    []string             // web identity tokens received, in order
	refused int
}

// StartSTS starts an STSServer closed in tb.Cleanup.
func StartSTS(tb testing.TB, opts STSOptions) *STSServer {
	tb.Helper()
	if opts.RoleARN == "" {
		tb.Fatal("credfakes: STSOptions.RoleARN is required")
	}
	s := &STSServer{Issuer: NewIssuer(opts.Issuer), roleARN: opts.RoleARN, tokens: map[string]time.Time{}}
	startServer(tb, s, func(srv *server) { s.server = srv })
	return s
}

// URL is the value for AWS_ENDPOINT_URL_STS.
func (s *STSServer) URL() string { return s.url }

// AcceptToken makes the server accept the web identity token tok until
// expires.
func (s *STSServer) AcceptToken(tok string, expires time.Time) {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	s.tokens[tok] = expires
}

// TokensSeen returns the web identity tokens received, oldest first.
func (s *STSServer) TokensSeen() []string {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	return append([]string(nil), s.seen...)
}

// Refused counts calls refused for an unknown or expired token or a wrong
// role.
func (s *STSServer) Refused() int {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	return s.refused
}

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

type assumeRoleWithWebIdentityResponse struct {
	XMLName xml.Name `xml:"AssumeRoleWithWebIdentityResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Result  struct {
		SubjectFromWebIdentityToken string
		Audience                    string
		AssumedRoleUser             struct {
			Arn           string
			AssumedRoleID string `xml:"AssumedRoleId"`
		}
		Credentials stsCredentials
		Provider    string
	} `xml:"AssumeRoleWithWebIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string
		Code    string
		Message string
	}
	RequestID string `xml:"RequestId"`
}

func stsError(w http.ResponseWriter, status int, typ, code, msg string) {
	var e stsErrorResponse
	e.Xmlns = stsNamespace
	e.Error.Type, e.Error.Code, e.Error.Message = typ, code, msg
	e.RequestID = RandomString(8)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(e)
}

func (s *STSServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fault, ok := s.count(w)
	if !ok {
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		stsError(w, http.StatusNotFound, "Sender", "UnknownOperation", "only POST / is served")
		return
	}
	if err := r.ParseForm(); err != nil {
		stsError(w, http.StatusBadRequest, "Sender", "MalformedQueryString", "the form cannot be parsed")
		return
	}
	f := r.PostForm
	if f.Get("Action") != "AssumeRoleWithWebIdentity" || f.Get("Version") != "2011-06-15" {
		stsError(w, http.StatusBadRequest, "Sender", "InvalidAction", "only AssumeRoleWithWebIdentity 2011-06-15 is served")
		return
	}
	switch fault {
	case FaultServerError:
		stsError(w, http.StatusInternalServerError, "Receiver", "InternalFailure", "internal failure")
		return
	case FaultThrottle:
		stsError(w, http.StatusBadRequest, "Sender", "Throttling", "Rate exceeded")
		return
	}
	tok := f.Get("WebIdentityToken")
	now := s.Now()
	s.tokMu.Lock()
	s.seen = append(s.seen, tok)
	expires, known := s.tokens[tok]
	refuse := func(code, msg string) {
		s.refused++
		s.tokMu.Unlock()
		stsError(w, http.StatusBadRequest, "Sender", code, msg)
	}
	switch {
	case f.Get("RoleArn") != s.roleARN:
		refuse("AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity")
		return
	case f.Get("RoleSessionName") == "":
		refuse("ValidationError", "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
		return
	case !known:
		refuse("InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider")
		return
	case !now.Before(expires):
		refuse("ExpiredTokenException", "Token expired: current date/time "+now.UTC().Format(time.RFC3339)+" must be before the expiration date/time "+expires.UTC().Format(time.RFC3339))
		return
	}
	s.tokMu.Unlock()

	is := s.Current()
	var resp assumeRoleWithWebIdentityResponse
	resp.Xmlns = stsNamespace
	resp.Result.SubjectFromWebIdentityToken = "system:serviceaccount:kvsrelay:relay"
	resp.Result.Audience = "sts.amazonaws.com"
	resp.Result.AssumedRoleUser.Arn = "arn:aws:sts::123456789012:assumed-role/kvsrelay-irsa/" + f.Get("RoleSessionName")
	resp.Result.AssumedRoleUser.AssumedRoleID = "AROA" + RandomString(17) + ":" + f.Get("RoleSessionName")
	resp.Result.Provider = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/KVSRELAY"
	resp.Result.Credentials = stsCredentials{AccessKeyID: is.AccessKeyID, SecretAccessKey: is.SecretAccessKey,
		SessionToken: is.Token, Expiration: is.Expiration.UTC().Format(rfc3339Seconds)}
	if fault == FaultExpired {
		resp.Result.Credentials.Expiration = now.Add(-time.Minute).UTC().Format(rfc3339Seconds)
	}
	resp.RequestID = RandomString(8)
	w.Header().Set("Content-Type", "text/xml")
	if fault == FaultMalformed {
		_, _ = w.Write([]byte(xml.Header + `<AssumeRoleWithWebIdentityResponse xmlns="` + stsNamespace + `"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>` + is.AccessKeyID[:4]))
		return
	}
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(resp)
}
