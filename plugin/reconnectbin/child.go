package reconnectbin

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
	"github.com/kvsrelay/kvsrelay/internal/timeline"
	"github.com/kvsrelay/kvsrelay/internal/uridesc"
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
// the property it came from. A uri plays through uridecodebin3, except an
// HLS URI where hlsdemux2 is known to corrupt memory (see uridesc).
func (s settings) description() (property, desc string) {
	if s.source != "" {
		return "source", s.source
	}
	return "uri", uridesc.Description(s.uri, uridesc.UseLegacyHLS(s.uri, hlsRuntime()))
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

// childInstance is one source instance inside the bin.
type childInstance struct {
	gen          uint64
	bin          *gst.Bin
	restartOnEOS bool
	outputCaps   string

	// keyframeSeen is false until the stream's first keyframe left the bin:
	// nothing before it does (a decoder or kvssink needs one to start).
	keyframeSeen [streamCount]atomic.Bool
	// rejected marks an instance whose caps on-caps-change refused.
	rejected atomic.Bool

	mu       sync.Mutex
	handlers []func()                      // pad-added watches' disconnects, called at release
	outs     [streamCount]*gst.GhostPad    // the chosen inner pads, ghosted on bin
	probes   [streamCount]uint64           // their probes, removed at release
	segments [streamCount]timeline.Segment // last segment on each
	added    bool                          // the instance is inside the bin; outs may be linked

	// starting is true while the supervise loop brings the instance up,
	// and stays true for a start given up on (its state lock may still be
	// held); errors seen meanwhile are kept in startErr and judged after.
	starting atomic.Bool
	startErr atomic.Pointer[string]

	// out is set, and abandoned closed, once the instance has left the bin
	// (takeOut, or release).
	outMu     sync.Mutex
	out       bool
	abandoned chan struct{}
	// lastChange is closed when the last state change changeState started
	// has returned. Set and read only by the supervise loop.
	lastChange chan struct{}
}

// buildChild parses desc into a new, not yet added, source instance and wires
// its output pad (now, or when a demuxer adds it).
func (b *reconnectBin) buildChild(gen uint64, desc string, s settings) (*childInstance, error) {
	bin, err := gst.NewBinFromString(desc, false)
	if err != nil {
		return nil, fmt.Errorf("parsing the source description: %w", err)
	}
	_ = bin.SetProperty("name", fmt.Sprintf("source%d", gen))
	b.allocated.Add(1)
	gstshim.OnFinalize(bin.Object, func() { b.allocated.Add(-1) })
	c := &childInstance{gen: gen, bin: bin, restartOnEOS: s.restartOnEOS, outputCaps: s.outputCaps, abandoned: make(chan struct{})}
	if pad := unlinkedSrcPad(bin); pad != nil {
		if err := b.attach(c, pad, streamMain); err != nil {
			return nil, err
		}
		return c, nil
	}
	elements, err := bin.GetElements()
	if err != nil {
		return nil, fmt.Errorf("listing the source's elements: %w", err)
	}
	for _, el := range elements {
		c.handlers = append(c.handlers, gstshim.ConnectPadAdded(el, func(pad *gst.Pad) { b.padAdded(c, pad) }))
	}
	return c, nil
}

// padAdded runs on a streaming thread when an element inside the instance
// adds a pad. The first video pad (or the first pad that is neither audio
// nor text) becomes the src pad's stream, the first audio pad the audio
// pad's; other unlinked pads are absorbed so they never return NOT_LINKED.
func (b *reconnectBin) padAdded(c *childInstance, pad *gst.Pad) {
	if pad.GetDirection() != gst.PadDirectionSource || pad.IsLinked() {
		return
	}
	kind := padKind(pad)
	s := streamMain
	if kind == "audio" {
		s = streamAudio
	}
	c.mu.Lock()
	taken := c.outs[s] != nil
	c.mu.Unlock()
	if s == streamAudio && b.existingOutputPad(streamAudio) == nil {
		taken = true // nobody asked for audio: absorb it
	}
	if !taken && kind != "text" {
		if err := b.attach(c, pad, s); err == nil {
			return
		} else {
			cat.LogWarning(fmt.Sprintf("source instance %d: %v", c.gen, err))
		}
	}
	absorb(c.bin, pad)
}

// padKind is "video", "audio", "text" or "" (unknown) from the pad's name
// (uridecodebin3 and decodebin3 name pads by stream type) or its caps.
func padKind(pad *gst.Pad) string {
	name := pad.GetName()
	for _, kind := range []string{"video", "audio", "text"} {
		if strings.HasPrefix(name, kind) {
			return kind
		}
	}
	caps := pad.GetCurrentCaps()
	if caps == nil {
		caps = pad.QueryCaps(nil)
	}
	if caps == nil || caps.IsAny() || caps.GetSize() == 0 {
		return ""
	}
	media := caps.GetStructureAt(0).Name()
	switch {
	case strings.HasPrefix(media, "video/"), strings.HasPrefix(media, "image/"):
		return "video"
	case strings.HasPrefix(media, "audio/"):
		return "audio"
	case strings.HasPrefix(media, "text/"), strings.HasPrefix(media, "subpicture/"), strings.HasPrefix(media, "application/x-subtitle"):
		return "text"
	}
	return ""
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

// attach ghosts one of the instance's output pads and, once the instance is
// inside the bin, makes it the target of the bin's pad for that stream.
func (b *reconnectBin) attach(c *childInstance, inner *gst.Pad, s stream) error {
	if c.outputCaps != "" && s == streamMain {
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
	ghost := gst.NewGhostPad(s.String(), inner)
	if ghost == nil {
		return fmt.Errorf("ghosting the source's %s pad failed", s)
	}
	probe := ghost.AddProbe(gst.PadProbeTypeBuffer|gst.PadProbeTypeBufferList|gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		return b.childProbe(c, s, info)
	})
	ghost.SetActive(true)
	if !c.bin.AddPad(ghost.Pad) {
		return fmt.Errorf("adding the source's %s pad failed", s)
	}
	c.mu.Lock()
	c.outs[s] = ghost
	c.probes[s] = probe
	added := c.added
	c.mu.Unlock()
	if added {
		return b.linkStream(c, s)
	}
	return nil
}

// linkOutput marks the instance as inside the bin and links the outputs it
// has so far. A ghost pad's target set before the instance is in the bin
// does not carry data.
func (b *reconnectBin) linkOutput(c *childInstance) error {
	c.mu.Lock()
	c.added = true
	c.mu.Unlock()
	for s := stream(0); s < streamCount; s++ {
		if err := b.linkStream(c, s); err != nil {
			return err
		}
	}
	return nil
}

func (b *reconnectBin) linkStream(c *childInstance, s stream) error {
	c.mu.Lock()
	ghost := c.outs[s]
	c.mu.Unlock()
	if ghost == nil {
		return nil // a demuxer or decodebin adds it later
	}
	out := b.existingOutputPad(s)
	if out == nil || !out.SetTarget(ghost.Pad) {
		return fmt.Errorf("linking the source to the bin's %s pad failed", s)
	}
	return nil
}

// childProbe watches one instance's output: buffers prove it is alive, its
// segment is kept for the output timeline, and its EOS becomes a rebuild
// instead of ending the stream.
func (b *reconnectBin) childProbe(c *childInstance, s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	if info.Type()&gst.PadProbeTypeBuffer != 0 {
		return b.childBuffer(c, s, info)
	}
	if info.Type()&gst.PadProbeTypeBufferList != 0 {
		return b.childBufferList(c, s, info)
	}
	if info.Type()&gst.PadProbeTypeEventDownstream == 0 {
		return gst.PadProbeOK
	}
	ev := info.GetEvent()
	switch ev.Type() {
	case gst.EventTypeSegment:
		seg := ev.ParseSegment() // valid only while ev is: copy what matters
		c.mu.Lock()
		c.segments[s] = timeline.Segment{Time: seg.GetFormat() == gst.FormatTime, Start: seg.GetStart(),
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

// childBufferList splits a buffer list (RTP payloaders push them) into
// single pushes on the same pad, so every buffer passes childBuffer: a list
// would otherwise leave the bin with the source's own timestamps. The
// list's flow return is lost; the next push reports a flushing or
// unlinked peer anyway.
func (b *reconnectBin) childBufferList(c *childInstance, s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	list := info.GetBufferList()
	c.mu.Lock()
	ghost := c.outs[s]
	c.mu.Unlock()
	if list == nil || ghost == nil {
		return gst.PadProbeDrop
	}
	n := list.Length()
	bufs := make([]*gst.Buffer, 0, n)
	for i := uint(0); i < n; i++ {
		bufs = append(bufs, list.GetBufferAt(i))
	}
	for _, buf := range bufs {
		if ret := ghost.Push(buf); ret != gst.FlowOK {
			break
		}
	}
	return gst.PadProbeDrop
}

// childBuffer handles one buffer of a source instance on its way out of the
// bin, on that instance's streaming thread: keyframe gate, placement on the
// output timeline (taking the stream over from fallback fill), timestamps
// and flags rewritten. Fill buffers never pass here, only source buffers.
func (b *reconnectBin) childBuffer(c *childInstance, s stream, info *gst.PadProbeInfo) gst.PadProbeReturn {
	sup := b.sup.Load()
	buf := info.GetBuffer()
	if sup == nil || buf == nil {
		return gst.PadProbeOK
	}
	o := &b.out
	if o.endRequested.Load() || c.rejected.Load() {
		return gst.PadProbeDrop
	}
	if s != streamMain && o.timeline.Filling(int(streamMain)) {
		// While the video is being filled the instance has not been placed
		// (or is being placed anew): its audio waits for the video to decide
		// where the instance goes, so both stay in sync. Fill silence covers
		// the audio meanwhile; the streaming thread is never held.
		return gst.PadProbeDrop
	}
	if !c.keyframeSeen[s].Load() && buf.HasFlags(gst.BufferFlagDeltaUnit) {
		o.keyframeWaits.Add(1)
		return gst.PadProbeDrop
	}
	if s == streamMain && o.timeline.Filling(int(streamMain)) {
		// Coming back from fallback fill (a rebuilt instance, or one that
		// kept running through a short gap): place the instance anew, after
		// the fill.
		o.timeline.StartInstance()
	}
	c.mu.Lock()
	seg := c.segments[s]
	c.mu.Unlock()
	pts, dts := runningTime(seg, buf.PresentationTimestamp()), runningTime(seg, buf.DecodingTimestamp())
	dur := timeline.None
	if d := buf.Duration(); d != gst.ClockTimeNone {
		dur = int64(d)
	}
	now := timeline.None
	if rt := gstshim.RunningTimeNow(b.self.Element); rt != gst.ClockTimeNone {
		now = int64(rt)
	}
	place := o.timeline.Place(int(s), pts, dts, dur, now)
	outPTS, outDTS, ok := place.PTS, place.DTS, place.OK
	if place.Late {
		// It would overlap what already went out on this stream (audio that
		// arrived ahead of the video an instance was placed by).
		return gst.PadProbeDrop
	}
	c.keyframeSeen[s].Store(true)
	if place.TookOver {
		if s == streamAudio && place.HadPrev && ok && outPTS-place.PrevEnd > int64(5*time.Millisecond) {
			// The audio that would have joined the fill silence seamlessly
			// was dropped while the video was being placed: pad the hole.
			b.padAudio(place.PrevEnd, outPTS)
		}
	}
	if ok && outDTS == timeline.None && buf.HasFlags(gst.BufferFlagHeader) {
		// kvssink drops a HEADER buffer without a DTS, and RTP depayloaders
		// give none: the keyframe carrying SPS/PPS would be lost, and every
		// frame after it until the next keyframe. A keyframe decodes first,
		// so its DTS is its PTS.
		outDTS = outPTS
	}
	if ok {
		gstshim.SetProbeBufferTimestamps(info, clockTime(outPTS), clockTime(outDTS))
	}
	gstshim.SetProbeBufferFlags(info, 0, gst.BufferFlagDiscont)
	if s == streamMain && b.fallback.enabled() {
		o.last.HoldProbeBuffer(info)
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

// padAudio pushes silence over [from, to) on the audio pad, from the audio
// streaming thread, just before that thread's own buffer.
func (b *reconnectBin) padAudio(from, to int64) {
	pad := b.existingOutputPad(streamAudio)
	if pad == nil {
		return
	}
	if silence := gstshim.Silence(pad.GetCurrentCaps(), gst.ClockTime(from), gst.ClockTime(to-from)); silence != nil {
		b.push(streamAudio, pad, silence)
	}
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
// The instance leaves the bin before it is set to NULL: its streaming
// threads may be blocked in a downstream push (a sink prerolling while the
// pipeline pauses) until the pipeline flushes, and a bin changing state
// waits for its children's state locks, which our SetState(NULL) would be
// holding. The signal handlers and the probes hold Go closures that
// reference c, and through it the instance's GObjects: they are removed
// explicitly so that no reference cycle keeps a removed instance alive.
//
// Going to NULL runs beside the loop, which waits for it at most
// releaseBound: a source stuck in a state change (a TCP connect to a host
// that drops SYNs holds tcpclientsrc's state lock for minutes) must not
// stop the next rebuild or the pipeline's shutdown. Out of the bin, it
// finishes on its own and frees itself.
func (b *reconnectBin) release(c *childInstance) {
	b.takeOut(c)
	// A start cut short by the loop's stop leaves c as the changing
	// instance; out of the bin it is not the bin's concern any more, and
	// the stale pointer would keep it allocated for the life of the bin.
	b.changing.CompareAndSwap(c, nil)
	done := make(chan struct{})
	lastChange := c.lastChange
	go func() {
		defer close(done)
		if lastChange != nil {
			// A change given up on may not have run yet: NULL must come
			// after it, or it would bring the instance back up.
			<-lastChange
		}
		_ = c.bin.SetState(gst.StateNull)
		b.dropReleasing(c)
		c.disconnect()
	}()
	timer := time.NewTimer(releaseBound)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		cat.LogWarning(fmt.Sprintf("source instance %d has not reached NULL after %v: going on without it (it finishes in the background)",
			c.gen, releaseBound))
	}
}

// releaseBound is how long a rebuild waits for the old instance to stop.
// Long enough for any source that honours unlock (it frees its port or
// connection before the new instance needs it), short next to an outage.
const releaseBound = 2 * time.Second

// disconnect removes the instance's signal handlers and probes, whose Go
// closures reference it.
func (c *childInstance) disconnect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, disconnect := range c.handlers {
		disconnect()
	}
	for s, out := range c.outs {
		if out != nil && c.probes[s] != 0 {
			out.RemoveProbe(c.probes[s])
		}
	}
	// c.bin stays set: a late message from one of the instance's helper
	// threads may still look at it; the instance is unreachable anyway.
	c.handlers, c.outs = nil, [streamCount]*gst.GhostPad{}
}
