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
// source is down, the way broadcast
// encoders handle input loss: the last good frame for fallback-hold, then
// black or a slate image, at the output-caps frame rate on the same timeline,
// until the rebuilt source's first buffer. It pushes on the bin's src pad from
// its own goroutine, only while no source instance is pushing: it starts
// after the failed instance is torn down and stops (waiting for its last
// push) before a new instance's first buffer goes out.
type fallback struct {
	mode     int
	hold     time.Duration
	frameDur time.Duration
	caps     string
	fill     gstshim.FrameHolder // black or the image, at output-caps

	// pushing counts fill buffers being pushed: the output probe then knows
	// the buffer is already stamped.
	pushing atomic.Int32

	mu   sync.Mutex
	stop chan struct{}
	done chan struct{}
	// handedOver is closed when fallback ends: a rebuilt instance's audio
	// waits for it (briefly) so that the video decides where the instance
	// goes on the timeline and audio follows in sync.
	handedOver chan struct{}
	started    time.Time
	frames     uint64

	totalFrames atomic.Uint64
	totalTime   atomic.Int64
	active      atomic.Bool
}

func (f *fallback) enabled() bool { return f.mode != FallbackNone }

// prepare makes the fill frame for the configured mode; it runs at
// READY->PAUSED so a bad image fails the state change, naming the property.
func (f *fallback) prepare(s settings) error {
	f.fill.Release()
	f.mode = s.fallback
	f.hold = s.fallbackHold
	if f.mode == FallbackNone {
		return nil
	}
	format, err := parseOutputCaps(s.outputCaps)
	if err != nil {
		return &propertyError{"output-caps", err.Error()}
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
		return &propertyError{prop, fmt.Sprintf("could not make the fallback frame: %v", err)}
	}
	f.fill.Hold(buf)
	return nil
}

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

// start begins fallback output unless it is running already.
func (b *reconnectBin) startFallback() {
	f := &b.fallback
	if !f.enabled() || b.out.endRequested.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stop != nil {
		return
	}
	f.stop, f.done, f.handedOver = make(chan struct{}), make(chan struct{}), make(chan struct{})
	f.started, f.frames = time.Now(), 0
	f.active.Store(true)
	b.rep().fallback(true)
	b.postElementMessage("reconnectbin-fallback-started", map[string]any{"mode": fallbackNick(f.mode)})
	go b.runFallback(f.stop, f.done)
}

// stopFallback ends fallback output and waits for its last push. Held audio
// is released too, unless holdAudio: then releaseAudio does it, once the
// video buffer that took over has been placed on the timeline.
func (b *reconnectBin) stopFallback(holdAudio ...bool) {
	f := &b.fallback
	f.mu.Lock()
	stop, done, handedOver := f.stop, f.done, f.handedOver
	f.stop, f.done = nil, nil
	if len(holdAudio) == 0 || !holdAudio[0] {
		f.handedOver = nil
	}
	started, frames := f.started, f.frames
	f.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
	f.active.Store(false)
	if len(holdAudio) == 0 || !holdAudio[0] {
		close(handedOver)
	}
	d := time.Since(started)
	f.totalTime.Add(int64(d))
	b.rep().fallback(false)
	b.postElementMessage("reconnectbin-fallback-ended", map[string]any{"duration": uint64(d), "frames": frames})
}

// releaseAudio lets held audio go once the video has been placed.
func (f *fallback) releaseAudio() {
	f.mu.Lock()
	ch := f.handedOver
	if f.stop == nil {
		f.handedOver = nil
	} else {
		ch = nil // still in fallback
	}
	f.mu.Unlock()
	if ch != nil {
		close(ch)
	}
}

// awaitHandover blocks a rebuilt instance's audio thread until the video
// has taken over from fallback, at most maxWait; it reports whether the
// audio may go out (false: still in fallback, drop it).
func (f *fallback) awaitHandover(maxWait time.Duration) bool {
	f.mu.Lock()
	ch := f.handedOver
	f.mu.Unlock()
	if ch == nil {
		return true
	}
	select {
	case <-ch:
		return true
	case <-time.After(maxWait):
		return !f.active.Load()
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

// runFallback pushes fill frames paced by the pipeline clock. Frames
// continue the output timeline right after the last buffer out, so a stall
// noticed late is filled back to where the source went silent. Silence for a
// raw audio pad is pushed from a goroutine of its own: a muxer or kvssink
// (collectpads) blocks a video push until audio arrives, so one goroutine
// pushing both would deadlock.
func (b *reconnectBin) runFallback(stop, done chan struct{}) {
	defer close(done)
	f := &b.fallback
	b.ensureFallbackEvents()
	var audio sync.WaitGroup
	if pad := b.existingOutputPad(streamAudio); pad != nil {
		if caps := pad.GetCurrentCaps(); caps != nil && gstshim.Silence(caps, 0, gst.ClockTime(f.frameDur)) != nil {
			audio.Add(1)
			go func() {
				defer audio.Done()
				b.fillLoop(stop, streamAudio, func(pts int64) *gst.Buffer {
					return gstshim.Silence(caps, gst.ClockTime(pts), gst.ClockTime(f.frameDur))
				}, pad)
			}()
		}
	}
	holdUntil := timeline.None
	b.fillLoop(stop, streamMain, func(pts int64) *gst.Buffer {
		if holdUntil == timeline.None {
			holdUntil = pts + int64(f.hold)
		}
		f.mu.Lock()
		f.frames++
		f.mu.Unlock()
		f.totalFrames.Add(1)
		if pts < holdUntil && !b.out.last.Empty() {
			return b.out.last.StampedCopy(gst.ClockTime(pts), gst.ClockTime(f.frameDur))
		}
		return f.fill.StampedCopy(gst.ClockTime(pts), gst.ClockTime(f.frameDur))
	}, b.srcPad)
	audio.Wait()
}

// fillLoop pushes next(pts) on pad once per frame duration, on the stream's
// own continuation of the output timeline, until stop.
func (b *reconnectBin) fillLoop(stop chan struct{}, s stream, next func(pts int64) *gst.Buffer, pad *gst.GhostPad) {
	f := &b.fallback
	for {
		select {
		case <-stop:
			return
		default:
		}
		now := int64(timeline.None)
		if rt := gstshim.RunningTimeNow(b.self.Element); rt != gst.ClockTimeNone {
			now = int64(rt)
		}
		f.pushing.Add(1)
		pts := b.out.timeline.NextFill(int(s), int64(f.frameDur), now)
		ret := gst.FlowOK
		if buf := next(pts); buf != nil {
			ret = pad.Push(buf)
		}
		f.pushing.Add(-1)
		if s == streamMain {
			b.rep().dataOut()
		}
		if ret != gst.FlowOK && ret != gst.FlowNotLinked {
			cat.LogInfo(fmt.Sprintf("fallback push on %s returned %s; stopping", s, ret))
			return
		}
		// Pace to the clock: the next buffer is due at its running time.
		if now != timeline.None {
			if wait := time.Duration(pts + int64(f.frameDur) - now); wait > 0 {
				select {
				case <-stop:
					return
				case <-time.After(wait):
				}
			}
		}
	}
}

// ensureFallbackEvents sends what downstream needs before a first buffer when
// the source never came up: stream-start, output-caps and the segment.
func (b *reconnectBin) ensureFallbackEvents() {
	if b.srcPad.GetCurrentCaps() != nil {
		return
	}
	b.fallback.pushing.Add(1)
	defer b.fallback.pushing.Add(-1)
	b.srcPad.PushEvent(gst.NewStreamStartEvent(fmt.Sprintf("%s/fallback", b.self.GetName())))
	b.srcPad.PushEvent(gst.NewCapsEvent(gst.NewCapsFromString(b.fallback.caps)))
	b.srcPad.PushEvent(gstshim.NewTimeSegmentEvent())
}
