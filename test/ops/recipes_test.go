package ops_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

func recipe(name string) string { return filepath.Join(harness.RepoRoot(), "pipelines", name) }

func size(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// The MPEG-TS recipe as written, with only SINK swapped for a local file:
// it relays, survives the encoder going away and coming back, and leaves a
// file with monotonic timestamps.
func TestRecipeMPEGTSOverTCPRunsLocally(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{})
	out := filepath.Join(t.TempDir(), "relay.mkv")
	env := harness.Env(t,
		"SOURCE=tcp://127.0.0.1:"+strconv.Itoa(srv.Port()),
		"SINK=matroskamux ! filesink location="+out,
		"STALL_TIMEOUT_MS=2000",
		"GST_LAUNCH_FLAGS=-m -e")
	l := harness.StartCommand(t, env, "bash", recipe("mpegts-tcp.sh"))
	harness.WaitUntil(t, 60*time.Second, "the recording to start", func() bool { return size(out) > 4096 })
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	l.WaitFor(30*time.Second, 1, "a restart", harness.Element("reconnectbin-restart"))
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	l.WaitFor(30*time.Second, 1, "recovery", harness.Element("reconnectbin-recovered"))
	grown := size(out)
	harness.WaitUntil(t, 30*time.Second, "the recording to grow after recovery", func() bool { return size(out) > grown+4096 })
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("recipe exited %d", code)
	}
	packets := harness.ProbePackets(t, out)
	if v := harness.DecodeOrderViolations(packets); v != 0 || len(packets) == 0 {
		t.Errorf("%d packets, %d going backwards", len(packets), v)
	}
}

// The HLS transcode recipe as written, ending in kvssink (the stand-in, with
// a static credential file instead of IMDS): one encoder configuration
// through an encoder restart, frames accepted after it.
func TestRecipeHLSTranscodeIntoKVSSink(t *testing.T) {
	srv := servers.NewHLSServer(t, servers.HLSOptions{StartSegments: 3})
	dir := t.TempDir()
	report := filepath.Join(dir, "kvssink.json")
	cred := filepath.Join(dir, "credential")
	exp := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	if err := os.WriteFile(cred, []byte("CREDENTIALS AKIATESTRECIPE0001 "+exp+" recipe-secret recipe-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := harness.Env(t,
		"SOURCE="+srv.PlaylistURL(),
		"STREAM_NAME=recipe-test",
		"AWS_REGION=us-east-1",
		"CREDS=", // no IMDS here: the file above stands in for kvscredprovider's
		"SINK=kvssink stream-name=recipe-test credential-path="+cred+" report="+report,
		"OUTPUT_CAPS=video/x-raw,format=I420,width=320,height=240,framerate=25/1",
		"STALL_TIMEOUT_MS=3000",
		"X264_PRESET=ultrafast",
		"GST_LAUNCH_FLAGS=-m -e")
	l := harness.StartCommand(t, env, "bash", recipe("hls-transcode.sh"))
	accepted := func() uint64 {
		rep, err := kvssinkstandin.ReadReport(report)
		if err != nil {
			return 0
		}
		return rep.TotalAccepted()
	}
	harness.WaitUntil(t, 60*time.Second, "kvssink to accept frames", func() bool { return accepted() > 25 })
	if err := srv.RestartEncoder(true); err != nil {
		t.Fatal(err)
	}
	before := accepted()
	l.WaitFor(60*time.Second, 1, "recovery after the encoder restart", harness.Element("reconnectbin-recovered"))
	harness.WaitUntil(t, 30*time.Second, "frames after recovery", func() bool { return accepted() > before+25 })
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("recipe exited %d", code)
	}
	rep, err := kvssinkstandin.ReadReport(report)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CapsChanges != 0 || rep.RunningTimeViolations != 0 || len(rep.Errors) != 0 {
		t.Errorf("kvssink: %d caps changes, %d running-time violations, errors %v", rep.CapsChanges, rep.RunningTimeViolations, rep.Errors)
	}
}
