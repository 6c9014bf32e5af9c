// Package setup tests what a fresh machine goes through before any Go code
// builds: scripts/install-deps.sh (system packages, and Go when none >= 1.21
// is found), scripts/find-go.sh and the Makefile's Go lookup, and
// scripts/build-kvssink.sh (make kvssink). The cases live in deps_test.sh
// and run on a fake machine (fake apt-get, sudo, dpkg-query, id, cmake,
// gst-inspect-1.0; Go "releases" served from file:// URLs, kvssink's
// upstream as local git repositories), so nothing is installed or built.
package setup

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

const script = "./deps_test.sh"

func TestInstallDeps(t *testing.T) {
	for _, tool := range []string{"bash", "make", "curl", "python3", "tar", "sha256sum", "git", "nproc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run make deps", tool)
		}
	}
	list, err := exec.Command("bash", script, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", script, err)
	}
	cases := strings.Fields(string(list))
	if len(cases) < 10 {
		t.Fatalf("%s --list names only %v", script, cases)
	}
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", script, c)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var ee *exec.ExitError
			switch {
			case err == nil:
			case errors.As(err, &ee) && ee.ExitCode() == 3:
				t.Skip(strings.TrimSpace(out.String()))
			default:
				t.Fatalf("%s %s: %v\n%s", script, c, err, out.String())
			}
		})
	}
}
