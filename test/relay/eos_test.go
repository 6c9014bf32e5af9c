package relay_test

import (
	"fmt"
	"path/filepath"
	"strings"
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

// Ctrl-C (or systemctl stop, SIGINT under the units) while the relay is
// still starting ends it: gst-launch-1.0 -e sends the EOS while a sink is
// still prerolling, and an EOS push that waited in reconnectbin held the
// pipeline's state lock the preroll needed, so the process hung until
// systemd's SIGKILL. Interrupted the moment reconnectbin reaches PAUSED,
// several times over.
func TestInterruptWhileStartingEndsTheRelay(t *testing.T) {
	paused := func(m harness.Message) bool {
		return m.Type == "state-changed" && m.Source == "r" && strings.Contains(m.Text, "new-state=(GstState)paused")
	}
	for run := 1; run <= 5; run++ {
		l := harness.StartLaunch(t, harness.Env(t), "reconnectbin", "name=r", "source=videotestsrc is-live=true",
			"!", "fakesink")
		l.WaitFor(30*time.Second, 1, "reconnectbin in PAUSED", paused)
		l.Interrupt()
		if code := l.Wait(20 * time.Second); code != 0 {
			t.Fatalf("run %d: gst-launch-1.0 exited %d after Ctrl-C while starting", run, code)
		}
	}
}
