package main

import (
	"fmt"
	"time"
)

// stallScenario freezes a source without closing anything and measures
// how long reconnectbin takes to post reconnectbin-restart (reason stall),
// against its stall-timeout; the baselines count as detecting the stall
// when their process exits (which is all a supervisor can see).
func (b *Bench) stallScenario(s *scope, sh *sharedServers) ([]Table, error) {
	tm := b.timing()
	t := Table{
		Title: fmt.Sprintf("Stall detection (reconnectbin stall-timeout=%s s)", secs(tm.stallTimeout)),
		Columns: []string{"Fault", "Contender", "detected after fault median (s)", "detected after fault p90 (s)",
			"detected after last frame median (s)", "excess over stall-timeout median (s)", "excess over stall-timeout p90 (s)"},
		Notes: []string{
			"reconnectbin: time to its reconnectbin-restart message with reason=stall. Baselines: time to the process exiting, the only thing a supervisor notices; \">v\" means they were still sitting on the dead stream when the bound passed.",
			"After last frame: from the last real frame that reached the sink (buffers already in flight when the fault began still arrive) to detection; the excess is that minus stall-timeout.",
		},
	}
	type stallFault struct {
		name   string
		src    func() Source
		freeze func() error
		thaw   func() error
	}
	faults := []stallFault{
		{"TS server SIGSTOPped", func() Source { return tsSource(sh.TS()) },
			func() error { return sh.TS().Pause() }, func() error { return sh.TS().Resume() }},
		{"HLS playlist frozen", func() Source { return hlsSource(sh.HLS()) },
			func() error { sh.HLS().FreezePlaylist(true); return nil }, func() error { sh.HLS().FreezePlaylist(false); return nil }},
	}
	for _, f := range faults {
		src := f.src()
		contenders := []Contender{
			reconnectbinContender("reconnectbin", src, ReconnectSettings{StallTimeout: tm.stallTimeout}),
			gstLaunchContender(src, 0),
			ffmpegContender(src, 0),
		}
		afterFault := make([][]Sample, len(contenders))
		afterLast := make([][]Sample, len(contenders))
		excess := make([][]Sample, len(contenders))
		for rep := 1; rep <= b.cfg.Reps; rep++ {
			b.progress("stall %s: rep %d/%d", f.name, rep, b.cfg.Reps)
			runners, cold, err := b.startAll(contenders, tm.warmBound)
			if err != nil {
				return nil, err
			}
			for _, name := range cold {
				t.Notes = append(t.Notes, fmt.Sprintf("%s, rep %d: %s showed no steady picture before the fault.", f.name, rep, name))
			}
			start := time.Now()
			if err := f.freeze(); err != nil {
				stopAll(runners)
				return nil, err
			}
			detected := func(i int) (time.Time, bool) {
				r := runners[i]
				if r.c.Messages {
					for _, m := range r.Messages() {
						if m.Name == "reconnectbin-restart" && m.Reason == "stall" && m.At.After(start) {
							return m.At, true
						}
					}
					return time.Time{}, false
				}
				return firstAfter(r.Exits(), start)
			}
			waitFor(b.ctx, tm.stallBound, func() bool {
				for i := range runners {
					if _, ok := detected(i); !ok {
						return false
					}
				}
				return true
			})
			stopAll(runners)
			thawErr := f.thaw()
			if b.ctx.Err() != nil {
				return nil, b.ctx.Err()
			}
			if thawErr != nil {
				return nil, thawErr
			}
			for i, r := range runners {
				at, ok := detected(i)
				last, _ := lastBefore(times(r.Frames.Marks(), true), at)
				if !ok || at.Sub(start) > tm.stallBound {
					afterFault[i] = append(afterFault[i], Sample{Value: tm.stallBound.Seconds(), Censored: true})
					continue
				}
				afterFault[i] = append(afterFault[i], Sample{Value: at.Sub(start).Seconds()})
				if !last.IsZero() && last.Before(at) {
					afterLast[i] = append(afterLast[i], Sample{Value: at.Sub(last).Seconds()})
					if r.c.Reference {
						excess[i] = append(excess[i], Sample{Value: at.Sub(last).Seconds() - tm.stallTimeout.Seconds()})
					}
				}
			}
		}
		for i, c := range contenders {
			fm, fok := median(afterFault[i])
			fp, _ := p90(afterFault[i])
			lm, lok := median(afterLast[i])
			em, eok := median(excess[i])
			ep, _ := p90(excess[i])
			t.AddRow(f.name, c.Name, formatSample(fm, fok, 2), formatSample(fp, fok, 2), formatSample(lm, lok, 2),
				formatSample(em, eok, 2), formatSample(ep, eok, 2))
		}
	}
	return []Table{t}, nil
}
