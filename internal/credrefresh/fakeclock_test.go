package credrefresh

import (
	"context"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/manualclock"
)

// fakeClock is the manual clock the keeper tests drive.
type fakeClock struct{ *manualclock.Clock }

func newFakeClock(now time.Time) *fakeClock { return &fakeClock{manualclock.New(now)} }

// nextWake blocks (up to a real-time deadline) until the keeper is idle
// waiting for time to pass, and returns the earliest deadline.
func (c *fakeClock) nextWake(t *testing.T) time.Time {
	t.Helper()
	at, err := c.NextWake(context.Background(), 10*time.Second)
	if err != nil {
		t.Fatalf("keeper never waited on the clock: %v", err)
	}
	return at
}

// advanceTo moves time to at and fires every waiter due by then.
func (c *fakeClock) advanceTo(at time.Time) { c.AdvanceTo(at) }
