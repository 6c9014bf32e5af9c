package reconnectbin

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/failover"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/mediakind"
	"github.com/kvsrelay/kvsrelay/internal/streamstall"
	"github.com/kvsrelay/kvsrelay/internal/timeline"
)

// instance is one source instance inside the bin.
// sampleFormat is what cutting and timing audio by its samples needs.
type sampleFormat struct{ rate, bytesPerFrame int }

type instance struct {
	// run is the run that built it; its probes report there, also after
	// the instance left the bin.
	run          *runState
	role         *sourceRole // main or backup: whose supervisor counts it
	gen          uint64
	bin          *gst.Bin
	restartOnEOS bool
	outputCaps   string

	// keyframeSeen is false until the stream's first keyframe left the bin:
	// nothing before it does (a decoder or kvssink needs one to start).
	keyframeSeen [streamCount]atomic.Bool
	// rejected marks an instance whose caps on-caps-change refused.
	rejected atomic.Bool
	// streams watches its video and audio for one going silent while the
	// other flows (absorbed pads are never reported to it).
	streams *streamstall.Watch

	mu       sync.Mutex
	handlers []func()                      // pad-added watches' disconnects, called at release
	pads     [streamCount]*gst.GhostPad    // its chosen src pads, ghosted on bin; targets of the bin's output pads
	claimed  [streamCount]bool             // a pad is being attached to the stream (route)
	probes   [streamCount]uint64           // their probes, removed at release
	segments [streamCount]timeline.Segment // last segment on each
	// samples is each stream's sample format when its buffers can be cut
	// at any sample (raw interleaved audio, G.711): rate 0 otherwise.
	samples [streamCount]sampleFormat

	// phaseNow is where the instance is in its life (a phase), read
	// lock-free from streaming threads and message handlers; it only moves
	// forward. phaseMu makes leaving the bin atomic with the end of a state
	// change (changeState, abandonChange, takeOut); streaming threads never
	// take it.
	phaseMu  sync.Mutex
	phaseNow atomic.Int32
	// leftBin is closed when the instance enters phaseReleasing.
	leftBin chan struct{}
	// startErr is the first failure seen while phaseStarting, judged when
	// the start returns.
	startErr atomic.Pointer[string]
	// lastChange is closed when the last state change changeState started
	// has returned. Set and read only by the supervise loop.
	lastChange chan struct{}
}

// phase is a step of an instance's life, in order.
type phase int32

const (
	// phaseBuilding: parsed and wired, not in the bin yet.
	phaseBuilding phase = iota
	// phaseStarting: in the bin, on its way to PLAYING; its failures are
	// kept for the start's verdict (startErr).
	phaseStarting
	// phaseRunning: started; a failure is a rebuild.
	phaseRunning
	// phaseReleasing: out of the bin, on its way to NULL: removed for a
	// rebuild or a stop, or a start or state change given up on (its state
	// lock may still be held). Its failures are nobody's concern any more.
	phaseReleasing
	// phaseReleased: at NULL (or never out of it), its probes and signal
	// handlers removed.
	phaseReleased
)

func (c *instance) phase() phase { return phase(c.phaseNow.Load()) }

// advance moves c from phase from to phase to, and reports whether it was
// in from.
func (c *instance) advance(from, to phase) bool {
	return c.phaseNow.CompareAndSwap(int32(from), int32(to))
}

// inBin reports whether c's pads may feed the bin's.
func (c *instance) inBin() bool {
	p := c.phase()
	return p == phaseStarting || p == phaseRunning
}

// buildInstance parses desc into a new, not yet added, source instance and
// routes its output pads: the unlinked src pads it has now, and those its
// demuxers and decodebins add later.
func (b *reconnectBin) buildInstance(run *runState, role *sourceRole, gen uint64, desc string, s settings) (*instance, error) {
	bin, err := gst.NewBinFromString(desc, false)
	if err != nil {
		return nil, fmt.Errorf("parsing the source description: %w", err)
	}
	name := "source"
	if role.src == failover.Backup {
		name = "backup" // its generations count apart from the main's
	}
	_ = bin.SetProperty("name", fmt.Sprintf("%s%d", name, gen))
	b.allocated.Add(1)
	gstshim.OnFinalize(bin.Object, func() { b.allocated.Add(-1) })
	c := &instance{run: run, role: role, gen: gen, bin: bin, restartOnEOS: s.restartOnEOS, outputCaps: s.outputCaps, leftBin: make(chan struct{}),
		streams: streamstall.New(wallClock{}, s.stallTimeout, run.videoSeen.Load())}
	elements, err := bin.GetElements()
	if err != nil {
		return nil, fmt.Errorf("listing the source's elements: %w", err)
	}
	// Watched before the static pads are routed, and for every element: a
	// description may have static outputs and a demuxer adding more (an
	// explicit branch per stream, its unused streams), and each goes where
	// its caps say.
	for _, el := range elements {
		c.handlers = append(c.handlers, gstshim.ConnectPadAdded(el, func(pad *gst.Pad) {
			if pad.GetDirection() != gst.PadDirectionSource || pad.IsLinked() {
				return
			}
			if kind := padKind(pad); kind == mediakind.Unknown {
				b.routeOnCaps(c, pad)
			} else {
				b.routeStreaming(c, pad, kind)
			}
		}))
	}
	for _, pad := range unlinkedSrcPads(bin) {
		if err := b.route(c, pad); err != nil {
			c.disconnect() // its handlers' closures would keep it alive
			return nil, err
		}
	}
	return c, nil
}

// unlinkedSrcPads returns the unlinked src pads of the description's own
// elements. gst_bin_find_unlinked_pad would recurse into decodebin and
// steal its internal typefind pad.
func unlinkedSrcPads(bin *gst.Bin) []*gst.Pad {
	elements, err := bin.GetElements()
	if err != nil {
		return nil
	}
	var unlinked []*gst.Pad
	for _, el := range elements {
		pads, err := el.GetSrcPads()
		if err != nil {
			continue
		}
		for _, pad := range pads {
			if !pad.IsLinked() {
				unlinked = append(unlinked, pad)
			}
		}
	}
	return unlinked
}

// unlinkedSrcPad returns one unlinked src pad of the description, if any.
func unlinkedSrcPad(bin *gst.Bin) *gst.Pad {
	if pads := unlinkedSrcPads(bin); len(pads) > 0 {
		return pads[0]
	}
	return nil
}

// route sends one unlinked src pad of instance c where its caps say,
// whatever the order pads come in: video to the bin's src pad, audio to
// its audio pad (when the application requested it), anything else (and a
// second stream of a kind already taken) to a fakesink inside, so that it
// never returns NOT_LINKED. A pad whose caps do not tell yet (ANY
// templates: a queue behind a demuxer's pad still to come) is routed once
// it has negotiated caps. It runs on the supervise loop while building: a
// pad that cannot be attached fails the start (pads added later take
// routeStreaming).
func (b *reconnectBin) route(c *instance, pad *gst.Pad) error {
	if pad.GetDirection() != gst.PadDirectionSource || pad.IsLinked() {
		return nil
	}
	kind := padKind(pad)
	if kind == mediakind.Unknown {
		b.routeOnCaps(c, pad)
		return nil
	}
	return b.routeKind(c, pad, kind)
}

// routeOnCaps routes pad when its caps are set. notify::caps comes while
// the CAPS event is stored, before the pad sends its sticky events on, so
// a pad linked there sends stream-start, caps and segment in order.
func (b *reconnectBin) routeOnCaps(c *instance, pad *gst.Pad) {
	var once sync.Once
	var disconnect func()
	ready := make(chan struct{})
	onCaps := func(p *gst.Pad) {
		caps := p.GetCurrentCaps()
		if caps == nil {
			return
		}
		once.Do(func() {
			<-ready
			disconnect()
			if c.phase() >= phaseReleasing || p.IsLinked() {
				return
			}
			kind := capsKind(caps)
			if kind == mediakind.Unknown {
				kind = mediakind.Other // fixed caps that still say nothing (RTP without media)
			}
			b.routeStreaming(c, p, kind)
		})
	}
	disconnect = gstshim.ConnectCapsNotify(pad, onCaps)
	c.mu.Lock()
	c.handlers = append(c.handlers, disconnect)
	c.mu.Unlock()
	close(ready)
	cat.LogDebug(fmt.Sprintf("source instance %d: pad %s has no caps that say what it carries yet: routed once negotiated", c.gen, pad.GetName()))
	// Caps set between the first look and the connection were not notified.
	onCaps(pad)
}

// routeStreaming is routeKind on a streaming thread: a pad that cannot be
// attached is absorbed, and the failure logged (the stream it would have
// fed then stalls, which is a rebuild).
func (b *reconnectBin) routeStreaming(c *instance, pad *gst.Pad, kind mediakind.Kind) {
	if err := b.routeKind(c, pad, kind); err != nil {
		cat.LogWarning(fmt.Sprintf("source instance %d: %v", c.gen, err))
		absorb(c.bin, pad)
	}
}

// routeKind sends pad, which carries kind, to its stream or absorbs it. It
// fails when the pad cannot be attached to its stream.
func (b *reconnectBin) routeKind(c *instance, pad *gst.Pad, kind mediakind.Kind) error {
	var s stream
	switch kind {
	case mediakind.Video:
		s = streamMain
	case mediakind.Audio:
		s = streamAudio
	default:
		cat.LogInfo(fmt.Sprintf("source instance %d: pad %s carries neither video nor audio: absorbed", c.gen, pad.GetName()))
		absorb(c.bin, pad)
		return nil
	}
	if s == streamAudio && b.existingOutputPad(streamAudio) == nil {
		absorb(c.bin, pad) // nobody asked for audio
		return nil
	}
	if s == streamAudio && c.role.src == failover.Backup {
		// The backup feeds the video only; the audio pad has fallback's
		// silence (with fallback on) while it does.
		cat.LogInfo(fmt.Sprintf("backup source instance %d: its audio is not used: absorbed", c.gen))
		absorb(c.bin, pad)
		return nil
	}
	c.mu.Lock()
	taken := c.pads[s] != nil || c.claimed[s]
	c.claimed[s] = true
	c.mu.Unlock()
	if taken {
		cat.LogInfo(fmt.Sprintf("source instance %d: pad %s is a second %s stream: absorbed", c.gen, pad.GetName(), kind))
		absorb(c.bin, pad)
		return nil
	}
	if err := b.attach(c, pad, s); err != nil {
		c.mu.Lock()
		c.claimed[s] = false
		c.mu.Unlock()
		return fmt.Errorf("%s pad %s: %w", kind, pad.GetName(), err)
	}
	return nil
}

// padKind is what pad carries according to its negotiated caps, else the
// caps it can produce (its template's, or what is upstream of it).
func padKind(pad *gst.Pad) mediakind.Kind {
	if caps := pad.GetCurrentCaps(); caps != nil {
		return capsKind(caps)
	}
	return capsKind(pad.QueryCaps(nil))
}

// capsKind classifies every structure of caps (mediakind); ANY and empty
// caps are Unknown.
func capsKind(caps *gst.Caps) mediakind.Kind {
	if caps == nil || caps.IsAny() || caps.IsEmpty() {
		return mediakind.Unknown
	}
	kinds := make([]mediakind.Kind, 0, caps.GetSize())
	for i := 0; i < caps.GetSize(); i++ {
		st := caps.GetStructureAt(i)
		kinds = append(kinds, mediakind.OfStructure(st.Name(), strings.Trim(gstshim.StructureFieldString(st, "media"), `"`)))
	}
	return mediakind.Combine(kinds...)
}

// attach ghosts one of the instance's output pads and, once the instance is
// inside the bin, makes it the target of the bin's pad for that stream.
func (b *reconnectBin) attach(c *instance, inner *gst.Pad, s stream) error {
	if c.outputCaps != "" && s == streamMain {
		format, err := parseOutputCaps(c.outputCaps)
		if err != nil {
			return err
		}
		normalized, err := normalize(c.bin, inner, format.caps)
		if err != nil {
			return err
		}
		inner = normalized
	}
	if s == streamAudio {
		if format := b.audioFormat(c.run); format != "" {
			if !isRawAudio(inner) {
				// Encoded audio cannot join raw silence; downstream will see
				// the caps change (on-caps-change decides).
				cat.LogWarning(fmt.Sprintf("source instance %d: its audio is not raw: passed as it is, not converted to %s", c.gen, format))
			} else {
				normalized, err := normalizeAudio(c.bin, inner, format)
				if err != nil {
					return err
				}
				inner = normalized
			}
		}
	}
	ghost := gst.NewGhostPad(s.String(), inner)
	if ghost == nil {
		return fmt.Errorf("ghosting the source's %s pad failed", s)
	}
	probe := ghost.AddProbe(gst.PadProbeTypeBuffer|gst.PadProbeTypeBufferList|gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		return b.instanceProbe(c, s, info)
	})
	ghost.SetActive(true)
	if !c.bin.AddPad(ghost.Pad) {
		return fmt.Errorf("adding the source's %s pad failed", s)
	}
	c.mu.Lock()
	c.pads[s] = ghost
	c.probes[s] = probe
	c.mu.Unlock()
	c.streams.Routed(s.kind())
	// Read after the pad is stored: either this sees the instance in the
	// bin, or linkPads, which runs after it entered phaseStarting, sees
	// the pad.
	if c.inBin() {
		return b.linkStream(c, s)
	}
	return nil
}

// normalize converts, scales and rate-adapts pad to caps inside bin, so
// every source instance leaves the bin with byte-identical caps. It returns
// the new output pad.
func normalize(bin *gst.Bin, pad *gst.Pad, caps string) (*gst.Pad, error) {
	convert, err1 := gst.NewElement("videoconvert")
	// add-borders keeps the picture's shape when a camera comes back with
	// another aspect ratio: letterboxed, never stretched.
	scale, err2 := gst.NewElementWithProperties("videoscale", map[string]interface{}{"add-borders": true})
	// skip-to-first: a live source stamps its first frame with the
	// pipeline's running time, seconds into the run; videorate would fill
	// from its segment's start up to it with copies of that frame, a
	// burst that put the output as far ahead of the clock.
	rate, err3 := gst.NewElementWithProperties("videorate", map[string]interface{}{"skip-to-first": true})
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

// linkPads links the pads an instance that entered the bin has so far; a
// demuxer's later pads are linked as they come (attach). A ghost pad's
// target set before the instance is in the bin does not carry data.
func (b *reconnectBin) linkPads(c *instance) error {
	for s := stream(0); s < streamCount; s++ {
		if err := b.linkStream(c, s); err != nil {
			return err
		}
	}
	return nil
}

func (b *reconnectBin) linkStream(c *instance, s stream) error {
	c.mu.Lock()
	ghost := c.pads[s]
	c.mu.Unlock()
	if ghost == nil {
		return nil // a demuxer or decodebin adds it later
	}
	if c.role.src == failover.Backup {
		return nil // the backup's buffers are pushed by its probe (backup.go)
	}
	output := b.existingOutputPad(s)
	if output == nil || !output.SetTarget(ghost.Pad) {
		return fmt.Errorf("linking the source to the bin's %s pad failed", s)
	}
	return nil
}

// changeResult is how an instance's state change ended.
type changeResult int

const (
	changeDone      changeResult = iota // returned; err says how
	changeStopped                       // the loop was told to stop first
	changeAbandoned                     // the bin changed state first: c was taken out
	changeTimedOut                      // still running after the bound: c was taken out
)

// changeState sets instance c to state beside the loop and waits at most
// bound. A state change may block for minutes (a TCP connect to a host
// that drops SYNs holds tcpclientsrc's state lock), and the loop must stay
// free to detect stalls, to stop, and to let the bin change state
// (abandonChange). An instance whose change did not complete is out of the
// bin when this returns; its change finishes in the background.
func (b *reconnectBin) changeState(c *instance, state gst.State, bound time.Duration) (changeResult, error) {
	run := c.run
	done := make(chan error, 1)
	finished := make(chan struct{})
	c.lastChange = finished // release waits for it before going to NULL
	run.changing.Store(c)
	go func() {
		defer close(finished)
		done <- c.bin.SetState(state)
	}()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case err := <-done:
		c.phaseMu.Lock()
		run.changing.CompareAndSwap(c, nil)
		left := c.phase() >= phaseReleasing
		c.phaseMu.Unlock()
		if left {
			return changeAbandoned, err
		}
		return changeDone, err
	case <-run.stop:
		return changeStopped, nil
	case <-c.leftBin:
		run.changing.CompareAndSwap(c, nil)
		return changeAbandoned, nil
	case <-timer.C:
		run.changing.CompareAndSwap(c, nil)
		b.takeOut(c)
		return changeTimedOut, nil
	}
}

// abandonChange takes the instance whose state change is still running out
// of the bin. Called by the bin's own state changes before its children's:
// GstBin takes every child's state lock, even a locked child's, and a
// change that blocks holds that lock, so the pipeline could never pause or
// stop. The supervise loop then treats the instance as failed.
func (b *reconnectBin) abandonChange() {
	run := b.run.Load()
	if run == nil {
		return
	}
	c := run.changing.Load()
	if c == nil {
		return
	}
	c.phaseMu.Lock()
	defer c.phaseMu.Unlock()
	if run.changing.Load() != c {
		return // its change returned meanwhile
	}
	cat.LogInfo(fmt.Sprintf("source instance %d is still changing state: taking it out of the bin", c.gen))
	b.takeOutLocked(c)
}

// takeOut removes instance c (the current one) from the bin, once, and
// moves it to phaseReleasing: its pads stop feeding the bin's, and its
// last messages stay inside.
func (b *reconnectBin) takeOut(c *instance) {
	c.phaseMu.Lock()
	defer c.phaseMu.Unlock()
	b.takeOutLocked(c)
}

// takeOutLocked is takeOut with c.phaseMu held.
func (b *reconnectBin) takeOutLocked(c *instance) {
	if p := c.phase(); p >= phaseReleasing || !c.advance(p, phaseReleasing) {
		return
	}
	for s := stream(0); s < streamCount && c.role.src != failover.Backup; s++ {
		if output := b.existingOutputPad(s); output != nil {
			gstshim.ClearGhostTarget(output)
		}
	}
	b.addReleasing(c)
	_ = b.self.Remove(c.bin.Element)
	close(c.leftBin)
}

func (b *reconnectBin) addReleasing(c *instance) {
	b.releasingMu.Lock()
	defer b.releasingMu.Unlock()
	for _, r := range b.releasing {
		if r == c {
			return
		}
	}
	b.releasing = append(b.releasing, c)
}

func (b *reconnectBin) dropReleasing(c *instance) {
	b.releasingMu.Lock()
	defer b.releasingMu.Unlock()
	for i, r := range b.releasing {
		if r == c {
			// The vacated slot is cleared: a stale pointer past the
			// slice's length kept the last released instance (all its
			// elements, buffers and sockets) alive until the next release
			// overwrote it, which on a source that streams on is never.
			last := len(b.releasing) - 1
			copy(b.releasing[i:], b.releasing[i+1:])
			b.releasing[last] = nil
			b.releasing = b.releasing[:last]
			return
		}
	}
}

// fromReleasing reports whether msg comes from an instance being released.
func (b *reconnectBin) fromReleasing(msg *gst.Message) bool {
	b.releasingMu.Lock()
	defer b.releasingMu.Unlock()
	for _, r := range b.releasing {
		if gstshim.MessageFromInside(msg, r.bin.Object) {
			return true
		}
	}
	return false
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
func (b *reconnectBin) release(c *instance) {
	b.takeOut(c)
	// A start cut short by the loop's stop leaves c as the changing
	// instance; out of the bin it is not the bin's concern any more, and
	// the stale pointer would keep it allocated for the life of the bin.
	c.run.changing.CompareAndSwap(c, nil)
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
// closures reference it: the instance is released.
func (c *instance) disconnect() {
	c.phaseNow.Store(int32(phaseReleased))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, disconnect := range c.handlers {
		disconnect()
	}
	for s, pad := range c.pads {
		if pad != nil && c.probes[s] != 0 {
			pad.RemoveProbe(c.probes[s])
		}
	}
	// c.bin stays set: a late message from one of the instance's helper
	// threads may still look at it; the instance is unreachable anyway.
	c.handlers, c.pads = nil, [streamCount]*gst.GhostPad{}
}
