package main

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kvsrelay/kvsrelay/test/servers"
)

// scenario is one numbered step of the run.
type scenario struct {
	key   string
	title string
	run   func(s *scope) ([]Table, error)
	// background scenarios run alongside the others: they use little CPU
	// (the credential simulation mostly waits on the AWS SDK's own retry
	// back-off, in real time) and would otherwise dominate the run time.
	background bool
}

// timing holds the durations that differ between full and quick mode.
type timing struct {
	outageShort, outageLong time.Duration // HLS fault A
	outage503               time.Duration // HLS fault C
	// outageTS is the TCP and SRT kill; not a multiple of the baselines'
	// RestartSec=5, whose restarts would otherwise land exactly when the
	// source is back and look as fast as RestartSec=0.
	outageTS       time.Duration
	recoveryBound  time.Duration // how long after the source is back a contender may take
	warmBound      time.Duration
	stallTimeout   time.Duration
	stallBound     time.Duration
	stormTotal     time.Duration
	overheadFrames [2]int // the two frame counts of the overhead slope
	rebuilds       int    // memory: rebuilds of the local source
	netRebuilds    int    // memory: rebuilds of each network source
	// density: the relay counts of the ramp, how long each step settles
	// before its window, the window, and how long the camera's bitrate is
	// measured.
	densitySteps                 []int
	densitySettle, densityWindow time.Duration
	cameraProbe                  time.Duration
}

func (b *Bench) timing() timing {
	if b.cfg.Quick {
		return timing{
			outageShort: 4 * time.Second, outage503: 4 * time.Second, outageTS: 3 * time.Second,
			recoveryBound: 15 * time.Second, warmBound: 20 * time.Second,
			stallTimeout: 3 * time.Second, stallBound: 9 * time.Second,
			stormTotal: 20 * time.Second, overheadFrames: [2]int{10, 120}, rebuilds: 50, netRebuilds: 30,
			densitySteps: []int{1, 2}, densitySettle: 2 * time.Second, densityWindow: 5 * time.Second, cameraProbe: 2 * time.Second,
		}
	}
	return timing{
		outageShort: 10 * time.Second, outageLong: 60 * time.Second, outage503: 10 * time.Second, outageTS: 7 * time.Second,
		recoveryBound: 30 * time.Second, warmBound: 25 * time.Second,
		stallTimeout: 3 * time.Second, stallBound: 10 * time.Second,
		stormTotal: 120 * time.Second, overheadFrames: [2]int{25, 600}, rebuilds: 1000, netRebuilds: 1000,
		densitySteps:  []int{1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 80, 96, 112, 128, 160},
		densitySettle: 5 * time.Second, densityWindow: 20 * time.Second, cameraProbe: 10 * time.Second,
	}
}

// sharedServers are started on first use and live for the whole run.
type sharedServers struct {
	scope *scope
	media servers.MediaOptions
	hls   *servers.HLSServer
	ts    *servers.TSServer
	srt   *servers.SRTSender
}

func (sh *sharedServers) HLS() *servers.HLSServer {
	if sh.hls == nil {
		sh.hls = servers.NewHLSServer(sh.scope, servers.HLSOptions{Media: sh.media})
	}
	return sh.hls
}

func (sh *sharedServers) TS() *servers.TSServer {
	if sh.ts == nil {
		sh.ts = servers.NewTSServer(sh.scope, servers.TSOptions{Media: sh.media})
	}
	return sh.ts
}

func (sh *sharedServers) SRT() *servers.SRTSender {
	if sh.srt == nil {
		sh.srt = servers.NewSRTSender(sh.scope, servers.SRTOptions{Media: sh.media})
	}
	return sh.srt
}

func hlsSource(h *servers.HLSServer) Source {
	return Source{Proto: "hls", URL: h.PlaylistURL(), Host: "127.0.0.1", Port: h.Port()}
}

func tsSource(t *servers.TSServer) Source {
	return Source{Proto: "tcp", URL: t.URL(), Host: "127.0.0.1", Port: t.Port()}
}

func srtSource(s *servers.SRTSender) Source {
	return Source{Proto: "srt", URL: s.URL(), Host: "127.0.0.1", Port: s.Port()}
}

// runAll runs the selected scenarios in order and returns their markdown
// sections and the errors of those that failed.
func (b *Bench) runAll() ([]string, []error) {
	tm := b.timing()
	shared := &sharedServers{scope: newScope("servers", b.log), media: b.sourceMedia()}
	defer shared.scope.close()
	floors := floorTable{}

	var all []scenario
	all = append(all, scenario{key: "floor", title: "Floor: fresh clients against healthy sources", run: func(s *scope) ([]Table, error) {
		return b.floorScenario(s, shared, floors)
	}})
	hlsA := []time.Duration{tm.outageShort}
	if tm.outageLong > 0 {
		hlsA = append(hlsA, tm.outageLong)
	}
	for _, d := range hlsA {
		d := d
		all = append(all, scenario{key: "hls-a", title: fmt.Sprintf("HLS fault A: encoder and server down %s", secs(d)+" s"), run: func(s *scope) ([]Table, error) {
			return b.hlsFaultA(s, shared, d, floors)
		}})
	}
	all = append(all,
		scenario{key: "hls-b", title: "HLS fault B: encoder restarted behind a frozen playlist", run: func(s *scope) ([]Table, error) { return b.hlsFaultB(s, shared, floors) }},
		scenario{key: "hls-c", title: fmt.Sprintf("HLS fault C: server answers 503 for %s s", secs(tm.outage503)), run: func(s *scope) ([]Table, error) { return b.hlsFaultC(s, shared, floors) }},
		scenario{key: "tcp", title: fmt.Sprintf("MPEG-TS over TCP: server killed for %s s", secs(tm.outageTS)), run: func(s *scope) ([]Table, error) { return b.tsKill(s, shared, floors) }},
		scenario{key: "srt", title: fmt.Sprintf("SRT: sender killed for %s s", secs(tm.outageTS)), run: func(s *scope) ([]Table, error) { return b.srtKill(s, shared, floors) }},
		scenario{key: "stall", title: "Stall detection", run: func(s *scope) ([]Table, error) { return b.stallScenario(s, shared) }},
		scenario{key: "storm", title: "Continuity under a fault storm", run: func(s *scope) ([]Table, error) { return b.stormScenario(s, shared) }},
		scenario{key: "overhead", title: "Data-path overhead", run: func(s *scope) ([]Table, error) { return b.overheadScenario(s) }},
		scenario{key: "memory", title: "Memory over rebuilds", run: func(s *scope) ([]Table, error) { return b.memoryScenario(s) }},
		scenario{key: "density", title: "Density: relays per machine", run: func(s *scope) ([]Table, error) { return b.densityScenario(s) }},
		scenario{key: "network", title: "Network cut between kvssink and KVS", run: func(s *scope) ([]Table, error) { return b.networkScenario(s) }},
		scenario{key: "credentials", title: "Credentials over a compressed day", run: func(s *scope) ([]Table, error) { return b.credentialScenario(s) }},
	)
	var selected []scenario
	only := map[string]bool{}
	for _, k := range strings.Split(b.cfg.Only, ",") {
		if k = strings.TrimSpace(k); k != "" {
			only[k] = true
		}
	}
	for _, sc := range all {
		sc.background = sc.key == "credentials"
		if len(only) == 0 || only[sc.key] {
			selected = append(selected, sc)
		}
	}
	b.steps = len(selected)
	runOne := func(step int, sc scenario) (string, error) {
		started := time.Now()
		b.progressStep(step, "%s ...", sc.title)
		var tables []Table
		s := newScope(sc.title, b.log)
		err := s.run(func() error {
			var err error
			tables, err = sc.run(s)
			return err
		})
		var sec strings.Builder
		fmt.Fprintf(&sec, "## %s\n\n", sc.title)
		for _, t := range tables {
			sec.WriteString(t.Markdown())
		}
		if err != nil {
			fmt.Fprintf(&sec, "Scenario failed: %s\n\n", oneLine(err.Error()))
			b.progressStep(step, "%s FAILED after %s: %v", sc.title, time.Since(started).Round(time.Second), err)
			return sec.String(), fmt.Errorf("%s: %w", sc.title, err)
		}
		b.progressStep(step, "%s done in %s", sc.title, time.Since(started).Round(time.Second))
		return sec.String(), nil
	}
	sections := make([]string, len(selected))
	errs := make([]error, len(selected))
	var background sync.WaitGroup
	for i, sc := range selected {
		if sc.background {
			background.Add(1)
			go func() {
				defer background.Done()
				sections[i], errs[i] = runOne(i+1, sc)
			}()
		}
	}
	for i, sc := range selected {
		if sc.background {
			continue
		}
		if b.ctx.Err() != nil {
			errs[i] = fmt.Errorf("%s: interrupted", sc.title)
			continue
		}
		b.setStep(i + 1)
		sections[i], errs[i] = runOne(i+1, sc)
	}
	background.Wait()
	var failures []error
	for _, err := range errs {
		if err != nil {
			failures = append(failures, err)
		}
	}
	return sections, failures
}
