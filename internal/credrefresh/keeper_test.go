package credrefresh

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var errTransient = errors.New("connection refused")
var errPermanent = errors.New("no IAM role attached")

func creds(id string, exp time.Time) credfile.Credentials {
	return credfile.Credentials{AccessKeyID: id, SecretAccessKey: "SECRET" + id, SessionToken: "TOKEN" + id, Expires: exp}
}

// harness drives a Keeper on a fake clock, with a scripted source and the
// real credfile.Write into a temporary folder.
type harness struct {
	t      *testing.T
	clock  *fakeClock
	path   string
	keeper *Keeper

	mu      sync.Mutex
	events  []Event
	fetches []time.Time
	source  func(call int, now time.Time) (credfile.Credentials, error)
}

func newHarness(t *testing.T, opts Options, source func(call int, now time.Time) (credfile.Credentials, error)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(t0), path: filepath.Join(t.TempDir(), "run", "credential"), source: source}
	opts.Clock = h.clock
	opts.Jitter = func() float64 { return 0 } // delays are exactly half the nominal backoff
	opts.OnEvent = func(e Event) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.events = append(h.events, e)
	}
	if opts.Transient == nil {
		opts.Transient = func(err error) bool { return !errors.Is(err, errPermanent) }
	}
	fetch := func(ctx context.Context) (credfile.Credentials, error) {
		h.mu.Lock()
		h.fetches = append(h.fetches, h.clock.Now())
		n := len(h.fetches)
		h.mu.Unlock()
		return h.source(n, h.clock.Now())
	}
	write := func(c credfile.Credentials, now time.Time) error { return credfile.Write(h.path, c, now) }
	k, err := New(fetch, write, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.keeper = k
	return h
}

// runUntil runs the keeper, stepping the fake clock from wake-up to wake-up
// until the next wake-up would be after end.
func (h *harness) runUntil(end time.Time) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.keeper.Run(ctx) }()
	for {
		at := h.clock.nextWake(h.t)
		if at.After(end) {
			break
		}
		h.clock.advanceTo(at)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			h.t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return after cancel")
	}
}

func (h *harness) fetchOffsets() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []time.Duration
	for _, f := range h.fetches {
		out = append(out, f.Sub(t0))
	}
	return out
}

func (h *harness) eventsOf(kind EventKind) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Event
	for _, e := range h.events {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) fileHolds() credfile.Credentials {
	h.t.Helper()
	data, err := os.ReadFile(h.path)
	if err != nil {
		h.t.Fatalf("reading credential file: %v", err)
	}
	c, err := credfile.Decode(data)
	if err != nil {
		h.t.Fatalf("credential file does not parse: %v", err)
	}
	return c
}

func assertOffsets(t *testing.T, got, want []time.Duration) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fetches at %v, want %v", got, want)
	}
}

// rotating issues a new key on every call, valid for lifetime.
func rotating(lifetime time.Duration) func(int, time.Time) (credfile.Credentials, error) {
	return func(n int, now time.Time) (credfile.Credentials, error) {
		return creds(fmt.Sprintf("ASIAKEY%04d", n), now.Add(lifetime)), nil
	}
}

func TestSchedule(t *testing.T) {
	tests := []struct {
		name          string
		lifetime      time.Duration
		refreshBefore time.Duration
		until         time.Duration
		want          []time.Duration
	}{
		{"one hour credentials refresh 15 min before expiry", time.Hour, 0, 2*time.Hour + 30*time.Minute,
			[]time.Duration{0, 45 * time.Minute, 90 * time.Minute, 135 * time.Minute}},
		{"custom refresh-before", time.Hour, 30 * time.Minute, 90 * time.Minute,
			[]time.Duration{0, 30 * time.Minute, 60 * time.Minute, 90 * time.Minute}},
		{"shorter than refresh-before: half the lifetime", 10 * time.Minute, 0, 20 * time.Minute,
			[]time.Duration{0, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 20 * time.Minute}},
		{"very short: never later than expiry minus 2 min", 3 * time.Minute, 0, 3 * time.Minute,
			[]time.Duration{0, time.Minute, 2 * time.Minute, 3 * time.Minute}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{RefreshBefore: tt.refreshBefore}, rotating(tt.lifetime))
			h.runUntil(t0.Add(tt.until))
			assertOffsets(t, h.fetchOffsets(), tt.want)
			if got := len(h.eventsOf(EventRefreshed)); got != len(tt.want) {
				t.Fatalf("%d refreshed events, want %d", got, len(tt.want))
			}
			if n := len(h.eventsOf(EventRefreshFailed)) + len(h.eventsOf(EventExpired)); n != 0 {
				t.Fatalf("%d failure events on a healthy source", n)
			}
			last := fmt.Sprintf("ASIAKEY%04d", len(tt.want))
			if got := h.fileHolds(); got.AccessKeyID != last {
				t.Fatalf("file holds %s, want the newest key %s", got, credfile.MaskKeyID(last))
			}
			if h.keeper.Status() != StatusValid {
				t.Fatalf("status %s, want valid", h.keeper.Status())
			}
		})
	}
}

func TestTransientFailuresThenSuccess(t *testing.T) {
	// First fetch fine; at the refresh point (45 min) three failures, then
	// success. Backoff with jitter pinned: 0.5 s, 1 s, 2 s.
	h := newHarness(t, Options{}, func(n int, now time.Time) (credfile.Credentials, error) {
		if n >= 2 && n <= 4 {
			return credfile.Credentials{}, errTransient
		}
		return creds(fmt.Sprintf("ASIAKEY%04d", n), now.Add(time.Hour)), nil
	})
	if err := h.keeper.Prime(context.Background()); err != nil {
		t.Fatalf("Prime: %v", err)
	}
	h.runUntil(t0.Add(50 * time.Minute))

	r := 45 * time.Minute
	assertOffsets(t, h.fetchOffsets(), []time.Duration{0, r, r + 500*time.Millisecond, r + 1500*time.Millisecond, r + 3500*time.Millisecond})
	failed := h.eventsOf(EventRefreshFailed)
	if len(failed) != 3 {
		t.Fatalf("%d refresh-failed events, want 3", len(failed))
	}
	for i, e := range failed {
		if e.Attempt != i+1 || !errors.Is(e.Err, errTransient) || e.KeyID != "****0001" {
			t.Fatalf("event %d = %+v", i, e)
		}
		if want := 15*time.Minute - (failed[i].At.Sub(t0) - r); e.TimeLeft != want {
			t.Fatalf("event %d TimeLeft %s, want %s", i, e.TimeLeft, want)
		}
	}
	if got := h.fileHolds().AccessKeyID; got != "ASIAKEY0005" {
		t.Fatalf("file holds %s after recovery", credfile.MaskKeyID(got))
	}
	if h.keeper.Status() != StatusValid || h.keeper.LastError() != nil {
		t.Fatalf("status %s, last error %v; want valid, nil", h.keeper.Status(), h.keeper.LastError())
	}
	if len(h.eventsOf(EventExpired)) != 0 {
		t.Fatal("expired event although credentials never expired")
	}
}

func TestStatusDuringFailures(t *testing.T) {
	h := newHarness(t, Options{}, func(n int, now time.Time) (credfile.Credentials, error) {
		if n == 1 {
			return creds("ASIAKEY0001", now.Add(time.Hour)), nil
		}
		return credfile.Credentials{}, errTransient
	})
	if s := h.keeper.Status(); s != StatusIdle {
		t.Fatalf("status before Prime %s, want idle", s)
	}
	if err := h.keeper.Prime(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := h.keeper.Status(); s != StatusValid {
		t.Fatalf("status after Prime %s, want valid", s)
	}
	if got := h.keeper.Expiration(); !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Expiration %s", got)
	}
	h.runUntil(t0.Add(50 * time.Minute))
	if s := h.keeper.Status(); s != StatusDegraded {
		t.Fatalf("status after failed refreshes %s, want degraded", s)
	}
}

func TestFailuresUntilExpiry(t *testing.T) {
	var healthy sync.Map // flips the source back on
	h := newHarness(t, Options{}, func(n int, now time.Time) (credfile.Credentials, error) {
		if _, ok := healthy.Load("yes"); n == 1 || ok {
			return creds(fmt.Sprintf("ASIAKEY%04d", n), now.Add(time.Hour)), nil
		}
		return credfile.Credentials{}, errTransient
	})
	if err := h.keeper.Prime(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := h.fileHolds()
	h.runUntil(t0.Add(90 * time.Minute))

	expired := h.eventsOf(EventExpired)
	if len(expired) != 1 {
		t.Fatalf("%d expired events, want exactly 1", len(expired))
	}
	if !expired[0].At.Equal(t0.Add(time.Hour)) || !errors.Is(expired[0].Err, errTransient) || expired[0].KeyID != "****0001" {
		t.Fatalf("expired event %+v, want one at expiry with the last error", expired[0])
	}
	if s := h.keeper.Status(); s != StatusExpired {
		t.Fatalf("status %s, want expired", s)
	}
	// Retries continue after expiry, at the capped pace (1 min, jitter 0 -> 30 s).
	var after int
	for _, f := range h.fetchOffsets() {
		if f > time.Hour {
			after++
		}
	}
	if after < int(30*time.Minute/DefaultRetryMax) {
		t.Fatalf("only %d attempts in the 30 min after expiry", after)
	}
	// The file was never touched: still the first credentials.
	if got := h.fileHolds(); !got.SameAs(first) {
		t.Fatalf("file changed to %s during the outage", got)
	}

	// The source recovers: next attempt writes, status valid again.
	healthy.Store("yes", true)
	h.runUntil(t0.Add(92 * time.Minute))
	if s := h.keeper.Status(); s != StatusValid {
		t.Fatalf("status after recovery %s, want valid", s)
	}
	if got := h.fileHolds(); got.SameAs(first) {
		t.Fatal("file not replaced after recovery")
	}
	if len(h.eventsOf(EventExpired)) != 1 {
		t.Fatal("expired event repeated")
	}
}

func TestUnchangedCredentials(t *testing.T) {
	// The source keeps serving the first key until 50 min (IMDS rotates
	// late, but within its promise of 5 min before expiry), then a new one.
	exp1 := t0.Add(time.Hour)
	h := newHarness(t, Options{}, func(n int, now time.Time) (credfile.Credentials, error) {
		if now.Before(t0.Add(50 * time.Minute)) {
			return creds("ASIAKEY0001", exp1), nil
		}
		return creds("ASIAKEY0002", now.Add(time.Hour)), nil
	})
	h.runUntil(t0.Add(57 * time.Minute))

	unchanged := h.eventsOf(EventUnchanged)
	if len(unchanged) == 0 {
		t.Fatal("no unchanged events while the source served the same key")
	}
	if n := len(h.eventsOf(EventRefreshFailed)); n != 0 {
		t.Fatalf("%d refresh-failed events for an unchanged answer, want 0", n)
	}
	offs := h.fetchOffsets()
	// Asked at 45 min, then once more when IMDS must have rotated (5 min
	// before expiry, plus a few seconds): no polling in between.
	if len(offs) != 3 || offs[1] != 45*time.Minute || offs[2] != 55*time.Minute+5*time.Second {
		t.Fatalf("fetches at %v: want start, 45m, then 55m05s only", offs)
	}
	refreshed := h.eventsOf(EventRefreshed)
	last := refreshed[len(refreshed)-1]
	if last.KeyID != "****0002" || last.At != t0.Add(55*time.Minute+5*time.Second) {
		t.Fatalf("new key picked up by %+v", last)
	}
	if got := h.fileHolds().AccessKeyID; got != "ASIAKEY0002" {
		t.Fatalf("file holds %s", credfile.MaskKeyID(got))
	}
}

func TestUnchangedPastThePublishDeadlineRetries(t *testing.T) {
	// A source that rotates later than IMDS promises (at 57 min for a key
	// expiring at 60) is retried with backoff after 55 min, not given up on.
	exp1 := t0.Add(time.Hour)
	h := newHarness(t, Options{}, func(n int, now time.Time) (credfile.Credentials, error) {
		if now.Before(t0.Add(57 * time.Minute)) {
			return creds("ASIAKEY0001", exp1), nil
		}
		return creds("ASIAKEY0002", now.Add(time.Hour)), nil
	})
	h.runUntil(t0.Add(58 * time.Minute))
	if got := h.fileHolds().AccessKeyID; got != "ASIAKEY0002" {
		t.Fatalf("file holds %s by 58 min", credfile.MaskKeyID(got))
	}
	if n := len(h.eventsOf(EventRefreshFailed)); n != 0 {
		t.Fatalf("%d refresh-failed events for unchanged answers", n)
	}
}

func TestNeverWritesExpiredCredentials(t *testing.T) {
	tests := []struct {
		name string
		bad  func(now time.Time) credfile.Credentials
	}{
		{"already expired", func(now time.Time) credfile.Credentials { return creds("ASIABAD00001", now.Add(-time.Minute)) }},
		{"one minute left", func(now time.Time) credfile.Credentials { return creds("ASIABAD00002", now.Add(time.Minute)) }},
		{"empty secret", func(now time.Time) credfile.Credentials {
			c := creds("ASIABAD00003", now.Add(time.Hour))
			c.SecretAccessKey = ""
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{}, func(n int, now time.Time) (credfile.Credentials, error) {
				if n == 1 {
					return creds("ASIAGOOD0001", now.Add(time.Hour)), nil
				}
				return tt.bad(now), nil
			})
			if err := h.keeper.Prime(context.Background()); err != nil {
				t.Fatal(err)
			}
			h.runUntil(t0.Add(70 * time.Minute))
			if got := h.fileHolds().AccessKeyID; got != "ASIAGOOD0001" {
				t.Fatalf("file holds %s, want the last good key", credfile.MaskKeyID(got))
			}
			if len(h.eventsOf(EventRefreshFailed)) == 0 || len(h.eventsOf(EventExpired)) != 1 {
				t.Fatal("bad credentials were not reported as refresh failures ending in expiry")
			}
		})
	}
}

func TestWriteFailureNamesFolder(t *testing.T) {
	h := newHarness(t, Options{}, rotating(time.Hour))
	notAFolder := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notAFolder, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.path = filepath.Join(notAFolder, "credential")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := h.keeper.Prime(ctx)
	if err == nil || !strings.Contains(err.Error(), notAFolder) {
		t.Fatalf("Prime error %v, want one naming %s", err, notAFolder)
	}
	if s := h.keeper.Status(); s != StatusFetching && s != StatusIdle {
		t.Fatalf("status %s after a failed first write", s)
	}
	if !h.keeper.Expiration().IsZero() {
		t.Fatal("expiration set although nothing was written")
	}
}

func TestPrime(t *testing.T) {
	t.Run("permanent error returns at once", func(t *testing.T) {
		h := newHarness(t, Options{}, func(int, time.Time) (credfile.Credentials, error) {
			return credfile.Credentials{}, errPermanent
		})
		err := h.keeper.Prime(context.Background())
		if !errors.Is(err, errPermanent) {
			t.Fatalf("Prime = %v, want the permanent error", err)
		}
		if n := len(h.fetchOffsets()); n != 1 {
			t.Fatalf("%d fetches, want 1", n)
		}
		if ev := h.eventsOf(EventRefreshFailed); len(ev) != 1 || ev[0].Attempt != 1 {
			t.Fatalf("events %+v, want one refresh-failed", ev)
		}
	})
	t.Run("transient errors are retried", func(t *testing.T) {
		h := newHarness(t, Options{}, func(n int, now time.Time) (credfile.Credentials, error) {
			if n < 3 {
				return credfile.Credentials{}, errTransient
			}
			return creds("ASIAKEY0003", now.Add(time.Hour)), nil
		})
		done := make(chan error, 1)
		go func() { done <- h.keeper.Prime(context.Background()) }()
		for i := 0; i < 2; i++ {
			h.clock.advanceTo(h.clock.nextWake(t))
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Prime: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Prime did not return")
		}
		if got := h.fileHolds().AccessKeyID; got != "ASIAKEY0003" {
			t.Fatalf("file holds %s", credfile.MaskKeyID(got))
		}
	})
	t.Run("context ends the retries", func(t *testing.T) {
		h := newHarness(t, Options{}, func(int, time.Time) (credfile.Credentials, error) {
			return credfile.Credentials{}, errTransient
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.keeper.Prime(ctx) }()
		h.clock.nextWake(t)
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), errTransient.Error()) {
				t.Fatalf("Prime = %v, want cancellation carrying the last error", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Prime did not return after cancel")
		}
	})
}

func TestPermanentErrorsRetryAtMaxPace(t *testing.T) {
	h := newHarness(t, Options{}, func(n int, now time.Time) (credfile.Credentials, error) {
		if n == 1 {
			return creds("ASIAKEY0001", now.Add(time.Hour)), nil
		}
		return credfile.Credentials{}, errPermanent
	})
	if err := h.keeper.Prime(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.runUntil(t0.Add(48 * time.Minute))
	r := 45 * time.Minute
	// A configuration error is asked about once per RetryMax, not on the
	// fast backoff.
	assertOffsets(t, h.fetchOffsets(), []time.Duration{0, r, r + time.Minute, r + 2*time.Minute, r + 3*time.Minute})
}

func TestNewValidatesOptions(t *testing.T) {
	f := func(context.Context) (credfile.Credentials, error) { return credfile.Credentials{}, nil }
	w := func(credfile.Credentials, time.Time) error { return nil }
	for name, tc := range map[string]struct {
		opts  Options
		field string // the Options field the error names
	}{
		"refresh-before too short": {Options{RefreshBefore: time.Minute}, "RefreshBefore"},
		"retry max below initial":  {Options{RetryInitial: time.Minute, RetryMax: time.Second}, "RetryMax"},
	} {
		_, err := New(f, w, tc.opts)
		var fe *fielderr.Error
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%s: New(%+v) = %v, want an error naming %s", name, tc.opts, err, tc.field)
		}
	}
	if _, err := New(nil, w, Options{}); err == nil {
		t.Error("New accepted a nil fetch function")
	}
}

func TestEventStringsHideSecrets(t *testing.T) {
	var got []string
	h := newHarness(t, Options{}, rotating(time.Hour))
	h.keeper.opts.OnEvent = func(e Event) { got = append(got, e.String()) }
	if err := h.keeper.Prime(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[0], "****0001") || strings.Contains(got[0], "SECRET") || strings.Contains(got[0], "TOKEN") || strings.Contains(got[0], "ASIAKEY0001") {
		t.Fatalf("event strings %q", got)
	}
}

// Unchanged answers (a source rotating late) are not failures: a real
// outage after them starts at attempt 1, the attempt callers announce.
func TestUnchangedAnswersDoNotCountAsFailures(t *testing.T) {
	exp1 := t0.Add(time.Hour)
	h := newHarness(t, Options{}, func(n int, now time.Time) (credfile.Credentials, error) {
		if now.Before(t0.Add(55*time.Minute + 6*time.Second)) {
			return creds("ASIAKEY0001", exp1), nil
		}
		return credfile.Credentials{}, errTransient
	})
	h.runUntil(t0.Add(56 * time.Minute))
	if n := len(h.eventsOf(EventUnchanged)); n < 3 {
		t.Fatalf("%d unchanged answers, want the 45 min one and at least two past the publish point", n)
	}
	failed := h.eventsOf(EventRefreshFailed)
	if len(failed) == 0 {
		t.Fatal("no refresh-failed event once the source broke")
	}
	for i, e := range failed {
		if e.Attempt != i+1 {
			t.Fatalf("refresh-failed event %d has attempt %d, want %d (unchanged answers must not count)", i, e.Attempt, i+1)
		}
	}
	// The backoff of the failures starts afresh too: 0.5 s after the first.
	if d := failed[1].At.Sub(failed[0].At); d != 500*time.Millisecond {
		t.Fatalf("second failure %s after the first, want 500ms", d)
	}
}

// Credentials kept from before a restart are written at once, without a
// fetch; the source is asked right after, in Run.
func TestSeed(t *testing.T) {
	seed := creds("ASIASEED0001", t0.Add(40*time.Minute))
	t.Run("written without asking, refreshed at once", func(t *testing.T) {
		h := newHarness(t, Options{Seed: seed}, func(n int, now time.Time) (credfile.Credentials, error) {
			return credfile.Credentials{}, errTransient
		})
		if err := h.keeper.Prime(context.Background()); err != nil {
			t.Fatalf("Prime with a seed: %v", err)
		}
		if n := len(h.fetchOffsets()); n != 0 {
			t.Fatalf("Prime fetched %d times with a usable seed", n)
		}
		if got := h.fileHolds(); !got.SameAs(seed) {
			t.Fatalf("file holds %s, want the seed", got)
		}
		if ev := h.eventsOf(EventRefreshed); len(ev) != 1 || !ev[0].Reused || ev[0].KeyID != "****0001" {
			t.Fatalf("refreshed events %+v, want one marked reused", ev)
		}
		if got := h.keeper.Credentials(); !got.SameAs(seed) {
			t.Fatalf("Credentials() = %s", got)
		}
		h.runUntil(t0.Add(time.Second))
		if offs := h.fetchOffsets(); len(offs) == 0 || offs[0] != 0 {
			t.Fatalf("fetches at %v, want one at once", offs)
		}
		failed := h.eventsOf(EventRefreshFailed)
		if len(failed) == 0 || failed[0].Attempt != 1 || failed[0].TimeLeft != 40*time.Minute {
			t.Fatalf("refresh-failed events %+v, want attempt 1 with 40 min left", failed)
		}
		if s := h.keeper.Status(); s != StatusDegraded {
			t.Fatalf("status %s, want degraded", s)
		}
		if got := h.fileHolds(); !got.SameAs(seed) {
			t.Fatal("the seed was not kept through the failures")
		}
	})
	t.Run("confirmed by the source: normal schedule", func(t *testing.T) {
		h := newHarness(t, Options{Seed: seed}, func(n int, now time.Time) (credfile.Credentials, error) {
			if now.Before(t0.Add(35 * time.Minute)) {
				return seed, nil
			}
			return creds("ASIAKEY0002", now.Add(time.Hour)), nil
		})
		if err := h.keeper.Prime(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.runUntil(t0.Add(30 * time.Minute))
		// At once, then at expiry - 15 min (25 min), not at the publish point.
		assertOffsets(t, h.fetchOffsets(), []time.Duration{0, 25 * time.Minute})
		if n := len(h.eventsOf(EventRefreshFailed)); n != 0 {
			t.Fatalf("%d refresh-failed events", n)
		}
		if s := h.keeper.Status(); s != StatusValid {
			t.Fatalf("status %s", s)
		}
	})
	t.Run("too little left: fetched instead", func(t *testing.T) {
		short := creds("ASIASEED0002", t0.Add(MinSeedRemaining))
		h := newHarness(t, Options{Seed: short}, rotating(time.Hour))
		if err := h.keeper.Prime(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := h.fileHolds().AccessKeyID; got != "ASIAKEY0001" {
			t.Fatalf("file holds %s, want a fetched key", credfile.MaskKeyID(got))
		}
	})
}
