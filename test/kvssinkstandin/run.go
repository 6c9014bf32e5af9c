package kvssinkstandin

// runState is everything between NULL->READY and READY->NULL: the property
// snapshot's consequences, per-track checkers, the credential provider and
// the report. Its methods return the bus messages/signals to emit, which the
// element emits after releasing the lock.

import (
	"encoding/hex"
	"fmt"
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
)

type action struct {
	kind   actionKind
	text   string
	status uint32
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
	hasLast   bool
	lastRT    uint64
}

type runState struct {
	mu         sync.Mutex
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

// putBuffer runs one buffer through kvssink's put_frame path and returns
// whether the frame was accepted plus what to post.
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
	f, reason := t.checker.prepare(flags, pts, dts)
	if reason != "" {
		r.report.FramesDropped[reason]++
		return false, nil
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
		return false, acts
	}
	reason, status, newFragment := t.checker.put(f)
	if reason != "" {
		r.report.FramesDropped[reason]++
		if reason == DropBackwards {
			r.report.RunningTimeViolations++
		}
		if status != 0 {
			text := putFrameWarning(status)
			r.report.addWarning(fmt.Sprintf("%s: %s (pts rt %d, dts rt %d)", pad, text, f.ptsRT, f.dtsRT))
			acts = append(acts, action{kind: actWarning, text: text})
		}
		return false, acts
	}
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
	decode := f.ptsRT
	if f.dtsValid {
		decode = f.dtsRT
	}
	if t.hasLast && decode > t.lastRT && decode-t.lastRT > r.report.MaxGapNs {
		r.report.MaxGapNs = decode - t.lastRT
	}
	t.hasLast, t.lastRT = true, decode
	r.report.useKey(MaskKey(cred.accessKey), now)
	return true, acts
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

// eosEvent marks pad ended; once every track ended (kvssink posts EOS when
// all its pads have it) it marks the report and returns it to write.
func (r *runState) eosEvent(pad string) (data []byte, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t := r.tracks[pad]; t != nil {
		t.eos = true
	}
	for _, t := range r.tracks {
		if !t.eos {
			return nil, 0
		}
	}
	r.report.EOS = true
	return r.encodeLocked()
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
