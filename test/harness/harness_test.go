package harness

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
)

func TestMain(m *testing.M) {
	InitGStreamer()
	os.Exit(m.Run())
}

// TestInitGStreamerLeavesNoRegistryBehind: the private registry folder is
// gone once GStreamer is up, and plugins still load (from the registry in
// memory) afterwards.
func TestInitGStreamerLeavesNoRegistryBehind(t *testing.T) {
	if registryDir == "" {
		t.Fatal("InitGStreamer did not record its registry folder")
	}
	if _, err := os.Stat(registryDir); !os.IsNotExist(err) {
		t.Fatalf("registry folder %s still there after InitGStreamer (stat: %v)", registryDir, err)
	}
	p := NewPipeline(t, "reconnectbin restart-on-eos=false source=\"videotestsrc num-buffers=5\" ! fakesink")
	p.Start()
	p.WaitFor(20*time.Second, 1, "EOS", MessageOfType(gst.MessageEOS))
	if _, err := os.Stat(registryDir); !os.IsNotExist(err) {
		t.Errorf("registry folder %s came back while a pipeline ran (stat: %v)", registryDir, err)
	}
}

func TestSystemPluginFolderWithRealKVSSinkIsRefused(t *testing.T) {
	dir := t.TempDir()
	if got := systemKVSSinkProblem(dir); got != "" {
		t.Errorf("empty folder: %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "libgstvideotestsrc.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := systemKVSSinkProblem(dir); got != "" {
		t.Errorf("folder without kvssink: %q", got)
	}
	// GStreamer scans the folder recursively, so a kvssink below it counts.
	sub := filepath.Join(dir, "kvs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(sub, "libgstkvssink.so")
	if err := os.WriteFile(lib, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got := systemKVSSinkProblem(dir)
	for _, want := range []string{lib, "kvssink stand-in", EnvKVSSinkPluginDir + "=that-folder make test-kvssink"} {
		if !strings.Contains(got, want) {
			t.Errorf("message lacks %q: %q", want, got)
		}
	}
	// This machine's own folder must be clean, or every harness user fails.
	CheckSystemPluginDir(t)
}

// A wrong KVSSINK_PLUGIN_DIR is said plainly, with what to do, before
// GStreamer's "no such element" could hide it.
func TestKVSSinkPluginDirProblems(t *testing.T) {
	root := t.TempDir()
	good := filepath.Join(root, "plugin")
	empty := filepath.Join(root, "empty")
	file := filepath.Join(root, "file")
	dirNamedLib := filepath.Join(root, "odd")
	for _, d := range []string{good, empty, filepath.Join(dirNamedLib, kvssinkLibrary)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(good, kvssinkLibrary), file} {
		if err := os.WriteFile(f, []byte("elf"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, dir string
		want      []string // in the message; none: no problem
	}{
		{"folder with the plugin", good, nil},
		{"missing folder", filepath.Join(root, "gone"), []string{"KVSSINK_PLUGIN_DIR=" + filepath.Join(root, "gone") + " does not exist", "make kvssink"}},
		{"a file", file, []string{"is a file, not a folder", "make kvssink"}},
		{"folder without the plugin", empty, []string{"holds no libgstkvssink.so", "make kvssink"}},
		{"plugin name is a folder", dirNamedLib, []string{"libgstkvssink.so is not a file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kvssinkDirProblem(tc.dir)
			if len(tc.want) == 0 && got != "" {
				t.Fatalf("unexpected problem: %s", got)
			}
			if len(tc.want) > 0 && got == "" {
				t.Fatal("no problem reported")
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("message lacks %q: %s", w, got)
				}
			}
		})
	}
}

// TestShippedPluginDirHoldsOnlyTheShippedBuild: the copy leaves the test
// build (build/test-plugins/, which GStreamer would find recursively) behind.
func TestShippedPluginDirHoldsOnlyTheShippedBuild(t *testing.T) {
	build := t.TempDir()
	if err := os.WriteFile(filepath.Join(build, "libgstkvsrelay.so"), []byte("shipped"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(build, "test-plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(build, "test-plugins", "libgstkvsrelay.so"), []byte("test"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvShippedPluginDir, build)
	dir := ShippedPluginDir(t)
	var files []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error { //nolint:errcheck
		if err == nil && path != dir {
			files = append(files, strings.TrimPrefix(path, dir+"/"))
		}
		return nil
	})
	if !slices.Equal(files, []string{"libgstkvsrelay.so"}) {
		t.Fatalf("%s holds %v, want only libgstkvsrelay.so", dir, files)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "libgstkvsrelay.so")); string(data) != "shipped" {
		t.Errorf("copied %q, want the shipped build", data)
	}
}
