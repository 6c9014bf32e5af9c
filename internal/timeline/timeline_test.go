package timeline

import "testing"

const ms = int64(1_000_000)

func TestSegmentRunningTime(t *testing.T) {
	cases := []struct {
		name string
		seg  Segment
		pos  uint64
		want int64
		ok   bool
	}{
		{"plain", Segment{Time: true, Rate: 1}, 5, 5, true},
		{"start and base", Segment{Time: true, Start: 100, Base: 1000, Rate: 1}, 150, 1050, true},
		{"offset", Segment{Time: true, Start: 100, Offset: 20, Rate: 1}, 150, 30, true},
		{"before start is negative", Segment{Time: true, Start: 100, Base: 10, Rate: 1}, 40, -50, true},
		{"double rate", Segment{Time: true, Rate: 2}, 100, 50, true},
		{"bytes segment", Segment{Rate: 1}, 5, 0, false},
		{"reverse playback", Segment{Time: true, Rate: -1}, 5, 0, false},
	}
	for _, tc := range cases {
		got, ok := tc.seg.RunningTime(tc.pos)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: RunningTime(%d) = %d, %v; want %d, %v", tc.name, tc.pos, got, ok, tc.want, tc.ok)
		}
	}
}

// Each step is one buffer; startInstance marks a rebuilt source.
type step struct {
	startInstance bool
	pts, dts, dur int64
	now           int64
	wantPTS       int64
	wantDTS       int64
}

func TestOutputPlacesInstancesOnTheClock(t *testing.T) {
	cases := []struct {
		name  string
		steps []step
	}{
		{"first instance starts at now", []step{
			{true, 300 * ms, None, 40 * ms, 50 * ms, 50 * ms, None},
			{false, 340 * ms, None, 40 * ms, 95 * ms, 90 * ms, None},
		}},
		{"restart at zero after an outage keeps the gap equal to the outage", []step{
			{true, 0, None, 40 * ms, 1000 * ms, 1000 * ms, None},
			{false, 40 * ms, None, 40 * ms, 1040 * ms, 1040 * ms, None},
			// source rebuilt, its timestamps start again near 0; the clock moved 2 s
			{true, 10 * ms, None, 40 * ms, 3080 * ms, 3080 * ms, None},
			{false, 50 * ms, None, 40 * ms, 3120 * ms, 3120 * ms, None},
		}},
		{"an instance running ahead of the clock never goes backwards", []step{
			{true, 0, None, 40 * ms, 0, 0, None},
			{false, 5000 * ms, None, 40 * ms, 100 * ms, 5000 * ms, None},
			// rebuilt: now (200 ms) is before the last buffer's end (5040 ms)
			{true, 0, None, 40 * ms, 200 * ms, 5040 * ms, None},
		}},
		{"decode order: DTS before PTS places the DTS", []step{
			{true, 80 * ms, 0, 40 * ms, 1000 * ms, 1080 * ms, 1000 * ms},
			{false, 40 * ms, 40 * ms, 40 * ms, 1040 * ms, 1040 * ms, 1040 * ms},
			{true, 120 * ms, 40 * ms, 40 * ms, 1050 * ms, 1160 * ms, 1080 * ms},
		}},
		{"no clock: keep the instance's own timestamps, never backwards", []step{
			{true, 500 * ms, None, 40 * ms, None, 500 * ms, None},
			{true, 0, None, 40 * ms, None, 540 * ms, None},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o Output
			for i, s := range tc.steps {
				if s.startInstance {
					o.StartInstance()
				}
				p := o.Place(0, s.pts, s.dts, s.dur, s.now)
				if !p.OK || p.Late || p.PTS != s.wantPTS || p.DTS != s.wantDTS {
					t.Fatalf("step %d: Place = %+v; want %d, %d", i, p, s.wantPTS, s.wantDTS)
				}
			}
		})
	}
}

func TestOutputWithoutTimestampsIsUntouched(t *testing.T) {
	var o Output
	o.StartInstance()
	if p := o.Place(0, None, None, None, 10); p.OK {
		t.Fatal("a buffer without timestamps was placed")
	}
	if _, any := o.LastEnd(); any {
		t.Fatal("an untimestamped buffer counted as output")
	}
}

// Fallback frames continue exactly where the source stopped, and the next
// instance continues after them.
func TestFillContinuesTheTimeline(t *testing.T) {
	var o Output
	o.StartInstance()
	o.Place(0, 0, None, 40*ms, 1000*ms) // 1000..1040
	if _, ok := o.NextFill(0, 40*ms, 1500*ms); ok {
		t.Fatal("a fill buffer was made before fill was opened")
	}
	o.OpenFill(0)
	for i, want := range []int64{1040 * ms, 1080 * ms, 1120 * ms} {
		if got, ok := o.NextFill(0, 40*ms, 1500*ms); !ok || got != want {
			t.Fatalf("fill %d at %d (%v), want %d", i, got, ok, want)
		}
	}
	o.StartInstance()
	p := o.Place(0, 0, None, 40*ms, 1100*ms) // clock is behind the fill
	if p.PTS != 1160*ms || !p.TookOver || p.PrevEnd != 1160*ms {
		t.Fatalf("instance after fill placed at %+v, want 1160 ms, taking over", p)
	}
	if _, ok := o.NextFill(0, 40*ms, 1500*ms); ok || o.Filling(0) {
		t.Fatal("fill went on after the source took the stream over")
	}
	var fresh Output
	fresh.OpenFill(0)
	if got, _ := fresh.NextFill(0, 40*ms, 700*ms); got != 700*ms {
		t.Fatalf("fill before any output at %d, want now (700 ms)", got)
	}
}

// Fill started on two streams at once (black and silence before any
// source ran) starts both at the clock, in sync, not one a frame after the
// other; a stream's first fill without a clock follows everything.
func TestFirstFillOfAStreamStartsNow(t *testing.T) {
	const video, audio = 0, 1
	var o Output
	o.OpenFill(video)
	o.OpenFill(audio)
	if got, _ := o.NextFill(video, 40*ms, 500*ms); got != 500*ms {
		t.Fatalf("first video fill at %d, want now (500 ms)", got)
	}
	if got, _ := o.NextFill(audio, 40*ms, 501*ms); got != 501*ms {
		t.Fatalf("first audio fill at %d, want now (501 ms), beside the video", got)
	}
	if got, _ := o.NextFill(audio, 40*ms, 530*ms); got != 541*ms {
		t.Fatalf("second audio fill at %d, want right after the first (541 ms)", got)
	}
	var noClock Output
	noClock.StartInstance()
	noClock.Place(video, 0, None, 40*ms, 1000*ms)
	noClock.OpenFill(audio)
	if got, _ := noClock.NextFill(audio, 40*ms, None); got != 1040*ms {
		t.Fatalf("first audio fill without a clock at %d, want after the video (1040 ms)", got)
	}
}

// Two streams of one instance share its offset (A/V sync) and each keeps
// its own end: audio ahead of video does not push video's fill forward, and
// a buffer that would step back in its own stream is reported late.
func TestStreamsShareTheOffsetAndKeepTheirOwnEnds(t *testing.T) {
	const video, audio = 0, 1
	var o Output
	o.StartInstance()
	o.Place(video, 0, None, 40*ms, 1000*ms)      // video 1000..1040
	o.Place(audio, 20*ms, None, 100*ms, 1001*ms) // audio 1020..1120: same offset
	o.OpenFill(video)
	o.OpenFill(audio)
	if got, _ := o.NextFill(video, 40*ms, 1200*ms); got != 1040*ms {
		t.Fatalf("video fill at %d, want right after video (1040 ms)", got)
	}
	if got, _ := o.NextFill(audio, 40*ms, 1200*ms); got != 1120*ms {
		t.Fatalf("audio fill at %d, want right after audio (1120 ms)", got)
	}
	o.StartInstance()
	p := o.Place(audio, 500*ms, None, 20*ms, 1100*ms) // first of the new instance: after audio's end
	if p.Late || p.PTS != 1160*ms {
		t.Fatalf("new instance's audio at %+v, want 1160 ms", p)
	}
	p = o.Place(video, 480*ms, None, 40*ms, 1101*ms) // same offset: 1140, after video's end (1080)
	if p.Late || p.PTS != 1140*ms || p.PrevEnd != 1080*ms {
		t.Fatalf("new instance's video at %+v, want 1140 ms after 1080 ms", p)
	}
	if p = o.Place(audio, 400*ms, None, 20*ms, 1102*ms); !p.Late {
		t.Fatal("audio stepping back 100 ms in its own stream was not reported late")
	}
	if end, _ := o.LastEnd(); end != 1180*ms {
		t.Fatalf("LastEnd %d, want 1180 ms", end)
	}
}

// The first instance placed by its audio, whose running time (128 ms) is
// ahead of the clock (104 ms), and whose video starts earlier in the
// instance (0 ms, videorate's first frame): nothing may leave before output
// running time 0, where it would have no timestamp; the rest of the video
// keeps the audio's offset (A/V sync).
func TestNothingIsPlacedBeforeZero(t *testing.T) {
	const video, audio = 0, 1
	var o Output
	o.StartInstance()
	if p := o.Place(audio, 128*ms, None, 21*ms, 104*ms); p.Late || p.PTS != 104*ms {
		t.Fatalf("the instance's first audio at %+v, want 104 ms (now)", p)
	}
	p := o.Place(video, 0, None, 40*ms, 105*ms)
	if !p.Late || !p.BeforeStart {
		t.Fatalf("a video frame mapping to %d ns was not dropped: %+v", p.PTS, p)
	}
	if _, any := o.LastEndOf(video); any {
		t.Fatal("the dropped frame counted as output")
	}
	if p = o.Place(video, 40*ms, None, 40*ms, 106*ms); p.Late || p.PTS != 16*ms {
		t.Fatalf("the next video frame at %+v, want 16 ms (40 ms on the audio's offset)", p)
	}
}

// Audio that can be cut at any sample (SetSampleRate) never overlaps what
// went out: the overlapping head of a buffer is cut, a buffer wholly inside
// what went out is late; other streams keep the 1 ms tolerance.
func TestOverlappingSamplesAreCut(t *testing.T) {
	const rate = 8000 // 125 µs a sample
	cases := []struct {
		name       string
		rate       int
		pts, dur   int64
		wantPTS    int64
		wantTrim   int64
		wantLate   bool
		wantEndOut int64
	}{
		{"contiguous", rate, 128 * ms, 128 * ms, 128 * ms, 0, false, 256 * ms},
		{"RTP jitter: 31.625 ms early", rate, 128*ms - 31625000, 128 * ms, 128 * ms, 253, false, 256*ms - 31625000},
		{"rounded duration: half a sample early is no overlap", rate, 128*ms - 50000, 128 * ms, 128*ms - 50000, 0, false, 256*ms - 50000},
		{"wholly inside what went out", rate, 10 * ms, 100 * ms, None, 0, true, 128 * ms},
		{"a gap stays a gap", rate, 140 * ms, 128 * ms, 140 * ms, 0, false, 268 * ms},
		{"encoded audio: tolerated overlap passes", 0, 127500000, 21 * ms, 127500000, 0, false, 148500000},
		{"encoded audio: a real overlap is late", 0, 120 * ms, 21 * ms, None, 0, true, 128 * ms},
	}
	for _, tc := range cases {
		var o Output
		o.SetSampleRate(1, tc.rate)
		o.StartInstance()
		if p := o.Place(1, 0, None, 128*ms, 0); p.PTS != 0 || p.Late {
			t.Fatalf("%s: first buffer placed at %+v", tc.name, p)
		}
		p := o.Place(1, tc.pts, None, tc.dur, tc.pts)
		if p.Late != tc.wantLate || p.TrimSamples != tc.wantTrim || (!tc.wantLate && p.PTS != tc.wantPTS) {
			t.Errorf("%s: placed %+v; want PTS %d, trim %d, late %v", tc.name, p, tc.wantPTS, tc.wantTrim, tc.wantLate)
		}
		if end, _ := o.LastEndOf(1); end != tc.wantEndOut {
			t.Errorf("%s: stream ends at %d, want %d", tc.name, end, tc.wantEndOut)
		}
	}
}
