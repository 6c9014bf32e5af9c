package reconnectbin

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/streamstall"
	"github.com/kvsrelay/kvsrelay/internal/timeline"
)

// stream is one of the bin's outputs: the src pad (video, or the only
// stream) and the audio pad, which appears when a source instance first
// exposes audio and stays for the life of the bin.
type stream int

const (
	streamMain stream = iota
	streamAudio
	streamCount
)

func (s stream) String() string {
	if s == streamAudio {
		return "audio"
	}
	return "src"
}

// kind is the stream as the per-stream stall rule names it.
func (s stream) kind() streamstall.Stream {
	if s == streamAudio {
		return streamstall.Audio
	}
	return streamstall.Video
}

// outputState is what the bin's output pads have shown downstream in one
// run: one stream-start, one TIME segment starting at 0 (so timestamps are
// output running time), timestamps rewritten onto one continuous timeline
// (internal/timeline), no DISCONT flag (kvssink drops a keyframe whose only
// flag is DISCONT), nothing from a rebuilt source before its first keyframe,
// and one set of caps unless on-caps-change allows otherwise.
type outputState struct {
	streamStarted [streamCount]atomic.Bool
	segmentSent   [streamCount]atomic.Bool
	endRequested  atomic.Bool
	framesOut     atomic.Uint64
	keyframeWaits atomic.Uint64
	capsChanges   atomic.Uint64

	timeline timeline.Output

	// lastSent is the decode timestamp of the last buffer out per stream
	// (-1: none yet); orderDrops counts buffers the order guard dropped.
	lastSent   [streamCount]atomic.Int64
	orderDrops atomic.Uint64

	capsMu    sync.Mutex
	firstCaps [streamCount]string // identity of the first caps per stream (see capsIdentity)

	// last holds the latest frame for fallback's hold phase.
	last gstshim.FrameHolder
}

// init marks every stream as having sent nothing yet.
func (o *outputState) init() {
	for i := range o.lastSent {
		o.lastSent[i].Store(-1)
	}
}

// newOutputPad makes the bin's pad for stream s, with its output probe.
func (b *reconnectBin) newOutputPad(s stream) *gst.GhostPad {
	var tmpl *gst.PadTemplate
	for _, t := range b.self.GetPadTemplates() {
		if t.Name() == s.String() {
			tmpl = t
		}
	}
	pad := gst.NewGhostPadNoTargetFromTemplate(s.String(), tmpl)
	b.pushes[s].Store(gstshim.TrackPushes(pad))
	pad.AddProbe(gst.PadProbeTypeBuffer|gst.PadProbeTypeEventDownstream|gst.PadProbeTypeEventFlush,
		func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn { return b.outputProbe(s, info) })
	return pad
}

// existingOutputPad returns the bin's pad for stream s; nil for audio when
// the application did not request the audio pad.
func (b *reconnectBin) existingOutputPad(s stream) *gst.GhostPad {
	if s == streamMain {
		return b.srcPad
	}
	b.padsMu.Lock()
	defer b.padsMu.Unlock()
	return b.audioPad
}

// push pushes buf out of stream s's pad, tracked as in flight until it
// returns (see outputBlocked).
func (b *reconnectBin) push(s stream, pad *gst.GhostPad, buf *gst.Buffer) gst.FlowReturn {
	if t := b.pushes[s].Load(); t != nil {
		return t.Push(buf)
	}
	return pad.Push(buf)
}

// outputBlocked reports how long the oldest push out of the bin still in
// flight has been going on: downstream (kvssink, a muxer) holding the bin's
// data, which is neither a source stall nor progress.
func (b *reconnectBin) outputBlocked() (time.Duration, bool) {
	var oldest time.Duration
	var any bool
	for s := range b.pushes {
		if age, ok := b.pushes[s].Load().Oldest(); ok {
			any = true
			oldest = max(oldest, age)
		}
	}
	return oldest, any
}

// outputHeld reports whether downstream holds every stream of the bin: each
// output pad has a push in flight. That is a blocking sink, not a quiet
// source. One stream alone held is not enough: a muxer holds the video
// until audio arrives, and a source that went silent is exactly when audio
// stops arriving (fallback's silence is what releases the video then).
func (b *reconnectBin) outputHeld() bool {
	held := false
	for s := range b.pushes {
		t := b.pushes[s].Load()
		if t == nil {
			continue
		}
		if _, ok := t.Oldest(); !ok {
			return false
		}
		held = true
	}
	return held
}

// outputProbe runs on the bin's src pad for every buffer and downstream
// event, from a source instance's streaming thread or the fallback
// goroutine. Buffer pushes are serialized by the push tracker (one lock per
// pad, held from before this probe until downstream returned:
// gstshim.PushTracker), so what passes the order guard reaches downstream
// in that order.
func (b *reconnectBin) outputProbe(s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	run := b.run.Load()
	if info.Type()&(gst.PadProbeTypeEventDownstream|gst.PadProbeTypeEventFlush) != 0 {
		return b.outputEvent(run, s, info)
	}
	if info.Type()&gst.PadProbeTypeBuffer == 0 || run == nil {
		// Without a run the pads are inactive: nothing flows.
		return gst.PadProbeOK
	}
	o := &run.output
	// Source buffers were placed and rewritten on their instance's pad
	// (instanceBuffer); fill buffers were made on the output timeline. Here
	// only the end of the stream and the accounting remain.
	if o.endRequested.Load() {
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
			last := &o.lastSent[s]
			for {
				prev := last.Load()
				if prev >= 0 && int64(ts) < prev {
					o.orderDrops.Add(1)
					return gst.PadProbeDrop
				}
				if last.CompareAndSwap(prev, int64(ts)) {
					break
				}
			}
		}
	}
	o.framesOut.Add(1)
	if s == streamMain {
		run.rep().dataOut()
	}
	return gst.PadProbeOK
}

func (b *reconnectBin) outputEvent(run *runState, s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	ev := info.GetEvent()
	if ev == nil {
		return gst.PadProbeOK
	}
	if t := ev.Type(); t == gst.EventTypeFlushStart || t == gst.EventTypeFlushStop {
		// A source instance flushing itself (rtspsrc does on PLAY) is its own
		// business; downstream would reset and drop frames until a keyframe.
		return gst.PadProbeDrop
	}
	if run == nil {
		return gst.PadProbeOK
	}
	switch ev.Type() {
	case gst.EventTypeStreamStart:
		if run.output.streamStarted[s].Swap(true) {
			return gst.PadProbeDrop
		}
	case gst.EventTypeSegment:
		// Every instance's segment becomes the bin's one output segment;
		// timestamps are mapped onto it buffer by buffer. It goes out once:
		// a second, identical segment is still a new segment to a parser
		// downstream (h264parse after the encoder marks its next frame
		// DISCONT, and kvssink drops a DISCONT delta frame: one frame lost
		// per recovery, seen against the real kvssink).
		if run.output.segmentSent[s].Swap(true) {
			return gst.PadProbeDrop
		}
		gstshim.ReplaceProbeEventWithTimeSegment(info, ev.Seqnum())
	case gst.EventTypeCaps:
		if pad := b.existingOutputPad(s); pad != nil && pad.GetPeer() != nil {
			// The same caps again (a new source instance, or the source
			// after fill in the same format, its fields in another order)
			// are nothing new downstream. (The pad's own caps are already
			// the new ones here: what downstream has is its peer's.)
			if current := pad.GetPeer().GetCurrentCaps(); current != nil {
				if caps := ev.ParseCaps(); caps != nil && current.IsEqual(caps) {
					return gst.PadProbeDrop
				}
			}
		}
		return b.checkCaps(run, s, ev)
	}
	return gst.PadProbeOK
}
