package main

import (
	"fmt"
	"strings"
	"time"
)

// rebuildWarmup rebuilds happen before the "before" sample, so lazy
// one-time allocations (Go runtime, first child, caches, the first
// connections' sessions) are not counted as growth.
const rebuildWarmup = 20

// memorySource is one source chain the memory scenario rebuilds.
type memorySource struct {
	name     string
	chain    string
	rebuilds int
}

// memoryScenario rebuilds reconnectbin's child over and over in one
// gst-launch process and compares RSS, threads and fds before and after:
// a source that ends after one frame (no network), and network sources
// (tcpclientsrc, souphttpsrc with hlsdemux, each with decodebin) against
// local servers that send a short clip and end the stream, so that leaked
// sockets, sessions and streaming threads of network elements show.
func (b *Bench) memoryScenario(s *scope) ([]Table, error) {
	tm := b.timing()
	clip, err := b.makeClip(s.TempDir(), 3)
	if err != nil {
		return nil, err
	}
	clips, err := startClipServers(clip)
	if err != nil {
		return nil, err
	}
	defer clips.Close()
	sources := []memorySource{
		{"videotestsrc num-buffers=1", "videotestsrc num-buffers=1", tm.rebuilds},
		{"tcpclientsrc ! tsdemux ! decodebin", fmt.Sprintf("tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! decodebin", clips.TCPPort()), tm.netRebuilds},
		{"souphttpsrc ! hlsdemux ! decodebin", fmt.Sprintf("souphttpsrc location=%s ! hlsdemux ! decodebin", clips.PlaylistURL()), tm.netRebuilds},
	}
	t := Table{
		Title:   "Memory: one gst-launch-1.0 process before and after many rebuilds of its source",
		Columns: []string{"Source", "Metric", "rebuilds (count)", "before median (value)", "after median (value)", "change median (value)", "change p90 (value)"},
		Notes: []string{
			fmt.Sprintf("reconnectbin source=\"...\" retry-delay=0 max-retry-delay=0 ! fakesink, %d repetition(s) per source: every end of stream is followed by a rebuild. \"Before\" is sampled after %d warm-up rebuilds (counted with reconnectbin-recovered messages), \"after\" the given number of rebuilds later, from /proc/<pid>/status and /proc/<pid>/fd.", b.cfg.Reps, rebuildWarmup),
			fmt.Sprintf("The network sources connect to local servers (Go, in the bench) that send a %d-frame 64x48 H.264 clip and end the stream: the TCP server closes the connection after the clip, the HLS server serves a finished (VOD) playlist of one segment. Each rebuild opens a new connection (souphttpsrc: two requests, playlist and segment) and builds new demuxer and decoder threads. Fewer rebuilds than for videotestsrc, which needs no network round trips, to stay within the time budget.", 3),
		},
	}
	for _, src := range sources {
		if err := b.memoryRuns(src, &t); err != nil {
			return []Table{t}, err
		}
	}
	return []Table{t}, nil
}

// memoryRuns measures one source over the repetitions and adds its rows.
func (b *Bench) memoryRuns(src memorySource, t *Table) error {
	n := src.rebuilds
	c := Contender{
		Name: "reconnectbin rebuild loop",
		Path: "gst-launch-1.0",
		Args: []string{"-m", "reconnectbin", `source="` + src.chain + `"`, "retry-delay=0", "max-retry-delay=0", "!", "fakesink"},
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
		b.progress("memory: %s: %d rebuilds, rep %d/%d", src.name, n, rep, b.cfg.Reps)
		r := startRunner(c, b.env)
		sample := func(count int) (ProcSample, time.Time, error) {
			if !waitFor(b.ctx, 2*time.Minute, func() bool { return recovered(r) >= count }) {
				return ProcSample{}, time.Time{}, fmt.Errorf("%s: reconnectbin rebuilt %d of %d times (last exit: %s)", src.name, recovered(r), count, r.LastError())
			}
			pid := r.PID()
			if pid == 0 {
				return ProcSample{}, time.Time{}, fmt.Errorf("%s: gst-launch-1.0 exited during the rebuild loop: %s", src.name, r.LastError())
			}
			ps, err := sampleProc(pid)
			return ps, time.Now(), err
		}
		before, t1, err := sample(rebuildWarmup)
		if err != nil {
			r.Stop()
			return err
		}
		after, t2, err := sample(rebuildWarmup + n)
		r.Stop()
		if err != nil {
			return err
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
	for _, m := range metrics {
		bm, ok := median(m.before)
		am, _ := median(m.after)
		cm, _ := median(m.change)
		cp, _ := p90(m.change)
		d := 0
		if strings.HasPrefix(m.name, "RSS") {
			d = 1
		}
		t.AddRow(src.name, m.name, fmt.Sprint(n), formatSample(bm, ok, d), formatSample(am, ok, d), formatSample(cm, ok, d), formatSample(cp, ok, d))
	}
	rm, ok := median(rates)
	t.AddRow(src.name, "rebuilds per second", fmt.Sprint(n), naCell, formatSample(rm, ok, 0), naCell, naCell)
	return nil
}
