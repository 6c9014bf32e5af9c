package reconnectbin

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/timeline"
)

// fallback keeps frames (and, with raw audio, silence) flowing while the
// source is down, the way broadcast encoders handle input loss: the last good
// frame for fallback-hold, then black or a slate image, at the output-caps
// frame rate on the same timeline, until the source's buffers take each
// stream over again. One filler goroutine per stream pushes on the bin's pad:
// a muxer or kvssink (collectpads) holds a video push until audio arrives, so
// one goroutine pushing both would deadlock, and each filler lives until the
// source takes its own stream over (internal/timeline closes the stream's
// fill in the same step that places the source's buffer, so no fill buffer
// is ever stamped after it). Each run has its own (runState.fallback), its
// totals included.
type fallback struct {
	// Set by newFallback, never changed.
	mode     int
	hold     time.Duration
	frameDur time.Duration
	caps     string
	fill     gstshim.FrameHolder // black or the image, at output-caps

	mu      sync.Mutex
	stopped bool // the run is stopping: no filler starts any more
	fillers [streamCount]*filler
	// videoFrame makes the current video episode's fill frame for a PTS
	// (held last frame, then black or the image); nil before the first.
	videoFrame func(pts int64) *gst.Buffer
	started    time.Time // the current episode (video filling)
	frames     uint64

	totalFrames atomic.Uint64
	totalTime   atomic.Int64
	active      atomic.Bool // video is being filled
}

// filler is one stream's fill goroutine. Nobody ever waits for its pushes
// from a streaming thread (a push may need that very thread's data further
// downstream): a fill buffer stamped just before the source took the stream
// over and pushed just after it is dropped by the output's per-stream order
// guard instead.
type filler struct {
	stop chan struct{}
	done chan struct{}
}

func (f *fallback) enabled() bool { return f.mode != FallbackNone }

// newFallback makes a run's fallback, with the fill frame for the
// configured mode; it runs at READY->PAUSED so a bad image fails the state
// change, naming the property.
func newFallback(s settings) (*fallback, error) {
	f := &fallback{mode: s.fallback, hold: s.fallbackHold}
	if f.mode == FallbackNone {
		return f, nil
	}
	format, err := parseOutputCaps(s.outputCaps)
	if err != nil {
		return nil, badProperty("output-caps", err.Error())
	}
	f.caps, f.frameDur = format.caps, format.frameDur
	var desc, prop string
	switch f.mode {
	case FallbackImage:
		prop = "fallback-image"
		desc = fmt.Sprintf("filesrc location=\"%s\" ! decodebin ! videoconvert ! videoscale ! imagefreeze num-buffers=1 ! "+
			"videoconvert ! videoscale ! videorate ! capsfilter caps=\"%s\" ! appsink name=frame sync=false", s.fallbackImage, f.caps)
	default:
		prop = "fallback"
		desc = fmt.Sprintf("videotestsrc pattern=black num-buffers=1 ! capsfilter caps=\"%s\" ! appsink name=frame sync=false", f.caps)
	}
	buf, err := renderFrame(desc)
	if err != nil {
		return nil, badProperty(prop, fmt.Sprintf("could not make the fallback frame: %v", err))
	}
	f.fill.Hold(buf)
	return f, nil
}

// shut stops fillers from starting: the run is stopping.
func (f *fallback) shut() {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
}

// release lets the fill frame go; the run's fillers have ended.
func (f *fallback) release() { f.fill.Release() }

// renderFrame runs a one-frame pipeline and returns its frame.
func renderFrame(desc string) (*gst.Buffer, error) {
	p, err := gst.NewPipelineFromString(desc)
	if err != nil {
		return nil, err
	}
	defer p.SetState(gst.StateNull) //nolint:errcheck
	el, err := p.GetElementByName("frame")
	if err != nil {
		return nil, err
	}
	if err := p.SetState(gst.StatePlaying); err != nil {
		return nil, err
	}
	sample := app.SinkFromElement(el).TryPullSample(gst.ClockTime(10 * time.Second))
	if sample == nil {
		bus := p.GetPipelineBus()
		if msg := bus.TimedPopFiltered(0, gst.MessageError); msg != nil {
			return nil, msg.ParseError()
		}
		return nil, fmt.Errorf("no frame within 10 s")
	}
	buf := sample.GetBuffer()
	if buf == nil {
		return nil, fmt.Errorf("empty sample")
	}
	return buf.Copy(), nil
}

// startFallback begins filling the video stream, and the audio pad's,
// unless they are being filled already.
func (b *reconnectBin) startFallback(run *runState) {
	f := run.fallback
	if !f.enabled() || run.output.endRequested.Load() {
		return
	}
	audioFormat := b.audioFormat(run) // negotiates downstream: not under f.mu
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	if f.fillers[streamMain] == nil {
		b.ensureFallbackEvents(f)
		f.started, f.frames = time.Now(), 0
		f.active.Store(true)
		if run.upload != nil {
			run.upload.beginOutage()
		}
		run.rep().fallback(true)
		b.postElementMessage("reconnectbin-fallback-started", map[string]any{"mode": fallbackNick(f.mode)})
		// The filler and, at the takeover, the source's streaming thread
		// (padVideoHole) both make frames: holdUntil is shared.
		var holdUntil atomic.Int64
		holdUntil.Store(timeline.None)
		f.videoFrame = func(pts int64) *gst.Buffer {
			holdUntil.CompareAndSwap(timeline.None, pts+int64(f.hold))
			f.totalFrames.Add(1)
			if pts < holdUntil.Load() && !run.output.last.Empty() {
				return run.output.last.StampedCopy(gst.ClockTime(pts), gst.ClockTime(f.frameDur))
			}
			return f.fill.StampedCopy(gst.ClockTime(pts), gst.ClockTime(f.frameDur))
		}
		b.startFillerLocked(run, streamMain, b.srcPad, f.videoFrame)
	}
	b.startSilenceLocked(run, audioFormat)
}

// startSilence fills the audio pad alone, unless it is filled already: the
// source's video runs but no audio has come (yet, or ever: a camera without
// a microphone), and a muxer or kvssink would hold the video until audio
// arrives.
func (b *reconnectBin) startSilence(run *runState) {
	f := run.fallback
	if !f.enabled() || run.output.endRequested.Load() {
		return
	}
	audioFormat := b.audioFormat(run)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopped {
		b.startSilenceLocked(run, audioFormat)
	}
}

// startSilenceLocked starts the audio pad's filler, if there is an audio pad
// and a raw format to make silence in: the run's audio format, else the
// source's raw audio caps from before; f.mu held.
func (b *reconnectBin) startSilenceLocked(run *runState, format string) {
	f := run.fallback
	pad := b.existingOutputPad(streamAudio)
	if pad == nil || f.fillers[streamAudio] != nil {
		return
	}
	caps := pad.GetCurrentCaps()
	if format != "" {
		caps = gst.NewCapsFromString(format)
	}
	if caps == nil || gstshim.Silence(caps, 0, gst.ClockTime(f.frameDur)) == nil {
		return
	}
	ensureStreamEvents(pad.Pad, fmt.Sprintf("%s/fallback-audio", b.self.GetName()), caps)
	b.startFillerLocked(run, streamAudio, pad, func(pts int64) *gst.Buffer {
		return gstshim.Silence(caps, gst.ClockTime(pts), gst.ClockTime(f.frameDur))
	})
}

// padVideoHole pushes fill frames over [from, to) on the src pad, from the
// video streaming thread, just before the source's first frame after a fill
// episode. The filler catches up after a late wake-up, but only until the
// source takes the stream over, and the source is placed at the clock's
// now: a filler starved of CPU at that moment left a hole of several frames
// in the output (160 ms seen on a loaded 2-core machine), which kvssink
// uploads as a frozen picture. Holes longer than maxPaddedHole are left
// (a filler that stopped on a flow error): pushing seconds of frames from a
// streaming thread would be worse.
func (b *reconnectBin) padVideoHole(run *runState, from, to int64) {
	f := run.fallback
	if !f.enabled() || f.frameDur <= 0 {
		return
	}
	hole := to - from
	dur := int64(f.frameDur)
	if hole < dur || hole > int64(maxPaddedHole) {
		return
	}
	f.mu.Lock()
	frame := f.videoFrame
	f.mu.Unlock()
	if frame == nil {
		return
	}
	// Frames at from, from+dur, ... while a whole frame's worth is left
	// (rounded): what remains is under one frame.
	n := (hole + dur/2) / dur
	var announced uint64
	if !b.markFill(run, streamMain, b.srcPad, from, &announced) {
		return
	}
	cat.LogDebug(fmt.Sprintf("padding a %v hole before the source's first frame with %d fill frames", time.Duration(hole), n))
	for k := int64(0); k < n; k++ {
		buf := frame(from + k*dur)
		if buf == nil {
			return
		}
		if ret := b.push(streamMain, b.srcPad, buf); ret != gst.FlowOK {
			return
		}
	}
}

// maxPaddedHole bounds padVideoHole.
const maxPaddedHole = 2 * time.Second

// fillIdle runs once startGrace after the bin started playing: whatever
// stream no source has fed yet is filled from now on (black or the image
// with silence, or silence alone beside the source's video), so downstream
// starts at once whether or not a source ever comes up.
func (b *reconnectBin) fillIdle(run *runState) {
	if b.run.Load() != run {
		return
	}
	if _, any := run.output.timeline.LastEndOf(int(streamMain)); !any {
		cat.LogInfo(fmt.Sprintf("no source output %v after start: filling", startGrace))
		b.startFallback(run)
		return
	}
	if _, any := run.output.timeline.LastEndOf(int(streamAudio)); !any {
		cat.LogInfo(fmt.Sprintf("no source audio %v after start: filling the audio pad with silence", startGrace))
		b.startSilence(run)
	}
}

// startGrace is how long a starting source has before fallback fills: a
// source that comes up quickly is not preceded by a moment of black, and
// one that does not is covered at once.
const startGrace = 500 * time.Millisecond

// startFillerLocked opens fill on stream s and starts its goroutine; f.mu held.
func (b *reconnectBin) startFillerLocked(run *runState, s stream, pad *gst.GhostPad, next func(pts int64) *gst.Buffer) {
	fl := &filler{stop: make(chan struct{}), done: make(chan struct{})}
	run.fallback.fillers[s] = fl
	run.output.timeline.OpenFill(int(s))
	go b.fillLoop(run, fl, s, pad, next)
}

// fillLoop pushes next(pts) on pad once per frame duration, paced by the
// pipeline clock, continuing the stream's output timeline right after its
// last buffer (so a stall noticed late is filled back to where the source went
// silent), until the stream's fill is closed or stop.
func (b *reconnectBin) fillLoop(run *runState, fl *filler, s stream, pad *gst.GhostPad, next func(pts int64) *gst.Buffer) {
	f := run.fallback
	defer b.fillerDone(run, fl, s)
	var announced uint64 // the last outage marked on this pad (fallbackupload.go)
	for {
		select {
		case <-fl.stop:
			return
		default:
		}
		now := int64(timeline.None)
		if rt := gstshim.RunningTimeNow(b.self.Element); rt != gst.ClockTimeNone {
			now = int64(rt)
		}
		pts, ok := run.output.timeline.NextFill(int(s), int64(f.frameDur), now)
		if !ok {
			return // the source took the stream over
		}
		ret := gst.FlowOK
		if !b.markFill(run, s, pad, pts, &announced) {
			// The source's buffer ended this outage before it was marked
			// (it came back as the fill started): it has the stream.
			run.output.timeline.CloseFill(int(s))
			return
		}
		if buf := next(pts); buf != nil {
			ret = b.push(s, pad, buf)
		}
		if s == streamMain {
			f.mu.Lock()
			f.frames++
			f.mu.Unlock()
		}
		if ret != gst.FlowOK && ret != gst.FlowNotLinked {
			cat.LogInfo(fmt.Sprintf("fallback push on %s returned %s; stopping", s, ret))
			run.output.timeline.CloseFill(int(s))
			return
		}
		if now != timeline.None {
			if wait := time.Duration(pts + int64(f.frameDur) - now); wait > 0 {
				select {
				case <-fl.stop:
					return
				case <-time.After(wait):
				}
			}
		}
	}
}

// fillerDone ends a filler's bookkeeping; for video, the episode.
func (b *reconnectBin) fillerDone(run *runState, fl *filler, s stream) {
	f := run.fallback
	f.mu.Lock()
	if f.fillers[s] == fl {
		f.fillers[s] = nil
	}
	started, frames := f.started, f.frames
	f.mu.Unlock()
	close(fl.done)
	if s != streamMain {
		return
	}
	f.active.Store(false)
	d := time.Since(started)
	f.totalTime.Add(int64(d))
	run.rep().fallback(false)
	b.postElementMessage("reconnectbin-fallback-ended", map[string]any{"duration": uint64(d), "frames": frames})
}

// closeFills stops making fill buffers on every stream; with wait, it also
// waits for the fillers to return (never from a streaming thread: a filler's
// push may need that thread's data downstream).
func (b *reconnectBin) closeFills(run *runState, wait bool) {
	f := run.fallback
	f.mu.Lock()
	fillers := f.fillers
	f.mu.Unlock()
	for s, fl := range fillers {
		run.output.timeline.CloseFill(s)
		if fl != nil {
			select {
			case <-fl.stop:
			default:
				close(fl.stop)
			}
		}
	}
	if !wait {
		return
	}
	for _, fl := range fillers {
		if fl != nil {
			<-fl.done
		}
	}
}

func fallbackNick(mode int) string {
	switch mode {
	case FallbackBlack:
		return "black"
	case FallbackImage:
		return "image"
	default:
		return "none"
	}
}

// ensureFallbackEvents sends what downstream needs before a first buffer when
// the source never came up: stream-start, output-caps and the segment.
func (b *reconnectBin) ensureFallbackEvents(f *fallback) {
	ensureStreamEvents(b.srcPad.Pad, fmt.Sprintf("%s/fallback", b.self.GetName()), gst.NewCapsFromString(f.caps))
}

// ensureStreamEvents sends stream-start, caps and the segment on one of the
// bin's pads that has sent no caps yet.
func ensureStreamEvents(pad *gst.Pad, streamID string, caps *gst.Caps) {
	if pad.GetCurrentCaps() != nil {
		return
	}
	pad.PushEvent(gst.NewStreamStartEvent(streamID))
	pad.PushEvent(gst.NewCapsEvent(caps))
	pad.PushEvent(gstshim.NewTimeSegmentEvent())
}
