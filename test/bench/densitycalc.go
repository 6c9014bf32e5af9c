package main

// The density scenario's arithmetic, kept apart from the processes it
// measures so that table tests cover it (densitycalc_test.go): reading CPU
// time and memory from /proc, the share of the camera's frames a relay
// delivered, whether a ramp step held, which step comes next, and what the
// ramp adds up to.

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc (USER_HZ, "clock ticks"):
// 100 on every Linux architecture, whatever the kernel's own tick rate.
const userHZ = 100

// procCPUTicks returns utime+stime from the text of /proc/<pid>/stat: the
// CPU time of all the process's threads, running and ended, in USER_HZ
// ticks. The command name (field 2) is in parentheses and may itself hold
// spaces and parentheses, so the fields are counted from the last ')'.
func procCPUTicks(stat []byte) (uint64, error) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("no command name in %q", firstLine(stat))
	}
	// After the name: state (field 3), ..., utime (14), stime (15).
	fields := strings.Fields(string(stat[end+1:]))
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("%d fields after the command name, want more than %d", len(fields), stime)
	}
	u, err := strconv.ParseUint(fields[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime %q: %w", fields[utime], err)
	}
	s, err := strconv.ParseUint(fields[stime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime %q: %w", fields[stime], err)
	}
	return u + s, nil
}

// machineCPU is the machine's CPU time over all cores since boot, from the
// first line of /proc/stat, in USER_HZ ticks.
type machineCPU struct {
	busy, total uint64
}

// parseMachineCPU reads the "cpu" line of /proc/stat: user nice system
// idle iowait irq softirq steal (guest time is already counted in user).
// Idle and iowait are the idle time; everything else is busy.
func parseMachineCPU(stat []byte) (machineCPU, error) {
	line := firstLine(stat)
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return machineCPU{}, fmt.Errorf("first line of /proc/stat is %q, want \"cpu\" and 8 counters", line)
	}
	var m machineCPU
	for i, f := range fields[1:9] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return machineCPU{}, fmt.Errorf("/proc/stat cpu counter %d %q: %w", i+1, f, err)
		}
		m.total += v
		if i != 3 && i != 4 { // idle, iowait
			m.busy += v
		}
	}
	return m, nil
}

// busyShare is the share of the machine's CPU time that was busy from m to
// later (0..1), 0 when no time passed.
func (m machineCPU) busyShare(later machineCPU) float64 {
	total := later.total - m.total
	if later.total <= m.total {
		return 0
	}
	return float64(later.busy-m.busy) / float64(total)
}

// parsePssKiB reads the Pss line (KiB) of /proc/<pid>/smaps_rollup: the
// process's resident memory with every page shared with other processes
// divided among them, so that N relay processes sharing GStreamer's and
// the plugin's libraries add up to what they really hold together (their
// RSS sum counts each shared page N times).
func parsePssKiB(rollup []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(rollup))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || key != "Pss" {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("no Pss line in smaps_rollup")
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line)
}

// frameCount is how many frames a relay's kvssink had taken, as of At: the
// moment that count was true (the stand-in report's updated_at, the end of
// the last fragment the endpoint received), not when the bench read it.
type frameCount struct {
	At     time.Time
	Frames uint64
}

// deliveredShare is the share of the camera's frames (fps a second) a
// relay delivered between two counts, read at readAt. The counts' own
// times make the span, so that how stale each count was when read does
// not skew it (a stand-in report is rewritten every 250 ms, a fragment
// ends every 2 s). A count older than staleAfter at readAt means frames
// stopped coming: the span then runs to readAt, so that a relay that
// delivered only the first half of the window shows about half.
func deliveredShare(start, end frameCount, readAt time.Time, fps float64, staleAfter time.Duration) float64 {
	if end.Frames < start.Frames || fps <= 0 {
		return 0
	}
	until := end.At
	if readAt.Sub(end.At) > staleAfter {
		until = readAt
	}
	span := until.Sub(start.At).Seconds()
	if span <= 0 {
		return 0
	}
	return float64(end.Frames-start.Frames) / (fps * span)
}

// densityCriteria say when a step of the ramp holds.
type densityCriteria struct {
	// MinShare is the share of the camera's frames every relay must
	// deliver over the window.
	MinShare float64
	// MaxBusy is the most of the machine's CPU (all cores) the window may
	// use: beyond it the machine has no room left for a burst, a
	// reconnect or the rest of the system, whatever the frames say.
	MaxBusy float64
}

// defaultDensityCriteria: 98% of the frames, 90% of the machine.
var defaultDensityCriteria = densityCriteria{MinShare: 0.98, MaxBusy: 0.90}

// densityStep is one step of the ramp: N relays, measured over a window.
type densityStep struct {
	Relays int
	// RelayCPU is the relays' CPU time over the window per second of it,
	// summed over their processes (1 = one core busy).
	RelayCPU float64
	// RSSKiB, PSSKiB and Threads sum the relays' processes at the
	// window's end.
	RSSKiB, PSSKiB int64
	Threads        int
	// Shares holds each relay's deliveredShare (relay order).
	Shares []float64
	// Restarts counts reconnectbin-restart messages within the window.
	Restarts int
	// Failures says which relays exited, posted an ERROR or never
	// delivered a frame (any time up to the window's end).
	Failures []string
	// CameraCPU, BenchCPU (the bench process, with the local KVS endpoint
	// when the real kvssink uploads to it) are per second as RelayCPU;
	// MachineBusy is the share of all cores busy (0..1).
	CameraCPU, BenchCPU, MachineBusy float64
	Holds                            bool
	Why                              string // why it did not hold
}

// verdict says whether a step held and, if not, why.
func (c densityCriteria) verdict(s densityStep) (bool, string) {
	var why []string
	if len(s.Failures) > 0 {
		why = append(why, strings.Join(s.Failures, "; "))
	}
	if len(s.Shares) < s.Relays {
		why = append(why, fmt.Sprintf("frames counted for %d of %d relays", len(s.Shares), s.Relays))
	}
	below := 0
	worst := 1.0
	for _, sh := range s.Shares {
		if sh < c.MinShare {
			below++
		}
		worst = min(worst, sh)
	}
	if below > 0 {
		why = append(why, fmt.Sprintf("%d relay(s) delivered under %.0f%% of the camera's frames (worst %.1f%%)", below, c.MinShare*100, worst*100))
	}
	if s.Restarts > 0 {
		why = append(why, fmt.Sprintf("%d reconnectbin restart(s) in the window", s.Restarts))
	}
	if s.MachineBusy > c.MaxBusy {
		why = append(why, fmt.Sprintf("machine %.0f%% busy (over %.0f%%)", s.MachineBusy*100, c.MaxBusy*100))
	}
	if len(why) > 0 {
		return false, strings.Join(why, "; ")
	}
	return true, ""
}

// worstAndMean are the lowest and the mean of the relays' shares.
func worstAndMean(shares []float64) (worst, mean float64, ok bool) {
	if len(shares) == 0 {
		return 0, 0, false
	}
	worst = shares[0]
	for _, s := range shares {
		worst = min(worst, s)
		mean += s
	}
	return worst, mean / float64(len(shares)), true
}

// nextDensityStep returns the relay count to measure after the step
// (index done in steps) that held or not: the next one while every step
// held, none after the first that did not or after the last.
func nextDensityStep(steps []int, done int, held bool) (int, bool) {
	if !held || done+1 >= len(steps) {
		return 0, false
	}
	return steps[done+1], true
}

// rampOutcome is what a mode's ramp came to: the last step that held
// (before any that did not) and the first that did not; -1 for none.
func rampOutcome(steps []densityStep) (held, failed int) {
	held, failed = -1, -1
	for i, s := range steps {
		if !s.Holds {
			return held, i
		}
		held = i
	}
	return held, failed
}

// perRelaySlope is what each relay added between two steps: (b-a)/(nb-na);
// false when the steps have the same count.
func perRelaySlope(na int, a float64, nb int, b float64) (float64, bool) {
	if nb == na {
		return 0, false
	}
	return (b - a) / float64(nb-na), true
}
