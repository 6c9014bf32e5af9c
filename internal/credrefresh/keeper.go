// Package credrefresh keeps a credential file fresh: it fetches credentials,
// writes them, and fetches again well before they expire, retrying with
// backoff when the source fails. It knows nothing about IMDS, files or
// GStreamer: the fetch and write steps and the clock are injected.
package credrefresh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/backoff"
	"github.com/kvsrelay/kvsrelay/internal/credfile"
	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

// FetchFunc gets credentials from the source (e.g. credsource.Source.Fetch).
type FetchFunc func(ctx context.Context) (credfile.Credentials, error)

// WriteFunc stores credentials for kvssink (e.g. credfile.Write with a
// fixed path). It must refuse credentials with too little life left.
type WriteFunc func(c credfile.Credentials, now time.Time) error

// Defaults for zero Options fields, and the lower bound on RefreshBefore.
const (
	// DefaultRefreshBefore: kvssink needs the file valid for more than
	// 38 s + 30 s when it re-reads, and IMDS publishes new credentials at
	// least 5 min before the old ones expire. Asking 15 min before expiry
	// leaves 10 min for retries before IMDS must have rotated, and the old
	// file stays usable throughout.
	DefaultRefreshBefore = 15 * time.Minute

	// imdsPublishLead is how long before expiry IMDS promises new
	// credentials ("at least five minutes before the expiration of the old
	// credentials", EC2 user guide); publishSettle is a margin after it.
	imdsPublishLead     = 5 * time.Minute
	publishSettle       = 5 * time.Second
	DefaultRetryInitial = time.Second
	DefaultRetryMax     = time.Minute
	// MinRefreshBefore: below this the old credentials would fall under
	// credfile.MinRemaining almost as soon as the refresh starts, leaving no
	// time to retry.
	MinRefreshBefore = credfile.MinRemaining + 30*time.Second
)

// Options tunes a Keeper. Zero fields take the defaults above.
type Options struct {
	// RefreshBefore: how long before expiry to fetch new credentials.
	RefreshBefore time.Duration
	// RetryInitial and RetryMax bound the exponential backoff between
	// failed attempts (each delay is jittered to 50-100% of its value).
	RetryInitial time.Duration
	RetryMax     time.Duration
	// Clock defaults to RealClock.
	Clock Clock
	// Transient tells retryable fetch errors from configuration errors
	// (e.g. credsource.IsTransient). Permanent errors are retried at
	// RetryMax pace, and end Prime at once. Nil: every fetch error is
	// transient. Write errors are transient only if they wrap
	// credfile.ErrRefused (the credentials were unusable); other write
	// errors (folder not writable) are permanent.
	Transient func(error) bool
	// OnEvent is called synchronously from the Keeper's goroutine for each
	// Event; it must not block for long nor call back into the Keeper's
	// Prime/Run. Nil: events are dropped.
	OnEvent func(Event)
	// Jitter returns a number in [0,1); nil uses math/rand. Tests pin it.
	Jitter func() float64
	// Seed holds credentials this file held before, kept in memory across
	// a restart of the pipeline (see Prime). Zero: none.
	Seed credfile.Credentials
}

// withDefaults fills the zero durations with their defaults.
func (o Options) withDefaults() Options {
	if o.RefreshBefore == 0 {
		o.RefreshBefore = DefaultRefreshBefore
	}
	if o.RetryInitial == 0 {
		o.RetryInitial = DefaultRetryInitial
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultRetryMax
	}
	return o
}

// Validate reports every invalid duration of o (zero ones take their
// defaults), each as a *fielderr.Error naming the Options field, joined
// with errors.Join.
func (o Options) Validate() error {
	o = o.withDefaults()
	var errs []error
	if err := CheckRefreshBefore(o.RefreshBefore); err != nil {
		errs = append(errs, err)
	}
	if err := o.retryPolicy().Validate(); err != nil {
		errs = append(errs, fielderr.Rename(err, retryFields))
	}
	return errors.Join(errs...)
}

// CheckRefreshBefore reports a RefreshBefore under MinRefreshBefore (zero
// included: callers that let zero mean the default check it after
// defaulting) as a *fielderr.Error. kvscredprovider's refresh-before
// property and kvscredfile's -refresh-before flag are checked here.
func CheckRefreshBefore(d time.Duration) error {
	if d < MinRefreshBefore {
		return fielderr.New("RefreshBefore", d, fmt.Sprintf("must be at least %s (kvssink needs the file valid for over a minute when it re-reads)", MinRefreshBefore))
	}
	return nil
}

// retryPolicy is the backoff between failed attempts: doubling from
// RetryInitial up to RetryMax, each delay jittered to 50-100% of its value
// ("equal jitter": retries from many relays spread out but never come
// sooner than half the nominal delay).
func (o Options) retryPolicy() backoff.Policy {
	return backoff.Policy{Initial: o.RetryInitial, Max: o.RetryMax, Multiplier: 2, Jitter: 0.5}
}

// retryFields names the backoff.Policy fields Options sets.
var retryFields = map[string]string{"Initial": "RetryInitial", "Max": "RetryMax"}

// MinSeedRemaining is how much life Options.Seed must have left to be
// written again at start instead of waiting for the source: well over
// kvssink's margins (it re-reads 38 s before expiry and refuses under 30 s
// left), and more than credfile.MinRemaining, so that the refresh started at
// once in the background still has time to retry before Write would refuse
// the seed.
const MinSeedRemaining = MinRefreshBefore

// Status is the Keeper's state as a user would describe it.
type Status int

const (
	// StatusIdle: nothing fetched yet and no fetch running.
	StatusIdle Status = iota
	// StatusFetching: no credentials written yet; the first fetch is
	// running or being retried (EventRefreshFailed tells why).
	StatusFetching
	// StatusValid: the file holds valid credentials and the last refresh
	// attempt (if any) succeeded or is not due yet.
	StatusValid
	// StatusDegraded: the file still holds valid credentials, but the last
	// refresh attempt failed; retries continue.
	StatusDegraded
	// StatusExpired: the credentials in the file have expired and nothing
	// new could be had; retries continue.
	StatusExpired
)

func (s Status) String() string {
	switch s {
	case StatusIdle:
		return "idle"
	case StatusFetching:
		return "fetching"
	case StatusValid:
		return "valid"
	case StatusDegraded:
		return "degraded"
	case StatusExpired:
		return "expired"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// EventKind says what happened.
type EventKind int

const (
	// EventRefreshed: new credentials were written (KeyID, Expires), or,
	// with Reused set, the credentials of Options.Seed were written again.
	// Severity: info.
	EventRefreshed EventKind = iota + 1
	// EventUnchanged: the source returned the credentials already in the
	// file (IMDS has not rotated yet); another attempt follows soon.
	// Severity: debug; normal in the minutes before IMDS rotates.
	EventUnchanged
	// EventRefreshFailed: an attempt failed (Err, Attempt); the file still
	// holds valid credentials for TimeLeft, or there are none yet
	// (TimeLeft 0). Attempt 1 marks the first failure since the last
	// successful write (or since the start): the moment an outage begins.
	// Unchanged answers (EventUnchanged) are not failures and do not count.
	// Severity: warning.
	EventRefreshFailed
	// EventExpired: the credentials in the file have expired and no
	// replacement could be fetched. Sent once per expiry; retries continue.
	// Severity: error.
	EventExpired
)

func (k EventKind) String() string {
	switch k {
	case EventRefreshed:
		return "refreshed"
	case EventUnchanged:
		return "unchanged"
	case EventRefreshFailed:
		return "refresh-failed"
	case EventExpired:
		return "expired"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event reports a step of the Keeper. It never holds secrets: KeyID is
// masked, and Err comes from the fetch/write functions, which must not put
// secrets in errors.
type Event struct {
	Kind     EventKind
	At       time.Time
	KeyID    string        // masked access key id of the credentials concerned
	Expires  time.Time     // expiry of the credentials now in the file
	TimeLeft time.Duration // EventRefreshFailed: life left in the file's credentials
	NextTry  time.Time     // when the next attempt is scheduled (zero from Prime on a permanent error)
	Attempt  int           // failed attempts since the last successful write, 1 for the first failure
	Err      error         // EventRefreshFailed, EventExpired: the last failure
	Reused   bool          // EventRefreshed: the seed credentials were written again, nothing was fetched
}

// String formats the event for logs.
func (e Event) String() string {
	switch e.Kind {
	case EventRefreshed:
		if e.Reused {
			return fmt.Sprintf("credentials kept from before the restart written again: key %s valid until %s; refreshing in the background", e.KeyID, e.Expires.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("credentials refreshed: key %s valid until %s", e.KeyID, e.Expires.UTC().Format(time.RFC3339))
	case EventUnchanged:
		return fmt.Sprintf("source still returns key %s (valid until %s); asking again at %s", e.KeyID, e.Expires.UTC().Format(time.RFC3339), e.NextTry.UTC().Format(time.RFC3339))
	case EventRefreshFailed:
		if e.Expires.IsZero() {
			return fmt.Sprintf("fetching credentials failed (attempt %d, no credentials written yet): %v", e.Attempt, e.Err)
		}
		return fmt.Sprintf("refreshing credentials failed (attempt %d, current key %s still valid for %s): %v", e.Attempt, e.KeyID, e.TimeLeft.Round(time.Second), e.Err)
	case EventExpired:
		return fmt.Sprintf("credentials expired: key %s expired at %s and no new credentials could be fetched: %v", e.KeyID, e.Expires.UTC().Format(time.RFC3339), e.Err)
	}
	return e.Kind.String()
}

// Keeper owns the refresh loop for one credential file.
type Keeper struct {
	fetch FetchFunc
	write WriteFunc
	opts  Options

	runMu sync.Mutex // held by Prime and Run: one driver at a time

	mu          sync.Mutex
	status      Status
	current     credfile.Credentials // last written; zero if none
	failures    int                  // failed attempts since the last successful write
	unchanged   int                  // consecutive unchanged answers past the refresh point (their backoff)
	lastErr     error
	expiredSent bool // EventExpired already sent for current
	seeded      bool // Prime wrote Options.Seed: Run fetches at once
}

// New checks the options and returns an idle Keeper.
func New(fetch FetchFunc, write WriteFunc, opts Options) (*Keeper, error) {
	if fetch == nil || write == nil {
		return nil, errors.New("credrefresh: fetch and write functions are required")
	}
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("credrefresh: %w", err)
	}
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.Transient == nil {
		opts.Transient = func(error) bool { return true }
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	return &Keeper{fetch: fetch, write: write, opts: opts}, nil
}

// Status returns the current state.
func (k *Keeper) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status
}

// Expiration returns when the credentials in the file expire (zero if none
// were written yet).
func (k *Keeper) Expiration() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.current.Expires
}

// Credentials returns the credentials last written (zero if none), secrets
// included, so that a caller can keep them across a restart (Options.Seed).
// Never log the fields; the value's own formatting masks them.
func (k *Keeper) Credentials() credfile.Credentials {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.current
}

// KeyID returns the masked access key id of the credentials in the file.
func (k *Keeper) KeyID() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return credfile.MaskKeyID(k.current.AccessKeyID)
}

// LastError returns the error of the last failed attempt, nil after a
// success.
func (k *Keeper) LastError() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lastErr
}

// Prime fetches and writes credentials before returning, so kvssink finds
// a file at its first state change. It retries transient failures with
// backoff until it succeeds or ctx ends (bound it with a timeout), and
// returns at once on a permanent error. Calling Prime when credentials are
// already in place does nothing.
//
// With Options.Seed holding credentials that have more than
// MinSeedRemaining left, Prime writes them without asking the source (a
// pipeline restarting during an IMDS outage starts on the credentials it
// had), and Run then fetches at once in the background.
func (k *Keeper) Prime(ctx context.Context) error {
	k.runMu.Lock()
	defer k.runMu.Unlock()
	if !k.Expiration().IsZero() {
		return nil
	}
	if k.writeSeed() {
		return nil
	}
	for {
		res, err := k.attempt(ctx)
		if err != nil {
			return err
		}
		if res.ok {
			return nil
		}
		if !res.transient {
			return res.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("credentials not ready: %w (last error: %v)", ctx.Err(), res.err)
		case <-k.opts.Clock.After(res.next.Sub(k.opts.Clock.Now())):
		}
	}
}

// writeSeed writes Options.Seed if it has more than MinSeedRemaining left,
// reporting whether it did. The caller holds runMu.
func (k *Keeper) writeSeed() bool {
	seed := k.opts.Seed
	now := k.opts.Clock.Now()
	if seed.Expires.IsZero() || seed.Expires.Sub(now) <= MinSeedRemaining {
		return false
	}
	if err := k.write(seed, now); err != nil {
		// The source is asked as if there were no seed; a write problem
		// (folder) shows up again there, with its event.
		return false
	}
	k.mu.Lock()
	k.current = seed
	k.status = StatusValid
	k.seeded = true
	k.mu.Unlock()
	k.emit(Event{Kind: EventRefreshed, At: now, KeyID: credfile.MaskKeyID(seed.AccessKeyID), Expires: seed.Expires, NextTry: now, Reused: true})
	return true
}

// Run keeps the file fresh until ctx ends, then returns ctx.Err(). If Prime
// has not written credentials yet, Run starts by fetching.
//
// Schedule, for credentials expiring at E fetched at N:
//   - normally the next fetch is at E - RefreshBefore;
//   - if that is already past (credentials living less than RefreshBefore),
//     at N + (E-N)/2, but never later than E - credfile.MinRemaining, so
//     kvssink always has a file it accepts while the refresh happens;
//   - a failed attempt is retried after RetryInitial, doubling up to
//     RetryMax, each delay jittered to 50-100%; a permanent error waits
//     RetryMax. The file is left as it is: expired or empty credentials are
//     never written (the WriteFunc refuses them);
//   - if the source returns the credentials already in the file (IMDS has
//     not rotated yet), that counts as "ask again soon", on its own
//     backoff, without a failure event and without counting as a failed
//     attempt (Event.Attempt counts real failures only). Before the
//     refresh point (only after a seeded start) it confirms the file and
//     the normal schedule applies;
//   - after a seeded Prime the first fetch happens at once;
//   - when E passes with nothing new, EventExpired is sent once and the
//     retries go on.
func (k *Keeper) Run(ctx context.Context) error {
	k.runMu.Lock()
	defer k.runMu.Unlock()
	next := k.opts.Clock.Now()
	k.mu.Lock()
	exp, seeded := k.current.Expires, k.seeded
	k.seeded = false
	k.mu.Unlock()
	if !exp.IsZero() && !seeded {
		next = k.scheduleAfterSuccess(k.opts.Clock.Now(), exp)
	}
	for {
		if err := k.waitUntil(ctx, next); err != nil {
			return err
		}
		res, err := k.attempt(ctx)
		if err != nil {
			return err
		}
		next = res.next
	}
}

// waitUntil sleeps until at (on the injected clock), waking at expiry on
// the way to send EventExpired on time.
func (k *Keeper) waitUntil(ctx context.Context, at time.Time) error {
	for {
		now := k.opts.Clock.Now()
		k.checkExpired(now)
		if !now.Before(at) {
			return nil
		}
		wake := at
		k.mu.Lock()
		exp, sent := k.current.Expires, k.expiredSent
		k.mu.Unlock()
		if !exp.IsZero() && !sent && exp.After(now) && exp.Before(wake) {
			wake = exp
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-k.opts.Clock.After(wake.Sub(now)):
		}
	}
}

type attemptResult struct {
	ok        bool
	transient bool
	err       error
	next      time.Time
}

// attempt makes one fetch+write. It returns a non-nil error only when ctx
// ended; otherwise the result says what happened and when to try next.
func (k *Keeper) attempt(ctx context.Context) (attemptResult, error) {
	k.mu.Lock()
	if k.current.Expires.IsZero() && k.status == StatusIdle {
		k.status = StatusFetching
	}
	prev := k.current
	k.mu.Unlock()

	c, err := k.fetch(ctx)
	if ctx.Err() != nil {
		k.settleAfterCancel()
		return attemptResult{}, ctx.Err()
	}
	now := k.opts.Clock.Now()
	if err == nil && !prev.Expires.IsZero() && c.SameAs(prev) {
		var next time.Time
		if due := prev.Expires.Add(-k.opts.RefreshBefore); now.Before(due) {
			// Not due yet (a seeded start asks at once): the source
			// confirms the file, which is as good as a refresh.
			next = k.scheduleAfterSuccess(now, prev.Expires)
			k.mu.Lock()
			k.status = StatusValid
			k.failures = 0
			k.unchanged = 0
			k.lastErr = nil
			k.mu.Unlock()
		} else if published := prev.Expires.Add(-imdsPublishLead + publishSettle); now.Before(published) {
			// IMDS makes new credentials available at least five minutes
			// before the old ones expire: until then asking again is
			// pointless, so the next call waits for that moment (one call,
			// not a poll).
			next = published
		} else {
			// Past it, a source that still has not rotated is retried
			// with backoff. This is not a failure: the source answers.
			next = now.Add(k.backoff(k.bumpUnchanged()))
		}
		if lim := prev.Expires.Add(-credfile.MinRemaining); next.After(lim) && lim.After(now) {
			next = lim
		}
		k.emit(Event{Kind: EventUnchanged, At: now, KeyID: credfile.MaskKeyID(c.AccessKeyID), Expires: c.Expires, NextTry: next})
		return attemptResult{next: next}, nil
	}
	if err != nil {
		return k.failed(now, err, k.opts.Transient(err)), nil
	}
	if err := k.write(c, now); err != nil {
		// Refused credentials (too close to expiry, malformed) are the
		// source's problem and may be fixed by asking again; anything else
		// is the file system (folder missing rights, not a folder), which
		// needs a human.
		return k.failed(now, err, errors.Is(err, credfile.ErrRefused)), nil
	}

	k.mu.Lock()
	k.current = c
	k.status = StatusValid
	k.failures = 0
	k.unchanged = 0
	k.lastErr = nil
	k.expiredSent = false
	k.mu.Unlock()
	next := k.scheduleAfterSuccess(now, c.Expires)
	k.emit(Event{Kind: EventRefreshed, At: now, KeyID: credfile.MaskKeyID(c.AccessKeyID), Expires: c.Expires, NextTry: next})
	return attemptResult{ok: true, next: next}, nil
}

func (k *Keeper) failed(now time.Time, err error, transient bool) attemptResult {
	n := k.bumpFailures(err)
	delay := k.opts.RetryMax
	if transient {
		delay = k.backoff(n)
	}
	next := now.Add(delay)

	k.mu.Lock()
	cur := k.current
	switch {
	case cur.Expires.IsZero():
		// Never had credentials: still trying to get the first ones.
		k.status = StatusFetching
	case now.Before(cur.Expires):
		k.status = StatusDegraded
	default:
		k.status = StatusExpired
	}
	k.mu.Unlock()

	ev := Event{Kind: EventRefreshFailed, At: now, KeyID: credfile.MaskKeyID(cur.AccessKeyID), Expires: cur.Expires, NextTry: next, Attempt: n, Err: err}
	if !cur.Expires.IsZero() && cur.Expires.After(now) {
		ev.TimeLeft = cur.Expires.Sub(now)
	}
	k.emit(ev)
	k.checkExpired(now)
	return attemptResult{transient: transient, err: err, next: next}
}

// checkExpired sends EventExpired once when the written credentials have
// expired without replacement.
func (k *Keeper) checkExpired(now time.Time) {
	k.mu.Lock()
	cur, sent, lastErr := k.current, k.expiredSent, k.lastErr
	expired := !cur.Expires.IsZero() && !now.Before(cur.Expires) && !sent
	if expired {
		k.expiredSent = true
		k.status = StatusExpired
	}
	k.mu.Unlock()
	if expired {
		if lastErr == nil {
			lastErr = errors.New("no refresh succeeded before expiry")
		}
		k.emit(Event{Kind: EventExpired, At: now, KeyID: credfile.MaskKeyID(cur.AccessKeyID), Expires: cur.Expires, Err: lastErr})
	}
}

// bumpFailures counts one more failed attempt, records its error and
// returns the number of failures since the last successful write.
func (k *Keeper) bumpFailures(err error) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failures++
	k.lastErr = err
	return k.failures
}

// bumpUnchanged counts one more unchanged answer past the point where the
// source should have rotated, and returns the count (for the backoff).
func (k *Keeper) bumpUnchanged() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.unchanged++
	return k.unchanged
}

func (k *Keeper) settleAfterCancel() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.status == StatusFetching {
		k.status = StatusIdle
	}
}

// backoff returns the jittered delay before attempt n+1 after n failures.
func (k *Keeper) backoff(n int) time.Duration {
	j := k.opts.Jitter()
	if j < 0 || j >= 1 {
		j = 0
	}
	return k.opts.retryPolicy().Delay(n, j)
}

// scheduleAfterSuccess implements the rule documented on Run.
func (k *Keeper) scheduleAfterSuccess(now, exp time.Time) time.Time {
	at := exp.Add(-k.opts.RefreshBefore)
	if at.After(now) {
		return at
	}
	at = now.Add(exp.Sub(now) / 2)
	if lim := exp.Add(-credfile.MinRemaining); at.After(lim) {
		at = lim
	}
	if at.Before(now) {
		at = now
	}
	return at
}

func (k *Keeper) emit(e Event) {
	if k.opts.OnEvent != nil {
		k.opts.OnEvent(e)
	}
}
