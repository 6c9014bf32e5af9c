// Package sdnotify tells systemd how the relay is doing: READY=1 once the
// first buffer left a reconnectbin, STATUS= lines, and WATCHDOG=1 keep-alives
// that are sent ONLY while the pipeline demonstrably makes progress. A relay
// whose downstream (kvssink) is wedged therefore stops pinging and systemd
// restarts the process, which no amount of in-process retrying could fix.
//
// One Notifier serves the whole process (Default); every reconnectbin
// registers a Source and reports through it. The rules, all evaluated at each
// watchdog tick (half of WATCHDOG_USEC):
//
//   - READY=1 is sent once, as soon as ANY source produced data.
//   - WATCHDOG=1 is sent only if EVERY registered source progressed since
//     the last ping: buffers left it (real or fallback frames), or its
//     supervisor reported a retry since the last ping or is retrying now. One dead
//     camera in a multi-camera pipeline is progress as long as its bin keeps
//     retrying; a bin that neither delivers nor retries is a wedge.
//   - No WATCHDOG=1 at all while any source has a downstream push that has
//     been blocked longer than BlockLimit: retrying upstream cannot unblock
//     a sink that no longer accepts data.
//   - No sources registered means no evidence of progress: no ping.
//   - No WATCHDOG=1 at all while any registered Health vetoes: a check
//     outside the data path (kvscredprovider's upload health: frames go into
//     kvssink but nothing is persisted) decided the process must restart.
//     A Health's status text joins the STATUS= line, vetoing or not.
//   - Before READY, when the watchdog is on and every source is retrying, the
//     notifier sends EXTEND_TIMEOUT_USEC instead, so a camera that is down
//     when the unit starts keeps the unit "activating" (retrying inside the
//     process) rather than failing its start timeout again and again into
//     systemd's start limit.
package sdnotify

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/ticker"
)

// Ticker is a tick source; tests pass their own.
type Ticker = ticker.Ticker

// Options configures a Notifier.
type Options struct {
	// Send delivers one notification ("READY=1", "WATCHDOG=1", ...). Nil
	// makes the notifier inert: sources still count, nothing is sent and no
	// goroutine runs (not started by systemd, or NOTIFY_SOCKET unset).
	Send func(state string) error
	// WatchdogInterval is systemd's WATCHDOG_USEC. Zero: no watchdog pings.
	WatchdogInterval time.Duration
	// BlockLimit is how long one downstream push may stay blocked before it
	// vetoes pings. Default: half of WatchdogInterval, so a wedged sink gets
	// the process killed within 1.5 watchdog intervals of blocking.
	BlockLimit time.Duration
	// NewTicker makes the watchdog tick. Default time.NewTicker.
	NewTicker func(time.Duration) Ticker
	// OnError receives send errors (the socket went away, ...). Default: dropped.
	OnError func(error)
}

// Notifier speaks sd_notify for the whole process. Create it with New or
// FromEnvironment, or use Default.
type Notifier struct {
	opts Options

	readyWanted atomic.Bool   // some source produced data
	wake        chan struct{} // READY or STATUS pending; capacity 1

	mu        sync.Mutex
	sources   map[*Source]struct{}
	healths   map[*Health]struct{}
	atPing    map[*Source]counts // counters at the last ping
	readySent bool
	lastStat  string

	startOnce sync.Once
	stopOnce  sync.Once
	stop      chan struct{}
	done      chan struct{}
}

// New returns a Notifier. Call Start to run it (Default does so itself).
func New(opts Options) *Notifier {
	if opts.NewTicker == nil {
		opts.NewTicker = ticker.New
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	if opts.WatchdogInterval < 0 {
		opts.WatchdogInterval = 0
	}
	if opts.BlockLimit <= 0 {
		opts.BlockLimit = opts.WatchdogInterval / 2
	}
	return &Notifier{
		opts:    opts,
		wake:    make(chan struct{}, 1),
		sources: map[*Source]struct{}{},
		healths: map[*Health]struct{}{},
		atPing:  map[*Source]counts{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Enabled reports whether the notifier sends anything at all.
func (n *Notifier) Enabled() bool { return n.opts.Send != nil }

// WatchdogInterval is the interval systemd expects pings within (0: none).
func (n *Notifier) WatchdogInterval() time.Duration { return n.opts.WatchdogInterval }

// Start runs the notifier's goroutine; later calls do nothing. An inert
// notifier (no Send) starts nothing.
func (n *Notifier) Start() {
	n.startOnce.Do(func() {
		if n.opts.Send == nil {
			close(n.done)
			return
		}
		go n.run()
	})
}

// Close stops the goroutine and waits for it. The process-wide notifier is
// never closed; tests close theirs.
func (n *Notifier) Close() {
	n.Start() // so done is always closed eventually
	n.stopOnce.Do(func() { close(n.stop) })
	<-n.done
}

// Stopping tells systemd the process is shutting down on purpose.
func (n *Notifier) Stopping() {
	if n.opts.Send != nil {
		if err := n.opts.Send("STOPPING=1"); err != nil {
			n.opts.OnError(fmt.Errorf("sd_notify STOPPING=1: %w", err))
		}
	}
}

// Register adds a source (one reconnectbin). Close it when the element stops
// (READY->NULL) so a removed bin no longer blocks the watchdog.
func (n *Notifier) Register(name string) *Source {
	s := &Source{n: n, name: name}
	n.mu.Lock()
	n.sources[s] = struct{}{}
	n.mu.Unlock()
	return s
}

func (n *Notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *Notifier) run() {
	defer close(n.done)
	var tick <-chan time.Time
	if n.opts.WatchdogInterval > 0 {
		t := n.opts.NewTicker(n.opts.WatchdogInterval / 2)
		defer t.Stop()
		tick = t.C()
	}
	for {
		select {
		case <-n.stop:
			return
		case <-n.wake:
			n.sendPending()
		case <-tick:
			n.sendPending()
			n.tick()
		}
	}
}

// sendPending sends READY=1 and a changed STATUS= in one datagram.
func (n *Notifier) sendPending() {
	n.mu.Lock()
	var parts []string
	sendReady := n.readyWanted.Load() && !n.readySent
	if sendReady {
		parts = append(parts, "READY=1")
	}
	status := n.statusLocked()
	sendStatus := status != "" && status != n.lastStat
	if sendStatus {
		parts = append(parts, "STATUS="+status)
	}
	n.mu.Unlock()
	if len(parts) == 0 {
		return
	}
	if err := n.opts.Send(strings.Join(parts, "\n")); err != nil {
		n.opts.OnError(fmt.Errorf("sd_notify %s: %w", strings.Join(parts, ", "), err))
		return // retried at the next wake or tick
	}
	n.mu.Lock()
	if sendReady {
		n.readySent = true
	}
	if sendStatus {
		n.lastStat = status
	}
	n.mu.Unlock()
}

// statusLocked joins the sources' status lines (the line itself for one
// source, "name: line; name: line" for several), then the healths' texts
// ("name: text"), which say why the process may be about to restart.
func (n *Notifier) statusLocked() string {
	base := n.sourcesStatusLocked()
	var extra []string
	for h := range n.healths {
		if st := h.status.Load(); st != nil && *st != "" {
			extra = append(extra, h.name+": "+*st)
		}
	}
	if len(extra) == 0 {
		return base
	}
	sort.Strings(extra)
	if base != "" {
		extra = append([]string{base}, extra...)
	}
	return strings.Join(extra, "; ")
}

func (n *Notifier) sourcesStatusLocked() string {
	var named []string
	var only string
	for s := range n.sources {
		st := s.status.Load()
		if st == nil {
			continue
		}
		only = *st
		named = append(named, s.name+": "+*st)
	}
	switch len(named) {
	case 0:
		return ""
	case 1:
		if len(n.sources) == 1 {
			return only
		}
	}
	sort.Strings(named)
	return strings.Join(named, "; ")
}

// verdict is the outcome of one watchdog check.
type verdict struct {
	progress bool   // every source progressed (or retried) since the last check
	reason   string // why not, for tests and debugging
	// seen holds the counters the decision was based on; they become the
	// next baselines once the ping is sent, so buffers arriving meanwhile
	// count towards the next window instead of being lost.
	seen map[*Source]counts
}

type counts struct{ buffers, retries uint64 }

// check decides whether the pipeline made progress since the counters in
// base (a source missing from base started from zero), with pushes blocked
// longer than blockLimit (0: never) vetoing. Callers hold n.mu.
func (n *Notifier) checkLocked(base map[*Source]counts, blockLimit time.Duration) verdict {
	var vetoes []string
	for h := range n.healths {
		if h.veto.Load() {
			why := ""
			if st := h.status.Load(); st != nil {
				why = ": " + *st
			}
			vetoes = append(vetoes, h.name+why)
		}
	}
	if len(vetoes) > 0 {
		sort.Strings(vetoes)
		return verdict{reason: "vetoed by " + strings.Join(vetoes, "; ")}
	}
	if len(n.sources) == 0 {
		return verdict{reason: "no source registered"}
	}
	limit := int64(blockLimit)
	seen := make(map[*Source]counts, len(n.sources))
	var stuck []string
	for s := range n.sources {
		if blocked := s.blockedFor(); limit > 0 && int64(blocked) > limit {
			return verdict{reason: fmt.Sprintf("%s: downstream push blocked for %v", s.name, blocked)}
		}
		c := counts{buffers: s.buffers.Load(), retries: s.retries.Load()}
		seen[s] = c
		if c == base[s] && !s.retrying.Load() {
			stuck = append(stuck, s.name)
		}
	}
	if len(stuck) > 0 {
		sort.Strings(stuck)
		return verdict{reason: "no data and no retry since the last check: " + strings.Join(stuck, ", ")}
	}
	return verdict{progress: true, seen: seen}
}

func (n *Notifier) check() verdict {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.checkLocked(n.atPing, n.opts.BlockLimit)
}

// commit starts a new "since the last ping" window from what check saw;
// sources closed meanwhile drop out of the baselines.
func (n *Notifier) commit(v verdict) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.atPing = v.seen
}

func (n *Notifier) tick() {
	v := n.check()
	if !v.progress {
		return
	}
	n.mu.Lock()
	ready := n.readySent
	n.mu.Unlock()
	msg := "WATCHDOG=1"
	if !ready {
		// Not started yet but retrying: ask for more start time.
		msg = "EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(n.opts.WatchdogInterval.Microseconds(), 10)
	}
	if err := n.opts.Send(msg); err != nil {
		n.opts.OnError(fmt.Errorf("sd_notify %s: %w", msg, err))
		return
	}
	n.commit(v)
}

// Source is one reconnectbin's line to the notifier. DataOut is called per
// buffer and costs a few atomic operations.
type Source struct {
	n    *Notifier
	name string

	buffers  atomic.Uint64
	retrying atomic.Bool
	retries  atomic.Uint64 // times Retrying(true) was reported
	// pushAge, when set, reports the oldest downstream push in flight as
	// tracked by the caller (see WatchPushes).
	pushAge atomic.Pointer[func() (time.Duration, bool)]
	status  atomic.Pointer[string]
	closed  atomic.Bool
}

// DataOut records one buffer leaving the bin (real or fallback). The first
// one in the process makes the notifier send READY=1.
func (s *Source) DataOut() {
	s.buffers.Add(1)
	if !s.n.readyWanted.Load() && s.n.readyWanted.CompareAndSwap(false, true) {
		s.n.poke()
	}
}

// Retrying reports the supervisor's state: true from a failure until the
// source delivers again (backoff waits and rebuilds included). Call it on
// transitions; each true counts as one retry.
func (s *Source) Retrying(active bool) {
	if active {
		s.retries.Add(1)
	}
	s.retrying.Store(active)
}

// WatchPushes hands the notifier a function reporting how long the oldest
// downstream push still in flight has been blocked (false: none in flight).
// The caller tracks its pushes itself, from several threads at once (a
// source's streaming thread and a fallback goroutine): a buffer probe alone
// cannot, since probes run before a push and nothing runs after it, so a
// quiet camera would look like a blocked push. The watchdog check calls it
// once per tick.
func (s *Source) WatchPushes(age func() (time.Duration, bool)) {
	if age == nil {
		s.pushAge.Store(nil)
		return
	}
	s.pushAge.Store(&age)
}

// blockedFor returns how long the longest-running push in flight has been
// going on, or 0.
func (s *Source) blockedFor() time.Duration {
	if fn := s.pushAge.Load(); fn != nil {
		if age, ok := (*fn)(); ok {
			return age
		}
	}
	return 0
}

// SetStatus sets this source's STATUS= text (see FormatStatus). Newlines are
// replaced: the notify protocol is one assignment per line.
func (s *Source) SetStatus(status string) {
	status = strings.ReplaceAll(strings.ReplaceAll(status, "\r", " "), "\n", " ")
	s.status.Store(&status)
	s.n.poke()
}

// Close unregisters the source.
func (s *Source) Close() {
	if s.closed.Swap(true) {
		return
	}
	s.n.mu.Lock()
	delete(s.n.sources, s)
	s.n.mu.Unlock()
	s.n.poke()
}

// FormatStatus renders the usual status line, e.g.
// "status=running restarts=3 last-outage=2.1s". lastOutage 0 means none yet.
func FormatStatus(state string, restarts uint64, lastOutage time.Duration) string {
	out := "none"
	if lastOutage > 0 {
		out = lastOutage.Round(100 * time.Millisecond).String()
		if lastOutage < 100*time.Millisecond {
			out = lastOutage.Round(time.Millisecond).String()
		}
	}
	return fmt.Sprintf("status=%s restarts=%d last-outage=%s", state, restarts, out)
}

// Health is a check outside the data path that can withhold WATCHDOG=1 and
// add to the STATUS= line: kvscredprovider registers one per kvssink whose
// upload it watches. It never counts as a source: a process with healths
// but no source still sends no pings.
type Health struct {
	n      *Notifier
	name   string
	veto   atomic.Bool
	status atomic.Pointer[string]
	closed atomic.Bool
}

// RegisterHealth adds a health check named name (a kvssink's name). Close
// it when the check ends, so that a removed element no longer vetoes.
func (n *Notifier) RegisterHealth(name string) *Health {
	h := &Health{n: n, name: name}
	n.mu.Lock()
	n.healths[h] = struct{}{}
	n.mu.Unlock()
	return h
}

// Set reports the check's state: status joins the STATUS= line ("" for
// none; newlines are replaced), and veto withholds every WATCHDOG=1 until
// Set(..., false) or Close.
func (h *Health) Set(status string, veto bool) {
	status = strings.ReplaceAll(strings.ReplaceAll(status, "\r", " "), "\n", " ")
	h.status.Store(&status)
	h.veto.Store(veto)
	h.n.poke()
}

// Close unregisters the check.
func (h *Health) Close() {
	if h.closed.Swap(true) {
		return
	}
	h.n.mu.Lock()
	delete(h.n.healths, h)
	h.n.mu.Unlock()
	h.n.poke()
}

// Observer applies the WATCHDOG=1 rule for a reader other than systemd (the
// /healthz endpoint): the same sources, healths and vetoes, over windows of
// its own, so it works without NOTIFY_SOCKET and never shortens the
// watchdog's windows.
type Observer struct {
	n          *Notifier
	blockLimit time.Duration

	mu   sync.Mutex
	base map[*Source]counts // counters at the last healthy check
}

// Observe returns an Observer whose windows run from one Check to the next.
// A downstream push blocked longer than blockLimit makes a check unhealthy
// (0: blocked pushes are not judged).
func (n *Notifier) Observe(blockLimit time.Duration) *Observer {
	if blockLimit < 0 {
		blockLimit = 0
	}
	return &Observer{n: n, blockLimit: blockLimit, base: map[*Source]counts{}}
}

// Check reports whether systemd would get WATCHDOG=1 for the window since
// the last healthy check, and why not. A healthy check starts a new window;
// an unhealthy one leaves the window open, as a withheld ping does.
func (o *Observer) Check() (healthy bool, reason string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n.mu.Lock()
	v := o.n.checkLocked(o.base, o.blockLimit)
	o.n.mu.Unlock()
	if !v.progress {
		return false, v.reason
	}
	o.base = v.seen
	return true, ""
}
