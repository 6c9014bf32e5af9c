// Package manualclock is a clock whose time moves only when told to: the
// pure logic (internal/credrefresh, internal/supervisor, internal/sdnotify,
// internal/emf) runs on it in tests, and credential refresh in the
// benchmark's compressed day, where waiting for real expiries is not an
// option. It satisfies credrefresh.Clock and supervisor.Clock.
package manualclock

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Clock is a manual clock. After registers a waiter that fires once the
// clock is advanced past its deadline.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	added   chan struct{} // closed and replaced whenever a waiter is added
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// New returns a clock reading now.
func New(now time.Time) *Clock {
	return &Clock{now: now, added: make(chan struct{})}
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After returns a channel that receives the clock's time once it has been
// advanced by d (at once for d <= 0).
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	close(c.added)
	c.added = make(chan struct{})
	return ch
}

// NextWake waits (in real time, up to timeout) until someone waits on the
// clock, meaning the code under it is idle, and returns the earliest
// deadline.
func (c *Clock) NextWake(ctx context.Context, timeout time.Duration) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if len(c.waiters) > 0 {
			sort.Slice(c.waiters, func(i, j int) bool { return c.waiters[i].at.Before(c.waiters[j].at) })
			at := c.waiters[0].at
			c.mu.Unlock()
			return at, nil
		}
		added := c.added
		c.mu.Unlock()
		select {
		case <-added:
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("nothing waited on the clock within %v", timeout)
		}
	}
}

// AdvanceTo moves the clock to at (never backwards) and fires the waiters due.
func (c *Clock) AdvanceTo(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked(at)
}

// Advance moves the clock forward by d and fires the waiters due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advanceLocked(c.now.Add(d))
}

func (c *Clock) advanceLocked(at time.Time) {
	if at.After(c.now) {
		c.now = at
	}
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// Pending is how many waiters have not fired yet.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}
