package kvscredprovider

// The upload health watch: every kvssink the provider supplies is also
// watched for whether its upload gets through (issue #14). The decisions
// are internal/uploadhealth's; this file feeds it (uploadhooks.go reads
// kvssink's signals, pads and put frame errors), and reports what it decides:
// element messages, bus WARNINGs, log lines, the process's systemd watchdog
// (an sdnotify.Health per kvssink that withholds WATCHDOG=1 once the upload
// is wedged) and the EMF metrics of the kvssink's stream.
//
// A run lasts from the provider's NULL->READY (kvssink, a sink, started
// before it, so its properties are final) to its READY->NULL; a kvssink
// added to the pipeline while a run goes on joins it. The C hooks stay on a
// kvssink from when the provider first finds it until the provider leaves
// its bin.

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/emf"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/sdnotify"
	"github.com/kvsrelay/kvsrelay/internal/uploadhealth"
)

// uploadTick is how often the watch counts frames and applies the rule.
const uploadTick = time.Second

// uploadEventQueue bounds the events queued from kvssink's threads for the
// run's goroutine; beyond it events are counted as lost and logged, never
// waited for (kvssink holds its stream lock while it emits acks).
const uploadEventQueue = 256

// uploadOptions are what tests change (export_test.go): the clock the rule
// runs on, the tick and the notifier. Zero: time.Now, uploadTick,
// sdnotify.Default().
type uploadOptions struct {
	now      func() time.Time
	tick     time.Duration
	notifier *sdnotify.Notifier
}

// uploadWatch is the provider's part that lasts across runs.
type uploadWatch struct {
	p *credProvider

	mu     sync.Mutex
	id     uintptr             // handle the C hooks call back through; 0 until first used
	hooked map[uintptr]*hooked // by kvssink address
	run    atomic.Pointer[uploadRun]
}

// hooked is a kvssink whose signals and pads are connected.
type hooked struct {
	el   *gst.Element // keeps the element alive while hooked
	hook sinkHook
}

// uploadRun is one run: the watches of every kvssink, a goroutine.
type uploadRun struct {
	w       *uploadWatch
	opts    uploadOptions
	timeout time.Duration
	bus     busHook

	mu    sync.Mutex
	sinks map[uintptr]*sinkWatch

	events chan sinkEvent
	lost   atomic.Uint64
	stop   chan struct{}
	done   chan struct{}
}

// sinkWatch is one kvssink within a run.
type sinkWatch struct {
	name, stream string
	hook         sinkHook
	acksOn       bool
	watch        *uploadhealth.Watch
	health       *sdnotify.Health
	metrics      *emf.Stream // nil when metrics are off
	// bufferDuration is kvssink's buffer-duration, named in loss reports.
	bufferDuration time.Duration

	// Only the run's goroutine touches these.
	lastFrames uint64
	lastError  string // the last error's description, named in stall reports
}

type sinkEvent struct {
	sink *sinkWatch
	ev   uploadhealth.Event
}

// hook connects to kvssink el once (configureSink calls it for every
// kvssink found), and adds it to a running run.
func (w *uploadWatch) hook(el *gst.Element) {
	addr := uintptr(el.Unsafe())
	w.mu.Lock()
	if w.hooked == nil {
		w.hooked = map[uintptr]*hooked{}
	}
	if w.id == 0 {
		w.id = gstshim.NewHandle(uploadCallback(w.callback))
	}
	h := w.hooked[addr]
	if h == nil {
		hk, ok := hookSink(el, w.id)
		if !ok {
			w.mu.Unlock()
			cat.LogWarning(fmt.Sprintf("%s: watched by another kvscredprovider already; its upload is reported there", el.GetName()))
			return
		}
		h = &hooked{el: el, hook: hk}
		w.hooked[addr] = h
	}
	w.mu.Unlock()
	if run := w.run.Load(); run != nil {
		run.add(addr, h)
	}
}

// unhookAll disconnects from every kvssink (the provider left its bin).
func (w *uploadWatch) unhookAll() {
	w.stopRun()
	w.mu.Lock()
	hooked := w.hooked
	w.hooked = nil
	id := w.id
	w.id = 0
	w.mu.Unlock()
	if id != 0 {
		gstshim.DeleteHandle(id)
	}
	for _, h := range hooked {
		h.hook.unhook()
	}
}

// startRun starts watching every hooked kvssink inside top.
func (w *uploadWatch) startRun(top *gst.Bin, timeout time.Duration, opts uploadOptions) {
	w.stopRun()
	if top == nil {
		return
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	if opts.tick <= 0 {
		opts.tick = uploadTick
	}
	if opts.notifier == nil {
		n, err := sdnotify.Default()
		if err != nil {
			cat.LogWarning("sd_notify: " + err.Error())
		}
		opts.notifier = n
	}
	run := &uploadRun{w: w, opts: opts, timeout: timeout, sinks: map[uintptr]*sinkWatch{},
		events: make(chan sinkEvent, uploadEventQueue), stop: make(chan struct{}), done: make(chan struct{})}
	w.mu.Lock()
	id := w.id
	var hs []*hooked
	addrs := []uintptr{}
	for addr, h := range w.hooked {
		hs = append(hs, h)
		addrs = append(addrs, addr)
	}
	w.mu.Unlock()
	if len(hs) == 0 {
		return // no kvssink: nothing to watch, behave as before
	}
	for i, h := range hs {
		run.add(addrs[i], h)
	}
	if id != 0 {
		run.bus = hookBus(top, id)
	}
	w.run.Store(run)
	go run.loop()
}

// stopRun ends the run, if any: its goroutine, its vetoes.
func (w *uploadWatch) stopRun() {
	run := w.run.Swap(nil)
	if run == nil {
		return
	}
	run.bus.unhook()
	close(run.stop)
	<-run.done
	run.mu.Lock()
	defer run.mu.Unlock()
	for _, s := range run.sinks {
		if s.health != nil {
			s.health.Close()
		}
	}
}

// add starts watching one kvssink. Its settings are read now: kvssink
// read them at its NULL->READY, which came before.
func (r *uploadRun) add(addr uintptr, h *hooked) {
	r.mu.Lock()
	_, dup := r.sinks[addr]
	r.mu.Unlock()
	if dup {
		return
	}
	el := h.el
	s := &sinkWatch{name: el.GetName(), hook: h.hook, acksOn: true, lastFrames: h.hook.frames()}
	if v, err := el.GetProperty("stream-name"); err == nil {
		s.stream, _ = v.(string)
	}
	if v, err := el.GetProperty("fragment-acks"); err == nil {
		if b, ok := v.(bool); ok {
			s.acksOn = b
		}
	}
	var bufferDuration time.Duration // 0: unknown (not a kvssink with the property)
	if v, err := el.GetProperty("buffer-duration"); err == nil {
		if n, ok := v.(uint); ok {
			bufferDuration = time.Duration(n) * time.Second
		}
	}
	timeout := r.timeout
	if !s.acksOn {
		timeout = 0
		if r.timeout > 0 && r.w.p.firstWarning(s.name+"/fragment-acks") {
			text := fmt.Sprintf("%s has fragment-acks=false: kvssink then gets no acknowledgements from the service, so %s "+
				"cannot tell a stalled upload from a healthy one and does not watch it (errors are still reported); "+
				"leave fragment-acks at its default (true)", s.name, r.w.p.self.GetName())
			cat.LogWarning(text)
			gstshim.PostError(r.w.p.self, true, gstshim.ResourceError, gst.ResourceErrorSettings, text, "")
		}
	}
	watch, err := uploadhealth.New(uploadhealth.Options{AckTimeout: timeout, BufferDuration: bufferDuration})
	if err != nil { // ack-timeout was checked at NULL->READY
		cat.LogError(fmt.Sprintf("%s: %v", s.name, err))
		return
	}
	s.watch = watch
	s.bufferDuration = bufferDuration
	if timeout > 0 && r.opts.notifier != nil {
		s.health = r.opts.notifier.RegisterHealth(s.name)
	}
	if startRecording() {
		s.metrics = emf.Default().Stream(s.stream)
		s.metrics.SetUploadAckAge(0)
	}
	r.mu.Lock()
	r.sinks[addr] = s
	r.mu.Unlock()
	if timeout > 0 {
		cat.LogInfo(fmt.Sprintf("%s: watching its upload: stalled after %s without a PERSISTED acknowledgement while frames "+
			"go in, watchdog pings withheld after %s", s.name, timeout, watch.WedgeAfter()))
	}
}

func (r *uploadRun) sink(addr uintptr) *sinkWatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sinks[addr]
}

// callback runs on kvssink's threads (acks, stream errors) and on the
// threads posting its WARNINGs: record, queue what to report, return.
func (w *uploadWatch) callback(kind cbKind, addr uintptr, a, b, c uint64) {
	run := w.run.Load()
	if run == nil {
		return
	}
	s := run.sink(addr)
	if s == nil {
		return
	}
	now := run.opts.now()
	var evs []uploadhealth.Event
	switch kind {
	case cbAck:
		evs = s.watch.Ack(now, uploadhealth.AckType(a), b, c)
	case cbStreamError:
		evs = s.watch.StreamError(now, a)
	case cbPutFrameError:
		s.watch.FrameDropped(now, a)
		if s.metrics != nil {
			s.metrics.AddUploadFramesDropped(1)
		}
	}
	for _, ev := range evs {
		if ev.Kind == uploadhealth.EventError {
			// Posted here, on kvssink's thread, before the callback
			// returns: kvssink posts its ERROR for a stream error right
			// after, and an application (gst-launch-1.0 among them) that
			// stops at that ERROR must already have the upload-error
			// naming the cause on its bus. Under load the loop goroutine
			// posted it too late (a clean-clone run with a CPU hog).
			run.postUploadError(s, ev)
		}
		select {
		case run.events <- sinkEvent{sink: s, ev: ev}:
		default:
			run.lost.Add(1)
		}
	}
}

// loop is the run's goroutine: ticks and reports.
func (r *uploadRun) loop() {
	defer close(r.done)
	t := time.NewTicker(r.opts.tick)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			// kvssink's last signals (an ERROR ack right before the stream
			// error that stops the pipeline) are still reported.
			for {
				select {
				case e := <-r.events:
					r.report(e.sink, e.ev)
				default:
					return
				}
			}
		case e := <-r.events:
			r.report(e.sink, e.ev)
		case <-t.C:
			r.tick()
		}
	}
}

func (r *uploadRun) tick() {
	now := r.opts.now()
	r.mu.Lock()
	sinks := make([]*sinkWatch, 0, len(r.sinks))
	for _, s := range r.sinks {
		sinks = append(sinks, s)
	}
	r.mu.Unlock()
	for _, s := range sinks {
		if n := s.hook.frames(); n != s.lastFrames {
			s.watch.FramesIn(now, n-s.lastFrames)
			s.lastFrames = n
		}
		if m, ok := s.hook.kvsMetrics(); ok {
			s.watch.Metrics(m)
		}
		for _, ev := range s.watch.Tick(now) {
			r.report(s, ev)
		}
		if s.metrics != nil {
			snap := s.watch.Snapshot(now)
			s.metrics.SetUploadAckAge(snap.AckAge)
			if snap.HasLatency {
				s.metrics.SetUploadAckLatency(snap.Latency)
			}
		}
	}
	if n := r.lost.Swap(0); n > 0 {
		cat.LogWarning(fmt.Sprintf("upload watch: %d events from kvssink lost (queue full)", n))
	}
}

// report says what one event means, everywhere it should be said. Upload
// errors come only from kvssink's callbacks, which post their bus message
// themselves (see callback).
func (r *uploadRun) report(s *sinkWatch, ev uploadhealth.Event) {
	p := r.w.p
	self := p.self.GetName()
	since := ""
	if s.lastError != "" {
		since = "; last error: " + s.lastError
	}
	// kvssink signals only errors it cannot recover from; refused
	// connections and HTTP 403/500 answers it retries are in its log only
	// (seen with the real kvssink against the local endpoint).
	cause := since
	if cause == "" {
		cause = "; kvssink reported no error: the cause (connections refused, HTTP 403 or 500 answers, " +
			"a service taking data without acknowledging it) is in kvssink's log"
	}
	switch ev.Kind {
	case uploadhealth.EventStalled:
		restartAt := s.watch.WedgeAfter()
		text := fmt.Sprintf("%s (stream %s): no PERSISTED fragment acknowledgement for %s while frames go in%s; "+
			"the process's systemd watchdog pings stop at %s unless acknowledgements resume",
			s.name, s.stream, ev.AckAge.Round(time.Second), cause, restartAt)
		cat.LogWarning(text)
		gstshim.PostError(p.self, true, gstshim.ResourceError, gst.ResourceErrorWrite, "Upload to Kinesis Video Streams stalled: "+text, "")
		p.postElementMessage(MessageUploadStalled, map[string]any{
			"kvssink":       s.name,
			"stream-name":   s.stream,
			"ack-age":       uint64(ev.AckAge),
			"restart-after": uint64(restartAt),
			"last-error":    s.lastError,
		})
		if s.health != nil {
			s.health.Set(fmt.Sprintf("upload stalled: no PERSISTED ack for %s%s; watchdog stops at %s",
				ev.AckAge.Round(time.Second), since, restartAt), false)
		}
	case uploadhealth.EventWedged:
		text := fmt.Sprintf("%s (stream %s): still no PERSISTED fragment acknowledgement after %s (kvssink's buffer "+
			"of %s is used up)%s; %s stops the systemd watchdog pings so that systemd restarts the process",
			s.name, s.stream, ev.AckAge.Round(time.Second), s.watch.WedgeAfter(), cause, self)
		cat.LogError(text)
		gstshim.PostError(p.self, true, gstshim.ResourceError, gst.ResourceErrorWrite, "Upload to Kinesis Video Streams wedged: "+text, "")
		if s.health != nil {
			s.health.Set(fmt.Sprintf("upload wedged: no PERSISTED ack for %s%s; watchdog pings stopped",
				ev.AckAge.Round(time.Second), since), true)
		}
	case uploadhealth.EventResumed:
		cat.LogInfo(fmt.Sprintf("%s: upload resumed after %s without a PERSISTED acknowledgement", s.name, ev.AckAge.Round(time.Second)))
		p.postElementMessage(MessageUploadResumed, map[string]any{
			"kvssink":     s.name,
			"stream-name": s.stream,
			"stalled-for": uint64(ev.AckAge),
		})
		if s.health != nil {
			s.health.Set("", false)
		}
	case uploadhealth.EventFramesLost:
		snap := s.watch.Snapshot(ev.At)
		text := fmt.Sprintf("%s (stream %s): kvssink evicted %d frames it had not sent from its full buffer (%d in all); "+
			"it holds %s unsent and its buffer-duration is %s: an outage longer than buffer-duration (or "+
			"storage-size) loses video, see the recipes' OUTAGE_BUDGET_S",
			s.name, s.stream, ev.Frames, snap.BufferDropped, snap.Backlog.Round(time.Second), s.bufferDuration)
		cat.LogWarning(text)
		gstshim.PostError(p.self, true, gstshim.ResourceError, gst.ResourceErrorWrite, "Upload to Kinesis Video Streams lost frames: "+text, "")
		p.postElementMessage(MessageUploadFramesLost, map[string]any{
			"kvssink":         s.name,
			"stream-name":     s.stream,
			"frames":          ev.Frames,
			"dropped":         snap.BufferDropped,
			"skipped":         snap.Skipped,
			"backlog":         uint64(snap.Backlog),
			"buffer-duration": uint64(s.bufferDuration),
		})
		if s.metrics != nil {
			s.metrics.AddUploadFramesDropped(ev.Frames)
		}
	case uploadhealth.EventError:
		desc := describeUploadError(ev)
		s.lastError = desc
		cat.LogWarning(fmt.Sprintf("%s (stream %s): %s", s.name, s.stream, desc))
		if s.metrics != nil {
			s.metrics.AddUploadError()
		}
	}
}

// postUploadError posts the upload-error message for ev. It reads only
// what does not change while the sink is watched, so it runs on any thread.
func (r *uploadRun) postUploadError(s *sinkWatch, ev uploadhealth.Event) {
	r.w.p.postElementMessage(MessageUploadError, map[string]any{
		"kvssink":           s.name,
		"stream-name":       s.stream,
		"source":            string(ev.Source),
		"status":            ev.Status,
		"fragment-timecode": ev.Timecode,
		"description":       describeUploadError(ev),
	})
}

// describeUploadError names an error for people.
func describeUploadError(ev uploadhealth.Event) string {
	if ev.Source == uploadhealth.FromAck {
		return fmt.Sprintf("ERROR acknowledgement for fragment %d: %s (ErrorId %d)", ev.Timecode, uploadhealth.AckErrorName(ev.Status), ev.Status)
	}
	return fmt.Sprintf("stream error 0x%08x: %s", ev.Status, uploadhealth.StreamErrorName(ev.Status))
}

// status is the upload-status property: one entry per watched kvssink.
func (w *uploadWatch) status() string {
	run := w.run.Load()
	if run == nil {
		return ""
	}
	now := run.opts.now()
	run.mu.Lock()
	defer run.mu.Unlock()
	var parts []string
	for _, s := range run.sinks {
		snap := s.watch.Snapshot(now)
		state := "ok"
		switch {
		case !s.acksOn:
			state = "unwatched"
		case snap.Wedged:
			state = "wedged"
		case snap.Stalled:
			state = "stalled"
		case snap.FramesIn == 0:
			state = "waiting"
		}
		parts = append(parts, fmt.Sprintf("upload, kvssink=(string)%s, stream-name=(string)%s, state=(string)%s, "+
			"ack-age=(guint64)%d, latency=(guint64)%d, frames-in=(guint64)%d, persisted=(guint64)%d, error-acks=(guint64)%d, "+
			"stream-errors=(guint64)%d, frames-dropped=(guint64)%d, stalls=(guint64)%d, last-status=(guint64)%d, "+
			"buffer-dropped=(guint64)%d, skipped=(guint64)%d, backlog=(guint64)%d",
			quoteField(s.name), quoteField(s.stream), state, uint64(snap.AckAge), uint64(snap.Latency), snap.FramesIn,
			snap.Persisted, snap.ErrorAcks, snap.StreamErrors, snap.FramesDropped, snap.Stalls, snap.LastStatus,
			snap.BufferDropped, snap.Skipped, uint64(snap.Backlog)))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// quoteField quotes a string for a GstStructure serialisation.
func quoteField(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
