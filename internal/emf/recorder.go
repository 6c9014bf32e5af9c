// Package emf records per-stream relay metrics and writes them as CloudWatch
// Embedded Metric Format (EMF) lines: one JSON object per stream per interval,
// which CloudWatch Logs turns into metrics without any API call from the
// relay itself (the CloudWatch agent or a journald shipper carries the lines).
package emf

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Namespace is the CloudWatch namespace every metric is published under.
const Namespace = "KVSRelay"

// DimensionStreamName is the one dimension of every metric: the KVS stream.
const DimensionStreamName = "StreamName"

// Metric names, as they appear in CloudWatch.
const (
	MetricRestarts                  = "Restarts"
	MetricStalls                    = "Stalls"
	MetricOutageSeconds             = "OutageSeconds"
	MetricFallbackSeconds           = "FallbackSeconds"
	MetricFramesOut                 = "FramesOut"
	MetricCredentialSecondsToExpiry = "CredentialSecondsToExpiry"
	MetricCredentialRefreshFailures = "CredentialRefreshFailures"
	// Upload health (kvscredprovider), in a stream's lines only once its
	// kvssink's upload is watched.
	MetricUploadAckAgeSeconds     = "UploadAckAgeSeconds"
	MetricUploadAckLatencySeconds = "UploadAckLatencySeconds"
	MetricUploadErrors            = "UploadErrors"
	MetricUploadFramesDropped     = "UploadFramesDropped"
)

// unnamedStream stands in for an empty stream name: CloudWatch rejects empty
// dimension values, and losing the metrics would be worse than a odd name.
const unnamedStream = "unnamed"

// RecorderOptions configures a Recorder.
type RecorderOptions struct {
	// Now is the clock outage and fallback time are measured with, and the
	// Timestamp of every line. Default time.Now.
	Now func() time.Time
}

// Recorder holds the metrics of every stream in the process. It is safe for
// concurrent use; the per-buffer path (Stream.AddFramesOut) is one atomic add.
type Recorder struct {
	now func() time.Time

	mu      sync.Mutex
	streams map[string]*Stream
}

// NewRecorder returns an empty Recorder.
func NewRecorder(opts RecorderOptions) *Recorder {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Recorder{now: opts.Now, streams: map[string]*Stream{}}
}

// Stream returns the metrics of the named stream, creating them on first use.
// Elements keep the returned pointer rather than looking it up per event.
func (r *Recorder) Stream(name string) *Stream {
	if name == "" {
		name = unnamedStream
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.streams[name]
	if !ok {
		s = &Stream{name: name, now: r.now}
		r.streams[name] = s
	}
	return s
}

// snapshotAll returns the cumulative values of every stream, sorted by name
// so output is stable.
func (r *Recorder) snapshotAll(now time.Time) []snapshot {
	streams := r.sortedStreams()
	out := make([]snapshot, 0, len(streams))
	for _, s := range streams {
		out = append(out, s.snapshot(now))
	}
	return out
}

// sortedStreams returns every stream, sorted by name.
func (r *Recorder) sortedStreams() []*Stream {
	r.mu.Lock()
	streams := make([]*Stream, 0, len(r.streams))
	for _, s := range r.streams {
		streams = append(streams, s)
	}
	r.mu.Unlock()
	sort.Slice(streams, func(i, j int) bool { return streams[i].name < streams[j].name })
	return streams
}

// Stream is the metrics of one KVS stream.
type Stream struct {
	name string
	now  func() time.Time

	restarts        atomic.Uint64
	stalls          atomic.Uint64
	framesOut       atomic.Uint64
	refreshFailures atomic.Uint64

	uploadErrors  atomic.Uint64
	framesDropped atomic.Uint64

	mu       sync.Mutex
	outage   interval
	fallback interval
	expiry   time.Time // zero: no credential seen yet
	// Upload health: on once a kvssink's upload is watched; ackAgeMax is the
	// largest ack age set since the last line (reset by each line), so a
	// stall between two lines still shows.
	uploadOn   bool
	ackAgeMax  time.Duration
	ackAgeNow  time.Duration // the latest value set, for /metrics
	latency    time.Duration
	hasLatency bool
}

// Name is the stream name used as the StreamName dimension.
func (s *Stream) Name() string { return s.name }

// AddRestart counts one rebuild of the source, whatever the cause.
func (s *Stream) AddRestart() { s.restarts.Add(1) }

// AddStall counts one stall: the source went quiet without an error.
func (s *Stream) AddStall() { s.stalls.Add(1) }

// AddFramesOut counts n buffers that left the relay towards kvssink.
func (s *Stream) AddFramesOut(n uint64) { s.framesOut.Add(n) }

// AddCredentialRefreshFailure counts one failed credential refresh.
func (s *Stream) AddCredentialRefreshFailure() { s.refreshFailures.Add(1) }

// SetOutage marks the start (true) or end (false) of an outage: no picture
// from the source. Repeated calls with the same value are harmless. Outage
// time is reported per interval while the outage lasts, so an alarm fires
// during a long outage rather than after it.
func (s *Stream) SetOutage(active bool) {
	s.mu.Lock()
	s.outage.set(active, s.now())
	s.mu.Unlock()
}

// SetFallback marks the start (true) or end (false) of fallback output
// (black or image frames standing in for the source).
func (s *Stream) SetFallback(active bool) {
	s.mu.Lock()
	s.fallback.set(active, s.now())
	s.mu.Unlock()
}

// SetCredentialExpiry records when the credentials kvssink currently uses
// expire; CredentialSecondsToExpiry is computed from it at each line.
func (s *Stream) SetCredentialExpiry(t time.Time) {
	s.mu.Lock()
	s.expiry = t
	s.mu.Unlock()
}

// SetUploadAckAge records the current wait for a PERSISTED acknowledgement
// (0 when nothing waits); UploadAckAgeSeconds is the largest value set
// between two lines. It turns the upload metrics on for the stream.
func (s *Stream) SetUploadAckAge(d time.Duration) {
	s.mu.Lock()
	s.uploadOn = true
	s.ackAgeNow = d
	if d > s.ackAgeMax {
		s.ackAgeMax = d
	}
	s.mu.Unlock()
}

// SetUploadAckLatency records the latest BUFFERING-to-PERSISTED time of a
// fragment.
func (s *Stream) SetUploadAckLatency(d time.Duration) {
	s.mu.Lock()
	s.uploadOn = true
	s.latency, s.hasLatency = d, true
	s.mu.Unlock()
}

// AddUploadError counts one ERROR acknowledgement or stream error.
func (s *Stream) AddUploadError() {
	s.uploadErrors.Add(1)
	s.mu.Lock()
	s.uploadOn = true
	s.mu.Unlock()
}

// AddUploadFramesDropped counts n frames kvssink lost: refused (put frame
// errors), evicted unsent from its full buffer or skipped.
func (s *Stream) AddUploadFramesDropped(n uint64) {
	s.framesDropped.Add(n)
	s.mu.Lock()
	s.uploadOn = true
	s.mu.Unlock()
}

// snapshot reads the stream for one line; it resets the interval's largest
// ack age (only the Writer's Flush takes snapshots).
func (s *Stream) snapshot(now time.Time) snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.readLocked(now)
	if snap.upload != nil {
		snap.upload.ackAge = s.ackAgeMax
		s.ackAgeMax = 0
	}
	return snap
}

// readLocked reads the cumulative values at now; the upload part carries no
// ack age (a line wants the interval's largest, /metrics the latest).
func (s *Stream) readLocked(now time.Time) snapshot {
	snap := snapshot{
		name:            s.name,
		restarts:        s.restarts.Load(),
		stalls:          s.stalls.Load(),
		framesOut:       s.framesOut.Load(),
		refreshFailures: s.refreshFailures.Load(),
		outage:          s.outage.total(now),
		fallback:        s.fallback.total(now),
	}
	if !s.expiry.IsZero() {
		left := s.expiry.Sub(now).Seconds()
		snap.secondsToExpiry = &left
	}
	if s.uploadOn {
		u := uploadSnapshot{errors: s.uploadErrors.Load(), framesDropped: s.framesDropped.Load()}
		if s.hasLatency {
			l := s.latency
			u.latency = &l
		}
		snap.upload = &u
	}
	return snap
}

// interval accumulates the time a condition was active, including the part
// of a still-running period up to a given instant.
type interval struct {
	closed time.Duration // sum of finished periods
	since  time.Time     // start of the running period; zero when inactive
}

func (iv *interval) set(active bool, now time.Time) {
	switch {
	case active && iv.since.IsZero():
		iv.since = now
	case !active && !iv.since.IsZero():
		iv.closed += nonNegative(now.Sub(iv.since))
		iv.since = time.Time{}
	}
}

func (iv *interval) total(now time.Time) time.Duration {
	if iv.since.IsZero() {
		return iv.closed
	}
	return iv.closed + nonNegative(now.Sub(iv.since))
}

func nonNegative(d time.Duration) time.Duration {
	if d < 0 {
		return 0
	}
	return d
}

// snapshot is the cumulative state of one stream at one instant.
type snapshot struct {
	name            string
	restarts        uint64
	stalls          uint64
	framesOut       uint64
	refreshFailures uint64
	outage          time.Duration
	fallback        time.Duration
	secondsToExpiry *float64 // gauge; nil when unknown
	upload          *uploadSnapshot
}

// uploadSnapshot is the upload health part of a snapshot; nil while the
// stream's upload is not watched.
type uploadSnapshot struct {
	errors, framesDropped uint64
	ackAge                time.Duration  // largest since the previous line
	latency               *time.Duration // latest; nil until measured
}
