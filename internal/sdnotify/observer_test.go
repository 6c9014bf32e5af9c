package sdnotify

import (
	"strings"
	"testing"
	"time"
)

// An Observer judges by the watchdog's rule over windows of its own: from
// one healthy Check to the next, whatever the pings do.
func TestObserver(t *testing.T) {
	type step struct {
		do      func(n *Notifier, a *Source, p *testPushes)
		healthy bool
		reason  string // part of the reason when not healthy
	}
	data := func(n *Notifier, a *Source, p *testPushes) { a.DataOut() }
	nothing := func(*Notifier, *Source, *testPushes) {}
	cases := []struct {
		name       string
		inert      bool          // a notifier with no Send (no NOTIFY_SOCKET)
		blockLimit time.Duration // the observer's
		steps      []step
	}{
		{name: "data in every window is healthy, a quiet window is not", steps: []step{
			{do: data, healthy: true},
			{do: data, healthy: true},
			{do: nothing, reason: "no data and no retry since the last check: cam-a"},
		}},
		{name: "works on a notifier that sends nothing", inert: true, steps: []step{
			{do: data, healthy: true},
			{do: nothing, reason: "cam-a"},
		}},
		{name: "an unhealthy check leaves the window open until data comes", steps: []step{
			{do: data, healthy: true},
			{do: nothing, reason: "cam-a"},
			{do: data, healthy: true},
		}},
		{name: "a watchdog ping in between does not shorten the observer's window", steps: []step{
			{do: nothing, reason: "cam-a"},
			{do: func(n *Notifier, a *Source, _ *testPushes) { a.DataOut(); ping(n) }, healthy: true},
		}},
		{name: "a retrying source is healthy", steps: []step{
			{do: func(_ *Notifier, a *Source, _ *testPushes) { a.Retrying(true) }, healthy: true},
			{do: nothing, healthy: true},
		}},
		{name: "a push blocked past the observer's limit is unhealthy", blockLimit: 10 * time.Second, steps: []step{
			{do: func(_ *Notifier, a *Source, p *testPushes) {
				a.DataOut()
				p.started()
				p.clock.Advance(11 * time.Second)
				a.DataOut()
			}, reason: "cam-a: downstream push blocked for 11s"},
		}},
		{name: "no block limit: a blocked push is not judged", steps: []step{
			{do: func(_ *Notifier, a *Source, p *testPushes) {
				a.DataOut()
				p.started()
				p.clock.Advance(time.Hour)
			}, healthy: true},
		}},
		{name: "a vetoing health is unhealthy while data flows", steps: []step{
			{do: func(n *Notifier, a *Source, _ *testPushes) {
				a.DataOut()
				n.RegisterHealth("kvssink0").Set("upload wedged: no PERSISTED ack for 2m0s", true)
			}, reason: "vetoed by kvssink0: upload wedged"},
		}},
		{name: "a closed source leaves nothing to judge", steps: []step{
			{do: func(_ *Notifier, a *Source, _ *testPushes) { a.DataOut(); a.Close() }, reason: "no source registered"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{Send: func(string) error { return nil }, WatchdogInterval: testWatchdog}
			if tc.inert {
				opts = Options{}
			}
			n := New(opts)
			clock := newClock()
			a := n.Register("cam-a")
			p := trackPushes(a, clock)
			o := n.Observe(tc.blockLimit)
			for i, s := range tc.steps {
				s.do(n, a, p)
				healthy, reason := o.Check()
				if healthy != s.healthy {
					t.Fatalf("check %d: healthy = %v (%q), want %v", i+1, healthy, reason, s.healthy)
				}
				if !healthy && !strings.Contains(reason, s.reason) {
					t.Fatalf("check %d: reason %q does not mention %q", i+1, reason, s.reason)
				}
			}
		})
	}
}
