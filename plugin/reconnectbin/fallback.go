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

// fallback keeps frames flowing while the source is down, the way broadcast
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

	// pushing is true while the goroutine pushes a frame: the output probe
	// then knows the buffer is already stamped.
	pushing atomic.Bool

	mu      sync.Mutex
	stop    chan struct{}
	done    chan struct{}
	started time.Time
	frames  uint64

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
	f.stop, f.done = make(chan struct{}), make(chan struct{})
	f.started, f.frames = time.Now(), 0
	f.active.Store(true)
	b.rep().fallback(true)
	b.postElementMessage("reconnectbin-fallback-started", map[string]any{"mode": fallbackNick(f.mode)})
	go b.runFallback(f.stop, f.done)
}

// stopFallback ends fallback output and waits for its last push.
func (b *reconnectBin) stopFallback() {
	f := &b.fallback
	f.mu.Lock()
	stop, done := f.stop, f.done
	f.stop, f.done = nil, nil
	started, frames := f.started, f.frames
	f.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
	f.active.Store(false)
	d := time.Since(started)
	f.totalTime.Add(int64(d))
	b.rep().fallback(false)
	b.postElementMessage("reconnectbin-fallback-ended", map[string]any{"duration": uint64(d), "frames": frames})
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
// noticed late is filled back to where the source went silent.
func (b *reconnectBin) runFallback(stop, done chan struct{}) {
	defer close(done)
	f := &b.fallback
	b.ensureFallbackEvents()
	holdUntil := timeline.None
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
		f.pushing.Store(true)
		pts := b.out.timeline.NextFill(int64(f.frameDur), now)
		if holdUntil == timeline.None {
			holdUntil = pts + int64(f.hold)
		}
		var frame *gst.Buffer
		if pts < holdUntil && !b.out.last.Empty() {
			frame = b.out.last.StampedCopy(gst.ClockTime(pts), gst.ClockTime(f.frameDur))
		} else {
			frame = f.fill.StampedCopy(gst.ClockTime(pts), gst.ClockTime(f.frameDur))
		}
		ret := b.srcPad.Push(frame)
		f.pushing.Store(false)
		f.mu.Lock()
		f.frames++
		f.mu.Unlock()
		f.totalFrames.Add(1)
		b.rep().dataOut()
		if ret != gst.FlowOK && ret != gst.FlowNotLinked {
			cat.LogInfo(fmt.Sprintf("fallback push returned %s; stopping fallback", ret))
			return
		}
		// Pace to the clock: the next frame is due at its running time.
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
	b.fallback.pushing.Store(true)
	defer b.fallback.pushing.Store(false)
	b.srcPad.PushEvent(gst.NewStreamStartEvent(fmt.Sprintf("%s/fallback", b.self.GetName())))
	b.srcPad.PushEvent(gst.NewCapsEvent(gst.NewCapsFromString(b.fallback.caps)))
	b.srcPad.PushEvent(gstshim.NewTimeSegmentEvent())
}
