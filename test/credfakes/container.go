package credfakes

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Flavor is the service a ContainerServer imitates: the path it serves and
// the fields of its answer.
type Flavor int

const (
	// FlavorECS: the ECS agent's task role endpoint,
	// /v2/credentials/<id>, answering RoleArn too.
	FlavorECS Flavor = iota
	// FlavorEKSPodIdentity: the EKS Pod Identity agent, /v1/credentials,
	// answering AccountId too (the token comes from a file the kubelet
	// rotates).
	FlavorEKSPodIdentity
	// FlavorGreengrass: the Greengrass token exchange service,
	// /2016-11-01/credentialprovider/.
	FlavorGreengrass
)

// Path is where the flavor's service serves credentials.
func (f Flavor) Path() string {
	switch f {
	case FlavorEKSPodIdentity:
		return "/v1/credentials"
	case FlavorGreengrass:
		return "/2016-11-01/credentialprovider/"
	default:
		return "/v2/credentials/6f4b1a52-9c1e-4b8e-a2d4-0c5d7e3f9a10"
	}
}

func (f Flavor) String() string {
	switch f {
	case FlavorEKSPodIdentity:
		return "EKS Pod Identity"
	case FlavorGreengrass:
		return "Greengrass token exchange"
	default:
		return "ECS task role"
	}
}

// ContainerOptions configures a ContainerServer.
type ContainerOptions struct {
	Flavor Flavor
	Issuer IssuerOptions
	// Token is the Authorization header value the server accepts at start
	// (SetToken changes it). Empty: any request is refused with 401.
	Token string
}

// ContainerServer is a container credentials endpoint on 127.0.0.1.
type ContainerServer struct {
	*server
	*Issuer
	flavor Flavor

	tokMu   sync.Mutex
	token   string
	refused int
}

// StartContainer starts a ContainerServer closed in tb.Cleanup.
func StartContainer(tb testing.TB, opts ContainerOptions) *ContainerServer {
	tb.Helper()
	c := &ContainerServer{Issuer: NewIssuer(opts.Issuer), flavor: opts.Flavor, token: opts.Token}
	startServer(tb, c, func(s *server) { c.server = s })
	return c
}

// FullURI is the value for AWS_CONTAINER_CREDENTIALS_FULL_URI.
func (c *ContainerServer) FullURI() string { return c.url + c.flavor.Path() }

// SetToken changes the Authorization value the server accepts, as when the
// agent rotates the token file's content.
func (c *ContainerServer) SetToken(tok string) {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	c.token = tok
}

// Refused counts requests refused for a missing or wrong token.
func (c *ContainerServer) Refused() int {
	c.tokMu.Lock()
	defer c.tokMu.Unlock()
	return c.refused
}

// containerDoc is the JSON the three services answer with; the flavor
// decides which of RoleArn and AccountId appear.
type containerDoc struct {
	RoleArn         string `json:",omitempty"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string
	Token           string
	AccountID       string `json:"AccountId,omitempty"`
	Expiration      string
}

func (c *ContainerServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fault, ok := c.count(w)
	if !ok {
		return
	}
	if r.Method != http.MethodGet || r.URL.Path != c.flavor.Path() {
		http.NotFound(w, r)
		return
	}
	auth := r.Header.Get("Authorization")
	c.tokMu.Lock()
	want := c.token
	if auth == "" || auth != want {
		c.refused++
	}
	c.tokMu.Unlock()
	switch {
	case auth == "":
		jsonError(w, http.StatusUnauthorized, "AccessDeniedException", "no Authorization header")
		return
	case auth != want:
		jsonError(w, http.StatusForbidden, "AccessDeniedException", "the authorization token is not valid")
		return
	}
	switch fault {
	case FaultServerError:
		jsonError(w, http.StatusInternalServerError, "InternalServerException", "internal error")
		return
	case FaultThrottle:
		jsonError(w, http.StatusTooManyRequests, "ThrottlingException", "rate exceeded")
		return
	}
	is := c.Current()
	doc := containerDoc{AccessKeyID: is.AccessKeyID, SecretAccessKey: is.SecretAccessKey, Token: is.Token,
		Expiration: is.Expiration.UTC().Format(rfc3339Seconds)}
	switch c.flavor {
	case FlavorECS:
		doc.RoleArn = "arn:aws:iam::123456789012:role/kvsrelay-task"
	case FlavorEKSPodIdentity:
		doc.AccountID = "123456789012"
	}
	if fault == FaultExpired {
		doc.Expiration = c.Now().Add(-time.Minute).UTC().Format(rfc3339Seconds)
	}
	w.Header().Set("Content-Type", "application/json")
	if fault == FaultMalformed {
		_, _ = w.Write([]byte(`{"AccessKeyId":"` + is.AccessKeyID[:4]))
		return
	}
	_ = json.NewEncoder(w).Encode(doc)
}

func jsonError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}
