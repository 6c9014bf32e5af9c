package main

import (
	"fmt"
	"strings"
	"time"
)

// restartReasons are the reasons reconnectbin gives, in the order the
// summary lists them.
var restartReasons = []string{"error", "eos", "stall", "start-failed"}

// tracker folds the relay's events into what the progress line and the
// summary show.
type tracker struct {
	playing       bool
	retrying      bool
	retryingSince time.Duration
	restarts      []relayEvent
	recoveries    []relayEvent
	errors        []relayEvent
	warnings      []relayEvent
	eos           bool
}

func (t *tracker) apply(ev relayEvent) {
	switch ev.Kind {
	case eventPlaying:
		t.playing = true
	case eventRestart:
		if !t.retrying {
			t.retrying = true
			t.retryingSince = ev.At
		}
		t.restarts = append(t.restarts, ev)
	case eventRecovered:
		t.retrying = false
		t.recoveries = append(t.recoveries, ev)
	case eventError:
		t.errors = append(t.errors, ev)
	case eventWarning:
		t.warnings = append(t.warnings, ev)
	case eventEOS:
		t.eos = true
	}
}

// status is the relay's state in a few words.
func (t *tracker) status(now time.Duration, exited bool) string {
	switch {
	case exited:
		return "EXITED"
	case t.retrying:
		return fmt.Sprintf("retrying for %.1fs", (now - t.retryingSince).Seconds())
	case t.playing:
		return "running"
	}
	return "starting"
}

func (t *tracker) lastOutage() (time.Duration, bool) {
	if len(t.recoveries) == 0 {
		return 0, false
	}
	return t.recoveries[len(t.recoveries)-1].Outage, true
}

// restartsByReason counts restarts per reason; reasons the demo does not
// know are counted under their own name so nothing is hidden.
func (t *tracker) restartsByReason() map[string]int {
	counts := map[string]int{}
	for _, ev := range t.restarts {
		counts[ev.Reason]++
	}
	return counts
}

// formatReasons renders counts as "error=1, eos=0, stall=2, start-failed=3".
func formatReasons(counts map[string]int) string {
	var parts []string
	known := map[string]bool{}
	for _, r := range restartReasons {
		known[r] = true
		parts = append(parts, fmt.Sprintf("%s=%d", r, counts[r]))
	}
	for r, n := range counts {
		if !known[r] {
			parts = append(parts, fmt.Sprintf("%s=%d", r, n))
		}
	}
	return strings.Join(parts, ", ")
}

// progressSnapshot is everything one progress line shows.
type progressSnapshot struct {
	Elapsed, Total time.Duration
	Source         sourceState
	Relay          string
	Restarts       int
	LastOutage     time.Duration
	HaveOutage     bool
	// OutputBytes is the MKV's size; negative when there is no local file
	// (kvssink) or it does not exist yet.
	OutputBytes int64
}

func progressLine(p progressSnapshot) string {
	outage := "-"
	if p.HaveOutage {
		outage = fmt.Sprintf("%.1fs", p.LastOutage.Seconds())
	}
	out := "-"
	if p.OutputBytes >= 0 {
		out = formatBytes(p.OutputBytes)
	}
	return fmt.Sprintf("[%3.0fs/%.0fs] source: %-13s | relay: %-20s | restarts: %2d | last outage: %5s | mkv: %s",
		p.Elapsed.Seconds(), p.Total.Seconds(), p.Source, p.Relay, p.Restarts, outage, out)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// eventLine is what the demo prints the moment something happens; ok=false
// for events that need no line of their own. restarts is the number of
// restarts so far, this one included. (The element's own attempt number
// counts consecutive failures and only resets after 10 s of steady
// streaming, so it is shown as the backoff step, not as a count.)
func eventLine(ev relayEvent, restarts int) (string, bool) {
	at := fmt.Sprintf("%7.1fs", ev.At.Seconds())
	switch ev.Kind {
	case eventRestart:
		detail := ev.Error
		if detail == "" {
			detail = "no detail"
		}
		return fmt.Sprintf("%s  >> relay RESTART #%d: reason=%s (%s); backoff step %d, next attempt in %.2fs", at, restarts, ev.Reason, detail, ev.Attempt, ev.Delay.Seconds()), true
	case eventRecovered:
		return fmt.Sprintf("%s  << relay RECOVERED: outage %.1fs, %d attempt(s)", at, ev.Outage.Seconds(), ev.Attempts), true
	case eventError:
		return fmt.Sprintf("%s  !! relay ERROR: %s", at, ev.Text), true
	case eventWarning:
		return fmt.Sprintf("%s  !  relay warning: %s", at, ev.Text), true
	case eventEOS:
		return fmt.Sprintf("%s  relay pipeline reached end of stream", at), true
	}
	return "", false
}

// sourceLine announces what the scheduler just did to the source.
func sourceLine(at time.Duration, prev, cur phase) string {
	when := fmt.Sprintf("%7.1fs", at.Seconds())
	switch {
	case cur.State == sourceKilled:
		return fmt.Sprintf("%s  ** source KILLED for %.1fs: server gone, connections refused", when, cur.Length.Seconds())
	case cur.State == sourceFrozen:
		return fmt.Sprintf("%s  ** source FROZEN for %.1fs (SIGSTOP): connection stays open, no error, no data; only stall-timeout can see it", when, cur.Length.Seconds())
	case prev.State == sourceFrozen:
		return fmt.Sprintf("%s  ** source back up: the hung server was killed and started fresh", when)
	}
	return fmt.Sprintf("%s  ** source back up", when)
}
