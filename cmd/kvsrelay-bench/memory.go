package main

import (
	"fmt"
	"time"
)

// rebuildWarmup rebuilds happen before the "before" sample, so lazy
// one-time allocations (Go runtime, first child, caches) are not counted
// as growth.
const rebuildWarmup = 20

// memoryScenario rebuilds reconnectbin's child over and over in one
// gst-launch process and compares RSS, threads and fds before and after.
func (b *Bench) memoryScenario(s *scope) ([]Table, error) {
	n := b.timing().rebuilds
	c := Contender{
		Name: "reconnectbin rebuild loop",
		Path: "gst-launch-1.0",
		Args: []string{"-m", "reconnectbin", `source="videotestsrc num-buffers=1"`, "retry-delay=0", "max-retry-delay=0", "!", "fakesink"},
		// Never restarted: an exit is a failure of this scenario.
		RestartSec: time.Hour, Messages: true,
	}
	type metric struct {
		name          string
		before, after []Sample
		change        []Sample
	}
	metrics := []*metric{{name: "RSS (MiB)"}, {name: "threads"}, {name: "open fds"}}
	var rates []Sample
	recovered := func(r *Runner) int {
		k := 0
		for _, m := range r.Messages() {
			if m.Name == "reconnectbin-recovered" {
				k++
			}
		}
		return k
	}
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		b.progress("memory: %d rebuilds, rep %d/%d", n, rep, b.cfg.Reps)
		r := startRunner(c, b.env)
		sample := func(count int) (ProcSample, time.Time, error) {
			if !waitFor(b.ctx, 2*time.Minute, func() bool { return recovered(r) >= count }) {
				return ProcSample{}, time.Time{}, fmt.Errorf("reconnectbin rebuilt %d of %d times (last exit: %s)", recovered(r), count, r.LastError())
			}
			pid := r.PID()
			if pid == 0 {
				return ProcSample{}, time.Time{}, fmt.Errorf("gst-launch-1.0 exited during the rebuild loop: %s", r.LastError())
			}
			ps, err := sampleProc(pid)
			return ps, time.Now(), err
		}
		before, t1, err := sample(rebuildWarmup)
		if err != nil {
			r.Stop()
			return nil, err
		}
		after, t2, err := sample(rebuildWarmup + n)
		r.Stop()
		if err != nil {
			return nil, err
		}
		rates = append(rates, Sample{Value: float64(n) / t2.Sub(t1).Seconds()})
		values := [][2]float64{
			{float64(before.RSSKiB) / 1024, float64(after.RSSKiB) / 1024},
			{float64(before.Threads), float64(after.Threads)},
			{float64(before.FDs), float64(after.FDs)},
		}
		for i, v := range values {
			metrics[i].before = append(metrics[i].before, Sample{Value: v[0]})
			metrics[i].after = append(metrics[i].after, Sample{Value: v[1]})
			metrics[i].change = append(metrics[i].change, Sample{Value: v[1] - v[0]})
		}
	}
	t := Table{
		Title:   fmt.Sprintf("Memory: one gst-launch-1.0 process before and after %d rebuilds", n),
		Columns: []string{"Metric", "before median (value)", "after median (value)", "change median (value)", "change p90 (value)"},
		Notes: []string{
			fmt.Sprintf("reconnectbin source=\"videotestsrc num-buffers=1\" retry-delay=0 max-retry-delay=0 ! fakesink: every buffer is followed by EOS and a rebuild. \"Before\" is sampled after %d warm-up rebuilds (counted with reconnectbin-recovered messages), \"after\" %d rebuilds later, from /proc/<pid>/status and /proc/<pid>/fd.", rebuildWarmup, n),
		},
	}
	for _, m := range metrics {
		bm, ok := median(m.before)
		am, _ := median(m.after)
		cm, _ := median(m.change)
		cp, _ := p90(m.change)
		d := 0
		if m.name == "RSS (MiB)" {
			d = 1
		}
		t.AddRow(m.name, formatSample(bm, ok, d), formatSample(am, ok, d), formatSample(cm, ok, d), formatSample(cp, ok, d))
	}
	rm, ok := median(rates)
	t.AddRow("rebuilds per second", naCell, formatSample(rm, ok, 0), naCell, naCell)
	return []Table{t}, nil
}
