package credfakes

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The Set*Env helpers point the AWS SDK of this process at a fake through
// the environment, as the orchestrator would (tb.Setenv: the test must not
// be parallel), and return the variables they set as KEY=VALUE, for child
// processes. Clear the machine's AWS_* variables first
// (imdsfake.ClearAWSEnv).

// Auth is how the container endpoint's Authorization token reaches the SDK.
type Auth int

const (
	// AuthToken: AWS_CONTAINER_AUTHORIZATION_TOKEN holds it (ECS, Greengrass).
	AuthToken Auth = iota
	// AuthTokenFile: AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names a file
	// holding it (EKS Pod Identity, whose kubelet rotates the file).
	AuthTokenFile
)

func setenv(tb testing.TB, kv *[]string, k, v string) {
	tb.Setenv(k, v)
	*kv = append(*kv, k+"="+v)
}

// SetContainerEnv sets AWS_CONTAINER_CREDENTIALS_FULL_URI to c and passes
// token the way auth says. For AuthTokenFile it returns the token file's
// path (rewrite it with WriteTokenFile to rotate the token).
func SetContainerEnv(tb testing.TB, c *ContainerServer, auth Auth, token string) (env []string, tokenFile string) {
	tb.Helper()
	setenv(tb, &env, "AWS_CONTAINER_CREDENTIALS_FULL_URI", c.FullURI())
	switch auth {
	case AuthToken:
		setenv(tb, &env, "AWS_CONTAINER_AUTHORIZATION_TOKEN", token)
	case AuthTokenFile:
		tokenFile = filepath.Join(tb.TempDir(), "eks-pod-identity-token")
		WriteTokenFile(tb, tokenFile, token)
		setenv(tb, &env, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokenFile)
	}
	return env, tokenFile
}

// WriteTokenFile replaces the token file's content at once, as the kubelet
// does when it rotates a projected service account token.
func WriteTokenFile(tb testing.TB, path, token string) {
	tb.Helper()
	if err := writeAtomic(path, []byte(token)); err != nil {
		tb.Fatal(err)
	}
}

// IRSARoleARN is the role the IRSA helpers assume.
const IRSARoleARN = "arn:aws:iam::123456789012:role/kvsrelay-irsa"

// SetIRSAEnv sets the variables the EKS pod identity webhook injects for
// IRSA (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN, AWS_REGION) plus
// AWS_ENDPOINT_URL_STS pointing at s. The token file holds token, which s
// accepts for an hour (AcceptToken changes that). It returns the token
// file's path.
func SetIRSAEnv(tb testing.TB, s *STSServer, token string) (env []string, tokenFile string) {
	tb.Helper()
	tokenFile = filepath.Join(tb.TempDir(), "serviceaccount-token")
	WriteTokenFile(tb, tokenFile, token)
	s.AcceptToken(token, s.Now().Add(time.Hour))
	setenv(tb, &env, "AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
	setenv(tb, &env, "AWS_ROLE_ARN", s.roleARN)
	setenv(tb, &env, "AWS_REGION", "eu-west-1")
	setenv(tb, &env, "AWS_ENDPOINT_URL_STS", s.URL())
	return env, tokenFile
}

// SetProcessEnv writes a shared config file whose profile runs p as its
// credential_process, and selects it with AWS_CONFIG_FILE and AWS_PROFILE.
func SetProcessEnv(tb testing.TB, p *Process, profile string) (env []string) {
	tb.Helper()
	cfg := filepath.Join(tb.TempDir(), "config")
	text := "[profile " + profile + "]\ncredential_process = " + p.Command() + "\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	setenv(tb, &env, "AWS_CONFIG_FILE", cfg)
	setenv(tb, &env, "AWS_PROFILE", profile)
	return env
}
