package main

import (
	"fmt"
	"time"
)

// sourceState is what the demo's scheduler is doing to the flaky source.
type sourceState int

const (
	// sourceUp: the source server runs and streams.
	sourceUp sourceState = iota
	// sourceKilled: the server process is gone; connections are refused.
	sourceKilled
	// sourceFrozen: the server is stopped with SIGSTOP. The kernel keeps its
	// TCP connections open and even accepts new ones, but no byte flows and
	// no error is raised: only a stall timeout can notice.
	sourceFrozen
)

func (s sourceState) String() string {
	switch s {
	case sourceUp:
		return "up"
	case sourceKilled:
		return "DOWN (killed)"
	case sourceFrozen:
		return "FROZEN"
	}
	return fmt.Sprintf("sourceState(%d)", int(s))
}

// phase is one stretch of the timetable, as offsets from the demo's start.
type phase struct {
	State  sourceState
	Start  time.Duration
	Length time.Duration
}

func (p phase) End() time.Duration { return p.Start + p.Length }

// schedule is the whole timetable, phases back to back from 0 to the end.
type schedule []phase

// The timetable is written for the default 45 s run and scaled to -duration.
// Each phase has a floor so that a short run still shows something real: the
// first healthy stretch covers gst-launch starting up, a kill must outlast a
// few reconnect attempts, a freeze must outlast the demo's 2 s stall timeout
// with room to spare, and the healthy stretches after a fault must leave time
// to recover and then stream visibly before the next fault or the end.
var (
	referenceDuration = 45 * time.Second
	timetable         = []struct {
		state sourceState
		share time.Duration // length within the 45 s reference run
		floor time.Duration
	}{
		{sourceUp, 8 * time.Second, 3 * time.Second},
		{sourceKilled, 5 * time.Second, 3 * time.Second},
		{sourceUp, 11 * time.Second, 4 * time.Second},
		{sourceFrozen, 6 * time.Second, 4 * time.Second},
		// The last phase takes whatever is left; its share is only used for
		// the minimum check.
		{sourceUp, 15 * time.Second, 4 * time.Second},
	}
)

// minDemoDuration is the shortest -duration that keeps every phase at or
// above its floor (checked by planSchedule).
const minDemoDuration = 20 * time.Second

// planSchedule scales the reference timetable to total. Boundaries are
// rounded to 100 ms so that the printed timetable reads cleanly.
func planSchedule(total time.Duration) (schedule, error) {
	if total < minDemoDuration {
		return nil, fmt.Errorf("-duration %v is too short: the demo needs at least %v to show a killed and a frozen source and the recovery from each", total, minDemoDuration)
	}
	var plan schedule
	var start time.Duration
	for i, step := range timetable {
		length := time.Duration(float64(step.share) * float64(total) / float64(referenceDuration))
		length = max(length, step.floor).Round(100 * time.Millisecond)
		if i == len(timetable)-1 {
			length = total - start
			if length < step.floor {
				return nil, fmt.Errorf("-duration %v leaves only %v of streaming after the last fault (need %v)", total, length, step.floor)
			}
		}
		plan = append(plan, phase{State: step.state, Start: start, Length: length})
		start += length
	}
	return plan, nil
}

// faults returns the phases in which the source is hurt.
func (s schedule) faults() []phase {
	var out []phase
	for _, p := range s {
		if p.State != sourceUp {
			out = append(out, p)
		}
	}
	return out
}

// total is the planned length of the whole run.
func (s schedule) total() time.Duration {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].End()
}
