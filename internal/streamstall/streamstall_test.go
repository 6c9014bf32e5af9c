package streamstall

import (
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/manualclock"
)

// event is a step of a table case: advance the clock, then optionally
// record a buffer or a routed pad.
type event struct {
	after  time.Duration
	buffer []Stream
	routed []Stream
}

func TestCheck(t *testing.T) {
	const timeout = 5 * time.Second
	every := func(d time.Duration, n int, s ...Stream) []event {
		evs := make([]event, n)
		for i := range evs {
			evs[i] = event{after: d, buffer: s}
		}
		return evs
	}
	cat := func(parts ...[]event) []event {
		var all []event
		for _, p := range parts {
			all = append(all, p...)
		}
		return all
	}
	cases := []struct {
		name        string
		timeout     time.Duration
		expectVideo bool
		events      []event
		want        bool
		wantSilent  time.Duration
		wantText    string
	}{
		{name: "both flowing", timeout: timeout, events: every(time.Second, 20, Video, Audio)},
		{name: "video stops, audio goes on: stalled after the timeout", timeout: timeout,
			events: cat(every(time.Second, 3, Video, Audio), every(time.Second, 5, Audio)),
			want:   true, wantSilent: 5 * time.Second, wantText: "no video from the source for 5s while its audio kept flowing"},
		{name: "video stops, audio goes on: not yet before the timeout", timeout: timeout,
			events: cat(every(time.Second, 3, Video, Audio), every(time.Second, 4, Audio))},
		{name: "both stop: the supervisor's whole-source stall, not this rule", timeout: timeout,
			events: cat(every(time.Second, 3, Video, Audio), []event{{after: 10 * time.Second}})},
		{name: "audio stops, video goes on: not a stall (the picture is kept)", timeout: timeout,
			events: cat(every(time.Second, 3, Video, Audio), every(time.Second, 10, Video))},
		{name: "audio only from the start, video expected from the run: stalled", timeout: timeout, expectVideo: true,
			events: every(time.Second, 6, Audio), want: true, wantSilent: 6 * time.Second},
		{name: "audio only from the start, video routed: stalled", timeout: timeout,
			events: cat([]event{{routed: []Stream{Video}}}, every(time.Second, 6, Audio)), want: true, wantSilent: 6 * time.Second},
		{name: "audio-only source (no video ever expected): never", timeout: timeout,
			events: every(time.Second, 20, Audio)},
		{name: "stall detection off", timeout: 0,
			events: cat(every(time.Second, 3, Video, Audio), every(time.Second, 30, Audio))},
		{name: "video resumes before the timeout", timeout: timeout,
			events: cat(every(time.Second, 3, Video, Audio), every(time.Second, 4, Audio), every(time.Second, 3, Video, Audio))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := manualclock.New(time.Unix(1000, 0))
			w := New(clk, tc.timeout, tc.expectVideo)
			for _, ev := range tc.events {
				clk.Advance(ev.after)
				for _, s := range ev.routed {
					w.Routed(s)
				}
				for _, s := range ev.buffer {
					w.Buffer(s)
				}
			}
			st, stalled := w.Check()
			if stalled != tc.want {
				t.Fatalf("stalled = %v (%+v), want %v", stalled, st, tc.want)
			}
			if !stalled {
				return
			}
			if st.Stream != Video || st.Flowing != Audio {
				t.Errorf("stall names %v silent while %v flows, want video silent while audio flows", st.Stream, st.Flowing)
			}
			if tc.wantSilent != 0 && st.Silent != tc.wantSilent {
				t.Errorf("silent for %v, want %v", st.Silent, tc.wantSilent)
			}
			if tc.wantText != "" && st.Text() != tc.wantText {
				t.Errorf("text %q, want %q", st.Text(), tc.wantText)
			}
		})
	}
}

// The audio's silence is reported (for stats) though it is no stall.
func TestSilentAudioIsReported(t *testing.T) {
	clk := manualclock.New(time.Unix(1000, 0))
	w := New(clk, 5*time.Second, false)
	w.Buffer(Video)
	w.Buffer(Audio)
	for range 6 {
		clk.Advance(time.Second)
		w.Buffer(Video)
	}
	st, silent := w.Silent(Audio)
	if !silent || st.Stream != Audio || !strings.Contains(st.Text(), "no audio") {
		t.Fatalf("Silent(Audio) = %+v, %v; want audio silent for 6s", st, silent)
	}
	if _, stalled := w.Check(); stalled {
		t.Fatal("silent audio counted as a stall")
	}
}
