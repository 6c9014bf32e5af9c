package reconnectbin

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/failover"
	"github.com/kvsrelay/kvsrelay/internal/fielderr"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
)

// The backup source (fallback-uri, fallback-source): a second camera or URL
// that feeds the output while the main source is down. It is cold: started
// when the main fails, released once the main has been live for
// main-steady-time and feeds the output again (internal/failover decides
// when). It is an instance like the main's (instance.go), built from the
// same settings (output-caps, restart-on-eos), started and torn down by
// the same supervise loop, with its own supervisor: its own backoff and
// stall detection, and no max-retries (that one is the main's).
//
// The bin's output pads keep the main instance's pads as their targets;
// the backup's pads are never linked. Its video buffers are placed on the
// output timeline by its probe like any source's (probes.go) and pushed on
// the bin's src pad from there when the backup feeds the output; otherwise
// they are dropped, as the main's are while the backup feeds it. The
// output changes hands only at a keyframe of the source taking over
// (every raw frame is one), under switchMu, so that one source's buffers
// are never placed with the other's offset.

// backupRun is a run's backup state; nil in a run without a backup.
type backupRun struct {
	fo   *failover.Failover
	role sourceRole

	current   atomic.Pointer[instance] // the backup instance, nil when none
	decisions chan supervisor.Decision
	// retryAt is when the next backup instance may start (its backoff);
	// read and written by the supervise loop only.
	retryAt time.Time

	// switchMu makes "does this instance feed the output" and the
	// placement of its buffer one step (held only for that, never across
	// a push). live is the instance feeding the output, nil when none
	// (fallback frames, or a gap).
	switchMu sync.Mutex
	live     atomic.Pointer[instance]

	switchesToBackup atomic.Uint64
	switchesToMain   atomic.Uint64
}

// newBackupRun makes the backup state of a run, nil without a backup.
func newBackupRun(s settings) (*backupRun, error) {
	if !s.hasBackup() {
		return nil, nil
	}
	fo, err := failover.New(failover.Options{MainSteadyTime: s.mainSteadyTime})
	if err != nil {
		return nil, fielderr.Rename(err, map[string]string{"MainSteadyTime": "main-steady-time"})
	}
	cfg, err := s.reconnectConfig()
	if err != nil {
		return nil, err
	}
	cfg.MaxRetries = -1 // max-retries gives up on the main; the backup is retried for as long as it is needed
	sup, err := supervisor.New(cfg, wallClock{}, nil)
	if err != nil {
		return nil, err
	}
	bk := &backupRun{fo: fo, decisions: make(chan supervisor.Decision, 8)}
	bk.role = sourceRole{src: failover.Backup, sup: sup, slot: &bk.current, decide: bk.decide}
	return bk, nil
}

func (bk *backupRun) decide(d supervisor.Decision) {
	select {
	case bk.decisions <- d:
	default:
		cat.LogError("reconnectbin: backup decision queue full, dropping a rebuild decision")
	}
}

// backupDecisions is the loop's input of backup failures; nil (never ready)
// without a backup.
func (r *runState) backupDecisions() chan supervisor.Decision {
	if r.backup == nil {
		return nil
	}
	return r.backup.decisions
}

// hasBackup reports whether a backup source is set.
func (s settings) hasBackup() bool { return s.fallbackURI != "" || s.fallbackSource != "" }

// backupDescription is description() for the backup.
func (s settings) backupDescription() (property, desc string) {
	return sourceDescription("fallback-source", s.fallbackSource, "fallback-uri", s.fallbackURI)
}

// validateBackup checks the backup properties like source and uri.
func validateBackup(s settings) error {
	if s.mainSteadyTime < 0 {
		return badProperty("main-steady-time", "must not be negative")
	}
	if !s.hasBackup() {
		return nil
	}
	if s.fallbackURI != "" && s.fallbackSource != "" {
		return badProperty("fallback-uri", "and 'fallback-source' are both set: set at most one of them")
	}
	return checkDescription(s.backupDescription())
}

// tickBackup applies the failover plan: starts the backup the main needs
// (once its backoff allows), releases the one it no longer needs, and
// checks the running one for a stall. Supervise loop only.
func (b *reconnectBin) tickBackup(run *runState) {
	bk := run.backup
	if bk == nil {
		return
	}
	select {
	case <-run.ended:
		return
	default:
	}
	if gen, stalled := bk.role.sup.CheckStall(); stalled && bk.current.Load() != nil {
		text := fmt.Sprintf("no data from the backup source for %v", bk.role.sup.Stats().SinceLastBuffer.Round(time.Millisecond))
		if d, ok := bk.role.sup.Fail(gen, supervisor.ReasonStall, text); ok {
			b.backupFailed(run, d)
		}
	}
	p := bk.fo.Tick(time.Now())
	switch {
	case p.ReleaseBackup:
		cat.LogInfo("the main source has been live for main-steady-time: releasing the backup source")
		b.teardownBackup(run)
	case p.StartBackup && bk.current.Load() == nil && !time.Now().Before(bk.retryAt):
		cat.LogInfo("the main source is down: starting the backup source")
		b.startSource(run, &bk.role)
	}
}

// backupFailed acts on a decision about the backup: tear it down, and fill
// the output if it was feeding it; the next instance waits for the
// decision's delay (tickBackup starts it if the main still needs it).
func (b *reconnectBin) backupFailed(run *runState, d supervisor.Decision) {
	bk := run.backup
	cat.LogWarning(fmt.Sprintf("backup source failed (%s): %s; next attempt in %v", d.Reason, d.Error, d.Delay))
	wasLive := bk.fo.Live() == failover.Backup
	b.teardownBackup(run)
	bk.retryAt = time.Now().Add(d.Delay)
	if wasLive {
		b.startFallback(run) // both down: fallback=black|image applies
	}
}

// teardownBackup removes the backup instance, if any.
func (b *reconnectBin) teardownBackup(run *runState) {
	bk := run.backup
	if bk == nil {
		return
	}
	b.sourceDown(run, failover.Backup)
	c := bk.current.Swap(nil)
	if c == nil {
		return
	}
	b.release(c)
	runtime.GC() // as teardown: removed instances are freed by finalizers
}

// sourceDown tells the failover that src's instance is gone (failed, not
// started, released), and announces an output that no source feeds any
// more. Supervise loop only; nothing without a backup.
func (b *reconnectBin) sourceDown(run *runState, src failover.Source) {
	bk := run.backup
	if bk == nil {
		return
	}
	bk.switchMu.Lock()
	wasLive := bk.fo.Live() == src
	bk.fo.Down(src)
	bk.switchMu.Unlock()
	select {
	case <-run.stop:
		return // the run is stopping: nothing feeds the output any more, as expected
	default:
	}
	if wasLive {
		b.postElementMessage("reconnectbin-live-source", map[string]any{"source": failover.None.String(), "previous": src.String()})
	}
}

// backupFeeds reports whether the backup feeds the output: a main failing
// then leaves no hole to fill.
func (b *reconnectBin) backupFeeds(run *runState) bool {
	return run.backup != nil && run.backup.fo.Live() == failover.Backup
}

// feedsOutput reports whether buffer buf of instance c on stream s goes
// out, switching the output over to c at a keyframe when the failover
// wants c's source there (switched, from prev). bk.switchMu held.
func (b *reconnectBin) feedsOutput(bk *backupRun, c *instance, s stream, buf *gst.Buffer) (feeds, switched bool, prev failover.Source) {
	if bk.live.Load() == c {
		return true, false, c.role.src
	}
	if s != streamMain || buf.HasFlags(gst.BufferFlagDeltaUnit) || bk.fo.Want() != c.role.src {
		return false, false, failover.None
	}
	prev = bk.fo.Live()
	bk.live.Store(c)
	bk.fo.Switched(c.role.src)
	c.run.output.timeline.StartInstance()
	if c.role.src == failover.Backup {
		bk.switchesToBackup.Add(1)
	} else if prev != failover.None || bk.switchesToBackup.Load() > 0 {
		bk.switchesToMain.Add(1)
	}
	return true, true, prev
}

// holdSwitch decides, under switchMu, whether buffer buf of instance c on
// stream s goes out. It returns the function that releases switchMu (to be
// called once the buffer is placed; calling it again does nothing), or nil
// when the buffer is dropped: its source does not feed the output. Without
// a backup every buffer goes out and nothing is held.
func (b *reconnectBin) holdSwitch(c *instance, s stream, buf *gst.Buffer) (release func(), switched bool) {
	bk := c.run.backup
	if bk == nil {
		return func() {}, false
	}
	bk.fo.Buffer(c.role.src, c.gen, time.Now())
	bk.switchMu.Lock()
	feeds, switched, prev := b.feedsOutput(bk, c, s, buf)
	if !feeds {
		bk.switchMu.Unlock()
		// Alive all the same: a main on probation, a backup kept warm.
		b.noteSourceBuffer(c)
		return nil, false
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			bk.switchMu.Unlock()
			if switched { // announced outside the lock: posting may run bus handlers
				cat.LogInfo(fmt.Sprintf("the output now comes from the %s source (instance %d)", c.role.src, c.gen))
				b.postElementMessage("reconnectbin-live-source", map[string]any{"source": c.role.src.String(), "previous": prev.String()})
			}
		})
	}, switched
}

// pushBackupBuffer sends a backup buffer, placed and rewritten by its
// probe, out of the bin's src pad (the backup's own pads are not linked),
// after the backup's caps when it has just taken over.
func (b *reconnectBin) pushBackupBuffer(c *instance, info *gst.PadProbeInfo, switched bool) gst.PadProbeReturn {
	if switched {
		c.mu.Lock()
		ghost := c.pads[streamMain]
		c.mu.Unlock()
		if ghost != nil {
			if caps := ghost.GetCurrentCaps(); caps != nil {
				// Before the main ever came up: stream-start and the
				// segment too. The same caps as before are dropped by the
				// output; others are a caps change (on-caps-change).
				ensureStreamEvents(b.srcPad.Pad, fmt.Sprintf("%s/backup", b.self.GetName()), caps)
				b.srcPad.PushEvent(gst.NewCapsEvent(caps))
			}
		}
	}
	if buf := info.GetBuffer(); buf != nil {
		b.push(streamMain, b.srcPad, buf)
	}
	return gst.PadProbeDrop
}

// backupStats adds the failover's fields to the stats structure.
func backupStats(st *gst.Structure, run *runState) {
	live, status := failover.None.String(), "stopped"
	var restarts, toBackup, toMain uint64
	if run.backup == nil && run.sup != nil && run.sup.Status() == supervisor.StatusRunning {
		live = failover.Main.String()
	}
	if bk := run.backup; bk != nil {
		live = bk.fo.Live().String()
		bs := bk.role.sup.Stats()
		switch {
		case bk.current.Load() != nil:
			status = string(bs.Status)
		case bk.fo.BackupWanted():
			status = string(supervisor.StatusRetrying) // waiting for its backoff
		}
		restarts, toBackup, toMain = bs.Restarts, bk.switchesToBackup.Load(), bk.switchesToMain.Load()
	}
	_ = st.SetValue("live-source", live)
	_ = st.SetValue("backup-status", status)
	_ = st.SetValue("backup-restarts", restarts)
	_ = st.SetValue("switches-to-backup", toBackup)
	_ = st.SetValue("switches-to-main", toMain)
}
