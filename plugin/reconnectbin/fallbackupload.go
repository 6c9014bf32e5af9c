package reconnectbin

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/timeline"
	"github.com/kvsrelay/kvsrelay/internal/withhold"
)

// fallback-upload=false: fallback fill keeps the encoders, the muxer and
// kvssink's collectpads fed through an outage, but never reaches KVS (no
// stored, billed black video), and the stream resumes on the source's first
// frame, made a keyframe.
//
// What runs where:
//   - the video filler marks an outage's start with a serialized custom
//     event (uploadMark) before its first fill frame; the source's streaming
//     thread marks its end (with the takeover's running time) before the
//     source's first frame after it, and asks the encoder for a keyframe at
//     that time (a downstream force-key-unit event). The marks pass through
//     the encoders in order with the frames.
//   - the audio filler marks the start on the audio pad, with the running
//     time of its first silence in the outage (an audio encoder holds
//     events until its next output and re-chunks the samples: the gate
//     decides audio by time).
//   - a gate sits in front of each kvssink pad in the pipeline, found at
//     READY->PAUSED: a probe on the src pad linked to it (before kvssink's
//     own pad probes, such as kvscredprovider's frame count). It flags what
//     internal/withhold decides to withhold DECODE_ONLY, which kvssink
//     discards without a trace, instead of dropping it: collectpads takes a
//     buffer on every pad before it lets any through, so a dropped stream
//     would hold the other one's thread (and the bin's pushes, and the
//     watchdog with them) for the whole outage.
//
// Outages whose marks never reach a kvssink (another branch, a pipeline
// without kvssink) cost two events per outage and nothing else.

// uploadMarkName names the structure of the outage marks.
const uploadMarkName = "kvsrelay-fallback-upload"

// uploadGates are the gate ids: the marks of one run reach only its gates
// (two relays in one pipeline share no kvssink, but their marks could pass
// the same elements).
var uploadGates atomic.Uint64

// uploadState is one run's fallback-upload=false machinery.
type uploadState struct {
	id uint64 // this run's marks and gates

	// current is the open video outage (nil between outages).
	current  atomic.Pointer[outageEpisode]
	episodes atomic.Uint64 // ids handed out

	// recent keeps the last episodes by id: the audio gates read their
	// takeover times.
	recentMu sync.Mutex
	recent   [8]*outageEpisode

	gates []*uploadGate

	withheldVideo atomic.Uint64
	withheldAudio atomic.Uint64
}

// outageEpisode is one outage of the video.
type outageEpisode struct {
	id uint64
	// from is the running time of the first fill frame (None before);
	// written before the start mark goes out.
	from atomic.Int64
	// to is the running time where the source's video took over (None
	// while the outage lasts). Set before the source's first buffer
	// leaves the bin, so before any audio of the source does.
	to atomic.Int64

	// mu orders the start mark (the filler) and the end mark (the
	// source's streaming thread): an end may go out only after its start,
	// and a start never after the end was decided.
	mu        sync.Mutex
	startSent bool
	ended     bool
}

func newUploadState() *uploadState {
	return &uploadState{id: uploadGates.Add(1)}
}

// episode returns a recent episode by id, nil when unknown.
func (u *uploadState) episode(id uint64) *outageEpisode {
	u.recentMu.Lock()
	defer u.recentMu.Unlock()
	if e := u.recent[id%uint64(len(u.recent))]; e != nil && e.id == id {
		return e
	}
	return nil
}

// beginOutage opens a video outage; the video filler is about to start.
func (u *uploadState) beginOutage() {
	e := &outageEpisode{id: u.episodes.Add(1)}
	e.from.Store(timeline.None)
	e.to.Store(timeline.None)
	u.recentMu.Lock()
	u.recent[e.id%uint64(len(u.recent))] = e
	u.recentMu.Unlock()
	u.current.Store(e)
}

// uploadMark is an outage mark: the start, or the end with the takeover's
// running time (at), of episode ep of gate id. A custom downstream event
// is serialized: elements keep it in order with the buffers.
func uploadMark(id, ep uint64, start bool, at int64) *gst.Event {
	st := gst.NewStructure(uploadMarkName)
	phase := "end"
	if start {
		phase = "start"
	}
	_ = st.SetValue("gate", id)
	_ = st.SetValue("episode", ep)
	_ = st.SetValue("phase", phase)
	_ = st.SetValue("time", at)
	return gst.NewCustomEvent(gst.EventTypeCustomDownstream, st)
}

// parseUploadMark reads a mark of gate id; ok is false for any other event.
func parseUploadMark(ev *gst.Event, id uint64) (ep uint64, start bool, at int64, ok bool) {
	if ev.Type() != gst.EventTypeCustomDownstream || !ev.HasName(uploadMarkName) {
		return 0, false, 0, false
	}
	st := ev.GetStructure()
	if st == nil {
		return 0, false, 0, false
	}
	gate, _ := st.GetValue("gate")
	if g, _ := gate.(uint64); g != id {
		return 0, false, 0, false
	}
	v, _ := st.GetValue("episode")
	ep, _ = v.(uint64)
	v, _ = st.GetValue("phase")
	phase, _ := v.(string)
	v, _ = st.GetValue("time")
	at, okTime := v.(int64)
	if !okTime {
		at = timeline.None
	}
	return ep, phase == "start", at, true
}

// forceKeyUnit is a downstream force-key-unit event (the structure
// gst_video_event_new_downstream_force_key_unit makes, without linking
// gstreamer-video): the encoder makes its first frame at or after
// runningTime a keyframe. Given the takeover time, a fill frame still on
// its way cannot take the keyframe the source's first frame needs.
func forceKeyUnit(runningTime int64) *gst.Event {
	st := gst.NewStructure("GstForceKeyUnit")
	none := uint64(gst.ClockTimeNone)
	rt := none
	if runningTime >= 0 {
		rt = uint64(runningTime)
	}
	_ = st.SetValue("timestamp", none)
	_ = st.SetValue("stream-time", none)
	_ = st.SetValue("running-time", rt)
	_ = st.SetValue("all-headers", false)
	_ = st.SetValue("count", uint(0))
	return gst.NewCustomEvent(gst.EventTypeCustomDownstream, st)
}

// markFill runs on a filler goroutine before it pushes a fill buffer at
// pts on stream s. Video: the outage's start mark before its first frame;
// false when the outage already ended without one (the source took over
// first): the frame must not go out unmarked. Audio: the start mark,
// with pts, the first time the filler fills in a video outage (*announced
// is the filler's last announced episode).
func (b *reconnectBin) markFill(run *runState, s stream, pad *gst.GhostPad, pts int64, announced *uint64) bool {
	u := run.upload
	if u == nil {
		return true
	}
	e := u.current.Load()
	if e == nil || e.id == *announced {
		return true
	}
	if s == streamAudio {
		if e.to.Load() != timeline.None {
			return true // over already; what follows is after the takeover
		}
		*announced = e.id
		pad.PushEvent(uploadMark(u.id, e.id, true, pts))
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ended {
		return false
	}
	*announced = e.id
	if !e.startSent {
		e.from.Store(pts)
		pad.PushEvent(uploadMark(u.id, e.id, true, pts))
		e.startSent = true
	}
	return true
}

// endOutage runs on the source's video streaming thread before a buffer
// placed at pts leaves the bin (after any padding fill frames): the open
// outage ends here. Its end mark and the keyframe request go out first.
func (b *reconnectBin) endOutage(run *runState, pts int64) {
	u := run.upload
	if u == nil {
		return
	}
	e := u.current.Load()
	if e == nil || !u.current.CompareAndSwap(e, nil) {
		return
	}
	e.to.Store(pts)
	e.mu.Lock()
	e.ended = true
	started := e.startSent
	e.mu.Unlock()
	if !started {
		return
	}
	b.srcPad.PushEvent(uploadMark(u.id, e.id, false, pts))
	b.srcPad.PushEvent(forceKeyUnit(pts))
}

// uploadGate is the gate in front of one kvssink pad.
type uploadGate struct {
	u       *uploadState
	bin     *reconnectBin
	kvssink string
	video   bool
	pad     *gst.Pad // the src pad linked to kvssink's pad
	probe   uint64

	mu    sync.Mutex
	seg   timeline.Segment
	v     withhold.Video
	a     withhold.Audio
	lists uint64 // buffer lists let through unchecked
}

// installUploadGates puts a gate in front of every kvssink pad in the
// pipeline. kvssink's request pads are linked by now (gst-launch links
// at parse time; an application links before starting).
func (b *reconnectBin) installUploadGates(u *uploadState) {
	top := gstshim.TopLevelBin(b.self.Element)
	var sinks []*gst.Element
	if top != nil {
		sinks = gstshim.ElementsMadeBy(top, kvssinkFactory)
	}
	for _, k := range sinks {
		pads, _ := k.GetSinkPads()
		for _, pad := range pads {
			peer := pad.GetPeer()
			if peer == nil {
				continue
			}
			g := &uploadGate{u: u, bin: b, kvssink: k.GetName(), video: !strings.HasPrefix(pad.GetName(), "audio"), pad: peer}
			g.probe = peer.AddProbe(gst.PadProbeTypeBuffer|gst.PadProbeTypeBufferList|gst.PadProbeTypeEventDownstream,
				func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn { return g.probeFn(info) })
			u.gates = append(u.gates, g)
			cat.LogInfo(fmt.Sprintf("fallback-upload=false: fill withheld from %s:%s", k.GetName(), pad.GetName()))
		}
	}
	if len(u.gates) == 0 {
		text := "reconnectbin: property 'fallback-upload' is false, but the pipeline had no linked kvssink when it started: " +
			"fallback frames go downstream like any others"
		cat.LogWarning(text)
		gstshim.PostError(b.self.Element, true, gstshim.ResourceError, gst.ResourceErrorSettings, text, "")
	}
}

// removeUploadGates takes the run's gates away (PAUSED->READY).
func (u *uploadState) removeUploadGates() {
	for _, g := range u.gates {
		g.pad.RemoveProbe(g.probe)
	}
	u.gates = nil
}

// kvssinkFactory is the factory name of AWS's kvssink (and of the tests'
// stand-in).
const kvssinkFactory = "kvssink"

func (g *uploadGate) probeFn(info *gst.PadProbeInfo) gst.PadProbeReturn {
	switch {
	case info.Type()&gst.PadProbeTypeEventDownstream != 0:
		g.event(info.GetEvent())
	case info.Type()&gst.PadProbeTypeBuffer != 0:
		g.buffer(info)
	case info.Type()&gst.PadProbeTypeBufferList != 0:
		// Not split here (parsers and encoders push single buffers):
		// counted, so stats show it happened.
		g.mu.Lock()
		g.lists++
		g.mu.Unlock()
	}
	return gst.PadProbeOK
}

func (g *uploadGate) event(ev *gst.Event) {
	if ev == nil {
		return
	}
	if ev.Type() == gst.EventTypeSegment {
		seg := segmentOf(ev)
		g.mu.Lock()
		g.seg = seg
		g.mu.Unlock()
		return
	}
	ep, start, at, ok := parseUploadMark(ev, g.u.id)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.video && start:
		g.v.Start(ep)
	case g.video:
		g.v.End(ep, at)
	case start:
		g.a.Start(ep, at)
	}
}

func (g *uploadGate) buffer(info *gst.PadProbeInfo) {
	buf := info.GetBuffer()
	if buf == nil {
		return
	}
	g.mu.Lock()
	pts := runningTime(g.seg, buf.PresentationTimestamp())
	var verdict withhold.Verdict
	if g.video {
		verdict = g.v.Buffer(!buf.HasFlags(gst.BufferFlagDeltaUnit), pts)
	} else {
		resumeAt := timeline.None
		if ep, open := g.a.Episode(); open {
			if e := g.u.episode(ep); e != nil {
				resumeAt = e.to.Load()
			}
		}
		verdict = g.a.Buffer(pts, resumeAt)
	}
	g.mu.Unlock()
	counter, stream := &g.u.withheldAudio, "audio"
	if g.video {
		counter, stream = &g.u.withheldVideo, "video"
	}
	switch {
	case verdict.Withhold:
		// kvssink discards DECODE_ONLY buffers before anything else
		// (gstkvssink.cpp), collectpads still takes them.
		gstshim.SetProbeBufferFlags(info, gst.BufferFlagDecodeOnly, 0)
		counter.Add(1)
	case verdict.Resumed:
		cat.LogInfo(fmt.Sprintf("%s: %s resumes at %v after %d withheld fill buffers", g.kvssink, stream, clockTime(pts), verdict.Withheld))
		fillFrom, fillTo := timeline.None, timeline.None
		if e := g.u.episode(verdict.Episode); e != nil {
			fillFrom, fillTo = e.from.Load(), e.to.Load()
		}
		if verdict.From != withhold.None {
			fillFrom = verdict.From // the audio's own fill start
		}
		g.bin.postElementMessage("reconnectbin-fallback-withheld", map[string]any{
			"kvssink": g.kvssink, "stream": stream, "buffers": verdict.Withheld,
			// Running times: the fill reconnectbin made for this stream
			// (the source's video took over at fill-to), and the first
			// buffer let through here.
			"fill-from": uint64(clockTime(fillFrom)), "fill-to": uint64(clockTime(fillTo)),
			"resumed-at": uint64(clockTime(pts)),
		})
	}
}
