package imdsfake

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// awsEnv lists the variables through which the AWS SDK could pick up
// credentials, endpoints or settings from the machine running the tests.
var awsEnv = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_ACCESS_KEY", "AWS_SECRET_KEY",
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_CA_BUNDLE",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
	"AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_V1_DISABLED",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
	"AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE",
}

// ClearAWSEnv unsets every AWS_* variable (those listed above, and any other
// in the environment: endpoint overrides such as AWS_ENDPOINT_URL_STS,
// regions, ...) so that nothing of the machine's own credentials or settings
// leaks into a test, and points the shared config and
// credentials files at paths that do not exist. The previous values come
// back when the test ends (it uses tb.Setenv, so the test must not be
// parallel).
func ClearAWSEnv(tb testing.TB) {
	tb.Helper()
	names := append([]string(nil), awsEnv...)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			names = append(names, k)
		}
	}
	for _, k := range names {
		tb.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			tb.Fatal(err)
		}
	}
	none := filepath.Join(tb.TempDir(), "no-such-file")
	tb.Setenv("AWS_CONFIG_FILE", none)
	tb.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
}
