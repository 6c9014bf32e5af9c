package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// faultRecord is a fault as the scheduler actually injected it (measured
// times, which can drift a little from the plan).
type faultRecord struct {
	State      sourceState
	Start, End time.Duration
}

func (f faultRecord) Length() time.Duration { return f.End - f.Start }

// faultOutcome is how the relay dealt with one fault.
type faultOutcome struct {
	Fault    faultRecord
	Restarts map[string]int
	Total    int // restarts in this fault's window

	Detected      bool
	DetectedAfter time.Duration // from the fault's start to the first restart
	FirstReason   string
	SawStall      bool

	Recovered bool
	// Outage is reconnectbin's own measure, from the failure it acted on to
	// the first buffer of the new source.
	Outage time.Duration
	// BackAfter is the time from the source coming back to the relay's
	// recovery.
	BackAfter time.Duration
}

// analyseFaults assigns each restart and recovery to the fault whose window
// (from its start to the next fault's start, the last one to runEnd) holds
// it. Restarts before the first fault are returned separately: they are
// failures nobody caused.
func analyseFaults(faults []faultRecord, restarts, recoveries []relayEvent, runEnd time.Duration) (outcomes []faultOutcome, unprovoked []relayEvent) {
	for _, ev := range restarts {
		if len(faults) == 0 || ev.At < faults[0].Start {
			unprovoked = append(unprovoked, ev)
		}
	}
	for i, f := range faults {
		windowEnd := runEnd
		if i+1 < len(faults) {
			windowEnd = faults[i+1].Start
		}
		o := faultOutcome{Fault: f, Restarts: map[string]int{}}
		for _, ev := range restarts {
			if ev.At < f.Start || ev.At >= windowEnd {
				continue
			}
			if !o.Detected {
				o.Detected = true
				o.DetectedAfter = ev.At - f.Start
				o.FirstReason = ev.Reason
			}
			o.Total++
			o.Restarts[ev.Reason]++
			if ev.Reason == "stall" {
				o.SawStall = true
			}
		}
		if o.Detected {
			firstRestart := f.Start + o.DetectedAfter
			for _, ev := range recoveries {
				if ev.At >= firstRestart && ev.At < windowEnd {
					o.Recovered = true
					o.Outage = ev.Outage
					o.BackAfter = ev.At - f.End
					break
				}
			}
		}
		outcomes = append(outcomes, o)
	}
	return outcomes, unprovoked
}

// runFacts is everything the verdict depends on.
type runFacts struct {
	Outcomes   []faultOutcome
	Unprovoked []relayEvent
	Tracker    *tracker

	Interrupted bool
	// RelayExitedEarly: gst-launch ended before the demo asked it to.
	RelayExitedEarly bool
	RelayExit        string
	RelayExitAt      time.Duration
	RelayTail        []string
	StopForced       bool
	StopTook         time.Duration
	StopErr          error

	SourceDied int

	Sink relaySink
	// Recording is nil when there is no local file to check (kvssink).
	Recording      *recordingCheck
	RecordingErr   error
	DecodeProblems []string
	DecodeErr      error

	LogDir string
}

// problems lists every reason the demo failed; none means it passed.
func (r runFacts) problems() []string {
	var out []string
	if r.Interrupted {
		out = append(out, "interrupted before the end (Ctrl-C)")
	}
	if r.RelayExitedEarly {
		out = append(out, fmt.Sprintf("the relay's gst-launch-1.0 exited on its own at %.1fs (%s)", r.RelayExitAt.Seconds(), r.RelayExit))
	}
	if r.SourceDied > 0 {
		out = append(out, fmt.Sprintf("the test source died on its own %d time(s), so the faults were not the ones planned", r.SourceDied))
	}
	for i, o := range r.Outcomes {
		name := fmt.Sprintf("fault #%d (%s at %.1fs)", i+1, faultName(o.Fault.State), o.Fault.Start.Seconds())
		switch {
		case r.Interrupted && !o.Recovered:
			// An interrupted run does not get to judge recoveries.
		case !o.Detected:
			out = append(out, name+": the relay never noticed it (no restart)")
		case !o.Recovered:
			out = append(out, name+": the relay did not recover before the end")
		case o.Fault.State == sourceFrozen && !o.SawStall:
			out = append(out, name+": no restart with reason=stall; stall detection did not fire")
		}
	}
	if len(r.Unprovoked) > 0 {
		out = append(out, fmt.Sprintf("%d restart(s) before any fault was injected (first: reason=%s, %s)",
			len(r.Unprovoked), r.Unprovoked[0].Reason, r.Unprovoked[0].Error))
	}
	if r.StopForced {
		out = append(out, "the relay did not exit after SIGINT and had to be killed; its output may not be finalised")
	} else if r.StopErr != nil {
		out = append(out, "stopping the relay: "+r.StopErr.Error())
	}
	if r.Sink.KVSStreamName == "" {
		switch {
		case r.RecordingErr != nil:
			out = append(out, "checking the recording: "+r.RecordingErr.Error())
		case r.Recording == nil:
		case r.Recording.Frames == 0:
			out = append(out, "the recording has no video frames")
		case !r.Recording.Monotonic():
			b := r.Recording.Backsteps[0]
			out = append(out, fmt.Sprintf("timestamps go backwards %d time(s) in the recording (first: %s %.3fs -> %.3fs at packet %d)",
				len(r.Recording.Backsteps), b.Field, b.From, b.To, b.Packet))
		}
		if r.DecodeErr != nil {
			out = append(out, "decoding the recording: "+r.DecodeErr.Error())
		} else if len(r.DecodeProblems) > 0 {
			out = append(out, fmt.Sprintf("ffmpeg reported %d decoding error(s), first: %s", len(r.DecodeProblems), r.DecodeProblems[0]))
		}
	}
	return out
}

func faultName(s sourceState) string {
	switch s {
	case sourceKilled:
		return "source killed"
	case sourceFrozen:
		return "source frozen"
	}
	return s.String()
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }

// writeSummary prints the end-of-run report. The "Restarts:" line is stable
// so that scripts (and the end-to-end test) can read it.
func writeSummary(w io.Writer, r runFacts) (ok bool) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "==================== kvsrelay demo: summary ====================")
	var faultTotal, outageTotal time.Duration
	fmt.Fprintf(w, "Faults injected: %d\n", len(r.Outcomes))
	for i, o := range r.Outcomes {
		faultTotal += o.Fault.Length()
		fmt.Fprintf(w, "  #%d at %6s  %-13s for %s: ", i+1, secs(o.Fault.Start), faultName(o.Fault.State), secs(o.Fault.Length()))
		if !o.Detected {
			fmt.Fprintln(w, "NOT DETECTED (no restart)")
			continue
		}
		fmt.Fprintf(w, "detected after %s (reason=%s), %d restart(s) [%s]", secs(o.DetectedAfter), o.FirstReason, o.Total, formatReasons(o.Restarts))
		if o.Recovered {
			outageTotal += o.Outage
			fmt.Fprintf(w, ", recovered %s after the source came back; outage %s\n", secs(o.BackAfter), secs(o.Outage))
		} else {
			fmt.Fprintln(w, ", NOT RECOVERED")
		}
	}
	t := r.Tracker
	fmt.Fprintf(w, "Restarts: %d (%s)\n", len(t.restarts), formatReasons(t.restartsByReason()))
	if len(t.recoveries) > 0 {
		var list []string
		for _, ev := range t.recoveries {
			list = append(list, secs(ev.Outage))
		}
		fmt.Fprintf(w, "Outages (reconnectbin's measure, failure noticed -> first new buffer): %s\n", strings.Join(list, ", "))
	}
	fmt.Fprintf(w, "Total outage %s (reconnectbin's measure) for %s of injected faults\n", secs(outageTotal), secs(faultTotal))
	if len(t.recoveries) > 0 {
		fmt.Fprintln(w, "  Why they differ: once the source is back the relay first waits out its current backoff (at most")
		fmt.Fprint(w, "  max-retry-delay, 2s); a freeze only counts from the moment stall-timeout noticed it.")
		if r.Sink.KVSStreamName == "" {
			fmt.Fprint(w, " The picture gaps\n  in the recording (below) are what a viewer sees.")
		}
		fmt.Fprintln(w)
	}
	if len(r.Unprovoked) > 0 {
		fmt.Fprintf(w, "Restarts before any fault: %d\n", len(r.Unprovoked))
	}
	if len(t.errors) > 0 {
		fmt.Fprintf(w, "ERROR messages from the relay: %d, first: %s\n", len(t.errors), t.errors[0].Text)
	}
	if len(t.warnings) > 0 {
		fmt.Fprintf(w, "WARNING messages from the relay: %d, first: %s\n", len(t.warnings), t.warnings[0].Text)
	}

	switch {
	case r.RelayExitedEarly:
		fmt.Fprintf(w, "Relay process: EXITED EARLY at %s (%s). Its last lines:\n", secs(r.RelayExitAt), r.RelayExit)
		for _, l := range r.RelayTail {
			fmt.Fprintln(w, "    "+l)
		}
	case r.StopForced:
		fmt.Fprintf(w, "Relay process: ran the whole demo, but HUNG after SIGINT and was killed after %s\n", secs(r.StopTook))
	default:
		fmt.Fprintf(w, "Relay process: ran the whole demo without exiting; stopped by SIGINT (EOS) in %v\n", r.StopTook.Round(time.Millisecond))
	}

	if r.Sink.KVSStreamName != "" {
		fmt.Fprintf(w, "Output: sent to Kinesis Video stream %q; check it in the KVS console (no local file to verify)\n", r.Sink.KVSStreamName)
	} else {
		writeRecording(w, r)
	}

	problems := r.problems()
	if len(problems) == 0 {
		fmt.Fprintf(w, "RESULT: PASS - the relay survived every fault")
		if r.Sink.KVSStreamName == "" {
			fmt.Fprintf(w, " and %s is monotonic and plays start to end", r.Sink.MKVPath)
		}
		fmt.Fprintln(w)
		return true
	}
	fmt.Fprintf(w, "Logs of the source and the relay: %s\n", r.LogDir)
	if r.Interrupted {
		fmt.Fprintln(w, "RESULT: INTERRUPTED (no verdict)")
	} else {
		fmt.Fprintln(w, "RESULT: FAIL")
	}
	for _, p := range problems {
		fmt.Fprintln(w, "  - "+p)
	}
	return false
}

func writeRecording(w io.Writer, r runFacts) {
	fmt.Fprintf(w, "Recording %s: ", r.Sink.MKVPath)
	switch {
	case r.RecordingErr != nil:
		fmt.Fprintf(w, "could not be checked: %v\n", r.RecordingErr)
		return
	case r.Recording == nil && r.Interrupted:
		fmt.Fprintln(w, "not checked (interrupted)")
		return
	case r.Recording == nil:
		fmt.Fprintln(w, "not checked")
		return
	}
	c := r.Recording
	fmt.Fprintf(w, "%d frames (%d keyframes) over %.1fs of timeline\n", c.Frames, c.Keyframes, c.Duration())
	if c.Monotonic() {
		fmt.Fprintln(w, "  timestamps: monotonic (no pts/dts ever goes backwards)")
	} else {
		fmt.Fprintf(w, "  timestamps: GO BACKWARDS %d time(s)\n", len(c.Backsteps))
	}
	if len(c.Gaps) > 0 {
		var list []string
		var total float64
		for _, g := range c.Gaps {
			list = append(list, fmt.Sprintf("%.1fs at %.1fs", g.Length, g.At))
			total += g.Length
		}
		fmt.Fprintf(w, "  picture gaps (the outages as a viewer sees them, %.1fs in total): %s\n", total, strings.Join(list, ", "))
	}
	switch {
	case r.DecodeErr != nil:
		fmt.Fprintf(w, "  decoding: could not run ffmpeg: %v\n", r.DecodeErr)
	case len(r.DecodeProblems) == 0:
		fmt.Fprintln(w, "  decoding: ffmpeg decodes it from start to end without errors")
	default:
		fmt.Fprintf(w, "  decoding: %d ERROR line(s) from ffmpeg, first: %s\n", len(r.DecodeProblems), r.DecodeProblems[0])
	}
}
