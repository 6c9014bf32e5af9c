package relay_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/kvsendpoint"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// Issue #16 part 6 against the real kvssink and the local endpoint:
// fallback=black with fallback-upload=false, video only and with audio,
// the camera killed for a few seconds. What the endpoint stored: the
// camera's frames on both sides of one hole exactly as long as the fill
// reconnectbin made (any fill frame would sit inside it; any camera frame
// lost would widen it), the video after it starting on a keyframe, no audio
// inside the audio's fill, timecodes only going forward, every fragment
// persisted with nothing refused (no WARNING from kvssink; with audio, the
// known occasional refusal of an audio frame is logged).
func TestRealKVSSinkFallbackUploadFalse(t *testing.T) {
	requireRealKVSSink(t)
	t.Parallel()
	for _, withAudio := range []bool{false, true} {
		name := "video"
		if withAudio {
			name = "audio+video"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Audio: withAudio}})
			video := transcode(fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! decodebin", srv.Port()),
				"stall-timeout="+sec(2*time.Second), "fallback=black", "fallback-upload=false",
				"output-caps=video/x-raw,format=I420,width=320,height=240,framerate=25/1")
			var audio []string
			if withAudio {
				audio = []string{"r.audio", "!", "audioconvert", "!", "audioresample", "!", servers.AACEncoder(t), "!", "aacparse"}
			}
			r := startRealKVSRelay(t, realSetup{video: video, audio: audio})
			r.waitPersisted(t, 2, time.Time{}, "at start")
			videoWithheld := func(m harness.Message) bool { return withheldMsg(m) && m.Field("stream") == "video" }
			audioWithheld := func(m harness.Message) bool { return withheldMsg(m) && m.Field("stream") == "audio" }
			before, beforeAudio := r.Count(videoWithheld), r.Count(audioWithheld)
			if err := srv.Kill(); err != nil {
				t.Fatal(err)
			}
			r.WaitFor(20*time.Second, 1, "fallback to start", harness.Element("reconnectbin-fallback-started"))
			// The outage lasts a few seconds of fill: nothing marks them at
			// the endpoint, which is the point.
			down := time.Now()
			harness.WaitUntil(t, 30*time.Second, "4 s of outage", func() bool { return time.Since(down) >= 4*time.Second })
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			r.WaitFor(30*time.Second, 1, "recovery", recovered)
			span := parseWithheld(t, r.WaitFor(30*time.Second, before+1, "the video's withheld report", videoWithheld))
			audioSpan := withheldSpan{from: -1}
			if withAudio {
				audioSpan = parseWithheld(t, r.WaitFor(30*time.Second, beforeAudio+1, "the audio's withheld report", audioWithheld))
			}
			r.waitPersisted(t, 2, time.Now(), "after recovery")
			up := r.finish(t)
			warnings := r.Count(func(m harness.Message) bool { return m.Type == "warning" && m.Source == "k" })
			switch {
			case warnings > 0 && withAudio:
				// The known difference (see calibrate): with audio and video
				// the real kvssink now and then refuses an audio frame timed
				// a few ms after a video frame, with a WARNING, fallback or not.
				t.Logf("kvssink refused %d frames (known with audio)", warnings)
				r.logRefusedFrames(t, up)
			case warnings > 0:
				t.Errorf("kvssink refused %d frames", warnings)
				r.logRefusedFrames(t, up)
			}
			t.Logf("video fill %v-%v (%v, %d frames withheld), audio fill from %v (%d withheld)",
				span.from, span.to, span.to-span.from, span.buffers, audioSpan.from, audioSpan.buffers)
			checkWithheldUpload(t, up, span, audioSpan)
		})
	}
}

// checkWithheldUpload checks the stored stream around one withheld outage.
func checkWithheldUpload(t *testing.T, up uploaded, span, audioSpan withheldSpan) {
	t.Helper()
	if span.resumedAt != span.to || span.to-span.from < 3*time.Second {
		t.Fatalf("video fill %v-%v, resumed at %v: want an outage of seconds, resumed at the takeover", span.from, span.to, span.resumedAt)
	}
	// Timecodes only go forward, per track, in the order stored.
	last := map[uint64]int64{}
	for _, f := range up.persisted {
		for _, b := range f.Blocks {
			if prev, ok := last[b.Track]; ok && b.Timecode <= prev {
				t.Errorf("track %d: timecode %d stored after %d", b.Track, b.Timecode, prev)
			}
			last[b.Track] = b.Timecode
		}
	}
	// One hole in the video: the fill, from the frame after the camera's
	// last one to the takeover. Elsewhere the camera's frames, 40 ms apart.
	var hole *kvsendpoint.Block
	holeLen := time.Duration(0)
	for i := 1; i < len(up.video); i++ {
		step := time.Duration(up.video[i].Timecode-up.video[i-1].Timecode) * time.Millisecond
		switch {
		case step <= 2*frameInterval:
		case hole == nil:
			hole, holeLen = &up.video[i], step
		default:
			t.Errorf("a second %v hole in the stored video at timecode %d", step, up.video[i].Timecode)
		}
	}
	if hole == nil {
		t.Fatalf("no hole in the stored video: the %v of fill were uploaded", span.to-span.from)
	}
	want := span.to - span.from + frameInterval
	if d := holeLen - want; d < -2*time.Millisecond || d > 2*time.Millisecond {
		t.Errorf("the stored video has a %v hole; the fill spans %v after the camera's last frame: %s", holeLen, want,
			map[bool]string{true: "fill frames were stored", false: "camera frames were lost"}[holeLen < want])
	}
	if !hole.Keyframe {
		t.Errorf("the stored video goes on after the outage with a frame that is not a keyframe (timecode %d)", hole.Timecode)
	}
	if audioSpan.from < 0 {
		return
	}
	// Timecodes are running time plus one offset: the takeover is stored
	// at the hole's end.
	toMs := hole.Timecode
	fromMs := toMs - int64((span.to-audioSpan.from)/time.Millisecond)
	lastBefore, after := int64(-1), 0
	for _, b := range up.audio {
		switch {
		case b.Timecode > fromMs && b.Timecode < toMs-1:
			t.Errorf("an audio frame stored at %d, inside the audio's fill %d-%d", b.Timecode, fromMs, toMs)
		case b.Timecode <= fromMs:
			lastBefore = b.Timecode
		default:
			after++
		}
	}
	// AAC frames are 23 ms; an encoder holds about two.
	if fromMs-lastBefore > 3*23 {
		t.Errorf("the last audio stored before the outage is at %d, its fill starts at %d: camera audio lost", lastBefore, fromMs)
	}
	if after == 0 {
		t.Errorf("no audio stored after the outage")
	}
	if gap := largestGap(up.audio); gap > time.Duration(toMs-fromMs)*time.Millisecond+200*time.Millisecond {
		t.Errorf("a %v hole in the stored audio, longer than the outage", gap)
	}
}
