package kvscredprovider_test

import (
	"sync"
	"testing"
	"time"
)

// jumpClock is the wall clock plus an offset that tests can advance at once,
// waking every timer whose deadline the jump passed. It lets a test see
// credentials expire without waiting for hours, while real time still runs
// (HTTP timeouts, retries).
type jumpClock struct {
	mu      sync.Mutex
	offset  time.Duration
	waiters []clockWaiter
}

type clockWaiter struct {
	at time.Time
	ch chan time.Time
}

func (c *jumpClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *jumpClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	c.waiters = append(c.waiters, clockWaiter{at: time.Now().Add(c.offset + d), ch: ch})
	c.mu.Unlock()
	time.AfterFunc(d, c.fire)
	c.fire()
	return ch
}

// waitWaiting waits until something (the refresh loop) waits on the clock.
// A test calls it before Advance: a waiter that computed its delay before
// the jump but registered after it would sleep the whole jump too long.
func (c *jumpClock) waitWaiting(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		n := len(c.waiters)
		c.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing waits on the clock: the refresh loop is not idle")
		}
		<-tick.C
	}
}

// Advance moves the clock forward by d.
func (c *jumpClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
	c.fire()
}

func (c *jumpClock) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now().Add(c.offset)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if now.Before(w.at) {
			keep = append(keep, w)
			continue
		}
		w.ch <- now
	}
	c.waiters = keep
}
