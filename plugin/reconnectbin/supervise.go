package reconnectbin

import (
	"fmt"
	"runtime"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/failover"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/streamstall"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
)

// supervise is the rebuild loop.
func (b *reconnectBin) supervise(run *runState) {
	defer close(run.done)
	// The backup goes last: the main leaving first hands the output to
	// nobody, where the other way round it would switch back to the main.
	defer b.teardownBackup(run)
	defer b.teardown(run)

	sup := run.sup
	period := stallTick(sup)
	if (run.fallback.enabled() || run.backup != nil) && period > gapCheck {
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
				if run.fallback.enabled() {
					go b.afterStartGrace(run)
				}
				b.startInstance(run)
			} else {
				if c := run.current.Load(); c != nil {
					b.followState(c, playing)
				}
				if run.backup != nil {
					if c := run.backup.current.Load(); c != nil {
						b.followState(c, playing)
					}
				}
			}
		case d := <-run.decisions:
			if !b.rebuild(run, d, "") {
				return
			}
		case d := <-run.backupDecisions():
			b.backupFailed(run, d)
		case <-tick.C:
			if !playing {
				continue
			}
			b.tickBackup(run)
			b.fillGap(run)
			if c, st, stalled := b.checkStreamStall(run); stalled {
				if d, ok := sup.Fail(c.gen, supervisor.ReasonStall, st.Text()); ok {
					run.videoStalls.Add(1)
					if !b.rebuild(run, d, st.Stream.String()) {
						return
					}
				}
				continue
			}
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
					if !b.rebuild(run, d, silentAll) {
						return
					}
				}
			}
		}
	}
}

// silentAll is the silent-stream of a whole-source stall.
const silentAll = "all"

// checkStreamStall applies the per-stream stall rule (streamstall) to the
// running instance: its video silent for stall-timeout while its audio
// flows. Video held downstream (a blocking sink, a muxer waiting) is not
// silent: its streaming thread is in a push, not waiting for the source.
func (b *reconnectBin) checkStreamStall(run *runState) (*instance, streamstall.Stall, bool) {
	c := run.current.Load()
	if c == nil || c.phase() != phaseRunning {
		return nil, streamstall.Stall{}, false
	}
	st, stalled := c.streams.Check()
	if !stalled {
		return nil, streamstall.Stall{}, false
	}
	if t := b.pushes[streamMain].Load(); t != nil {
		if _, held := t.Oldest(); held {
			return nil, streamstall.Stall{}, false
		}
	}
	return c, st, true
}

// afterStartGrace fills what the source has not fed startGrace after the
// start. A goroutine of its own: the loop may be held in the first start
// (a connect that blocks) for up to stall-timeout.
func (b *reconnectBin) afterStartGrace(run *runState) {
	timer := time.NewTimer(startGrace)
	defer timer.Stop()
	select {
	case <-run.stop:
	case <-run.ended:
	case <-timer.C:
		b.fillIdle(run)
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
func (b *reconnectBin) fillGap(run *runState) {
	f := run.fallback
	if !f.enabled() || f.active.Load() || run.current.Load() == nil {
		return
	}
	if b.outputHeld() {
		return // behind because downstream blocks, not because the source is quiet
	}
	if _, held := b.pushes[streamMain].Load().Oldest(); held && b.existingOutputPad(streamAudio) != nil &&
		!run.output.timeline.Filling(int(streamAudio)) {
		// Downstream holds the source's video, waiting for audio (a muxer,
		// kvssink): the source has no audio (yet, or ever). Silence is what
		// releases the video; black would replace a picture that is there.
		if _, anyAudio := run.output.timeline.LastEndOf(int(streamAudio)); !anyAudio || b.behind(run, streamAudio) {
			cat.LogDebug("the video is held downstream, waiting for audio: filling the audio pad with silence")
			b.startSilence(run)
			return
		}
	}
	end, any := run.output.timeline.LastEndOf(int(streamMain))
	now := gstshim.RunningTimeNow(b.self.Element)
	if !any || now == gst.ClockTimeNone {
		return
	}
	if int64(now)-end > gapThreshold(f) {
		cat.LogDebug("output fell behind the clock: filling the gap")
		b.startFallback(run)
	}
}

// behind reports whether stream s's output has fallen behind the clock by
// more than gapThreshold.
func (b *reconnectBin) behind(run *runState, s stream) bool {
	end, any := run.output.timeline.LastEndOf(int(s))
	now := gstshim.RunningTimeNow(b.self.Element)
	return any && now != gst.ClockTimeNone && int64(now)-end > gapThreshold(run.fallback)
}

// gapThreshold is how far behind the clock a stream may fall before
// fallback fills it: two frames, at least 250 ms.
func gapThreshold(f *fallback) int64 {
	return max(2*int64(f.frameDur), int64(250*time.Millisecond))
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
// silent names the stream whose silence was the stall ("video", or "all"
// for no data at all), "" for other reasons.
func (b *reconnectBin) rebuild(run *runState, d supervisor.Decision, silent string) bool {
	select {
	case <-run.ended:
		return true
	default:
	}
	fields := map[string]any{
		"reason":  string(d.Reason),
		"error":   d.Error,
		"attempt": d.Attempt,
		"delay":   uint64(d.Delay),
		"give-up": d.GiveUp,
	}
	if silent != "" {
		fields["silent-stream"] = silent
	}
	b.postElementMessage("reconnectbin-restart", fields)
	st := run.sup.Stats()
	run.rep().restart(string(d.Reason), statusLine(string(st.Status), st.Restarts, st.CurrentOutage))
	b.teardown(run)
	if d.GiveUp {
		text := fmt.Sprintf("reconnectbin: source failed %d times in a row, giving up (max-retries); last failure (%s): %s",
			d.Attempt, d.Reason, d.Error)
		cat.LogError(text)
		gstshim.PostError(b.self.Element, false, gstshim.ResourceError, gst.ResourceErrorRead, text, "")
		return true
	}
	cat.LogInfo(fmt.Sprintf("rebuilding the source (attempt %d, reason %s) in %v: %s", d.Attempt, d.Reason, d.Delay, d.Error))
	if !b.backupFeeds(run) {
		b.startFallback(run)
	}
	b.tickBackup(run) // a backup starts now, not after the main's backoff
	timer := time.NewTimer(d.Delay)
	defer timer.Stop()
	select {
	case <-run.stop:
		return false
	case <-run.ended:
		return true
	case <-timer.C:
	}
	b.startInstance(run)
	return true
}

// startInstance starts an instance of the main source.
func (b *reconnectBin) startInstance(run *runState) { b.startSource(run, &run.main) }

// startSource builds a new instance of role's source, adds it locked (so its
// failures never fail the pipeline's own state changes) and starts it.
func (b *reconnectBin) startSource(run *runState, role *sourceRole) {
	b.settingsMu.Lock()
	s := b.settings
	b.settingsMu.Unlock()
	gen := role.sup.Begin()
	prop, desc := s.description()
	if role.src == failover.Backup {
		prop, desc = s.backupDescription()
	}
	if run.backup != nil {
		run.backup.fo.Started(role.src, gen)
	}
	c, err := b.buildInstance(run, role, gen, desc, s)
	if err != nil {
		b.failStart(role, gen, fmt.Sprintf("property '%s': %v", prop, err))
		return
	}
	_ = c.bin.SetLockedState(true)
	if err := b.self.Add(c.bin.Element); err != nil {
		c.disconnect() // its closures would keep it alive otherwise
		b.failStart(role, gen, fmt.Sprintf("adding the source: %v", err))
		return
	}
	if run.backup == nil {
		// With a backup, the output is placed anew when it changes hands
		// (feedsOutput), not when an instance starts beside the one feeding it.
		run.output.timeline.StartInstance()
	}
	role.slot.Store(c)
	c.advance(phaseBuilding, phaseStarting)
	if err := b.linkPads(c); err != nil {
		b.failStart(role, gen, err.Error())
		return
	}
	gstshim.InheritClock(b.self.Element, c.bin.Element)
	bound := startBound(s.stallTimeout)
	res, err := b.changeState(c, gst.StatePlaying, bound)
	switch res {
	case changeStopped:
		return // the loop ends; its teardown leaves the instance behind
	case changeAbandoned:
		b.failStart(role, gen, "the pipeline changed state while the source was still starting")
		return
	case changeTimedOut:
		// It is out of the bin (phaseReleasing), so its late errors are no
		// failures of the next instance.
		b.failStart(role, gen, fmt.Sprintf("the source's state change to PLAYING did not complete within %v", bound))
		return
	}
	if !c.advance(phaseStarting, phaseRunning) {
		// Only the loop takes an instance out once its change returned;
		// should it ever be out, it did not start.
		b.failStart(role, gen, "the pipeline changed state while the source was still starting")
		return
	}
	startErr := c.startErr.Load()
	switch {
	case err != nil:
		text := "the source's state change to PLAYING failed"
		if startErr != nil {
			text = *startErr
		}
		b.failStart(role, gen, text)
	case startErr != nil:
		if d, ok := role.sup.Fail(gen, supervisor.ReasonError, *startErr); ok {
			role.decide(d)
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

func (b *reconnectBin) failStart(role *sourceRole, gen uint64, text string) {
	cat.LogWarning(fmt.Sprintf("%s source instance %d did not start: %s", role.src, gen, text))
	if d, ok := role.sup.Fail(gen, supervisor.ReasonStartFailed, text); ok {
		role.decide(d)
	}
}

// followState mirrors PLAYING/PAUSED of the bin onto the current instance,
// bounded like a start: an instance that cannot change state is a failed one.
func (b *reconnectBin) followState(c *instance, playing bool) {
	if c.phase() != phaseRunning {
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
	res, _ := b.changeState(c, state, bound)
	text := ""
	switch res {
	case changeAbandoned:
		text = "the pipeline changed state while the source was changing state"
	case changeTimedOut:
		text = fmt.Sprintf("the source's state change to %s did not complete within %v", state, bound)
	default:
		return
	}
	if d, ok := c.role.sup.Fail(c.gen, supervisor.ReasonError, text); ok {
		c.role.decide(d)
	}
}

// teardown removes the current instance, if any. go-gst ties GObject
// lifetimes to Go finalizers, so without a collection removed instances are
// never freed (RSS grew ~0.4 MB per rebuild when measured).
func (b *reconnectBin) teardown(run *runState) {
	b.sourceDown(run, failover.Main)
	c := run.current.Swap(nil)
	if c == nil {
		return
	}
	b.release(c)
	runtime.GC()
}
