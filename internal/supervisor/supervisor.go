// Package supervisor decides, for reconnectbin, when its child source has
// failed and how long to wait before rebuilding it. It holds no GStreamer
// objects: the element's glue reports what happened (a child was started, a
// buffer left it, it posted an ERROR or EOS) and acts on the decisions.
//
// # Generations
//
// Every child instance gets a generation number from Begin. Every report
// carries the generation it is about, and reports about any generation other
// than the current one are ignored: one failure often arrives twice (basesrc
// posts an ERROR and then pushes EOS), and buffers still in flight from a
// child that is being torn down must not count as a recovery of its
// replacement. A generation fails at most once.
//
// # Outages
//
// An outage starts at the first Fail after data last flowed (or, if no data
// ever flowed, at the first Fail) and ends at the first Buffer of a later
// generation, which returns a Recovery describing it. A generation that fails
// before sending data does not end the outage, so a dead upstream shows as one
// long outage with many attempts. TotalOutage sums every outage including the
// current one; an outage that is still going on when the source gives up
// keeps growing until data flows again. A supervisor serves one run of the
// element: the glue makes a new one at each start.
//
// # Backoff and giving up
//
// Each accepted Fail is one failed attempt. Consecutive failed attempts are
// counted since the child last streamed steadily: when the generation that
// fails had been delivering buffers for at least SteadyAfter (from its first
// buffer to its latest one), the count and the backoff start over before the
// failure is counted. A source that sends one buffer and fails again is not
// steady, so its delays keep growing instead of hammering it at the initial
// delay. When MaxRetries >= 0 and the count would exceed MaxRetries the
// decision is GiveUp and the status becomes failed; with MaxRetries = 3 the
// source is restarted three times and the fourth consecutive failure gives up.
//
// # Stalls
//
// A stall is a child that is alive but sends nothing: no buffer for
// StallTimeout since the later of its last buffer and its start. The glue
// calls CheckStall from a ticker (NextStallCheck says how long it may wait)
// and reports a stall with Fail(gen, ReasonStall, ...).
//
// # Concurrency
//
// All methods are safe for concurrent use. Buffer is called for every buffer
// from streaming threads; once a generation is streaming it only reads the
// clock and does one atomic store, without taking the lock or allocating.
package supervisor

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/backoff"
	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

// Status is the externally visible state of the wrapped source.
type Status string

const (
	// StatusStopped: no child has been begun yet.
	StatusStopped Status = "stopped"
	// StatusStarting: the first child (after New) is starting and
	// has not sent data yet.
	StatusStarting Status = "starting"
	// StatusRunning: the current child has sent data and has not failed.
	StatusRunning Status = "running"
	// StatusRetrying: a child failed and a replacement is scheduled or
	// starting; stays so until the replacement sends data.
	StatusRetrying Status = "retrying"
	// StatusFailed: MaxRetries was exceeded; no more restarts are scheduled.
	StatusFailed Status = "failed"
)

// Reason says why a child was given up on.
type Reason string

const (
	ReasonError       Reason = "error"        // the child posted an ERROR message
	ReasonEOS         Reason = "eos"          // the child ended its stream
	ReasonStall       Reason = "stall"        // no data for StallTimeout
	ReasonStartFailed Reason = "start-failed" // the child could not be built or set to PLAYING
)

// describe is the error text used when Fail is given none.
func (r Reason) describe() string {
	switch r {
	case ReasonError:
		return "source posted an error"
	case ReasonEOS:
		return "source ended the stream (EOS)"
	case ReasonStall:
		return "source sent no data within stall-timeout"
	case ReasonStartFailed:
		return "source failed to start"
	default:
		return "source failed: " + string(r)
	}
}

// Defaults of Config (reconnectbin's property defaults), and the stall
// ticker's bounds.
const (
	// DefaultStallTimeout: five seconds without a buffer is a stall.
	DefaultStallTimeout = 5 * time.Second
	// DefaultRetryDelay and DefaultMaxRetryDelay: the first restart after
	// a quarter second, doubling up to 2 s, so the picture comes back soon
	// after the source does while a dead source costs one attempt per 2 s.
	DefaultRetryDelay    = 250 * time.Millisecond
	DefaultMaxRetryDelay = 2 * time.Second
	// DefaultMaxRetries: never give up.
	DefaultMaxRetries = -1
	// DefaultSteadyAfter: streaming this long resets the backoff.
	DefaultSteadyAfter = 10 * time.Second
	// MinStallCheck is the shortest interval NextStallCheck returns.
	MinStallCheck = 10 * time.Millisecond
	// IdleStallCheck is what NextStallCheck returns while stall detection
	// is off, so that a ticker built from it never spins.
	IdleStallCheck = time.Second
)

// The backoff between restarts doubles, with the last fifth of each delay
// random.
const (
	retryMultiplier = 2.0
	retryJitter     = 0.2
)

// Config holds the reconnect settings. Validate reports bad values.
type Config struct {
	StallTimeout  time.Duration // no data for this long counts as a failure; 0 = stall detection off
	RetryDelay    time.Duration // delay before the first restart; 0 = restart immediately
	MaxRetryDelay time.Duration // cap on the delay; >= RetryDelay
	MaxRetries    int           // -1 = never give up; N >= 0 = give up on the (N+1)th consecutive failure
	SteadyAfter   time.Duration // streaming this long resets the backoff; 0 = DefaultSteadyAfter
}

// DefaultConfig returns reconnectbin's defaults: stall detection after 5s,
// retries forever with 250ms..2s backoff.
func DefaultConfig() Config {
	return Config{
		StallTimeout:  DefaultStallTimeout,
		RetryDelay:    DefaultRetryDelay,
		MaxRetryDelay: DefaultMaxRetryDelay,
		MaxRetries:    DefaultMaxRetries,
		SteadyAfter:   DefaultSteadyAfter,
	}
}

func (c Config) policy() backoff.Policy {
	return backoff.Policy{
		Initial:    c.RetryDelay,
		Max:        c.MaxRetryDelay,
		Multiplier: retryMultiplier,
		Jitter:     retryJitter,
	}
}

// policyFields names the backoff.Policy fields a Config sets.
var policyFields = map[string]string{"Initial": "RetryDelay", "Max": "MaxRetryDelay"}

func (c Config) steadyAfter() time.Duration {
	if c.SteadyAfter == 0 {
		return DefaultSteadyAfter
	}
	return c.SteadyAfter
}

// Validate reports every invalid field, each as a *fielderr.Error naming
// the Config field, joined with errors.Join.
func (c Config) Validate() error {
	var errs []error
	if c.StallTimeout < 0 {
		errs = append(errs, fielderr.New("StallTimeout", c.StallTimeout, "must not be negative (0 disables stall detection)"))
	}
	if c.MaxRetries < -1 {
		errs = append(errs, fielderr.New("MaxRetries", c.MaxRetries, "must be -1 (retry forever) or >= 0"))
	}
	if c.SteadyAfter < 0 {
		errs = append(errs, fielderr.New("SteadyAfter", c.SteadyAfter, "must not be negative"))
	}
	if err := c.policy().Validate(); err != nil {
		errs = append(errs, fielderr.Rename(err, policyFields))
	}
	return errors.Join(errs...)
}

// Clock tells the time; tests inject a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Recovery describes an outage that just ended with data from a new child.
type Recovery struct {
	Gen      uint64        // the generation that recovered
	Outage   time.Duration // from the first failure of the outage to the recovering buffer
	Attempts int           // restarts made during this outage (>= 1)
	Reason   Reason        // what started the outage
	Error    string        // error text of the failure that started the outage
}

// Decision tells the glue what to do after an accepted Fail.
type Decision struct {
	// Attempt is the number of the restart this decision schedules,
	// counted since the source last streamed steadily (1 = first). On
	// GiveUp it is the number of restarts already made (= MaxRetries).
	Attempt int
	// Delay to wait before Begin of the replacement; 0 on GiveUp.
	Delay time.Duration
	// GiveUp: MaxRetries was exceeded; do not restart, post an error.
	GiveUp bool
	Reason Reason
	// Error is the text passed to Fail, or a description of Reason if
	// that was empty.
	Error string
}

// Stats is a snapshot for properties, messages and logs.
type Stats struct {
	Status     Status
	Generation uint64 // current generation, 0 before the first Begin
	// Restarts counts every Decision that was not GiveUp.
	Restarts uint64
	// PerReason counts accepted failures by reason (including the one that
	// gave up). The map is a copy the caller may keep.
	PerReason map[Reason]uint64
	LastError string // Decision.Error of the latest accepted failure; "" if none
	// SinceLastBuffer is the time since any generation last sent a buffer;
	// 0 if no buffer was ever seen (check HaveBuffer to tell apart).
	SinceLastBuffer time.Duration
	HaveBuffer      bool
	// CurrentOutage is how long the ongoing outage has lasted, 0 when no
	// outage is ongoing. TotalOutage sums all outages including the current.
	CurrentOutage time.Duration
	TotalOutage   time.Duration
	Outages       uint64 // outages begun, including the current one
	// Attempts is the number of restarts made in the current outage, 0
	// when none is ongoing.
	Attempts int
	// ConsecutiveAttempts is the number of restarts since the source last
	// streamed steadily: what MaxRetries is compared against and what
	// drives the backoff. It can be > Attempts for a flapping source.
	ConsecutiveAttempts int
}

// genState is one child instance. The fields read by Buffer's fast path are
// atomic; the rest are guarded by Supervisor.mu.
type genState struct {
	gen       uint64
	streaming atomic.Bool  // first buffer handled and not failed: Buffer may take the fast path
	lastBuf   atomic.Int64 // clock offset (ns since Supervisor.epoch) of the latest buffer; noTime if none

	started  int64 // clock offset of Begin
	firstBuf int64 // clock offset of the first buffer; noTime if none
	failed   bool
}

const noTime = math.MinInt64

// Supervisor is the reconnect state machine for one reconnectbin.
type Supervisor struct {
	clk   Clock
	epoch time.Time // clock offsets are measured from here so they fit an int64

	cur atomic.Pointer[genState] // current generation; written under mu

	mu      sync.Mutex
	cfg     Config
	backoff *backoff.Backoff
	status  Status
	gen     uint64

	prevLastBuf int64 // latest buffer of earlier generations; noTime if none

	inOutage       bool
	outageStart    int64
	outageAttempts int
	outageReason   Reason
	outageError    string
	totalOutage    time.Duration // completed outages only
	outages        uint64

	restarts  uint64
	perReason map[Reason]uint64
	lastError string
}

// New returns a Supervisor in status stopped. clk nil uses the wall clock;
// rand nil uses math/rand/v2 for the backoff jitter.
func New(cfg Config, clk Clock, rand func() float64) (*Supervisor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("reconnect settings: %w", err)
	}
	if clk == nil {
		clk = realClock{}
	}
	return &Supervisor{
		clk:         clk,
		epoch:       clk.Now(),
		cfg:         cfg,
		backoff:     backoff.New(cfg.policy(), rand),
		status:      StatusStopped,
		prevLastBuf: noTime,
		perReason:   make(map[Reason]uint64),
	}, nil
}

// now returns the clock as an offset from epoch.
func (s *Supervisor) now() int64 { return int64(s.clk.Now().Sub(s.epoch)) }

// Begin records that a new child instance is being started and returns its
// generation. Any earlier generation becomes stale. The status becomes
// starting for the first child after New or a replacement without a
// failure, and retrying while an outage is ongoing. Begin after GiveUp is a
// manual restart: the attempt count starts over, the outage goes on.
func (s *Supervisor) Begin() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.resetIfSteadyLocked() // a steady child replaced without failing still earned a reset
	s.retireLocked()
	if s.status == StatusFailed {
		s.backoff.Reset()
	}
	s.gen++
	g := &genState{gen: s.gen, started: now, firstBuf: noTime}
	g.lastBuf.Store(noTime)
	s.cur.Store(g)
	if s.inOutage {
		s.status = StatusRetrying
	} else {
		s.status = StatusStarting
	}
	return s.gen
}

// retireLocked makes the current generation stale, keeping its last buffer
// time for SinceLastBuffer.
func (s *Supervisor) retireLocked() {
	g := s.cur.Load()
	if g == nil {
		return
	}
	g.streaming.Store(false)
	g.failed = true
	s.prevLastBuf = max(s.prevLastBuf, g.lastBuf.Load())
}

// Buffer records that a buffer left child gen. It returns a Recovery for the
// first buffer of a generation that ends an outage, at most once per
// generation, and nil otherwise. The first buffer of any generation sets the
// status to running. Buffers from stale or failed generations are ignored.
func (s *Supervisor) Buffer(gen uint64) *Recovery {
	if g := s.cur.Load(); g != nil && g.gen == gen && g.streaming.Load() {
		g.lastBuf.Store(s.now())
		return nil
	}
	return s.bufferSlow(gen)
}

func (s *Supervisor) bufferSlow(gen uint64) *Recovery {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.cur.Load()
	if g == nil || g.gen != gen || g.failed {
		return nil
	}
	now := s.now()
	g.lastBuf.Store(now)
	if g.firstBuf != noTime {
		return nil // another streaming thread handled the first buffer
	}
	g.firstBuf = now
	s.status = StatusRunning
	g.streaming.Store(true)
	if !s.inOutage {
		return nil
	}
	outage := time.Duration(now - s.outageStart)
	s.totalOutage += outage
	s.inOutage = false
	rec := &Recovery{
		Gen:      gen,
		Outage:   outage,
		Attempts: s.outageAttempts,
		Reason:   s.outageReason,
		Error:    s.outageError,
	}
	s.outageAttempts = 0
	return rec
}

// Fail reports that child gen failed. ok is false, and nothing changes, when
// gen is stale or already failed (the EOS that follows an ERROR).
// Otherwise the decision says how long to wait before
// Begin of a replacement, or to give up.
func (s *Supervisor) Fail(gen uint64, reason Reason, errText string) (Decision, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.cur.Load()
	if g == nil || g.gen != gen || g.failed {
		return Decision{}, false
	}
	now := s.now()
	s.resetIfSteadyLocked()
	g.failed = true
	g.streaming.Store(false)

	if errText == "" {
		errText = reason.describe()
	}
	s.perReason[reason]++
	s.lastError = errText
	if !s.inOutage {
		s.inOutage = true
		s.outages++
		s.outageStart = now
		s.outageAttempts = 0
		s.outageReason = reason
		s.outageError = errText
	}

	d := Decision{Reason: reason, Error: errText}
	if s.cfg.MaxRetries >= 0 && s.backoff.Attempts() >= s.cfg.MaxRetries {
		s.status = StatusFailed
		d.GiveUp = true
		d.Attempt = s.backoff.Attempts()
		return d, true
	}
	d.Delay = s.backoff.Next()
	d.Attempt = s.backoff.Attempts()
	s.restarts++
	s.outageAttempts++
	s.status = StatusRetrying
	return d, true
}

// resetIfSteadyLocked starts the backoff over when the current generation
// has been delivering for at least SteadyAfter. It is checked lazily (at
// Fail and Stats) so that Buffer's fast path stays a single store.
func (s *Supervisor) resetIfSteadyLocked() {
	g := s.cur.Load()
	if g == nil || g.failed || g.firstBuf == noTime {
		return
	}
	if time.Duration(g.lastBuf.Load()-g.firstBuf) >= s.cfg.steadyAfter() {
		s.backoff.Reset()
	}
}

// Touch records that child gen is busy though no buffer left it: its data
// is held downstream (a blocking sink), which is not a stall. It restarts
// the stall clock of a live generation and changes nothing else (no status,
// no recovery, no first buffer). Stale or failed generations are ignored.
func (s *Supervisor) Touch(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.cur.Load(); g != nil && g.gen == gen && !g.failed {
		g.lastBuf.Store(s.now())
	}
}

// CheckStall reports whether the current child is stalled: stall detection
// is on, a child is live (begun, not failed), and no buffer came
// for at least StallTimeout since the later of its last buffer and its
// start. A child that never sends data stalls StallTimeout after Begin. The
// caller then reports it with Fail(gen, ReasonStall, ...); until it does,
// CheckStall keeps answering true.
func (s *Supervisor) CheckStall() (gen uint64, stalled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, remaining, ok := s.stallRemainingLocked()
	if !ok || remaining > 0 {
		return 0, false
	}
	return g.gen, true
}

// stallRemainingLocked returns the live child and how long until it counts
// as stalled; ok is false when stall detection does not apply.
func (s *Supervisor) stallRemainingLocked() (g *genState, remaining time.Duration, ok bool) {
	if s.cfg.StallTimeout <= 0 {
		return nil, 0, false
	}
	g = s.cur.Load()
	if g == nil || g.failed {
		return nil, 0, false
	}
	ref := max(g.started, g.lastBuf.Load())
	return g, s.cfg.StallTimeout - time.Duration(s.now()-ref), true
}

// NextStallCheck returns how long the stall ticker may wait before calling
// CheckStall again: the time until the live child would stall, but at most
// StallTimeout/4 (so a changed setting or new child is noticed soon) and at
// least MinStallCheck. With stall detection off it returns IdleStallCheck.
func (s *Supervisor) NextStallCheck() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.StallTimeout <= 0 {
		return IdleStallCheck
	}
	wait := s.cfg.StallTimeout / 4
	if _, remaining, ok := s.stallRemainingLocked(); ok {
		wait = min(wait, remaining)
	}
	return max(wait, MinStallCheck)
}

// Status returns the current status.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Stats returns a snapshot of the counters.
func (s *Supervisor) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.resetIfSteadyLocked()
	st := Stats{
		Status:              s.status,
		Generation:          s.gen,
		Restarts:            s.restarts,
		PerReason:           maps.Clone(s.perReason),
		LastError:           s.lastError,
		TotalOutage:         s.totalOutage,
		Outages:             s.outages,
		ConsecutiveAttempts: s.backoff.Attempts(),
	}
	last := s.prevLastBuf
	if g := s.cur.Load(); g != nil {
		last = max(last, g.lastBuf.Load())
	}
	if last != noTime {
		st.HaveBuffer = true
		st.SinceLastBuffer = max(time.Duration(now-last), 0)
	}
	if s.inOutage {
		st.CurrentOutage = time.Duration(now - s.outageStart)
		st.TotalOutage += st.CurrentOutage
		st.Attempts = s.outageAttempts
	}
	return st
}
