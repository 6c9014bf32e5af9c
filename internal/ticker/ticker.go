// Package ticker is the part of time.Ticker that periodic loops use (the
// watchdog, EMF lines, /healthz checks), so tests can fire ticks by hand.
package ticker

import "time"

// Ticker delivers ticks on C until Stop.
type Ticker interface {
	C() <-chan time.Time
	Stop()
}

// New returns a time.Ticker with period d as a Ticker.
func New(d time.Duration) Ticker { return real{time.NewTicker(d)} }

type real struct{ t *time.Ticker }

func (r real) C() <-chan time.Time { return r.t.C }
func (r real) Stop()               { r.t.Stop() }
