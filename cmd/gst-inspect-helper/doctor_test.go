package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/plugininfo"
)

// fakeHost answers commands from a table keyed by the command line;
// anything not in the table is "not installed".
type fakeHost struct {
	commands map[string]commandResult
	env      map[string]string
	files    map[string]string
	// extraEnv records the extra environment of every command run.
	extraEnv map[string][]string
}

func (h *fakeHost) run(_ context.Context, extraEnv []string, name string, args ...string) commandResult {
	line := strings.Join(append([]string{name}, args...), " ")
	if h.extraEnv == nil {
		h.extraEnv = map[string][]string{}
	}
	h.extraEnv[line] = extraEnv
	if res, ok := h.commands[line]; ok {
		return res
	}
	return commandResult{NotFound: true}
}

func (h *fakeHost) lookupEnv(k string) (string, bool) {
	v, ok := h.env[k]
	return v, ok
}

func (h *fakeHost) readFile(path string) ([]byte, error) {
	if s, ok := h.files[path]; ok {
		return []byte(s), nil
	}
	return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
}

// healthyHost is a relay host where every GStreamer check passes.
func healthyHost() *fakeHost {
	h := &fakeHost{
		commands: map[string]commandResult{
			"gst-inspect-1.0 --version": {Stdout: "gst-inspect-1.0 version 1.22.0\nGStreamer 1.22.0\nhttps://tracker.debian.org/pkg/gstreamer1.0\n"},
			"gst-inspect-1.0 kvsrelay":  {Stdout: pluginInspectOutput(plugininfo.Version, plugininfo.Elements)},
		},
		env:   map[string]string{},
		files: map[string]string{},
	}
	for _, el := range requiredElements {
		h.commands["gst-inspect-1.0 --exists "+el.name] = commandResult{}
	}
	return h
}

func pluginInspectOutput(version string, elements []string) string {
	var b strings.Builder
	b.WriteString("Plugin Details:\n  Name                     kvsrelay\n")
	b.WriteString("  Filename                 /usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstkvsrelay.so\n")
	b.WriteString("  Version                  " + version + "\n\n")
	for _, el := range elements {
		b.WriteString("  " + el + ": Some long name\n")
	}
	b.WriteString("\n  2 features:\n")
	return b.String()
}

// doctorRows runs the gst/env checks (not IMDS, which has its own tests).
func doctorRows(t *testing.T, h *fakeHost, envFile string) []checkResult {
	t.Helper()
	d := &doctor{doctorOptions: doctorOptions{Run: h.run, LookupEnv: h.lookupEnv, ReadFile: h.readFile, EnvFile: envFile}}
	if envFile != "" {
		d.loadEnvFile()
	}
	var rows []checkResult
	for _, c := range doctorChecks {
		if c.name == "imds" {
			continue
		}
		rows = append(rows, c.run(context.Background(), d)...)
	}
	return rows
}

func findRow(t *testing.T, rows []checkResult, check string) checkResult {
	t.Helper()
	for _, r := range rows {
		if r.Check == check {
			return r
		}
	}
	t.Fatalf("no %q row in %+v", check, rows)
	return checkResult{}
}

func TestDoctorHealthyHostPasses(t *testing.T) {
	rows := doctorRows(t, healthyHost(), "")
	for _, r := range rows {
		if r.Status != statusPass {
			t.Errorf("%s: %s %s, want PASS", r.Check, r.Status, r.Detail)
		}
	}
	if got := findRow(t, rows, "gstreamer version").Detail; got != "GStreamer 1.22.0" {
		t.Errorf("version detail = %q", got)
	}
	if got := findRow(t, rows, "kvsrelay plugin").Detail; !strings.Contains(got, "libgstkvsrelay.so") {
		t.Errorf("plugin detail %q does not say where the plugin is", got)
	}
}

func TestDoctorWithoutGstInspectSaysWhatToInstall(t *testing.T) {
	h := &fakeHost{env: map[string]string{}} // nothing installed
	rows := doctorRows(t, h, "")
	version := findRow(t, rows, "gstreamer version")
	if version.Status != statusFail || version.Detail != "gst-inspect-1.0 not found: install gstreamer1.0-tools (make deps)" {
		t.Errorf("version row = %+v", version)
	}
	// The later checks say once that they could not run, not nine times how to install.
	for _, check := range []string{"kvsrelay plugin", "elements"} {
		if r := findRow(t, rows, check); r.Status != statusFail || r.Detail != notChecked {
			t.Errorf("%s row = %+v", check, r)
		}
	}
	var out bytes.Buffer
	if err := writeTable(&out, rows); err != nil {
		t.Fatal(err)
	}
	if exitCode(rows) != 2 {
		t.Errorf("exit code %d, want 2", exitCode(rows))
	}
	if strings.Contains(out.String(), "goroutine") || strings.Contains(out.String(), "panic") {
		t.Errorf("table shows a stack trace:\n%s", out.String())
	}
}

func TestDoctorGStreamerVersion(t *testing.T) {
	for _, tc := range []struct {
		stdout string
		want   status
		detail string
	}{
		{"gst-inspect-1.0 version 1.22.0\nGStreamer 1.22.0\n", statusPass, "GStreamer 1.22.0"},
		{"gst-inspect-1.0 version 1.20.3\nGStreamer 1.20.3\n", statusPass, "GStreamer 1.20.3"},
		{"gst-inspect-1.0 version 1.18.4\nGStreamer 1.18.4\n", statusWarn, "GStreamer 1.18.4 is older than 1.20"},
		{"something else\n", statusWarn, "could not read the version"},
	} {
		h := healthyHost()
		h.commands["gst-inspect-1.0 --version"] = commandResult{Stdout: tc.stdout}
		r := findRow(t, doctorRows(t, h, ""), "gstreamer version")
		if r.Status != tc.want || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("for %q: got %s %q, want %s containing %q", tc.stdout, r.Status, r.Detail, tc.want, tc.detail)
		}
	}
}

func TestDoctorPluginCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		result commandResult
		env    map[string]string
		want   status
		detail []string
	}{
		{
			name:   "not installed",
			result: commandResult{ExitCode: 1, Stderr: "No such element or plugin 'kvsrelay'\n"},
			want:   statusFail,
			detail: []string{"No such element or plugin 'kvsrelay'", "make install", "GST_PLUGIN_PATH is not set"},
		},
		{
			name:   "not installed, path set",
			result: commandResult{ExitCode: 1, Stderr: "\nNo such element or plugin 'kvsrelay'\nmore\n"},
			env:    map[string]string{"GST_PLUGIN_PATH": "/opt/kvs/lib"},
			want:   statusFail,
			detail: []string{"gst-inspect-1.0 kvsrelay: No such element or plugin 'kvsrelay';", "GST_PLUGIN_PATH=/opt/kvs/lib"},
		},
		{
			name:   "older build lacking an element",
			result: commandResult{Stdout: pluginInspectOutput(plugininfo.Version, plugininfo.Elements[:1])},
			want:   statusFail,
			detail: []string{"lacks " + plugininfo.Elements[1], "make install"},
		},
		{
			name:   "other version",
			result: commandResult{Stdout: pluginInspectOutput("0.0.1", plugininfo.Elements)},
			want:   statusWarn,
			detail: []string{"version 0.0.1", "this helper is " + plugininfo.Version},
		},
		{
			name:   "gst-inspect hangs",
			result: commandResult{Err: errors.New("gst-inspect-1.0 kvsrelay: no answer within 2m0s")},
			want:   statusFail,
			detail: []string{"no answer within"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := healthyHost()
			h.commands["gst-inspect-1.0 kvsrelay"] = tc.result
			if tc.env != nil {
				h.env = tc.env
			}
			r := findRow(t, doctorRows(t, h, ""), "kvsrelay plugin")
			if r.Status != tc.want {
				t.Errorf("status %s, want %s (%s)", r.Status, tc.want, r.Detail)
			}
			for _, want := range tc.detail {
				if !strings.Contains(r.Detail, want) {
					t.Errorf("detail %q lacks %q", r.Detail, want)
				}
			}
		})
	}
}

func TestDoctorMissingElements(t *testing.T) {
	h := healthyHost()
	h.commands["gst-inspect-1.0 --exists kvssink"] = commandResult{ExitCode: 1}
	h.commands["gst-inspect-1.0 --exists x264enc"] = commandResult{ExitCode: 1}
	rows := doctorRows(t, h, "")

	kvssink := findRow(t, rows, "element kvssink")
	if kvssink.Status != statusWarn || !strings.Contains(kvssink.Detail, "amazon-kinesis-video-streams-producer-sdk-cpp") ||
		!strings.Contains(kvssink.Detail, "GST_PLUGIN_PATH") {
		t.Errorf("kvssink row = %+v", kvssink)
	}
	x264 := findRow(t, rows, "element x264enc")
	if x264.Status != statusFail || !strings.Contains(x264.Detail, "gstreamer1.0-plugins-ugly") {
		t.Errorf("x264enc row = %+v", x264)
	}
	if r := findRow(t, rows, "element h264parse"); r.Status != statusPass {
		t.Errorf("h264parse row = %+v", r)
	}
	if exitCode(rows) != 2 {
		t.Errorf("exit code %d, want 2", exitCode(rows))
	}
}

func TestDoctorAWSEnvironmentNamesVariablesNotValues(t *testing.T) {
	h := healthyHost()
	h.env = map[string]string{
		"AWS_ACCESS_KEY_ID":     "AKIAIOSFODNN7EXAMPLE",
		"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
		"AWS_REGION":            "eu-west-1",
	}
	rows := doctorRows(t, h, "")
	r := findRow(t, rows, "AWS_* environment")
	if r.Status != statusWarn {
		t.Errorf("status %s, want WARN", r.Status)
	}
	for _, want := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "silently override kvssink's credential file"} {
		if !strings.Contains(r.Detail, want) {
			t.Errorf("detail %q lacks %q", r.Detail, want)
		}
	}
	if strings.Contains(r.Detail, "AWS_SESSION_TOKEN") {
		t.Errorf("detail names AWS_SESSION_TOKEN, which is not set: %q", r.Detail)
	}
	var out bytes.Buffer
	if err := writeTable(&out, rows); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "7EXAMPLE"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("output shows a credential value %q", secret)
		}
	}
	if exitCode(rows) != 1 {
		t.Errorf("exit code %d, want 1 (warnings only)", exitCode(rows))
	}
}

func TestParseEnvFile(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       string
		want     []envAssignment
		problems []int // lines
	}{
		{"plain", "A=1\nB=two words\n", []envAssignment{{"A", "1", 1}, {"B", "two words", 2}}, nil},
		{"comments and blanks", "# c\n; also c\n\n  \nA=1 # not a comment\n", []envAssignment{{"A", "1 # not a comment", 5}}, nil},
		{"whitespace trimmed", "  KEY = value with  space  \t\n", []envAssignment{{"KEY", "value with  space", 1}}, nil},
		{"double quotes", `A="x \"y\" \\ \$z \n"` + "\n", []envAssignment{{"A", `x "y" \ $z \n`, 1}}, nil},
		{"single quotes literal", `A='a "b" \n'` + "\n", []envAssignment{{"A", `a "b" \n`, 1}}, nil},
		{"quoted whitespace kept", `A="  padded  "  ` + "\n", []envAssignment{{"A", "  padded  ", 1}}, nil},
		{"multi-line quote", "A=\"one\ntwo\"\nB=3\n", []envAssignment{{"A", "one\ntwo", 1}, {"B", "3", 3}}, nil},
		{"continuation", "A=one \\\ntwo\nB=3", []envAssignment{{"A", "one two", 1}, {"B", "3", 3}}, nil},
		{"comment continuation", "# c \\\nA=1\nB=2\n", []envAssignment{{"B", "2", 3}}, nil},
		{"empty value", "A=\nB=\"\"\n", []envAssignment{{"A", "", 1}, {"B", "", 2}}, nil},
		{"crlf", "A=1\r\nB=2\r\n", []envAssignment{{"A", "1", 1}, {"B", "2", 2}}, nil},
		{"no equals", "JUSTTEXT\nA=1\n", []envAssignment{{"A", "1", 2}}, []int{1}},
		{"bad name", "1A=x\nexport B=2\nC=3\n", []envAssignment{{"C", "3", 3}}, []int{1, 2}},
		{"unterminated quote", "A=1\nB=\"open\nC=2\n", []envAssignment{{"A", "1", 1}, {"B", "open\nC=2\n", 2}}, []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := parseEnvFile(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			var lines []int
			for _, p := range problems {
				lines = append(lines, p.Line)
			}
			if !reflect.DeepEqual(lines, tc.problems) {
				t.Errorf("problem lines %v (%v), want %v", lines, problems, tc.problems)
			}
		})
	}
}

func TestDoctorEnvFile(t *testing.T) {
	const path = "/etc/kvs-relay/cam1.env"
	h := healthyHost()
	h.files[path] = "# relay cam1\nSTREAM=cam1\nAWS_REGION=eu-west-1\nAWS_ACCESS_KEY_ID=\"AKIAIOSFODNN7EXAMPLE\"\n" +
		"GST_PLUGIN_PATH=/opt/kvs/lib\nAWS_SESSION_TOKEN='FwoGZXIvYXdzEXAMPLETOKEN'\n"
	rows := doctorRows(t, h, path)

	var envRows []checkResult
	for _, r := range rows {
		if r.Check == "env file" {
			envRows = append(envRows, r)
		}
	}
	if len(envRows) != 1 || envRows[0].Status != statusWarn {
		t.Fatalf("env file rows = %+v, want one WARN", envRows)
	}
	for _, want := range []string{path + ":4 sets AWS_ACCESS_KEY_ID", path + ":6 sets AWS_SESSION_TOKEN", "silently override"} {
		if !strings.Contains(envRows[0].Detail, want) {
			t.Errorf("detail %q lacks %q", envRows[0].Detail, want)
		}
	}
	for _, secret := range []string{"AKIAIOSFODNN7EXAMPLE", "FwoGZXIvYXdzEXAMPLETOKEN"} {
		if strings.Contains(envRows[0].Detail, secret) {
			t.Errorf("detail shows a credential value")
		}
	}
	// gst-inspect-1.0 looks where the relay's service will look.
	if got := h.extraEnv["gst-inspect-1.0 kvsrelay"]; !reflect.DeepEqual(got, []string{"GST_PLUGIN_PATH=/opt/kvs/lib"}) {
		t.Errorf("gst-inspect-1.0 ran with extra env %v, want the env file's GST_PLUGIN_PATH", got)
	}
}

func TestDoctorEnvFileCleanAndUnreadable(t *testing.T) {
	h := healthyHost()
	h.files["/etc/ok.env"] = "STREAM=cam1\nAWS_REGION=eu-west-1\n"
	r := findRow(t, doctorRows(t, h, "/etc/ok.env"), "env file")
	if r.Status != statusPass || !strings.Contains(r.Detail, "2 variables") {
		t.Errorf("clean file row = %+v", r)
	}

	h.files["/etc/broken.env"] = "STREAM=cam1\nNOEQUALS\n"
	r = findRow(t, doctorRows(t, h, "/etc/broken.env"), "env file")
	if r.Status != statusWarn || !strings.Contains(r.Detail, "/etc/broken.env:2") {
		t.Errorf("malformed file row = %+v", r)
	}

	r = findRow(t, doctorRows(t, h, "/etc/missing.env"), "env file")
	if r.Status != statusFail || !strings.Contains(r.Detail, "cannot read /etc/missing.env") {
		t.Errorf("missing file row = %+v", r)
	}

	for _, row := range doctorRows(t, h, "") {
		if row.Check == "env file" {
			t.Errorf("env file row without -env-file: %+v", row)
		}
	}
}

func TestExitCodeMapping(t *testing.T) {
	for _, tc := range []struct {
		statuses []status
		want     int
	}{
		{nil, 0},
		{[]status{statusPass, statusPass}, 0},
		{[]status{statusPass, statusWarn}, 1},
		{[]status{statusWarn, statusFail, statusPass}, 2},
		{[]status{statusFail}, 2},
	} {
		var rows []checkResult
		for _, s := range tc.statuses {
			rows = append(rows, checkResult{Check: "c", Status: s})
		}
		if got := exitCode(rows); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.statuses, got, tc.want)
		}
	}
}

func TestWriteTableAlignsColumns(t *testing.T) {
	var out bytes.Buffer
	err := writeTable(&out, []checkResult{
		{"gstreamer version", statusPass, "GStreamer 1.22.0"},
		{"IMDSv2", statusWarn, "not reachable"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines:\n%s", len(lines), out.String())
	}
	col := strings.Index(lines[0], "RESULT")
	detail := strings.Index(lines[0], "DETAIL")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "PASS") && !strings.HasPrefix(l[col:], "WARN") {
			t.Errorf("RESULT column not aligned in %q", l)
		}
		if l[detail-1] != ' ' || l[detail] == ' ' {
			t.Errorf("DETAIL column not aligned in %q", l)
		}
	}
}

// fakeIMDS serves IMDSv2 on 127.0.0.1: a token, then the role list.
func fakeIMDS(t *testing.T, roles string, rolesStatus int) *httptest.Server {
	t.Helper()
	const token = "test-token"
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, r *http.Request) {
		ttl := r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds")
		if ttl == "" {
			http.Error(w, "missing TTL", http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl)
		w.Write([]byte(token))
	})
	mux.HandleFunc("GET /latest/meta-data/iam/security-credentials/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Aws-Ec2-Metadata-Token") != token {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if rolesStatus != http.StatusOK {
			http.Error(w, "not found", rolesStatus)
			return
		}
		w.Write([]byte(roles))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func imdsRow(t *testing.T) checkResult {
	t.Helper()
	d := &doctor{doctorOptions: doctorOptions{LookupEnv: os.LookupEnv, IMDSTimeout: 10 * time.Second}}
	rows := checkIMDS(context.Background(), d)
	if len(rows) != 1 {
		t.Fatalf("IMDS rows = %+v", rows)
	}
	return rows[0]
}

func TestIMDSReachableWithRole(t *testing.T) {
	srv := fakeIMDS(t, "relay-cam-role", http.StatusOK)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	r := imdsRow(t)
	if r.Status != statusPass || !strings.Contains(r.Detail, "instance role relay-cam-role") || !strings.Contains(r.Detail, srv.URL) {
		t.Errorf("row = %+v", r)
	}
}

func TestIMDSReachableWithoutRole(t *testing.T) {
	srv := fakeIMDS(t, "", http.StatusNotFound)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	r := imdsRow(t)
	if r.Status != statusWarn || !strings.Contains(r.Detail, "no IAM role") {
		t.Errorf("row = %+v", r)
	}
}

func TestIMDSTokenRefused(t *testing.T) {
	// An IMDS that refuses tokens (IMDSv2 blocked, or not EC2 at all).
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", srv.URL)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "false")
	r := imdsRow(t)
	if r.Status != statusWarn || !strings.Contains(r.Detail, imdsUnreachable) || !strings.Contains(r.Detail, "HTTP 403") {
		t.Errorf("row = %+v", r)
	}
}

func TestIMDSDisabledByEnvironment(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	r := imdsRow(t)
	if r.Status != statusWarn || !strings.Contains(r.Detail, "AWS_EC2_METADATA_DISABLED=true") {
		t.Errorf("row = %+v", r)
	}
}

func TestDoctorFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"doctor", "-imds-timeout", "0s"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "-imds-timeout must be positive") {
		t.Errorf("-imds-timeout 0s: exit %d, stderr %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"frobnicate"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), `unknown subcommand "frobnicate"`) {
		t.Errorf("unknown subcommand: exit %d, stderr %q", code, errOut.String())
	}
}
