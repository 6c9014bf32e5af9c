package reconnectbin

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
	"github.com/kvsrelay/kvsrelay/internal/timeline"
)

// output is what the bin's src pad shows downstream: one stream-start for
// the life of the bin, one TIME segment starting at 0 (so timestamps are
// output running time), timestamps rewritten onto one continuous timeline
// (internal/timeline), no DISCONT flag (kvssink drops a keyframe whose only
// flag is DISCONT), nothing from a rebuilt source before its first keyframe,
// and one set of caps unless on-caps-change allows otherwise.
type output struct {
	streamStarted [streamCount]atomic.Bool
	segmentSent   [streamCount]atomic.Bool
	endRequested  atomic.Bool
	framesOut     atomic.Uint64
	keyframeWaits atomic.Uint64
	capsChanges   atomic.Uint64

	timeline timeline.Output

	// lastOut is the decode timestamp of the last buffer out per stream
	// (-1: none yet); orderDrops counts buffers the order guard dropped.
	lastOut    [streamCount]atomic.Int64
	orderDrops atomic.Uint64

	capsMu    sync.Mutex
	firstCaps [streamCount]string // identity of the first caps per stream (see capsIdentity)

	// last holds the latest frame for fallback's hold phase.
	last gstshim.FrameHolder
}

func (o *output) reset() {
	for i := range o.streamStarted {
		o.streamStarted[i].Store(false)
		o.segmentSent[i].Store(false)
	}
	o.endRequested.Store(false)
	o.framesOut.Store(0)
	o.keyframeWaits.Store(0)
	o.capsChanges.Store(0)
	o.timeline = timeline.Output{}
	for i := range o.lastOut {
		o.lastOut[i].Store(-1)
	}
	o.orderDrops.Store(0)
	o.capsMu.Lock()
	o.firstCaps = [streamCount]string{}
	o.capsMu.Unlock()
	o.last.Release()
}

// outputProbe runs on the bin's src pad for every buffer and downstream
// event, from a source instance's streaming thread or the fallback
// goroutine; the pad's stream lock serializes them.
func (b *reconnectBin) outputProbe(s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	if info.Type()&(gst.PadProbeTypeEventDownstream|gst.PadProbeTypeEventFlush) != 0 {
		return b.outputEvent(s, info)
	}
	if info.Type()&gst.PadProbeTypeBuffer == 0 {
		return gst.PadProbeOK
	}
	// Source buffers were placed and rewritten on their instance's pad
	// (childBuffer); fill buffers were made on the output timeline. Here
	// only the end of the stream and the accounting remain.
	if b.out.endRequested.Load() {
		return gst.PadProbeDrop
	}
	// Per-stream order guard: fill buffers and source buffers arrive here
	// from different threads around a takeover; whatever would step back
	// in decode order is dropped rather than handed to kvssink.
	if buf := info.GetBuffer(); buf != nil {
		ts := buf.DecodingTimestamp()
		if ts == gst.ClockTimeNone && !buf.HasFlags(gst.BufferFlagDeltaUnit) {
			// Without a DTS only keyframes (and raw or fill frames) are in
			// order by PTS; B-frames are not.
			ts = buf.PresentationTimestamp()
		}
		if ts != gst.ClockTimeNone {
			last := &b.out.lastOut[s]
			for {
				prev := last.Load()
				if prev >= 0 && int64(ts) < prev {
					b.out.orderDrops.Add(1)
					return gst.PadProbeDrop
				}
				if last.CompareAndSwap(prev, int64(ts)) {
					break
				}
			}
		}
	}
	b.out.framesOut.Add(1)
	if s == streamMain {
		b.rep().dataOut()
	}
	return gst.PadProbeOK
}

func clockTime(t int64) gst.ClockTime {
	if t < 0 {
		return gst.ClockTimeNone
	}
	return gst.ClockTime(t)
}

// runningTime converts a buffer timestamp with the instance's segment.
func runningTime(seg timeline.Segment, ts gst.ClockTime) int64 {
	if ts == gst.ClockTimeNone {
		return timeline.None
	}
	rt, ok := seg.RunningTime(uint64(ts))
	if !ok {
		return timeline.None
	}
	return rt
}

func (b *reconnectBin) outputEvent(s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	ev := info.GetEvent()
	if ev == nil {
		return gst.PadProbeOK
	}
	switch ev.Type() {
	case gst.EventTypeFlushStart, gst.EventTypeFlushStop:
		// A source instance flushing itself (rtspsrc does on PLAY) is its own
		// business; downstream would reset and drop frames until a keyframe.
		return gst.PadProbeDrop
	case gst.EventTypeStreamStart:
		if b.out.streamStarted[s].Swap(true) {
			return gst.PadProbeDrop
		}
	case gst.EventTypeSegment:
		// Every instance's segment becomes the bin's one output segment;
		// timestamps are mapped onto it buffer by buffer. It goes out once:
		// a second, identical segment is still a new segment to a parser
		// downstream (h264parse after the encoder marks its next frame
		// DISCONT, and kvssink drops a DISCONT delta frame: one frame lost
		// per recovery, seen against the real kvssink).
		if b.out.segmentSent[s].Swap(true) {
			return gst.PadProbeDrop
		}
		gstshim.ReplaceProbeEventWithTimeSegment(info, ev.Seqnum())
	case gst.EventTypeCaps:
		return b.checkCaps(s, ev)
	}
	return gst.PadProbeOK
}

// checkCaps compares a source instance's caps with the first instance's and
// applies on-caps-change when they differ in what the sink depends on.
func (b *reconnectBin) checkCaps(s stream, ev *gst.Event) gst.PadProbeReturn {
	caps := ev.ParseCaps()
	if caps == nil {
		return gst.PadProbeOK
	}
	id := capsIdentity(caps)
	o := &b.out
	o.capsMu.Lock()
	first := o.firstCaps[s]
	if first == "" {
		o.firstCaps[s] = id
	}
	o.capsMu.Unlock()
	if first == "" || first == id {
		return gst.PadProbeOK
	}
	c := b.child.Load()
	if o.endRequested.Load() || (c != nil && c.rejected.Load()) {
		// A dropped sticky caps event comes again with every buffer of the
		// rejected instance: it was reported once already.
		return gst.PadProbeDrop
	}
	o.capsChanges.Add(1)
	b.settingsMu.Lock()
	policy := b.settings.onCapsChange
	b.settingsMu.Unlock()
	text := fmt.Sprintf("the source came back with different caps: was %s, now %s", first, id)
	b.postElementMessage("reconnectbin-caps-changed", map[string]any{"pad": s.String(), "old": first, "new": id, "policy": policyNick(policy)})
	gstshim.PostError(b.self.Element, true, gstshim.StreamError, gst.StreamErrorFormat,
		"reconnectbin: "+text+" (on-caps-change="+policyNick(policy)+")", "")
	switch policy {
	case CapsChangePass:
		return gst.PadProbeOK
	case CapsChangeRetry:
		if c != nil {
			c.rejected.Store(true)
			b.childFailed(c, supervisor.ReasonError, text)
		}
		return gst.PadProbeDrop
	default:
		if c != nil {
			c.rejected.Store(true)
		}
		b.out.endRequested.Store(true)
		gstshim.PostError(b.self.Element, false, gstshim.StreamError, gst.StreamErrorFormat,
			"reconnectbin: "+text+"; kvssink keeps the first codec data, so the stream stops here "+
				"(set output-caps to re-encode at fixed caps, or on-caps-change=retry)", "")
		return gst.PadProbeDrop
	}
}

func policyNick(p int) string {
	switch p {
	case CapsChangeRetry:
		return "retry"
	case CapsChangePass:
		return "pass"
	default:
		return "error"
	}
}

// capsIdentity is what must not change under a sink that keeps its first
// configuration: for raw video the size, format and frame rate (an encoder
// would reconfigure and emit new codec data); for encoded media the size,
// stream format and codec data. Fields that vary harmlessly between runs of
// the same camera (level, colorimetry, a 0/1 frame rate) are left out.
func capsIdentity(caps *gst.Caps) string {
	if caps.GetSize() == 0 {
		return caps.String()
	}
	st := caps.GetStructureAt(0)
	fields := []string{"width", "height", "stream-format", "codec_data", "rate", "channels"}
	if st.Name() == "video/x-raw" {
		fields = []string{"width", "height", "format", "framerate", "pixel-aspect-ratio", "interlace-mode", "colorimetry", "chroma-site"}
	}
	id := st.Name()
	for _, field := range fields {
		if v := gstshim.StructureFieldString(st, field); v != "" {
			id += "," + field + "=" + v
		}
	}
	return id
}
