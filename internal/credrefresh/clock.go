package credrefresh

import "time"

// Clock is the time source of a Keeper; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// After delivers once d has passed, like time.After.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
