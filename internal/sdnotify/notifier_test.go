package sdnotify

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/manualclock"
)

func newClock() *manualclock.Clock { return manualclock.New(time.Unix(1_700_000_000, 0)) }

// testPushes tracks one source's downstream pushes on the test's clock and
// hands them to the notifier through WatchPushes, as reconnectbin's push
// trackers do.
type testPushes struct {
	clock    *manualclock.Clock
	mu       sync.Mutex
	start    time.Time
	inFlight bool
}

func trackPushes(s *Source, clock *manualclock.Clock) *testPushes {
	p := &testPushes{clock: clock}
	s.WatchPushes(p.age)
	return p
}

// started marks a push in flight from now on (one at a time, as from one
// streaming thread: a new one restarts the clock).
func (p *testPushes) started() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start, p.inFlight = p.clock.Now(), true
}

// finished marks the push returned.
func (p *testPushes) finished() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inFlight = false
}

func (p *testPushes) age() (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.inFlight {
		return 0, false
	}
	return p.clock.Now().Sub(p.start), true
}

// fakeTicker is fired by the test; the channel is unbuffered, so a send
// returns only once the notifier's loop took the tick, and the loop handles
// the tick completely before it looks at anything else.
type fakeTicker struct {
	c      chan time.Time
	period time.Duration
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }
func (t *fakeTicker) Stop()               {}

func (t *fakeTicker) fire(tb testing.TB) {
	tb.Helper()
	select {
	case t.c <- time.Time{}:
	case <-time.After(10 * time.Second):
		tb.Fatal("notifier loop did not take the tick")
	}
}

const testWatchdog = 30 * time.Second

func TestCheck(t *testing.T) {
	type env struct {
		n      *Notifier
		clock  *manualclock.Clock
		a, b   *Source
		pa, pb *testPushes // a's and b's pushes
	}
	cases := []struct {
		name     string
		sources  int
		steps    func(e env)
		progress bool
		reason   string
	}{
		{name: "no source registered", sources: 0, reason: "no source registered"},
		{name: "buffers since the last ping", sources: 1, progress: true,
			steps: func(e env) { e.a.DataOut() }},
		{name: "nothing since the last ping", sources: 1, reason: "no data and no retry since the last check: cam-a"},
		{name: "retrying counts as progress", sources: 1, progress: true,
			steps: func(e env) { e.a.Retrying(true) }},
		{name: "a retry that already ended still counts", sources: 1, progress: true,
			steps: func(e env) { e.a.Retrying(true); e.a.Retrying(false) }},
		{name: "old buffers do not count after a ping", sources: 1, reason: "cam-a",
			steps: func(e env) { e.a.DataOut(); ping(e.n) }},
		{name: "old retry does not count after a ping once over", sources: 1, reason: "cam-a",
			steps: func(e env) { e.a.Retrying(true); e.a.Retrying(false); ping(e.n) }},
		{name: "a retry still running after a ping counts", sources: 1, progress: true,
			steps: func(e env) { e.a.Retrying(true); ping(e.n) }},
		{name: "every source must progress", sources: 2, reason: "cam-b",
			steps: func(e env) { e.a.DataOut() }},
		{name: "one flowing and one retrying is progress", sources: 2, progress: true,
			steps: func(e env) { e.a.DataOut(); e.b.Retrying(true) }},
		{name: "a closed source no longer counts", sources: 2, progress: true,
			steps: func(e env) { e.a.DataOut(); e.b.Close() }},
		{name: "short push in flight is fine", sources: 1, progress: true,
			steps: func(e env) { e.a.DataOut(); e.pa.started(); e.clock.Advance(testWatchdog / 2) }},
		{name: "push blocked past the limit vetoes even while retrying", sources: 1, reason: "cam-a: downstream push blocked for 15.001s",
			steps: func(e env) {
				e.a.DataOut()
				e.pa.started()
				e.clock.Advance(testWatchdog/2 + time.Millisecond)
				e.a.Retrying(true)
			}},
		{name: "blocked push in another source vetoes", sources: 2, reason: "cam-b: downstream push blocked",
			steps: func(e env) {
				e.a.DataOut()
				e.b.DataOut()
				e.pb.started()
				e.clock.Advance(time.Minute)
				e.a.DataOut()
			}},
		{name: "push finished after a long block: progress again", sources: 1, progress: true,
			steps: func(e env) {
				e.pa.started()
				e.clock.Advance(time.Minute)
				e.pa.finished()
				e.a.DataOut()
			}},
		{name: "a push tracked by the caller, blocked past the limit, vetoes even while retrying", sources: 1,
			reason: "cam-a: downstream push blocked for 20s",
			steps: func(e env) {
				e.a.DataOut()
				e.a.WatchPushes(func() (time.Duration, bool) { return 20 * time.Second, true })
				e.a.Retrying(true)
			}},
		{name: "a push tracked by the caller under the limit is fine", sources: 1, progress: true,
			steps: func(e env) {
				e.a.DataOut()
				e.a.WatchPushes(func() (time.Duration, bool) { return 14 * time.Second, true })
			}},
		{name: "no push in flight per the caller's tracker", sources: 1, progress: true,
			steps: func(e env) {
				e.a.DataOut()
				e.a.WatchPushes(func() (time.Duration, bool) { return time.Hour, false })
			}},
		{name: "a vetoing health withholds pings while data flows", sources: 1,
			reason: "vetoed by kvssink0: upload wedged",
			steps: func(e env) {
				e.a.DataOut()
				e.n.RegisterHealth("kvssink0").Set("upload wedged", true)
			}},
		{name: "a health vetoes even with no source registered", sources: 0, reason: "vetoed by kvssink0",
			steps: func(e env) { e.n.RegisterHealth("kvssink0").Set("wedged", true) }},
		{name: "a health with only a status does not veto", sources: 1, progress: true,
			steps: func(e env) {
				e.a.DataOut()
				e.n.RegisterHealth("kvssink0").Set("upload stalled", false)
			}},
		{name: "a health whose veto was lifted no longer vetoes", sources: 1, progress: true,
			steps: func(e env) {
				e.a.DataOut()
				h := e.n.RegisterHealth("kvssink0")
				h.Set("wedged", true)
				h.Set("", false)
			}},
		{name: "a closed health no longer vetoes", sources: 1, progress: true,
			steps: func(e env) {
				e.a.DataOut()
				h := e.n.RegisterHealth("kvssink0")
				h.Set("wedged", true)
				h.Close()
			}},
		{name: "a health does not count as a source", sources: 0, reason: "no source registered",
			steps: func(e env) { e.n.RegisterHealth("kvssink0").Set("ok", false) }},
		{name: "pushes restart the block clock", sources: 1, progress: true,
			steps: func(e env) {
				for i := 0; i < 10; i++ {
					e.pa.started()
					e.clock.Advance(10 * time.Second)
					e.a.DataOut()
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			n := New(Options{Send: func(string) error { return nil }, WatchdogInterval: testWatchdog})
			e := env{n: n, clock: clock}
			if tc.sources >= 1 {
				e.a = n.Register("cam-a")
				e.pa = trackPushes(e.a, clock)
			}
			if tc.sources >= 2 {
				e.b = n.Register("cam-b")
				e.pb = trackPushes(e.b, clock)
			}
			if tc.steps != nil {
				tc.steps(e)
			}
			v := n.check()
			if v.progress != tc.progress {
				t.Fatalf("progress = %v (%s), want %v", v.progress, v.reason, tc.progress)
			}
			if !tc.progress && !strings.Contains(v.reason, tc.reason) {
				t.Errorf("reason %q does not mention %q", v.reason, tc.reason)
			}
		})
	}
}

// ping commits the current counters as if a ping had just been sent.
func ping(n *Notifier) {
	v := n.check()
	if v.progress {
		n.commit(v)
	}
}

// recorder is a Send that hands every datagram to the test.
type recorder chan string

func (r recorder) send(s string) error { r <- s; return nil }

func (r recorder) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-r:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no notification sent")
		return ""
	}
}

func newLoopNotifier(t *testing.T, watchdog time.Duration) (*Notifier, recorder, *fakeTicker) {
	t.Helper()
	rec := make(recorder, 16)
	ticker := &fakeTicker{c: make(chan time.Time)}
	n := New(Options{
		Send:             rec.send,
		WatchdogInterval: watchdog,
		NewTicker:        func(d time.Duration) Ticker { ticker.period = d; return ticker },
	})
	n.Start()
	t.Cleanup(n.Close)
	return n, rec, ticker
}

func TestReadyOnceAfterFirstDataAndStatus(t *testing.T) {
	n, rec, ticker := newLoopNotifier(t, testWatchdog)
	a := n.Register("cam-a")
	a.SetStatus(FormatStatus("starting", 0, 0))
	if got := rec.next(t); got != "STATUS=status=starting restarts=0 last-outage=none" {
		t.Fatalf("got %q, want the status line", got)
	}
	a.DataOut()
	a.DataOut()
	if got := rec.next(t); got != "READY=1" {
		t.Fatalf("got %q, want READY=1", got)
	}
	a.SetStatus(FormatStatus("running", 3, 2100*time.Millisecond))
	if got := rec.next(t); got != "STATUS=status=running restarts=3 last-outage=2.1s" {
		t.Fatalf("got %q", got)
	}
	b := n.Register("cam-b")
	b.SetStatus("retrying:\nconnection refused")
	if got := rec.next(t); got != "STATUS=cam-a: status=running restarts=3 last-outage=2.1s; cam-b: retrying: connection refused" {
		t.Fatalf("got %q", got)
	}
	b.DataOut()
	ticker.fire(t)
	if got := rec.next(t); got != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1 and no second READY=1", got)
	}
	if ticker.period != testWatchdog/2 {
		t.Errorf("tick period %v, want half the watchdog interval", ticker.period)
	}
}

func TestHealthStatusJoinsTheStatusLineAndVetoStopsPings(t *testing.T) {
	n, rec, ticker := newLoopNotifier(t, testWatchdog)
	a := n.Register("cam-a")
	a.SetStatus("running")
	if got := rec.next(t); got != "STATUS=running" {
		t.Fatalf("got %q", got)
	}
	a.DataOut()
	if got := rec.next(t); got != "READY=1" {
		t.Fatalf("got %q, want READY=1", got)
	}
	h := n.RegisterHealth("kvssink0")
	h.Set("upload wedged:\nno PERSISTED ack for 2m0s", true)
	if got := rec.next(t); got != "STATUS=running; kvssink0: upload wedged: no PERSISTED ack for 2m0s" {
		t.Fatalf("got %q", got)
	}
	a.DataOut()
	ticker.fire(t)
	// No ping: the next notification is the status change below.
	h.Set("upload resumed", false)
	if got := rec.next(t); got != "STATUS=running; kvssink0: upload resumed" {
		t.Fatalf("got %q, want no WATCHDOG=1 while the health vetoed", got)
	}
	a.DataOut()
	ticker.fire(t)
	if got := rec.next(t); got != "WATCHDOG=1" {
		t.Fatalf("got %q, want WATCHDOG=1 once the veto was lifted", got)
	}
}

func TestBeforeReadyRetryingExtendsTheStartTimeout(t *testing.T) {
	n, rec, ticker := newLoopNotifier(t, testWatchdog)
	a := n.Register("cam-a")
	a.Retrying(true)
	ticker.fire(t)
	if got := rec.next(t); got != "EXTEND_TIMEOUT_USEC=30000000" {
		t.Fatalf("got %q, want EXTEND_TIMEOUT_USEC while retrying before READY", got)
	}
	// A retry that started and ended between two ticks still counts.
	a.Retrying(false)
	a.Retrying(true)
	a.Retrying(false)
	ticker.fire(t)
	if got := rec.next(t); !strings.HasPrefix(got, "EXTEND_TIMEOUT_USEC=") {
		t.Fatalf("got %q, want EXTEND_TIMEOUT_USEC for a retry since the last one", got)
	}
	// Not retrying and nothing came out: no extension, the start timeout
	// may expire. A status change is the marker that the tick passed.
	ticker.fire(t)
	a.SetStatus("marker")
	if got := rec.next(t); got != "STATUS=marker" {
		t.Fatalf("got %q, want no notification from a tick without progress", got)
	}
}

func TestNoWatchdogMeansNoTicker(t *testing.T) {
	rec := make(recorder, 4)
	n := New(Options{Send: rec.send, NewTicker: func(time.Duration) Ticker {
		t.Error("ticker created without a watchdog interval")
		return &fakeTicker{c: make(chan time.Time)}
	}})
	n.Start()
	t.Cleanup(n.Close)
	n.Register("cam").DataOut()
	if got := rec.next(t); got != "READY=1" {
		t.Fatalf("got %q", got)
	}
}

func TestInertNotifierCostsNothing(t *testing.T) {
	n := New(Options{})
	n.Start()
	s := n.Register("cam")
	s.DataOut()
	s.SetStatus("x")
	s.WatchPushes(func() (time.Duration, bool) { return time.Hour, true })
	n.Close()
	if n.Enabled() {
		t.Fatal("notifier without Send reports enabled")
	}
}

func TestFormatStatus(t *testing.T) {
	cases := []struct {
		state    string
		restarts uint64
		outage   time.Duration
		want     string
	}{
		{"running", 0, 0, "status=running restarts=0 last-outage=none"},
		{"running", 3, 2149 * time.Millisecond, "status=running restarts=3 last-outage=2.1s"},
		{"retrying", 12, 95 * time.Second, "status=retrying restarts=12 last-outage=1m35s"},
		{"running", 1, 42 * time.Millisecond, "status=running restarts=1 last-outage=42ms"},
	}
	for _, tc := range cases {
		if got := FormatStatus(tc.state, tc.restarts, tc.outage); got != tc.want {
			t.Errorf("FormatStatus(%q, %d, %v) = %q, want %q", tc.state, tc.restarts, tc.outage, got, tc.want)
		}
	}
}
