package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// goTool is the go command running these tests.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command on PATH nor at %s", p)
	}
	return p
}

// TestDoctorBuiltWithoutCgoOnHostWithoutGStreamer builds the helper as
// `make install` does (CGO_ENABLED=0) and runs doctor where gst-inspect-1.0
// cannot be found: a host without GStreamer gets the one sentence and exit
// status 2, never a loader, linker or cgo error.
func TestDoctorBuiltWithoutCgoOnHostWithoutGStreamer(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "gst-inspect-helper")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goTool(t), "build", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/gst-inspect-helper: %v\n%s", err, out)
	}

	// Nothing to load: no interpreter, no shared library (libgstreamer above all).
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, err := f.ImportedLibraries()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("the CGO_ENABLED=0 helper needs shared libraries %v", libs)
	}

	emptyPath := t.TempDir() // no gst-inspect-1.0, no anything
	run := func(args ...string) (code int, stdout, stderr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"PATH=" + emptyPath, "HOME=" + t.TempDir(), "AWS_EC2_METADATA_DISABLED=true"}
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &ee):
			code = ee.ExitCode()
		default:
			t.Fatalf("running %s %v: %v", bin, args, err)
		}
		return code, out.String(), errOut.String()
	}

	code, stdout, stderr := run("doctor", "-imds-timeout", "200ms")
	if code != 2 {
		t.Errorf("doctor exit status %d, want 2 (failures)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, missingGstInspect) {
		t.Errorf("doctor output lacks %q:\n%s", missingGstInspect, stdout)
	}
	for _, bad := range []string{"panic", "goroutine", "cgo", "shared libraries", "undefined reference"} {
		if strings.Contains(stdout+stderr, bad) {
			t.Errorf("doctor output mentions %q:\nstdout:\n%s\nstderr:\n%s", bad, stdout, stderr)
		}
	}

	code, _, stderr = run("docs", "-o", filepath.Join(dir, "elements.md"))
	if code != 2 || !strings.Contains(stderr, "docs needs a cgo build of gst-inspect-helper") {
		t.Errorf("docs in a CGO_ENABLED=0 build: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "elements.md")); err == nil {
		t.Error("docs in a CGO_ENABLED=0 build wrote a file")
	}
}
