package pipelines_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const kvsCaps = "video/x-h264,stream-format=avc,alignment=au"

// recipes lists every recipe with the environment it needs and what its
// reconnectbin must wrap.
var recipes = []struct {
	script    string
	env       []string
	inner     []string // element names inside reconnectbin, in order
	transcode bool     // decodes and re-encodes: output-caps and x264enc expected
}{
	{"hls-transcode.sh", []string{"SOURCE=https://cam.example/live/index.m3u8"}, []string{"souphttpsrc", "hlsdemux", "decodebin"}, true},
	{"rtsp-passthrough.sh", []string{"SOURCE=rtsp://10.0.0.21/stream1"}, []string{"rtspsrc", "rtph264depay", "h264parse"}, false},
	{"srt-caller.sh", []string{"SOURCE=srt://encoder.example:8888"}, []string{"srtsrc", "tsdemux", "h264parse"}, false},
	{"srt-listener.sh", nil, []string{"srtsrc", "tsdemux", "h264parse"}, false},
	{"mpegts-tcp.sh", []string{"SOURCE=tcp://10.0.0.30:9000"}, []string{"tcpclientsrc", "tsdemux", "h264parse"}, false},
	{"mpegts-udp.sh", nil, []string{"udpsrc", "tsdemux", "h264parse"}, false},
	{"testpattern.sh", nil, []string{"videotestsrc", "timeoverlay"}, true},
}

// baseEnv is the whole environment a script run gets: nothing inherited, so
// no AWS_* variable of the machine leaks in.
func baseEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "LANG=C"}, extra...)
}

type runResult struct {
	stdout, stderr string
	code           int
}

func runScript(t *testing.T, script string, env []string) runResult {
	t.Helper()
	cmd := exec.Command("./" + script)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", script, err)
	}
	return runResult{out.String(), errb.String(), code}
}

// dryRun returns the command line a recipe prints with DRY_RUN=1.
func dryRun(t *testing.T, script string, env ...string) string {
	t.Helper()
	r := runScript(t, script, baseEnv(append(env, "DRY_RUN=1")...))
	if r.code != 0 {
		t.Fatalf("%s DRY_RUN=1 exited %d: %s", script, r.code, r.stderr)
	}
	line := strings.TrimSuffix(r.stdout, "\n")
	if strings.Contains(line, "\n") || line == "" {
		t.Fatalf("%s DRY_RUN=1 printed %q, want one line", script, r.stdout)
	}
	return line
}

// shellWords splits a printed command line the way bash would run it.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	out, err := exec.Command("bash", "-c", `eval "a=($1)"; printf '%s\0' "${a[@]}"`, "_", line).Output()
	if err != nil {
		t.Fatalf("bash cannot parse the printed command %q: %v", line, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// stubLaunch puts a gst-launch-1.0 on PATH that records its arguments and
// its PID instead of running a pipeline.
func stubLaunch(t *testing.T) (pathEnv string, argv func() []string, pid func() int) {
	t.Helper()
	dir := t.TempDir()
	rec := filepath.Join(dir, "argv")
	stub := "#!/usr/bin/env bash\nprintf '%s\\0' \"$@\" > " + strconv.Quote(rec) + "\necho $$ > " + strconv.Quote(rec+".pid") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "gst-launch-1.0"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	argv = func() []string {
		b, err := os.ReadFile(rec)
		if err != nil {
			t.Fatalf("gst-launch-1.0 was not run: %v", err)
		}
		return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	}
	pid = func() int {
		b, err := os.ReadFile(rec + ".pid")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	return "PATH=" + dir + ":" + os.Getenv("PATH"), argv, pid
}

// descriptionArgs is a printed gst-launch-1.0 command without the program
// name and its leading options: the pipeline description's words.
func descriptionArgs(command []string) []string {
	args := command[1:]
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		args = args[1:]
	}
	return args
}

// elements splits gst-launch arguments into elements: at the "!" links, and
// where a bare word (no "=") starts an unlinked element, as
// "kvscredprovider reconnectbin ..." does.
func elements(argv []string) [][]string {
	var out [][]string
	cur := []string{}
	for _, a := range argv {
		switch {
		case a == "!":
			out = append(out, cur)
			cur = []string{}
		case len(cur) > 0 && !strings.Contains(a, "="):
			out = append(out, cur)
			cur = []string{a}
		default:
			cur = append(cur, a)
		}
	}
	return append(out, cur)
}

// gstTokens splits a gst-launch description at whitespace outside double
// quotes, keeping backslash escapes, like gst's parser sees it.
func gstTokens(desc string) []string {
	var toks []string
	var cur strings.Builder
	inq, esc, have := false, false, false
	for _, r := range desc {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			cur.WriteRune(r)
			esc, have = true, true
		case r == '"':
			cur.WriteRune(r)
			inq, have = !inq, true
		case (r == ' ' || r == '\t' || r == '\n') && !inq:
			if have {
				toks = append(toks, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		toks = append(toks, cur.String())
	}
	return toks
}

// gstUnquote is what gst's parser does with a quoted property value: drop
// the outer quotes and the escaping backslashes.
func gstUnquote(t *testing.T, v string) string {
	t.Helper()
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	var b strings.Builder
	esc := false
	for _, r := range v[1 : len(v)-1] {
		if !esc && r == '\\' {
			esc = true
			continue
		}
		esc = false
		b.WriteRune(r)
	}
	return b.String()
}

// prop returns the value of name=... in one element's words.
func prop(el []string, name string) (string, bool) {
	for _, w := range el[1:] {
		if v, ok := strings.CutPrefix(w, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

func findElement(els [][]string, name string) ([]string, int) {
	for i, el := range els {
		if len(el) > 0 && el[0] == name {
			return el, i
		}
	}
	return nil, -1
}

func TestScriptsPassBashSyntaxCheck(t *testing.T) {
	files, _ := filepath.Glob("*.sh")
	files = append(files, "kvs-relay-run")
	if len(files) < 10 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
	for _, r := range recipes {
		fi, err := os.Stat(r.script)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", r.script)
		}
		body, _ := os.ReadFile(r.script)
		if !strings.Contains(string(body), "set -euo pipefail") {
			t.Errorf("%s lacks set -euo pipefail", r.script)
		}
	}
}

func TestDryRunPrintsExactlyWhatRuns(t *testing.T) {
	for _, r := range recipes {
		t.Run(r.script, func(t *testing.T) {
			printed := shellWords(t, dryRun(t, r.script, r.env...))

			pathEnv, argv, pid := stubLaunch(t)
			cmd := exec.Command("./" + r.script)
			cmd.Env = append(baseEnv(r.env...), pathEnv)
			cmd.Env[0] = pathEnv
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\n%s", r.script, err, stderr.String())
			}
			ran := append([]string{"gst-launch-1.0"}, argv()...)
			if !reflect.DeepEqual(printed, ran) {
				t.Fatalf("DRY_RUN printed\n%q\nbut the script ran\n%q", printed, ran)
			}
			// exec, not a child: gst-launch must be the unit's main process.
			if got := pid(); got != cmd.Process.Pid {
				t.Errorf("gst-launch ran as PID %d, the script was %d: the script must exec it", got, cmd.Process.Pid)
			}
			if !strings.Contains(stderr.String(), "running: gst-launch-1.0 ") {
				t.Errorf("no 'running:' log line on stderr: %q", stderr.String())
			}
		})
	}
}

// systemctl stop sends SIGINT (the unit's KillSignal); only with -e does
// gst-launch-1.0 answer it with EOS, so that kvssink uploads what it holds
// and closes its last fragment. GST_LAUNCH_FLAGS adds to -e, never drops it.
func TestRecipesEndWithEOSOnStop(t *testing.T) {
	for _, r := range recipes {
		t.Run(r.script, func(t *testing.T) {
			for _, env := range [][]string{r.env, append(append([]string(nil), r.env...), "GST_LAUNCH_FLAGS=-v")} {
				argv := shellWords(t, dryRun(t, r.script, env...))
				options := argv[1 : len(argv)-len(descriptionArgs(argv))]
				if !slices.Contains(options, "-e") {
					t.Errorf("%v: gst-launch-1.0 options %q lack -e", env, options)
				}
			}
		})
	}
}

func TestPipelinesForKVS(t *testing.T) {
	for _, r := range recipes {
		t.Run(r.script, func(t *testing.T) {
			argv := descriptionArgs(shellWords(t, dryRun(t, r.script, r.env...)))
			els := elements(argv)

			if els[0][0] != "kvscredprovider" {
				t.Errorf("first element %q, want kvscredprovider", els[0][0])
			}
			last := els[len(els)-1]
			if last[0] != "kvssink" {
				t.Fatalf("last element %q, want kvssink", last[0])
			}
			if v, _ := prop(last, "stream-name"); gstUnquote(t, v) != "kvsrelay-test" {
				t.Errorf("kvssink stream-name %q", v)
			}
			if caps := els[len(els)-2]; len(caps) != 1 || caps[0] != kvsCaps {
				t.Errorf("element before kvssink %q, want the capsfilter %s", caps, kvsCaps)
			}

			rb, _ := findElement(els, "reconnectbin")
			if rb == nil {
				t.Fatalf("no reconnectbin in %q", argv)
			}
			src, ok := prop(rb, "source")
			if !ok {
				t.Fatalf("reconnectbin without source: %q", rb)
			}
			inner := elements(gstTokens(gstUnquote(t, src)))
			var names []string
			for _, el := range inner {
				names = append(names, el[0])
			}
			if !reflect.DeepEqual(names, r.inner) {
				t.Errorf("reconnectbin wraps %v, want %v", names, r.inner)
			}
			if v, _ := prop(rb, "restart-on-eos"); v != "true" {
				t.Errorf("restart-on-eos=%q, want true: a relay must not end", v)
			}

			_, hasCaps := prop(rb, "output-caps")
			enc, _ := findElement(els, "x264enc")
			if r.transcode {
				if !hasCaps {
					t.Error("transcoding recipe without output-caps")
				}
				if enc == nil {
					t.Fatal("transcoding recipe without x264enc")
				}
				for want, val := range map[string]string{"tune": "zerolatency", "key-int-max": "50"} {
					if v, _ := prop(enc, want); v != val {
						t.Errorf("x264enc %s=%q, want %q", want, v, val)
					}
				}
			} else {
				if hasCaps || enc != nil {
					t.Error("passthrough recipe decodes or re-encodes")
				}
			}
			for _, el := range els {
				if el[0] == "queue" {
					if v, ok := prop(el, "leaky"); ok && v != "no" && v != "0" {
						t.Errorf("leaky queue %q hides a wedged kvssink from the watchdog", el)
					}
				}
			}
		})
	}
}

func TestLocalSinkIsOneVariableAway(t *testing.T) {
	const local = "matroskamux ! filesink location=/tmp/relay.mkv"
	for _, r := range recipes {
		t.Run(r.script, func(t *testing.T) {
			kvs := descriptionArgs(shellWords(t, dryRun(t, r.script, r.env...)))
			off := descriptionArgs(shellWords(t, dryRun(t, r.script, append(r.env, "SINK="+local)...)))
			joined := strings.Join(off, " ")
			if strings.Contains(joined, "kvscredprovider") || strings.Contains(joined, "kvssink") {
				t.Fatalf("local pipeline still has KVS parts: %s", joined)
			}
			if !strings.HasSuffix(joined, "! "+local) {
				t.Errorf("local pipeline does not end in the local sink: %s", joined)
			}
			// Same pipeline otherwise: drop kvscredprovider and kvssink.
			kvsEls, offEls := elements(kvs), elements(off)
			if !reflect.DeepEqual(kvsEls[1:len(kvsEls)-1], offEls[:len(offEls)-2]) {
				t.Errorf("the relay part differs:\nkvs:   %q\nlocal: %q", kvsEls, offEls)
			}
		})
	}
}

func TestSourceWithSpecialCharactersSurvivesNestedQuoting(t *testing.T) {
	weird := `https://cam.example/live/a b/index.m3u8?token="x y"&sig=a\b!c`
	argv := descriptionArgs(shellWords(t, dryRun(t, "hls-transcode.sh", "SOURCE="+weird)))
	rb, _ := findElement(elements(argv), "reconnectbin")
	src, _ := prop(rb, "source")
	inner := elements(gstTokens(gstUnquote(t, src)))
	loc, _ := prop(inner[0], "location")
	if got := gstUnquote(t, loc); got != weird {
		t.Fatalf("souphttpsrc location = %q, want %q", got, weird)
	}
}

func TestSecretsAreMaskedInPrintedCommandsOnly(t *testing.T) {
	const pw = `s3cr"t pa$$`
	env := []string{"SOURCE=rtsp://viewer:urlpass@10.0.0.21/stream1", "RTSP_USER=relay", "RTSP_PASSWORD=" + pw}
	line := dryRun(t, "rtsp-passthrough.sh", env...)
	for _, secret := range []string{"s3cr", "pa$$", "urlpass"} {
		if strings.Contains(line, secret) {
			t.Errorf("printed command shows the secret %q: %s", secret, line)
		}
	}
	if !strings.Contains(line, `user-pw=\"****\"`) || !strings.Contains(line, "viewer:****@") {
		t.Errorf("printed command does not show the masks: %s", line)
	}

	pathEnv, argv, _ := stubLaunch(t)
	cmd := exec.Command("./rtsp-passthrough.sh")
	cmd.Env = append(baseEnv(env...), pathEnv)
	cmd.Env[0] = pathEnv
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), "s3cr") || strings.Contains(stderr.String(), "urlpass") {
		t.Errorf("log line shows a secret: %s", stderr.String())
	}
	rb, _ := findElement(elements(argv()), "reconnectbin")
	src, _ := prop(rb, "source")
	inner := elements(gstTokens(gstUnquote(t, src)))
	if got, _ := prop(inner[0], "user-pw"); gstUnquote(t, got) != pw {
		t.Errorf("rtspsrc got user-pw %q, want the real password", gstUnquote(t, got))
	}
}

func TestCredentials(t *testing.T) {
	cases := []struct {
		name      string
		env       []string
		wantCreds string // first element, "" for none
		wantSink  string // a word expected in kvssink, "" for none
	}{
		{"default element", nil, "kvscredprovider", ""},
		{"element settings", []string{"CRED_SOURCE=imds", "CRED_ROLE=RelayRole", "CREDENTIAL_PATH=/run/kvs-relay/cam-1/credential"},
			`kvscredprovider source=imds role="RelayRole" credential-path="/run/kvs-relay/cam-1/credential"`, ""},
		{"sidecar: no element, path to kvssink", []string{"CREDS=", "CREDENTIAL_PATH=/run/kvs-relay-creds/cam-1/credential"},
			"", `credential-path="/run/kvs-relay-creds/cam-1/credential"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			argv := descriptionArgs(shellWords(t, dryRun(t, "testpattern.sh", tc.env...)))
			els := elements(argv)
			first := strings.Join(els[0], " ")
			hasCreds := els[0][0] == "kvscredprovider"
			if tc.wantCreds == "" && hasCreds {
				t.Errorf("kvscredprovider present: %s", first)
			}
			if tc.wantCreds != "" && first != tc.wantCreds {
				t.Errorf("pipeline starts %q, want %q", first, tc.wantCreds)
			}
			sink := strings.Join(els[len(els)-1], " ")
			if tc.wantSink != "" && !strings.Contains(sink, tc.wantSink) {
				t.Errorf("kvssink %q lacks %q", sink, tc.wantSink)
			}
		})
	}

	t.Run("static keys are warned about", func(t *testing.T) {
		r := runScript(t, "testpattern.sh", baseEnv("DRY_RUN=1", "AWS_ACCESS_KEY_ID=AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY=x"))
		if r.code != 0 || !strings.Contains(r.stderr, "AWS_ACCESS_KEY_ID") || strings.Contains(r.stderr, "AKIAEXAMPLE") {
			t.Errorf("exit %d, stderr %q: want a warning naming the variables, not their values", r.code, r.stderr)
		}
	})
}

func TestBadSettingsFailClearly(t *testing.T) {
	cases := []struct {
		script string
		env    []string
		names  string
	}{
		{"hls-transcode.sh", nil, "SOURCE"},
		{"rtsp-passthrough.sh", []string{"SOURCE=http://not-rtsp/"}, "SOURCE"},
		{"srt-caller.sh", []string{"SOURCE=srt://host-without-port"}, "SOURCE"},
		{"mpegts-tcp.sh", []string{"SOURCE=tcp://h:70000"}, "port 70000"},
		{"testpattern.sh", []string{"FALLBACK=grey"}, "FALLBACK"},
		{"testpattern.sh", []string{"FALLBACK=image"}, "FALLBACK_IMAGE"},
		{"testpattern.sh", []string{"STALL_TIMEOUT_MS=5s"}, "STALL_TIMEOUT_MS"},
		{"testpattern.sh", []string{"STREAM_NAME=cam 1"}, "STREAM_NAME"},
		{"mpegts-udp.sh", []string{"TRANSCODE=2"}, "TRANSCODE"},
		{"rtsp-passthrough.sh", []string{"SOURCE=rtsp://h/s", "AUDIO=g711"}, "AUDIO"},
		{"rtsp-passthrough.sh", []string{"SOURCE=rtsp://h/s", "AUDIO=aac", "AUDIO_RATE=8001"}, "AUDIO_RATE"},
		{"rtsp-passthrough.sh", []string{"SOURCE=rtsp://h/s", "AUDIO=aac", "AUDIO_CHANNELS=6"}, "AUDIO_CHANNELS"},
		{"rtsp-passthrough.sh", []string{"SOURCE=rtsp://h/s", "AUDIO=aac", "SINK=fakesink"}, "named kvs"},
		{"testpattern.sh", []string{"AUDIO=aac"}, "AUDIO"},
	}
	for _, tc := range cases {
		t.Run(tc.script+" "+strings.Join(tc.env, " "), func(t *testing.T) {
			r := runScript(t, tc.script, baseEnv(append(tc.env, "DRY_RUN=1")...))
			if r.code == 0 {
				t.Fatalf("accepted; printed %s", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.names) {
				t.Errorf("error %q does not name %s", r.stderr, tc.names)
			}
		})
	}
}

// Issue #16 part 5: AUDIO=aac links reconnectbin's audio pad through an AAC
// encoder to kvssink's audio pad in every recipe that has a camera;
// passthrough recipes decode what the camera sends outside reconnectbin,
// transcoding ones get it decoded (and silence in one fixed format while
// the camera is away). Without AUDIO the pipeline is video only.
func TestAudioIsOptIn(t *testing.T) {
	for _, r := range recipes {
		if r.script == "testpattern.sh" {
			continue
		}
		t.Run(r.script, func(t *testing.T) {
			if line := dryRun(t, r.script, r.env...); strings.Contains(line, "relay.audio") || strings.Contains(line, "avenc_aac") {
				t.Errorf("audio without AUDIO=aac: %s", line)
			}
			argv := descriptionArgs(shellWords(t, dryRun(t, r.script, append(r.env, "AUDIO=aac", "AUDIO_RATE=16000")...)))
			els := elements(argv)
			sink, _ := findElement(els, "kvssink")
			if v, _ := prop(sink, "name"); v != "kvs" {
				t.Fatalf("kvssink named %q, want kvs for the audio branch: %v", v, els)
			}
			branch, i := findElement(els, "relay.audio")
			if branch == nil {
				t.Fatalf("no relay.audio branch: %v", els)
			}
			var names []string
			for _, el := range els[i+1:] {
				names = append(names, el[0])
			}
			want := []string{"queue", "decodebin", "audiorate", "audioconvert", "audioresample", "audio/x-raw,rate=16000,channels=1", "avenc_aac", "aacparse",
				"audio/mpeg,mpegversion=4,stream-format=raw", "kvs."}
			rb, _ := findElement(els, "reconnectbin")
			if r.transcode {
				want = slices.Delete(want, 1, 2)
				if v, _ := prop(rb, "output-audio-caps"); v != "audio/x-raw,format=S16LE,layout=interleaved,rate=16000,channels=1" {
					t.Errorf("reconnectbin output-audio-caps %q", v)
				}
			} else if v, ok := prop(rb, "output-audio-caps"); ok {
				t.Errorf("passthrough reconnectbin has output-audio-caps %q", v)
			}
			if !slices.Equal(names, want) {
				t.Errorf("audio branch %v, want %v", names, want)
			}
		})
	}
}

func TestTranscodeSwitchForTransportStreams(t *testing.T) {
	argv := descriptionArgs(shellWords(t, dryRun(t, "mpegts-udp.sh", "TRANSCODE=1", "OUTPUT_CAPS=video/x-raw,width=640,height=360,framerate=30000/1001")))
	els := elements(argv)
	rb, _ := findElement(els, "reconnectbin")
	if v, _ := prop(rb, "output-caps"); gstUnquote(t, v) != "video/x-raw,width=640,height=360,framerate=30000/1001" {
		t.Errorf("output-caps %q", v)
	}
	if v, _ := prop(rb, "fallback"); v != "black" {
		t.Errorf("fallback %q, want black by default when transcoding", v)
	}
	enc, _ := findElement(els, "x264enc")
	if v, _ := prop(enc, "key-int-max"); v != "60" {
		t.Errorf("key-int-max %q, want 60 (2 s at 29.97 fps)", v)
	}
}

func TestRunScriptPicksTheRecipe(t *testing.T) {
	r := runScript(t, "kvs-relay-run", baseEnv("RECIPE=testpattern", "DRY_RUN=1", "RUNTIME_DIRECTORY=/run/kvs-relay/cam-1", "STREAM_NAME=cam-1"))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	els := elements(descriptionArgs(shellWords(t, strings.TrimSpace(r.stdout))))
	if v, _ := prop(els[0], "credential-path"); gstUnquote(t, v) != "/run/kvs-relay/cam-1/credential" {
		t.Errorf("credential-path %q, want the unit's runtime directory", v)
	}
	for _, bad := range []string{"", "../../bin/sh", "no-such-recipe"} {
		r := runScript(t, "kvs-relay-run", baseEnv("RECIPE="+bad, "DRY_RUN=1"))
		if r.code == 0 || !strings.Contains(r.stderr, "RECIPE") {
			t.Errorf("RECIPE=%q: exit %d, stderr %q; want a refusal naming RECIPE", bad, r.code, r.stderr)
		}
	}
}

// envFile reads a systemd EnvironmentFile the simple way systemd does for
// KEY=value lines (comments, blank lines, optional surrounding quotes).
func envFile(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			t.Fatalf("%s:%d: not KEY=value: %q", path, i+1, line)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		out = append(out, k+"="+v)
	}
	return out
}

func TestExampleEnvFileRuns(t *testing.T) {
	vars := envFile(t, "env/example-cam.env")
	r := runScript(t, "kvs-relay-run", baseEnv(append(vars, "DRY_RUN=1", "RUNTIME_DIRECTORY=/run/kvs-relay/example-cam")...))
	if r.code != 0 {
		t.Fatalf("the example settings do not run: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, `stream-name="HIKVision-2MP-Bullet-1-Stream"`) || !strings.Contains(r.stdout, "souphttpsrc") {
		t.Errorf("example settings not applied: %s", r.stdout)
	}
}

// A passthrough recipe has no decoded video: transcoding settings (one
// settings file serves every recipe) are ignored with one warning naming
// them, not refused, and never reach reconnectbin.
func TestPassthroughIgnoresTranscodeSettingsWithAWarning(t *testing.T) {
	for _, tc := range []struct {
		script, source, hint string
	}{
		{"rtsp-passthrough.sh", "SOURCE=rtsp://h/x", "transcoding recipe"},
		{"srt-caller.sh", "SOURCE=srt://h:9000", "TRANSCODE=1"},
		{"mpegts-udp.sh", "SOURCE=udp://0.0.0.0:5000", "TRANSCODE=1"},
	} {
		t.Run(tc.script, func(t *testing.T) {
			r := runScript(t, tc.script, baseEnv(tc.source, "DRY_RUN=1", "FALLBACK=black",
				"OUTPUT_CAPS=video/x-raw,width=1280,height=720", "KEY_INT_MAX=50"))
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			warnings := strings.Count(r.stderr, "warning:")
			if warnings != 1 || !strings.Contains(r.stderr, "ignoring FALLBACK, OUTPUT_CAPS, KEY_INT_MAX") || !strings.Contains(r.stderr, tc.hint) {
				t.Errorf("want one warning naming the ignored settings and pointing at %q, got %q", tc.hint, r.stderr)
			}
			rb, _ := findElement(elements(descriptionArgs(shellWords(t, strings.TrimSpace(r.stdout)))), "reconnectbin")
			for _, p := range []string{"fallback", "output-caps"} {
				if v, ok := prop(rb, p); ok {
					t.Errorf("passthrough reconnectbin got %s=%s", p, v)
				}
			}
		})
	}
	r := runScript(t, "rtsp-passthrough.sh", baseEnv("SOURCE=rtsp://h/x", "DRY_RUN=1", "FALLBACK=none"))
	if r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Errorf("FALLBACK=none on a passthrough recipe: exit %d, stderr %q; want no warning", r.code, r.stderr)
	}
}

// The example settings file works for every recipe with only RECIPE and the
// source changed, as its comments promise, run the way the unit runs it.
func TestExampleEnvFileRunsEveryRecipe(t *testing.T) {
	vars := envFile(t, "env/example-cam.env")
	sources := map[string]string{ // "" keeps the example's SOURCE
		"hls-transcode.sh":    "",
		"rtsp-passthrough.sh": "rtsp://10.0.0.21/stream1",
		"srt-caller.sh":       "srt://encoder.example:8888",
		"srt-listener.sh":     "srt://:8888",
		"mpegts-tcp.sh":       "tcp://10.0.0.30:9000",
		"mpegts-udp.sh":       "udp://239.1.1.1:5000",
		"testpattern.sh":      "",
	}
	for _, r := range recipes {
		t.Run(r.script, func(t *testing.T) {
			source, ok := sources[r.script]
			if !ok {
				t.Fatalf("no source for %s in this test", r.script)
			}
			var env []string
			changed := 0
			for _, kv := range vars {
				switch {
				case strings.HasPrefix(kv, "RECIPE="):
					kv = "RECIPE=" + strings.TrimSuffix(r.script, ".sh")
					changed++
				case strings.HasPrefix(kv, "SOURCE=") && source != "":
					kv = "SOURCE=" + source
				}
				env = append(env, kv)
			}
			if changed != 1 {
				t.Fatalf("example-cam.env has %d RECIPE= lines", changed)
			}
			res := runScript(t, "kvs-relay-run", baseEnv(append(env, "DRY_RUN=1", "RUNTIME_DIRECTORY=/run/kvs-relay/cam-1")...))
			if res.code != 0 {
				t.Fatalf("example settings with RECIPE=%s: exit %d: %s", strings.TrimSuffix(r.script, ".sh"), res.code, res.stderr)
			}
			els := elements(descriptionArgs(shellWords(t, strings.TrimSpace(res.stdout))))
			rb, _ := findElement(els, "reconnectbin")
			src, _ := prop(rb, "source")
			if inner := elements(gstTokens(gstUnquote(t, src))); inner[0][0] != r.inner[0] {
				t.Errorf("reconnectbin wraps %q, want %s first", inner[0][0], r.inner[0])
			}
			if last := els[len(els)-1]; last[0] != "kvssink" {
				t.Errorf("pipeline ends in %q, want kvssink", last[0])
			} else if v, _ := prop(last, "stream-name"); gstUnquote(t, v) != "HIKVision-2MP-Bullet-1-Stream" {
				t.Errorf("kvssink stream-name %s, want the example's", v)
			}
			fallback, _ := prop(rb, "fallback")
			ignored := strings.Contains(res.stderr, "ignoring FALLBACK")
			if r.transcode && (fallback != "black" || ignored) {
				t.Errorf("transcoding recipe: fallback=%q, stderr %q; want the example's black", fallback, res.stderr)
			}
			if !r.transcode && (fallback != "" || !ignored) {
				t.Errorf("passthrough recipe: fallback=%q, stderr %q; want it left out with a warning", fallback, res.stderr)
			}
		})
	}
}

// srtsrc derives its listen address and port from the URI when the URI is
// set: a mode=listener property after it listened on a random port. The mode
// must be in the URI; a mode the operator put there is kept.
func TestSRTModeIsInTheURI(t *testing.T) {
	for _, tc := range []struct {
		script string
		env    []string
		uri    string
	}{
		{"srt-listener.sh", nil, "srt://:8888?mode=listener"},
		{"srt-listener.sh", []string{"SOURCE=srt://127.0.0.1:9000"}, "srt://127.0.0.1:9000?mode=listener"},
		{"srt-caller.sh", []string{"SOURCE=srt://enc.example:9000?streamid=cam1"}, "srt://enc.example:9000?streamid=cam1&mode=caller"},
		{"srt-listener.sh", []string{"SOURCE=srt://:9000?mode=rendezvous"}, "srt://:9000?mode=rendezvous"},
	} {
		argv := descriptionArgs(shellWords(t, dryRun(t, tc.script, tc.env...)))
		rb, _ := findElement(elements(argv), "reconnectbin")
		src, _ := prop(rb, "source")
		srt := elements(gstTokens(gstUnquote(t, src)))[0]
		if uri, _ := prop(srt, "uri"); gstUnquote(t, uri) != tc.uri {
			t.Errorf("%s %v: srtsrc uri=%s, want %s", tc.script, tc.env, gstUnquote(t, uri), tc.uri)
		}
		if _, ok := prop(srt, "mode"); ok {
			t.Errorf("%s %v: srtsrc has a mode property, which the URI overrides: %q", tc.script, tc.env, srt)
		}
	}
}

// The default kvssink is sized to ride out OUTAGE_BUDGET_S of network
// outage at STREAM_KBPS (the sums of README.md), and rewinds as far as its
// buffer reaches after a failed putMedia call, in every recipe, unless
// KVSSINK_EXTRA names the property; bad numbers are named.
func TestKvssinkBufferIsSizedForTheOutageBudget(t *testing.T) {
	cases := []struct {
		env  []string
		want []string
		not  []string
	}{
		{nil, []string{"buffer-duration=150 storage-size=128 replay-duration=150"}, nil},
		{[]string{"STREAM_KBPS=8000", "OUTAGE_BUDGET_S=600"}, []string{"buffer-duration=630 storage-size=752 replay-duration=630"}, nil},
		{[]string{"BITRATE_KBPS=6000", "OUTAGE_BUDGET_S=300"}, []string{"buffer-duration=330 storage-size=296 replay-duration=330"}, nil},
		{[]string{"KVSSINK_EXTRA=storage-size=512"}, []string{"buffer-duration=150 replay-duration=150 storage-size=512"}, []string{"storage-size=128"}},
		{[]string{"KVSSINK_EXTRA=buffer-duration=60"}, []string{"storage-size=128 replay-duration=150 buffer-duration=60"}, []string{"buffer-duration=150"}},
		{[]string{"KVSSINK_EXTRA=replay-duration=40"}, []string{"buffer-duration=150 storage-size=128 replay-duration=40"}, []string{"replay-duration=150"}},
	}
	for _, recipe := range []string{"testpattern.sh", "rtsp-passthrough.sh"} {
		for _, tc := range cases {
			env := append([]string{"SOURCE=rtsp://10.0.0.1/s"}, tc.env...)
			cmd := dryRun(t, recipe, env...)
			for _, w := range tc.want {
				if !strings.Contains(cmd, w) {
					t.Errorf("%s %v: %q lacks %q", recipe, tc.env, cmd, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(cmd, n) {
					t.Errorf("%s %v: %q has %q", recipe, tc.env, cmd, n)
				}
			}
		}
	}
	r := runScript(t, "testpattern.sh", baseEnv("DRY_RUN=1", "OUTAGE_BUDGET_S=2m"))
	if r.code == 0 || !strings.Contains(r.stderr, `OUTAGE_BUDGET_S="2m" is not a non-negative integer`) {
		t.Errorf("OUTAGE_BUDGET_S=2m: exit %d, %q", r.code, r.stderr)
	}
}
