// Package uploadhealth decides, for one kvssink, whether its upload is
// healthy: the wedge rule behind kvscredprovider's upload-stalled /
// upload-resumed / upload-error messages and its veto of systemd watchdog
// pings. It is a plain state machine: the caller feeds it what it observed
// (frames entering kvssink, fragment acknowledgements, stream errors, put
// frame errors) with the time it observed them, and a tick about once a
// second; it answers with events and a snapshot. It reads no clock and
// starts no goroutine, so tests drive it with plain times.
//
// The rule. An upload waits for a PERSISTED acknowledgement from the first
// frame that entered kvssink after the last PERSISTED one (or after the
// start); that wait is the ack age. Once the ack age reaches AckTimeout while
// frames still enter kvssink, the upload is stalled (EventStalled). A stalled
// upload is wedged (EventWedged: the process should be restarted) once the
// ack age also reaches BufferDuration, kvssink's buffer-duration: until then
// kvssink still holds everything that did not reach the service and sends it
// when the connection comes back, so a restart would throw that away, and a
// network outage is not something a restart fixes; after it kvssink drops
// its oldest frames anyway. The next PERSISTED acknowledgement ends both
// (EventResumed).
//
// A source that goes quiet is not an upload problem (kvssink has nothing to
// send, and its last fragment may stay open until more frames come): no
// stall is declared while no frame entered for AckTimeout, and a frame
// after such a gap starts a new wait. Once declared, a stall lasts until a
// PERSISTED acknowledgement, even if frames stop.
//
// Frames lost. kvssink keeps what the service has not received in a buffer
// bounded by its buffer-duration and storage-size; when the buffer is full
// it evicts its oldest unsent frames, which it counts (PIC's StreamMetrics;
// the caller passes them in with Metrics). A rise of that count is reported
// as EventFramesLost: at once, then at
// most once per LossReportInterval while the loss goes on, each event
// carrying the frames lost since the previous one.
//
// Latency is measured on the observer's clock from the BUFFERING
// acknowledgement of a fragment (the service started receiving it) to its
// PERSISTED acknowledgement: it needs no agreement between the stream's
// timestamps and any clock. The backlog before the service (a slow uplink)
// shows in the ack age instead.
package uploadhealth

import (
	"fmt"
	"sync"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

// AckType is a fragment acknowledgement's type, numbered as PIC's
// FRAGMENT_ACK_TYPE (what kvssink's fragment-ack signal carries).
type AckType int

// Acknowledgement types.
const (
	AckUndefined AckType = iota
	AckBuffering
	AckReceived
	AckPersisted
	AckError
	AckIdle
)

func (t AckType) String() string {
	switch t {
	case AckBuffering:
		return "BUFFERING"
	case AckReceived:
		return "RECEIVED"
	case AckPersisted:
		return "PERSISTED"
	case AckError:
		return "ERROR"
	case AckIdle:
		return "IDLE"
	}
	return fmt.Sprintf("undefined(%d)", int(t))
}

// Defaults and limits.
const (
	// DefaultAckTimeout is how long frames may go in without a PERSISTED
	// acknowledgement before the upload counts as stalled. The service
	// persists a fragment a few seconds after its last frame; with
	// kvssink's 2 s fragments a healthy stream is acknowledged every 2-5 s.
	DefaultAckTimeout = 60 * time.Second
	// MinAckTimeout keeps slow but healthy uploads (long fragments, a
	// congested uplink catching up) from counting as stalled.
	MinAckTimeout = 10 * time.Second
	// LossReportInterval is the shortest time between two EventFramesLost:
	// a network outage longer than kvssink's buffer loses frames every
	// second, and one report per second would bury everything else.
	LossReportInterval = 10 * time.Second
	// maxPending bounds the BUFFERING times kept for latency.
	maxPending = 64
)

// CheckAckTimeout validates an AckTimeout setting (0 turns the stall rule
// off) as a *fielderr.Error naming the Options field.
func CheckAckTimeout(d time.Duration) error {
	if d != 0 && d < MinAckTimeout {
		return fielderr.New("AckTimeout", d, fmt.Sprintf("must be 0 (off) or at least %s", MinAckTimeout))
	}
	return nil
}

// Options configures a Watch.
type Options struct {
	// AckTimeout: see the package comment. 0 turns the stall rule off
	// (errors and statistics are still reported).
	AckTimeout time.Duration
	// BufferDuration is kvssink's buffer-duration. A stall becomes a wedge
	// after max(AckTimeout, BufferDuration).
	BufferDuration time.Duration
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	// EventStalled: no PERSISTED acknowledgement for AckTimeout while frames
	// went in.
	EventStalled EventKind = iota + 1
	// EventWedged: still stalled after max(AckTimeout, BufferDuration).
	EventWedged
	// EventResumed: a PERSISTED acknowledgement ended a stall.
	EventResumed
	// EventError: an ERROR acknowledgement or a stream error.
	EventError
	// EventFramesLost: kvssink evicted frames it had not sent (Event.Frames
	// of them since the previous EventFramesLost).
	EventFramesLost
)

func (k EventKind) String() string {
	switch k {
	case EventStalled:
		return "stalled"
	case EventWedged:
		return "wedged"
	case EventResumed:
		return "resumed"
	case EventError:
		return "error"
	case EventFramesLost:
		return "frames-lost"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// ErrorSource says where an EventError came from.
type ErrorSource string

// Error sources.
const (
	FromAck         ErrorSource = "error-ack"    // an ERROR fragment acknowledgement; Status is its service call result (the ack's ErrorId)
	FromStreamError ErrorSource = "stream-error" // kvssink's stream-error signal; Status is the SDK status code
)

// Event is one change the caller reports (a bus message, a log line).
type Event struct {
	Kind EventKind
	At   time.Time
	// AckAge is the wait for a PERSISTED acknowledgement at the event (for
	// EventResumed: how long it had lasted).
	AckAge time.Duration
	// Errors: where from, the status code and, for acks, the fragment
	// timecode (ms, as the acknowledgement carries it).
	Source   ErrorSource
	Status   uint64
	Timecode uint64
	// Frames: for EventFramesLost, the frames lost since the previous one.
	Frames uint64
}

// SinkMetrics are kvssink's own counters since its stream was created.
type SinkMetrics struct {
	// Backlog is the duration kvssink holds that the service has not
	// received yet.
	Backlog time.Duration
	// Dropped counts frames evicted unsent from a full buffer.
	Dropped uint64
	// Skipped counts frames kvssink did not send: the rest of a fragment
	// whose keyframe was evicted, a fragment the service refused, or after a
	// connection reset frames the service may already have.
	Skipped uint64
}

// Snapshot is the state at one instant.
type Snapshot struct {
	// AckAge is the current wait for a PERSISTED acknowledgement; 0 when
	// nothing waits (no frame went in since the last one).
	AckAge  time.Duration
	Stalled bool
	Wedged  bool
	// Latency is the last BUFFERING-to-PERSISTED time; HasLatency is false
	// until one was measured.
	Latency    time.Duration
	HasLatency bool
	// Counters since the Watch was made.
	FramesIn      uint64
	Persisted     uint64
	ErrorAcks     uint64
	StreamErrors  uint64
	FramesDropped uint64 // put frame errors kvssink reported
	Stalls        uint64
	// From kvssink's own counters (Metrics), zero until it reported them:
	// frames it evicted unsent (BufferDropped) or skipped (Skipped), and
	// the backlog it holds.
	HasSinkMetrics bool
	BufferDropped  uint64
	Skipped        uint64
	Backlog        time.Duration
	// LastStatus is the status code of the last error (ack or stream
	// error), 0 when none.
	LastStatus uint64
}

// Watch is the health of one kvssink's upload. Its methods are safe for
// concurrent use: acknowledgements arrive on kvssink's threads, ticks on
// the caller's.
type Watch struct {
	opts Options

	mu            sync.Mutex
	lastFrame     time.Time
	waitingSince  time.Time // first frame after the last PERSISTED ack; zero: nothing waits
	stalled       bool
	wedged        bool
	buffering     map[uint64]time.Time // BUFFERING ack times by fragment timecode
	bufferingKeys []uint64             // insertion order, to bound the map
	latency       time.Duration
	hasLatency    bool
	snap          Snapshot // counters

	// Frames lost: kvssink's last counters, what a recreated stream's
	// counters start from (the totals before it), and the total reported.
	sink           SinkMetrics
	sinkBase       SinkMetrics
	hasSink        bool
	lossReported   uint64
	lastLossReport time.Time
}

// New returns a Watch; opts.AckTimeout must pass CheckAckTimeout.
func New(opts Options) (*Watch, error) {
	if err := CheckAckTimeout(opts.AckTimeout); err != nil {
		return nil, err
	}
	if opts.BufferDuration < 0 {
		opts.BufferDuration = 0
	}
	return &Watch{opts: opts, buffering: map[uint64]time.Time{}}, nil
}

// WedgeAfter is the ack age at which a stall becomes a wedge (0: never).
func (w *Watch) WedgeAfter() time.Duration {
	if w.opts.AckTimeout == 0 {
		return 0
	}
	return max(w.opts.AckTimeout, w.opts.BufferDuration)
}

// gap is how long frames may pause before the next one starts a new wait.
func (w *Watch) gap() time.Duration {
	if w.opts.AckTimeout > 0 {
		return w.opts.AckTimeout
	}
	return DefaultAckTimeout
}

// FramesIn records n frames that entered kvssink, last seen at now (the
// caller may count frames and report them in batches).
func (w *Watch) FramesIn(now time.Time, n uint64) {
	if n == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.snap.FramesIn += n
	if !w.stalled && !w.waitingSince.IsZero() && now.Sub(w.lastFrame) >= w.gap() {
		// The source was quiet for longer than the timeout: what waited
		// before the pause says nothing about the upload now.
		w.waitingSince = now
	}
	if w.waitingSince.IsZero() {
		w.waitingSince = now
	}
	w.lastFrame = now
}

// Ack records a fragment acknowledgement. result is the ERROR ack's service
// call result (its ErrorId), ignored for other types; timecode is the
// fragment's timecode as the acknowledgement carries it.
func (w *Watch) Ack(now time.Time, t AckType, timecode, result uint64) []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch t {
	case AckBuffering:
		if _, ok := w.buffering[timecode]; !ok {
			w.buffering[timecode] = now
			w.bufferingKeys = append(w.bufferingKeys, timecode)
			if len(w.bufferingKeys) > maxPending {
				delete(w.buffering, w.bufferingKeys[0])
				w.bufferingKeys = w.bufferingKeys[1:]
			}
		}
	case AckPersisted:
		w.snap.Persisted++
		if at, ok := w.buffering[timecode]; ok {
			w.latency, w.hasLatency = nonNegative(now.Sub(at)), true
		}
		w.forgetUpTo(timecode)
		var out []Event
		if w.stalled {
			out = append(out, Event{Kind: EventResumed, At: now, AckAge: w.ageLocked(now)})
		}
		w.stalled, w.wedged = false, false
		w.waitingSince = time.Time{}
		return out
	case AckError:
		w.snap.ErrorAcks++
		w.snap.LastStatus = result
		w.forgetUpTo(timecode)
		return []Event{{Kind: EventError, At: now, AckAge: w.ageLocked(now), Source: FromAck, Status: result, Timecode: timecode}}
	}
	return nil
}

// forgetUpTo drops the BUFFERING times of fragments up to timecode: they
// are settled (or will never be persisted).
func (w *Watch) forgetUpTo(timecode uint64) {
	keep := w.bufferingKeys[:0]
	for _, k := range w.bufferingKeys {
		if k <= timecode {
			delete(w.buffering, k)
			continue
		}
		keep = append(keep, k)
	}
	w.bufferingKeys = keep
}

// StreamError records kvssink's stream-error signal.
func (w *Watch) StreamError(now time.Time, status uint64) []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.snap.StreamErrors++
	w.snap.LastStatus = status
	return []Event{{Kind: EventError, At: now, AckAge: w.ageLocked(now), Source: FromStreamError, Status: status}}
}

// FrameDropped records a frame kvssink refused ("put frame error").
func (w *Watch) FrameDropped(now time.Time, status uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.snap.FramesDropped++
}

// Metrics records kvssink's own counters as it last reported them. They
// count from the creation of kvssink's stream; a count going back means
// kvssink made a new stream (restart-on-error), whose counts add to the
// totals so far.
func (w *Watch) Metrics(m SinkMetrics) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hasSink && (m.Dropped < w.sink.Dropped || m.Skipped < w.sink.Skipped) {
		w.sinkBase.Dropped += w.sink.Dropped
		w.sinkBase.Skipped += w.sink.Skipped
	}
	w.sink, w.hasSink = m, true
}

// lostLocked is the total of frames kvssink evicted unsent. Skipped frames
// are not in it: kvssink also skips, after a connection reset, frames of a
// fragment the service already has from the earlier connection (a 2 min cut
// counted 25 skipped frames while the endpoint had every frame).
func (w *Watch) lostLocked() uint64 {
	return w.sinkBase.Dropped + w.sink.Dropped
}

// Tick applies the rules at now.
func (w *Watch) Tick(now time.Time) []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Event
	if lost := w.lostLocked(); lost > w.lossReported &&
		(w.lastLossReport.IsZero() || now.Sub(w.lastLossReport) >= LossReportInterval) {
		out = append(out, Event{Kind: EventFramesLost, At: now, AckAge: w.ageLocked(now), Frames: lost - w.lossReported})
		w.lossReported, w.lastLossReport = lost, now
	}
	if w.opts.AckTimeout == 0 || w.waitingSince.IsZero() {
		return out
	}
	age := w.ageLocked(now)
	if !w.stalled && age >= w.opts.AckTimeout && now.Sub(w.lastFrame) < w.opts.AckTimeout {
		w.stalled = true
		w.snap.Stalls++
		out = append(out, Event{Kind: EventStalled, At: now, AckAge: age})
	}
	if w.stalled && !w.wedged && age >= w.WedgeAfter() {
		w.wedged = true
		out = append(out, Event{Kind: EventWedged, At: now, AckAge: age})
	}
	return out
}

func (w *Watch) ageLocked(now time.Time) time.Duration {
	if w.waitingSince.IsZero() {
		return 0
	}
	return nonNegative(now.Sub(w.waitingSince))
}

// Snapshot returns the state at now.
func (w *Watch) Snapshot(now time.Time) Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.snap
	s.AckAge = w.ageLocked(now)
	s.Stalled, s.Wedged = w.stalled, w.wedged
	s.Latency, s.HasLatency = w.latency, w.hasLatency
	if w.hasSink {
		s.HasSinkMetrics = true
		s.BufferDropped = w.sinkBase.Dropped + w.sink.Dropped
		s.Skipped = w.sinkBase.Skipped + w.sink.Skipped
		s.Backlog = w.sink.Backlog
	}
	return s
}

func nonNegative(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}
