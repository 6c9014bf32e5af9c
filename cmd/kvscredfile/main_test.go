package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credsource"
)

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	ok := []struct {
		args []string
		env  map[string]string
		want func(config) bool
	}{
		{[]string{"-credential-path", "/x/cred"}, nil, func(c config) bool {
			return c.source.Kind == credsource.KindIMDS && c.credentialPath == "/x/cred" && c.refreshBefore == 15*time.Minute
		}},
		{[]string{"-source", "default", "-profile", "relay", "-refresh-before", "20m"}, map[string]string{"RUNTIME_DIRECTORY": "/run/kvs"}, func(c config) bool {
			return c.source.Kind == credsource.KindDefault && c.source.Profile == "relay" && c.credentialPath == "/run/kvs/credential" && c.refreshBefore == 20*time.Minute
		}},
		{[]string{"-role", "r", "-imds-endpoint", "http://127.0.0.1:1", "-allow-imdsv1"}, map[string]string{"XDG_RUNTIME_DIR": "/run/user/7"}, func(c config) bool {
			return c.source.Role == "r" && c.source.Endpoint == "http://127.0.0.1:1" && c.source.AllowIMDSv1 && c.credentialPath == "/run/user/7/kvsrelay/credential"
		}},
	}
	for _, tt := range ok {
		c, err := parseFlags(tt.args, env(tt.env), &bytes.Buffer{})
		if err != nil || !tt.want(c) {
			t.Errorf("parseFlags(%q) = %+v, %v", tt.args, c, err)
		}
	}

	bad := []struct {
		args []string
		flag string
	}{
		{[]string{"-source", "static"}, "-source"},
		{[]string{"-refresh-before", "soon"}, "-refresh-before"},
		{[]string{"-refresh-before", "30s"}, "-refresh-before"},
		{[]string{"-http-timeout", "0s"}, "-http-timeout"},
		{[]string{"-profile", "p"}, "-profile"},
		{[]string{"-source", "default", "-role", "r"}, "-role"},
		{[]string{"-no-such-flag"}, "-no-such-flag"},
		{[]string{"stray"}, "stray"},
	}
	for _, tt := range bad {
		var stderr bytes.Buffer
		code := run(append(tt.args, "-credential-path", t.TempDir()+"/c"), os.Getenv, &stderr, nil)
		if code != 2 || !strings.Contains(stderr.String(), tt.flag) {
			t.Errorf("run(%q) = %d, stderr %q; want exit 2 naming %s", tt.args, code, stderr.String(), tt.flag)
		}
	}
}

// -refresh-before takes the element property's unit (nanoseconds) as well
// as a Go duration.
func TestRefreshBeforeForms(t *testing.T) {
	for arg, want := range map[string]time.Duration{
		"900000000000": 15 * time.Minute,
		"150000000000": 150 * time.Second,
		"20m":          20 * time.Minute,
		"2m30s":        150 * time.Second,
	} {
		c, err := parseFlags([]string{"-credential-path", "/x/cred", "-refresh-before", arg}, func(string) string { return "" }, &bytes.Buffer{})
		if err != nil || c.refreshBefore != want {
			t.Errorf("-refresh-before %s: %v, %v; want %v", arg, c.refreshBefore, err, want)
		}
	}
	for _, arg := range []string{"60000000000", "1000", "-5", "99999999999999999999", "15 minutes"} {
		var stderr bytes.Buffer
		code := run([]string{"-credential-path", t.TempDir() + "/c", "-refresh-before", arg}, func(string) string { return "" }, &stderr, nil)
		if code != 2 || !strings.Contains(stderr.String(), "-refresh-before") {
			t.Errorf("-refresh-before %s: exit %d, stderr %q; want exit 2 naming the flag", arg, code, stderr.String())
		}
	}
}

// Without $RUNTIME_DIRECTORY or $XDG_RUNTIME_DIR there is no folder a
// sidecar's kvssink could know: -credential-path is required.
func TestCredentialPathRequiredWithoutRuntimeDir(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"-once"}, func(string) string { return "" }, &stderr, nil)
	if code != 2 || !strings.Contains(stderr.String(), "-credential-path is required") {
		t.Fatalf("exit %d, stderr %q; want exit 2 asking for -credential-path", code, stderr.String())
	}
}

func TestMetricsStreamName(t *testing.T) {
	for path, want := range map[string]string{
		"/run/kvs-relay-creds/cam1/credential": "cam1",
		"/run/kvsrelay/cam2":                   "cam2",
		"relative/credential":                  "relative",
	} {
		if got := metricsStreamName(path); got != want {
			t.Errorf("metricsStreamName(%q) = %q, want %q", path, got, want)
		}
	}
	c, err := parseFlags([]string{"-credential-path", "/run/x/credential", "-stream-name", "front-door"}, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil || c.streamName != "front-door" {
		t.Fatalf("-stream-name: %q, %v", c.streamName, err)
	}
}
