package main

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Interval is a span of scenario time, relative to the scenario's start.
type Interval struct {
	Start, End time.Duration
}

// Len is End - Start.
func (i Interval) Len() time.Duration { return i.End - i.Start }

// StormOptions shapes a fault storm: the source is down DownShare of Total,
// in outages between MinDown and MaxDown long, never in the first Lead
// (clients must be up before the first fault) and with at least MinUp
// between outages. The same Seed always gives the same schedule.
type StormOptions struct {
	Seed             uint64
	Total            time.Duration
	DownShare        float64
	MinDown, MaxDown time.Duration
	MinUp            time.Duration
	Lead             time.Duration
}

// stormSchedule returns the outages, sorted, non-overlapping, inside
// [Lead, Total), whose lengths add up to DownShare*Total (to the
// nanosecond).
func stormSchedule(o StormOptions) ([]Interval, error) {
	if o.DownShare <= 0 || o.DownShare >= 1 {
		return nil, fmt.Errorf("storm: down share %.2f must be between 0 and 1", o.DownShare)
	}
	if o.MinDown <= 0 || o.MaxDown < o.MinDown {
		return nil, fmt.Errorf("storm: outage lengths must satisfy 0 < min (%v) <= max (%v)", o.MinDown, o.MaxDown)
	}
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	down := time.Duration(o.DownShare * float64(o.Total))
	var lengths []time.Duration
	for sum := time.Duration(0); sum < down; {
		l := o.MinDown + time.Duration(rng.Int64N(int64(o.MaxDown-o.MinDown)+1))
		if sum+l > down {
			l = down - sum
			if l < o.MinDown && len(lengths) > 0 {
				// Too short to be an outage of its own: lengthen the
				// previous one instead.
				lengths[len(lengths)-1] += l
				break
			}
		}
		lengths = append(lengths, l)
		sum += l
	}
	// The up time after the lead is shared out between the gaps before each
	// outage and after the last one, each gap at least MinUp.
	spare := o.Total - o.Lead - down - time.Duration(len(lengths)-1)*o.MinUp
	if spare < 0 {
		return nil, fmt.Errorf("storm: %d outages of %v total do not fit in %v with %v lead and %v minimum up time", len(lengths), down, o.Total, o.Lead, o.MinUp)
	}
	weights := make([]float64, len(lengths)+1)
	var wsum float64
	for i := range weights {
		weights[i] = 0.2 + rng.Float64()
		wsum += weights[i]
	}
	out := make([]Interval, 0, len(lengths))
	at := o.Lead
	for i, l := range lengths {
		if i > 0 {
			at += o.MinUp // the lead is the first up period's minimum
		}
		at += time.Duration(float64(spare) * weights[i] / wsum)
		out = append(out, Interval{Start: at, End: at + l})
		at += l
	}
	return out, nil
}

// downAt reports whether t falls inside one of the outages.
func downAt(schedule []Interval, t time.Duration) bool {
	for _, iv := range schedule {
		if t >= iv.Start && t < iv.End {
			return true
		}
	}
	return false
}

// startLimitHits counts the starts systemd would have refused with
// StartLimitIntervalSec=interval and StartLimitBurst=burst (defaults 10 s
// and 5): a window opens at a start, counts the starts in it, and a start
// beyond burst inside the window is refused; the first start more than
// interval after the window opened opens a new one. This mirrors systemd's
// ratelimit_below(). A real unit stays failed after its first refusal; the
// bench keeps restarting to measure, and counts every refusal.
func startLimitHits(starts []time.Time, interval time.Duration, burst int) int {
	hits := 0
	startLimit(starts, interval, burst, func(time.Time) bool { hits++; return true })
	return hits
}

// firstStartLimitHit returns the first start systemd's start limit would
// have refused (see startLimitHits): the moment a real unit would have
// entered the failed state for good.
func firstStartLimitHit(starts []time.Time, interval time.Duration, burst int) (time.Time, bool) {
	var first time.Time
	found := false
	startLimit(starts, interval, burst, func(t time.Time) bool { first, found = t, true; return false })
	return first, found
}

// startLimit calls refused for every start the limit refuses, until it
// returns false.
func startLimit(starts []time.Time, interval time.Duration, burst int, refused func(time.Time) bool) {
	var begin time.Time
	num := 0
	for _, ts := range starts {
		if begin.IsZero() || ts.Sub(begin) > interval {
			begin, num = ts, 1
			continue
		}
		num++
		if num > burst && !refused(ts) {
			return
		}
	}
}
