package main

import (
	"fmt"
	"path/filepath"
	"time"
)

// stormHold is how long one frame counts as "picture on screen" when
// computing the share of time with frames: frames are counted when they
// are presented (25 per second), and the hold absorbs their spacing and a
// loaded machine's scheduling jitter. It lengthens the covered time by at
// most stormHold per outage.
const stormHold = 500 * time.Millisecond

// stormFallbackCaps is the output-caps of the fallback contenders: the
// source's own size and rate.
var stormFallbackCaps = fmt.Sprintf("video/x-raw,format=I420,width=%d,height=%d,framerate=%d/1", stampWidth, stampHeight, stampFPS)

// stormScenario takes the HLS server down 30% of the time at seeded random
// moments and measures, per contender, the share of wall time with frames.
func (b *Bench) stormScenario(s *scope, sh *sharedServers) ([]Table, error) {
	tm := b.timing()
	opts := StormOptions{Seed: b.cfg.Seed, Total: tm.stormTotal, DownShare: 0.3,
		MinDown: 2 * time.Second, MaxDown: 8 * time.Second, MinUp: 3 * time.Second, Lead: 3 * time.Second}
	if b.cfg.Quick {
		opts.MinDown, opts.MaxDown, opts.MinUp, opts.Lead = 1500*time.Millisecond, 3*time.Second, 2*time.Second, 2*time.Second
	}
	schedule, err := stormSchedule(opts)
	if err != nil {
		return nil, err
	}
	hls := sh.HLS()
	src := hlsSource(hls)
	contenders := []Contender{reconnectbinContender("reconnectbin fallback=none", src, ReconnectSettings{})}
	modes := b.fallbackModes()
	var skipped []string
	for _, mode := range []string{"black", "image"} {
		switch {
		case !contains(modes, mode):
			skipped = append(skipped, mode+" (not listed by gst-inspect-1.0 reconnectbin in this build)")
		case !b.hasProp("output-caps"):
			skipped = append(skipped, mode+" (this build has no output-caps property, which fallback frames need)")
		default:
			rs := ReconnectSettings{Fallback: mode, OutputCaps: stormFallbackCaps}
			if mode == "image" {
				// The slate: one videotestsrc frame (colour bars), made once.
				rs.FallbackImage = filepath.Join(s.TempDir(), "slate.png")
				if _, err := b.runCPU([]string{"-q", "videotestsrc", "num-buffers=1", "!",
					fmt.Sprintf("video/x-raw,width=%d,height=%d", stampWidth, stampHeight), "!", "pngenc", "!",
					"filesink", "location=" + rs.FallbackImage}, time.Minute); err != nil {
					return nil, fmt.Errorf("making the fallback image: %w", err)
				}
			}
			c := reconnectbinContender("reconnectbin fallback="+mode, src, rs)
			c.Reference = false
			contenders = append(contenders, c)
		}
	}
	contenders = append(contenders,
		gstLaunchContender(src, 0), gstLaunchContender(src, 5*time.Second),
		ffmpegContender(src, 0), ffmpegContender(src, 5*time.Second))
	for i := range contenders {
		contenders[i] = presenting(contenders[i])
	}

	b.progress("storm: %d outages over %s s, seed %d, %d contenders side by side", len(schedule), secs(tm.stormTotal), b.cfg.Seed, len(contenders))
	runners, cold, err := b.startAll(contenders, tm.warmBound)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	for i, iv := range schedule {
		if err := sleepCtx(b.ctx, time.Until(t0.Add(iv.Start))); err != nil {
			stopAll(runners)
			return nil, err
		}
		hls.StopHTTP()
		b.progress("storm: outage %d/%d for %.1f s", i+1, len(schedule), iv.Len().Seconds())
		err := sleepCtx(b.ctx, time.Until(t0.Add(iv.End)))
		if herr := hls.StartHTTP(); herr != nil && err == nil {
			err = herr
		}
		if err != nil {
			stopAll(runners)
			return nil, err
		}
	}
	if err := sleepCtx(b.ctx, time.Until(t0.Add(tm.stormTotal))); err != nil {
		stopAll(runners)
		return nil, err
	}
	end := time.Now()
	stopAll(runners)

	holdShare := float64(len(schedule)) * stormHold.Seconds() / tm.stormTotal.Seconds()
	ideal := (1 - opts.DownShare + holdShare) * 100
	if ideal > 100 {
		ideal = 100
	}
	t := Table{
		Title: fmt.Sprintf("Fault storm: HLS server down %.0f%% of %s s in %d outages (seed %d)", opts.DownShare*100, secs(tm.stormTotal), len(schedule), b.cfg.Seed),
		Columns: []string{"Contender", "time with frames (%)", "time with real frames (%)", "real frames under start limit (%)",
			"no-frame span median (s)", "no-frame span p90 (s)", "lag behind live median (s)", "lag behind live at end (s)",
			"reconnectbin fallback=none real-frame time / this row's under start limit (x)",
			"process starts (count)", "start-limit hits (count)", "CPU (s)"},
		Notes: []string{
			fmt.Sprintf("A frame keeps the picture \"on\" for %s s after it arrives (frames are presented 25 a second; the hold absorbs their spacing and scheduling jitter). Time with frames counts every frame, fallback frames included; time with real frames only new picture from the source (a frame whose source stamp is newer than any shown before: fallback frames, the held last frame of fallback's hold phase and repeated or stale frames do not count). No-frame spans are the stretches without any frame.", secs(stormHold)),
			fmt.Sprintf("The source is down %.0f%% of the time, so a client that shows every frame the source makes while it is up, at a constant lag behind live, shows real frames %.0f%% of the time, plus up to %s s per outage from the hold (%.1f%% here): about %.0f%% in all. More is possible only by showing frames late: a client that keeps a buffer (HLS players start a few segments behind the live edge) shows frames made before an outage during it, and falls further behind live each time it resumes where it left off; the lag columns show how far (lag behind live: from the moment the source made a frame to its arrival at the sink).", opts.DownShare*100, (1-opts.DownShare)*100, secs(stormHold), holdShare*100, ideal),
			"Under start limit: frames after the first start systemd's default start limit (5 starts within 10 s) would have refused do not count, as a real unit would have stayed failed from then on. The ratio divides reconnectbin fallback=none's real-frame time by this row's under the start limit: above 1 means reconnectbin is better, as in the other tables.",
			"The server stops listening during each outage (connection refused); the encoder keeps running, so the live edge moves on.",
			"Frames are counted when they are presented: gst-launch contenders sync their sink to the pipeline clock, ffmpeg reads with -re. That is what a player shows and what the KVS stream holds (its fragments carry the frames' timestamps); arrival at a non-syncing sink would measure HLS's download bursts instead.",
			"reconnectbin drops what a failed source instance had downloaded but not yet pushed, and its new instance starts near the live edge; a restarted gst-launch starts a few segments behind the live edge and, synced to its own fresh clock, shows the segments made during the outage late.",
		},
	}
	if !b.cfg.Quick {
		t.Notes = append(t.Notes, "One storm run (the schedule is seeded, so reruns repeat it); no repetitions within the time budget.")
	}
	for _, name := range cold {
		t.Notes = append(t.Notes, name+" showed no steady picture before the storm began; it was measured anyway.")
	}
	if len(skipped) > 0 {
		t.Notes = append(t.Notes, "Fallback modes not measured: "+joinComma(skipped)+".")
	}
	var refShare float64
	for i, r := range runners {
		marks := r.Frames.Marks()
		realTimes := times(marks, true)
		all := coveredShare(times(marks, false), t0, end, stormHold)
		real := coveredShare(realTimes, t0, end, stormHold)
		starts := r.Starts()
		limited := real
		if hit, ok := firstStartLimitHit(starts, startLimitInterval, startLimitBurst); ok {
			limited = 0
			if hit.After(t0) {
				limited = coveredShare(realTimes, t0, hit, stormHold) * hit.Sub(t0).Seconds() / end.Sub(t0).Seconds()
			}
		}
		if i == 0 {
			refShare = limited
		}
		var ds []Sample
		for _, d := range darkSpans(times(marks, false), t0, end, stormHold) {
			ds = append(ds, Sample{Value: d.Seconds()})
		}
		dm, dok := median(ds)
		dp, _ := p90(ds)
		if !dok {
			dm, dp, dok = Sample{}, Sample{}, true
		}
		var lags []Sample
		var lastLag Sample
		haveLast := false
		for _, m := range marks {
			if m.Real && !m.At.Before(t0) && !m.At.After(end) {
				lastLag = Sample{Value: b.lag(m).Seconds()}
				lags = append(lags, lastLag)
				haveLast = true
			}
		}
		lm, lok := median(lags)
		ratio := naCell
		switch {
		case limited > 0:
			ratio = fmt.Sprintf("%.2f", refShare/limited)
		case refShare > 0:
			t.Notes = append(t.Notes, r.c.Name+" showed no real frames under the start limit: its ratio is unbounded (n/a).")
		}
		t.AddRow(r.c.Name, fmt.Sprintf("%.1f", all*100), fmt.Sprintf("%.1f", real*100), fmt.Sprintf("%.1f", limited*100),
			formatSample(dm, dok, 2), formatSample(dp, dok, 2), formatSample(lm, lok, 2), formatSample(lastLag, haveLast, 2),
			ratio, fmt.Sprint(len(starts)), fmt.Sprint(startLimitHits(starts, startLimitInterval, startLimitBurst)), fmt.Sprintf("%.1f", r.CPU().Seconds()))
	}
	return []Table{t}, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func joinComma(items []string) string {
	out := ""
	for i, s := range items {
		if i > 0 {
			out += "; "
		}
		out += s
	}
	return out
}
