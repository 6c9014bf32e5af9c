package reconnectbin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// restartField reads a field of a reconnectbin-restart message as text.
func messageField(m *gst.Message, name string) string {
	st := m.GetStructure()
	if st == nil {
		return ""
	}
	v, err := st.GetValue(name)
	if err != nil {
		return ""
	}
	return toString(v)
}

// avRelay is reconnectbin (2 s stall-timeout) relaying a TS camera's video
// and audio into two fakesinks whose buffers o records; count says how
// many left through a pad ("src", "audio").
func avRelay(t *testing.T, port int) (p *harness.Pipeline, rb *gst.Element, o *offsets, count func(pad string) int) {
	t.Helper()
	p = harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb stall-timeout=2000000000
		source="tcpclientsrc host=127.0.0.1 port=%d ! tsdemux"
		! queue ! fakesink name=video sync=false  rb.audio ! queue ! fakesink name=audio sync=false`, port))
	rb, err := p.GetElementByName("rb")
	if err != nil {
		t.Fatal(err)
	}
	o = newOffsets()
	for sinkName, pad := range map[string]string{"video": "src", "audio": "audio"} {
		sink, err := p.GetElementByName(sinkName)
		if err != nil {
			t.Fatal(err)
		}
		o.watchOutput(pad, sink.GetStaticPad("sink"))
	}
	count = func(pad string) int {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.outPTS[pad])
	}
	return p, rb, o, count
}

// A camera whose video dies while its audio goes on (issue #16 part 3):
// the audio used to keep the source "alive", so the relay sat on an
// audio-only stream forever. Now the instance counts as stalled after
// stall-timeout, the restart names the silent video, and once the camera
// sends video again the output goes on, its timestamps never going back.
func TestVideoSilentWhileAudioFlowsIsAStall(t *testing.T) {
	// 200 frames: eight seconds of video (time for the relay to connect
	// on a loaded machine), then audio only.
	srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Audio: true, VideoFrames: 200}})
	p, rb, o, count := avRelay(t, srv.Port())
	p.Start()
	defer func() { t.Logf("buffers out: video %d, audio %d", count("src"), count("audio")) }()
	harness.WaitUntil(t, 30*time.Second, "audio and video at the sinks", func() bool { return count("src") > 10 && count("audio") > 10 })

	m := p.WaitFor(30*time.Second, 1, "a restart", harness.ElementMessage("reconnectbin-restart"))
	reason, silent, text := messageField(m, "reason"), messageField(m, "silent-stream"), messageField(m, "error")
	t.Logf("restart: reason=%s silent-stream=%s error=%q", reason, silent, text)
	if reason != "stall" || silent != "video" || !strings.Contains(text, "no video") || !strings.Contains(text, "audio kept flowing") {
		t.Fatalf("restart reason=%q silent-stream=%q error=%q; want a stall naming the silent video while audio flows", reason, silent, text)
	}
	if st := statsOf(t, rb); st["restarts-stall-video"] == "0" || !strings.Contains(st["last-error"], "no video") {
		t.Errorf("stats restarts-stall-video=%s last-error=%q; want the video stall counted and named", st["restarts-stall-video"], st["last-error"])
	}

	// The camera is repaired: video again (eight more seconds of it).
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(30*time.Second, 1, "recovery", harness.ElementMessage("reconnectbin-recovered"))
	v, a := count("src"), count("audio")
	harness.WaitUntil(t, 30*time.Second, "video and audio after the rebuild", func() bool { return count("src") > v+10 && count("audio") > a+10 })
	_ = p.SetState(gst.StateNull)

	o.mu.Lock()
	defer o.mu.Unlock()
	for _, pad := range []string{"src", "audio"} {
		pts := o.outPTS[pad]
		back := 0
		for i := 1; i < len(pts); i++ {
			if pts[i] < pts[i-1] {
				back++
			}
		}
		if back != 0 {
			t.Errorf("%s: running time went backwards %d times in %d buffers", pad, back, len(pts))
		}
	}
	if o.starts["src"] != 1 || o.starts["audio"] != 1 {
		t.Errorf("stream-start events: src %d, audio %d; want one each", o.starts["src"], o.starts["audio"])
	}
}

// The symmetric case is decided the other way: a camera whose audio dies
// while its video goes on keeps its picture. No rebuild (it would cut
// working video to repair the sound); stats say the audio is silent.
func TestAudioSilentWhileVideoFlowsIsNoStall(t *testing.T) {
	// 200 audio buffers: about 4.6 s of audio, then video only.
	srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Audio: true, AudioBuffers: 200}})
	p, rb, _, count := avRelay(t, srv.Port())
	p.Start()
	harness.WaitUntil(t, 30*time.Second, "audio and video at the sinks", func() bool { return count("src") > 10 && count("audio") > 10 })
	harness.WaitUntil(t, 30*time.Second, "stats to show the audio silent", func() bool { return statsOf(t, rb)["silent-stream"] == "audio" })
	// Three stall-timeouts of video (25 fps) with the audio silent.
	v := count("src")
	harness.WaitUntil(t, 30*time.Second, "6 s more of video", func() bool { return count("src") > v+150 })
	for _, m := range p.Messages() {
		if harness.ElementMessage("reconnectbin-restart")(m) {
			t.Fatalf("restart with the video flowing and the audio silent: error=%q", messageField(m, "error"))
		}
	}
	if st := statsOf(t, rb); st["restarts"] != "0" || st["silent-stream"] != "audio" {
		t.Errorf("stats restarts=%s silent-stream=%q; want 0 and audio", st["restarts"], st["silent-stream"])
	}
	_ = p.SetState(gst.StateNull)
}

// kvssink refuses fragments longer than 10 s (issue #16 part 4): a camera
// with a 12 s GOP (5 fps, a keyframe every 60 frames), passed through,
// gets exactly one WARNING from reconnectbin naming the interval and the
// fix, as soon as 10 s pass without a keyframe; stats say so too. A 2 s GOP
// gets none over the same time.
func TestLongKeyframeIntervalWarnsOnce(t *testing.T) {
	run := func(t *testing.T, keyIntMax int) (*harness.Pipeline, *gst.Element, func() time.Duration) {
		srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Framerate: 5, KeyIntMax: keyIntMax}})
		p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb stall-timeout=5000000000
			source="tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse"
			! video/x-h264 ! fakesink name=video sync=false`, srv.Port()))
		rb, err := p.GetElementByName("rb")
		if err != nil {
			t.Fatal(err)
		}
		o := newOffsets()
		sink, err := p.GetElementByName("video")
		if err != nil {
			t.Fatal(err)
		}
		o.watchOutput("src", sink.GetStaticPad("sink"))
		span := func() time.Duration {
			o.mu.Lock()
			defer o.mu.Unlock()
			pts := o.outPTS["src"]
			if len(pts) < 2 {
				return 0
			}
			return time.Duration(pts[len(pts)-1] - pts[0])
		}
		p.Start()
		return p, rb, span
	}
	warnings := func(p *harness.Pipeline) []string {
		var out []string
		for _, m := range p.Messages() {
			if m.Type() == gst.MessageWarning && m.Source() == "rb" {
				out = append(out, m.ParseWarning().Error())
			}
		}
		return out
	}

	t.Run("12s GOP", func(t *testing.T) {
		p, rb, span := run(t, 60)
		m := p.WaitFor(40*time.Second, 1, "the WARNING", func(m *gst.Message) bool {
			return m.Type() == gst.MessageWarning && m.Source() == "rb"
		})
		text := m.ParseWarning().Error()
		t.Logf("warning after %v of video: %s", span().Round(time.Millisecond), text)
		for _, want := range []string{"keyframe interval is at least 10.", "MAX_FRAGMENT_DURATION", "2s or less", "x264enc key-int-max=10 "} {
			if !strings.Contains(text, want) {
				t.Errorf("warning %q lacks %q", text, want)
			}
		}
		// Past the next keyframe and into the GOP after it, which is as long.
		harness.WaitUntil(t, 40*time.Second, "24 s of video", func() bool { return span() > 23*time.Second })
		if w := warnings(p); len(w) != 1 {
			t.Errorf("%d WARNINGs from reconnectbin, want exactly 1: %q", len(w), w)
		}
		st := statsOf(t, rb)
		if st["keyframe-interval-too-long"] != "true" || st["keyframe-interval-max"] != fmt.Sprint(uint64(12*time.Second)) {
			t.Errorf("stats keyframe-interval-too-long=%s keyframe-interval-max=%s; want true and 12 s", st["keyframe-interval-too-long"], st["keyframe-interval-max"])
		}
		_ = p.SetState(gst.StateNull)
	})
	t.Run("2s GOP", func(t *testing.T) {
		p, rb, span := run(t, 10)
		harness.WaitUntil(t, 40*time.Second, "12 s of video", func() bool { return span() > 12*time.Second })
		if w := warnings(p); len(w) != 0 {
			t.Errorf("WARNINGs for a 2 s GOP: %q", w)
		}
		st := statsOf(t, rb)
		if st["keyframe-interval-too-long"] != "false" || st["keyframe-interval-max"] != fmt.Sprint(uint64(2*time.Second)) {
			t.Errorf("stats keyframe-interval-too-long=%s keyframe-interval-max=%s; want false and 2 s", st["keyframe-interval-too-long"], st["keyframe-interval-max"])
		}
		_ = p.SetState(gst.StateNull)
	})
}
