package emf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/ticker"
)

// DefaultInterval is how often a Writer writes one line per stream. CloudWatch
// stores metrics at one-minute resolution, so writing more often only costs
// log volume.
const DefaultInterval = 60 * time.Second

// Ticker is a tick source; tests pass their own.
type Ticker = ticker.Ticker

// WriterOptions configures a Writer.
type WriterOptions struct {
	// Out receives the lines. Required.
	Out io.Writer
	// Interval between lines. Default DefaultInterval.
	Interval time.Duration
	// NewTicker makes the interval ticker. Default time.NewTicker.
	NewTicker func(time.Duration) Ticker
}

// Writer writes a Recorder's metrics as EMF lines.
//
// Counters (Restarts, Stalls, FramesOut, CredentialRefreshFailures) and the
// accumulated times (OutageSeconds, FallbackSeconds) are written as DELTAS:
// what happened since the previous line for the same stream (since the
// stream's creation for its first line). CloudWatch then sums them with the
// Sum statistic over any period, and a restart of the relay process does not
// produce a negative or reset-shaped series. CredentialSecondsToExpiry is a
// gauge: its value at the line's timestamp, omitted until a credential is
// known. A stream with nothing new still gets a line of zeros, so "no data"
// in CloudWatch means the relay itself is not running.
//
// Upload health metrics appear in a stream's lines once kvscredprovider
// watches its kvssink: UploadErrors and UploadFramesDropped are deltas,
// UploadAckAgeSeconds is the largest wait for a PERSISTED acknowledgement
// seen since the previous line (so a stall that ended between two lines
// still shows; alarm on Maximum), UploadAckLatencySeconds the latest
// BUFFERING-to-PERSISTED time, omitted until one was measured.
type Writer struct {
	rec  *Recorder
	opts WriterOptions

	mu   sync.Mutex
	last map[string]snapshot
}

// NewWriter returns a Writer for rec.
func NewWriter(rec *Recorder, opts WriterOptions) (*Writer, error) {
	if rec == nil {
		return nil, errors.New("emf writer: recorder is nil")
	}
	if opts.Out == nil {
		return nil, errors.New("emf writer: output is nil")
	}
	if opts.Interval < 0 {
		return nil, fmt.Errorf("emf writer: interval %v is negative", opts.Interval)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.NewTicker == nil {
		opts.NewTicker = ticker.New
	}
	return &Writer{rec: rec, opts: opts, last: map[string]snapshot{}}, nil
}

// Run writes lines every interval until ctx ends, then writes a last line per
// stream so the final partial interval is not lost. It returns the first
// write error, or nil when ctx ended.
func (w *Writer) Run(ctx context.Context) error {
	t := w.opts.NewTicker(w.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return w.Flush()
		case <-t.C():
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

// Flush writes one line per stream now.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.rec.now()
	for _, cur := range w.rec.snapshotAll(now) {
		prev := w.last[cur.name]
		line, err := encodeLine(now, cur, prev)
		if err != nil {
			return fmt.Errorf("emf: encoding the line for stream %q: %w", cur.name, err)
		}
		// One Write per line: with O_APPEND files and pipes, lines from
		// several processes never interleave mid-line.
		if _, err := w.opts.Out.Write(line); err != nil {
			return fmt.Errorf("emf: writing the line for stream %q: %w", cur.name, err)
		}
		w.last[cur.name] = cur
	}
	return nil
}

type metricDefinition struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type metricDirective struct {
	Namespace  string             `json:"Namespace"`
	Dimensions [][]string         `json:"Dimensions"`
	Metrics    []metricDefinition `json:"Metrics"`
}

type metadata struct {
	Timestamp         int64             `json:"Timestamp"`
	CloudWatchMetrics []metricDirective `json:"CloudWatchMetrics"`
}

// line is one EMF document. Metric members sit on the root node, as the
// specification requires; the directive names them.
type line struct {
	AWS                       metadata `json:"_aws"`
	StreamName                string   `json:"StreamName"`
	Restarts                  uint64   `json:"Restarts"`
	Stalls                    uint64   `json:"Stalls"`
	OutageSeconds             float64  `json:"OutageSeconds"`
	FallbackSeconds           float64  `json:"FallbackSeconds"`
	FramesOut                 uint64   `json:"FramesOut"`
	CredentialRefreshFailures uint64   `json:"CredentialRefreshFailures"`
	CredentialSecondsToExpiry *float64 `json:"CredentialSecondsToExpiry,omitempty"`
	UploadAckAgeSeconds       *float64 `json:"UploadAckAgeSeconds,omitempty"`
	UploadAckLatencySeconds   *float64 `json:"UploadAckLatencySeconds,omitempty"`
	UploadErrors              *uint64  `json:"UploadErrors,omitempty"`
	UploadFramesDropped       *uint64  `json:"UploadFramesDropped,omitempty"`
}

func encodeLine(now time.Time, cur, prev snapshot) ([]byte, error) {
	metrics := []metricDefinition{
		{MetricRestarts, "Count"},
		{MetricStalls, "Count"},
		{MetricOutageSeconds, "Seconds"},
		{MetricFallbackSeconds, "Seconds"},
		{MetricFramesOut, "Count"},
		{MetricCredentialRefreshFailures, "Count"},
	}
	l := line{
		AWS: metadata{
			Timestamp: now.UnixMilli(),
			CloudWatchMetrics: []metricDirective{{
				Namespace:  Namespace,
				Dimensions: [][]string{{DimensionStreamName}},
			}},
		},
		StreamName:                cur.name,
		Restarts:                  counterDelta(cur.restarts, prev.restarts),
		Stalls:                    counterDelta(cur.stalls, prev.stalls),
		OutageSeconds:             seconds(cur.outage - prev.outage),
		FallbackSeconds:           seconds(cur.fallback - prev.fallback),
		FramesOut:                 counterDelta(cur.framesOut, prev.framesOut),
		CredentialRefreshFailures: counterDelta(cur.refreshFailures, prev.refreshFailures),
	}
	if cur.secondsToExpiry != nil {
		// Whole seconds, rounded down: never report more time than is left.
		v := math.Floor(*cur.secondsToExpiry)
		l.CredentialSecondsToExpiry = &v
		metrics = append(metrics, metricDefinition{MetricCredentialSecondsToExpiry, "Seconds"})
	}
	if u := cur.upload; u != nil {
		var before uploadSnapshot
		if prev.upload != nil {
			before = *prev.upload
		}
		age := seconds(u.ackAge)
		errs, dropped := counterDelta(u.errors, before.errors), counterDelta(u.framesDropped, before.framesDropped)
		l.UploadAckAgeSeconds, l.UploadErrors, l.UploadFramesDropped = &age, &errs, &dropped
		metrics = append(metrics,
			metricDefinition{MetricUploadAckAgeSeconds, "Seconds"},
			metricDefinition{MetricUploadErrors, "Count"},
			metricDefinition{MetricUploadFramesDropped, "Count"})
		if u.latency != nil {
			lat := seconds(*u.latency)
			l.UploadAckLatencySeconds = &lat
			metrics = append(metrics, metricDefinition{MetricUploadAckLatencySeconds, "Seconds"})
		}
	}
	l.AWS.CloudWatchMetrics[0].Metrics = metrics
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// counterDelta guards against a counter that went backwards (it cannot with
// atomics that only add, but a negative Count would be a silent lie).
func counterDelta(cur, prev uint64) uint64 {
	if cur < prev {
		return 0
	}
	return cur - prev
}

// seconds rounds to milliseconds: finer digits are noise in a one-minute metric.
func seconds(d time.Duration) float64 {
	if d < 0 {
		d = 0
	}
	return math.Round(d.Seconds()*1000) / 1000
}
