// Package timeline maps the timestamps of successive source instances onto
// one continuous output timeline, the way reconnectbin's src pad presents
// them: running time that follows the pipeline clock, never goes backwards,
// and has a gap exactly as long as each outage (or none, when fallback
// frames fill it).
//
// The bin pushes one TIME segment starting at 0 downstream, so an output
// timestamp is an output running time. Each source instance brings its own
// segment and timestamps (often restarting near 0); its first buffer is
// placed at the pipeline clock's running time "now", or just after the last
// buffer out if that is later, and the rest of the instance keeps its own
// spacing from there.
package timeline

import "sync"

// None marks a missing timestamp, duration or clock reading.
const None int64 = -1

// Segment is the part of a GstSegment that running time depends on.
type Segment struct {
	Time   bool // format is TIME; other formats carry no timestamps to map
	Start  uint64
	Offset uint64
	Base   uint64
	Rate   float64
}

// RunningTime converts a position in the segment to running time, as
// gst_segment_to_running_time_full does for forward playback; positions
// before the segment give negative running time. ok is false for non-TIME
// segments and reverse playback.
func (s Segment) RunningTime(pos uint64) (rt int64, ok bool) {
	if !s.Time || s.Rate <= 0 {
		return 0, false
	}
	start := s.Start + s.Offset
	rate := s.Rate
	if pos >= start {
		d := pos - start
		if rate != 1 {
			d = uint64(float64(d) / rate)
		}
		return int64(s.Base) + int64(d), true
	}
	d := start - pos
	if rate != 1 {
		d = uint64(float64(d) / rate)
	}
	return int64(s.Base) - int64(d), true
}

// Output is the continuous output timeline. It is safe for concurrent use,
// though the bin serializes its calls through the src pad's stream lock.
type Output struct {
	mu        sync.Mutex
	offset    int64
	placed    bool  // the current instance's offset is known
	lastEnd   int64 // output running time just past the last buffer out
	anyOutput bool
}

// StartInstance makes the next Place compute a fresh offset for a new
// source instance.
func (o *Output) StartInstance() {
	o.mu.Lock()
	o.placed = false
	o.mu.Unlock()
}

// Place maps one buffer of the current instance. pts and dts are the
// buffer's running times in its instance's segment (None when absent),
// duration its duration (None when unknown), now the pipeline clock's
// running time (None without a clock). It returns the output PTS and DTS
// (None where the input had none); ok is false when the buffer has no
// timestamp at all and is passed on untouched.
func (o *Output) Place(pts, dts, duration, now int64) (outPTS, outDTS int64, ok bool) {
	ref := pts
	if dts != None && (ref == None || dts < ref) {
		ref = dts // decode order must stay monotonic too
	}
	if ref == None {
		return None, None, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.placed {
		target := ref
		if now != None {
			target = now
		}
		if o.anyOutput && target < o.lastEnd {
			target = o.lastEnd
		}
		o.offset = target - ref
		o.placed = true
	}
	outPTS, outDTS = None, None
	if pts != None {
		outPTS = pts + o.offset
	}
	if dts != None {
		outDTS = dts + o.offset
	}
	end := ref + o.offset
	if duration > 0 {
		end += duration
	} else {
		end++
	}
	if !o.anyOutput || end > o.lastEnd {
		o.lastEnd = end
	}
	o.anyOutput = true
	return outPTS, outDTS, true
}

// NextFill returns the output timestamp for a fill frame (fallback) of the
// given duration, continuing right after the last buffer out (or at now when
// nothing went out yet), and records it as output.
func (o *Output) NextFill(duration, now int64) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	pts := o.lastEnd
	if !o.anyOutput {
		pts = now
		if pts == None {
			pts = 0
		}
	}
	o.lastEnd = pts + duration
	o.anyOutput = true
	return pts
}

// LastEnd is the output running time just past the last buffer out, and
// whether anything went out yet.
func (o *Output) LastEnd() (int64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastEnd, o.anyOutput
}
