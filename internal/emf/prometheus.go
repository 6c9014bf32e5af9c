package emf

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"time"
)

// PrometheusPrefix starts every metric name in the Prometheus exposition.
const PrometheusPrefix = "kvsrelay_"

// promFamily is one metric family of the exposition: the EMF metric it
// mirrors, its Prometheus name, type and help, and how to read it from a
// stream's current values (ok false: the stream has no sample).
type promFamily struct {
	name, kind, help string
	value            func(c current) (v float64, ok bool)
}

// current is a stream's values at one instant, for /metrics: cumulative
// counters (never the EMF lines' deltas) and the latest gauges.
type current struct {
	snapshot
	ackAgeNow time.Duration
}

func counter(v uint64) (float64, bool) { return float64(v), true }

var promFamilies = []promFamily{
	{"restarts_total", "counter", "Rebuilds of the source, whatever the cause (EMF Restarts).",
		func(c current) (float64, bool) { return counter(c.restarts) }},
	{"stalls_total", "counter", "Rebuilds because the source went quiet without an error (EMF Stalls).",
		func(c current) (float64, bool) { return counter(c.stalls) }},
	{"outage_seconds_total", "counter", "Time without picture from the source, including a running outage (EMF OutageSeconds).",
		func(c current) (float64, bool) { return c.outage.Seconds(), true }},
	{"fallback_seconds_total", "counter", "Time fallback frames stood in for the source (EMF FallbackSeconds).",
		func(c current) (float64, bool) { return c.fallback.Seconds(), true }},
	{"frames_out_total", "counter", "Buffers that left the relay towards kvssink (EMF FramesOut).",
		func(c current) (float64, bool) { return counter(c.framesOut) }},
	{"credential_refresh_failures_total", "counter", "Failed credential refreshes (EMF CredentialRefreshFailures).",
		func(c current) (float64, bool) { return counter(c.refreshFailures) }},
	{"credential_seconds_to_expiry", "gauge", "Seconds until the credentials kvssink uses expire (EMF CredentialSecondsToExpiry).",
		func(c current) (float64, bool) {
			if c.secondsToExpiry == nil {
				return 0, false
			}
			return *c.secondsToExpiry, true
		}},
	{"upload_ack_age_seconds", "gauge", "Current wait for a PERSISTED acknowledgement while frames go into kvssink; 0 when nothing waits (EMF UploadAckAgeSeconds is the interval's maximum).",
		func(c current) (float64, bool) { return c.ackAgeNow.Seconds(), c.upload != nil }},
	{"upload_ack_latency_seconds", "gauge", "Latest BUFFERING-to-PERSISTED time of a fragment (EMF UploadAckLatencySeconds).",
		func(c current) (float64, bool) {
			if c.upload == nil || c.upload.latency == nil {
				return 0, false
			}
			return c.upload.latency.Seconds(), true
		}},
	{"upload_errors_total", "counter", "ERROR acknowledgements and stream errors from kvssink (EMF UploadErrors).",
		func(c current) (float64, bool) {
			if c.upload == nil {
				return 0, false
			}
			return counter(c.upload.errors)
		}},
	{"upload_frames_dropped_total", "counter", "Frames kvssink refused (EMF UploadFramesDropped).",
		func(c current) (float64, bool) {
			if c.upload == nil {
				return 0, false
			}
			return counter(c.upload.framesDropped)
		}},
}

// WritePrometheus writes every stream's metrics in the Prometheus text
// exposition format (version 0.0.4): counters are cumulative since the
// process started, gauges are current values, each sample labelled
// stream="<KVS stream name>". Reading does not disturb the EMF lines.
func (r *Recorder) WritePrometheus(w io.Writer) error {
	now := r.now()
	streams := r.sortedStreams()
	cur := make([]current, 0, len(streams))
	for _, s := range streams {
		cur = append(cur, s.current(now))
	}
	bw := bufio.NewWriter(w)
	for _, f := range promFamilies {
		wroteHeader := false
		for _, c := range cur {
			v, ok := f.value(c)
			if !ok {
				continue
			}
			if !wroteHeader {
				bw.WriteString("# HELP " + PrometheusPrefix + f.name + " " + f.help + "\n")
				bw.WriteString("# TYPE " + PrometheusPrefix + f.name + " " + f.kind + "\n")
				wroteHeader = true
			}
			bw.WriteString(PrometheusPrefix + f.name + `{stream="` + escapeLabel(c.name) + `"} ` +
				strconv.FormatFloat(v, 'g', -1, 64) + "\n")
		}
	}
	return bw.Flush()
}

// current reads the stream without resetting what the next EMF line needs.
func (s *Stream) current(now time.Time) current {
	s.mu.Lock()
	defer s.mu.Unlock()
	return current{snapshot: s.readLocked(now), ackAgeNow: s.ackAgeNow}
}

// escapeLabel escapes a label value as the text format requires.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }
