package reconnectbin

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/failover"
	"github.com/kvsrelay/kvsrelay/internal/gopwatch"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
)

// runState is what runs between READY->PAUSED and PAUSED->READY (after
// gst-plugins-rs fallbacksrc's State): startRun makes a new one and
// stopRun drops it, so nothing in it is ever reset by hand. What the
// properties say is not here (settings, under its own lock); what outlives
// a run is not either: the bin's pads, and the instances still on their
// way to NULL (reconnectBin.releasing).
//
// One supervise goroutine per run is the only place source instances are
// built, started and torn down. Streaming threads never change an
// instance's state (that deadlocks joining their own task); they only hand
// decisions over. They read the run without locks (reconnectBin.run and
// the atomics below): the state-change path waits for streaming threads
// (deactivating a pad takes its stream lock; stopRun waits for the loop,
// which waits for instances going to NULL), so they must never wait for a
// lock it holds (stateMu).
type runState struct {
	// sup decides rebuilds and keeps the reconnect statistics; fallback
	// fills outages. Both are made from the settings at READY->PAUSED.
	sup      *supervisor.Supervisor
	fallback *fallback
	// upload keeps fill out of kvssink (fallback-upload=false), else nil.
	upload *uploadState
	// main is the main source's role (sup, current, decide); backup is
	// the backup source's state, nil without one (backup.go).
	main   sourceRole
	backup *backupRun

	// output is what the bin's pads have shown downstream in this run.
	output outputState

	// videoSeen: some instance of this run delivered video, so every later
	// one is expected to (an instance that comes back with audio only is
	// stalled: streamstall). videoStalls counts stall restarts of an
	// instance whose video stopped while its audio flowed.
	videoSeen   atomic.Bool
	videoStalls atomic.Uint64
	// gop measures the keyframe interval of the video leaving the bin and
	// warns once per run when kvssink would refuse its fragments.
	gop *gopwatch.Watch

	// report goes to systemd and metrics; nil once the run stopped (a late
	// buffer of a released instance reports nothing).
	report atomic.Pointer[report]

	// current is the source instance inside the bin (nil during an
	// outage). Read from streaming threads, written by the supervise loop.
	current atomic.Pointer[instance]
	// changing is the instance whose state change is running (changeState).
	changing atomic.Pointer[instance]

	// The supervise loop's inputs.
	decisions chan supervisor.Decision
	playing   chan bool
	stop      chan struct{}
	stopOnce  sync.Once
	done      chan struct{}
	// The audio pad's format for this run (audio.go): decided once, read
	// by fillers and by streaming threads attaching the source's audio.
	audioMu      sync.Mutex
	audioCaps    string
	audioDecided bool

	// ended is closed by application EOS: no more rebuilds, but the current
	// instance stays until the pipeline stops.
	ended     chan struct{}
	endedOnce sync.Once
}

func newRunState(sup *supervisor.Supervisor, fb *fallback, rep *report) *runState {
	r := &runState{
		sup:       sup,
		fallback:  fb,
		gop:       gopwatch.New(gopwatch.DefaultLimit),
		decisions: make(chan supervisor.Decision, 8),
		playing:   make(chan bool, 8),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		ended:     make(chan struct{}),
	}
	r.output.init()
	r.report.Store(rep)
	r.main = sourceRole{src: failover.Main, sup: sup, slot: &r.current, decide: r.decide}
	return r
}

// sourceRole is what differs between the main source and the backup for
// the instance machinery: whose supervisor counts an instance's buffers
// and failures, where the loop keeps it, where its failures go.
type sourceRole struct {
	src    failover.Source
	sup    *supervisor.Supervisor
	slot   *atomic.Pointer[instance]
	decide func(supervisor.Decision)
}

// decide hands a rebuild decision to the supervise loop without blocking the
// caller (a streaming thread). At most one decision per instance exists, so
// the buffer never fills in practice.
func (r *runState) decide(d supervisor.Decision) {
	select {
	case r.decisions <- d:
	default:
		cat.LogError("reconnectbin: decision queue full, dropping a rebuild decision")
	}
}

func (r *runState) requestStop() { r.endedOnce.Do(func() { close(r.ended) }) }

// rep is the run's report; nil (which does nothing) once it stopped.
func (r *runState) rep() *report { return r.report.Load() }

// startRun makes the run at READY->PAUSED and starts its supervise loop,
// which starts the source once the bin is PLAYING.
func (b *reconnectBin) startRun() error {
	b.settingsMu.Lock()
	s := b.settings
	b.settingsMu.Unlock()
	// Checked again: the properties may have changed in READY.
	cfg, err := s.reconnectConfig()
	if err != nil {
		return err
	}
	sup, err := supervisor.New(cfg, wallClock{}, nil)
	if err != nil {
		return err
	}
	fb, err := newFallback(s)
	if err != nil {
		return err
	}
	bk, err := newBackupRun(s)
	if err != nil {
		return err
	}
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	run := newRunState(sup, fb, newReport(b.self, b.outputBlocked))
	if fb.enabled() && s.withholdFill {
		run.upload = newUploadState()
		b.installUploadGates(run.upload)
	}
	run.backup = bk
	b.run.Store(run)
	go b.supervise(run)
	return nil
}

// stopRun ends the run at PAUSED->READY: the loop tears the current
// instance down, the fillers end, and the run is dropped, kept only as
// lastRun for status and stats.
func (b *reconnectBin) stopRun() {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	run := b.run.Load()
	if run == nil {
		return
	}
	run.stopOnce.Do(func() { close(run.stop) })
	<-run.done
	run.fallback.shut() // a start-grace timer firing now starts nothing
	// Downstream is already flushing (a bin stops its sinks first), so a
	// filler blocked in a push returns.
	b.closeFills(run, true)
	if run.upload != nil {
		run.upload.removeUploadGates()
	}
	run.output.last.Release()
	run.fallback.release()
	b.lastRun.Store(run)
	b.run.Store(nil)
	run.rep().close()
	run.report.Store(nil)
}

func (b *reconnectBin) setPlaying(playing bool) {
	if run := b.run.Load(); run != nil {
		run.playing <- playing
	}
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }
