// Package harness runs kvsrelay's elements the two ways users meet them: as
// gst-launch-1.0 lines in a C host loading the freshly built test .so (a
// subprocess), and as in-process pipelines with the elements registered
// statically. Children scan only the plugin folder under test and
// GStreamer's own (never the user's or GST_PLUGIN_PATH), into a registry of
// the tests' own, so a kvssink (or an installed kvsrelay) on the host can
// never mix in; every child process is cleaned up with the test.
package harness

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// RepoRoot is the repository's top folder, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// TestPluginDir is the folder holding the test build of libgstkvsrelay.so
// (with the kvssink stand-in). `make test` builds it and passes it through
// KVSRELAY_TEST_PLUGIN_DIR; a plain `go test` builds it here once, under a
// file lock because test packages run in parallel.
func TestPluginDir(tb testing.TB) string {
	tb.Helper()
	if dir := os.Getenv("KVSRELAY_TEST_PLUGIN_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "libgstkvsrelay.so")); err != nil {
			tb.Fatalf("KVSRELAY_TEST_PLUGIN_DIR=%s has no libgstkvsrelay.so: %v (run make build)", dir, err)
		}
		return dir
	}
	buildOnce.Do(func() { buildDir, buildErr = buildTestPlugin() })
	if buildErr != nil {
		tb.Fatalf("building the test plugin: %v", buildErr)
	}
	return buildDir
}

func buildTestPlugin() (string, error) {
	root := RepoRoot()
	dir := filepath.Join(root, "build-test")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".test-plugin.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	cmd := exec.Command("go", "build", "-tags", "kvsrelay_testelements", "-buildmode=c-shared", "-trimpath",
		"-o", filepath.Join(dir, "libgstkvsrelay.so"), "./plugin")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(dir, "libgstkvsrelay.h"))
	return dir, nil
}

// SystemPluginDir is GStreamer's own plugin folder. Tests restrict the
// system plugin path to it, leaving out ~/.local/share/gstreamer-1.0/plugins
// where `make install` puts kvsrelay: loading that copy as well would start
// a second Go runtime in the host.
func SystemPluginDir() string {
	out, err := exec.Command("pkg-config", "--variable=pluginsdir", "gstreamer-1.0").Output()
	if err == nil {
		if dir := strings.TrimSpace(string(out)); dir != "" {
			return dir
		}
	}
	triplet := map[string]string{"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu", "arm": "arm-linux-gnueabihf",
		"386": "i386-linux-gnu", "ppc64le": "powerpc64le-linux-gnu", "s390x": "s390x-linux-gnu", "riscv64": "riscv64-linux-gnu"}[runtime.GOARCH]
	return filepath.Join("/usr/lib", triplet, "gstreamer-1.0")
}

// kvssinkInSystemPluginDir is why the system plugin folder cannot be used
// ("" when it can). GStreamer scans it recursively, and a real kvssink
// copied there (as some producer SDK guides suggest) would register
// "kvssink" beside the test build's stand-in: the tests could not tell
// which one ran. Checked once per test process.
var kvssinkInSystemPluginDir = sync.OnceValue(func() string { return systemKVSSinkProblem(SystemPluginDir()) })

// systemKVSSinkProblem looks for a kvssink plugin file under dir.
func systemKVSSinkProblem(dir string) string {
	var found string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error { //nolint:errcheck
		switch {
		case err != nil && d != nil && d.IsDir():
			return filepath.SkipDir // unreadable: GStreamer cannot load from it either
		case err != nil:
			return nil
		case !d.IsDir() && strings.HasPrefix(d.Name(), "libgstkvssink") && strings.HasSuffix(d.Name(), ".so"):
			found = path
			return filepath.SkipAll
		}
		return nil
	})
	if found == "" {
		return ""
	}
	return fmt.Sprintf("GStreamer's system plugin folder %s holds a real kvssink (%s), which every test pipeline "+
		"would load beside the test build's kvssink stand-in, so the tests cannot tell which one ran: move it to "+
		"a folder of its own (put that on GST_PLUGIN_PATH for your relays) and run the real-kvssink tests with "+
		"%s=that-folder make test-kvssink", dir, found, EnvKVSSinkPluginDir)
}

// CheckSystemPluginDir fails tb when GStreamer's system plugin folder holds a
// real kvssink (see kvssinkInSystemPluginDir). Env and InitGStreamer check it.
func CheckSystemPluginDir(tb testing.TB) {
	tb.Helper()
	if problem := kvssinkInSystemPluginDir(); problem != "" {
		tb.Fatal(problem)
	}
}

// EnvShippedPluginDir names the folder holding the shipped build of
// libgstkvsrelay.so (no kvssink stand-in); make test sets it.
const EnvShippedPluginDir = "KVSRELAY_PLUGIN_DIR"

// ShippedPluginDir is a private folder holding a copy of the shipped
// libgstkvsrelay.so from KVSRELAY_PLUGIN_DIR, and nothing else: GStreamer
// scans plugin folders recursively, and build/ also holds the test build
// (build-test/, with the kvssink stand-in). The test is skipped when
// KVSRELAY_PLUGIN_DIR is unset (a plain go test; make test sets it).
func ShippedPluginDir(tb testing.TB) string {
	tb.Helper()
	src := os.Getenv(EnvShippedPluginDir)
	if src == "" {
		tb.Skipf("%s is not set: make test points it at the folder holding the shipped libgstkvsrelay.so (build/)", EnvShippedPluginDir)
	}
	data, err := os.ReadFile(filepath.Join(src, "libgstkvsrelay.so"))
	if err != nil {
		tb.Fatalf("%s=%s: %v (run make build)", EnvShippedPluginDir, src, err)
	}
	dir := filepath.Join(tb.TempDir(), "shipped")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "libgstkvsrelay.so"), data, 0o644); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// awsCredentialVars are never inherited by a test's children: kvssink
// silently prefers them over its credential file.
var awsCredentialVars = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
	"AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_DISABLED",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_WEB_IDENTITY_TOKEN_FILE",
	"AWS_ROLE_ARN", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
}

// Env is the environment for a C host (gst-launch-1.0, gst-inspect-1.0)
// running the test build of the plugin: the current environment without AWS
// credentials or GStreamer paths, plus an isolated registry in a temp folder,
// then extra ("KEY=VALUE") on top.
func Env(tb testing.TB, extra ...string) []string {
	tb.Helper()
	return PluginEnv(tb, TestPluginDir(tb), extra...)
}

// PluginEnv is Env with pluginDir as the only GST_PLUGIN_PATH folder (and
// GStreamer's system folder), for a build other than the test build (see
// ShippedPluginDir). pluginDir is scanned recursively.
func PluginEnv(tb testing.TB, pluginDir string, extra ...string) []string {
	tb.Helper()
	CheckSystemPluginDir(tb)
	drop := map[string]bool{"GST_PLUGIN_PATH": true, "GST_PLUGIN_PATH_1_0": true, "GST_REGISTRY": true,
		"GST_REGISTRY_1_0": true, "GST_PLUGIN_SYSTEM_PATH": true, "GST_PLUGIN_SYSTEM_PATH_1_0": true,
		"NOTIFY_SOCKET": true, "WATCHDOG_USEC": true, "WATCHDOG_PID": true}
	for _, k := range awsCredentialVars {
		drop[k] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	env = append(env,
		"GST_REGISTRY="+sharedRegistry(tb, pluginDir),
		"GST_PLUGIN_PATH="+pluginDir,
		"GST_PLUGIN_SYSTEM_PATH_1_0="+SystemPluginDir(),
		"GST_DEBUG_NO_COLOR=1",
		// HOME-relative defaults (kvssink's .kvs/credential) must not touch the real home.
		"HOME="+tb.TempDir(),
	)
	return append(env, extra...)
}

// sharedRegistry is the registry file of children scanning pluginDir and
// GStreamer's system folder. It is shared by every test (and test binary,
// and run) with the same folders, rather than one per process: building a
// registry loads every system plugin (gst-plugin-scanner), 0.1 s warm but
// 4 s and more on a loaded 2-core machine, and that time counted against
// each test's first deadline (a gst-launch-1.0 that had printed nothing after
// 20 s). Sharing is safe: GStreamer checks every cached plugin file's size
// and mtime when it starts (a rebuilt plugin is rescanned), drops plugins
// no longer found, and writes the file by renaming a complete temp file.
func sharedRegistry(tb testing.TB, pluginDir string) string {
	tb.Helper()
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("kvsrelay-test-registry-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatalf("registry folder: %v", err)
	}
	abs, err := filepath.Abs(pluginDir)
	if err != nil {
		tb.Fatalf("plugin folder %s: %v", pluginDir, err)
	}
	key := sha256.Sum256([]byte(abs + "\x00" + SystemPluginDir()))
	return filepath.Join(dir, hex.EncodeToString(key[:8])+".bin")
}

// PrivateDir returns a new 0700 folder inside the test's temp folder, as a
// credential folder should be (t.TempDir gives 0755 folders, which
// kvscredprovider and kvscredfile warn about).
func PrivateDir(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "private")
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	return dir
}
