package reconnectbin

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/fielderr"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/gvalue"
	"github.com/kvsrelay/kvsrelay/internal/streamstall"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
)

// reconnectBin is the Go half of one reconnectbin element. What the
// properties say (settings) and what runs (run) are kept apart, each under
// its own lock.
type reconnectBin struct {
	// settings is what the properties say (settings.go): SetProperty
	// writes it, every reader copies it under settingsMu, held only for
	// that.
	settingsMu sync.Mutex
	settings   settings

	// self and srcPad are set once in Constructed and never change.
	self   *gst.Bin
	srcPad *gst.GhostPad

	// audioPad exists once the application requested it ("name.audio" in
	// gst-launch-1.0); the sources' audio goes there, or nowhere without it.
	padsMu   sync.Mutex
	audioPad *gst.GhostPad

	// pushes tracks the buffers in flight out of each output pad, so a
	// push stuck in a wedged sink is told apart from a quiet source.
	pushes [streamCount]atomic.Pointer[gstshim.PushTracker]

	// run is what runs between READY->PAUSED and PAUSED->READY (run.go),
	// nil otherwise. stateMu serializes its start and stop (the
	// state-change thread); streaming threads load it without a lock.
	stateMu sync.Mutex
	run     atomic.Pointer[runState]
	// lastRun is the run that ended last, kept so that status and stats
	// stay readable after the pipeline stopped (the demo's summary reads
	// them).
	lastRun atomic.Pointer[runState]

	// What outlives a run: the instances it released.
	//
	// releasing holds the instances being torn down (out of the bin, on
	// their way to NULL), so that their last messages are still kept
	// inside. Usually one; more when a source blocks its way to NULL and is
	// left to finish in the background.
	releasingMu sync.Mutex
	releasing   []*instance

	// allocated counts the source instances built and not yet freed (the
	// current one included): +1 when one is built, -1 when its bin is
	// finalized (a GObject weak reference). Read by stats, so a leak of
	// whole instances is measured rather than guessed.
	allocated atomic.Int64
}

// New is called by the GObject type system for every new instance.
func (b *reconnectBin) New() glib.GoObjectSubclass {
	return &reconnectBin{settings: defaultSettings()}
}

// ClassInit installs metadata, the pad template and the properties.
func (b *reconnectBin) ClassInit(klass *glib.ObjectClass) {
	class := gst.ToElementClass(klass)
	class.SetMetadata(
		"Reconnecting source bin",
		"Source/Generic/Bin",
		"Wraps any source (gst-launch description or URI) and rebuilds it in place on error, EOS or stall, "+
			"keeping downstream running with one continuous, monotonic stream",
		"kvsrelay developers <kvsrelay@users.noreply.github.com>",
	)
	class.AddPadTemplate(gst.NewPadTemplate("src", gst.PadDirectionSource, gst.PadPresenceAlways, gst.NewAnyCaps()))
	class.AddPadTemplate(gst.NewPadTemplate("audio", gst.PadDirectionSource, gst.PadPresenceRequest, gst.NewAnyCaps()))
	klass.InstallProperties(properties)
}

// Constructed adds the always-present src ghost pad and marks the bin as a
// source for good: application EOS (gst-launch-1.0 -e) reaches a bin only
// while it carries the SOURCE flag, and during an outage it has no child.
func (b *reconnectBin) Constructed(obj *glib.Object) {
	b.self = gst.ToGstBin(obj)
	b.srcPad = b.newOutputPad(streamMain)
	b.self.AddPad(b.srcPad.Pad)
	b.self.SetSuppressedFlags(gst.ElementFlagSource | gst.ElementFlagSink)
	unshareSoupSessions(b.self)
	gstshim.SetObjectFlag(b.self.Object, gst.ElementFlagSource)
}

// SetProperty stores a property; running instances pick it up at the next rebuild.
func (b *reconnectBin) SetProperty(obj *glib.Object, id uint, value *glib.Value) {
	b.settingsMu.Lock()
	defer b.settingsMu.Unlock()
	s := &b.settings
	switch id {
	case propSource:
		s.source = gvalue.String(value)
	case propURI:
		s.uri = gvalue.String(value)
	case propStallTimeout:
		s.stallTimeout = gvalue.Duration(value)
	case propRetryDelay:
		s.retryDelay = gvalue.Duration(value)
	case propMaxRetryDelay:
		s.maxRetryDelay = gvalue.Duration(value)
	case propMaxRetries:
		if v, err := value.GoValue(); err == nil {
			s.maxRetries = v.(int)
		}
	case propRestartOnEOS:
		if v, err := value.GoValue(); err == nil {
			s.restartOnEOS = v.(bool)
		}
	case propOutputCaps:
		s.outputCaps = gstshim.CapsStringFromValue(value)
	case propOutputAudioCaps:
		s.outputAudioCaps = gstshim.CapsStringFromValue(value)
	case propFallback:
		s.fallback = gstshim.EnumFromValue(value)
	case propFallbackHold:
		s.fallbackHold = gvalue.Duration(value)
	case propFallbackImage:
		s.fallbackImage = gvalue.String(value)
	case propFallbackUpload:
		if v, err := value.GoValue(); err == nil {
			s.withholdFill = !v.(bool)
		}
	case propOnCapsChange:
		s.onCapsChange = gstshim.EnumFromValue(value)
	case propFallbackURI:
		s.fallbackURI = gvalue.String(value)
	case propFallbackSource:
		s.fallbackSource = gvalue.String(value)
	case propMainSteadyTime:
		s.mainSteadyTime = gvalue.Duration(value)
	}
}

// GetProperty reads a property.
func (b *reconnectBin) GetProperty(obj *glib.Object, id uint) *glib.Value {
	var v any
	switch id {
	case propStatus:
		v = b.status()
	case propStats:
		st := b.statsStructure()
		val, err := st.ToGValue()
		if err != nil {
			return nil
		}
		return val
	default:
		b.settingsMu.Lock()
		s := b.settings
		b.settingsMu.Unlock()
		switch id {
		case propSource:
			if s.source == "" {
				return nil
			}
			v = s.source
		case propURI:
			if s.uri == "" {
				return nil
			}
			v = s.uri
		case propStallTimeout:
			v = uint64(s.stallTimeout)
		case propRetryDelay:
			v = uint64(s.retryDelay)
		case propMaxRetryDelay:
			v = uint64(s.maxRetryDelay)
		case propMaxRetries:
			v = s.maxRetries
		case propRestartOnEOS:
			v = s.restartOnEOS
		case propOutputCaps:
			if s.outputCaps == "" {
				return nil
			}
			val, err := gst.NewCapsFromString(s.outputCaps).ToGValue()
			if err != nil {
				return nil
			}
			return val
		case propOutputAudioCaps:
			if s.outputAudioCaps == "" {
				return nil
			}
			val, err := gst.NewCapsFromString(s.outputAudioCaps).ToGValue()
			if err != nil {
				return nil
			}
			return val
		case propFallback:
			return gstshim.EnumToValue(fallbackType, s.fallback)
		case propFallbackHold:
			v = uint64(s.fallbackHold)
		case propFallbackImage:
			if s.fallbackImage == "" {
				return nil
			}
			v = s.fallbackImage
		case propFallbackUpload:
			v = !s.withholdFill
		case propOnCapsChange:
			return gstshim.EnumToValue(capsChangeType, s.onCapsChange)
		case propFallbackURI:
			if s.fallbackURI == "" {
				return nil
			}
			v = s.fallbackURI
		case propFallbackSource:
			if s.fallbackSource == "" {
				return nil
			}
			v = s.fallbackSource
		case propMainSteadyTime:
			v = uint64(s.mainSteadyTime)
		default:
			return nil
		}
	}
	val, err := glib.GValue(v)
	if err != nil {
		return nil
	}
	return val
}

// ChangeState starts the supervise loop at READY->PAUSED, lets it start the
// source once PLAYING, and stops everything at PAUSED->READY. The bin is a
// live source: it produces data only in PLAYING, so it answers NO_PREROLL.
func (b *reconnectBin) ChangeState(el *gst.Element, transition gst.StateChange) gst.StateChangeReturn {
	if current, next := transition>>3, transition&7; current == next {
		// A pipeline re-applies its state (PLAYING to PLAYING) when a sink
		// completes its async state change: the first buffer at a sink,
		// which fallback sends before any source started. GstBin would
		// take the state lock of every child, the source instance's too,
		// held for minutes by a start stuck in a TCP connect, and the
		// pipeline, Ctrl-C and latency handling with it. The instances'
		// states are the supervise loop's business (locked state, the
		// bin's clock given explicitly): there is nothing to re-apply.
		if gst.State(next) == gst.StatePaused {
			return gst.StateChangeNoPreroll
		}
		return gst.StateChangeSuccess
	}
	switch transition {
	case gst.StateChangeNullToReady:
		b.settingsMu.Lock()
		s := b.settings
		b.settingsMu.Unlock()
		if err := validateSettings(s); err != nil {
			var fe *fielderr.Error
			if errors.As(err, &fe) {
				gstshim.PostError(el, false, gstshim.ResourceError, gst.ResourceErrorSettings, propertyMessage(err), "")
			} else {
				gstshim.PostError(el, false, gstshim.CoreError, gst.CoreErrorFailed, propertyMessage(err), "")
			}
			return gst.StateChangeFailure
		}
	case gst.StateChangeReadyToPaused:
		if err := b.startRun(); err != nil {
			gstshim.PostError(el, false, gstshim.ResourceError, gst.ResourceErrorSettings, propertyMessage(err), "")
			return gst.StateChangeFailure
		}
	case gst.StateChangePlayingToPaused:
		b.abandonChange()
	case gst.StateChangePausedToReady:
		b.abandonChange()
		b.stopRun()
	}

	ret := el.ParentChangeState(transition)
	if ret == gst.StateChangeFailure {
		return ret
	}

	switch transition {
	case gst.StateChangeReadyToPaused, gst.StateChangePlayingToPaused:
		b.setPlaying(false)
		return gst.StateChangeNoPreroll
	case gst.StateChangePausedToPlaying:
		b.setPlaying(true)
	}
	return ret
}

// HandleMessage keeps the source's failures inside the bin: ERROR, WARNING,
// EOS and BUFFERING from any source instance never reach the pipeline (a
// BUFFERING below 100% would make gst-launch pause a live relay). ERRORs of
// the current instance become rebuilds; everything else passes up.
//
// ASYNC_START and ASYNC_DONE of an instance stay inside as well: instances
// change state on their own (locked state), outside the bin's state
// changes. GstBin would otherwise forward an instance's ASYNC_START to the
// pipeline and, when the matching ASYNC_DONE arrives while the bin has no
// state change pending, drop it ("nothing pending"): the pipeline then
// waits for the bin forever and its sinks never leave preroll (seen as a
// relay showing no frame at all, now and then, at start).
//
// An instance's soup session stays inside it too (see soupSessionContext).
func (b *reconnectBin) HandleMessage(bin *gst.Bin, msg *gst.Message) {
	switch msg.Type() {
	case gst.MessageNeedContext, gst.MessageHaveContext:
		if b.instanceSoupSession(bin, msg) {
			// handle_message transfers ownership; go-gst's wrapper has no finalizer.
			msg.Unref()
			return
		}
		bin.ParentHandleMessage(msg)
		return
	case gst.MessageError, gst.MessageWarning, gst.MessageEOS, gst.MessageBuffering,
		gst.MessageAsyncStart, gst.MessageAsyncDone:
	default:
		bin.ParentHandleMessage(msg)
		return
	}
	// A source instance being released has already left the bin, but its
	// elements may still post while it goes to NULL: those stay inside too.
	if !b.fromReleasing(msg) && (!gstshim.MessageFromInside(msg, bin.Object) || msg.Source() == bin.GetName()) {
		bin.ParentHandleMessage(msg)
		return
	}
	if c := b.instanceOf(msg); c != nil {
		switch msg.Type() {
		case gst.MessageError:
			gerr := msg.ParseError()
			text := fmt.Sprintf("%s: %s", msg.Source(), gerr.Error())
			cat.LogWarning(fmt.Sprintf("source instance %d: %s (%s)", c.gen, text, gerr.DebugString()))
			b.instanceFailed(c, supervisor.ReasonError, text)
		case gst.MessageWarning:
			cat.LogInfo(fmt.Sprintf("source instance %d warning from %s: %s", c.gen, msg.Source(), msg.ParseWarning().Error()))
		case gst.MessageEOS:
			// An EOS message comes from a sink inside the description (for example
			// the fakesink that absorbs extra pads); the src pad probe handles the
			// EOS that matters.
		}
	}
	// handle_message transfers ownership; go-gst's wrapper has no finalizer.
	msg.Unref()
}

// soupSessionContext is the context type through which souphttpsrc shares
// its libsoup session, and the one thread that runs every request of it,
// with each souphttpsrc that asks (HAVE_CONTEXT, NEED_CONTEXT).
//
// Each source instance keeps its own session: GstBin stores a HAVE_CONTEXT's
// context and hands it to every child added later, so without this every
// rebuilt instance ran its requests on the first instance's session thread.
// GStreamer 1.22's legacy hlsdemux can deadlock that thread: it posts a
// segment's 404 ERROR from the session thread, hlsdemux's message handler
// waits there for the manifest lock, held by the playlist refresh, which
// waits for its own request on that same thread. Every later instance then
// queued its requests on the dead thread (no HTTP request after the fault
// was lifted, stall rebuilds forever, each stuck instance's threads and fds
// kept). With a session per instance, a later instance never depends on an
// earlier one's session thread; and within an instance, fragment sources
// do not share at all (unshareSoupSessions, soup.go), which removes the
// deadlock itself.
const soupSessionContext = "gst.soup.session"

// instanceSoupSession reports whether msg is a source instance's
// HAVE_CONTEXT or NEED_CONTEXT for a soup session, which goes no further
// than the instance: the bin and the pipeline neither keep nor answer it.
func (b *reconnectBin) instanceSoupSession(bin *gst.Bin, msg *gst.Message) bool {
	if gstshim.MessageContextType(msg) != soupSessionContext {
		return false
	}
	return b.fromReleasing(msg) || gstshim.MessageFromInside(msg, bin.Object)
}

// SendEvent handles application EOS (gst-launch-1.0 -e, then Ctrl-C): stop
// rebuilding and end the stream downstream at once, even in the middle of an
// outage when there is no source instance to forward it to.
//
// The EOS is pushed from goroutines and SendEvent returns at once, as
// GstBaseSrc does with an EOS sent to it: the caller
// (gst_element_send_event) holds the pipeline's and this element's state
// locks, and a sink still prerolling keeps an EOS push waiting until the
// pipeline is PLAYING, which needs those locks. Waiting here deadlocked a
// Ctrl-C (or systemctl stop) that came while the relay was starting.
func (b *reconnectBin) SendEvent(el *gst.Element, event *gst.Event) bool {
	defer event.Unref()
	if event.Type() == gst.EventTypeEOS {
		cat.LogInfo("application EOS: ending the stream, no more rebuilds")
		run := b.run.Load()
		if run != nil {
			run.output.endRequested.Store(true)
			run.requestStop()
			// No more fill buffers; only then, after EOS, wait for the
			// fillers (a push in flight may need the EOS to return).
			b.closeFills(run, false)
		}
		pads := b.outputPads()
		// One event per pad, made here: the caller's is unreffed when
		// SendEvent returns, before the pushes run.
		events := make([]*gst.Event, len(pads))
		for i := range pads {
			events[i] = gst.NewEOSEvent()
			events[i].SetSeqnum(event.Seqnum())
		}
		go func() {
			if !pushEOS(pads, events) {
				cat.LogInfo("application EOS: not every output pad took it (flushing or unlinked)")
			}
			if run != nil {
				b.closeFills(run, true)
			}
		}()
		return true
	}
	return el.ParentSendEvent(event)
}

// outputPads are the pads an EOS must end: src, and audio when requested.
func (b *reconnectBin) outputPads() []*gst.GhostPad {
	pads := []*gst.GhostPad{b.srcPad}
	if audio := b.existingOutputPad(streamAudio); audio != nil {
		pads = append(pads, audio)
	}
	return pads
}

// pushEOS ends every output stream at the same time (events[i] on pads[i]).
// A muxer (collectpads, as in matroskamux and kvssink) holds a push on one
// stream until the other has data or has ended, and takes each pad's stream
// lock for its EOS: ending the streams one after the other waits on the
// first while it is held for the second (matroskamux never let go).
func pushEOS(pads []*gst.GhostPad, events []*gst.Event) bool {
	results := make(chan bool, len(pads))
	for i, pad := range pads {
		go func(pad *gst.GhostPad, ev *gst.Event) { results <- pad.PushEvent(ev) }(pad, events[i])
	}
	ok := true
	for range pads {
		ok = <-results && ok
	}
	return ok
}

// RequestNewPad adds the audio pad. Requested at link time (gst-launch-1.0
// "name.audio ! ..."), it exists before any data flows, so a muxer or
// kvssink downstream waits for audio and video alike from the start.
func (b *reconnectBin) RequestNewPad(el *gst.Element, templ *gst.PadTemplate, name string, caps *gst.Caps) *gst.Pad {
	if templ == nil || templ.Name() != streamAudio.String() {
		return nil
	}
	b.padsMu.Lock()
	if b.audioPad != nil {
		b.padsMu.Unlock()
		cat.LogWarning("the audio pad was requested twice; reconnectbin has one")
		return nil
	}
	pad := b.newOutputPad(streamAudio)
	pad.SetActive(true)
	if !el.AddPad(pad.Pad) {
		b.padsMu.Unlock()
		return nil
	}
	b.audioPad = pad
	b.padsMu.Unlock()
	if c := b.currentInstance(); c != nil {
		_ = b.linkStream(c, streamAudio)
	}
	return pad.Pad
}

// ReleasePad removes the audio pad.
func (b *reconnectBin) ReleasePad(el *gst.Element, pad *gst.Pad) {
	b.padsMu.Lock()
	audio := b.audioPad
	if audio != nil && audio.Pad.Unsafe() == pad.Unsafe() {
		b.audioPad = nil
		b.pushes[streamAudio].Store(nil)
	}
	b.padsMu.Unlock()
	if audio != nil && audio.Pad.Unsafe() == pad.Unsafe() {
		gstshim.ClearGhostTarget(audio)
		el.RemovePad(pad)
	}
}

// instanceOf is the running instance (the main's, or the backup's) msg comes
// from, if any.
func (b *reconnectBin) instanceOf(msg *gst.Message) *instance {
	run := b.run.Load()
	if run == nil {
		return nil
	}
	if c := run.current.Load(); c != nil && gstshim.MessageFromInside(msg, c.bin.Object) {
		return c
	}
	if run.backup != nil {
		if c := run.backup.current.Load(); c != nil && gstshim.MessageFromInside(msg, c.bin.Object) {
			return c
		}
	}
	return nil
}

// currentInstance is the source instance inside the bin, if any.
func (b *reconnectBin) currentInstance() *instance {
	if run := b.run.Load(); run != nil {
		return run.current.Load()
	}
	return nil
}

// status is the running supervisor's status; once stopped, "stopped"
// unless the last run gave up ("failed").
func (b *reconnectBin) status() string {
	if run := b.run.Load(); run != nil {
		return string(run.sup.Status())
	}
	if last := b.lastRun.Load(); last != nil && last.sup.Status() == supervisor.StatusFailed {
		return string(supervisor.StatusFailed)
	}
	return "stopped"
}

// statsStructure reads the running run's statistics, or the last run's
// once stopped (zero before any run).
func (b *reconnectBin) statsStructure() *gst.Structure {
	st := gst.NewStructure("reconnectbin-stats")
	run := b.run.Load()
	if run == nil {
		run = b.lastRun.Load()
	}
	if run == nil {
		run = &runState{fallback: &fallback{}}
	}
	var s supervisor.Stats
	if run.sup != nil {
		s = run.sup.Stats()
	}
	_ = st.SetValue("restarts", s.Restarts)
	for _, r := range []supervisor.Reason{supervisor.ReasonError, supervisor.ReasonEOS, supervisor.ReasonStall, supervisor.ReasonStartFailed} {
		_ = st.SetValue("restarts-"+string(r), s.PerReason[r])
	}
	_ = st.SetValue("last-error", s.LastError)
	_ = st.SetValue("since-last-buffer", uint64(s.SinceLastBuffer))
	_ = st.SetValue("current-outage", uint64(s.CurrentOutage))
	_ = st.SetValue("total-outage", uint64(s.TotalOutage))
	_ = st.SetValue("attempts", s.Attempts)
	_ = st.SetValue("status", b.status())
	_ = st.SetValue("frames-out", run.output.framesOut.Load())
	_ = st.SetValue("in-fallback", run.fallback.active.Load())
	_ = st.SetValue("fallback-frames", run.fallback.totalFrames.Load())
	_ = st.SetValue("fallback-time", uint64(run.fallback.totalTime.Load()))
	_ = st.SetValue("caps-changes", run.output.capsChanges.Load())
	_ = st.SetValue("keyframe-waits", run.output.keyframeWaits.Load())
	_ = st.SetValue("order-drops", run.output.orderDrops.Load())
	_ = st.SetValue("instances-allocated", b.allocated.Load())
	_ = st.SetValue("restarts-stall-video", run.videoStalls.Load())
	silent := ""
	if c := run.current.Load(); c != nil && b.run.Load() == run {
		for _, s := range []streamstall.Stream{streamstall.Video, streamstall.Audio} {
			if _, quiet := c.streams.Silent(s); quiet {
				silent = s.String()
			}
		}
	}
	_ = st.SetValue("silent-stream", silent)
	var longest uint64
	warned := false
	if run.gop != nil {
		longest, warned = uint64(run.gop.Longest()), run.gop.Reported()
	}
	_ = st.SetValue("keyframe-interval-max", longest)
	_ = st.SetValue("keyframe-interval-too-long", warned)
	var withheldFrames, withheldAudio uint64
	if run.upload != nil {
		withheldFrames, withheldAudio = run.upload.withheldVideo.Load(), run.upload.withheldAudio.Load()
	}
	_ = st.SetValue("fallback-withheld-frames", withheldFrames)
	_ = st.SetValue("fallback-withheld-audio", withheldAudio)
	backupStats(st, run)
	return st
}

// postElementMessage posts an application-visible element message on the bus.
func (b *reconnectBin) postElementMessage(name string, fields map[string]any) {
	gstshim.PostElementMessage(b.self.Element, name, fields)
}
