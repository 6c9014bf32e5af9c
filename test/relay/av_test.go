package relay_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// An audio+video relay into one muxer (collectpads, as kvssink is): the
// audio pad requested with "r.audio", a source that dies and returns, and
// fallback frames plus silence in between. Nothing deadlocks, both tracks run
// through the outage and the file decodes with monotonic timestamps.
func TestAudioVideoRelayWithFallbackIntoOneMuxer(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Audio: true}})
	out := filepath.Join(t.TempDir(), "av.mkv")
	aac := servers.AACEncoder(t)
	desc := fmt.Sprintf(`reconnectbin name=r stall-timeout=2000000000 fallback=black
		output-caps=video/x-raw,format=I420,width=320,height=240,framerate=25/1
		source="tcpclientsrc host=127.0.0.1 port=%d ! decodebin"
		! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! h264parse ! queue ! mux.
		r.audio ! audioconvert ! audioresample ! %s ! aacparse ! queue ! mux.
		matroskamux name=mux ! filesink location=%s`, srv.Port(), aac, out)
	l := harness.StartLaunch(t, harness.Env(t), strings.Fields(desc)...)
	harness.WaitUntil(t, 60*time.Second, "the recording to start", func() bool { return fileSize(out) > 8192 })
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	l.WaitFor(20*time.Second, 1, "fallback", harness.Element("reconnectbin-fallback-started"))
	grown := fileSize(out)
	harness.WaitUntil(t, 20*time.Second, "the recording to grow during the outage", func() bool { return fileSize(out) > grown+4096 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	l.WaitFor(30*time.Second, 1, "recovery", harness.Element("reconnectbin-recovered"))
	grown = fileSize(out)
	harness.WaitUntil(t, 20*time.Second, "the recording to grow after recovery", func() bool { return fileSize(out) > grown+8192 })
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("gst-launch-1.0 exited %d", code)
	}
	streams, code := harness.Run(t, nil, 30*time.Second, "ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", out)
	if code != 0 || !strings.Contains(streams, "video") || !strings.Contains(streams, "audio") {
		t.Fatalf("want a video and an audio track: %q", streams)
	}
	packets := harness.ProbePackets(t, out)
	if v := harness.DecodeOrderViolations(packets); v != 0 {
		t.Errorf("%d video packets going backwards", v)
	}
	if gap := harness.LargestGap(packets); gap > 200*time.Millisecond {
		t.Errorf("a %v hole in the video despite fallback", gap)
	}
	if msg := harness.DecodesCleanly(t, out); msg != "" {
		t.Errorf("does not decode cleanly: %s", msg)
	}
}
