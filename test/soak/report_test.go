package soak

import (
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	restart := func(s float64) Event { return Event{At: at(s), Restart: true} }
	recovered := func(s float64) Event { return Event{At: at(s)} }
	// The fault runs from 10 s to 20 s; the next fault starts at 60 s.
	fault := Injected{Began: at(10), Ended: at(20)}
	until := at(60)
	grace := 5 * time.Second
	cases := []struct {
		name   string
		events []Event
		want   Outcome
	}{
		{"no restart: ridden out", nil, Outcome{Recovered: true}},
		{"restarts of an earlier fault do not count", []Event{restart(5), recovered(9)}, Outcome{Recovered: true}},
		{"recovered after the fault ended", []Event{restart(12), restart(15), recovered(23.5)},
			Outcome{Rebuilt: true, Recovered: true, RecoveredAt: at(23.5), Beyond: 3500 * time.Millisecond}},
		{"recovered while the fault was on and stayed up", []Event{restart(12), recovered(16)},
			Outcome{Rebuilt: true, Recovered: true, RecoveredAt: at(16)}},
		{"a stall noticed after the fault ended is the fault's", []Event{restart(22), recovered(24)},
			Outcome{Rebuilt: true, Recovered: true, RecoveredAt: at(24), Beyond: 4 * time.Second}},
		{"a recovery followed by a restart of the same fault does not count", []Event{restart(12), recovered(14), restart(18), recovered(21)},
			Outcome{Rebuilt: true, Recovered: true, RecoveredAt: at(21), Beyond: time.Second}},
		{"failed attempts after the grace are the same outage", []Event{restart(12), restart(24), restart(30), recovered(31)},
			Outcome{Rebuilt: true, Recovered: true, RecoveredAt: at(31), Beyond: 11 * time.Second}},
		{"a restart after the grace alone is not the fault's", []Event{restart(40), recovered(41)}, Outcome{Recovered: true}},
		{"no recovery before the next fault", []Event{restart(12), recovered(61)}, Outcome{Rebuilt: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Judge(fault, tc.events, until, grace); got != tc.want {
				t.Errorf("Judge = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestByKind(t *testing.T) {
	faults := []Injected{
		{Fault: Fault{Kind: TCPGarbage}},
		{Fault: Fault{Kind: ServerKill}},
		{Fault: Fault{Kind: ServerKill}},
		{Fault: Fault{Kind: ServerKill}, Err: "restart: port not open"},
		{Fault: Fault{Kind: TCPGarbage}},
	}
	outcomes := []Outcome{
		{Rebuilt: true, Recovered: true, Beyond: 2 * time.Second},
		{Rebuilt: true, Recovered: true, Beyond: time.Second},
		{Rebuilt: true, Recovered: true, Beyond: 3 * time.Second},
		{Rebuilt: true},
		{Recovered: true},
	}
	got := ByKind(faults, outcomes)
	if len(got) != 2 || got[0].Kind != ServerKill || got[1].Kind != TCPGarbage {
		t.Fatalf("kinds %+v, want server-kill then tcp-garbage (matrix order)", got)
	}
	kill, garbage := got[0], got[1]
	if kill.Injected != 3 || kill.Failed != 1 || kill.Rebuilt != 3 || kill.Unrecovered != 1 || kill.LongestBeyond != 3*time.Second {
		t.Errorf("server-kill: %+v", kill)
	}
	if m, ok := kill.MedianBeyond(); !ok || m != 3*time.Second {
		t.Errorf("server-kill median beyond %v %v, want 3s (of 1s and 3s, the upper middle)", m, ok)
	}
	if garbage.Injected != 2 || garbage.Rebuilt != 1 || garbage.Unrecovered != 0 || garbage.LongestBeyond != 2*time.Second {
		t.Errorf("tcp-garbage: %+v", garbage)
	}
	if m, ok := garbage.MedianBeyond(); !ok || m != 2*time.Second {
		t.Errorf("tcp-garbage median beyond %v %v: only rebuilt faults count", m, ok)
	}
}

func TestSummaryMarkdown(t *testing.T) {
	s := Summary{Seed: 42, Form: "SOAK_DURATION=1m0s", Replay: "make soak SOAK_SEED=42 SOAK_DURATION=1m0s", Elapsed: 75 * time.Second, Cores: 2, Hogs: 2, HogNice: 10,
		Date: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC),
		Relays: []RelayResult{
			{Name: "hls-uri", Source: "uri=http://...", Faults: 3, Crashes: []string{"12:00:01 Caught SIGSEGV"}, Monotonic: true,
				Start: Resources{Valid: true, RSSKiB: 2048, FDs: 20, Threads: 30}},
			{Name: "tcp", Source: "tcpclientsrc", Faults: 2, Monotonic: false, MonotonicNote: "3 frames backwards"},
		},
		Kinds: []KindResult{{Kind: ServerKill, Injected: 5, Rebuilt: 4}},
	}
	md := s.Markdown()
	for _, want := range []string{"seed 42", "Replay: `make soak SOAK_SEED=42 SOAK_DURATION=1m0s`", "| hls-uri | `uri=http://...` | 3 | 1 |", "2.0 / n/a", "NO: 3 frames backwards",
		"| server-kill | 5 | 4 | 0 | n/a | 0.0 |", "Crash of hls-uri: 12:00:01 Caught SIGSEGV"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if s.Crashes() != 1 {
		t.Errorf("Crashes() = %d, want 1", s.Crashes())
	}
}

func TestSpliceSection(t *testing.T) {
	section := func(body string) string {
		return SectionBegin + "\n## Soak\n\n" + body + "\n\n" + SectionEnd
	}
	cases := []struct {
		name, doc, want, wantErr string
	}{
		{name: "empty file", doc: "", want: section("new") + "\n"},
		{name: "appended after the rest", doc: "# Benchmarks\n\n## Memory\n\nkept\n",
			want: "# Benchmarks\n\n## Memory\n\nkept\n\n" + section("new") + "\n"},
		{name: "missing final newline", doc: "# B", want: "# B\n\n" + section("new") + "\n"},
		{name: "replaced in place", doc: "# B\n\n" + section("old") + "\n\n## Memory\n\nkept\n",
			want: "# B\n\n" + section("new") + "\n\n## Memory\n\nkept\n"},
		{name: "end marker without begin", doc: "# B\n" + SectionEnd + "\n", wantErr: "damaged"},
		{name: "begin without end", doc: "# B\n" + SectionBegin + "\n", wantErr: "damaged"},
		{name: "two sections", doc: section("a") + "\n" + section("b") + "\n", wantErr: "two soak sections"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SpliceSection(tc.doc, "new\n")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("SpliceSection = %q, %v\nwant %q", got, err, tc.want)
			}
		})
	}
}
