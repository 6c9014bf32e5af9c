package main

import (
	"fmt"
	"time"
)

// stormHold is how long one frame counts as "picture on screen" when
// computing the share of time with frames: HLS clients receive a segment's
// frames in one burst, about a second apart, and that is not an outage.
const stormHold = 2 * time.Second

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
		case mode == "image":
			skipped = append(skipped, "image (needs a picture file; black shows the same continuity)")
		default:
			rs := ReconnectSettings{Fallback: mode}
			if b.hasProp("output-caps") {
				rs.OutputCaps = "video/x-raw,format=I420,width=320,height=240,framerate=25/1"
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

	t := Table{
		Title: fmt.Sprintf("Fault storm: HLS server down %.0f%% of %s s in %d outages (seed %d)", opts.DownShare*100, secs(tm.stormTotal), len(schedule), b.cfg.Seed),
		Columns: []string{"Contender", "time with frames (%)", "time with real frames (%)", "dark span median (s)", "dark span p90 (s)",
			"share vs reconnectbin (x)", "process starts (count)", "start-limit hits (count)", "CPU (s)"},
		Notes: []string{
			fmt.Sprintf("The source is down %.0f%% of the time, so a client that shows picture whenever the source is up reaches about %.0f%% real-frame time.", opts.DownShare*100, (1-opts.DownShare)*100),
			fmt.Sprintf("A frame keeps the picture \"on\" for %s s (HLS delivers a segment's frames in one burst); dark spans are the stretches without any frame. Fallback frames count as frames but not as real frames.", secs(stormHold)),
			"Share vs reconnectbin: the baseline's time with real frames divided by reconnectbin fallback=none's (below 1: worse).",
			"The server stops listening during each outage (connection refused); the encoder keeps running, so the live edge moves on.",
			"Frames are counted when they are presented: gst-launch contenders sync their sink to the pipeline clock, ffmpeg reads with -re. That is what a player shows and what the KVS stream holds (its fragments carry the frames' timestamps); arrival at a non-syncing sink would measure HLS's download bursts instead.",
			"A restarted gst-launch starts a few segments behind the live edge and, synced to its own fresh clock, shows the segments made during the outage late: its real-frame share is bought by falling further behind live at every restart (and by start-limit hits that would have made systemd give up). reconnectbin drops what a failed source instance had downloaded but not yet pushed.",
		},
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
		all := coveredShare(times(marks, false), t0, end, stormHold)
		real := coveredShare(times(marks, true), t0, end, stormHold)
		if i == 0 {
			refShare = real
		}
		spans := darkSpans(times(marks, false), t0, end, stormHold)
		var ds []Sample
		for _, d := range spans {
			ds = append(ds, Sample{Value: d.Seconds()})
		}
		dm, dok := median(ds)
		dp, _ := p90(ds)
		if !dok {
			dm, dp, dok = Sample{}, Sample{}, true
		}
		ratio := naCell
		if refShare > 0 {
			ratio = fmt.Sprintf("%.2f", real/refShare)
		}
		starts := r.Starts()
		t.AddRow(r.c.Name, fmt.Sprintf("%.1f", all*100), fmt.Sprintf("%.1f", real*100), formatSample(dm, dok, 2), formatSample(dp, dok, 2),
			ratio, fmt.Sprint(len(starts)), fmt.Sprint(startLimitHits(starts, 10*time.Second, 5)), fmt.Sprintf("%.1f", r.CPU().Seconds()))
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
