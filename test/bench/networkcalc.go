package main

import (
	"slices"
	"time"

	"github.com/kvsrelay/kvsrelay/test/kvsendpoint"
)

// The network scenario's arithmetic (network.go): what a contender's
// persisted video says about a cut, from the fragments the local KVS
// endpoint received. Pure, so that it is table-tested (network_test.go).

// netFragment is what the sums need of one fragment the endpoint received.
type netFragment struct {
	Timecode  int64     // ms, absolute (kvssink's timecodes are wall-clock based)
	Received  time.Time // when the cluster ended (the endpoint acknowledges it then)
	Persisted bool
	Frames    []int64 // the frames' timecodes, ms
}

func netFragmentsOf(frags []kvsendpoint.Fragment) []netFragment {
	out := make([]netFragment, 0, len(frags))
	for _, f := range frags {
		nf := netFragment{Timecode: f.Timecode, Received: f.Received, Persisted: f.Persisted()}
		for _, b := range f.Blocks {
			nf.Frames = append(nf.Frames, b.Timecode)
		}
		out = append(out, nf)
	}
	return out
}

// netOutcome is one contender's account of one cut.
type netOutcome struct {
	// Slots are the frame intervals (1/fps) of the window: the frames the
	// camera made in it. Persisted counts distinct frame timecodes in the
	// window of persisted fragments (a fragment sent again counts once);
	// Lost counts the slots no persisted frame falls in.
	Slots, Persisted, Lost int
	// LongestHole is the longest span of the window without a persisted
	// frame: between two consecutive frames, or from the window's start to
	// the first frame, or from the last to the window's end.
	LongestHole time.Duration
	HoleFrom    time.Time // where the longest hole begins (its first occurrence)
	// Drained: the first fragment made after the network came back is
	// persisted, and so is every fragment before it that ever was; Drain is
	// the time from the network's return to the last of those receipts.
	Drained bool
	Drain   time.Duration
}

// measureCut sums a contender's fragments over the window [from, to) for a
// cut the network came back from at restored, at fps frames a second.
func measureCut(frags []netFragment, from, to, restored time.Time, fps int) netOutcome {
	var o netOutcome
	interval := int64(1000 / fps)
	lo, hi := from.UnixMilli(), to.UnixMilli()
	o.Slots = int((hi - lo) / interval)
	seen := map[int64]bool{}
	var frames []int64
	for _, f := range frags {
		if !f.Persisted {
			continue
		}
		for _, tc := range f.Frames {
			if tc < lo || tc >= hi || seen[tc] {
				continue
			}
			seen[tc] = true
			frames = append(frames, tc)
		}
	}
	slices.Sort(frames)
	o.Persisted = len(frames)
	covered := map[int64]bool{}
	for _, tc := range frames {
		covered[(tc-lo)/interval] = true
	}
	for slot := int64(0); slot < int64(o.Slots); slot++ {
		if !covered[slot] {
			o.Lost++
		}
	}
	prev, windowStart := lo, from.Truncate(time.Millisecond)
	hole := func(from, to int64) {
		if d := time.Duration(to-from) * time.Millisecond; d > o.LongestHole || o.HoleFrom.IsZero() {
			o.LongestHole, o.HoleFrom = d, windowStart.Add(time.Duration(from-lo)*time.Millisecond)
		}
	}
	for _, tc := range frames {
		hole(prev, tc)
		prev = tc
	}
	hole(prev, hi)

	// The first fragment made after the network came back that was
	// persisted, then the last receipt of a fragment up to it: each
	// timecode counts at its first persisted receipt.
	back := restored.UnixMilli()
	first := int64(-1)
	for _, f := range frags {
		if f.Persisted && f.Timecode >= back && (first < 0 || f.Timecode < first) {
			first = f.Timecode
		}
	}
	if first < 0 {
		return o
	}
	receipt := map[int64]time.Time{}
	for _, f := range frags {
		if !f.Persisted || f.Timecode > first {
			continue
		}
		if at, ok := receipt[f.Timecode]; !ok || f.Received.Before(at) {
			receipt[f.Timecode] = f.Received
		}
	}
	var last time.Time
	for _, at := range receipt {
		if at.After(last) {
			last = at
		}
	}
	o.Drained = true
	o.Drain = max(0, last.Sub(restored))
	return o
}

// drainedPast reports whether a persisted fragment starts at or after t:
// kvssink sends in order, so everything before it that will ever be
// persisted has been.
func drainedPast(frags []netFragment, t time.Time) bool {
	for _, f := range frags {
		if f.Persisted && f.Timecode >= t.UnixMilli() {
			return true
		}
	}
	return false
}

// lastAck is when the newest persisted fragment was received (zero: none).
func lastAck(frags []netFragment) time.Time {
	var last time.Time
	for _, f := range frags {
		if f.Persisted && f.Received.After(last) {
			last = f.Received
		}
	}
	return last
}

// watchdogExpired is the supervisor's watchdog rule: no sign of life for
// longer than the watchdog's interval since the process started or since
// its last sign, whichever is later.
func watchdogExpired(started, lastAlive, now time.Time, interval time.Duration) bool {
	since := started
	if lastAlive.After(since) {
		since = lastAlive
	}
	return now.Sub(since) > interval
}
