package reconnectbin

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
	"github.com/kvsrelay/kvsrelay/internal/timeline"
)

// propertyError is a settings problem; its text names the property.
type propertyError struct {
	property string
	problem  string
}

func (e *propertyError) Error() string {
	return fmt.Sprintf("reconnectbin: property '%s' %s", e.property, e.problem)
}

// validateSettings checks what can be checked before anything runs: exactly
// one of source and uri, a description that parses and can have a src pad,
// and a coherent backoff.
func validateSettings(s settings) error {
	switch {
	case s.source == "" && s.uri == "":
		return &propertyError{"source", "is empty and so is 'uri': set exactly one of them"}
	case s.source != "" && s.uri != "":
		return &propertyError{"source", "and 'uri' are both set: set exactly one of them"}
	case s.maxRetryDelay < s.retryDelay:
		return &propertyError{"max-retry-delay", fmt.Sprintf("(%v) is below 'retry-delay' (%v)", s.maxRetryDelay, s.retryDelay)}
	case s.fallback != FallbackNone && s.outputCaps == "":
		return &propertyError{"fallback", "needs 'output-caps': fallback frames are made at its size and frame rate"}
	case s.fallback == FallbackImage && s.fallbackImage == "":
		return &propertyError{"fallback-image", "is empty but fallback=image"}
	}
	if s.outputCaps != "" {
		if _, err := parseOutputCaps(s.outputCaps); err != nil {
			return &propertyError{"output-caps", err.Error()}
		}
	}
	if s.fallback == FallbackImage {
		if f, err := os.Open(s.fallbackImage); err != nil {
			return &propertyError{"fallback-image", fmt.Sprintf("cannot be read: %v", err)}
		} else {
			f.Close()
		}
	}
	prop, desc := s.description()
	bin, err := gst.NewBinFromString(desc, false)
	if err != nil {
		return &propertyError{prop, fmt.Sprintf("does not parse: %v", err)}
	}

	if !canHaveSrcPad(bin) {
		return &propertyError{prop, fmt.Sprintf("has no unlinked src pad: %q ends in a sink or links every output", desc)}
	}
	return nil
}

// outputFormat is what output-caps fixes.
type outputFormat struct {
	caps     string
	width    int
	height   int
	frameDur time.Duration
}

// parseOutputCaps checks that caps are fixed raw video with a size and a
// frame rate, which normalising and fallback frames need.
func parseOutputCaps(s string) (outputFormat, error) {
	caps := gst.NewCapsFromString(s)
	if caps == nil || caps.GetSize() != 1 {
		return outputFormat{}, fmt.Errorf("%q is not one caps structure", s)
	}
	st := caps.GetStructureAt(0)
	if st.Name() != "video/x-raw" {
		return outputFormat{}, fmt.Errorf("%q is not video/x-raw", s)
	}
	if !caps.IsFixed() {
		return outputFormat{}, fmt.Errorf("%q is not fixed: give one format, width, height and framerate", s)
	}
	// Whatever output-caps leaves open would follow the camera and change
	// the encoder's configuration (its codec data) on a rebuild: pin the
	// aspect ratio, interlacing and colour description too.
	for field, value := range map[string]string{"pixel-aspect-ratio": "1/1", "interlace-mode": "progressive",
		"colorimetry": "bt709", "chroma-site": "mpeg2"} {
		if gstshim.StructureFieldString(st, field) == "" {
			caps = gst.NewCapsFromString(caps.String() + "," + field + "=" + value)
			st = caps.GetStructureAt(0)
		}
	}
	f := outputFormat{caps: caps.String()}
	w, errW := st.GetValue("width")
	h, errH := st.GetValue("height")
	if errW != nil || errH != nil {
		return outputFormat{}, fmt.Errorf("%q needs width and height", s)
	}
	f.width, _ = w.(int)
	f.height, _ = h.(int)
	num, den, ok := gstshim.StructureFraction(st, "framerate")
	if !ok || num <= 0 || den <= 0 {
		return outputFormat{}, fmt.Errorf("%q needs a non-zero framerate", s)
	}
	f.frameDur = time.Duration(int64(time.Second) * int64(den) / int64(num))
	return f, nil
}

// description returns the gst-launch description of one source instance and
// the property it came from.
func (s settings) description() (property, desc string) {
	if s.source != "" {
		return "source", s.source
	}
	return "uri", fmt.Sprintf("uridecodebin3 uri=\"%s\"", strings.ReplaceAll(s.uri, `"`, `\"`))
}

// canHaveSrcPad reports whether a parsed description has an unlinked src pad
// now or may add one later (a demuxer's or decodebin's sometimes pads).
func canHaveSrcPad(bin *gst.Bin) bool {
	if pad := unlinkedSrcPad(bin); pad != nil {
		return true
	}
	elements, err := bin.GetElements()
	if err != nil {
		return false
	}
	for _, el := range elements {
		for _, tmpl := range el.GetPadTemplates() {
			if tmpl.Direction() == gst.PadDirectionSource && tmpl.Presence() != gst.PadPresenceAlways {
				return true
			}
		}
	}
	return false
}

// unlinkedSrcPad returns an unlinked src pad of one of the description's
// own elements. gst_bin_find_unlinked_pad would recurse into decodebin and
// steal its internal typefind pad.
func unlinkedSrcPad(bin *gst.Bin) *gst.Pad {
	elements, err := bin.GetElements()
	if err != nil {
		return nil
	}
	for _, el := range elements {
		pads, err := el.GetSrcPads()
		if err != nil {
			continue
		}
		for _, pad := range pads {
			if !pad.IsLinked() {
				return pad
			}
		}
	}
	return nil
}

// childInstance is one source instance inside the bin.
type childInstance struct {
	gen          uint64
	bin          *gst.Bin
	restartOnEOS bool
	outputCaps   string

	// keyframeSeen is false until the instance's first keyframe left the
	// bin: nothing before it does (a decoder or kvssink needs one to start).
	keyframeSeen atomic.Bool
	// rejected marks an instance whose caps on-caps-change refused.
	rejected atomic.Bool

	mu       sync.Mutex
	handlers []signalHandler  // pad-added watches, disconnected at release
	probe    uint64           // the srcPad probe, removed at release
	srcPad   *gst.GhostPad    // the chosen inner pad, ghosted on bin
	added    bool             // the instance is inside the bin; srcPad may be linked
	segment  timeline.Segment // last segment the instance sent

	// offsetSet is false until the instance's first buffer left the bin with
	// the output timeline's offset applied.
	offsetSet atomic.Bool

	// starting is true while the supervise loop brings the instance up;
	// errors seen meanwhile are kept in startErr and judged after.
	starting atomic.Bool
	startErr atomic.Pointer[string]
}

type signalHandler struct {
	element *gst.Element
	handle  glib.SignalHandle
}

// buildChild parses desc into a new, not yet added, source instance and wires
// its output pad (now, or when a demuxer adds it).
func (b *reconnectBin) buildChild(gen uint64, desc string, s settings) (*childInstance, error) {
	bin, err := gst.NewBinFromString(desc, false)
	if err != nil {
		return nil, fmt.Errorf("parsing the source description: %w", err)
	}
	_ = bin.SetProperty("name", fmt.Sprintf("source%d", gen))
	c := &childInstance{gen: gen, bin: bin, restartOnEOS: s.restartOnEOS, outputCaps: s.outputCaps}
	if pad := unlinkedSrcPad(bin); pad != nil {
		if err := b.attach(c, pad); err != nil {
			return nil, err
		}
		return c, nil
	}
	elements, err := bin.GetElements()
	if err != nil {
		return nil, fmt.Errorf("listing the source's elements: %w", err)
	}
	for _, el := range elements {
		h, err := el.Connect("pad-added", func(_ *gst.Element, pad *gst.Pad) { b.padAdded(c, pad) })
		if err != nil {
			return nil, fmt.Errorf("watching %s for pads: %w", el.GetName(), err)
		}
		c.handlers = append(c.handlers, signalHandler{el, h})
	}
	return c, nil
}

// padAdded runs on a streaming thread when an element inside the instance
// adds a pad. The first unlinked video pad (or first unlinked pad) becomes the
// output; other unlinked pads are absorbed so they never return NOT_LINKED.
func (b *reconnectBin) padAdded(c *childInstance, pad *gst.Pad) {
	if pad.GetDirection() != gst.PadDirectionSource || pad.IsLinked() {
		return
	}
	c.mu.Lock()
	taken := c.srcPad != nil
	c.mu.Unlock()
	if !taken && isVideoPad(pad) || !taken && !b.childHasVideoLater(pad) {
		if err := b.attach(c, pad); err == nil {
			return
		} else {
			cat.LogWarning(fmt.Sprintf("source instance %d: %v", c.gen, err))
		}
	}
	absorb(c.bin, pad)
}

// childHasVideoLater is a conservative guess for uridecodebin3/decodebin3,
// whose pads are named by stream type: an audio pad is not taken as the
// output when a video pad may still follow.
func (b *reconnectBin) childHasVideoLater(pad *gst.Pad) bool {
	return strings.HasPrefix(pad.GetName(), "audio") || strings.HasPrefix(pad.GetName(), "text")
}

func isVideoPad(pad *gst.Pad) bool {
	if strings.HasPrefix(pad.GetName(), "video") {
		return true
	}
	caps := pad.GetCurrentCaps()
	if caps == nil {
		caps = pad.QueryCaps(nil)
	}
	if caps == nil || caps.IsAny() || caps.GetSize() == 0 {
		return false
	}
	return strings.HasPrefix(caps.GetStructureAt(0).Name(), "video/")
}

// normalize converts, scales and rate-adapts pad to caps inside bin, so
// every source instance leaves the bin with byte-identical caps. It returns
// the new output pad.
func normalize(bin *gst.Bin, pad *gst.Pad, caps string) (*gst.Pad, error) {
	convert, err1 := gst.NewElement("videoconvert")
	// add-borders keeps the picture's shape when a camera comes back with
	// another aspect ratio: letterboxed, never stretched.
	scale, err2 := gst.NewElementWithProperties("videoscale", map[string]interface{}{"add-borders": true})
	rate, err3 := gst.NewElement("videorate")
	filter, err4 := gst.NewElementWithProperties("capsfilter", map[string]interface{}{"caps": gst.NewCapsFromString(caps)})
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, fmt.Errorf("making the output-caps converters: %w", err)
	}
	chain := []*gst.Element{convert, scale, rate, filter}
	if err := bin.AddMany(chain...); err != nil {
		return nil, fmt.Errorf("adding the output-caps converters: %w", err)
	}
	if err := gst.ElementLinkMany(chain...); err != nil {
		return nil, fmt.Errorf("linking the output-caps converters: %w", err)
	}
	if ret := pad.Link(convert.GetStaticPad("sink")); ret != gst.PadLinkOK {
		return nil, fmt.Errorf("linking the source to the output-caps converters: %s", ret)
	}
	for _, el := range chain {
		el.SyncStateWithParent()
	}
	return filter.GetStaticPad("src"), nil
}

// absorb links an extra pad to a fakesink inside the instance.
func absorb(bin *gst.Bin, pad *gst.Pad) {
	sink, err := gst.NewElementWithProperties("fakesink", map[string]interface{}{"sync": false, "async": false})
	if err != nil {
		return
	}
	if bin.Add(sink) != nil {
		return
	}
	sink.SyncStateWithParent()
	pad.Link(sink.GetStaticPad("sink"))
}

// attach ghosts the instance's output pad and makes it the target of the
// bin's src pad.
func (b *reconnectBin) attach(c *childInstance, inner *gst.Pad) error {
	if c.outputCaps != "" {
		format, err := parseOutputCaps(c.outputCaps)
		if err != nil {
			return err
		}
		out, err := normalize(c.bin, inner, format.caps)
		if err != nil {
			return err
		}
		inner = out
	}
	ghost := gst.NewGhostPad("src", inner)
	if ghost == nil {
		return errors.New("ghosting the source's src pad failed")
	}
	probe := ghost.AddProbe(gst.PadProbeTypeBuffer|gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		return b.childProbe(c, info)
	})
	ghost.SetActive(true)
	if !c.bin.AddPad(ghost.Pad) {
		return errors.New("adding the source's src pad failed")
	}
	c.mu.Lock()
	c.srcPad = ghost
	c.probe = probe
	added := c.added
	c.mu.Unlock()
	if added {
		return b.linkOutput(c)
	}
	return nil
}

// linkOutput makes the instance's output the target of the bin's src pad. It
// must run once the instance is inside the bin: a ghost pad's target set
// across unrelated hierarchies does not carry data.
func (b *reconnectBin) linkOutput(c *childInstance) error {
	c.mu.Lock()
	ghost := c.srcPad
	c.added = true
	c.mu.Unlock()
	if ghost == nil {
		return nil // a demuxer or decodebin adds it later
	}
	if !b.srcPad.SetTarget(ghost.Pad) {
		return errors.New("linking the source to the bin's src pad failed")
	}
	return nil
}

// childProbe watches one instance's output: buffers prove it is alive, its
// segment is kept for the output timeline, and its EOS becomes a rebuild
// instead of ending the stream.
func (b *reconnectBin) childProbe(c *childInstance, info *gst.PadProbeInfo) gst.PadProbeReturn {
	if info.Type()&gst.PadProbeTypeBuffer != 0 {
		sup := b.sup.Load()
		if sup == nil {
			return gst.PadProbeOK
		}
		// Hand over from fallback frames at the first buffer that will go
		// out (the output drops delta frames until the first keyframe).
		if b.fallback.active.Load() && !c.rejected.Load() {
			if buf := info.GetBuffer(); buf != nil && (c.keyframeSeen.Load() || !buf.HasFlags(gst.BufferFlagDeltaUnit)) {
				b.stopFallback()
			}
		}
		if rec := sup.Buffer(c.gen); rec != nil {
			cat.LogInfo(fmt.Sprintf("source instance %d recovered after %v and %d attempts", c.gen, rec.Outage, rec.Attempts))
			b.postElementMessage("reconnectbin-recovered", map[string]any{
				"outage":   uint64(rec.Outage),
				"attempts": rec.Attempts,
			})
			st := sup.Stats()
			b.rep().recovered(statusLine(string(st.Status), st.Restarts, rec.Outage))
		}
		return gst.PadProbeOK
	}
	if info.Type()&gst.PadProbeTypeEventDownstream == 0 {
		return gst.PadProbeOK
	}
	ev := info.GetEvent()
	switch ev.Type() {
	case gst.EventTypeSegment:
		seg := ev.ParseSegment() // valid only while ev is: copy what matters
		c.mu.Lock()
		c.segment = timeline.Segment{Time: seg.GetFormat() == gst.FormatTime, Start: seg.GetStart(),
			Offset: seg.GetOffset(), Base: seg.GetBase(), Rate: seg.GetRate()}
		c.mu.Unlock()
	case gst.EventTypeEOS:
		if b.out.endRequested.Load() || !c.restartOnEOS {
			return gst.PadProbeOK
		}
		b.childFailed(c, supervisor.ReasonEOS, "end of stream")
		return gst.PadProbeDrop
	}
	return gst.PadProbeOK
}

// childFailed turns a failure of instance c into at most one rebuild.
func (b *reconnectBin) childFailed(c *childInstance, reason supervisor.Reason, text string) {
	if c.starting.Load() {
		c.startErr.CompareAndSwap(nil, &text)
		return
	}
	run := b.run.Load()
	sup := b.sup.Load()
	if run == nil || sup == nil {
		return
	}
	if d, ok := sup.Fail(c.gen, reason, text); ok {
		run.decide(d)
	}
}

// release tears the instance down; called only from the supervise loop.
// The signal handlers and the probe hold Go closures that reference c, and
// through it the instance's GObjects: they are removed explicitly so that no
// reference cycle keeps a removed instance alive.
func (b *reconnectBin) release(c *childInstance) {
	_ = c.bin.SetState(gst.StateNull)
	gstshim.ClearGhostTarget(b.srcPad)
	_ = b.self.Remove(c.bin.Element)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.handlers {
		h.element.HandlerDisconnect(h.handle)
	}
	if c.srcPad != nil && c.probe != 0 {
		c.srcPad.RemoveProbe(c.probe)
	}
	c.handlers, c.srcPad, c.bin = nil, nil, nil
}
