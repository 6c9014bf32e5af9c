package main

import (
	"fmt"
	"net/http"
	"time"
)

// floorScenario measures how long a fresh client takes to show its first
// frame against a healthy source, per protocol and contender, and how long
// the HLS encoder takes from a restart to its first playlist. These are
// the floors a restarting supervisor cannot beat.
func (b *Bench) floorScenario(s *scope, sh *sharedServers, floors floorTable) ([]Table, error) {
	tm := b.timing()
	t := Table{
		Title:   "Fresh start against a healthy source",
		Columns: []string{"Source", "Contender", "first frame median (s)", "first frame p90 (s)"},
		Notes: []string{
			"From process start to the first real frame at the sink, one client at a time: the least any supervisor restart costs, before any outage is counted. Each recovery table subtracts the contender's own floor.",
		},
	}
	hls := sh.HLS()
	sources := []Source{hlsSource(hls), tsSource(sh.TS()), srtSource(sh.SRT())}
	for _, src := range sources {
		contenders := []Contender{
			gstLaunchContender(src, 0),
			reconnectbinContender("reconnectbin", src, ReconnectSettings{}),
			ffmpegContender(src, 0),
		}
		for _, c := range contenders {
			var samples []Sample
			for rep := 1; rep <= b.cfg.Reps; rep++ {
				b.progress("floor %s: %s rep %d/%d", src.Proto, c.Name, rep, b.cfg.Reps)
				r := startRunner(c, b.env)
				got := waitFor(b.ctx, tm.warmBound, func() bool { return len(times(r.Frames.Marks(), true)) > 0 })
				r.Stop()
				starts := r.Starts()
				if !got || len(starts) == 0 {
					samples = append(samples, Sample{Value: tm.warmBound.Seconds(), Censored: true})
					continue
				}
				first, _ := firstAfter(times(r.Frames.Marks(), true), starts[0])
				samples = append(samples, Sample{Value: first.Sub(starts[0]).Seconds()})
			}
			med, ok := median(samples)
			p, _ := p90(samples)
			t.AddRow(src.Proto, c.Name, formatSample(med, ok, 2), formatSample(p, ok, 2))
			if ok && !med.Censored {
				floors.set(src.Proto, c.Kind, med)
			}
		}
	}
	// The HLS origin's own restart: encoder start to a playlist with one
	// segment. Nothing a client does can come back sooner after fault A.
	var enc []Sample
	for rep := 1; rep <= b.cfg.Reps; rep++ {
		b.progress("floor hls: encoder restart to first playlist rep %d/%d", rep, b.cfg.Reps)
		start := time.Now()
		if err := hls.RestartEncoder(false); err != nil {
			return nil, err
		}
		if err := hls.WaitSegments(1, 20*time.Second); err != nil {
			return nil, err
		}
		enc = append(enc, Sample{Value: time.Since(start).Seconds()})
	}
	if err := hls.WaitSegments(3, 20*time.Second); err != nil {
		return nil, err
	}
	med, ok := median(enc)
	p, _ := p90(enc)
	t.AddRow("hls", "origin: encoder restart to first playlist", formatSample(med, ok, 2), formatSample(p, ok, 2))
	return []Table{t}, nil
}

// floorTable holds the fresh-start floors by protocol and contender kind.
type floorTable map[string]map[string]Sample

func (f floorTable) set(proto, kind string, s Sample) {
	if f[proto] == nil {
		f[proto] = map[string]Sample{}
	}
	f[proto][kind] = s
}

func (b *Bench) hlsFaultA(s *scope, sh *sharedServers, down time.Duration, floors floorTable) ([]Table, error) {
	hls := sh.HLS()
	title := fmt.Sprintf("HLS fault A: encoder and server down %s s", secs(down))
	fault := func() (time.Time, time.Time, error) {
		start := time.Now()
		hls.StopHTTP()
		if err := hls.KillEncoder(); err != nil {
			return start, start, err
		}
		if err := sleepCtx(b.ctx, down); err != nil {
			return start, start, err
		}
		// The origin comes back as a whole: the encoder restarts (numbering
		// continued) and the server listens again once the new playlist
		// exists, so no client is served the stale one.
		if err := hls.RestartEncoder(false); err != nil {
			return start, start, err
		}
		if err := hls.WaitSegments(1, 20*time.Second); err != nil {
			return start, start, err
		}
		if err := hls.StartHTTP(); err != nil {
			return start, start, err
		}
		return start, time.Now(), nil
	}
	results, err := b.runRecovery(title, recoveryContenders(hlsSource(hls), ReconnectSettings{}), fault)
	if err != nil {
		return nil, err
	}
	return []Table{recoveryTable(title, results, floors["hls"], b.timing().recoveryBound,
		"The server stops listening and the encoder is killed; after the outage the encoder restarts and the server listens again as soon as the new playlist lists a segment (the encoder's own restart time is in the floor table).",
		"reconnectbin with default settings (stall-timeout 5 s, retry-delay 0.25 s, max-retry-delay 2 s).")}, nil
}

func (b *Bench) hlsFaultB(s *scope, sh *sharedServers, floors floorTable) ([]Table, error) {
	hls := sh.HLS()
	title := "HLS fault B: encoder restarted behind a frozen playlist, numbering from 0"
	fault := func() (time.Time, time.Time, error) {
		start := time.Now()
		err := hls.RestartEncoderBehindFrozenPlaylist(2, 20*time.Second)
		return start, time.Now(), err
	}
	results, err := b.runRecovery(title, recoveryContenders(hlsSource(hls), ReconnectSettings{}), fault)
	if err != nil {
		return nil, err
	}
	return []Table{recoveryTable(title, results, floors["hls"], b.timing().recoveryBound,
		"The playlist freezes, the encoder restarts with media sequence and segment names starting again at 0, and once it has two segments the playlist is live again: clients that remember the old sequence see it go backwards.")}, nil
}

func (b *Bench) hlsFaultC(s *scope, sh *sharedServers, floors floorTable) ([]Table, error) {
	hls := sh.HLS()
	down := b.timing().outage503
	title := fmt.Sprintf("HLS fault C: server answers 503 for %s s", secs(down))
	fault := func() (time.Time, time.Time, error) {
		start := time.Now()
		hls.PlaylistStatus(http.StatusServiceUnavailable)
		hls.SegmentStatus(http.StatusServiceUnavailable)
		err := sleepCtx(b.ctx, down)
		hls.PlaylistStatus(0)
		hls.SegmentStatus(0)
		return start, time.Now(), err
	}
	results, err := b.runRecovery(title, recoveryContenders(hlsSource(hls), ReconnectSettings{}), fault)
	if err != nil {
		return nil, err
	}
	return []Table{recoveryTable(title, results, floors["hls"], b.timing().recoveryBound, "Playlist and segment requests get HTTP 503 while the encoder keeps running.")}, nil
}

func (b *Bench) tsKill(s *scope, sh *sharedServers, floors floorTable) ([]Table, error) {
	ts := sh.TS()
	down := b.timing().outageTS
	title := fmt.Sprintf("MPEG-TS over TCP: server killed for %s s", secs(down))
	fault := func() (time.Time, time.Time, error) {
		start := time.Now()
		if err := ts.Kill(); err != nil {
			return start, start, err
		}
		if err := sleepCtx(b.ctx, down); err != nil {
			return start, start, err
		}
		err := ts.Restart()
		return start, time.Now(), err
	}
	results, err := b.runRecovery(title, recoveryContenders(tsSource(ts), ReconnectSettings{}), fault)
	if err != nil {
		return nil, err
	}
	return []Table{recoveryTable(title, results, floors["tcp"], b.timing().recoveryBound,
		"The TS server is SIGKILLed (connections reset, port refused) and restarted on the same port; it is back when the port listens. ffmpeg's -reconnect options are HTTP-only and not used here.")}, nil
}

func (b *Bench) srtKill(s *scope, sh *sharedServers, floors floorTable) ([]Table, error) {
	srt := sh.SRT()
	down := b.timing().outageTS
	title := fmt.Sprintf("SRT: sender killed for %s s", secs(down))
	fault := func() (time.Time, time.Time, error) {
		start := time.Now()
		if err := srt.Kill(); err != nil {
			return start, start, err
		}
		if err := sleepCtx(b.ctx, down); err != nil {
			return start, start, err
		}
		err := srt.Restart()
		return start, time.Now(), err
	}
	results, err := b.runRecovery(title, recoveryContenders(srtSource(srt), ReconnectSettings{}), fault)
	if err != nil {
		return nil, err
	}
	return []Table{recoveryTable(title, results, floors["srt"], b.timing().recoveryBound,
		"The SRT listener (the camera side) is SIGKILLed and restarted on the same port; callers see no close and must notice the silence.")}, nil
}
