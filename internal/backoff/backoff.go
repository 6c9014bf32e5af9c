// Package backoff computes the delay before each retry of something that
// failed (a source reconnect in internal/supervisor, a credential fetch in
// internal/credrefresh): exponential growth from an initial delay up to a
// cap, with part of every delay randomised so that many relays that lost
// the same upstream do not all retry in the same instant. Each user owns
// its defaults; this package owns only the arithmetic and its validation.
//
// A Backoff is not safe for concurrent use; its owner (the supervisor)
// serialises access under its own lock.
package backoff

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

// Policy describes the delays between retries.
//
// Attempt n (1-based) has the base delay
//
//	base(n) = min(Initial * Multiplier^(n-1), Max)
//
// and the delay actually returned uses "equal jitter": the first (1-Jitter)
// part of the base delay is fixed and only the last Jitter part is random,
//
//	delay(n) = base(n)*(1-Jitter) + rand()*base(n)*Jitter
//
// so every delay lies in [base*(1-Jitter), base] and never exceeds Max. A
// fixed floor keeps a flapping source from being retried almost instantly by
// an unlucky draw, while the random part spreads out simultaneous retries.
type Policy struct {
	Initial    time.Duration // delay before the first attempt; 0 retries immediately
	Max        time.Duration // cap on any delay; must be >= Initial
	Multiplier float64       // growth per attempt; >= 1 (1 = constant delay)
	Jitter     float64       // fraction 0..1 of each delay that is randomised; 0 = deterministic
}

// Validate reports every invalid field of p (joined with errors.Join), each
// as a *fielderr.Error naming the Policy field.
func (p Policy) Validate() error {
	var errs []error
	if p.Initial < 0 {
		errs = append(errs, fielderr.New("Initial", p.Initial, "must not be negative"))
	}
	if p.Max < 0 {
		errs = append(errs, fielderr.New("Max", p.Max, "must not be negative"))
	} else if p.Max < p.Initial {
		errs = append(errs, fielderr.New("Max", p.Max, fmt.Sprintf("must be >= Initial (%s)", p.Initial)))
	}
	if math.IsNaN(p.Multiplier) || math.IsInf(p.Multiplier, 0) || p.Multiplier < 1 {
		errs = append(errs, fielderr.New("Multiplier", p.Multiplier, "must be a finite number >= 1"))
	}
	if math.IsNaN(p.Jitter) || p.Jitter < 0 || p.Jitter > 1 {
		errs = append(errs, fielderr.New("Jitter", p.Jitter, "must be between 0 and 1"))
	}
	return errors.Join(errs...)
}

// sanitized returns p with every field forced into range, so that Next keeps
// its guarantees even for a policy that was never validated.
func (p Policy) sanitized() Policy {
	if p.Initial < 0 {
		p.Initial = 0
	}
	if p.Max < 0 {
		p.Max = 0
	}
	if p.Initial > p.Max {
		p.Initial = p.Max
	}
	if !(p.Multiplier >= 1) { // also catches NaN
		p.Multiplier = 1
	}
	if !(p.Jitter >= 0) {
		p.Jitter = 0
	}
	if p.Jitter > 1 {
		p.Jitter = 1
	}
	return p
}

// Delay returns the delay before attempt n (1-based) for the random draw r
// in [0,1] (values outside are clamped): base(n) with its last Jitter part
// scaled by r. It never is negative nor greater than Max, even for a policy
// that was never validated (out-of-range fields are clamped).
func (p Policy) Delay(n int, r float64) time.Duration {
	p = p.sanitized()
	maxNs := float64(p.Max)
	base := float64(p.Initial)
	for i := 1; i < n && base < maxNs; i++ {
		base *= p.Multiplier
	}
	base = math.Min(base, maxNs)
	if !(r >= 0) { // also catches NaN
		r = 0
	}
	if r > 1 {
		r = 1
	}
	d := base*(1-p.Jitter) + r*base*p.Jitter
	if d > base { // guard float rounding
		d = base
	}
	if d >= maxNs {
		// float64(Max) may round above Max; converting it back could
		// overflow for huge caps, so return the exact cap instead.
		return p.Max
	}
	return time.Duration(d)
}

// Backoff hands out the delays of one run of consecutive attempts.
type Backoff struct {
	policy   Policy
	rand     func() float64
	attempts int
}

// New returns a Backoff for p. rand must return values in [0,1) (values
// outside are clamped); nil uses math/rand/v2. New does not validate p:
// out-of-range fields are clamped so Next always stays within [0, Max]; call
// p.Validate first to report them to the user.
func New(p Policy, rand func() float64) *Backoff {
	if rand == nil {
		rand = defaultRand
	}
	return &Backoff{policy: p.sanitized(), rand: rand}
}

func defaultRand() float64 { return rand.Float64() }

// SetPolicy replaces the policy without forgetting how many attempts were
// made: the next delay is the one the new policy gives for the next
// attempt number.
func (b *Backoff) SetPolicy(p Policy) { b.policy = p.sanitized() }

// Policy returns the policy in use, after clamping.
func (b *Backoff) Policy() Policy { return b.policy }

// Next returns the delay before the next attempt and counts the attempt.
// The result is never negative and never greater than Max.
func (b *Backoff) Next() time.Duration {
	b.attempts++
	return b.policy.Delay(b.attempts, b.rand())
}

// Attempts returns how many delays Next handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempts }

// Reset starts a new run: the next delay is Initial again.
func (b *Backoff) Reset() { b.attempts = 0 }
