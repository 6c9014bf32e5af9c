package backoff

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

// constRand returns a rand func that always yields r.
func constRand(r float64) func() float64 { return func() float64 { return r } }

// seqRand yields the given values in turn, repeating the last one.
func seqRand(vals ...float64) func() float64 {
	i := 0
	return func() float64 {
		v := vals[min(i, len(vals)-1)]
		i++
		return v
	}
}

const ms = time.Millisecond

// reconnectPolicy is reconnectbin's: 250ms doubling up to 2s with 20% jitter.
var reconnectPolicy = Policy{Initial: 250 * ms, Max: 2 * time.Second, Multiplier: 2, Jitter: 0.2}

func TestNextSequence(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		rand   func() float64
		want   []time.Duration
	}{
		{
			name:   "default policy without randomness grows by 2 and caps at 2s",
			policy: Policy{Initial: 250 * ms, Max: 2 * time.Second, Multiplier: 2, Jitter: 0},
			rand:   constRand(0.5),
			want:   []time.Duration{250 * ms, 500 * ms, 1000 * ms, 2000 * ms, 2000 * ms, 2000 * ms},
		},
		{
			name:   "rand at top of range gives the full base delay",
			policy: reconnectPolicy,
			rand:   constRand(1),
			want:   []time.Duration{250 * ms, 500 * ms, 1000 * ms, 2000 * ms, 2000 * ms},
		},
		{
			name:   "rand 0 gives the fixed floor (1-jitter) of each base delay",
			policy: reconnectPolicy,
			rand:   constRand(0),
			want:   []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 1600 * ms},
		},
		{
			name:   "rand 0.5 with jitter 0.2 lands at 90%",
			policy: reconnectPolicy,
			rand:   constRand(0.5),
			want:   []time.Duration{225 * ms, 450 * ms, 900 * ms, 1800 * ms},
		},
		{
			name:   "full jitter spans zero to base",
			policy: Policy{Initial: 100 * ms, Max: time.Second, Multiplier: 2, Jitter: 1},
			rand:   seqRand(0, 1, 0.25),
			want:   []time.Duration{0, 200 * ms, 100 * ms},
		},
		{
			name:   "initial 0 retries immediately forever",
			policy: Policy{Initial: 0, Max: 2 * time.Second, Multiplier: 2, Jitter: 0.2},
			rand:   constRand(1),
			want:   []time.Duration{0, 0, 0, 0},
		},
		{
			name:   "multiplier 1 keeps a constant delay",
			policy: Policy{Initial: 300 * ms, Max: time.Second, Multiplier: 1},
			rand:   constRand(0.3),
			want:   []time.Duration{300 * ms, 300 * ms, 300 * ms},
		},
		{
			name:   "cap reached between two steps is not overshot",
			policy: Policy{Initial: 300 * ms, Max: time.Second, Multiplier: 3},
			rand:   constRand(0),
			want:   []time.Duration{300 * ms, 900 * ms, time.Second, time.Second},
		},
		{
			name:   "out of range rand values are clamped",
			policy: Policy{Initial: 100 * ms, Max: time.Second, Multiplier: 2, Jitter: 0.5},
			rand:   seqRand(-3, 7, math.NaN()),
			want:   []time.Duration{50 * ms, 200 * ms, 200 * ms},
		},
		{
			name:   "unvalidated policy is clamped: max below initial caps at max",
			policy: Policy{Initial: 5 * time.Second, Max: time.Second, Multiplier: 0, Jitter: 3},
			rand:   constRand(1),
			want:   []time.Duration{time.Second, time.Second},
		},
		{
			name:   "negative values clamp to immediate retry",
			policy: Policy{Initial: -time.Second, Max: -time.Second, Multiplier: 2},
			rand:   constRand(1),
			want:   []time.Duration{0, 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := New(tc.policy, tc.rand)
			for i, want := range tc.want {
				if got := b.Next(); got != want {
					t.Fatalf("attempt %d: Next() = %v, want %v", i+1, got, want)
				}
				if b.Attempts() != i+1 {
					t.Fatalf("after %d calls Attempts() = %d", i+1, b.Attempts())
				}
			}
		})
	}
}

func TestNeverExceedsMaxNorNegative(t *testing.T) {
	policies := []Policy{
		{Initial: time.Nanosecond, Max: time.Duration(math.MaxInt64), Multiplier: 1000, Jitter: 0.2},
		{Initial: time.Second, Max: time.Duration(math.MaxInt64), Multiplier: math.MaxFloat64, Jitter: 0},
		{Initial: 250 * ms, Max: 2 * time.Second, Multiplier: math.Inf(1), Jitter: 0.2},
		reconnectPolicy,
	}
	for _, p := range policies {
		b := New(p, nil) // real randomness: the bounds must hold for any draw
		for i := 0; i < 200; i++ {
			d := b.Next()
			if d < 0 || d > p.Max {
				t.Fatalf("policy %+v attempt %d: Next() = %v outside [0, %v]", p, i+1, d, p.Max)
			}
		}
	}
}

func TestResetStartsOver(t *testing.T) {
	b := New(reconnectPolicy, constRand(1))
	for i := 0; i < 5; i++ {
		b.Next()
	}
	b.Reset()
	if b.Attempts() != 0 {
		t.Fatalf("Attempts() after Reset = %d, want 0", b.Attempts())
	}
	if got := b.Next(); got != 250*ms {
		t.Fatalf("first Next() after Reset = %v, want 250ms", got)
	}
	if got := b.Next(); got != 500*ms {
		t.Fatalf("second Next() after Reset = %v, want 500ms", got)
	}
}

func TestSetPolicyKeepsAttemptCount(t *testing.T) {
	b := New(Policy{Initial: 100 * ms, Max: 10 * time.Second, Multiplier: 2}, constRand(1))
	b.Next() // 100ms
	b.Next() // 200ms
	b.SetPolicy(Policy{Initial: time.Second, Max: 3 * time.Second, Multiplier: 2})
	if b.Attempts() != 2 {
		t.Fatalf("Attempts() after SetPolicy = %d, want 2", b.Attempts())
	}
	// Attempt 3 under the new policy: 1s*2^2 = 4s, capped at 3s.
	if got := b.Next(); got != 3*time.Second {
		t.Fatalf("Next() after SetPolicy = %v, want 3s", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name      string
		policy    Policy
		wantProps []string // fields named in the error, in order; nil = valid
		wantText  string
	}{
		{name: "default is valid", policy: reconnectPolicy},
		{name: "all zero delays are valid", policy: Policy{Multiplier: 1}},
		{name: "max equal to initial is valid", policy: Policy{Initial: time.Second, Max: time.Second, Multiplier: 2, Jitter: 1}},
		{
			name:      "max below initial",
			policy:    Policy{Initial: 2 * time.Second, Max: time.Second, Multiplier: 2},
			wantProps: []string{"Max"},
			wantText:  "Max 1s: must be >= Initial (2s)",
		},
		{
			name:      "negative initial",
			policy:    Policy{Initial: -time.Second, Max: time.Second, Multiplier: 2},
			wantProps: []string{"Initial"},
			wantText:  "Initial -1s: must not be negative",
		},
		{
			name:      "negative max",
			policy:    Policy{Max: -time.Second, Multiplier: 2},
			wantProps: []string{"Max"},
		},
		{
			name:      "multiplier below one",
			policy:    Policy{Initial: time.Second, Max: time.Second, Multiplier: 0.5},
			wantProps: []string{"Multiplier"},
		},
		{
			name:      "multiplier NaN",
			policy:    Policy{Max: time.Second, Multiplier: math.NaN()},
			wantProps: []string{"Multiplier"},
		},
		{
			name:      "jitter above one",
			policy:    Policy{Max: time.Second, Multiplier: 2, Jitter: 1.5},
			wantProps: []string{"Jitter"},
		},
		{
			name:      "every problem is reported at once",
			policy:    Policy{Initial: -1, Max: -1, Multiplier: 0, Jitter: -0.1},
			wantProps: []string{"Initial", "Max", "Multiplier", "Jitter"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.Validate()
			if tc.wantProps == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error naming %v", tc.wantProps)
			}
			var pe *fielderr.Error
			if !errors.As(err, &pe) || pe.Field != tc.wantProps[0] {
				t.Fatalf("Validate() = %v, want first *fielderr.Error for %q", err, tc.wantProps[0])
			}
			for _, prop := range tc.wantProps {
				if !strings.Contains(err.Error(), prop) {
					t.Errorf("error %q does not name %q", err, prop)
				}
			}
			if tc.wantText != "" && err.Error() != tc.wantText {
				t.Errorf("error text = %q, want %q", err, tc.wantText)
			}
		})
	}
}

// Delay is what Next hands out, without the state: attempt n with draw r.
func TestDelayMatchesNext(t *testing.T) {
	for _, r := range []float64{0, 0.3, 1} {
		b := New(reconnectPolicy, constRand(r))
		for n := 1; n <= 8; n++ {
			if got, want := reconnectPolicy.Delay(n, r), b.Next(); got != want {
				t.Fatalf("Delay(%d, %v) = %v, Next = %v", n, r, got, want)
			}
		}
	}
	if got := (Policy{Initial: time.Second, Max: time.Minute, Multiplier: 2, Jitter: 0.5}).Delay(3, 0); got != 2*time.Second {
		t.Fatalf("third delay with draw 0 = %v, want half of 4s", got)
	}
}
