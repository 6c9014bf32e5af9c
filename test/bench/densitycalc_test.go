package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestProcCPUTicks(t *testing.T) {
	cases := []struct {
		name    string
		stat    string
		want    uint64
		wantErr bool
	}{
		{name: "gst-launch", stat: "4242 (gst-launch-1.0) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 39 19 12 0 100 0 0 18446744073709551615\n", want: 187},
		{name: "name with spaces and parentheses", stat: "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 0 0\n", want: 11},
		{name: "no name", stat: "7 a R 1", wantErr: true},
		{name: "cut short", stat: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 5", wantErr: true},
		{name: "not a number", stat: "7 (x) R 1 7 7 0 -1 0 0 0 0 0 five 6 0", wantErr: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := procCPUTicks([]byte(c.stat))
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if got != c.want {
				t.Errorf("ticks = %d, want %d", got, c.want)
			}
		})
	}
}

func TestMachineCPU(t *testing.T) {
	before, err := parseMachineCPU([]byte("cpu  100 10 50 800 40 0 0 0 0 0\ncpu0 50 5 25 400 20 0 0 0 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if before.busy != 160 || before.total != 1000 {
		t.Errorf("before = %+v, want busy 160 of 1000 (idle and iowait are idle)", before)
	}
	after, err := parseMachineCPU([]byte("cpu  250 10 100 850 40 0 0 0 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := before.busyShare(after); math.Abs(got-0.8) > 1e-9 {
		t.Errorf("busyShare = %v, want 0.8 (200 busy of 250)", got)
	}
	if got := after.busyShare(after); got != 0 {
		t.Errorf("busyShare over no time = %v, want 0", got)
	}
	for _, bad := range []string{"", "intr 1 2 3", "cpu 1 2 3", "cpu 1 2 x 4 5 6 7 8"} {
		if _, err := parseMachineCPU([]byte(bad)); err == nil {
			t.Errorf("parseMachineCPU(%q) took it", bad)
		}
	}
}

func TestParsePssKiB(t *testing.T) {
	rollup := "55d0c0a00000-7ffd9b5fe000 ---p 00000000 00:00 0                          [rollup]\nRss:               41236 kB\nPss:               17890 kB\nPss_Anon:           9000 kB\n"
	got, err := parsePssKiB([]byte(rollup))
	if err != nil || got != 17890 {
		t.Errorf("parsePssKiB = %d, %v; want 17890 (the Pss line, not Pss_Anon)", got, err)
	}
	if _, err := parsePssKiB([]byte("Rss: 1 kB\n")); err == nil {
		t.Error("a rollup without Pss was taken")
	}
}

func TestDeliveredShare(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	cases := []struct {
		name       string
		start, end frameCount
		readAt     time.Time
		want       float64
	}{
		{name: "every frame", start: frameCount{At: at(0), Frames: 100}, end: frameCount{At: at(20), Frames: 600}, readAt: at(20.2), want: 1},
		// The counts' own times make the span: read 0.2 s late, the
		// count is still exact.
		{name: "counts older than the reads", start: frameCount{At: at(-0.2), Frames: 100}, end: frameCount{At: at(19.8), Frames: 590}, readAt: at(20), want: 0.98},
		{name: "half the frames", start: frameCount{At: at(0), Frames: 0}, end: frameCount{At: at(20), Frames: 250}, readAt: at(20), want: 0.5},
		// The count stopped moving at 10 s: the silence after it counts.
		{name: "frames stopped mid-window", start: frameCount{At: at(0), Frames: 0}, end: frameCount{At: at(10), Frames: 250}, readAt: at(20), want: 0.5},
		{name: "count went backwards", start: frameCount{At: at(0), Frames: 500}, end: frameCount{At: at(20), Frames: 10}, readAt: at(20), want: 0},
		{name: "never counted", start: frameCount{}, end: frameCount{}, readAt: at(20), want: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := deliveredShare(c.start, c.end, c.readAt, 25, time.Second)
			if math.Abs(got-c.want) > 1e-3 {
				t.Errorf("deliveredShare = %.4f, want %.4f", got, c.want)
			}
		})
	}
}

func TestDensityVerdict(t *testing.T) {
	c := densityCriteria{MinShare: 0.98, MaxBusy: 0.9}
	good := densityStep{Relays: 2, Shares: []float64{1, 0.99}, MachineBusy: 0.5}
	cases := []struct {
		name  string
		edit  func(*densityStep)
		holds bool
		why   []string
	}{
		{name: "holds", edit: func(*densityStep) {}, holds: true},
		{name: "exactly at the limits", edit: func(s *densityStep) { s.Shares = []float64{0.98, 1}; s.MachineBusy = 0.9 }, holds: true},
		{name: "a relay short of frames", edit: func(s *densityStep) { s.Shares = []float64{0.97, 1} }, why: []string{"1 relay(s) delivered under 98%", "worst 97.0%"}},
		{name: "machine saturated", edit: func(s *densityStep) { s.MachineBusy = 0.97 }, why: []string{"machine 97% busy"}},
		{name: "a restart", edit: func(s *densityStep) { s.Restarts = 1 }, why: []string{"1 reconnectbin restart(s)"}},
		{name: "a relay failed", edit: func(s *densityStep) { s.Failures = []string{"relay 1: gst-launch-1.0 exited"} }, why: []string{"relay 1: gst-launch-1.0 exited"}},
		{name: "a relay not counted", edit: func(s *densityStep) { s.Shares = s.Shares[:1] }, why: []string{"frames counted for 1 of 2 relays"}},
		{name: "several reasons", edit: func(s *densityStep) { s.Shares = []float64{0.5, 0.6}; s.MachineBusy = 1 },
			why: []string{"2 relay(s) delivered under 98%", "worst 50.0%", "machine 100% busy"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			s.Shares = append([]float64(nil), good.Shares...)
			tc.edit(&s)
			holds, why := c.verdict(s)
			if holds != tc.holds {
				t.Errorf("holds = %v, want %v (why %q)", holds, tc.holds, why)
			}
			if holds && why != "" {
				t.Errorf("a step that holds has a reason %q", why)
			}
			for _, w := range tc.why {
				if !strings.Contains(why, w) {
					t.Errorf("why = %q, want it to say %q", why, w)
				}
			}
		})
	}
}

func TestWorstAndMean(t *testing.T) {
	worst, mean, ok := worstAndMean([]float64{1, 0.9, 0.95})
	if !ok || worst != 0.9 || math.Abs(mean-0.95) > 1e-9 {
		t.Errorf("worstAndMean = %v, %v, %v; want 0.9, 0.95, true", worst, mean, ok)
	}
	if _, _, ok := worstAndMean(nil); ok {
		t.Error("worstAndMean(nil) is ok")
	}
}

func TestDensityRamp(t *testing.T) {
	steps := []int{1, 2, 4, 8}
	cases := []struct {
		done     int
		held     bool
		wantNext int
		wantOK   bool
	}{
		{done: 0, held: true, wantNext: 2, wantOK: true},
		{done: 2, held: true, wantNext: 8, wantOK: true},
		{done: 3, held: true},  // the last step: the cap
		{done: 1, held: false}, // the first step that did not hold ends it
	}
	for _, c := range cases {
		next, ok := nextDensityStep(steps, c.done, c.held)
		if next != c.wantNext || ok != c.wantOK {
			t.Errorf("nextDensityStep(after %d, held %v) = %d, %v; want %d, %v", steps[c.done], c.held, next, ok, c.wantNext, c.wantOK)
		}
	}

	outcome := []struct {
		name         string
		holds        []bool
		held, failed int
	}{
		{name: "none measured", holds: nil, held: -1, failed: -1},
		{name: "all held", holds: []bool{true, true, true}, held: 2, failed: -1},
		{name: "third failed", holds: []bool{true, true, false}, held: 1, failed: 2},
		{name: "first failed", holds: []bool{false}, held: -1, failed: 0},
	}
	for _, c := range outcome {
		var s []densityStep
		for i, h := range c.holds {
			s = append(s, densityStep{Relays: steps[i], Holds: h})
		}
		held, failed := rampOutcome(s)
		if held != c.held || failed != c.failed {
			t.Errorf("%s: rampOutcome = %d, %d; want %d, %d", c.name, held, failed, c.held, c.failed)
		}
	}

	if v, ok := perRelaySlope(1, 0.05, 9, 0.45); !ok || math.Abs(v-0.05) > 1e-9 {
		t.Errorf("perRelaySlope = %v, %v; want 0.05", v, ok)
	}
	if _, ok := perRelaySlope(4, 1, 4, 2); ok {
		t.Error("perRelaySlope over one relay count is ok")
	}
}

func TestDensityBusEvents(t *testing.T) {
	launch := []struct {
		line string
		want busEvent
		ok   bool
	}{
		{line: `Got message #87 from element "relay" (element): reconnectbin-restart, reason=(string)stall, attempt=(uint)1;`,
			want: busEvent{Kind: "restart", Relay: 3, Text: "stall"}, ok: true},
		{line: `Got message #90 from element "kvscredprovider0" (element): kvscredprovider-upload-stalled, stream-name=(string)x;`,
			want: busEvent{Kind: "message", Relay: 3, Text: "kvscredprovider-upload-stalled"}, ok: true},
		{line: `Got message #91 from element "rtspsrc0" (warning): GstMessageWarning, gerror=(GError)NULL, debug=(string)"x";`,
			want: busEvent{Kind: "warning", Relay: 3, Text: "from rtspsrc0"}, ok: true},
		{line: `Got message #92 from element "kvssink0" (error): GstMessageError, gerror=(GError)NULL;`,
			want: busEvent{Kind: "error", Relay: 3, Text: "ERROR from kvssink0"}, ok: true},
		{line: `Got message #12 from element "relay" (element): reconnectbin-recovered, downtime=(guint64)0;`},
		{line: `Got message #5 from element "pipeline0" (state-changed): GstMessageStateChanged, old-state=(GstState)ready;`},
		{line: `Setting pipeline to PLAYING ...`},
	}
	for _, c := range launch {
		got, ok := parseGstLaunchEvent(c.line, 3)
		if ok != c.ok || got != c.want {
			t.Errorf("parseGstLaunchEvent(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}

	host := []struct {
		line string
		want busEvent
		ok   bool
	}{
		{line: "added 4", want: busEvent{Kind: "added", Relay: 4}, ok: true},
		{line: "restart 2 error", want: busEvent{Kind: "restart", Relay: 2, Text: "error"}, ok: true},
		{line: "error 5 kvssink0: Could not open resource", want: busEvent{Kind: "error", Relay: 5, Text: "kvssink0: Could not open resource"}, ok: true},
		{line: "error -1 no element \"x\"", want: busEvent{Kind: "error", Relay: -1, Text: "no element \"x\""}, ok: true},
		{line: "restart x error"},
		{line: "hello 1"},
	}
	for _, c := range host {
		got, ok := parseHostEvent(c.line)
		if ok != c.ok || got != c.want {
			t.Errorf("parseHostEvent(%q) = %+v, %v; want %+v, %v", c.line, got, ok, c.want, c.ok)
		}
	}

	ev := newDensityEvents()
	at := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	ev.record(busEvent{Kind: "restart", Relay: 1, Text: "stall"}, at)
	ev.record(busEvent{Kind: "warning", Relay: 1, Text: "from rtspsrc0: x"}, at)
	ev.record(busEvent{Kind: "error", Relay: 2, Text: "ERROR from kvssink0"}, at)
	ev.record(busEvent{Kind: "error", Relay: 2, Text: "a second reason"}, at)
	if n := ev.restartsIn(at, at.Add(time.Second)); n != 1 {
		t.Errorf("restartsIn = %d, want 1", n)
	}
	if got := strings.Join(ev.failureList(), "|"); got != "relay 2: ERROR from kvssink0" {
		t.Errorf("failureList = %q, want relay 2's first reason only", got)
	}
	if _, messages := ev.summary(); messages != "WARNING from rtspsrc0 x1, reconnectbin-restart (stall) x1" {
		t.Errorf("summary messages = %q", messages)
	}
}

func TestDensityRelayArgs(t *testing.T) {
	args := densityRelayArgs("rtsp://127.0.0.1:8554/cam", "/dev/shm/d/credential-00", []string{"kvssink", "stream-name=s"})
	want := []string{"kvscredprovider", "credential-path=/dev/shm/d/credential-00", "reconnectbin", "name=relay",
		`source="rtspsrc location=rtsp://127.0.0.1:8554/cam protocols=tcp latency=200 ! rtph264depay ! h264parse"`, "restart-on-eos=true",
		"!", "video/x-h264,stream-format=avc,alignment=au", "!", "kvssink", "stream-name=s"}
	if strings.Join(args, "\n") != strings.Join(want, "\n") {
		t.Errorf("densityRelayArgs =\n%q\nwant\n%q", args, want)
	}
	for _, a := range args {
		if strings.Contains(a, " ") && !strings.HasPrefix(a, `source="`) {
			t.Errorf("argument %q has a space outside quotes: gst-launch-1.0 would escape it", a)
		}
	}
}
