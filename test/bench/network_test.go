package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// netTestFrag is a fragment of frames 40 ms apart starting startMs after
// epoch, received recvS seconds after it.
func netTestFrag(epoch time.Time, startMs int64, frames int, recvS float64, persisted bool) netFragment {
	f := netFragment{Timecode: epoch.UnixMilli() + startMs, Received: epoch.Add(time.Duration(recvS*1000) * time.Millisecond), Persisted: persisted}
	for i := 0; i < frames; i++ {
		f.Frames = append(f.Frames, f.Timecode+int64(i)*40)
	}
	return f
}

func TestMeasureCut(t *testing.T) {
	epoch := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return epoch.Add(time.Duration(s*1000) * time.Millisecond) }
	// seconds builds one persisted fragment a second for [from, to),
	// received at the end of its second plus delay.
	seconds := func(from, to int, delay float64) []netFragment {
		var out []netFragment
		for s := from; s < to; s++ {
			out = append(out, netTestFrag(epoch, int64(s)*1000, 25, float64(s+1)+delay, true))
		}
		return out
	}
	concat := func(parts ...[]netFragment) []netFragment {
		var out []netFragment
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	// A window of 10 s, the network back at 6 s.
	from, to, restored := at(0), at(10), at(6)
	cases := []struct {
		name  string
		frags []netFragment
		want  netOutcome
	}{
		{
			name:  "continuous, acknowledged as made",
			frags: seconds(0, 12, 0),
			want:  netOutcome{Slots: 250, Persisted: 250, Lost: 0, LongestHole: 40 * time.Millisecond, HoleFrom: at(0), Drained: true, Drain: time.Second},
		},
		{
			// kvssink held seconds 2..5 during the cut and sent them once
			// the network was back (received 6.5..8), then second 6 at 8.5.
			name: "a backlog sent after the cut: drained at the last of it",
			frags: concat(seconds(0, 2, 0),
				[]netFragment{netTestFrag(epoch, 2000, 25, 6.5, true), netTestFrag(epoch, 3000, 25, 7, true), netTestFrag(epoch, 4000, 25, 7.5, true),
					netTestFrag(epoch, 5000, 25, 8, true), netTestFrag(epoch, 6000, 25, 8.5, true)},
				seconds(7, 12, 2)),
			want: netOutcome{Slots: 250, Persisted: 250, Lost: 0, LongestHole: 40 * time.Millisecond, HoleFrom: at(0), Drained: true, Drain: 2500 * time.Millisecond},
		},
		{
			// A restart lost seconds 2..6: the hole runs from the last frame
			// before (1.96) to the first after (7.00).
			name:  "a restart lost the backlog",
			frags: concat(seconds(0, 2, 0), seconds(7, 12, 0.2)),
			want:  netOutcome{Slots: 250, Persisted: 125, Lost: 125, LongestHole: 5040 * time.Millisecond, HoleFrom: at(1.96), Drained: true, Drain: 2200 * time.Millisecond},
		},
		{
			// Sent twice (an acknowledgement lost in the cut): counted once,
			// and its first persisted receipt is the one that counts.
			name:  "a fragment persisted twice counts once",
			frags: concat(seconds(0, 12, 0), []netFragment{netTestFrag(epoch, 3000, 25, 6.2, true)}),
			want:  netOutcome{Slots: 250, Persisted: 250, Lost: 0, LongestHole: 40 * time.Millisecond, HoleFrom: at(0), Drained: true, Drain: time.Second},
		},
		{
			// Fragments received but never acknowledged PERSISTED are not
			// stored video.
			name:  "unpersisted fragments do not count",
			frags: concat(seconds(0, 5, 0), []netFragment{netTestFrag(epoch, 5000, 25, 6, false)}),
			want:  netOutcome{Slots: 250, Persisted: 125, Lost: 125, LongestHole: 5040 * time.Millisecond, HoleFrom: at(4.96)},
		},
		{
			name:  "nothing persisted: the whole window is a hole",
			frags: nil,
			want:  netOutcome{Slots: 250, Persisted: 0, Lost: 250, LongestHole: 10 * time.Second, HoleFrom: at(0)},
		},
		{
			// Frames outside the window are not counted; the end of the
			// window closes the last hole.
			name:  "frames outside the window",
			frags: seconds(-3, 8, 0),
			want:  netOutcome{Slots: 250, Persisted: 200, Lost: 50, LongestHole: 2040 * time.Millisecond, HoleFrom: at(7.96), Drained: true, Drain: time.Second},
		},
		{
			// A restarted process's frames fall on another phase of the
			// 40 ms grid: every slot still holds one.
			name: "frames off the window's grid",
			frags: []netFragment{
				netTestFrag(epoch, 13, 125, 5.2, true),
				netTestFrag(epoch, 5000+27, 125, 10.2, true),
			},
			want: netOutcome{Slots: 250, Persisted: 250, Lost: 0, LongestHole: 54 * time.Millisecond, HoleFrom: at(4.973), Drained: false},
		},
		{
			// A 94 ms step leaves one 40 ms slot empty: one frame lost.
			name: "a step over a slot loses its frame",
			frags: []netFragment{
				netTestFrag(epoch, 13, 125, 5.2, true),
				netTestFrag(epoch, 5000+67, 125, 10.2, true),
			},
			want: netOutcome{Slots: 250, Persisted: 249, Lost: 1, LongestHole: 94 * time.Millisecond, HoleFrom: at(4.973), Drained: false},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := measureCut(tc.frags, from, to, restored, 25)
			if got != tc.want {
				t.Errorf("measureCut = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDrainedPastAndLastAck(t *testing.T) {
	epoch := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	frags := []netFragment{
		netTestFrag(epoch, 0, 25, 1, true),
		netTestFrag(epoch, 1000, 25, 2.5, true),
		netTestFrag(epoch, 2000, 25, 3, false),
	}
	if !drainedPast(frags, epoch.Add(time.Second)) {
		t.Error("a persisted fragment starting at t: drained past t")
	}
	if drainedPast(frags, epoch.Add(1500*time.Millisecond)) {
		t.Error("only an unpersisted fragment starts after t: not drained past t")
	}
	if got, want := lastAck(frags), epoch.Add(2500*time.Millisecond); !got.Equal(want) {
		t.Errorf("lastAck = %v, want %v (the unpersisted fragment is no acknowledgement)", got, want)
	}
	if !lastAck(nil).IsZero() {
		t.Error("lastAck of nothing is not zero")
	}
}

func TestWatchdogExpired(t *testing.T) {
	start := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name  string
		alive time.Time
		now   time.Duration
		want  bool
	}{
		{"no sign yet, within the interval of the start", time.Time{}, 29 * time.Second, false},
		{"no sign for longer than the interval since the start", time.Time{}, 31 * time.Second, true},
		{"a sign before this process started does not count", start.Add(-10 * time.Second), 31 * time.Second, true},
		{"a recent sign", start.Add(40 * time.Second), 65 * time.Second, false},
		{"the last sign too long ago", start.Add(40 * time.Second), 71 * time.Second, true},
	}
	for _, tc := range cases {
		if got := watchdogExpired(start, tc.alive, start.Add(tc.now), 30*time.Second); got != tc.want {
			t.Errorf("%s: watchdogExpired = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The kvsrelay contender is sized by the recipes' own shell function.
func TestRecipeKVSSinkSizing(t *testing.T) {
	got, err := recipeKVSSinkSizing(120, 400)
	if err != nil {
		t.Fatal(err)
	}
	if want := "buffer-duration=150 storage-size=128 replay-duration=150"; strings.Join(got, " ") != want {
		t.Errorf("sizing for 120 s at 400 kb/s = %q, want %q", got, want)
	}
	got, err = recipeKVSSinkSizing(600, 8000)
	if err != nil {
		t.Fatal(err)
	}
	if want := "buffer-duration=630 storage-size=752 replay-duration=630"; strings.Join(got, " ") != want {
		t.Errorf("sizing for 600 s at 8000 kb/s = %q, want %q", got, want)
	}
}

func TestRealKVSSinkDir(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv("KVSSINK_PLUGIN_DIR", "")
	if dir, ok := realKVSSinkDir(); ok {
		t.Fatalf("empty cache: found %s", dir)
	}
	plugin := filepath.Join(cache, "kvsrelay", "kvssink-3.6.0-abc", "plugin")
	if err := os.MkdirAll(plugin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plugin, "libgstkvssink.so"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir, ok := realKVSSinkDir(); !ok || dir != plugin {
		t.Errorf("cache: got %q %v, want %s", dir, ok, plugin)
	}
	t.Setenv("KVSSINK_PLUGIN_DIR", "/elsewhere")
	if dir, ok := realKVSSinkDir(); !ok || dir != "/elsewhere" {
		t.Errorf("KVSSINK_PLUGIN_DIR wins: got %q %v", dir, ok)
	}
}

func TestTableWithoutColumnsIsItsText(t *testing.T) {
	got := Table{Title: "Skipped one", Text: "Skipped: no real\nkvssink."}.Markdown()
	if want := "### Skipped one\n\nSkipped: no real kvssink.\n\n"; got != want {
		t.Errorf("Markdown = %q, want %q", got, want)
	}
}
