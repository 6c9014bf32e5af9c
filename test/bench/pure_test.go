package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestQuantiles(t *testing.T) {
	cases := []struct {
		name        string
		in          []Sample
		med, p      string
		emptyResult bool
	}{
		{name: "empty", in: nil, med: "n/a", p: "n/a"},
		{name: "one", in: uncensored(2), med: "2.00", p: "2.00"},
		{name: "odd", in: uncensored(5, 1, 3), med: "3.00", p: "5.00"},
		{name: "ten", in: uncensored(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), med: "5.00", p: "9.00"},
		{name: "censored sorts last", in: []Sample{{Value: 30, Censored: true}, {Value: 1}, {Value: 30}}, med: "30.00", p: ">30.00"},
		{name: "median censored", in: []Sample{{Value: 30, Censored: true}, {Value: 30, Censored: true}, {Value: 1}}, med: ">30.00", p: ">30.00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, ok := median(c.in)
			if got := formatSample(m, ok, 2); got != c.med {
				t.Errorf("median = %s, want %s", got, c.med)
			}
			p, ok := p90(c.in)
			if got := formatSample(p, ok, 2); got != c.p {
				t.Errorf("p90 = %s, want %s", got, c.p)
			}
		})
	}
}

func TestFormatRatio(t *testing.T) {
	cases := []struct {
		num, den Sample
		want     string
	}{
		{Sample{Value: 6}, Sample{Value: 2}, "3.00"},
		{Sample{Value: 30, Censored: true}, Sample{Value: 2}, ">15.00"},
		{Sample{Value: 2}, Sample{Value: 30, Censored: true}, "<0.07"},
		{Sample{Value: 30, Censored: true}, Sample{Value: 30, Censored: true}, "n/a"},
		{Sample{Value: 1}, Sample{Value: 0}, "n/a"},
	}
	for _, c := range cases {
		if got := formatRatio(c.num, c.den, true); got != c.want {
			t.Errorf("formatRatio(%v, %v) = %s, want %s", c.num, c.den, got, c.want)
		}
	}
}

func TestTableMarkdown(t *testing.T) {
	tb := Table{Title: "T", Columns: []string{"Name", "value (s)"}, Notes: []string{"a  note\nwrapped"}}
	tb.AddRow("with | pipe", "1.00")
	got := tb.Markdown()
	want := "### T\n\n| Name | value (s) |\n| --- | --- |\n| with \\| pipe | 1.00 |\n\n- a note wrapped\n\n"
	if got != want {
		t.Errorf("Markdown() =\n%q\nwant\n%q", got, want)
	}
	// The rendered table parses back with the test's own parser.
	tables, err := parseMarkdownTables(got)
	if err != nil || len(tables) != 1 || len(tables[0].rows) != 1 {
		t.Fatalf("parse back: %v %+v", err, tables)
	}
	defer func() {
		if recover() == nil {
			t.Error("AddRow with the wrong cell count did not panic")
		}
	}()
	tb.AddRow("only one")
}

func TestStormSchedule(t *testing.T) {
	opts := StormOptions{Seed: 7, Total: 120 * time.Second, DownShare: 0.3, MinDown: 2 * time.Second, MaxDown: 8 * time.Second, MinUp: 3 * time.Second, Lead: 3 * time.Second}
	s1, err := stormSchedule(opts)
	if err != nil {
		t.Fatal(err)
	}
	var down time.Duration
	prevEnd := opts.Lead
	for i, iv := range s1 {
		if iv.Start < prevEnd || iv.End <= iv.Start || iv.End > opts.Total {
			t.Fatalf("outage %d %v overlaps, is empty or leaves [lead, total)", i, iv)
		}
		if i > 0 && iv.Start-prevEnd < opts.MinUp {
			t.Errorf("outage %d starts %v after the previous one, want at least %v", i, iv.Start-prevEnd, opts.MinUp)
		}
		if iv.Len() < opts.MinDown {
			t.Errorf("outage %d lasts %v, want at least %v", i, iv.Len(), opts.MinDown)
		}
		down += iv.Len()
		prevEnd = iv.End
	}
	if want := 36 * time.Second; down != want {
		t.Errorf("total down %v, want %v", down, want)
	}
	s2, _ := stormSchedule(opts)
	if len(s1) != len(s2) || s1[0] != s2[0] {
		t.Errorf("same seed gave different schedules")
	}
	opts.Seed = 8
	s3, _ := stormSchedule(opts)
	if len(s1) == len(s3) && s1[0] == s3[0] {
		t.Errorf("different seeds gave the same schedule")
	}
	if !downAt(s1, s1[0].Start) || downAt(s1, s1[0].End) || downAt(s1, 0) {
		t.Errorf("downAt disagrees with the schedule")
	}
	for _, bad := range []StormOptions{
		{Total: time.Minute, DownShare: 1, MinDown: time.Second, MaxDown: time.Second},
		{Total: time.Minute, DownShare: 0.3, MinDown: 0, MaxDown: time.Second},
		{Total: 10 * time.Second, DownShare: 0.5, MinDown: time.Second, MaxDown: time.Second, MinUp: 5 * time.Second},
	} {
		if _, err := stormSchedule(bad); err == nil {
			t.Errorf("stormSchedule(%+v) accepted an impossible storm", bad)
		}
	}
}

func TestStartLimitHits(t *testing.T) {
	base := time.Unix(1000, 0)
	every := func(n int, step time.Duration) []time.Time {
		var out []time.Time
		for i := 0; i < n; i++ {
			out = append(out, base.Add(time.Duration(i)*step))
		}
		return out
	}
	cases := []struct {
		name   string
		starts []time.Time
		want   int
	}{
		{"five fast starts are allowed", every(5, 100*time.Millisecond), 0},
		{"the sixth within 10 s is refused", every(6, 100*time.Millisecond), 1},
		{"one start every 2.1 s never hits", every(30, 2100*time.Millisecond), 0},
		{"one start a second for 20 s", every(21, time.Second), 11},
		{"none", nil, 0},
	}
	for _, c := range cases {
		if got := startLimitHits(c.starts, 10*time.Second, 5); got != c.want {
			t.Errorf("%s: %d hits, want %d", c.name, got, c.want)
		}
		hit, ok := firstStartLimitHit(c.starts, 10*time.Second, 5)
		if ok != (c.want > 0) {
			t.Errorf("%s: first hit found = %v, want %v", c.name, ok, c.want > 0)
		}
		if ok && !hit.Equal(c.starts[5]) {
			t.Errorf("%s: first hit at %v, want the sixth start %v", c.name, hit, c.starts[5])
		}
	}
}

// scaleDown box-filters an I420 luma plane of w x h to frameWidth x
// frameHeight, as the contenders' scalers roughly do, with chroma 128.
func scaleDown(src []byte, w, h int) []byte {
	out := make([]byte, frameBytes)
	fx, fy := w/frameWidth, h/frameHeight
	for y := 0; y < frameHeight; y++ {
		for x := 0; x < frameWidth; x++ {
			sum := 0
			for dy := 0; dy < fy; dy++ {
				for dx := 0; dx < fx; dx++ {
					sum += int(src[(y*fy+dy)*w+x*fx+dx])
				}
			}
			out[y*frameWidth+x] = byte(sum / (fx * fy))
		}
	}
	for i := frameWidth * frameHeight; i < frameBytes; i++ {
		out[i] = 128
	}
	return out
}

// stampedFrame is a sink-sized frame with stamp n, drawn at the servers'
// size and scaled down.
func stampedFrame(n uint32) []byte {
	src := make([]byte, stampWidth*stampHeight*3/2)
	drawStampFrame(src, stampWidth, stampHeight, n)
	return scaleDown(src, stampWidth, stampHeight)
}

func uniformFrame(luma byte) []byte {
	f := make([]byte, frameBytes)
	for i := range f {
		f[i] = 128
	}
	for i := 0; i < frameWidth*frameHeight; i++ {
		f[i] = luma
	}
	return f
}

func TestStampSurvivesScalingAndNoiseButNotOtherPictures(t *testing.T) {
	for _, n := range []uint32{0, 1, 2, 255, 256, 12345, 1<<stampBits - 1} {
		// At the source size and scaled down to the sink's.
		src := make([]byte, stampWidth*stampHeight*3/2)
		drawStampFrame(src, stampWidth, stampHeight, n)
		if got, ok := readStamp(src, stampWidth, stampHeight); !ok || got != n {
			t.Errorf("stamp %d at %dx%d read as %d, %v", n, stampWidth, stampHeight, got, ok)
		}
		f := stampedFrame(n)
		if got, ok := readStamp(f, frameWidth, frameHeight); !ok || got != n {
			t.Errorf("stamp %d at %dx%d read as %d, %v", n, frameWidth, frameHeight, got, ok)
		}
		// Coding noise of +-40 luma levels and blurred cell edges (a
		// neighbour's colour over the outer quarter of every cell).
		noisy := append([]byte(nil), f...)
		for i := 0; i < frameWidth*frameHeight; i++ {
			v := int(noisy[i]) + (i*7919%81 - 40)
			noisy[i] = byte(max(0, min(255, v)))
		}
		for y := 0; y < frameHeight; y++ {
			for x := 0; x < frameWidth; x += frameWidth / stampCols {
				noisy[y*frameWidth+x] = 255 - noisy[y*frameWidth+x]
			}
		}
		if got, ok := readStamp(noisy, frameWidth, frameHeight); !ok || got != n {
			t.Errorf("noisy stamp %d read as %d, %v", n, got, ok)
		}
	}
	// Stamps wider than the counter wrap into it.
	if got, _ := readStamp(stampedFrame(1<<stampBits+5), frameWidth, frameHeight); got != 5 {
		t.Errorf("stamp 2^%d+5 read as %d, want 5", stampBits, got)
	}

	bars := make([]byte, frameBytes)
	for i := 0; i < frameWidth*frameHeight; i++ {
		bars[i] = []byte{235, 210, 170, 145, 106, 81, 41, 16}[(i%frameWidth)*8/frameWidth]
	}
	flipped := stampedFrame(77)
	for y := frameHeight/6 + 2; y < frameHeight/6+6; y++ { // one data cell: the CRC no longer matches
		for x := 2; x < 6; x++ {
			flipped[y*frameWidth+x] = 255 - flipped[y*frameWidth+x]
		}
	}
	grey := stampedFrame(77)
	for y := 2 * frameHeight / 6; y < 3*frameHeight/6; y++ { // one cell neither black nor white
		for x := 0; x < frameWidth/8; x++ {
			grey[y*frameWidth+x] = 128
		}
	}
	for name, f := range map[string][]byte{
		"black fallback": uniformFrame(16), "white": uniformFrame(235), "grey concealment": uniformFrame(128),
		"colour bars (fallback image)": bars, "a flipped data cell": flipped, "a grey cell": grey, "a torn frame": stampedFrame(77)[:100],
	} {
		if n, ok := readStamp(f, frameWidth, frameHeight); ok {
			t.Errorf("%s read as stamp %d", name, n)
		}
	}
}

func TestRealFramesAreNewPictureOnly(t *testing.T) {
	// A source frame, the next, fallback's hold phase repeating it, black
	// fallback, new picture, a stale frame flushed late, an unreadable
	// frame, new picture again.
	frames := []struct {
		name  string
		frame []byte
		real  bool
	}{
		{"first", stampedFrame(100), true},
		{"next", stampedFrame(101), true},
		{"held", stampedFrame(101), false},
		{"held again", stampedFrame(101), false},
		{"black fallback", uniformFrame(16), false},
		{"new after the outage", stampedFrame(400), true},
		{"stale, flushed late", stampedFrame(150), false},
		{"unreadable", uniformFrame(128), false},
		{"newer", stampedFrame(401), true},
	}
	var stream []byte
	for _, f := range frames {
		stream = append(stream, f.frame...)
	}
	stream = append(stream, stampedFrame(500)[:10]...) // a torn last frame is not counted
	base := time.Unix(0, 0)
	tick := 0
	log := &FrameLog{now: func() time.Time { tick++; return base.Add(time.Duration(tick) * time.Second) }}
	if _, err := log.ReadFrom(strings.NewReader(string(stream))); err != nil {
		t.Fatal(err)
	}
	marks := log.Marks()
	if len(marks) != len(frames) {
		t.Fatalf("%d marks, want %d", len(marks), len(frames))
	}
	for i, f := range frames {
		if marks[i].Real != f.real {
			t.Errorf("%s: real = %v, want %v", f.name, marks[i].Real, f.real)
		}
	}
	if !marks[2].Stamped || marks[2].Stamp != 101 || marks[4].Stamped {
		t.Errorf("held frame %+v should carry stamp 101, the black one %+v none", marks[2], marks[4])
	}
	if got := len(times(marks, true)); got != 4 {
		t.Errorf("%d real frames, want 4", got)
	}
	// The classification carries across process runs of one contender:
	// a restarted process repeating a frame shown before shows nothing new.
	if _, err := log.ReadFrom(strings.NewReader(string(stampedFrame(401)))); err != nil {
		t.Fatal(err)
	}
	if m := log.Marks(); m[len(m)-1].Real {
		t.Error("a frame repeated by the next process run counted as real")
	}
}

func TestStampFeedMapsStampsToTime(t *testing.T) {
	epoch := time.Unix(1000, 0)
	f := &stampFeed{epoch: epoch}
	at := epoch.Add(10*time.Second + 30*time.Millisecond)
	n := f.stampAt(at)
	if n != 250 {
		t.Errorf("stampAt(+10.03 s) = %d, want 250", n)
	}
	if d := at.Sub(f.madeAt(n)); d < 0 || d >= stampTick {
		t.Errorf("madeAt(%d) is %v before the frame, want within one tick", n, d)
	}
}

func TestTimeline(t *testing.T) {
	base := time.Unix(0, 0)
	at := func(s ...float64) []time.Time {
		var out []time.Time
		for _, v := range s {
			out = append(out, base.Add(time.Duration(v*float64(time.Second))))
		}
		return out
	}
	sec := func(v float64) time.Time { return base.Add(time.Duration(v * float64(time.Second))) }
	ts := at(1, 2, 3, 10, 11)
	if got, ok := firstAfter(ts, sec(4)); !ok || !got.Equal(sec(10)) {
		t.Errorf("firstAfter(4) = %v", got)
	}
	if got, ok := lastBefore(ts, sec(10)); !ok || !got.Equal(sec(3)) {
		t.Errorf("lastBefore(10) = %v", got)
	}
	if _, ok := firstAfter(ts, sec(12)); ok {
		t.Error("firstAfter past the end found a frame")
	}
	if got := longestGap(ts, sec(0), sec(12)); got != 7*time.Second {
		t.Errorf("longestGap = %v, want 7s", got)
	}
	// Frames hold the picture for 2 s: dark from 5 to 10 and from 13 to 20.
	spans := darkSpans(ts, sec(0), sec(20), 2*time.Second)
	want := []time.Duration{time.Second, 5 * time.Second, 7 * time.Second}
	if len(spans) != len(want) {
		t.Fatalf("darkSpans = %v, want %v", spans, want)
	}
	for i := range want {
		if spans[i] != want[i] {
			t.Errorf("darkSpans = %v, want %v", spans, want)
		}
	}
	if got := coveredShare(ts, sec(0), sec(20), 2*time.Second); got < 0.349 || got > 0.351 {
		t.Errorf("coveredShare = %.3f, want 0.35", got)
	}
}

func TestChildEnvDropsAWSAndForeignPlugins(t *testing.T) {
	base := []string{"PATH=/usr/bin", "AWS_SECRET_ACCESS_KEY=x", "AWS_CA_BUNDLE=/ca", "GST_PLUGIN_PATH=/home/u/.local", "GST_REGISTRY_1_0=/r", "HOME=/root"}
	env := childEnv(base, "/p", "/sys", "/tmp/reg.bin")
	joined := strings.Join(env, "\n")
	for _, bad := range []string{"AWS_", "/home/u/.local", "GST_REGISTRY_1_0"} {
		if strings.Contains(joined, bad) {
			t.Errorf("child env keeps %q:\n%s", bad, joined)
		}
	}
	for _, good := range []string{"PATH=/usr/bin", "HOME=/root", "GST_PLUGIN_PATH=/p", "GST_PLUGIN_SYSTEM_PATH_1_0=/sys", "GST_REGISTRY=/tmp/reg.bin"} {
		if !strings.Contains(joined, good) {
			t.Errorf("child env lacks %q:\n%s", good, joined)
		}
	}
}

func TestParseBusLineAndInspect(t *testing.T) {
	m, ok := parseBusLine(`Got message #53 from element "reconnectbin0" (element): reconnectbin-restart, error=(string)"end\ of\ stream", attempt=(int)1, delay=(guint64)0, reason=(string)eos;`)
	if !ok || m.Name != "reconnectbin-restart" || m.Reason != "eos" {
		t.Errorf("restart line parsed as %+v, %v", m, ok)
	}
	m, ok = parseBusLine(`Got message #95 from element "reconnectbin0" (element): reconnectbin-recovered, outage=(guint64)3881531, attempts=(int)1;`)
	if !ok || m.Name != "reconnectbin-recovered" {
		t.Errorf("recovered line parsed as %+v, %v", m, ok)
	}
	if _, ok := parseBusLine(`Got message #1 from element "pipeline0" (state-changed): GstMessageStateChanged`); ok {
		t.Error("a state change was taken for a reconnectbin message")
	}
	if got := enumValues("Enum \"Fallback\" Default: 0, \"none\"\n (0): none - nothing\n (1): black - black frames"); strings.Join(got, ",") != "none,black" {
		t.Errorf("enumValues = %v", got)
	}
	if got := gstVersion([]byte("gst-launch-1.0 version 1.22.0\nGStreamer 1.22.0\nhttps://x\n")); got != "1.22.0" {
		t.Errorf("gstVersion = %q", got)
	}
	if got := cpuModel([]byte("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")); got != "AMD EPYC 7B13" {
		t.Errorf("cpuModel = %q", got)
	}
}

func TestPresentingPacesEveryContender(t *testing.T) {
	src := Source{Proto: "hls", URL: "http://127.0.0.1:1/live.m3u8"}
	tests := []struct {
		c    Contender
		want string
		gone string
	}{
		{reconnectbinContender("r", src, ReconnectSettings{}), "sync=true", "sync=false"},
		{gstLaunchContender(src, 0), "sync=true", "sync=false"},
		{ffmpegContender(src, 0), "-re -i " + src.URL, ""},
	}
	for _, tt := range tests {
		got := strings.Join(presenting(tt.c).Args, " ")
		if !strings.Contains(got, tt.want) || (tt.gone != "" && strings.Contains(got, tt.gone)) {
			t.Errorf("%s: presenting args %q: want %q, without %q", tt.c.Name, got, tt.want, tt.gone)
		}
		if before := strings.Join(tt.c.Args, " "); strings.Contains(before, "sync=true") || strings.Contains(before, "-re ") {
			t.Errorf("%s: presenting changed the original contender: %q", tt.c.Name, before)
		}
	}
}

func TestRecoveryTableUsesStartLimitAndOwnFloor(t *testing.T) {
	results := []*recoveryResult{
		{name: "reconnectbin", kind: "reconnectbin", reference: true,
			recovery: uncensored(1), limited: uncensored(1), dark: uncensored(5), lag: uncensored(0.2)},
		// Restarted fast enough to look quick, but the start limit would
		// have failed the unit before it recovered.
		{name: "gst-launch, RestartSec=0", kind: "gst-launch",
			recovery: uncensored(0.1), limited: []Sample{{Value: 30, Censored: true}}, dark: uncensored(4), hits: uncensored(12)},
		{name: "ffmpeg, RestartSec=5", kind: "ffmpeg", recovery: uncensored(3), limited: uncensored(3), dark: uncensored(8)},
	}
	floors := map[string]Sample{"reconnectbin": {Value: 0.5}, "gst-launch": {Value: 0.2}}
	tables, err := parseMarkdownTables(recoveryTable("T", results, floors, 30*time.Second).Markdown())
	if err != nil || len(tables) != 1 {
		t.Fatalf("parse: %v, %d tables", err, len(tables))
	}
	tb := tables[0]
	cell := func(row int, col string) string {
		i := tb.column(col)
		if i < 0 {
			t.Fatalf("no column %q in %v", col, tb.header)
		}
		return tb.rows[row][i]
	}
	want := []struct {
		row       int
		col, want string
	}{
		{0, "ratio vs reconnectbin under start limit (x)", "1.00"},
		{1, "recovery median (s)", "0.10"},
		{1, "recovery under start limit median (s)", ">30.00"},
		{1, "ratio vs reconnectbin under start limit (x)", ">30.00"},
		{2, "ratio vs reconnectbin under start limit (x)", "3.00"},
		{0, "recovery minus floor (s)", "0.50"},
		{1, "recovery minus floor (s)", "-0.10"},
		{2, "recovery minus floor (s)", "n/a"}, // no ffmpeg floor measured
		{0, "lag behind live at recovery median (s)", "0.20"},
		{1, "start-limit hits (count)", "12"},
	}
	for _, w := range want {
		if got := cell(w.row, w.col); got != w.want {
			t.Errorf("%s: %s = %q, want %q", tb.rows[w.row][0], w.col, got, w.want)
		}
	}
}

func TestFaultFramesDropStalePictureAfterTheSourceIsBack(t *testing.T) {
	epoch := time.Unix(0, 0)
	madeAt := func(n uint32) time.Time { return epoch.Add(time.Duration(n) * stampTick) }
	sec := func(v float64) time.Time { return epoch.Add(time.Duration(v * float64(time.Second))) }
	stamp := func(v float64) uint32 { return uint32(v * float64(time.Second) / float64(stampTick)) }
	// Fault from 10 s to 13 s.
	start, back := sec(10), sec(13)
	marks := []FrameMark{
		{At: sec(9.5), Stamp: stamp(9.3), Real: true},  // before the fault
		{At: sec(10.2), Stamp: stamp(9.9), Real: true}, // in flight when it began: counts
		{At: sec(11), Stamp: stamp(9.95), Real: true},  // a buffer drained during the outage: counts
		{At: sec(15.2), Stamp: stamp(9.9), Real: true}, // flushed after the source is back: stale
		{At: sec(15.3), Stamp: stamp(9.99), Real: false},
		{At: sec(15.7), Stamp: stamp(15.5), Real: true}, // the recovery
		{At: sec(16), Stamp: stamp(11), Real: true},     // made during the outage (HLS keeps it): counts
	}
	got := faultFrames(marks, start, back, madeAt)
	var at []float64
	for _, m := range got {
		at = append(at, m.At.Sub(epoch).Seconds())
	}
	want := []float64{9.5, 10.2, 11, 15.7, 16}
	if len(at) != len(want) {
		t.Fatalf("fault frames arrive at %v, want %v", at, want)
	}
	for i := range want {
		if at[i] != want[i] {
			t.Fatalf("fault frames arrive at %v, want %v", at, want)
		}
	}
}

func TestSlopeSeparatesPerFrameFromStartUpCost(t *testing.T) {
	// 0.3 s to start and stop, 1 ms a frame.
	perFrame, fixed := slope(25, 600, 0.3+0.025, 0.3+0.6)
	if math.Abs(perFrame-0.001) > 1e-12 || math.Abs(fixed-0.3) > 1e-12 {
		t.Errorf("slope = %g s per frame, %g s fixed; want 0.001, 0.3", perFrame, fixed)
	}
}

// The memory table names the threads whose count moved, so that a thread
// left behind by rebuilds (a streaming thread never joined) can be told from
// a pool or runtime thread that grew once.
func TestThreadChange(t *testing.T) {
	tests := []struct {
		name          string
		before, after map[string]int
		want          string
	}{
		{"same", map[string]int{"python3": 4, "pool-2": 1}, map[string]int{"python3": 4, "pool-2": 1}, ""},
		{"one more runtime thread", map[string]int{"python3": 4}, map[string]int{"python3": 5}, "python# +1"},
		{"an idle pool thread renamed by the last task it ran is the same thread",
			map[string]int{"souphttpsrc2047": 1, "multiqueue1023:": 1}, map[string]int{"souphttpsrc4049": 1, "multiqueue2024:": 1}, ""},
		{"a streaming thread left behind, in name order", map[string]int{"pool-2": 1, "rb:src": 1},
			map[string]int{"rb:src": 1, "pool-7": 1, "tcpclientsrc202": 1}, "tcpclientsrc# +1"},
		{"nothing before", nil, map[string]int{"gmain": 1}, "gmain +1"},
	}
	for _, tt := range tests {
		if got := threadChange(tt.before, tt.after); got != tt.want {
			t.Errorf("%s: threadChange = %q, want %q", tt.name, got, tt.want)
		}
	}
}
