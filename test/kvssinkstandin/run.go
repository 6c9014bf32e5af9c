package kvssinkstandin

// runState is everything between NULL->READY and READY->NULL: the property
// snapshot's consequences, per-track checkers, the credential provider and
// the report. Its methods return the bus messages/signals to emit, which the
// element emits after releasing the lock.

import (
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-gst/go-gst/gst"
)

type actionKind int

const (
	actWarning     actionKind = iota // GST_ELEMENT_WARNING(RESOURCE, WRITE, NULL, text)
	actError                         // GST_ELEMENT_ERROR(STREAM, FAILED, NULL, text)
	actStreamError                   // g_signal_emit "stream-error" (status)
	actFragmentAck                   // g_signal_emit "fragment-ack" (ackType, timecode, seq, status as result)
	actFragment                      // a fragment started (timecode, seq) or, with ending, the last one ended: the element turns it into acks (acks.go)
)

type action struct {
	kind   actionKind
	text   string
	status uint32
	// fragments and acknowledgements
	ackType  int32
	timecode uint64 // ms of running time
	seq      string
	ending   bool
	hasPrev  bool
	prevTC   uint64
	prevSeq  string
}

// Lapse modes (KVSSINK_STANDIN_LAPSE).
const (
	LapseError = "error" // post an ERROR: the pipeline stops
	LapseStall = "stall" // post one WARNING and silently drop every later frame
)

type trackRun struct {
	kind      string // "video" or "audio"
	checker   *trackChecker
	firstCaps *CapsRecord
	eos       bool
	queue     []queued // in collectpads, waiting for the other tracks
	// eosPending: EOS arrived behind queued buffers (see collect).
	eosPending bool
	hasLast    bool
	lastRT     uint64
}

type runState struct {
	mu         sync.Mutex
	trace      io.Writer // KVSSINK_STANDIN_TRACE: one line per frame handed over
	now        func() time.Time
	streamName string
	lapseMode  string
	creds      *credentialProvider
	tracks     map[string]*trackRun
	report     *Report
	dirty      bool
	seq        uint64
	lapseDone  bool
	writer     *reportWriter // set before the run is published, never changed
	// acksOn is the fragment-acks property at NULL->READY; ackEnv the
	// parsed $KVSSINK_STANDIN_ACKS, used while the acks property is unset.
	acksOn bool
	ackEnv ackMode
	// The current fragment, for its acknowledgements.
	hasFrag bool
	fragTC  uint64
	fragSeq uint64
}

// track returns the state of the track behind pad, creating it on first use
// (a pad requested after NULL->READY is not something kvssink supports, but
// the stand-in still checks its data).
func (r *runState) track(pad string, cfg trackConfig) *trackRun {
	t := r.tracks[pad]
	if t == nil {
		t = &trackRun{kind: trackKind(pad), checker: newTrackChecker(cfg)}
		r.tracks[pad] = t
	}
	return t
}

func trackKind(pad string) string {
	if strings.HasPrefix(pad, "audio") {
		return "audio"
	}
	return "video"
}

// queued is a buffer waiting in collectpads for the other tracks.
type queued struct {
	flags gst.BufferFlags
	f     frame // clipped, not yet admitted
}

// order is collectpads' sort key: the DTS running time, else the PTS's
// (clockNone when the buffer has neither).
func (q queued) order() uint64 {
	if q.f.dtsValid {
		return q.f.dtsRT
	}
	return q.f.ptsRT
}

// before reports whether q goes out ahead of r in collectpads' order
// (gst_collect_pads_default_compare_func): a buffer without any timestamp
// first ("probably headers"; the clip function leaves it alone), then the
// earliest. As a plain number clockNone sorted last, which held every other
// frame of its track behind it forever: kvssink, handed it first, drops it
// (a HEADER buffer without timestamps) and goes on.
func (q queued) before(r queued) bool {
	a, b := q.order(), r.order()
	if a == clockNone || b == clockNone {
		return a == clockNone && b != clockNone
	}
	return a < b
}

// putBuffer takes one buffer the way kvssink's collectpads does (clipped
// as it arrives, queued until every track has one) and runs what
// collectpads hands over through kvssink's put_frame path. It reports
// whether the buffer was taken, plus what to post.
func (r *runState) putBuffer(pad string, flags gst.BufferFlags, pts, dts uint64) (bool, []action) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tracks[pad]
	if t == nil {
		r.report.addWarning(fmt.Sprintf("%s: buffer on a pad that was not there at NULL->READY", pad))
		r.dirty = true
		return false, nil
	}
	r.dirty = true
	f, reason := t.checker.clip(pts, dts)
	if reason != "" {
		r.report.FramesDropped[reason]++
		return false, nil
	}
	t.queue = append(t.queue, queued{flags: flags, f: f})
	return true, r.collect()
}

// collect hands queued buffers over while every track that has not ended
// has one, the earliest first (gst_collect_pads' default order), so the
// put_frame checks see the tracks interleaved by time as kvssink does,
// whichever arrived first (audio often runs ahead of encoded video).
func (r *runState) collect() []action {
	var acts []action
	for {
		for _, t := range r.tracks {
			if t.eosPending && len(t.queue) == 0 {
				// The pad's EOS reaches kvssink once its last buffer was
				// handed over: it puts an end-of-fragment marker, after
				// which the producer skips non-key frames again (the
				// second pad's marker fails, 0x5200008a, with no effect).
				t.eosPending, t.eos = false, true
				t.checker.endOfFragment()
			}
		}
		var best *trackRun
		bestPad := ""
		for pad, t := range r.tracks {
			if len(t.queue) == 0 {
				if t.eos {
					continue
				}
				return acts // collectpads waits for this track
			}
			if best == nil || t.queue[0].before(best.queue[0]) ||
				(!best.queue[0].before(t.queue[0]) && pad < bestPad) {
				best, bestPad = t, pad
			}
		}
		if best == nil {
			return acts
		}
		q := best.queue[0]
		best.queue = best.queue[1:]
		acts = append(acts, r.handle(bestPad, best, q)...)
	}
}

// handle is gst_kvs_sink_handle_buffer for one buffer collectpads handed
// over.
func (r *runState) handle(pad string, t *trackRun, q queued) []action {
	acts, f, outcome := r.handleFrame(pad, t, q)
	if r.trace != nil {
		fmt.Fprintf(r.trace, "%s pts %d dts %d key %v: %s\n", pad, f.ptsRT, f.dtsRT, f.keyframe, outcome)
	}
	return acts
}

// handleFrame is handle without the trace; outcome is "ok" or the reason
// the frame was dropped.
func (r *runState) handleFrame(pad string, t *trackRun, q queued) ([]action, frame, string) {
	f, reason := t.checker.admit(q.flags, q.f)
	if reason != "" {
		r.report.FramesDropped[reason]++
		return nil, q.f, reason
	}
	now := r.now()
	cred := r.creds.atFrame(now)
	for _, rec := range cred.reads {
		r.report.addRead(rec)
	}
	var acts []action
	if cred.readFailure != nil {
		acts = append(acts, r.streamError(now, cred.readFailure))
	}
	if cred.lapse != nil && !r.lapseDone {
		r.lapseDone = true
		acts = append(acts, r.lapseActions(now, cred.lapse)...)
	}
	if !cred.ok {
		r.report.FramesDropped[DropCredentialsExpired]++
		r.report.FramesWithExpiredCredentials++
		return acts, f, DropCredentialsExpired
	}
	reason, status, newFragment := t.checker.put(f)
	if reason != "" {
		return append(acts, r.refuse(pad, f, reason, status)...), f, reason
	}
	r.accept(pad, t, f, newFragment, now, cred.accessKey)
	if newFragment {
		acts = append(acts, r.fragmentStarted(f.ptsRT/uint64(1e6)))
	}
	return acts, f, "ok"
}

// fragmentStarted returns the action announcing a new fragment at tc (ms),
// carrying the one it ends.
func (r *runState) fragmentStarted(tc uint64) action {
	a := action{kind: actFragment, timecode: tc, hasPrev: r.hasFrag, prevTC: r.fragTC, prevSeq: fragmentSeq(r.fragSeq)}
	r.fragSeq++
	r.hasFrag, r.fragTC = true, tc
	a.seq = fragmentSeq(r.fragSeq)
	return a
}

// refuse records a frame the producer refused and returns the WARNING to
// post for it (none for silent drops).
func (r *runState) refuse(pad string, f frame, reason string, status uint32) []action {
	r.report.FramesDropped[reason]++
	if reason == DropBackwards {
		r.report.RunningTimeViolations++
	}
	if status == 0 {
		return nil
	}
	text := putFrameWarning(status)
	r.report.addWarning(fmt.Sprintf("%s: %s (pts rt %d, dts rt %d)", pad, text, f.ptsRT, f.dtsRT))
	return []action{{kind: actWarning, text: text}}
}

// accept records an accepted frame in the report.
func (r *runState) accept(pad string, t *trackRun, f frame, newFragment bool, now time.Time, accessKey string) {
	r.report.FramesAccepted[pad]++
	if f.keyframe {
		r.report.Keyframes++
	}
	if newFragment {
		r.report.Fragments++
	}
	pts0 := f.ptsRT
	if r.report.FirstPTSRunningTime == nil || pts0 < *r.report.FirstPTSRunningTime {
		v := pts0
		r.report.FirstPTSRunningTime = &v
	}
	if r.report.LastPTSRunningTime == nil || pts0 > *r.report.LastPTSRunningTime {
		v := pts0
		r.report.LastPTSRunningTime = &v
	}
	decode := f.decode()
	if t.hasLast && decode > t.lastRT && decode-t.lastRT > r.report.MaxGapNs {
		r.report.MaxGapNs = decode - t.lastRT
	}
	t.hasLast, t.lastRT = true, decode
	r.report.useKey(MaskKey(accessKey), now)
}

// streamError records a stream error and returns the stream-error signal to emit.
func (r *runState) streamError(now time.Time, l *lapse) action {
	r.report.addStreamError(StreamError{Time: now, Status: fmt.Sprintf("0x%08x", l.status), Message: l.message})
	return action{kind: actStreamError, status: l.status}
}

// lapseActions: raise stream-error, then error out or stall.
func (r *runState) lapseActions(now time.Time, l *lapse) []action {
	status := fmt.Sprintf("0x%08x", l.status)
	acts := []action{r.streamError(now, l)}
	if r.lapseMode == LapseStall {
		r.report.addWarning(textExpiringSoon + ": " + l.message)
		acts = append(acts, action{kind: actWarning, text: textExpiringSoon})
		return acts
	}
	text := fmt.Sprintf("[%s] Stream error occurred. Status: %s", r.streamName, status)
	r.report.addError(text + ": " + l.message)
	return append(acts, action{kind: actError, text: text})
}

var codecDataRe = regexp.MustCompile(`codec_data=\(buffer\)([0-9a-fA-F]*)`)

// capsEvent records a caps event. Only the first caps of a track count for
// kvssink; later caps with other codec_data, width or height are recorded
// as changes (the real element silently keeps the old codec data).
func (r *runState) capsEvent(pad, capsStr string, width, height int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tracks[pad]
	if t == nil {
		return
	}
	rec := CapsRecord{Track: pad, Caps: capsStr, Width: width, Height: height, Time: r.now()}
	if m := codecDataRe.FindStringSubmatch(capsStr); m != nil {
		if b, err := hex.DecodeString(m[1]); err == nil {
			rec.CodecData = hex.EncodeToString(b)
		}
	}
	r.dirty = true
	if t.firstCaps == nil {
		first := rec
		t.firstCaps = &first
		if t.kind == "video" && rec.CodecData == "" {
			r.report.addWarning(fmt.Sprintf("%s: first caps carry no codec_data: %s", pad, capsStr))
		}
		r.report.Caps = append(r.report.Caps, rec)
		return
	}
	f := t.firstCaps
	if rec.CodecData == f.CodecData && rec.Width == f.Width && rec.Height == f.Height {
		return
	}
	rec.Changed = true
	r.report.CapsChanges++
	r.report.addWarning(fmt.Sprintf("%s: caps changed after start (kvssink keeps the first codec_data, the upload is corrupt from here): %s", pad, capsStr))
	if len(r.report.Caps) < maxListed {
		r.report.Caps = append(r.report.Caps, rec)
	}
}

func (r *runState) segmentEvent(pad string, s segment, timeFormat bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tracks[pad]
	if t == nil {
		return
	}
	if !timeFormat {
		r.report.addWarning(fmt.Sprintf("%s: non-TIME segment ignored", pad))
		r.dirty = true
		return
	}
	t.checker.setSegment(s)
}

// eosEvent marks pad ended, which lets collectpads hand over what waited
// for it; once every track ended (kvssink posts EOS when all its pads have
// it) it marks the report and returns it to write.
func (r *runState) eosEvent(pad string) (data []byte, seq uint64, acts []action) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.tracks[pad]; t != nil && !t.eos {
		t.eosPending = true
	}
	acts = r.collect()
	for _, t := range r.tracks {
		if !t.eos {
			return nil, 0, acts
		}
	}
	r.report.EOS = true
	if r.hasFrag {
		// kvssink waits for the last fragment's acknowledgement at EOS.
		acts = append(acts, action{kind: actFragment, ending: true, hasPrev: true, prevTC: r.fragTC, prevSeq: fragmentSeq(r.fragSeq)})
		r.hasFrag = false
	}
	data, seq = r.encodeLocked()
	return data, seq, acts
}

// encodeIfDirty returns the report content when it changed since the last encoding.
func (r *runState) encodeIfDirty() ([]byte, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.dirty {
		return nil, 0
	}
	return r.encodeLocked()
}

func (r *runState) encode() ([]byte, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.encodeLocked()
}

// encodeLocked renders the report; seq orders renderings so that a writer
// never replaces a newer report with an older one.
func (r *runState) encodeLocked() ([]byte, uint64) {
	r.dirty = false
	r.seq++
	r.report.UpdatedAt = r.now()
	return r.report.encode(), r.seq
}

// reportWriter rewrites the report file while the element runs.
type reportWriter struct {
	path string
	run  *runState

	mu      sync.Mutex // serialises writes
	lastSeq uint64

	stopOnce sync.Once
	stopCh   chan struct{}
	done     chan struct{}
}

// startReportWriter writes the report now and then every reportInterval
// when it changed. With an empty path it only keeps the report in memory.
func startReportWriter(run *runState, path string) *reportWriter {
	w := &reportWriter{path: path, run: run, stopCh: make(chan struct{}), done: make(chan struct{})}
	if path == "" {
		close(w.done)
		return w
	}
	w.flush()
	go func() {
		defer close(w.done)
		tick := time.NewTicker(reportInterval)
		defer tick.Stop()
		for {
			select {
			case <-w.stopCh:
				return
			case <-tick.C:
				if data, seq := run.encodeIfDirty(); data != nil {
					w.write(data, seq)
				}
			}
		}
	}()
	return w
}

func (w *reportWriter) write(data []byte, seq uint64) {
	if w.path == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if seq < w.lastSeq {
		return
	}
	w.lastSeq = seq
	if err := writeReportFile(w.path, data); err != nil {
		cat.LogError(err.Error())
	}
}

// flush writes the current report.
func (w *reportWriter) flush() {
	data, seq := w.run.encode()
	w.write(data, seq)
}

// stop ends the periodic writes and writes the final report.
func (w *reportWriter) stop() {
	w.stopOnce.Do(func() { close(w.stopCh) })
	<-w.done
	w.flush()
}
