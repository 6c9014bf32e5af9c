package kvssinkstandin

import (
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
)

const ms = uint64(time.Millisecond)

func TestSegmentRunningTime(t *testing.T) {
	seg := segment{rate: 1, start: 10 * ms, stop: clockNone, base: 100 * ms, duration: clockNone}
	tests := []struct {
		name string
		seg  segment
		pos  uint64
		want uint64
	}{
		{"inside", seg, 15 * ms, 105 * ms},
		{"at start", seg, 10 * ms, 100 * ms},
		{"before start is clipped", seg, 9 * ms, clockNone},
		{"after stop is clipped", segment{rate: 1, start: 0, stop: 50 * ms, duration: clockNone}, 51 * ms, clockNone},
		{"offset moves the start", segment{rate: 1, start: 0, offset: 5 * ms, stop: clockNone, duration: clockNone}, 10 * ms, 5 * ms},
		{"rate 2 halves", segment{rate: 2, start: 0, stop: clockNone, duration: clockNone}, 10 * ms, 5 * ms},
		{"none stays none", seg, clockNone, clockNone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.seg.runningTime(tc.pos); got != tc.want {
				t.Fatalf("runningTime(%d) = %d, want %d", tc.pos, got, tc.want)
			}
		})
	}
	// A DTS before the segment start has a negative running time (sign -1);
	// collectpads then clears the DTS.
	noBase := segment{rate: 1, start: 10 * ms, stop: clockNone, duration: clockNone}
	if sign, _ := noBase.runningTimeFull(0); sign != -1 {
		t.Fatalf("sign of a position before start = %d, want -1", sign)
	}
	// With a base larger than the distance, it is positive again.
	if sign, rt := seg.runningTimeFull(5 * ms); sign != 1 || rt != 95*ms {
		t.Fatalf("runningTimeFull(5ms) = %d,%d want 1,95ms", sign, rt)
	}
}

type in struct {
	flags    gst.BufferFlags
	pts, dts uint64
}

const delta = gst.BufferFlagDeltaUnit

func key(ptsMs uint64) in             { return in{0, ptsMs * ms, ptsMs * ms} }
func delt(ptsMs uint64) in            { return in{delta, ptsMs * ms, ptsMs * ms} }
func with(f gst.BufferFlags, b in) in { b.flags |= f; return b }

type out struct {
	reason string
	status uint32
}

var accepted = out{}

func TestTrackChecker(t *testing.T) {
	video := trackConfig{fragments: true, keyFrameFragmentation: true, fragmentDuration: 2000 * ms, timecodeScale: ms}
	seg := segment{rate: 1, start: 0, stop: 100_000 * ms, duration: clockNone}
	runTrackCheckerCases(t, seg, []trackCheckerCase{
		{"non-keyframes skipped until the first keyframe", video,
			[]in{delt(0), delt(40), key(80), delt(120)},
			[]out{{DropNotKeyframe, 0}, {DropNotKeyframe, 0}, accepted, accepted}},
		{"keyframe flagged exactly DISCONT is dropped", video,
			[]in{key(0), with(gst.BufferFlagDiscont, key(40)), delt(80)},
			[]out{accepted, {DropDiscont, 0}, accepted}},
		{"DISCONT plus another flag on a keyframe is kept", video,
			[]in{with(gst.BufferFlagDiscont|gst.BufferFlagLive, key(0))},
			[]out{accepted}},
		{"DISCONT on a delta frame is dropped", video,
			[]in{key(0), with(gst.BufferFlagDiscont, delt(40))},
			[]out{accepted, {DropDiscontDelta, 0}}},
		{"corrupted and decode-only are dropped", video,
			[]in{key(0), with(gst.BufferFlagCorrupted, delt(40)), with(gst.BufferFlagDecodeOnly, delt(80))},
			[]out{accepted, {DropCorrupted, 0}, {DropDecodeOnly, 0}}},
		{"header without DTS is dropped", video,
			[]in{{gst.BufferFlagHeader, 0, clockNone}, key(0)},
			[]out{{DropHeaderNoTimestamp, 0}, accepted}},
		{"timestamps restarting at 0 are dropped until they pass the old ones", video,
			[]in{key(0), delt(40), key(5000), delt(5040), key(300), delt(340), key(6000)},
			[]out{accepted, accepted, accepted, accepted, {DropBackwards, StatusBeforeClusterStart}, {DropBackwards, StatusBeforeClusterStart}, accepted}},
		{"DTS below the previous one inside a fragment", video,
			[]in{key(0), delt(80), delt(40)},
			[]out{accepted, accepted, {DropBackwards, StatusDTSBelowPrevious}}},
		{"forward gaps are fine", video,
			[]in{key(0), delt(40), key(60_000), delt(60_040)},
			[]out{accepted, accepted, accepted, accepted}},
		{"more than 32.767 s in one fragment", video,
			[]in{key(0), delt(32_767), delt(32_768)},
			[]out{accepted, accepted, {DropFragmentTooLong, StatusFragmentTooLong}}},
		{"without key-frame-fragmentation fragments wait for fragment-duration", trackConfig{fragments: true, fragmentDuration: 2000 * ms, timecodeScale: ms},
			// the keyframe at 1000 ms does not start a fragment, so 34 s after 0 is too long
			[]in{key(0), key(1000), delt(33_000)},
			[]out{accepted, accepted, {DropFragmentTooLong, StatusFragmentTooLong}}},
		{"segment clipping drops buffers after the segment stop", video,
			[]in{key(0), key(100_000), {0, 100_000*ms + 1, clockNone}, {0, clockNone - 1, clockNone}},
			[]out{accepted, accepted, {DropClipped, 0}, {DropClipped, 0}}},
	})
	// A segment starting at 1 s: buffers before it are clipped.
	late := segment{rate: 1, start: 1000 * ms, stop: clockNone, duration: clockNone}
	runTrackCheckerCases(t, late, []trackCheckerCase{
		{"segment clipping drops buffers before the segment start", video,
			[]in{key(0), key(999), key(1000), delt(1040)},
			[]out{{DropClipped, 0}, {DropClipped, 0}, accepted, accepted}},
	})
}

type trackCheckerCase struct {
	name   string
	cfg    trackConfig
	frames []in
	want   []out
}

func runTrackCheckerCases(t *testing.T, seg segment, tests []trackCheckerCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newTrackChecker(tc.cfg)
			c.setSegment(seg)
			var got []out
			for _, f := range tc.frames {
				fr, reason := c.prepare(f.flags, f.pts, f.dts)
				if reason == "" {
					var status uint32
					reason, status, _ = c.put(fr)
					got = append(got, out{reason, status})
					continue
				}
				got = append(got, out{reason, 0})
			}
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Errorf("frame %d (%+v): got %+v, want %+v", i, tc.frames[i], got[i], tc.want[i])
				}
			}
		})
	}
}

func TestTrackCheckerNeedsSegment(t *testing.T) {
	c := newTrackChecker(trackConfig{fragments: true, keyFrameFragmentation: true})
	if _, reason := c.prepare(0, 0, 0); reason != DropNoSegment {
		t.Fatalf("buffer before any segment: reason %q, want %q", reason, DropNoSegment)
	}
}

func TestTrackCheckerFillsMissingDTS(t *testing.T) {
	c := newTrackChecker(trackConfig{fragments: true, keyFrameFragmentation: true, timecodeScale: ms})
	c.setSegment(segment{rate: 1, stop: clockNone, duration: clockNone})
	f, reason := c.prepare(0, 10*ms, clockNone)
	if reason != "" || f.dtsValid || f.dtsRT != defaultFrameDuration {
		t.Fatalf("got %+v %q, want DTS filled in as last DTS + 2 ms", f, reason)
	}
}

// Audio and video in one kvssink: audio frames are never key frames (only
// video gets FRAME_FLAG_KEY_FRAME then), and the producer's wait for the
// first keyframe is the stream's: audio before the first video keyframe is
// dropped, audio after it goes in.
func TestAudioWaitsForTheFirstVideoKeyframe(t *testing.T) {
	seg := segment{rate: 1, stop: clockNone, duration: clockNone}
	video := newTrackChecker(trackConfig{fragments: true, keyFrameFragmentation: true, timecodeScale: ms})
	audio := newTrackChecker(trackConfig{noKeyframes: true, timecodeScale: ms})
	shareStream(video, audio)
	video.setSegment(seg)
	audio.setSegment(seg)
	steps := []struct {
		c        *trackChecker
		frame    in
		want     string
		keyframe bool
	}{
		{audio, key(0), DropNotKeyframe, false},
		{audio, key(21), DropNotKeyframe, false},
		{video, key(40), "", true},
		{audio, key(43), "", false},
		{video, delt(80), "", false},
	}
	for i, s := range steps {
		f, reason := s.c.prepare(s.frame.flags, s.frame.pts, s.frame.dts)
		if reason == "" {
			reason, _, _ = s.c.put(f)
		}
		if reason != s.want || f.keyframe != s.keyframe {
			t.Errorf("step %d: reason %q keyframe %v, want %q %v", i, reason, f.keyframe, s.want, s.keyframe)
		}
	}
}

// The audio of an audio+video stream often reaches kvssink ahead of the
// video (the encoder's latency), but collectpads hands buffers over in
// timestamp order once every track has one: only the audio timed before
// the first video keyframe is dropped, whenever it arrived. At the end, the
// video's EOS puts an end-of-fragment marker as soon as its last frame was
// handed over, and the audio still waiting behind it is dropped (not a key
// frame). Found by the calibration against the real element
// (TestRealKVSSinkAudioVideo).
func TestAudioAheadOfTheVideoIsOrderedByTimestamp(t *testing.T) {
	run := newAudioVideoRun()
	for _, pts := range []uint64{0, 21, 43, 64, 85} { // all before any video
		run.putBuffer("audio_0", 0, pts*ms, pts*ms)
	}
	run.putBuffer("video_0", 0, 40*ms, 40*ms) // the first keyframe
	run.putBuffer("audio_0", 0, 107*ms, 107*ms)
	run.putBuffer("video_0", delta, 80*ms, 80*ms)
	if got := run.report.FramesAccepted; got["audio_0"] != 2 || got["video_0"] != 2 {
		t.Errorf("accepted %v, want audio 43 and 64 ms (85 and 107 wait for video) and both video frames", got)
	}
	if got := run.report.Dropped(DropNotKeyframe); got != 2 {
		t.Errorf("%d dropped before the first keyframe, want the audio at 0 and 21 ms", got)
	}
	if run.report.Keyframes != 1 || *run.report.FirstPTSRunningTime != 40*ms {
		t.Errorf("keyframes %d, first PTS %d: want 1 and the keyframe's", run.report.Keyframes, *run.report.FirstPTSRunningTime)
	}
	run.eosEvent("audio_0") // behind 85 and 107: not yet at kvssink
	run.eosEvent("video_0")
	if got := run.report.Dropped(DropNotKeyframe); got != 4 || run.report.FramesAccepted["audio_0"] != 2 || !run.report.EOS {
		t.Errorf("after EOS: dropped %d, accepted %v, EOS %v: want the audio at 85 and 107 ms dropped after the end-of-fragment marker",
			got, run.report.FramesAccepted, run.report.EOS)
	}
}

// The tracks of one kvssink share the put_frame state: a DTS below the
// previous frame's, of whatever track, is refused (the content view holds
// the stream's frames in DTS order), as is a frame of any track before the
// current fragment's start; the DTS fill-in continues from the last DTS of
// either track (data->last_dts). Found by the calibration against the real
// element: it refused audio the per-track stand-in took.
func TestTracksShareTheStreamTimeline(t *testing.T) {
	seg := segment{rate: 1, stop: clockNone, duration: clockNone}
	video := newTrackChecker(trackConfig{fragments: true, keyFrameFragmentation: true, timecodeScale: ms})
	audio := newTrackChecker(trackConfig{noKeyframes: true, timecodeScale: ms})
	shareStream(video, audio)
	video.setSegment(seg)
	audio.setSegment(seg)
	steps := []struct {
		c      *trackChecker
		frame  in
		reason string
		status uint32
	}{
		{video, key(100), "", 0},
		{audio, key(120), "", 0},
		{video, delt(110), DropBackwards, StatusDTSBelowPrevious}, // below the audio's DTS
		{audio, key(90), DropBackwards, StatusBeforeClusterStart}, // before the fragment at 100
		{video, key(200), "", 0},
		{audio, in{0, 210 * ms, clockNone}, "", 0}, // DTS filled in from the video's: 202 ms
		{video, delt(201), DropBackwards, StatusDTSBelowPrevious},
	}
	for i, s := range steps {
		f, reason := s.c.prepare(s.frame.flags, s.frame.pts, s.frame.dts)
		var status uint32
		if reason == "" {
			reason, status, _ = s.c.put(f)
		}
		if reason != s.reason || status != s.status {
			t.Errorf("step %d: %q 0x%08x, want %q 0x%08x", i, reason, status, s.reason, s.status)
		}
	}
}

// A video track whose first buffer has no timestamp at all (an encoder's
// first keyframe, made from a raw frame that had none): collectpads hands
// it over first, kvssink drops it (a HEADER buffer without PTS/DTS), and
// the stream starts at the next keyframe. Sorted as the latest timestamp
// instead, it held every later video frame behind it while the audio went
// through alone, dropped for want of a keyframe (seen with the HLS recipe
// and AUDIO=aac, issue #16 part 5).
func TestBufferWithoutTimestampsIsHandedOverFirst(t *testing.T) {
	run := newAudioVideoRun()
	run.putBuffer("video_0", gst.BufferFlagHeader, clockNone, clockNone)
	for _, pts := range []uint64{0, 21, 43} {
		run.putBuffer("audio_0", 0, pts*ms, pts*ms)
	}
	run.putBuffer("video_0", delta, 40*ms, 40*ms)
	run.putBuffer("video_0", 0, 80*ms, 80*ms) // the next keyframe
	for _, pts := range []uint64{64, 85, 107} {
		run.putBuffer("audio_0", 0, pts*ms, pts*ms)
	}
	run.putBuffer("video_0", delta, 120*ms, 120*ms)
	if got := run.report.Dropped(DropHeaderNoTimestamp); got != 1 {
		t.Errorf("%d dropped as a header without timestamps, want the first video buffer", got)
	}
	if got := run.report.FramesAccepted; got["video_0"] != 1 || got["audio_0"] != 2 {
		t.Errorf("accepted %v, want the keyframe at 80 ms and the audio at 85 and 107 ms (the video at 120 ms waits for audio)", got)
	}
	if got := run.report.Dropped(DropNotKeyframe); got != 5 {
		t.Errorf("%d dropped before the first keyframe, want the audio at 0, 21, 43, 64 ms and the video at 40 ms", got)
	}
}

// newAudioVideoRun is a stand-in run with a video and an audio track, as
// kvssink sets them up for H.264 and AAC, each past its first segment.
func newAudioVideoRun() *runState {
	run := &runState{now: time.Now, tracks: map[string]*trackRun{}, report: newReport(),
		creds: &credentialProvider{source: SourceIoT}}
	video := newTrackChecker(trackConfig{fragments: true, keyFrameFragmentation: true, timecodeScale: ms})
	audio := newTrackChecker(trackConfig{noKeyframes: true, timecodeScale: ms})
	shareStream(video, audio)
	run.tracks["video_0"] = &trackRun{kind: "video", checker: video}
	run.tracks["audio_0"] = &trackRun{kind: "audio", checker: audio}
	seg := segment{rate: 1, stop: clockNone, duration: clockNone}
	run.segmentEvent("video_0", seg, true)
	run.segmentEvent("audio_0", seg, true)
	return run
}
