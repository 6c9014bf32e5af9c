package reconnectbin

import (
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
)

// runState is what runs between READY->PAUSED and PAUSED->READY: one
// supervise goroutine, the only place source instances are built, started
// and torn down. Streaming threads never change an instance's state (that
// deadlocks joining their own task); they only hand decisions over.
type runState struct {
	decisions chan supervisor.Decision
	playing   chan bool
	stop      chan struct{}
	done      chan struct{}

	stopOnce sync.Once
	// ended is closed by application EOS: no more rebuilds, but the current
	// instance stays until the pipeline stops.
	ended     chan struct{}
	endedOnce sync.Once
}

func newRunState() *runState {
	return &runState{
		decisions: make(chan supervisor.Decision, 8),
		playing:   make(chan bool, 8),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		ended:     make(chan struct{}),
	}
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
	if err := b.fallback.prepare(s); err != nil {
		return err
	}
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	b.output.reset()
	b.reporting.Store(newReport(b.self, b.outputBlocked))
	b.sup.Store(sup)
	run := newRunState()
	b.run.Store(run)
	go b.supervise(run, sup)
	return nil
}

func (b *reconnectBin) stopRun() {
	b.stateMu.Lock()
	defer b.stateMu.Unlock()
	run := b.run.Load()
	if run == nil {
		return
	}
	run.stopOnce.Do(func() { close(run.stop) })
	<-run.done
	// Downstream is already flushing (a bin stops its sinks first), so a
	// filler blocked in a push returns.
	b.closeFills(true)
	b.output.last.Release()
	b.run.Store(nil)
	b.rep().close()
	b.reporting.Store(nil)
}

func (b *reconnectBin) setPlaying(playing bool) {
	if run := b.run.Load(); run != nil {
		run.playing <- playing
	}
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// supervise is the rebuild loop.
func (b *reconnectBin) supervise(run *runState, sup *supervisor.Supervisor) {
	defer close(run.done)
	defer b.teardown()

	period := stallTick(sup)
	if b.fallback.enabled() && period > gapCheck {
		period = gapCheck
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	playing, started := false, false
	for {
		select {
		case <-run.stop:
			return
		case playing = <-run.playing:
			if playing && !started {
				started = true
				b.startInstance(run, sup)
			} else if c := b.current.Load(); c != nil {
				b.followState(run, sup, c, playing)
			}
		case d := <-run.decisions:
			if !b.rebuild(run, sup, d) {
				return
			}
		case <-tick.C:
			if !playing {
				continue
			}
			b.fillGap()
			if gen, stalled := sup.CheckStall(); stalled {
				if b.outputHeld() {
					// Downstream holds all the source's data (a blocking
					// sink): the source is not at fault, and a rebuild would
					// not help. The watchdog sees the blocked push instead.
					sup.Touch(gen)
					continue
				}
				text := fmt.Sprintf("no data from the source for %v", sup.Stats().SinceLastBuffer.Round(time.Millisecond))
				if d, ok := sup.Fail(gen, supervisor.ReasonStall, text); ok {
					if !b.rebuild(run, sup, d) {
						return
					}
				}
			}
		}
	}
}

// gapCheck is how often a bin with fallback checks that its output keeps up
// with the clock.
const gapCheck = 50 * time.Millisecond

// fillGap starts fallback frames when the output timeline has fallen behind
// the pipeline clock, before (or without) any failure being declared: a
// source that pauses for less than stall-timeout (an HLS server briefly
// down, a network hiccup) leaves no hole downstream. The source keeps
// running; its next buffer takes over again.
func (b *reconnectBin) fillGap() {
	f := &b.fallback
	if !f.enabled() || f.active.Load() || b.current.Load() == nil {
		return
	}
	if b.outputHeld() {
		return // behind because downstream blocks, not because the source is quiet
	}
	end, any := b.output.timeline.LastEndOf(int(streamMain))
	now := gstshim.RunningTimeNow(b.self.Element)
	if !any || now == gst.ClockTimeNone {
		return
	}
	threshold := 2 * int64(f.frameDur)
	if threshold < int64(250*time.Millisecond) {
		threshold = int64(250 * time.Millisecond)
	}
	if int64(now)-end > threshold {
		cat.LogDebug("output fell behind the clock: filling the gap")
		b.startFallback()
	}
}

func stallTick(sup *supervisor.Supervisor) time.Duration {
	d := sup.NextStallCheck()
	if d <= 0 {
		d = 100 * time.Millisecond
	}
	return d
}

// rebuild acts on one decision: announce it, tear the instance down, wait
// the backoff, start a new one. It returns false when the loop must end.
func (b *reconnectBin) rebuild(run *runState, sup *supervisor.Supervisor, d supervisor.Decision) bool {
	select {
	case <-run.ended:
		return true
	default:
	}
	b.postElementMessage("reconnectbin-restart", map[string]any{
		"reason":  string(d.Reason),
		"error":   d.Error,
		"attempt": d.Attempt,
		"delay":   uint64(d.Delay),
		"give-up": d.GiveUp,
	})
	st := sup.Stats()
	b.rep().restart(string(d.Reason), statusLine(string(st.Status), st.Restarts, st.CurrentOutage))
	b.teardown()
	if d.GiveUp {
		text := fmt.Sprintf("reconnectbin: source failed %d times in a row, giving up (max-retries); last failure (%s): %s",
			d.Attempt, d.Reason, d.Error)
		cat.LogError(text)
		gstshim.PostError(b.self.Element, false, gstshim.ResourceError, gst.ResourceErrorRead, text, "")
		return true
	}
	cat.LogInfo(fmt.Sprintf("rebuilding the source (attempt %d, reason %s) in %v: %s", d.Attempt, d.Reason, d.Delay, d.Error))
	b.startFallback()
	timer := time.NewTimer(d.Delay)
	defer timer.Stop()
	select {
	case <-run.stop:
		return false
	case <-run.ended:
		return true
	case <-timer.C:
	}
	b.startInstance(run, sup)
	return true
}

// startInstance builds a new source instance, adds it locked (so its failures
// never fail the pipeline's own state changes) and starts it.
func (b *reconnectBin) startInstance(run *runState, sup *supervisor.Supervisor) {
	b.settingsMu.Lock()
	s := b.settings
	b.settingsMu.Unlock()
	gen := sup.Begin()
	prop, desc := s.description()
	c, err := b.buildInstance(gen, desc, s)
	if err != nil {
		b.failStart(run, sup, gen, fmt.Sprintf("property '%s': %v", prop, err))
		return
	}
	_ = c.bin.SetLockedState(true)
	if err := b.self.Add(c.bin.Element); err != nil {
		c.disconnect() // its closures would keep it alive otherwise
		b.failStart(run, sup, gen, fmt.Sprintf("adding the source: %v", err))
		return
	}
	b.output.timeline.StartInstance()
	b.current.Store(c)
	if err := b.linkPads(c); err != nil {
		b.failStart(run, sup, gen, err.Error())
		return
	}
	c.starting.Store(true)
	gstshim.InheritClock(b.self.Element, c.bin.Element)
	bound := startBound(s.stallTimeout)
	res, err := b.changeState(run, c, gst.StatePlaying, bound)
	switch res {
	case changeStopped:
		return // the loop ends; its teardown leaves the instance behind
	case changeAbandoned:
		b.failStart(run, sup, gen, "the pipeline changed state while the source was still starting")
		return
	case changeTimedOut:
		// It stays "starting", so its late errors are no failures of the
		// next instance.
		b.failStart(run, sup, gen, fmt.Sprintf("the source's state change to PLAYING did not complete within %v", bound))
		return
	}
	c.starting.Store(false)
	startErr := c.startErr.Load()
	switch {
	case err != nil:
		text := "the source's state change to PLAYING failed"
		if startErr != nil {
			text = *startErr
		}
		b.failStart(run, sup, gen, text)
	case startErr != nil:
		if d, ok := sup.Fail(gen, supervisor.ReasonError, *startErr); ok {
			run.decide(d)
		}
	}
}

// startBound is how long an instance's state change to PLAYING may take.
// A start that blocks (tcpclientsrc connecting to a host that drops SYNs
// waits for the kernel's timeout, minutes) is a start that failed: it is
// bounded by stall-timeout, which counts from the start anyway, or by
// defaultStartBound when stall detection is off.
func startBound(stallTimeout time.Duration) time.Duration {
	if stallTimeout > 0 {
		return stallTimeout
	}
	return defaultStartBound
}

const defaultStartBound = 10 * time.Second

func (b *reconnectBin) failStart(run *runState, sup *supervisor.Supervisor, gen uint64, text string) {
	cat.LogWarning(fmt.Sprintf("source instance %d did not start: %s", gen, text))
	if d, ok := sup.Fail(gen, supervisor.ReasonStartFailed, text); ok {
		run.decide(d)
	}
}

// followState mirrors PLAYING/PAUSED of the bin onto the current instance,
// bounded like a start: an instance that cannot change state is a failed one.
func (b *reconnectBin) followState(run *runState, sup *supervisor.Supervisor, c *instance, playing bool) {
	if c.starting.Load() {
		return // a start given up on: the rebuild decision is on its way
	}
	state := gst.StatePaused
	if playing {
		gstshim.InheritClock(b.self.Element, c.bin.Element)
		state = gst.StatePlaying
	}
	b.settingsMu.Lock()
	bound := startBound(b.settings.stallTimeout)
	b.settingsMu.Unlock()
	res, _ := b.changeState(run, c, state, bound)
	text := ""
	switch res {
	case changeAbandoned:
		text = "the pipeline changed state while the source was changing state"
	case changeTimedOut:
		text = fmt.Sprintf("the source's state change to %s did not complete within %v", state, bound)
	default:
		return
	}
	if d, ok := sup.Fail(c.gen, supervisor.ReasonError, text); ok {
		run.decide(d)
	}
}

// teardown removes the current instance, if any. go-gst ties GObject
// lifetimes to Go finalizers, so without a collection removed instances are
// never freed (RSS grew ~0.4 MB per rebuild when measured).
func (b *reconnectBin) teardown() {
	c := b.current.Swap(nil)
	if c == nil {
		return
	}
	b.release(c)
	runtime.GC()
}
