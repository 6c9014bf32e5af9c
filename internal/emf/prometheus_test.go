package emf

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// parseExposition decodes text with Prometheus's own parser, so a format
// slip (a bad escape, a sample before its TYPE, a repeated family) fails.
func parseExposition(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Prometheus's parser refused the exposition: %v\n%s", err, text)
	}
	return fams
}

// sample returns the value of family name for stream, and whether it is there.
func sample(fams map[string]*dto.MetricFamily, name, stream string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "stream" && l.GetValue() == stream {
				switch f.GetType() {
				case dto.MetricType_COUNTER:
					return m.GetCounter().GetValue(), true
				case dto.MetricType_GAUGE:
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

func TestWritePrometheusExposesCumulativeCountersAndCurrentGauges(t *testing.T) {
	clock := newClock()
	rec := NewRecorder(RecorderOptions{Now: clock.Now})
	cam := rec.Stream("cam-1")
	odd := rec.Stream(`lobby "east"\door` + "\n2")
	cam.AddFramesOut(250)
	cam.AddRestart()
	cam.AddStall()
	cam.SetOutage(true)
	clock.Advance(3 * time.Second)
	cam.SetCredentialExpiry(clock.Now().Add(40 * time.Minute))
	odd.AddFramesOut(7)

	// An EMF line in between must not reset what /metrics reports.
	w, err := NewWriter(rec, WriterOptions{Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	cam.AddFramesOut(50)

	var buf bytes.Buffer
	if err := rec.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	fams := parseExposition(t, buf.String())
	want := []struct {
		name, stream string
		value        float64
		kind         dto.MetricType
	}{
		{"kvsrelay_frames_out_total", "cam-1", 300, dto.MetricType_COUNTER},
		{"kvsrelay_restarts_total", "cam-1", 1, dto.MetricType_COUNTER},
		{"kvsrelay_stalls_total", "cam-1", 1, dto.MetricType_COUNTER},
		{"kvsrelay_outage_seconds_total", "cam-1", 3, dto.MetricType_COUNTER},
		{"kvsrelay_credential_seconds_to_expiry", "cam-1", 2400, dto.MetricType_GAUGE},
		{"kvsrelay_frames_out_total", `lobby "east"\door` + "\n2", 7, dto.MetricType_COUNTER},
	}
	for _, w := range want {
		got, ok := sample(fams, w.name, w.stream)
		if !ok {
			t.Errorf("%s{stream=%q} missing:\n%s", w.name, w.stream, buf.String())
			continue
		}
		if got != w.value {
			t.Errorf("%s{stream=%q} = %v, want %v", w.name, w.stream, got, w.value)
		}
		if k := fams[w.name].GetType(); k != w.kind {
			t.Errorf("%s is a %v, want %v", w.name, k, w.kind)
		}
		if fams[w.name].GetHelp() == "" {
			t.Errorf("%s has no HELP", w.name)
		}
	}
	if _, ok := sample(fams, "kvsrelay_credential_seconds_to_expiry", `lobby "east"\door`+"\n2"); ok {
		t.Error("a stream with no credential has an expiry gauge")
	}
	for name := range fams {
		if strings.HasPrefix(name, "kvsrelay_upload_") {
			t.Errorf("%s present though no upload is watched", name)
		}
	}
}

func TestWritePrometheusUploadGaugesAreCurrentNotTheIntervalMaximum(t *testing.T) {
	clock := newClock()
	rec := NewRecorder(RecorderOptions{Now: clock.Now})
	s := rec.Stream("cam")
	s.SetUploadAckAge(90 * time.Second)
	s.SetUploadAckAge(0) // the ack came
	s.SetUploadAckLatency(1500 * time.Millisecond)
	s.AddUploadError()
	s.AddUploadFramesDropped(4)

	var buf bytes.Buffer
	if err := rec.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	fams := parseExposition(t, buf.String())
	for name, want := range map[string]float64{
		"kvsrelay_upload_ack_age_seconds":      0,
		"kvsrelay_upload_ack_latency_seconds":  1.5,
		"kvsrelay_upload_errors_total":         1,
		"kvsrelay_upload_frames_dropped_total": 4,
	} {
		got, ok := sample(fams, name, "cam")
		if !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	// The EMF line still gets the interval's largest wait.
	var line bytes.Buffer
	w, err := NewWriter(rec, WriterOptions{Out: &line})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(line.String(), `"UploadAckAgeSeconds":90`) {
		t.Errorf("the EMF line lost the interval's largest ack age: %s", line.String())
	}
}

func TestWritePrometheusWithNoStreamIsEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := NewRecorder(RecorderOptions{}).WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("no stream, yet: %q", buf.String())
	}
}
