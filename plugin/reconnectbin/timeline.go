package reconnectbin

import (
	"sync/atomic"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
)

// timeline keeps the bin's output one continuous stream across source
// instances: one stream-start for the life of the bin, running time that
// follows the pipeline clock and never goes backwards (each new instance's
// first buffer is placed at "now", or just after the last buffer out if that
// is later), and no DISCONT flag (kvssink drops a keyframe whose only flag is
// DISCONT). It is touched only from the src pad's streaming thread, one
// instance at a time, so plain fields would do; atomics keep -race quiet and
// let properties read it.
type timeline struct {
	streamStarted atomic.Bool
	endRequested  atomic.Bool
	framesOut     atomic.Uint64
	// lastEnd is the output running time (ns) just past the last buffer out.
	lastEnd atomic.Int64
	offset  atomic.Int64
}

func (t *timeline) reset() {
	t.streamStarted.Store(false)
	t.endRequested.Store(false)
	t.framesOut.Store(0)
	t.lastEnd.Store(0)
	t.offset.Store(0)
}

// outputProbe runs on the bin's src pad for every buffer and downstream event.
func (b *reconnectBin) outputProbe(pad *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
	t := &b.out
	if info.Type()&gst.PadProbeTypeEventDownstream != 0 {
		if ev := info.GetEvent(); ev != nil && ev.Type() == gst.EventTypeStreamStart {
			if t.streamStarted.Swap(true) {
				return gst.PadProbeDrop
			}
		}
		return gst.PadProbeOK
	}
	if info.Type()&gst.PadProbeTypeBuffer == 0 {
		return gst.PadProbeOK
	}
	if t.endRequested.Load() {
		return gst.PadProbeDrop
	}
	buf := info.GetBuffer()
	if buf == nil {
		return gst.PadProbeOK
	}
	c := b.child.Load()
	if c == nil {
		return gst.PadProbeOK
	}
	c.mu.Lock()
	seg := c.segment
	c.mu.Unlock()
	childRT, ok := bufferRunningTime(seg, buf)
	if ok && !c.offsetSet.Swap(true) {
		target := int64(childRT)
		if now := gstshim.RunningTimeNow(b.self.Element); now != gst.ClockTimeNone {
			target = int64(now)
		}
		if last := t.lastEnd.Load(); target < last {
			target = last
		}
		off := target - int64(childRT)
		t.offset.Store(off)
		// Setting the offset makes the pad resend its sticky events (the
		// segment) with the new running time before this buffer.
		b.srcPad.SetOffset(off)
		cat.LogDebug("source instance output offset set")
	}
	if ok {
		end := int64(childRT) + t.offset.Load()
		if d := buf.Duration(); d != gst.ClockTimeNone {
			end += int64(d)
		} else {
			end++
		}
		if end > t.lastEnd.Load() {
			t.lastEnd.Store(end)
		}
	}
	if buf.HasFlags(gst.BufferFlagDiscont) {
		gstshim.SetProbeBufferFlags(info, 0, gst.BufferFlagDiscont)
	}
	t.framesOut.Add(1)
	return gst.PadProbeOK
}

// bufferRunningTime is the buffer's earliest timestamp (DTS before PTS, so
// that decode order stays monotonic too) as running time in the instance's
// own segment.
func bufferRunningTime(seg *gst.Segment, buf *gst.Buffer) (gst.ClockTime, bool) {
	if seg == nil || seg.GetFormat() != gst.FormatTime {
		return 0, false
	}
	ts := buf.PresentationTimestamp()
	if dts := buf.DecodingTimestamp(); dts != gst.ClockTimeNone && (ts == gst.ClockTimeNone || dts < ts) {
		ts = dts
	}
	if ts == gst.ClockTimeNone {
		return 0, false
	}
	rt := seg.ToRunningTime(gst.FormatTime, uint64(ts))
	if rt == uint64(gst.ClockTimeNone) {
		return 0, false
	}
	return gst.ClockTime(rt), true
}
