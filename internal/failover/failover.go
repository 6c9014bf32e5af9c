// Package failover decides which of reconnectbin's two sources feeds the
// output: the main source, or the backup (fallback-uri, fallback-source)
// while the main is down. It decides, the element acts: which source the
// output wants, when the backup must be started (it is cold: started only
// once the main failed) and when it may be released (the main has been live
// for MainSteadyTime and feeds the output again).
//
// The element tells it what happens: an instance of a source started, sent
// a buffer, went down; the output switched. Sources come back one instance
// (generation) at a time, so buffers of an instance that is no longer the
// source's current one are ignored. It is safe for concurrent use:
// streaming threads report buffers and switches, the element's supervise
// loop the rest.
package failover

import (
	"sync"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

// Source is one of the bin's sources, or none of them.
type Source int

const (
	// None: neither source feeds the output (fallback frames, or a gap).
	None Source = iota
	Main
	Backup
)

func (s Source) String() string {
	switch s {
	case Main:
		return "main"
	case Backup:
		return "backup"
	default:
		return "none"
	}
}

// DefaultMainSteadyTime is how long the main must be live again before the
// output leaves the backup for it: long enough that a main that flaps
// (comes up, dies seconds later) does not flip the picture back and forth.
const DefaultMainSteadyTime = 10 * time.Second

// Options are the failover settings.
type Options struct {
	// MainSteadyTime is how long the main source must have been live
	// (sending buffers since its instance's first one) before the output
	// switches back to it from the backup, and before the backup is
	// released. 0 switches back on the main's first buffer.
	MainSteadyTime time.Duration
}

// Validate reports a bad setting as a *fielderr.Error.
func (o Options) Validate() error {
	if o.MainSteadyTime < 0 {
		return fielderr.New("MainSteadyTime", o.MainSteadyTime, "must not be negative")
	}
	return nil
}

// sourceState is what is known of one source's current instance.
type sourceState struct {
	gen     uint64 // current instance, 0 before the first
	running bool   // the instance exists (started, not failed or released)
	up      bool   // it sent a buffer and has not failed since
	upSince time.Time
}

// Failover is the decision state of one run of the bin.
type Failover struct {
	opts Options

	mu     sync.Mutex
	main   sourceState
	backup sourceState
	live   Source // what feeds the output now (Switched)
	// mainSteady: the main's current instance has been up for
	// MainSteadyTime (as of the latest main buffer or Tick).
	mainSteady bool
	// mainFailed: the main failed since the backup was last released (or
	// since the start): the backup is wanted until the main is steady and
	// feeds the output again.
	mainFailed bool
}

// New returns the failover state for a run; opts must be valid.
func New(opts Options) (*Failover, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Failover{opts: opts}, nil
}

func (f *Failover) state(src Source) *sourceState {
	if src == Backup {
		return &f.backup
	}
	return &f.main
}

// Started records that instance gen of src was started: it replaces any
// earlier instance of src, and is down until its first buffer.
func (f *Failover) Started(src Source, gen uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.state(src) = sourceState{gen: gen, running: true}
	if src == Main {
		f.mainSteady = false
	}
}

// Buffer records a buffer from instance gen of src at now (whether or not
// the output takes it: a main on probation sends buffers that are dropped).
func (f *Failover) Buffer(src Source, gen uint64, now time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.state(src)
	if st.gen != gen || !st.running {
		return
	}
	if !st.up {
		st.up, st.upSince = true, now
	}
	if src == Main {
		f.updateSteadyLocked(now)
	}
}

// Down records that src's current instance failed, did not start, or was
// released: src is down until a new instance (Started) sends a buffer. The
// element's supervise loop, the only place instances are started and
// stopped, calls it; a source's failures reach it one decision at a time.
func (f *Failover) Down(src Source) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.state(src)
	st.running, st.up = false, false
	if src == Main {
		f.mainSteady = false
		f.mainFailed = true
	}
	if f.live == src {
		f.live = None
	}
}

// Switched records that src now feeds the output.
func (f *Failover) Switched(src Source) {
	f.mu.Lock()
	f.live = src
	f.mu.Unlock()
}

// Live is the source that feeds the output.
func (f *Failover) Live() Source {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live
}

func (f *Failover) updateSteadyLocked(now time.Time) {
	if f.main.up && !f.mainSteady && now.Sub(f.main.upSince) >= f.opts.MainSteadyTime {
		f.mainSteady = true
	}
}

// Want is the source the output should take, at that source's next
// keyframe: the main while it is up, except that an output fed by the
// backup stays there until the main is steady (or the backup goes down);
// else the backup while it is up; else none.
func (f *Failover) Want() Source {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wantLocked()
}

func (f *Failover) wantLocked() Source {
	if f.main.up && (f.mainSteady || f.live != Backup || !f.backup.up) {
		return Main
	}
	if f.backup.up {
		return Backup
	}
	return None
}

// Plan is what the element should do with the backup now.
type Plan struct {
	// StartBackup: the main failed and is not up, and no backup instance
	// runs: start one (after its own backoff, when it failed before).
	StartBackup bool
	// ReleaseBackup: the main is steady and feeds the output again: the
	// backup instance is no longer needed.
	ReleaseBackup bool
	// Want is Want().
	Want Source
}

// Tick re-evaluates at now (the main turns steady with time) and says what
// to do with the backup.
func (f *Failover) Tick(now time.Time) Plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updateSteadyLocked(now)
	p := Plan{Want: f.wantLocked()}
	switch {
	case f.mainSteady && f.live == Main:
		p.ReleaseBackup = f.backup.running
		f.mainFailed = false
	case f.backupWantedLocked() && !f.backup.running:
		p.StartBackup = true
	}
	return p
}

// BackupWanted reports whether the backup should be running: the main
// failed and is not up again.
func (f *Failover) BackupWanted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.backupWantedLocked()
}

func (f *Failover) backupWantedLocked() bool { return f.mainFailed && !f.main.up }
