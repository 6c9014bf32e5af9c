// Package soak is kvsrelay's soak test: relays for every protocol run side
// by side under CPU load while a seeded random schedule injects the fault
// matrix, and the run ends in a table of crashes, recoveries, outages,
// resources and output monotonicity. The pure parts (the schedule, judging
// a fault's outage, the table, the docs section) live in this package with
// table tests; the run itself is TestSoak in soak_test.go.
package soak

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// Kind is one fault of the matrix.
type Kind string

// The fault matrix. Which kinds a relay gets depends on its source (see
// soak_test.go): HTTP faults for HLS, toxiproxy faults for the proxied
// MPEG-TS port, process faults for every server.
const (
	// ServerKill: the server process is SIGKILLed and restarted after the
	// hold (for HLS: encoder killed and HTTP down, then both back).
	ServerKill Kind = "server-kill"
	// SIGSTOP: the server (HLS: its encoder) is frozen, then continued.
	SIGSTOP Kind = "sigstop"
	// HTTP404: segments answer 404 (gone from the origin); HTTP503: the
	// playlist and segments answer 503.
	HTTP404 Kind = "http-404"
	HTTP503 Kind = "http-503"
	// PlaylistFreeze: the playlist is served unchanged (200 OK).
	PlaylistFreeze Kind = "playlist-freeze"
	// EncoderRenumber: the encoder restarts behind a frozen playlist with
	// media sequence and segment names starting again at 0.
	EncoderRenumber Kind = "encoder-renumber"
	// HTMLPlaylist: an HTML page is served instead of the playlist.
	HTMLPlaylist Kind = "html-playlist"
	// TruncatedSegment: segments are served cut to a third, as complete
	// responses.
	TruncatedSegment Kind = "truncated-segment"
	// TCPReset, TCPTimeout, TCPBandwidth: toxiproxy's reset_peer, timeout
	// and a 1 KB/s bandwidth limit between the relay and its server.
	TCPReset     Kind = "tcp-reset"
	TCPTimeout   Kind = "tcp-timeout"
	TCPBandwidth Kind = "tcp-bandwidth"
	// TCPGarbage: random bytes instead of the stream on the TCP port.
	TCPGarbage Kind = "tcp-garbage"
)

// Target is one relay and the fault kinds its source can be given.
type Target struct {
	Name  string
	Kinds []Kind
}

// Options shapes a schedule. The same options and targets always give the
// same schedule, so a failing run is replayed by its seed.
type Options struct {
	Seed uint64
	// Window: faults start inside [0, Window). Ignored when Count > 0.
	Window time.Duration
	// Count > 0 asks for exactly Count faults in total, however long the
	// schedule becomes.
	Count int
	// A fault is held between MinHold and MaxHold, then lifted.
	MinHold, MaxHold time.Duration
	// After a fault is lifted its relay gets between MinGap and MaxGap
	// before its next fault: time to recover and stream again.
	MinGap, MaxGap time.Duration
}

// Fault is one planned fault. Start is relative to the start of the
// faults; faults of one target never overlap, different targets' faults do.
type Fault struct {
	// Index is the fault's place in the whole schedule, from 0.
	Index  int
	Target string
	Kind   Kind
	Start  time.Duration
	Hold   time.Duration
}

// End is when the fault is planned to be lifted.
func (f Fault) End() time.Duration { return f.Start + f.Hold }

// Plan draws the schedule: each target gets its kinds in a shuffled order,
// every kind once per round, so that even a short run spreads over the
// matrix; holds and gaps are uniform in their ranges; the first fault of
// each target falls somewhere in its first gap, so targets start staggered.
// The result is sorted by Start (then by target order).
func Plan(o Options, targets []Target) ([]Fault, error) {
	if err := o.validate(targets); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x5eed50a75eed50a7))
	uniform := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)+1))
	}
	next := make([]time.Duration, len(targets))
	bags := make([][]Kind, len(targets))
	for i := range targets {
		next[i] = uniform(0, o.MaxGap)
	}
	var out []Fault
	for {
		i := 0
		for j := range targets {
			if next[j] < next[i] {
				i = j
			}
		}
		if o.Count > 0 && len(out) == o.Count || o.Count <= 0 && next[i] >= o.Window {
			break
		}
		if len(bags[i]) == 0 {
			bags[i] = append([]Kind(nil), targets[i].Kinds...)
			rng.Shuffle(len(bags[i]), func(a, b int) { bags[i][a], bags[i][b] = bags[i][b], bags[i][a] })
		}
		kind := bags[i][0]
		bags[i] = bags[i][1:]
		f := Fault{Index: len(out), Target: targets[i].Name, Kind: kind, Start: next[i], Hold: uniform(o.MinHold, o.MaxHold)}
		out = append(out, f)
		next[i] = f.End() + uniform(o.MinGap, o.MaxGap)
	}
	// Drawn in start order already (the earliest target goes next); the
	// sort only settles equal starts by target order for readability.
	order := map[string]int{}
	for i, t := range targets {
		order[t.Name] = i
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Start != out[b].Start {
			return out[a].Start < out[b].Start
		}
		return order[out[a].Target] < order[out[b].Target]
	})
	for i := range out {
		out[i].Index = i
	}
	return out, nil
}

func (o Options) validate(targets []Target) error {
	if len(targets) == 0 {
		return errors.New("soak schedule: no relays to inject faults into")
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if t.Name == "" || seen[t.Name] {
			return fmt.Errorf("soak schedule: relay names must be unique and not empty (%q)", t.Name)
		}
		seen[t.Name] = true
		if len(t.Kinds) == 0 {
			return fmt.Errorf("soak schedule: relay %q has no fault kinds", t.Name)
		}
	}
	if o.Count <= 0 && o.Window <= 0 {
		return errors.New("soak schedule: give a fault count (SOAK_FAULTS) or a duration (SOAK_DURATION) above 0")
	}
	if o.MinHold <= 0 || o.MaxHold < o.MinHold {
		return fmt.Errorf("soak schedule: fault holds must satisfy 0 < min (%v) <= max (%v)", o.MinHold, o.MaxHold)
	}
	if o.MinGap <= 0 || o.MaxGap < o.MinGap {
		return fmt.Errorf("soak schedule: gaps must satisfy 0 < min (%v) <= max (%v)", o.MinGap, o.MaxGap)
	}
	return nil
}

// ForTarget returns the faults of one target, in order.
func ForTarget(plan []Fault, target string) []Fault {
	var out []Fault
	for _, f := range plan {
		if f.Target == target {
			out = append(out, f)
		}
	}
	return out
}

// Span is when the last planned fault is lifted.
func Span(plan []Fault) time.Duration {
	var end time.Duration
	for _, f := range plan {
		end = max(end, f.End())
	}
	return end
}
