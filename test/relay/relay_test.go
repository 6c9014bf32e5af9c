// Package relay_test runs reconnectbin the way relays run it: gst-launch-1.0
// lines against the freshly built test plugin, sources on real local servers
// that are killed, frozen and fault-injected, and assertions on what the
// downstream recorded.
package relay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
)

// relay is one gst-launch-1.0 relay recording what reconnectbin outputs,
// re-encoded, into an MKV file.
type relay struct {
	*harness.Launch
	out string
}

const encodeAndRecord = "videoconvert ! videoscale ! video/x-raw,width=320,height=240 ! " +
	"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! h264parse ! matroskamux ! filesink location=%s"

// startRelay runs reconnectbin with the given properties (each "name=value",
// the value unquoted: gst-launch receives it as one argument) in front of an
// encoder and an MKV file.
func startRelay(t *testing.T, props ...string) *relay {
	t.Helper()
	out := filepath.Join(t.TempDir(), "relay.mkv")
	args := append([]string{"reconnectbin"}, props...)
	args = append(args, "!")
	args = append(args, strings.Fields(fmt.Sprintf(encodeAndRecord, out))...)
	return &relay{Launch: harness.StartLaunch(t, harness.Env(t), args...), out: out}
}

// waitStreaming waits until data reached the sinks and the file grows.
func (r *relay) waitStreaming(t *testing.T) {
	t.Helper()
	r.WaitFor(60*time.Second, 1, "stream-start at the sink", harness.OfType("stream-start"))
	r.waitGrowth(t, 60*time.Second)
}

// waitGrowth waits until the recording grows.
func (r *relay) waitGrowth(t *testing.T, timeout time.Duration) {
	t.Helper()
	start := fileSize(r.out)
	harness.WaitUntil(t, timeout, "the recording to grow", func() bool { return fileSize(r.out) > start+2048 })
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// finish ends the relay the operator's way (Ctrl-C with -e: EOS) and checks
// that it had not quit before and exits cleanly now.
func (r *relay) finish(t *testing.T) []harness.Packet {
	t.Helper()
	if r.Exited() {
		t.Fatalf("gst-launch-1.0 quit by itself (exit %d) while its source was failing", r.ExitCode())
	}
	r.Interrupt()
	if code := r.Wait(30 * time.Second); code != 0 {
		t.Fatalf("gst-launch-1.0 exited %d after EOS", code)
	}
	if n := r.Count(harness.OfType("error")); n != 0 {
		t.Errorf("the pipeline bus carried %d ERRORs; the source's failures must stay inside reconnectbin", n)
	}
	packets := harness.ProbePackets(t, r.out)
	if len(packets) == 0 {
		t.Fatal("the recording has no video packets")
	}
	if v := harness.DecodeOrderViolations(packets); v != 0 {
		t.Errorf("%d packets with timestamps going backwards in the recording", v)
	}
	if msg := harness.DecodesCleanly(t, r.out); msg != "" {
		t.Errorf("the recording does not decode cleanly: %s", msg)
		for i, p := range packets {
			if i < 40 {
				t.Logf("packet %d: pts %v dts %v key %v", i, p.PTS, p.DTS, p.Key)
			}
		}
	}
	return packets
}

// restarts returns the reconnectbin-restart messages so far.
func (r *relay) restarts() []harness.Message {
	var out []harness.Message
	for _, m := range r.Messages() {
		if harness.Element("reconnectbin-restart")(m) {
			out = append(out, m)
		}
	}
	return out
}

func restartWithReason(reasons ...string) func(harness.Message) bool {
	return func(m harness.Message) bool {
		if !harness.Element("reconnectbin-restart")(m) {
			return false
		}
		for _, r := range reasons {
			if m.Field("reason") == r {
				return true
			}
		}
		return false
	}
}

var recovered = harness.Element("reconnectbin-recovered")

func nsField(t *testing.T, m harness.Message, name string) time.Duration {
	t.Helper()
	v, err := strconv.ParseUint(m.Field(name), 10, 64)
	if err != nil {
		t.Fatalf("field %s of %q: %v", name, m.Text, err)
	}
	return time.Duration(v)
}

func sec(d time.Duration) string { return strconv.FormatInt(int64(d), 10) }
