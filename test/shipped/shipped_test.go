// Package shipped tests the build users install, build/libgstkvsrelay.so,
// in a C host: every other integration test runs the test build (with the
// kvssink stand-in). make test passes its folder as KVSRELAY_PLUGIN_DIR; a
// plain go test skips.
package shipped

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/plugininfo"
	"github.com/kvsrelay/kvsrelay/test/harness"
)

func TestMain(m *testing.M) {
	// The elements registered statically here are what the shipped .so
	// must show; this process never loads the .so.
	harness.InitGStreamer()
	os.Exit(m.Run())
}

// shippedEnv is a C host's environment seeing only a copy of the shipped
// build (never build/, whose test-plugins/ GStreamer would scan too) and
// GStreamer's own plugins, with a registry of its own.
func shippedEnv(t *testing.T) (env []string, lib string) {
	t.Helper()
	dir := harness.ShippedPluginDir(t)
	return harness.PluginEnv(t, dir), filepath.Join(dir, "libgstkvsrelay.so")
}

var (
	detailLine  = func(key string) *regexp.Regexp { return regexp.MustCompile(`(?m)^\s+` + key + `\s+(.+?)\s*$`) }
	featureLine = regexp.MustCompile(`(?m)^  ([a-z0-9_-]+): `)
)

func detail(t *testing.T, out, key string) string {
	t.Helper()
	m := detailLine(key).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("gst-inspect-1.0 output has no %s line:\n%s", key, out)
	}
	return m[1]
}

func TestShippedPluginProvidesBothElementsAndNoKVSSink(t *testing.T) {
	env, lib := shippedEnv(t)
	out, code := harness.Run(t, env, 60*time.Second, "gst-inspect-1.0", plugininfo.PluginName)
	if code != 0 {
		t.Fatalf("gst-inspect-1.0 %s: exit %d\n%s", plugininfo.PluginName, code, out)
	}
	if got := detail(t, out, "Filename"); got != lib {
		t.Errorf("Filename %s, want the shipped copy %s", got, lib)
	}
	if got := detail(t, out, "Version"); got != plugininfo.Version {
		t.Errorf("Version %s, want %s", got, plugininfo.Version)
	}
	var features []string
	for _, m := range featureLine.FindAllStringSubmatch(out, -1) {
		features = append(features, m[1])
	}
	slices.Sort(features)
	want := slices.Clone(plugininfo.Elements)
	slices.Sort(want)
	if !slices.Equal(features, want) {
		t.Errorf("the shipped plugin provides %v, want exactly %v (no kvssink stand-in)", features, want)
	}
	if !strings.Contains(out, "\n  2 features:\n  +-- 2 elements\n") {
		t.Errorf("feature count is not 2 elements:\n%s", out)
	}

	// kvssink, if GStreamer finds one at all here, is not the shipped plugin's.
	out, code = harness.Run(t, env, 60*time.Second, "gst-inspect-1.0", "kvssink")
	if code == 0 && strings.Contains(out, lib) {
		t.Errorf("gst-inspect-1.0 kvssink resolves to the shipped plugin:\n%s", out)
	}

	for _, name := range plugininfo.Elements {
		t.Run(name, func(t *testing.T) {
			out, code := harness.Run(t, env, 60*time.Second, "gst-inspect-1.0", name)
			if code != 0 {
				t.Fatalf("gst-inspect-1.0 %s: exit %d\n%s", name, code, out)
			}
			factory := gst.Find(name)
			if factory == nil {
				t.Fatalf("%s is not registered in this process", name)
			}
			for key, label := range map[string]string{"long-name": "Long-name", "klass": "Klass", "author": "Author", "description": "Description"} {
				want := factory.GetMetadata(key)
				if want == "" {
					t.Fatalf("%s has no %s in this process's registration", name, key)
				}
				if got := detail(t, out, label); got != want {
					t.Errorf("%s %s: shipped %q, code %q", name, label, got, want)
				}
			}
			if got := detail(t, out, "Filename"); got != lib {
				t.Errorf("%s comes from %s, want the shipped copy %s", name, got, lib)
			}
		})
	}
}

// TestShippedReconnectbinRunsToEOS: a finite source (restart-on-eos=false,
// else reconnectbin rebuilds it forever) takes gst-launch-1.0 from PLAYING
// through EOS to NULL, and the process exits 0.
func TestShippedReconnectbinRunsToEOS(t *testing.T) {
	env, _ := shippedEnv(t)
	out, code := harness.Run(t, env, 60*time.Second, "gst-launch-1.0", "-m",
		"reconnectbin", "restart-on-eos=false", "source=videotestsrc num-buffers=30", "!", "fakesink")
	if code != 0 {
		t.Fatalf("gst-launch-1.0 exited %d\n%s", code, out)
	}
	steps := []string{
		`Got message #\d+ from element "pipeline0" \(state-changed\): GstMessageStateChanged, old-state=\(GstState\)paused, new-state=\(GstState\)playing`,
		`Got EOS from element "pipeline0"`,
		`Setting pipeline to NULL`,
		`Freeing pipeline`,
	}
	rest := out
	for _, step := range steps {
		loc := regexp.MustCompile(step).FindStringIndex(rest)
		if loc == nil {
			t.Fatalf("gst-launch-1.0 output lacks %q after the previous step:\n%s", step, out)
		}
		rest = rest[loc[1]:]
	}
	if strings.Contains(out, "ERROR") || strings.Contains(out, "WARNING") {
		t.Errorf("gst-launch-1.0 printed an error or warning:\n%s", out)
	}
}

// TestBuildFolderAsWrittenInTheREADME: GST_PLUGIN_PATH=$PWD/build (the
// README's way to try the plugin without installing it) must find the
// shipped plugin and nothing else of ours. GStreamer scans that folder
// recursively, so a test build with the kvssink stand-in anywhere under
// build/ would be loaded too, and could even stand in for a real kvssink.
func TestBuildFolderAsWrittenInTheREADME(t *testing.T) {
	build := os.Getenv(harness.EnvShippedPluginDir)
	if build == "" {
		t.Skip(harness.EnvShippedPluginDir + " is not set (make test sets it to build/)")
	}
	var found []string
	filepath.WalkDir(build, func(path string, d os.DirEntry, err error) error { //nolint:errcheck
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".so") {
			found = append(found, strings.TrimPrefix(path, build+"/"))
		}
		return nil
	})
	if !slices.Equal(found, []string{"libgstkvsrelay.so"}) {
		t.Fatalf("%s holds the plugins %v; GStreamer would load every one of them, want only libgstkvsrelay.so", build, found)
	}
	env := harness.PluginEnv(t, build)
	out, code := harness.Run(t, env, 60*time.Second, "gst-inspect-1.0", "kvssink")
	if code == 0 && strings.Contains(out, build) {
		t.Errorf("with GST_PLUGIN_PATH=%s, kvssink resolves to a build of ours:\n%s", build, out)
	}
}
