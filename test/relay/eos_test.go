package relay_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
)

// With restart-on-eos=false a finite source (a recorded file) ends the
// stream: EOS reaches the pipeline and gst-launch-1.0 exits 0, every time.
// The source reaches EOS while the bin is still bringing it up, which once
// left a late state change bringing the instance back after its teardown
// (its streaming task kept the process from exiting); repeated runs catch
// that race.
func TestRestartOnEOSFalseEndsAFiniteSource(t *testing.T) {
	file := filepath.Join(t.TempDir(), "clip.ts")
	if out, code := harness.Run(t, nil, 60*time.Second, "gst-launch-1.0", "-q", "videotestsrc", "num-buffers=50",
		"!", "video/x-raw,width=320,height=240", "!", "x264enc", "speed-preset=ultrafast", "!", "h264parse",
		"!", "mpegtsmux", "!", "filesink", "location="+file); code != 0 {
		t.Fatalf("making the clip: exit %d: %s", code, out)
	}
	for run := 1; run <= 10; run++ {
		l := harness.StartLaunch(t, harness.Env(t), "reconnectbin",
			fmt.Sprintf("source=filesrc location=%s ! tsdemux ! h264parse", file), "restart-on-eos=false", "!", "fakesink")
		code := l.Wait(20 * time.Second)
		if !l.Exited() {
			t.Fatalf("run %d: gst-launch-1.0 still running 20 s after a 2 s clip", run)
		}
		if code != 0 || l.Count(harness.OfType("eos")) != 1 {
			t.Fatalf("run %d: exit %d with %d EOS messages, want exit 0 after one EOS", run, code, l.Count(harness.OfType("eos")))
		}
	}
}
