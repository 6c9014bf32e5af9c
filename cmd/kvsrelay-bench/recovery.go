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
			b.progress("warning: %s showed no steady picture within %v against the healthy source (%d frames, last exit: %s)",
				r.c.Name, bound, len(r.Frames.Marks()), r.LastError())
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
	reference bool
	recovery  []Sample // source back -> first real frame
	dark      []Sample // longest span without real frames around the fault
	starts    []Sample // process starts from fault start to the end of the rep
	hits      []Sample // starts systemd's default start limit would refuse
	rate      []Sample // starts per second while the source was down
	cold      int      // repetitions in which it never showed steady picture before the fault
}

// runRecovery runs reps repetitions of: start contenders, wait for steady
// picture, inject the fault, wait until every contender shows real frames
// again (or the bound passes).
func (b *Bench) runRecovery(title string, contenders []Contender, fault Fault) ([]*recoveryResult, error) {
	tm := b.timing()
	results := make([]*recoveryResult, len(contenders))
	for i, c := range contenders {
		results[i] = &recoveryResult{name: c.Name, reference: c.Reference}
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
				if _, ok := firstAfter(times(r.Frames.Marks(), true), back); !ok {
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
			real := times(r.Frames.Marks(), true)
			first, ok := firstAfter(real, back)
			if ok && first.After(deadline) {
				ok = false
			}
			last, _ := lastBefore(real, start)
			if ok {
				res.recovery = append(res.recovery, Sample{Value: first.Sub(back).Seconds()})
				res.dark = append(res.dark, Sample{Value: longestGap(real, last, first).Seconds()})
			} else {
				res.recovery = append(res.recovery, Sample{Value: deadline.Sub(back).Seconds(), Censored: true})
				res.dark = append(res.dark, Sample{Value: deadline.Sub(last).Seconds(), Censored: true})
				first = end
			}
			starts := r.Starts()
			n := countIn(starts, start, end.Add(time.Nanosecond))
			res.starts = append(res.starts, Sample{Value: float64(n)})
			res.hits = append(res.hits, Sample{Value: float64(startLimitHits(starts, 10*time.Second, 5))})
			if span := first.Sub(start).Seconds(); span > 0 {
				res.rate = append(res.rate, Sample{Value: float64(countIn(starts, start, first)) / span})
			}
			b.progress("%s: rep %d/%d: %s: recovery %s s, %d starts", title, rep, b.cfg.Reps, r.c.Name,
				formatSample(res.recovery[len(res.recovery)-1], true, 2), n)
		}
	}
	return results, nil
}

// recoveryTable renders recovery results; floor is the fresh-client
// baseline subtracted in the "minus floor" column (n/a if not measured).
func recoveryTable(title string, results []*recoveryResult, floor Sample, haveFloor bool, notes ...string) Table {
	t := Table{
		Title: title,
		Columns: []string{"Contender", "recovery median (s)", "recovery p90 (s)", "without frames median (s)", "without frames p90 (s)",
			"ratio vs reconnectbin (x)", "recovery minus floor (s)", "starts per fault (count)", "starts/s while down (1/s)", "start-limit hits (count)"},
		Notes: notes,
	}
	var ref Sample
	var haveRef bool
	for _, r := range results {
		if r.reference {
			ref, haveRef = median(r.recovery)
		}
	}
	for _, r := range results {
		med, ok := median(r.recovery)
		p, _ := p90(r.recovery)
		dm, dok := median(r.dark)
		dp, _ := p90(r.dark)
		ratio := naCell
		if haveRef && ok {
			ratio = formatRatio(med, ref, true)
		}
		minus := naCell
		if ok && haveFloor {
			minus = formatSample(Sample{Value: med.Value - floor.Value, Censored: med.Censored}, true, 2)
		}
		st, sok := median(r.starts)
		rate, rok := median(r.rate)
		hits, hok := median(r.hits)
		t.AddRow(r.name, formatSample(med, ok, 2), formatSample(p, ok, 2), formatSample(dm, dok, 2), formatSample(dp, dok, 2),
			ratio, minus, formatSample(st, sok, 0), formatSample(rate, rok, 2), formatSample(hits, hok, 0))
	}
	for _, r := range results {
		if r.cold > 0 {
			t.Notes = append(t.Notes, fmt.Sprintf("%s showed no steady picture against the healthy source before the fault in %d repetition(s); it was measured anyway.", r.name, r.cold))
		}
	}
	if haveFloor {
		t.Notes = append(t.Notes, fmt.Sprintf("Floor: a fresh plain gst-launch client against the healthy source shows its first frame after %s s (median); \"recovery minus floor\" subtracts it.", formatSample(floor, true, 2)))
	}
	t.Notes = append(t.Notes, "Recovery: from the moment the source is reachable again to the first real frame at the sink. Without frames: the longest span without real frames from the last frame before the fault to that first frame.")
	return t
}
