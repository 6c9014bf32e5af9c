package supervisor

import (
	"errors"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/fielderr"
	"github.com/kvsrelay/kvsrelay/internal/manualclock"
)

const ms = time.Millisecond

func newClock() *manualclock.Clock {
	return manualclock.New(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
}

// env is one supervisor under test with its fake clock.
type env struct {
	sup *Supervisor
	clk *manualclock.Clock
}

// step is one action of a scripted scenario, with its expectations.
type step struct {
	name string
	run  func(t *testing.T, e *env)
}

func adv(d time.Duration) step {
	return step{"advance " + d.String(), func(t *testing.T, e *env) { e.clk.Advance(d) }}
}

func begin(wantGen uint64, wantStatus Status) step {
	return step{"begin", func(t *testing.T, e *env) {
		t.Helper()
		if g := e.sup.Begin(); g != wantGen {
			t.Fatalf("Begin() = %d, want %d", g, wantGen)
		}
		if s := e.sup.Status(); s != wantStatus {
			t.Fatalf("status after Begin = %q, want %q", s, wantStatus)
		}
	}}
}

// buf sends one buffer from gen and expects no recovery.
func buf(gen uint64) step {
	return step{"buffer", func(t *testing.T, e *env) {
		t.Helper()
		if rec := e.sup.Buffer(gen); rec != nil {
			t.Fatalf("Buffer(%d) = %+v, want nil", gen, *rec)
		}
	}}
}

// bufEvery sends buffers from gen every interval for total, advancing the clock.
func bufEvery(gen uint64, interval, total time.Duration) step {
	return step{"stream", func(t *testing.T, e *env) {
		t.Helper()
		for el := time.Duration(0); el < total; el += interval {
			e.clk.Advance(interval)
			if rec := e.sup.Buffer(gen); rec != nil {
				t.Fatalf("Buffer(%d) while streaming = %+v, want nil", gen, *rec)
			}
		}
	}}
}

func bufRecovers(gen uint64, want Recovery) step {
	return step{"buffer recovers", func(t *testing.T, e *env) {
		t.Helper()
		rec := e.sup.Buffer(gen)
		if rec == nil {
			t.Fatalf("Buffer(%d) = nil, want recovery %+v", gen, want)
		}
		if *rec != want {
			t.Fatalf("Buffer(%d) = %+v, want %+v", gen, *rec, want)
		}
		if s := e.sup.Status(); s != StatusRunning {
			t.Fatalf("status after recovery = %q, want running", s)
		}
	}}
}

func fail(gen uint64, reason Reason, text string, want Decision) step {
	return step{"fail " + string(reason), func(t *testing.T, e *env) {
		t.Helper()
		d, ok := e.sup.Fail(gen, reason, text)
		if !ok {
			t.Fatalf("Fail(%d, %s) ignored, want %+v", gen, reason, want)
		}
		if d != want {
			t.Fatalf("Fail(%d, %s) = %+v, want %+v", gen, reason, d, want)
		}
	}}
}

func failIgnored(gen uint64, reason Reason) step {
	return step{"fail ignored " + string(reason), func(t *testing.T, e *env) {
		t.Helper()
		before := e.sup.Stats()
		if d, ok := e.sup.Fail(gen, reason, "late"); ok {
			t.Fatalf("Fail(%d, %s) accepted with %+v, want ignored", gen, reason, d)
		}
		after := e.sup.Stats()
		if after.Restarts != before.Restarts || after.LastError != before.LastError || after.Status != before.Status {
			t.Fatalf("ignored Fail changed stats: before %+v after %+v", before, after)
		}
	}}
}

func stalled(wantGen uint64) step {
	return step{"stalled", func(t *testing.T, e *env) {
		t.Helper()
		g, ok := e.sup.CheckStall()
		if !ok || g != wantGen {
			t.Fatalf("CheckStall() = (%d, %v), want (%d, true)", g, ok, wantGen)
		}
	}}
}

func notStalled() step {
	return step{"not stalled", func(t *testing.T, e *env) {
		t.Helper()
		if g, ok := e.sup.CheckStall(); ok {
			t.Fatalf("CheckStall() = (%d, true), want not stalled", g)
		}
	}}
}

func touch(gen uint64) step {
	return step{"touch", func(t *testing.T, e *env) { e.sup.Touch(gen) }}
}

func status(want Status) step {
	return step{"status", func(t *testing.T, e *env) {
		t.Helper()
		if s := e.sup.Status(); s != want {
			t.Fatalf("Status() = %q, want %q", s, want)
		}
	}}
}

// stats checks the snapshot; PerReason is compared only when want has one.
func stats(want Stats) step {
	return step{"stats", func(t *testing.T, e *env) {
		t.Helper()
		got := e.sup.Stats()
		if want.PerReason != nil {
			for _, r := range []Reason{ReasonError, ReasonEOS, ReasonStall, ReasonStartFailed} {
				if got.PerReason[r] != want.PerReason[r] {
					t.Errorf("PerReason[%s] = %d, want %d", r, got.PerReason[r], want.PerReason[r])
				}
			}
		}
		got.PerReason, want.PerReason = nil, nil
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Stats() =\n  %+v\nwant\n  %+v", got, want)
		}
	}}
}

func nextCheck(want time.Duration) step {
	return step{"next stall check", func(t *testing.T, e *env) {
		t.Helper()
		if got := e.sup.NextStallCheck(); got != want {
			t.Fatalf("NextStallCheck() = %v, want %v", got, want)
		}
	}}
}

// baseConfig retries forever with the default delays and no stall detection.
func baseConfig() Config {
	return Config{RetryDelay: 250 * ms, MaxRetryDelay: 2 * time.Second, MaxRetries: -1, SteadyAfter: 10 * time.Second}
}

func withMaxRetries(n int) Config {
	c := baseConfig()
	c.MaxRetries = n
	return c
}

func withStall(d time.Duration) Config {
	c := baseConfig()
	c.StallTimeout = d
	return c
}

// retry is a non-GiveUp decision.
func retry(attempt int, delay time.Duration, reason Reason, text string) Decision {
	return Decision{Attempt: attempt, Delay: delay, Reason: reason, Error: text}
}

func TestScenarios(t *testing.T) {
	const refused = "Could not open resource for reading: connection refused"
	tests := []struct {
		name  string
		cfg   Config
		rand  func() float64 // nil: always 1, so delays are the exact base delays
		steps []step
	}{
		{
			name: "first child starts, runs, and is not a recovery",
			cfg:  baseConfig(),
			steps: []step{
				status(StatusStopped),
				begin(1, StatusStarting),
				buf(1),
				status(StatusRunning),
				buf(1),
			},
		},
		{
			name: "stale generations are ignored",
			cfg:  baseConfig(),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				fail(1, ReasonError, "boom", retry(1, 250*ms, ReasonError, "boom")),
				begin(2, StatusRetrying),
				buf(1), // in-flight buffer of the old child does not count as recovery
				status(StatusRetrying),
				failIgnored(1, ReasonEOS),
				failIgnored(3, ReasonError), // a generation that was never begun
				failIgnored(0, ReasonError),
				adv(time.Second),
				bufRecovers(2, Recovery{Gen: 2, Outage: time.Second, Attempts: 1, Reason: ReasonError, Error: "boom"}),
				failIgnored(1, ReasonError),
				status(StatusRunning),
			},
		},
		{
			name: "error then EOS from the same child gives one decision",
			cfg:  baseConfig(),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				fail(1, ReasonError, "streaming stopped, reason error (-5)", retry(1, 250*ms, ReasonError, "streaming stopped, reason error (-5)")),
				failIgnored(1, ReasonEOS),
				failIgnored(1, ReasonStall),
				buf(1), // a queued buffer after the failure changes nothing
				status(StatusRetrying),
				stats(Stats{
					Status: StatusRetrying, Generation: 1, Restarts: 1,
					PerReason:  map[Reason]uint64{ReasonError: 1},
					LastError:  "streaming stopped, reason error (-5)",
					HaveBuffer: true, Outages: 1, Attempts: 1, ConsecutiveAttempts: 1,
				}),
			},
		},
		{
			name: "backoff grows and caps at max-retry-delay while the source stays down",
			cfg:  baseConfig(),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				fail(1, ReasonEOS, "", retry(1, 250*ms, ReasonEOS, "source ended the stream (EOS)")),
				begin(2, StatusRetrying),
				fail(2, ReasonStartFailed, refused, retry(2, 500*ms, ReasonStartFailed, refused)),
				begin(3, StatusRetrying),
				fail(3, ReasonStartFailed, refused, retry(3, time.Second, ReasonStartFailed, refused)),
				begin(4, StatusRetrying),
				fail(4, ReasonStartFailed, refused, retry(4, 2*time.Second, ReasonStartFailed, refused)),
				begin(5, StatusRetrying),
				fail(5, ReasonStartFailed, refused, retry(5, 2*time.Second, ReasonStartFailed, refused)),
			},
		},
		{
			name: "jitter draws come from the injected rand",
			cfg:  baseConfig(),
			rand: func() float64 { return 0 },
			steps: []step{
				begin(1, StatusStarting),
				fail(1, ReasonStartFailed, "x", retry(1, 200*ms, ReasonStartFailed, "x")),
				begin(2, StatusRetrying),
				fail(2, ReasonStartFailed, "x", retry(2, 400*ms, ReasonStartFailed, "x")),
			},
		},
		{
			name: "retry-delay 0 restarts immediately",
			cfg:  Config{MaxRetries: -1},
			steps: []step{
				begin(1, StatusStarting), buf(1),
				fail(1, ReasonError, "x", retry(1, 0, ReasonError, "x")),
				begin(2, StatusRetrying),
				fail(2, ReasonError, "x", retry(2, 0, ReasonError, "x")),
			},
		},
		{
			name: "steady streaming resets the backoff",
			cfg:  baseConfig(),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				fail(1, ReasonError, "a", retry(1, 250*ms, ReasonError, "a")),
				begin(2, StatusRetrying),
				fail(2, ReasonError, "b", retry(2, 500*ms, ReasonError, "b")),
				begin(3, StatusRetrying),
				bufRecovers(3, Recovery{Gen: 3, Attempts: 2, Reason: ReasonError, Error: "a"}),
				bufEvery(3, 100*ms, 10*time.Second), // 10s from first to last buffer
				fail(3, ReasonEOS, "c", retry(1, 250*ms, ReasonEOS, "c")),
			},
		},
		{
			name: "a flapping source (one buffer then failure) keeps growing the backoff",
			cfg:  baseConfig(),
			steps: []step{
				begin(1, StatusStarting), buf(1), bufEvery(1, time.Second, time.Minute),
				fail(1, ReasonError, "a", retry(1, 250*ms, ReasonError, "a")),
				begin(2, StatusRetrying),
				bufRecovers(2, Recovery{Gen: 2, Attempts: 1, Reason: ReasonError, Error: "a"}),
				adv(5 * time.Second),
				fail(2, ReasonError, "b", retry(2, 500*ms, ReasonError, "b")),
				begin(3, StatusRetrying),
				bufRecovers(3, Recovery{Gen: 3, Attempts: 1, Reason: ReasonError, Error: "b"}),
				bufEvery(3, time.Second, 9*time.Second), // 9s < steady-after
				fail(3, ReasonError, "c", retry(3, time.Second, ReasonError, "c")),
				begin(4, StatusRetrying),
				bufRecovers(4, Recovery{Gen: 4, Attempts: 1, Reason: ReasonError, Error: "c"}),
				adv(time.Hour), // long silence is not streaming
				fail(4, ReasonStall, "d", retry(4, 2*time.Second, ReasonStall, "d")),
			},
		},
		{
			name: "max-retries 3 restarts three times then gives up with the last error",
			cfg:  withMaxRetries(3),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				fail(1, ReasonError, "first", retry(1, 250*ms, ReasonError, "first")),
				begin(2, StatusRetrying),
				fail(2, ReasonStartFailed, "second", retry(2, 500*ms, ReasonStartFailed, "second")),
				begin(3, StatusRetrying),
				fail(3, ReasonStartFailed, "third", retry(3, time.Second, ReasonStartFailed, "third")),
				begin(4, StatusRetrying),
				fail(4, ReasonStartFailed, refused, Decision{Attempt: 3, GiveUp: true, Reason: ReasonStartFailed, Error: refused}),
				status(StatusFailed),
				failIgnored(4, ReasonEOS),
				buf(4), // a failed child's late buffer does not revive it
				status(StatusFailed),
				notStalled(),
				stats(Stats{
					Status: StatusFailed, Generation: 4, Restarts: 3,
					PerReason: map[Reason]uint64{ReasonError: 1, ReasonStartFailed: 3},
					LastError: refused, HaveBuffer: true, Outages: 1, Attempts: 3, ConsecutiveAttempts: 3,
				}),
			},
		},
		{
			name: "max-retries 0 gives up on the first failure",
			cfg:  withMaxRetries(0),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				fail(1, ReasonEOS, "", Decision{GiveUp: true, Reason: ReasonEOS, Error: "source ended the stream (EOS)"}),
				status(StatusFailed),
			},
		},
		{
			name: "max-retries counts from the last steady streaming",
			cfg:  withMaxRetries(1),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				fail(1, ReasonError, "a", retry(1, 250*ms, ReasonError, "a")),
				begin(2, StatusRetrying),
				bufRecovers(2, Recovery{Gen: 2, Attempts: 1, Reason: ReasonError, Error: "a"}),
				bufEvery(2, time.Second, 10*time.Second),
				fail(2, ReasonError, "b", retry(1, 250*ms, ReasonError, "b")),
				begin(3, StatusRetrying),
				bufRecovers(3, Recovery{Gen: 3, Attempts: 1, Reason: ReasonError, Error: "b"}), // flap: not steady
				fail(3, ReasonError, "c", Decision{Attempt: 1, GiveUp: true, Reason: ReasonError, Error: "c"}),
			},
		},
		{
			name: "Begin after giving up is a manual restart with a fresh attempt count",
			cfg:  withMaxRetries(1),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				fail(1, ReasonError, "a", retry(1, 250*ms, ReasonError, "a")),
				begin(2, StatusRetrying),
				fail(2, ReasonError, "b", Decision{Attempt: 1, GiveUp: true, Reason: ReasonError, Error: "b"}),
				begin(3, StatusRetrying),
				fail(3, ReasonError, "c", retry(1, 250*ms, ReasonError, "c")),
			},
		},
		{
			name: "running child silent for stall-timeout stalls",
			cfg:  withStall(5 * time.Second),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				adv(4900 * ms), notStalled(),
				buf(1), // data resets the countdown
				adv(4900 * ms), notStalled(),
				adv(100 * ms), stalled(1), stalled(1),
				fail(1, ReasonStall, "no data for 5s", retry(1, 250*ms, ReasonStall, "no data for 5s")),
				notStalled(), // no live child while waiting for the retry
				adv(time.Hour), notStalled(),
			},
		},
		{
			name: "a starting child that never sends data stalls",
			cfg:  withStall(5 * time.Second),
			steps: []step{
				adv(time.Hour), notStalled(), // nothing begun
				begin(1, StatusStarting),
				adv(4999 * ms), notStalled(),
				adv(ms), stalled(1),
				fail(1, ReasonStall, "", retry(1, 250*ms, ReasonStall, "source sent no data within stall-timeout")),
				adv(250 * ms),
				begin(2, StatusRetrying), // the countdown starts at the new child's start
				adv(4999 * ms), notStalled(),
				adv(ms), stalled(2),
			},
		},
		{
			name: "buffers from a stale child do not keep its replacement alive",
			cfg:  withStall(5 * time.Second),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				begin(2, StatusStarting), buf(2),
				adv(3 * time.Second), buf(1), buf(1),
				adv(2 * time.Second), stalled(2),
			},
		},
		{
			name: "a child whose data is held downstream is touched, not stalled",
			cfg:  withStall(5 * time.Second),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				adv(5 * time.Second), stalled(1),
				touch(1), notStalled(), status(StatusRunning), // nothing else changes
				adv(4999 * ms), notStalled(),
				adv(ms), stalled(1), // the countdown restarted at the touch
				touch(7), stalled(1), // a stale generation's touch is ignored
				fail(1, ReasonStall, "x", retry(1, 250*ms, ReasonStall, "x")),
				touch(1), notStalled(), status(StatusRetrying), // a failed one stays failed
			},
		},
		{
			name: "stall-timeout 0 disables stall detection",
			cfg:  withStall(0),
			steps: []step{
				begin(1, StatusStarting), adv(24 * time.Hour), notStalled(),
				buf(1), adv(24 * time.Hour), notStalled(),
				nextCheck(IdleStallCheck),
			},
		},
		{
			name: "next stall check waits until the deadline, between 10ms and stall-timeout/4",
			cfg:  withStall(4 * time.Second),
			steps: []step{
				nextCheck(time.Second), // no child
				begin(1, StatusStarting), nextCheck(time.Second),
				adv(3500 * ms), nextCheck(500 * ms),
				adv(495 * ms), nextCheck(10 * ms),
				adv(time.Minute), nextCheck(10 * ms), // overdue
				buf(1), nextCheck(time.Second),
			},
		},
		{
			name: "recovery reports the whole outage and its attempts",
			cfg:  baseConfig(),
			steps: []step{
				begin(1, StatusStarting), buf(1), adv(3 * time.Second),
				fail(1, ReasonError, "reset by peer", retry(1, 250*ms, ReasonError, "reset by peer")),
				adv(250 * ms), begin(2, StatusRetrying), adv(time.Second),
				fail(2, ReasonStartFailed, refused, retry(2, 500*ms, ReasonStartFailed, refused)),
				adv(500 * ms), begin(3, StatusRetrying), adv(700 * ms),
				bufRecovers(3, Recovery{Gen: 3, Outage: 2450 * ms, Attempts: 2, Reason: ReasonError, Error: "reset by peer"}),
				buf(3), // only once per generation
				adv(time.Second),
				stats(Stats{
					Status: StatusRunning, Generation: 3, Restarts: 2,
					PerReason: map[Reason]uint64{ReasonError: 1, ReasonStartFailed: 1},
					LastError: refused, SinceLastBuffer: time.Second, HaveBuffer: true,
					TotalOutage: 2450 * ms, Outages: 1, ConsecutiveAttempts: 2,
				}),
			},
		},
		{
			name: "a first child that fails before any data starts an outage",
			cfg:  baseConfig(),
			steps: []step{
				begin(1, StatusStarting),
				fail(1, ReasonStartFailed, refused, retry(1, 250*ms, ReasonStartFailed, refused)),
				adv(250 * ms), begin(2, StatusRetrying), adv(50 * ms),
				bufRecovers(2, Recovery{Gen: 2, Outage: 300 * ms, Attempts: 1, Reason: ReasonStartFailed, Error: refused}),
			},
		},
		{
			name: "stats accounting across two outages",
			cfg:  baseConfig(),
			steps: []step{
				stats(Stats{Status: StatusStopped, PerReason: map[Reason]uint64{}}),
				begin(1, StatusStarting),
				stats(Stats{Status: StatusStarting, Generation: 1}),
				adv(time.Second), buf(1), adv(2 * time.Second),
				stats(Stats{Status: StatusRunning, Generation: 1, SinceLastBuffer: 2 * time.Second, HaveBuffer: true}),
				fail(1, ReasonEOS, "", retry(1, 250*ms, ReasonEOS, "source ended the stream (EOS)")),
				adv(time.Second),
				stats(Stats{
					Status: StatusRetrying, Generation: 1, Restarts: 1, LastError: "source ended the stream (EOS)",
					SinceLastBuffer: 3 * time.Second, HaveBuffer: true,
					CurrentOutage: time.Second, TotalOutage: time.Second, Outages: 1, Attempts: 1, ConsecutiveAttempts: 1,
				}),
				begin(2, StatusRetrying),
				stats(Stats{ // the old child's last buffer still counts for SinceLastBuffer
					Status: StatusRetrying, Generation: 2, Restarts: 1, LastError: "source ended the stream (EOS)",
					SinceLastBuffer: 3 * time.Second, HaveBuffer: true,
					CurrentOutage: time.Second, TotalOutage: time.Second, Outages: 1, Attempts: 1, ConsecutiveAttempts: 1,
				}),
				adv(time.Second),
				bufRecovers(2, Recovery{Gen: 2, Outage: 2 * time.Second, Attempts: 1, Reason: ReasonEOS, Error: "source ended the stream (EOS)"}),
				bufEvery(2, time.Second, 20*time.Second),
				stats(Stats{ // 20s of streaming: the consecutive count has been reset
					Status: StatusRunning, Generation: 2, Restarts: 1, LastError: "source ended the stream (EOS)",
					HaveBuffer: true, TotalOutage: 2 * time.Second, Outages: 1,
				}),
				fail(2, ReasonError, "e2", retry(1, 250*ms, ReasonError, "e2")),
				adv(500 * ms),
				stats(Stats{
					Status: StatusRetrying, Generation: 2, Restarts: 2,
					PerReason: map[Reason]uint64{ReasonEOS: 1, ReasonError: 1}, LastError: "e2",
					SinceLastBuffer: 500 * ms, HaveBuffer: true,
					CurrentOutage: 500 * ms, TotalOutage: 2500 * ms, Outages: 2, Attempts: 1, ConsecutiveAttempts: 1,
				}),
			},
		},
		{
			name: "replacing a child without a failure is not an outage",
			cfg:  baseConfig(),
			steps: []step{
				begin(1, StatusStarting), buf(1),
				begin(2, StatusStarting),
				buf(2),
				buf(1),
				status(StatusRunning),
				failIgnored(1, ReasonEOS),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			r := tc.rand
			if r == nil {
				r = func() float64 { return 1 }
			}
			sup, err := New(tc.cfg, clk, r)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			e := &env{sup: sup, clk: clk}
			for i, s := range tc.steps {
				t.Logf("step %d: %s", i, s.name)
				s.run(t, e)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		wantField string
	}{
		{"MaxRetryDelay below RetryDelay", Config{RetryDelay: 2 * time.Second, MaxRetryDelay: time.Second, MaxRetries: -1}, "MaxRetryDelay"},
		{"negative RetryDelay", Config{RetryDelay: -1, MaxRetries: -1}, "RetryDelay"},
		{"MaxRetries below -1", Config{MaxRetries: -2}, "MaxRetries"},
		{"negative StallTimeout", Config{StallTimeout: -time.Second, MaxRetries: -1}, "StallTimeout"},
		{"negative SteadyAfter", Config{SteadyAfter: -time.Second, MaxRetries: -1}, "SteadyAfter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sup, err := New(tc.cfg, newClock(), nil)
			if err == nil {
				t.Fatalf("New(%+v) succeeded, want error naming %s", tc.cfg, tc.wantField)
			}
			if sup != nil {
				t.Fatalf("New returned a supervisor with an error")
			}
			var pe *fielderr.Error
			if !errors.As(err, &pe) || pe.Field != tc.wantField {
				t.Fatalf("New error = %v, want a *fielderr.Error for %s", err, tc.wantField)
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Fatalf("error %q does not name %s", err, tc.wantField)
			}
		})
	}
	if _, err := New(DefaultConfig(), nil, nil); err != nil {
		t.Fatalf("New(DefaultConfig()) = %v", err)
	}
}

func TestSteadyAfterZeroUsesDefault(t *testing.T) {
	clk := newClock()
	cfg := baseConfig()
	cfg.SteadyAfter = 0
	sup, err := New(cfg, clk, func() float64 { return 1 })
	if err != nil {
		t.Fatal(err)
	}
	g := sup.Begin()
	sup.Buffer(g)
	sup.Fail(g, ReasonError, "a")
	g = sup.Begin()
	sup.Buffer(g)
	clk.Advance(9 * time.Second)
	sup.Buffer(g)
	if d, _ := sup.Fail(g, ReasonError, "b"); d.Attempt != 2 {
		t.Fatalf("after 9s of streaming with default steady-after, attempt = %d, want 2", d.Attempt)
	}
	g = sup.Begin()
	sup.Buffer(g)
	clk.Advance(DefaultSteadyAfter)
	sup.Buffer(g)
	if d, _ := sup.Fail(g, ReasonError, "c"); d.Attempt != 1 {
		t.Fatalf("after %v of streaming, attempt = %d, want 1", DefaultSteadyAfter, d.Attempt)
	}
}

// TestConcurrentBuffersAndFailures drives generations from one goroutine
// while several streaming threads send buffers to the current and stale
// generations. Every failed generation must be followed by exactly one
// recovery, reported for the generation that recovered.
func TestConcurrentBuffersAndFailures(t *testing.T) {
	clk := newClock()
	cfg := withStall(time.Second)
	sup, err := New(cfg, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Enough generations and threads to interleave every call; the
	// deadline only catches a hang (spinning goroutines under -race on a
	// loaded 2-core machine take far longer than the logic does).
	const generations = 100
	const threads = 4

	var (
		curGen   sync.Map // "gen" -> uint64, the generation threads should feed
		recs     = make(chan *Recovery, generations*threads)
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		loadGen  = func() uint64 { v, _ := curGen.Load("gen"); g, _ := v.(uint64); return g }
		deadline = time.After(2 * time.Minute)
	)
	for i := 0; i < threads; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				g := loadGen()
				if n%5 == i%5 && g > 1 {
					g-- // a stale buffer from the child being torn down
				}
				if rec := sup.Buffer(g); rec != nil {
					recs <- rec
				}
				runtime.Gosched() // let the generation loop run between buffers
			}
		}(i)
	}
	// Readers of the state while it changes.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			sup.Stats()
			sup.CheckStall()
			sup.NextStallCheck()
			clk.Advance(ms)
			runtime.Gosched()
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})

	seen := make(map[uint64]int)
	for i := 1; i <= generations; i++ {
		g := sup.Begin()
		curGen.Store("gen", g)
		if i > 1 {
			select { // wait until a thread's buffer recovered this generation
			case rec := <-recs:
				seen[rec.Gen]++
				if rec.Gen != g {
					t.Fatalf("recovery for generation %d while %d is current", rec.Gen, g)
				}
				if rec.Attempts != 1 {
					t.Fatalf("recovery %+v: want 1 attempt", *rec)
				}
			case <-deadline:
				t.Fatalf("generation %d never recovered", g)
			}
		} else {
			for sup.Status() != StatusRunning {
				select {
				case <-deadline:
					t.Fatalf("first generation never ran")
				default:
					runtime.Gosched()
				}
			}
		}
		// Error and EOS race each other for the same generation.
		var accepted sync.WaitGroup
		var mu sync.Mutex
		oks := 0
		for _, r := range []Reason{ReasonError, ReasonEOS, ReasonStall} {
			accepted.Add(1)
			go func(r Reason) {
				defer accepted.Done()
				if _, ok := sup.Fail(g, r, "x"); ok {
					mu.Lock()
					oks++
					mu.Unlock()
				}
			}(r)
		}
		accepted.Wait()
		if oks != 1 {
			t.Fatalf("generation %d: %d failures accepted, want 1", g, oks)
		}
	}
	close(stop)
	wg.Wait()
	close(recs)
	for rec := range recs {
		seen[rec.Gen]++
	}
	for g, n := range seen {
		if n != 1 {
			t.Errorf("generation %d recovered %d times, want once", g, n)
		}
	}
	if len(seen) != generations-1 {
		t.Errorf("%d generations recovered, want %d", len(seen), generations-1)
	}
	st := sup.Stats()
	if st.Restarts != generations || st.Outages != generations {
		t.Errorf("stats %+v: want %d restarts and outages", st, generations)
	}
}

func TestBufferFastPathDoesNotAllocate(t *testing.T) {
	for _, tc := range []struct {
		name string
		clk  Clock
	}{
		{"fake clock", newClock()},
		{"wall clock", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sup, err := New(withStall(time.Second), tc.clk, nil)
			if err != nil {
				t.Fatal(err)
			}
			g := sup.Begin()
			sup.Buffer(g)
			if allocs := testing.AllocsPerRun(1000, func() { sup.Buffer(g) }); allocs != 0 {
				t.Fatalf("Buffer fast path allocates %v times per call", allocs)
			}
		})
	}
}

func BenchmarkBuffer(b *testing.B) {
	sup, err := New(withStall(time.Second), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	g := sup.Begin()
	sup.Buffer(g)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sup.Buffer(g)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sup.Buffer(g)
			}
		})
	})
}
