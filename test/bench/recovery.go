package main

import (
	"context"
	"fmt"
	"time"
)

// waitFor polls cond every 50 ms until it holds, the timeout passes, or the
// bench is interrupted; it reports whether cond held.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
}

// sleepCtx waits d unless the bench is interrupted. It paces fault
// injection (an outage lasts d), it never stands in for synchronisation.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// warmedUp: the contender has shown real frames for a while and still does.
func warmedUp(r *Runner, now time.Time) bool {
	ts := times(r.Frames.Marks(), true)
	if len(ts) == 0 {
		return false
	}
	return now.Sub(ts[0]) >= 1500*time.Millisecond && now.Sub(ts[len(ts)-1]) < 2500*time.Millisecond
}

// startAll starts the contenders and waits until all are warmed up. A
// contender that shows no steady picture within bound is not an error: it
// is still measured (it will show up as not recovering) and its name is
// returned so that the table can say so. The caller stops the runners.
func (b *Bench) startAll(contenders []Contender, bound time.Duration) ([]*Runner, []string, error) {
	runners := make([]*Runner, len(contenders))
	for i, c := range contenders {
		runners[i] = startRunner(c, b.env)
	}
	waitFor(b.ctx, bound, func() bool {
		now := time.Now()
		for _, r := range runners {
			if !warmedUp(r, now) {
				return false
			}
		}
		return true
	})
	if b.ctx.Err() != nil {
		stopAll(runners)
		return nil, nil, b.ctx.Err()
	}
	var cold []string
	for _, r := range runners {
		if !warmedUp(r, time.Now()) {
			cold = append(cold, r.c.Name)
			marks := r.Frames.Marks()
			stamped := 0
			for _, m := range marks {
				if m.Stamped {
					stamped++
				}
			}
			hint := ""
			if len(marks) > 0 && stamped == 0 {
				hint = "; no frame carried a readable source stamp: do the test servers still draw their picture from the stamp feed (stamp.go, sourcePattern)?"
			}
			b.progress("warning: %s showed no steady picture within %v against the healthy source (%d frames, last exit: %s)%s",
				r.c.Name, bound, len(marks), r.LastError(), hint)
		}
	}
	return runners, cold, nil
}

func stopAll(runners []*Runner) {
	for _, r := range runners {
		r.Stop()
	}
}

// Fault makes the source fail and come back. It blocks until the source is
// reachable again and returns when the fault started and when the source
// was back.
type Fault func() (start, back time.Time, err error)

// recoveryResult is one contender's measurements over the repetitions.
type recoveryResult struct {
	name      string
	kind      string
	reference bool
	recovery  []Sample // source back -> first real frame
	limited   []Sample // the same under systemd's default start limit (censored if the unit would have failed first)
	dark      []Sample // longest span without real frames around the fault
	lag       []Sample // how far behind live the first real frame after the fault was
	starts    []Sample // process starts from fault start to the end of the rep
	hits      []Sample // starts systemd's default start limit would refuse
	rate      []Sample // starts per second while the source was down
	cold      int      // repetitions in which it never showed steady picture before the fault
}

// systemd's defaults: DefaultStartLimitIntervalSec=10s, DefaultStartLimitBurst=5.
const (
	startLimitInterval = 10 * time.Second
	startLimitBurst    = 5
)

// runRecovery runs reps repetitions of: start contenders, wait for steady
// picture, inject the fault, wait until every contender shows real frames
// again (or the bound passes).
func (b *Bench) runRecovery(title string, contenders []Contender, fault Fault) ([]*recoveryResult, error) {
	tm := b.timing()
	results := make([]*recoveryResult, len(contenders))
	for i, c := range contenders {
		results[i] = &recoveryResult{name: c.Name, kind: c.Kind, reference: c.Reference}
	}
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		b.progress("%s: rep %d/%d: starting %d contenders side by side", title, rep, b.cfg.Reps, len(contenders))
		runners, cold, err := b.startAll(contenders, tm.warmBound)
		if err != nil {
			return nil, err
		}
		for i, c := range contenders {
			if contains(cold, c.Name) {
				results[i].cold++
			}
		}
		b.progress("%s: rep %d/%d: injecting fault", title, rep, b.cfg.Reps)
		start, back, err := fault()
		if err != nil {
			stopAll(runners)
			return nil, err
		}
		deadline := back.Add(tm.recoveryBound)
		waitFor(b.ctx, time.Until(deadline), func() bool {
			for _, r := range runners {
				if _, ok := firstAfter(times(faultFrames(r.Frames.Marks(), start, back, b.feed.madeAt), true), back); !ok {
					return false
				}
			}
			return true
		})
		end := time.Now()
		if end.After(deadline) {
			end = deadline
		}
		stopAll(runners)
		if b.ctx.Err() != nil {
			return nil, b.ctx.Err()
		}
		for i, r := range runners {
			res := results[i]
			marks := faultFrames(r.Frames.Marks(), start, back, b.feed.madeAt)
			real := times(marks, true)
			first, ok := firstAfter(real, back)
			if ok && first.After(deadline) {
				ok = false
			}
			// A contender that showed no real frame before the fault (it
			// was cold) has been without frames since the fault at least.
			last, had := lastBefore(real, start)
			if !had {
				last = start
			}
			starts := r.Starts()
			hit, limited := firstStartLimitHit(starts, startLimitInterval, startLimitBurst)
			if ok {
				res.recovery = append(res.recovery, Sample{Value: first.Sub(back).Seconds()})
				res.dark = append(res.dark, Sample{Value: longestGap(real, last, first).Seconds()})
				if m, found := firstMarkAt(marks, first); found {
					res.lag = append(res.lag, Sample{Value: b.lag(m).Seconds()})
				}
			} else {
				res.recovery = append(res.recovery, Sample{Value: deadline.Sub(back).Seconds(), Censored: true})
				res.dark = append(res.dark, Sample{Value: deadline.Sub(last).Seconds(), Censored: true})
				first = end
			}
			// A real unit stays failed after the first start the limit
			// refuses: if that came before the recovery, it never recovers.
			if limited && (!ok || hit.Before(first)) {
				res.limited = append(res.limited, Sample{Value: tm.recoveryBound.Seconds(), Censored: true})
			} else {
				res.limited = append(res.limited, res.recovery[len(res.recovery)-1])
			}
			n := countIn(starts, start, end.Add(time.Nanosecond))
			res.starts = append(res.starts, Sample{Value: float64(n)})
			res.hits = append(res.hits, Sample{Value: float64(startLimitHits(starts, startLimitInterval, startLimitBurst))})
			if span := first.Sub(start).Seconds(); span > 0 {
				res.rate = append(res.rate, Sample{Value: float64(countIn(starts, start, first)) / span})
			}
			b.progress("%s: rep %d/%d: %s: recovery %s s (under the start limit %s s), %d starts", title, rep, b.cfg.Reps, r.c.Name,
				formatSample(res.recovery[len(res.recovery)-1], true, 2), formatSample(res.limited[len(res.limited)-1], true, 2), n)
		}
	}
	return results, nil
}

// faultFrames returns the real frames that count around a fault: every
// real frame that arrived before the source was back (including a buffer
// of pre-fault picture shown during the outage), and after that only
// picture made after the fault began. A frame made before the fault that
// arrives only after the source is back (a decoder or jitter buffer
// flushing what it held when the new connection starts) is stale: it is
// not the source's recovery, and it does not end the time without frames.
func faultFrames(marks []FrameMark, start, back time.Time, madeAt func(uint32) time.Time) []FrameMark {
	var out []FrameMark
	for _, m := range marks {
		if !m.Real {
			continue
		}
		// madeAt is the start of the frame's 40 ms tick.
		if m.At.Before(back) || !madeAt(m.Stamp).Add(stampTick).Before(start) {
			out = append(out, m)
		}
	}
	return out
}

// firstMarkAt returns the frame that arrived at t.
func firstMarkAt(marks []FrameMark, t time.Time) (FrameMark, bool) {
	for _, m := range marks {
		if m.At.Equal(t) {
			return m, true
		}
	}
	return FrameMark{}, false
}

// recoveryColumns are the recovery tables' columns; the quick-mode test
// requires the ratio and minus-floor columns.
var recoveryColumns = []string{"Contender", "recovery median (s)", "recovery p90 (s)", "recovery under start limit median (s)",
	"without frames median (s)", "without frames p90 (s)", "lag behind live at recovery median (s)",
	"ratio vs reconnectbin under start limit (x)", "own fresh-start floor (s)", "recovery minus floor (s)",
	"starts per fault (count)", "starts/s while down (1/s)", "start-limit hits (count)"}

// recoveryTable renders recovery results; floors holds each kind of
// contender's fresh start against this healthy source ("gst-launch",
// "reconnectbin", "ffmpeg"), subtracted in the "minus floor" column (n/a
// if not measured).
func recoveryTable(title string, results []*recoveryResult, floors map[string]Sample, recoveryBound time.Duration, notes ...string) Table {
	t := Table{Title: title, Columns: recoveryColumns, Notes: notes}
	var ref Sample
	var haveRef bool
	for _, r := range results {
		if r.reference {
			ref, haveRef = median(r.limited)
		}
	}
	for _, r := range results {
		med, ok := median(r.recovery)
		p, _ := p90(r.recovery)
		lm, lok := median(r.limited)
		dm, dok := median(r.dark)
		dp, _ := p90(r.dark)
		lagm, lagok := median(r.lag)
		ratio := naCell
		if haveRef && lok {
			ratio = formatRatio(lm, ref, true)
		}
		floor, haveFloor := floors[r.kind]
		minus := naCell
		if ok && haveFloor {
			minus = formatSample(Sample{Value: med.Value - floor.Value, Censored: med.Censored}, true, 2)
		}
		st, sok := median(r.starts)
		rate, rok := median(r.rate)
		hits, hok := median(r.hits)
		t.AddRow(r.name, formatSample(med, ok, 2), formatSample(p, ok, 2), formatSample(lm, lok, 2),
			formatSample(dm, dok, 2), formatSample(dp, dok, 2), formatSample(lagm, lagok, 2),
			ratio, formatSample(floor, haveFloor, 2), minus, formatSample(st, sok, 0), formatSample(rate, rok, 2), formatSample(hits, hok, 0))
	}
	for _, r := range results {
		if r.cold > 0 {
			t.Notes = append(t.Notes, fmt.Sprintf("%s showed no steady picture against the healthy source before the fault in %d repetition(s); it was measured anyway.", r.name, r.cold))
		}
	}
	t.Notes = append(t.Notes,
		"Recovery: from the moment the source is reachable again to the first real frame (new picture from the source) made after the fault began to reach the sink; a frame made before the fault that arrives only after the source is back (a decoder or jitter buffer flushing stale picture when the new connection starts) is neither recovery nor picture during the outage. Without frames: the longest span without such frames from the last real frame before the fault (the fault's start for a contender that showed none) to that first frame. Lag behind live: how old that first frame's picture was when it arrived.",
		fmt.Sprintf("Under start limit: systemd's default start limit (%d starts within %s s) stops a unit for good at the first start it refuses; a contender whose first refused start came before its recovery shows \">%s\" (it would have stayed down). The ratio is taken of these medians (baseline / reconnectbin: above 1 means reconnectbin is better); the plain recovery columns show what the process did when restarted regardless.",
			startLimitBurst, secs(startLimitInterval), formatSample(Sample{Value: recoveryBound.Seconds()}, true, 2)),
		"Floor: the contender's own fresh start against the healthy source (floor table: process start, plugin loading, connecting, first keyframe); recovery minus floor is what the fault cost beyond that. It is negative when a contender that stays running (reconnectbin, a baseline that did not need a restart) reconnects faster than a new process can start, or when the next keyframe happened to come sooner than in the floor runs.",
	)
	return t
}
