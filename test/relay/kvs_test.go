package relay_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// kvsRelay is a relay ending in the (strict) kvssink stand-in, exactly the
// line users run with the real kvssink.
type kvsRelay struct {
	*harness.Launch
	report string
}

const kvsCaps = "video/x-h264,stream-format=avc,alignment=au"

const encode = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! h264parse"

// writeTestCredential writes a credential file valid for an hour into dir,
// for a kvssink stand-in to read, and returns its path.
func writeTestCredential(t *testing.T, dir string) string {
	t.Helper()
	cred := filepath.Join(dir, "credential")
	now := time.Now()
	if err := credfile.Write(cred, credfile.Credentials{AccessKeyID: "AKIATESTRELAY0001", SecretAccessKey: "relay-test-secret",
		SessionToken: "relay-test-token", Expires: now.Add(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	return cred
}

// startKVSRelay runs `reconnectbin props... ! middle ! kvsCaps ! kvssink`.
func startKVSRelay(t *testing.T, props []string, middle string) *kvsRelay {
	t.Helper()
	dir := t.TempDir()
	cred := writeTestCredential(t, dir)
	report := filepath.Join(dir, "kvssink.json")
	args := append([]string{"reconnectbin"}, props...)
	if middle != "" {
		args = append(args, "!")
		args = append(args, strings.Fields(middle)...)
	}
	args = append(args, "!", kvsCaps, "!", "kvssink", "stream-name=relay-test", "credential-path="+cred, "report="+report)
	return &kvsRelay{Launch: harness.StartLaunch(t, harness.Env(t), args...), report: report}
}

// accepted is how many frames the stand-in has accepted so far.
func (r *kvsRelay) accepted() uint64 {
	rep, err := kvssinkstandin.ReadReport(r.report)
	if err != nil {
		return 0
	}
	return rep.TotalAccepted()
}

// waitAccepted waits until the stand-in accepted n more frames.
func (r *kvsRelay) waitAccepted(t *testing.T, n uint64, timeout time.Duration) {
	t.Helper()
	start := r.accepted()
	harness.WaitUntil(t, timeout, fmt.Sprintf("kvssink to accept %d more frames", n), func() bool { return r.accepted() >= start+n })
}

// finish ends the relay with EOS and returns the stand-in's final report,
// after checking what holds for every relay: it never quit by itself, the
// sink saw no timestamp going backwards and no credential trouble.
func (r *kvsRelay) finish(t *testing.T) *kvssinkstandin.Report {
	t.Helper()
	if r.Exited() {
		t.Fatalf("gst-launch-1.0 quit by itself (exit %d)", r.ExitCode())
	}
	r.Interrupt()
	if code := r.Wait(30 * time.Second); code != 0 {
		t.Fatalf("gst-launch-1.0 exited %d after EOS", code)
	}
	rep, err := kvssinkstandin.ReadReport(r.report)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RunningTimeViolations != 0 || rep.Dropped("backwards") != 0 {
		t.Errorf("kvssink saw running time go backwards: %d violations, %d dropped", rep.RunningTimeViolations, rep.Dropped("backwards"))
	}
	if len(rep.Errors) != 0 || len(rep.StreamErrors) != 0 {
		t.Errorf("kvssink errors: %v %v", rep.Errors, rep.StreamErrors)
	}
	if !rep.EOS {
		t.Errorf("kvssink never got EOS")
	}
	return rep
}

// A transcode relay with output-caps: the camera comes back at 640x480,
// 1280x720 and 320x240, at different frame rates; the encoder is configured
// once, so kvssink sees one set of caps and codec_data.
func TestOutputCapsKeepOneEncoderConfiguration(t *testing.T) {
	port := servers.FreePort(t)
	srv := servers.NewTSServer(t, servers.TSOptions{Port: port, Media: servers.MediaOptions{Width: 640, Height: 480, Framerate: 25}})
	r := startKVSRelay(t, []string{tsSource(port), "stall-timeout=" + sec(2*time.Second),
		"output-caps=video/x-raw,format=I420,width=480,height=270,framerate=25/1"}, encode)
	r.waitAccepted(t, 25, 30*time.Second)

	for i, media := range []servers.MediaOptions{{Width: 1280, Height: 720, Framerate: 30}, {Width: 320, Height: 240, Framerate: 15}} {
		if err := srv.Kill(); err != nil {
			t.Fatal(err)
		}
		srv = servers.NewTSServer(t, servers.TSOptions{Port: port, Media: media})
		r.WaitFor(30*time.Second, i+1, "recovery at "+fmt.Sprint(media.Width), recovered)
		r.waitAccepted(t, 25, 30*time.Second)
	}
	rep := r.finish(t)
	if rep.CapsChanges != 0 || len(rep.Caps) != 1 {
		t.Errorf("kvssink saw %d caps changes (%d caps events): %+v", rep.CapsChanges, len(rep.Caps), rep.Caps)
	}
	if n := r.Count(harness.Element("reconnectbin-caps-changed")); n != 0 {
		t.Errorf("%d reconnectbin-caps-changed messages with output-caps set", n)
	}
}

// A 20 s outage with fallback on: frames keep arriving at the output rate the
// whole time, first the last good frame, then black or the image; the
// timeline has no hole and the count matches the elapsed time.
func TestFallbackFillsTheOutage(t *testing.T) {
	image := filepath.Join(t.TempDir(), "slate.png")
	if out, code := harness.Run(t, nil, 30*time.Second, "gst-launch-1.0", "-q", "videotestsrc", "num-buffers=1", "pattern=smpte",
		"!", "video/x-raw,width=320,height=180", "!", "pngenc", "!", "filesink", "location="+image); code != 0 {
		t.Fatalf("making the slate image: %s", out)
	}
	for _, mode := range []string{"black", "image"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := servers.NewTSServer(t, servers.TSOptions{})
			props := []string{tsSource(srv.Port()), "stall-timeout=" + sec(2*time.Second), "fallback=" + mode,
				"output-caps=video/x-raw,format=I420,width=320,height=240,framerate=25/1"}
			if mode == "image" {
				props = append(props, "fallback-image="+image)
			}
			r := startKVSRelay(t, props, encode)
			r.waitAccepted(t, 25, 30*time.Second)
			if err := srv.Kill(); err != nil {
				t.Fatal(err)
			}
			r.WaitFor(20*time.Second, 1, "fallback to start", harness.Element("reconnectbin-fallback-started"))
			outageStart := time.Now()
			harness.WaitUntil(t, 60*time.Second, "a 20 s outage", func() bool { return time.Since(outageStart) >= 20*time.Second })
			during := r.accepted()
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			r.WaitFor(30*time.Second, 1, "fallback to end", harness.Element("reconnectbin-fallback-ended"))
			r.WaitFor(30*time.Second, 1, "recovery", recovered)
			r.waitAccepted(t, 25, 30*time.Second)
			rep := r.finish(t)

			frame := 40 * time.Millisecond
			if gap := time.Duration(rep.MaxGapNs); gap > 2*frame {
				t.Errorf("largest gap between frames at kvssink is %v; fallback should keep it at one frame interval (%v)", gap, frame)
			}
			if during < 20*25 {
				t.Errorf("only %d frames reached kvssink by the end of a 20 s outage at 25 fps", during)
			}
			span := time.Duration(*rep.LastPTSRunningTime - *rep.FirstPTSRunningTime)
			expected := int64(span/frame) + 1
			got := int64(rep.TotalAccepted())
			t.Logf("%s: %d frames over %v (expected %d), largest gap %v", mode, got, span, expected, time.Duration(rep.MaxGapNs))
			// Each switch (to fallback and back) may land mid-interval: one frame each.
			if d := got - expected; d < -2 || d > 2 {
				t.Errorf("kvssink accepted %d frames over %v; at 25 fps that is %d", got, span, expected)
			}
			if rep.CapsChanges != 0 {
				t.Errorf("fallback changed the caps kvssink saw: %+v", rep.Caps)
			}
		})
	}
}

// Passthrough (no re-encode) from MPEG-TS and RTSP with restarts that land
// mid-GOP: after every rebuild the first frame kvssink gets is a keyframe,
// never one flagged only DISCONT, and running time stays continuous.
func TestPassthroughRestartsStartOnKeyframes(t *testing.T) {
	cases := []struct {
		name   string
		start  func(t *testing.T) (source string, kill, restart func() error)
		frames uint64
	}{
		{"mpegts", func(t *testing.T) (string, func() error, func() error) {
			srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{KeyIntMax: 50}})
			return fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse", srv.Port()), srv.Kill, srv.Restart
		}, 50},
		{"rtsp", func(t *testing.T) (string, func() error, func() error) {
			srv := servers.NewRTSPServer(t, servers.RTSPOptions{Media: servers.MediaOptions{KeyIntMax: 50}})
			return fmt.Sprintf("source=rtspsrc location=%s latency=100 ! rtph264depay ! h264parse", srv.URL()), srv.Kill, srv.Restart
		}, 50},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			source, kill, restart := tc.start(t)
			r := startKVSRelay(t, []string{source, "stall-timeout=" + sec(2*time.Second)}, "")
			r.waitAccepted(t, tc.frames, 30*time.Second)
			for i := 1; i <= 2; i++ {
				if err := kill(); err != nil {
					t.Fatal(err)
				}
				r.WaitFor(30*time.Second, i, "a restart", harness.Element("reconnectbin-restart"))
				if err := restart(); err != nil {
					t.Fatal(err)
				}
				r.WaitFor(30*time.Second, i, "recovery", recovered)
				r.waitAccepted(t, tc.frames, 30*time.Second)
			}
			rep := r.finish(t)
			for _, reason := range []string{"discont", "discont-delta", "not-keyframe"} {
				if n := rep.Dropped(reason); n != 0 {
					t.Errorf("kvssink dropped %d frames as %s", n, reason)
				}
			}
			if rep.CapsChanges != 0 {
				t.Errorf("the restarted camera changed codec_data: %+v", rep.Caps)
			}
		})
	}
}

// A passthrough camera that comes back at another resolution would make
// kvssink upload garbage under the old codec_data: by default the relay
// stops with one ERROR that says why, instead of corrupting the stream.
// (gst-launch-1.0 quits from its bus sync handler on the ERROR, so the
// caps-changed element message before it may never be printed: the
// message itself is checked under on-caps-change=retry below.)
func TestCapsChangeStopsByDefault(t *testing.T) {
	port := servers.FreePort(t)
	srv := servers.NewTSServer(t, servers.TSOptions{Port: port})
	r := startKVSRelay(t, []string{fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse", port),
		"stall-timeout=" + sec(2*time.Second)}, "")
	r.waitAccepted(t, 25, 30*time.Second)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	servers.NewTSServer(t, servers.TSOptions{Port: port, Media: servers.MediaOptions{Width: 640, Height: 360}})
	errMsg := r.WaitFor(40*time.Second, 1, "the ERROR", harness.OfType("error"))
	if !strings.Contains(errMsg.Text, "different caps") || !strings.Contains(errMsg.Text, "width=640") {
		t.Errorf("the ERROR does not say the caps changed to what: %q", errMsg.Text)
	}
	if code := r.Wait(30 * time.Second); code == 0 {
		t.Errorf("gst-launch-1.0 exited 0 after the caps-change ERROR")
	}
	if n := r.Count(harness.OfType("error")); n != 1 {
		t.Errorf("%d ERRORs for one caps change, want exactly one", n)
	}
	rep, err := kvssinkstandin.ReadReport(r.report)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CapsChanges != 0 {
		t.Errorf("kvssink was handed the changed caps anyway: %+v", rep.Caps)
	}
}

// With on-caps-change=retry a camera that comes back at the wrong
// resolution is refused and retried (never handed to kvssink) until it is
// back at its old settings; then the stream continues in the same session.
func TestCapsChangeRetryWaitsForTheOldCaps(t *testing.T) {
	port := servers.FreePort(t)
	srv := servers.NewTSServer(t, servers.TSOptions{Port: port})
	r := startKVSRelay(t, []string{fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse", port),
		"stall-timeout=" + sec(2*time.Second), "on-caps-change=retry"}, "")
	r.waitAccepted(t, 25, 30*time.Second)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	wrong := servers.NewTSServer(t, servers.TSOptions{Port: port, Media: servers.MediaOptions{Width: 640, Height: 360}})
	changed := r.WaitFor(40*time.Second, 1, "reconnectbin-caps-changed", harness.Element("reconnectbin-caps-changed"))
	if !strings.Contains(changed.Field("new"), "width=640") || !strings.Contains(changed.Field("old"), "width=320") ||
		changed.Field("policy") != "retry" {
		t.Errorf("caps-changed message does not name the old and new caps and the policy: %q", changed.Text)
	}
	// Refused at least twice: the wrong camera is retried, not accepted later.
	r.WaitFor(40*time.Second, 2, "a second refusal", harness.Element("reconnectbin-caps-changed"))
	if err := wrong.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	r.waitAccepted(t, 50, 40*time.Second)
	rep := r.finish(t)
	if rep.CapsChanges != 0 {
		t.Errorf("kvssink was handed the refused caps: %+v", rep.Caps)
	}
	if n := r.Count(harness.OfType("error")); n != 0 {
		t.Errorf("%d ERRORs under on-caps-change=retry", n)
	}
}

// A source that pauses for less than stall-timeout is not rebuilt, but with
// fallback on its pause leaves no hole either: the output timeline falling
// behind the clock starts fill frames, and the source's next buffer takes
// over again.
func TestFallbackFillsAShortPauseWithoutRestart(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{})
	r := startKVSRelay(t, []string{tsSource(srv.Port()), "stall-timeout=" + sec(10*time.Second), "fallback=black",
		"output-caps=video/x-raw,format=I420,width=320,height=240,framerate=25/1"}, encode)
	r.waitAccepted(t, 25, 30*time.Second)
	if err := srv.Process().Pause(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(20*time.Second, 1, "gap filling to start", harness.Element("reconnectbin-fallback-started"))
	r.waitAccepted(t, 25, 20*time.Second) // a second of fill frames
	if err := srv.Process().Resume(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(20*time.Second, 1, "the source to take over again", harness.Element("reconnectbin-fallback-ended"))
	r.waitAccepted(t, 25, 20*time.Second)
	rep := r.finish(t)
	if n := r.Count(harness.Element("reconnectbin-restart")); n != 0 {
		t.Errorf("%d restarts for a pause shorter than stall-timeout", n)
	}
	if gap := time.Duration(rep.MaxGapNs); gap > 80*time.Millisecond {
		t.Errorf("largest gap between frames at kvssink is %v despite fallback", gap)
	}
}
