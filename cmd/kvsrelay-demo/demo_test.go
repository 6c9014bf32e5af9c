package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// demoPluginDir finds the plugin build to run the demo against: the folder
// named by KVSRELAY_TEST_PLUGIN_DIR (make test passes build-test),
// else the repository's build/.
func demoPluginDir(t *testing.T) string {
	if dir := os.Getenv("KVSRELAY_TEST_PLUGIN_DIR"); dir != "" {
		return dir
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "build"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, pluginFile)); err != nil {
		t.Skipf("no plugin build: set KVSRELAY_TEST_PLUGIN_DIR or run `make build` (%v)", err)
	}
	return dir
}

// TestDemoShort runs the real demo program for 20 s: a killed and a frozen
// source, a relay that must survive both, and an MKV that must check out.
func TestDemoShort(t *testing.T) {
	pluginDir := demoPluginDir(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "kvsrelay-demo")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the demo: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := filepath.Join(tmp, "demo.mkv")
	cmd := exec.CommandContext(ctx, bin, "-plugin-dir", pluginDir, "-duration", "20s", "-out", out, "-quiet")
	cmd.Dir = tmp
	// The demo needs no AWS access in MKV mode; do not hand it credentials.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	// On timeout the demo is SIGKILLed; its gst-launch children carry
	// Pdeathsig and go with it.
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	t.Logf("demo output:\n%s", output.String())
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("demo exited with status %d, want 0", exitErr.ExitCode())
	} else if err != nil {
		t.Fatalf("running the demo: %v", err)
	}

	m := restartsLine.FindStringSubmatch(output.String())
	if m == nil {
		t.Fatal("the summary has no Restarts line")
	}
	total, _ := strconv.Atoi(m[1])
	stalls, _ := strconv.Atoi(m[4])
	if total < 2 {
		t.Errorf("summary reports %d restarts, want at least 2 (one per fault)", total)
	}
	if stalls < 1 {
		t.Errorf("summary reports no stall restart; the frozen source must be caught by stall-timeout")
	}
	if !strings.Contains(output.String(), "RESULT: PASS") {
		t.Errorf("summary does not say PASS")
	}
	if st, err := os.Stat(out); err != nil || st.Size() == 0 {
		t.Errorf("the demo left no recording at %s (%v)", out, err)
	}
}
