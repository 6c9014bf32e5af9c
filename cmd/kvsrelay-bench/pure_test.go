package main

import (
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
	}
}

func TestParseProcStatus(t *testing.T) {
	status := "Name:\tgst-launch-1.0\nVmPeak:\t  300000 kB\nVmRSS:\t   27864 kB\nThreads:\t9\n"
	rss, threads, err := parseProcStatus([]byte(status))
	if err != nil || rss != 27864 || threads != 9 {
		t.Errorf("parseProcStatus = %d, %d, %v; want 27864, 9, nil", rss, threads, err)
	}
	if _, _, err := parseProcStatus([]byte("Name:\tzombie\nThreads:\t1\n")); err == nil {
		t.Error("status without VmRSS (a zombie) was accepted")
	}
	if _, _, err := parseProcStatus([]byte("VmRSS:\tlots kB\nThreads:\t1\n")); err == nil {
		t.Error("malformed VmRSS was accepted")
	}
}

func TestFrameClassificationAndTimeline(t *testing.T) {
	black := make([]byte, frameBytes)
	for i := range black[:frameWidth*frameHeight] {
		black[i] = 16
	}
	picture := append([]byte(nil), black...)
	picture[100] = 235
	if isRealFrame(black) || !isRealFrame(picture) {
		t.Fatal("a black fallback frame and a picture are not told apart")
	}
	var stream []byte
	stream = append(stream, picture...)
	stream = append(stream, black...)
	stream = append(stream, picture[:10]...) // a torn last frame is not counted
	base := time.Unix(0, 0)
	tick := 0
	log := &FrameLog{now: func() time.Time { tick++; return base.Add(time.Duration(tick) * time.Second) }}
	if _, err := log.ReadFrom(strings.NewReader(string(stream))); err != nil {
		t.Fatal(err)
	}
	marks := log.Marks()
	if len(marks) != 2 || !marks[0].Real || marks[1].Real {
		t.Fatalf("marks = %+v, want one real then one fallback frame", marks)
	}

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
