package gopwatch

import (
	"strings"
	"testing"
	"time"
)

// frames feeds n frames of instance inst at fps from start, a keyframe
// every gop frames (the first is one), and returns every report.
func frames(w *Watch, inst uint64, start time.Duration, fps, gop, n int) []Long {
	var out []Long
	for i := range n {
		pts := start + time.Duration(i)*time.Second/time.Duration(fps)
		if l, ok := w.Frame(inst, int64(pts), i%gop == 0); ok {
			out = append(out, l)
		}
	}
	return out
}

func TestFrame(t *testing.T) {
	cases := []struct {
		name        string
		feed        func(w *Watch) []Long
		wantReports int
		wantAtLeast time.Duration // the report's interval
		wantLongest time.Duration
		wantKeyInt  int
	}{
		{name: "2 s GOP at 25 fps: nothing", feed: func(w *Watch) []Long { return frames(w, 1, 0, 25, 50, 25*60) },
			wantLongest: 2 * time.Second},
		{name: "10 s GOP exactly: nothing (the limit is allowed)", feed: func(w *Watch) []Long { return frames(w, 1, 0, 5, 50, 5*40) },
			wantLongest: 10 * time.Second},
		{name: "12 s GOP at 5 fps: one report as soon as 10 s pass, longest is the full 12 s",
			feed:        func(w *Watch) []Long { return frames(w, 1, 0, 5, 60, 5*60) },
			wantReports: 1, wantAtLeast: 10*time.Second + 200*time.Millisecond, wantLongest: 12 * time.Second, wantKeyInt: 10},
		{name: "12 s GOP, reported once per watch across instances",
			feed: func(w *Watch) []Long {
				r := frames(w, 1, 0, 25, 300, 25*30)
				return append(r, frames(w, 2, 40*time.Second, 25, 300, 25*30)...)
			},
			wantReports: 1, wantAtLeast: 10*time.Second + 40*time.Millisecond, wantLongest: 12 * time.Second, wantKeyInt: 50},
		{name: "a rebuild's gap is no GOP: distances never span instances",
			feed: func(w *Watch) []Long {
				r := frames(w, 1, 0, 25, 50, 25*5)
				return append(r, frames(w, 2, 30*time.Second, 25, 50, 25*5)...)
			},
			wantLongest: 2 * time.Second},
		{name: "raw video (every frame a keyframe): nothing", feed: func(w *Watch) []Long { return frames(w, 1, 0, 25, 1, 25*30) },
			wantLongest: 40 * time.Millisecond},
		{name: "delta frames before the first keyframe are not measured",
			feed: func(w *Watch) []Long {
				for i := range 100 {
					w.Frame(1, int64(i)*int64(time.Second)/5, false)
				}
				return frames(w, 1, 20*time.Second, 5, 10, 20)
			},
			wantLongest: 2 * time.Second},
		{name: "unknown timestamps are ignored",
			feed: func(w *Watch) []Long {
				w.Frame(1, 0, true)
				for range 1000 {
					w.Frame(1, -1, false)
				}
				return nil
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := New(0)
			reports := tc.feed(w)
			if len(reports) != tc.wantReports {
				t.Fatalf("%d reports (%+v), want %d", len(reports), reports, tc.wantReports)
			}
			if got := w.Longest(); got != tc.wantLongest {
				t.Errorf("Longest = %v, want %v", got, tc.wantLongest)
			}
			if w.Reported() != (tc.wantReports > 0) {
				t.Errorf("Reported = %v", w.Reported())
			}
			if tc.wantReports == 0 {
				return
			}
			l := reports[0]
			if l.Interval != tc.wantAtLeast || l.Limit != DefaultLimit {
				t.Errorf("report %+v, want interval %v and limit %v", l, tc.wantAtLeast, DefaultLimit)
			}
			if l.KeyIntMax() != tc.wantKeyInt {
				t.Errorf("KeyIntMax = %d (fps %v), want %d", l.KeyIntMax(), l.FPS, tc.wantKeyInt)
			}
			text := l.Text()
			for _, want := range []string{"at least " + l.Interval.Round(100*time.Millisecond).String(), "10s", "MAX_FRAGMENT_DURATION",
				"keyframe (GOP, I-frame) interval to 2s or less", "x264enc key-int-max="} {
				if !strings.Contains(text, want) {
					t.Errorf("text %q lacks %q", text, want)
				}
			}
		})
	}
}
