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

// MaxStreams is how many streams (pads) one Output keeps apart.
const MaxStreams = 4

// Output is the continuous output timeline of a bin's streams (video,
// audio): one offset per source instance shared by all its streams, so they
// stay in sync, and an end per stream, so none goes backwards. It is safe for
// concurrent use.
type Output struct {
	mu      sync.Mutex
	offset  int64
	placed  bool              // the current instance's offset is known
	lastEnd [MaxStreams]int64 // output running time just past each stream's last buffer
	any     [MaxStreams]bool  // the stream has output anything
	filling [MaxStreams]bool  // fill buffers may be made for the stream
	// rate is the sample rate of a stream whose buffers can be cut at any
	// sample (raw interleaved audio, G.711), 0 for the others.
	rate [MaxStreams]int
}

// SetSampleRate says the stream's buffers are samples at rate per second
// that can be cut at any sample (0: they cannot). Place then trims the
// part of a buffer that overlaps what went out instead of sending it.
func (o *Output) SetSampleRate(stream, rate int) {
	o.mu.Lock()
	o.rate[stream] = max(rate, 0)
	o.mu.Unlock()
}

// OpenFill lets NextFill make fill buffers for stream, until a source
// buffer is placed on it (Place) or CloseFill.
func (o *Output) OpenFill(stream int) {
	o.mu.Lock()
	o.filling[stream] = true
	o.mu.Unlock()
}

// CloseFill stops fill buffers for stream; it reports whether they were on.
func (o *Output) CloseFill(stream int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	was := o.filling[stream]
	o.filling[stream] = false
	return was
}

// Filling reports whether fill buffers are on for stream.
func (o *Output) Filling(stream int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.filling[stream]
}

// StartInstance makes the next Place compute a fresh offset for a new
// source instance.
func (o *Output) StartInstance() {
	o.mu.Lock()
	o.placed = false
	o.mu.Unlock()
}

func (o *Output) endAll() (int64, bool) {
	var end int64
	found := false
	for i := range o.lastEnd {
		if o.any[i] && (!found || o.lastEnd[i] > end) {
			end, found = o.lastEnd[i], true
		}
	}
	return end, found
}

// Placement is where Place put a buffer.
type Placement struct {
	PTS, DTS int64 // output timestamps (None where the input had none)
	// OK is false when the buffer has no timestamp at all: pass it on untouched.
	OK bool
	// Late: drop the buffer. It would go backwards in its own stream (it
	// overlaps what went out already), or it would start before the output
	// timeline does (BeforeStart).
	Late bool
	// BeforeStart: the buffer maps before output running time 0, which has
	// no timestamp (Late is set too).
	BeforeStart bool
	// TookOver: fill buffers were on for the stream and now end; wait for
	// the last one to go out before this buffer.
	TookOver bool
	// PrevEnd is the stream's end before this buffer (HadPrev: it had one),
	// so a caller can pad a hole between fill and source.
	PrevEnd int64
	HadPrev bool
	// TrimSamples: cut this many samples off the buffer's head (PTS and
	// DTS already point past them). Only on a stream with a sample rate
	// (SetSampleRate) whose buffer starts inside what went out already
	// and ends after it.
	TrimSamples int64
}

// Place maps one buffer of the current instance on stream (0..MaxStreams-1).
// pts and dts are the buffer's running times in its instance's segment
// (None when absent), duration its duration (None when unknown), now the
// pipeline clock's running time (None without a clock). The instance's first
// buffer, on any stream, fixes its offset: at now, or right after that
// stream's last buffer if that is later. Placing a buffer that is not late
// ends fill buffers on its stream: from here the source has the stream, and
// no fill buffer can be stamped after it.
func (o *Output) Place(stream int, pts, dts, duration, now int64) Placement {
	ref := pts
	if dts != None && (ref == None || dts < ref) {
		ref = dts // decode order must stay monotonic too
	}
	if ref == None {
		return Placement{PTS: None, DTS: None}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.placed {
		target := ref
		if now != None {
			target = now
		}
		// After the stream's own end (another stream that ran ahead would
		// leave a hole here; its overlapping buffers are dropped as late
		// instead), or after everything when the stream is new.
		end, any := o.lastEnd[stream], o.any[stream]
		if !any {
			end, any = o.endAll()
		}
		if any && target < end {
			target = end
		}
		o.offset = target - ref
		o.placed = true
	}
	p := Placement{PTS: None, DTS: None, OK: true, PrevEnd: o.lastEnd[stream], HadPrev: o.any[stream]}
	if pts != None {
		p.PTS = pts + o.offset
	}
	if dts != None {
		p.DTS = dts + o.offset
	}
	start := ref + o.offset
	if start < 0 {
		// The instance was placed by another stream's first buffer, which
		// ran ahead of the clock (an HLS segment pushed faster than real
		// time at the start: audio at 128 ms of its own running time placed
		// at the clock's 104 ms), and this stream starts earlier in the
		// instance (videorate's first frame at its segment's 0): it would
		// leave at -24 ms, which as a GstClockTime is no timestamp at all.
		// A frame without timestamps became x264enc's first keyframe (which
		// kvssink drops: a HEADER buffer without PTS/DTS), and x264enc sent
		// its segment before it knew its 1000 h min-pts adjustment, so every
		// later frame ran 1000 h ahead of the audio and kvssink's
		// collectpads never took one. Everything from 0 on keeps the shared
		// offset, so the streams stay in sync.
		p.Late, p.BeforeStart = true, true
		return p
	}
	if rate := o.rate[stream]; rate > 0 && o.any[stream] && start < o.lastEnd[stream] && duration > 0 {
		// Audio whose timestamps jitter (RTP under load: a 128 ms G.711
		// packet stamped 31 ms before the previous one ended) would make
		// the samples downstream overlap: audioresample resyncs and sends
		// its tail after the earlier start, and the AAC encoder's output
		// steps back, which kvssink refuses (and the next video frame
		// with it, its DTS filled in from the audio's). The samples of the
		// overlap are for a time that went out already: cut them.
		// Rounded to the nearest sample: durations are rounded too.
		n := ((o.lastEnd[stream]-start)*int64(rate) + nsPerSecond/2) / nsPerSecond
		cut := n * nsPerSecond / int64(rate)
		if cut >= duration {
			p.Late = true
			return p
		}
		if n > 0 {
			p.TrimSamples = n
			p.PTS, start, duration = addNone(p.PTS, cut), start+cut, duration-cut
			p.DTS = addNone(p.DTS, cut)
		}
	}
	if o.any[stream] && start < o.lastEnd[stream]-maxOverlap {
		p.Late = true
		return p
	}
	p.TookOver = o.filling[stream]
	o.filling[stream] = false
	end := start
	if duration > 0 {
		end += duration
	} else {
		end++
	}
	if !o.any[stream] || end > o.lastEnd[stream] {
		o.lastEnd[stream] = end
	}
	o.any[stream] = true
	return p
}

const nsPerSecond = int64(1_000_000_000)

// addNone adds d to a timestamp, keeping None.
func addNone(ts, d int64) int64 {
	if ts == None {
		return None
	}
	return ts + d
}

// maxOverlap tolerates buffers that start a little before the previous one
// ended (durations are often rounded): only a real step back is late.
const maxOverlap = 1_000_000 // 1 ms

// NextFill returns the output timestamp for a fill buffer (fallback frame or
// silence) of the given duration on stream, continuing right after that
// stream's last buffer (at now when the stream has none; without a clock,
// after the latest of all streams), and records it as output.
// ok is false once fill is closed on the stream.
func (o *Output) NextFill(stream int, duration, now int64) (pts int64, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.filling[stream] {
		return None, false
	}
	pts = o.lastEnd[stream]
	if !o.any[stream] {
		// A stream's first buffer has nothing of its own to follow: it
		// starts now, beside the other streams (silence started with the
		// first black frame starts with it, not a frame later). Without a
		// clock, after everything.
		var any bool
		if now != None {
			pts = now
		} else if pts, any = o.endAll(); !any {
			pts = 0
		}
	}
	o.lastEnd[stream] = pts + duration
	o.any[stream] = true
	return pts, true
}

// LastEndOf is LastEnd for one stream.
func (o *Output) LastEndOf(stream int) (int64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lastEnd[stream], o.any[stream]
}

// LastEnd is the output running time just past the latest buffer out on any
// stream, and whether anything went out yet.
func (o *Output) LastEnd() (int64, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.endAll()
}
