package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// EnvKVSSinkPluginDir names the folder holding a real kvssink
// (libgstkvssink.so from the KVS producer SDK C++; the SDK's shared
// libraries found by its RPATH, as make kvssink builds it, or next to it).
// make test-kvssink sets it to run the real-kvssink tests; without it they
// skip and the stand-in is used everywhere.
const EnvKVSSinkPluginDir = "KVSSINK_PLUGIN_DIR"

// kvssinkDirHint says how to get a folder that works.
const kvssinkDirHint = "point it at the folder holding a real libgstkvssink.so (make kvssink builds one and prints it), or unset it"

// kvssinkLibrary is the real element's plugin file.
const kvssinkLibrary = "libgstkvssink.so"

// RealKVSSink reports whether the tests run against a real kvssink, and
// the folder holding it: KVSSINK_PLUGIN_DIR is set. A folder without
// libgstkvssink.so is not treated as "no real kvssink": KVSSinkEnv then
// fails the test, so a wrong path does not turn into silent skips.
func RealKVSSink() (dir string, ok bool) {
	dir = os.Getenv(EnvKVSSinkPluginDir)
	return dir, dir != ""
}

// KVSSinkEnv is Env for a C host running the REAL kvssink against a local
// KVS endpoint (test/kvsendpoint) at controlPlaneURL: the kvsrelay build
// from TestPluginDir (which must be the shipped build without the stand-in,
// as make test-kvssink passes it) and the kvssink folder on
// GST_PLUGIN_PATH, the kvssink folder on LD_LIBRARY_PATH for the producer
// SDK's libraries, CONTROL_PLANE_URI pointing kvssink at the endpoint and
// AWS_DEFAULT_REGION (which kvssink prefers over aws-region). AWS
// credential variables are left out as by Env, so kvssink reads its
// credential-path file. extra ("KEY=VALUE") goes on top.
//
// It fails tb when not in real mode, when the folder has no
// libgstkvssink.so, or when gst-inspect-1.0 resolves kvssink to any other
// file (the stand-in of a test build).
func KVSSinkEnv(tb testing.TB, controlPlaneURL, region string, extra ...string) []string {
	tb.Helper()
	return kvssinkEnv(tb, TestPluginDir(tb), controlPlaneURL, region, extra...)
}

// StandInFactory is the factory name of the kvssink stand-in in
// KVSSinkCalibrationEnv's pipelines.
const StandInFactory = "kvssinkstandin"

// EnvStandInPluginDir names the folder holding the test build of
// libgstkvsrelay.so (with the stand-in) for the calibration tests, which
// run the real kvssink while KVSRELAY_TEST_PLUGIN_DIR is the shipped build
// (make test-kvssink sets both).
const EnvStandInPluginDir = "KVSRELAY_STANDIN_PLUGIN_DIR"

// KVSSinkCalibrationEnv is KVSSinkEnv with the test build of kvsrelay
// ($KVSRELAY_STANDIN_PLUGIN_DIR, else built into build-test/ like
// TestPluginDir does) instead of the shipped one, its kvssink stand-in
// registered as StandInFactory so that one pipeline can feed the real
// kvssink and the stand-in the same stream.
func KVSSinkCalibrationEnv(tb testing.TB, controlPlaneURL, region string, extra ...string) []string {
	tb.Helper()
	dir := os.Getenv(EnvStandInPluginDir)
	if dir == "" {
		buildOnce.Do(func() { buildDir, buildErr = buildTestPlugin() })
		if buildErr != nil {
			tb.Fatalf("building the test plugin: %v", buildErr)
		}
		dir = buildDir
	} else if _, err := os.Stat(filepath.Join(dir, "libgstkvsrelay.so")); err != nil {
		tb.Fatalf("%s=%s has no libgstkvsrelay.so: %v (run make build)", EnvStandInPluginDir, dir, err)
	}
	return kvssinkEnv(tb, dir, controlPlaneURL, region, append([]string{"KVSSINK_STANDIN_FACTORY=" + StandInFactory}, extra...)...)
}

func kvssinkEnv(tb testing.TB, pluginDir, controlPlaneURL, region string, extra ...string) []string {
	tb.Helper()
	dir, ok := RealKVSSink()
	if !ok {
		tb.Fatalf("KVSSinkEnv needs %s (the real-kvssink mode)", EnvKVSSinkPluginDir)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatalf("%s=%s: %v", EnvKVSSinkPluginDir, os.Getenv(EnvKVSSinkPluginDir), err)
	}
	if problem := kvssinkDirProblem(dir); problem != "" {
		tb.Fatal(problem)
	}
	lib := filepath.Join(dir, kvssinkLibrary)
	ldPath := dir
	if cur := os.Getenv("LD_LIBRARY_PATH"); cur != "" {
		ldPath += string(os.PathListSeparator) + cur
	}
	realEnv := []string{
		// Later entries win in os/exec, so these replace Env's values.
		"GST_PLUGIN_PATH=" + pluginDir + string(os.PathListSeparator) + dir,
		"LD_LIBRARY_PATH=" + ldPath,
		"CONTROL_PLANE_URI=" + controlPlaneURL,
		"AWS_DEFAULT_REGION=" + region,
	}
	env := Env(tb, append(realEnv, extra...)...)

	out, code := Run(tb, env, 60*time.Second, "gst-inspect-1.0", "kvssink")
	if code != 0 {
		tb.Fatalf("GStreamer cannot load kvssink from %s=%s (gst-inspect-1.0 kvssink exit %d; its libraries, such as "+
			"libKinesisVideoProducer.so, must be found by its RPATH or beside it, and it must be built for this "+
			"GStreamer: make kvssink builds one that is):\n%s", EnvKVSSinkPluginDir, dir, code, out)
	}
	if got := inspectedFilename(out); got != lib {
		tb.Fatalf("kvssink resolves to %q, not %s (is KVSRELAY_TEST_PLUGIN_DIR the test build with the stand-in? "+
			"make test-kvssink passes the shipped build):\n%s", got, lib, out)
	}
	return env
}

// kvssinkDirProblem is why dir (KVSSINK_PLUGIN_DIR, absolute) cannot be
// the real kvssink's folder, "" when it can: it must be a folder holding
// libgstkvssink.so. Said before gst-inspect-1.0 runs, whose own message for
// a missing folder is just "No such element or plugin".
func kvssinkDirProblem(dir string) string {
	fi, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		return fmt.Sprintf("%s=%s does not exist: %s", EnvKVSSinkPluginDir, dir, kvssinkDirHint)
	case err != nil:
		return fmt.Sprintf("%s=%s: %v", EnvKVSSinkPluginDir, dir, err)
	case !fi.IsDir():
		return fmt.Sprintf("%s=%s is a file, not a folder: %s", EnvKVSSinkPluginDir, dir, kvssinkDirHint)
	}
	lib := filepath.Join(dir, kvssinkLibrary)
	fi, err = os.Stat(lib)
	switch {
	case os.IsNotExist(err):
		return fmt.Sprintf("%s=%s holds no %s: %s", EnvKVSSinkPluginDir, dir, kvssinkLibrary, kvssinkDirHint)
	case err != nil:
		return fmt.Sprintf("%s=%s: %v", EnvKVSSinkPluginDir, dir, err)
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("%s=%s: %s is not a file: %s", EnvKVSSinkPluginDir, dir, kvssinkLibrary, kvssinkDirHint)
	}
	return ""
}

// inspectedFilename is the "Filename" of gst-inspect-1.0's plugin details
// (warnings about other files are printed too, so only that line counts).
func inspectedFilename(out string) string {
	m := inspectFilename.FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return m[1]
}

var inspectFilename = regexp.MustCompile(`(?m)^\s*Filename\s+(\S+)\s*$`)
