package soak

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Event is a reconnectbin bus message of one relay: a restart (the source
// is being rebuilt) or a recovery (frames flow again after restarts).
type Event struct {
	At      time.Time
	Restart bool // false: reconnectbin-recovered
}

// Injected is a fault as it was carried out: Began when the fault was
// applied, Ended when it was lifted and the server was serving again (a
// restarted server listens, a restarted HLS encoder has a segment).
type Injected struct {
	Fault
	Began, Ended time.Time
	// Err is why the fault could not be applied or lifted ("" when it was).
	Err string
}

// Outcome is what one fault did to its relay.
type Outcome struct {
	// Rebuilt: reconnectbin restarted its source because of the fault.
	Rebuilt bool
	// Recovered: frames flowed again before the relay's next fault (or the
	// end of the run). Always true when not Rebuilt.
	Recovered   bool
	RecoveredAt time.Time
	// Beyond is how long the outage lasted after the fault was lifted: 0
	// when the relay was back before that (or never went down).
	Beyond time.Duration
}

// Judge decides one fault's outcome from its relay's events. until is the
// next fault's start on the same relay (or the end of the run): events
// after it belong to that fault. grace is how long after the fault's end a
// restart is still its consequence (a stall is only noticed stall-timeout
// after the data stopped).
//
// The fault's restarts are those from its start to grace after its end;
// the relay is back at the first recovery after the last of them (a
// recovery is only posted after restarts, so later failed attempts of the
// same outage come before it, and a recovery that came before a later
// restart of the same fault does not count).
func Judge(f Injected, events []Event, until time.Time, grace time.Duration) Outcome {
	windowEnd := f.Ended.Add(grace)
	if until.Before(windowEnd) {
		windowEnd = until
	}
	var lastRestart time.Time
	for _, e := range events {
		if e.Restart && !e.At.Before(f.Began) && e.At.Before(windowEnd) {
			lastRestart = e.At
		}
	}
	if lastRestart.IsZero() {
		return Outcome{Recovered: true}
	}
	for _, e := range events {
		if !e.Restart && e.At.After(lastRestart) && e.At.Before(until) {
			out := Outcome{Rebuilt: true, Recovered: true, RecoveredAt: e.At}
			if e.At.After(f.Ended) {
				out.Beyond = e.At.Sub(f.Ended)
			}
			return out
		}
	}
	return Outcome{Rebuilt: true}
}

// Resources are a relay process's /proc figures at one moment; Valid is
// false when no sample could be taken (the process was gone).
type Resources struct {
	Valid   bool
	RSSKiB  int64
	FDs     int
	Threads int
}

// RelayResult is one relay's line in the table.
type RelayResult struct {
	Name, Source string
	Faults       int
	// Crashes lists each time the relay process died or hit GStreamer's
	// fault handler ("Caught SIGSEGV"); the soak restarts it and goes on.
	Crashes     []string
	Restarts    int
	Recoveries  int
	Rebuilt     int
	Unrecovered int
	// LongestBeyond is the longest outage beyond the end of a fault.
	LongestBeyond time.Duration
	Start, End    Resources
	// Accepted is how many frames the kvssink stand-in accepted.
	Accepted uint64
	// Monotonic: the stand-in never saw running time go backwards; when
	// false, MonotonicNote says what it saw.
	Monotonic     bool
	MonotonicNote string
}

// KindResult is one fault kind's line in the table.
type KindResult struct {
	Kind          Kind
	Injected      int
	Failed        int // could not be applied or lifted
	Rebuilt       int
	Unrecovered   int
	LongestBeyond time.Duration
	beyonds       []time.Duration
}

// MedianBeyond is the median outage beyond the fault over the faults that
// caused a rebuild and were recovered from.
func (k KindResult) MedianBeyond() (time.Duration, bool) {
	if len(k.beyonds) == 0 {
		return 0, false
	}
	s := slices.Clone(k.beyonds)
	slices.Sort(s)
	return s[len(s)/2], true
}

// ByKind folds judged faults into one line per kind, in matrix order.
func ByKind(faults []Injected, outcomes []Outcome) []KindResult {
	index := map[Kind]*KindResult{}
	var order []Kind
	for i, f := range faults {
		k := index[f.Kind]
		if k == nil {
			k = &KindResult{Kind: f.Kind}
			index[f.Kind] = k
			order = append(order, f.Kind)
		}
		k.Injected++
		if f.Err != "" {
			k.Failed++
		}
		o := outcomes[i]
		if o.Rebuilt {
			k.Rebuilt++
		}
		if !o.Recovered {
			k.Unrecovered++
			continue
		}
		if o.Rebuilt {
			k.beyonds = append(k.beyonds, o.Beyond)
		}
		k.LongestBeyond = max(k.LongestBeyond, o.Beyond)
	}
	rank := map[Kind]int{}
	for i, k := range matrixOrder {
		rank[k] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rank[order[a]] < rank[order[b]] })
	out := make([]KindResult, 0, len(order))
	for _, k := range order {
		out = append(out, *index[k])
	}
	return out
}

var matrixOrder = []Kind{ServerKill, SIGSTOP, HTTP404, HTTP503, PlaylistFreeze, EncoderRenumber, HTMLPlaylist,
	TruncatedSegment, TCPReset, TCPTimeout, TCPBandwidth, TCPGarbage}

// Summary is everything the soak prints at the end.
type Summary struct {
	Seed     uint64
	Form     string // how the run was asked for, e.g. "SOAK_DURATION=9m0s"
	Replay   string // the command that replays the run
	Elapsed  time.Duration
	Cores    int
	Hogs     int
	HogNice  int
	Date     time.Time
	Relays   []RelayResult
	Kinds    []KindResult
	Problems []string // faults that could not be injected, and the like
}

// Crashes is the total over all relays.
func (s Summary) Crashes() int {
	n := 0
	for _, r := range s.Relays {
		n += len(r.Crashes)
	}
	return n
}

// Markdown renders the summary as the docs section's body: a heading, how
// to replay it, the per-relay and per-kind tables, and notes.
func (s Summary) Markdown() string {
	var b strings.Builder
	faults := 0
	for _, k := range s.Kinds {
		faults += k.Injected
	}
	fmt.Fprintf(&b, "### Soak: %d relays, %d faults in %s, seed %d\n\n", len(s.Relays), faults, s.Elapsed.Round(time.Second), s.Seed)
	fmt.Fprintf(&b, "Run %s with %s on %d cores, with %d CPU hog(s) (busy loops at nice %d) for the whole run. Replay: `%s`.\n\n",
		s.Date.UTC().Format("2006-01-02"), s.Form, s.Cores, s.Hogs, s.HogNice, s.Replay)
	b.WriteString("| Relay | Source | faults (count) | crashes (count) | restarts (count) | recoveries (count) | unrecovered faults (count) | longest outage beyond the fault (s) | RSS start / end (MiB) | fds start / end | threads start / end | frames accepted (count) | output monotonic |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range s.Relays {
		mono := "yes"
		if !r.Monotonic {
			mono = "NO: " + r.MonotonicNote
		}
		fmt.Fprintf(&b, "| %s | `%s` | %d | %d | %d | %d | %d | %s | %s | %s | %s | %d | %s |\n",
			r.Name, r.Source, r.Faults, len(r.Crashes), r.Restarts, r.Recoveries, r.Unrecovered, seconds(r.LongestBeyond),
			pair(r.Start, r.End, func(x Resources) string { return fmt.Sprintf("%.1f", float64(x.RSSKiB)/1024) }),
			pair(r.Start, r.End, func(x Resources) string { return fmt.Sprint(x.FDs) }),
			pair(r.Start, r.End, func(x Resources) string { return fmt.Sprint(x.Threads) }),
			r.Accepted, mono)
	}
	b.WriteString("\n| Fault | injected (count) | rebuilds caused (count) | unrecovered (count) | outage beyond the fault, median (s) | outage beyond the fault, longest (s) |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, k := range s.Kinds {
		med := "n/a"
		if m, ok := k.MedianBeyond(); ok {
			med = seconds(m)
		}
		injected := fmt.Sprint(k.Injected)
		if k.Failed > 0 {
			injected += fmt.Sprintf(" (%d failed)", k.Failed)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s | %s |\n", k.Kind, injected, k.Rebuilt, k.Unrecovered, med, seconds(k.LongestBeyond))
	}
	b.WriteString("\n")
	b.WriteString(notes)
	for _, r := range s.Relays {
		for _, c := range r.Crashes {
			fmt.Fprintf(&b, "- Crash of %s: %s\n", r.Name, c)
		}
	}
	for _, p := range s.Problems {
		fmt.Fprintf(&b, "- %s\n", p)
	}
	return b.String()
}

const notes = `- Each relay is one gst-launch-1.0 process: reconnectbin around the source, ending in the test build's kvssink stand-in, which checks what the real kvssink would accept. A crash is the process dying (a signal, e.g. SIGABRT from a GLib assertion, or an exit of its own) or GStreamer's fault handler printing "Caught SIG..."; the soak then starts the relay again, as systemd's Restart=always would, and goes on. A relay that does not exit within 30 s of EOS at the end is counted as a crash too.
- A fault's outage beyond the fault: from the moment the fault was lifted (the server serving again) to the relay's reconnectbin-recovered message after the fault's last restart; 0 when the relay was back before the fault ended, or rode it out without a rebuild. Unrecovered: no recovery before the relay's next fault (or, for the last one, within the end-of-run deadline).
- Resources are read from /proc/<pid> of the gst-launch-1.0 process: at the start once the stand-in has accepted frames, and at the end once the relay has had no rebuild for longer than reconnectbin's retire delay and its fd count has stopped falling (every stopped source instance freed). A relay restarted after a crash shows the restarted process's figures at the end.
- Monotonic: the stand-in dropped no frame for running time going backwards (kvssink would have refused it).
`

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f", d.Seconds()) }

func pair(a, b Resources, f func(Resources) string) string {
	show := func(r Resources) string {
		if !r.Valid {
			return "n/a"
		}
		return f(r)
	}
	return show(a) + " / " + show(b)
}

// The docs section make soak keeps up to date in docs/benchmarks.md.
const (
	SectionBegin = "<!-- soak: begin (written by make soak; edits here are replaced) -->"
	SectionEnd   = "<!-- soak: end -->"
)

// SpliceSection puts body into doc between SectionBegin and SectionEnd,
// replacing what was there, or appends a new "## Soak" section at the end
// when doc has none. The rest of doc is left as it was.
func SpliceSection(doc, body string) (string, error) {
	section := SectionBegin + "\n## Soak\n\n" + strings.TrimRight(body, "\n") + "\n\n" + SectionEnd
	begin := strings.Index(doc, SectionBegin)
	end := strings.Index(doc, SectionEnd)
	switch {
	case begin < 0 && end < 0:
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		if doc != "" {
			doc += "\n"
		}
		return doc + section + "\n", nil
	case begin < 0 || end < begin:
		return "", fmt.Errorf("the soak section's markers are damaged (want %q before %q): fix them by hand", SectionBegin, SectionEnd)
	case strings.Contains(doc[end+len(SectionEnd):], SectionBegin):
		return "", fmt.Errorf("two soak sections (%q appears twice): remove one by hand", SectionBegin)
	}
	return doc[:begin] + section + doc[end+len(SectionEnd):], nil
}
