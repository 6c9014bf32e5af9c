package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeSettings(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cameras.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const settings = `shared:
  RECIPE: rtsp-passthrough
  AWS_REGION: eu-west-1
cameras:
  lobby:
    SOURCE: rtsp://relay:s3cret@10.0.0.21/stream1
    STREAM_NAME: site-1-lobby
  dock:
    SOURCE: rtsp://10.0.0.22/stream1
    STREAM_NAME: site-1-dock
    RTSP_PASSWORD: hunter2
`

func TestCheckListsCamerasWithoutPasswords(t *testing.T) {
	path := writeSettings(t, settings)
	code, out, errOut := runCLI(t, "check", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"lobby: rtsp-passthrough rtsp://relay:***@10.0.0.21/stream1 -> site-1-lobby", "dock:", "2 cameras, valid"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, "s3cret") || strings.Contains(out+errOut, "hunter2") {
		t.Errorf("check printed a password:\n%s%s", out, errOut)
	}
}

func TestBadInputIsNamed(t *testing.T) {
	bad := writeSettings(t, "shared: {RECIPE: testpattern}\ncameras:\n  a: {STREAMNAME: x}\n")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"check"}, 2, "check: name one settings file"},
		{[]string{"check", "/nonexistent/cameras.yaml"}, 1, "/nonexistent/cameras.yaml"},
		{[]string{"check", bad}, 1, bad + ": camera a: unknown setting STREAMNAME (did you mean STREAM_NAME?)"},
		{[]string{"configmap", bad}, 2, "-name and -namespace are required"},
		{[]string{"apply", "-bogus", bad}, 2, "flag provided but not defined: -bogus"},
	}
	for _, tc := range cases {
		code, _, errOut := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

// apply runs systemctl (a stand-in script recording its arguments) after
// writing the files, and reports what it did.
func TestApplyRunsSystemctl(t *testing.T) {
	path := writeSettings(t, settings)
	dir := t.TempDir()
	log := filepath.Join(t.TempDir(), "systemctl.log")
	fake := filepath.Join(t.TempDir(), "systemctl")
	script := "#!/bin/sh\necho \"$*\" >> " + log + "\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "apply", "-dir", dir, "-systemctl", fake, path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	calls, _ := os.ReadFile(log)
	if got := strings.TrimSpace(string(calls)); got != "enable --now kvs-relay@dock.service kvs-relay@lobby.service" {
		t.Errorf("systemctl ran %q", got)
	}
	if !strings.Contains(out, "started: dock, lobby") {
		t.Errorf("output %q", out)
	}
	env, err := os.ReadFile(filepath.Join(dir, "dock.env"))
	if err != nil || !strings.Contains(string(env), "RTSP_PASSWORD=hunter2\n") || !strings.Contains(string(env), "STREAM_NAME=site-1-dock\n") {
		t.Errorf("dock.env: %v\n%s", err, env)
	}

	// -no-systemctl writes and prints the commands instead.
	dir2 := t.TempDir()
	code, out, _ = runCLI(t, "apply", "-dir", dir2, "-no-systemctl", path)
	if code != 0 || !strings.Contains(out, "run: systemctl enable --now kvs-relay@dock.service kvs-relay@lobby.service") {
		t.Errorf("-no-systemctl: exit %d, %q", code, out)
	}

	// A failing systemctl is an error.
	failing := filepath.Join(t.TempDir(), "systemctl")
	if err := os.WriteFile(failing, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "apply", "-dir", t.TempDir(), "-systemctl", failing, path); code != 1 || !strings.Contains(errOut, "systemctl enable --now") {
		t.Errorf("failing systemctl: exit %d, %q", code, errOut)
	}
}

func TestConfigMapIsAStrictConfigMap(t *testing.T) {
	path := writeSettings(t, strings.Replace(settings, "    RTSP_PASSWORD: hunter2\n", "", 1))
	code, out, errOut := runCLI(t, "configmap", "-name", "kvs-relay-site-1", "-namespace", "kvs-relay",
		"-label", "kvsrelay.io/camera-group=site-1", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(out), &cm); err != nil {
		t.Fatalf("not a ConfigMap: %v\n%s", err, out)
	}
	if cm.Kind != "ConfigMap" || cm.Name != "kvs-relay-site-1" || cm.Namespace != "kvs-relay" ||
		cm.Labels["kvsrelay.io/camera-group"] != "site-1" || cm.Data["dock.STREAM_NAME"] != "site-1-dock" || cm.Data["RECIPE"] != "rtsp-passthrough" {
		t.Errorf("ConfigMap %+v", cm)
	}
	code, _, errOut = runCLI(t, "configmap", "-name", "n", "-namespace", "ns", writeSettings(t, settings))
	if code != 1 || !strings.Contains(errOut, "camera dock: RTSP_PASSWORD is a secret") || strings.Contains(errOut, "hunter2") {
		t.Errorf("a password: exit %d, %q", code, errOut)
	}
}
