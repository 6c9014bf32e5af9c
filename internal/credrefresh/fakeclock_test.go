package credrefresh

import (
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock: After registers a waiter that fires when the
// test advances time past its deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	added   chan struct{} // closed and replaced whenever a waiter is added
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, added: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	close(c.added)
	c.added = make(chan struct{})
	return ch
}

// nextWake blocks (up to a real-time deadline) until a waiter is pending,
// i.e. the code under test is idle waiting for time to pass, and returns the
// earliest deadline.
func (c *fakeClock) nextWake(t *testing.T) time.Time {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		if len(c.waiters) > 0 {
			sort.Slice(c.waiters, func(i, j int) bool { return c.waiters[i].at.Before(c.waiters[j].at) })
			at := c.waiters[0].at
			c.mu.Unlock()
			return at
		}
		added := c.added
		c.mu.Unlock()
		select {
		case <-added:
		case <-deadline:
			t.Fatalf("keeper never waited on the clock")
		}
	}
}

// advanceTo moves time to at and fires every waiter due by then.
func (c *fakeClock) advanceTo(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
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
