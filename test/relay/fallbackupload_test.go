package relay_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// withheldMsg is reconnectbin's message at the end of an outage whose fill
// a kvssink pad withheld (fallback-upload=false).
var withheldMsg = harness.Element("reconnectbin-fallback-withheld")

// withheldSpan is what a reconnectbin-fallback-withheld message says: the
// fill's running times and the first buffer let through after it.
type withheldSpan struct {
	from, to, resumedAt time.Duration
	buffers             uint64
}

func parseWithheld(t *testing.T, m harness.Message) withheldSpan {
	t.Helper()
	n, err := strconv.ParseUint(m.Field("buffers"), 10, 64)
	if err != nil {
		t.Fatalf("buffers in %s: %v", m.Text, err)
	}
	return withheldSpan{from: nsField(t, m, "fill-from"), to: nsField(t, m, "fill-to"), resumedAt: nsField(t, m, "resumed-at"), buffers: n}
}

// traceFrame is one frame the stand-in was handed (its trace).
type traceFrame struct {
	pad     string // video, audio
	pts     time.Duration
	key     bool
	outcome string // "ok" or the drop reason
}

var standinTraceLine = regexp.MustCompile(`^(\w+)_\d+ pts (-?\d+) dts -?\d+ key (true|false): (.*)$`)

func readTrace(t *testing.T, path string) []traceFrame {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []traceFrame
	for _, line := range strings.Split(string(data), "\n") {
		m := standinTraceLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		pts, _ := strconv.ParseInt(m[2], 10, 64)
		out = append(out, traceFrame{pad: m[1], pts: time.Duration(pts), key: m[3] == "true", outcome: m[4]})
	}
	return out
}

// Issue #16 part 6 with the stand-in: fallback=black with
// fallback-upload=false, video only and with audio, the camera killed and
// restarted. The fill keeps flowing into kvssink (its collectpads is never
// starved) but kvssink discards every fill frame and the silence over the
// same span (flagged DECODE_ONLY); the stream resumes with the camera's
// first frame after the outage, a keyframe at the takeover time; before
// the outage nothing is missing; timestamps only go forward.
func TestFallbackUploadFalseWithholdsFill(t *testing.T) {
	for _, withAudio := range []bool{false, true} {
		name := "video"
		if withAudio {
			name = "audio+video"
		}
		t.Run(name, func(t *testing.T) {
			srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Audio: withAudio}})
			dir := t.TempDir()
			cred := writeTestCredential(t, dir)
			report := filepath.Join(dir, "kvssink.json")
			trace := filepath.Join(dir, "kvssink.trace")
			args := transcode(fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! decodebin", srv.Port()),
				"stall-timeout="+sec(2*time.Second), "fallback=black", "fallback-upload=false",
				"output-caps=video/x-raw,format=I420,width=320,height=240,framerate=25/1")
			args = append(args, "!", kvsCaps, "!", "k.")
			if withAudio {
				args = append(args, "r.audio", "!", "audioconvert", "!", "audioresample", "!", servers.AACEncoder(t), "!", "aacparse", "!", "k.")
			}
			args = append(args, "kvssink", "name=k", "stream-name=relay-test", "credential-path="+cred, "report="+report)
			r := &kvsRelay{Launch: harness.StartLaunch(t, harness.Env(t, kvssinkstandin.EnvTrace+"="+trace), args...), report: report}
			r.waitAccepted(t, 50, 30*time.Second)
			// A camera slower than the start grace has its start filled
			// (and withheld) too: the outage's report is the next one.
			videoWithheld := func(m harness.Message) bool { return withheldMsg(m) && m.Field("stream") == "video" }
			audioWithheld := func(m harness.Message) bool { return withheldMsg(m) && m.Field("stream") == "audio" }
			before, beforeAudio := r.Count(videoWithheld), r.Count(audioWithheld)
			if err := srv.Kill(); err != nil {
				t.Fatal(err)
			}
			r.WaitFor(20*time.Second, 1, "fallback to start", harness.Element("reconnectbin-fallback-started"))
			// Some seconds of fill reach kvssink, withheld.
			harness.WaitUntil(t, 30*time.Second, "50 fill frames withheld", func() bool {
				rep, err := kvssinkstandin.ReadReport(r.report)
				return err == nil && rep.Dropped(kvssinkstandin.DropDecodeOnly) >= 50
			})
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			r.WaitFor(30*time.Second, 1, "recovery", recovered)
			var audio harness.Message
			video := r.WaitFor(30*time.Second, before+1, "the video's withheld report", videoWithheld)
			if withAudio {
				audio = r.WaitFor(30*time.Second, beforeAudio+1, "the audio's withheld report", audioWithheld)
			}
			r.waitAccepted(t, 50, 30*time.Second)
			rep := r.finish(t)
			span := parseWithheld(t, video)
			t.Logf("fill %v-%v (%v), %d video frames withheld, resumed at %v; stand-in dropped %v",
				span.from, span.to, span.to-span.from, span.buffers, span.resumedAt, rep.FramesDropped)
			audioSpan := withheldSpan{from: -1}
			if withAudio {
				audioSpan = parseWithheld(t, audio)
				t.Logf("audio fill from %v, %d withheld, resumed at %v", audioSpan.from, audioSpan.buffers, audioSpan.resumedAt)
			}
			checkWithheldTrace(t, readTrace(t, trace), span, audioSpan)
		})
	}
}

// checkWithheldTrace checks what the sink was handed around one withheld
// outage (span): nothing of the fill accepted, the camera's frames on
// either side all accepted, the first one after it a keyframe at the
// takeover, time only going forward.
func checkWithheldTrace(t *testing.T, frames []traceFrame, span, audioSpan withheldSpan) {
	t.Helper()
	const frameDur = 40 * time.Millisecond
	if span.to <= span.from || span.to-span.from < time.Second {
		t.Fatalf("fill span %v-%v: not an outage of seconds", span.from, span.to)
	}
	if span.resumedAt != span.to {
		t.Errorf("the upload resumed at %v, the camera took over at %v: its first frames were lost", span.resumedAt, span.to)
	}
	var lastVideo, lastAudio time.Duration = -1, -1
	withAudio := audioSpan.from >= 0
	if withAudio {
		// The audio's fill starts after the camera's last audio, which
		// may reach past its last frame; it ends at the same takeover.
		if audioSpan.to != span.to || audioSpan.from < span.from-time.Second || audioSpan.from > span.from+time.Second {
			t.Errorf("audio fill %v-%v, video fill %v-%v: not the same outage", audioSpan.from, audioSpan.to, span.from, span.to)
		}
		if audioSpan.resumedAt < span.to {
			t.Errorf("the audio resumed at %v, before the video's takeover at %v", audioSpan.resumedAt, span.to)
		}
	}
	var lastBefore, firstAfter *traceFrame
	withheldVideo, withheldAudio, audioAfter := 0, 0, 0
	lastAudioBefore := time.Duration(-1)
	for i := range frames {
		f := &frames[i]
		inFill := f.pts >= span.from && f.pts < span.to
		switch f.pad {
		case "video":
			if f.outcome == kvssinkstandin.DropDecodeOnly {
				withheldVideo++
			}
			if f.outcome != "ok" {
				continue
			}
			if inFill {
				t.Errorf("a video frame at %v, inside the fill %v-%v, was uploaded", f.pts, span.from, span.to)
			}
			if f.pts <= lastVideo {
				t.Errorf("uploaded video goes back: %v after %v", f.pts, lastVideo)
			}
			lastVideo = f.pts
			if f.pts < span.from {
				lastBefore = f
			} else if firstAfter == nil {
				firstAfter = f
			}
		case "audio":
			if f.outcome == kvssinkstandin.DropDecodeOnly {
				withheldAudio++
			}
			if f.outcome != "ok" {
				continue
			}
			if f.pts >= audioSpan.from && f.pts < audioSpan.to {
				t.Errorf("an audio frame at %v, inside the audio's fill %v-%v, was uploaded", f.pts, audioSpan.from, audioSpan.to)
			}
			if f.pts <= lastAudio {
				t.Errorf("uploaded audio goes back: %v after %v", f.pts, lastAudio)
			}
			lastAudio = f.pts
			if f.pts < audioSpan.from {
				lastAudioBefore = f.pts
			}
			if f.pts >= span.to {
				audioAfter++
			}
		}
	}
	if lastBefore == nil || firstAfter == nil {
		t.Fatalf("no uploaded video on both sides of the fill %v-%v", span.from, span.to)
	}
	// The fill starts right after the camera's last frame: the frames up
	// to it were all uploaded.
	if d := span.from - lastBefore.pts; d != frameDur {
		t.Errorf("the last uploaded frame before the outage is %v before the fill: camera frames lost", d)
	}
	if !firstAfter.key || firstAfter.pts != span.to {
		t.Errorf("the upload goes on at %v (keyframe %v); the camera took over at %v", firstAfter.pts, firstAfter.key, span.to)
	}
	want := int((span.to - span.from + frameDur/2) / frameDur)
	if withheldVideo < want {
		t.Errorf("%d video frames withheld for a %v fill (%d frames)", withheldVideo, span.to-span.from, want)
	}
	// An AAC frame is 23 ms; the encoder's lookahead holds about two.
	if withAudio && audioSpan.from-lastAudioBefore > 3*23*time.Millisecond {
		t.Errorf("the last uploaded audio before the outage is at %v, its fill starts at %v: camera audio lost", lastAudioBefore, audioSpan.from)
	}
	if withAudio && (withheldAudio == 0 || audioAfter == 0) {
		t.Errorf("%d audio frames withheld, %d uploaded after the outage", withheldAudio, audioAfter)
	}
}
