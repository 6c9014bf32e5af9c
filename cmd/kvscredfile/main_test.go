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
