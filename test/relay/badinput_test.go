package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// Bad settings fail the state change with an error that names the property;
// gst-launch-1.0 reports it and exits instead of crashing or hanging.
func TestBadSettingsNameTheProperty(t *testing.T) {
	cases := []struct {
		name  string
		props []string
		want  string
	}{
		{"neither source nor uri", nil, "'source' is empty"},
		{"both source and uri", []string{"source=videotestsrc", "uri=http://127.0.0.1:1/x.m3u8"}, "'source' and 'uri' are both set"},
		{"unparsable source", []string{"source=videotestsrc ! ! nosuchelement"}, "'source' does not parse"},
		{"unknown element", []string{"source=nosuchelement-kvsrelay"}, "'source' does not parse"},
		{"no src pad", []string{"source=videotestsrc ! fakesink"}, "'source' has no unlinked src pad"},
		{"backoff cap below start", []string{"source=videotestsrc", "retry-delay=3000000000", "max-retry-delay=1000000000"}, "'max-retry-delay'"},
		{"output-audio-caps not raw audio", []string{"source=videotestsrc", "output-audio-caps=audio/mpeg,mpegversion=4"}, "'output-audio-caps'"},
		{"output-audio-caps without channels", []string{"source=videotestsrc", "output-audio-caps=audio/x-raw,format=S16LE,rate=48000"},
			"is not a complete raw audio format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"reconnectbin"}, tc.props...)
			args = append(args, "!", "fakesink")
			l := harness.StartLaunch(t, harness.Env(t), args...)
			code := l.Wait(30 * time.Second)
			if code == 0 {
				t.Fatalf("gst-launch-1.0 exited 0 with bad settings")
			}
			if code < 0 {
				t.Fatalf("gst-launch-1.0 was killed by a signal (crash?)")
			}
			all := l.Stderr()
			for _, m := range l.Messages() {
				all += "\n" + m.Text
			}
			if !strings.Contains(all, tc.want) {
				t.Errorf("no error naming the property (want %q) in:\n%s", tc.want, all)
			}
		})
	}
}

// A source that can never work, with max-retries=3: three rebuilds, then one
// ERROR naming the last cause, so systemd or the application decides.
func TestMaxRetriesEndsInOneError(t *testing.T) {
	port := servers.FreePort(t) // nothing listens there
	l := harness.StartLaunch(t, harness.Env(t), "reconnectbin",
		fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse ! avdec_h264", port),
		"max-retries=3", "retry-delay=50000000", "max-retry-delay=100000000", "!", "videoconvert", "!", "fakesink")
	errMsg := l.WaitFor(30*time.Second, 1, "the give-up ERROR", harness.OfType("error"))
	if code := l.Wait(30 * time.Second); code == 0 {
		t.Errorf("gst-launch-1.0 exited 0 after the bin gave up")
	}
	if !strings.Contains(errMsg.Text, "giving up") || !strings.Contains(errMsg.Text, "start-failed") {
		t.Errorf("the ERROR does not name the give-up and the last cause: %q", errMsg.Text)
	}
	if n := l.Count(harness.OfType("error")); n != 1 {
		t.Errorf("%d ERRORs on the bus, want exactly 1", n)
	}
	// Three rebuilds. The give-up's own announcement (give-up=true) comes just
	// before the ERROR, which gst-launch-1.0 may quit on before printing it.
	rebuilds, total := 0, l.Count(harness.Element("reconnectbin-restart"))
	for _, m := range l.Messages() {
		if m.Name == "reconnectbin-restart" && m.Field("give-up") != "true" {
			rebuilds++
		}
	}
	if rebuilds != 3 || total > 4 {
		t.Errorf("%d rebuilds in %d reconnectbin-restart messages, want 3 rebuilds (and at most the give-up)", rebuilds, total)
	}
}
