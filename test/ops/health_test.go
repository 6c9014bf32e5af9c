package ops_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// healthClient reads a relay's KVSRELAY_HEALTH_ADDR endpoint.
type healthClient struct {
	t    *testing.T
	base string
	http http.Client
}

func newHealthClient(t *testing.T, port int) *healthClient {
	return &healthClient{t: t, base: "http://127.0.0.1:" + itoa(port), http: http.Client{Timeout: 5 * time.Second}}
}

// get returns the status and body of path, or -1 while nothing listens yet.
func (c *healthClient) get(path string) (int, string) {
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitHealthz waits until /healthz answers code with a body containing want.
func (c *healthClient) waitHealthz(timeout time.Duration, code int, want string) {
	c.t.Helper()
	harness.WaitUntil(c.t, timeout, "GET /healthz = "+itoa(code)+" "+want, func() bool {
		got, body := c.get("/healthz")
		return got == code && strings.Contains(body, want)
	})
}

// metrics parses /metrics with Prometheus's own parser.
func (c *healthClient) metrics() map[string]*dto.MetricFamily {
	c.t.Helper()
	code, body := c.get("/metrics")
	if code != http.StatusOK {
		c.t.Fatalf("GET /metrics = %d %q", code, body)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		c.t.Fatalf("Prometheus's parser refused /metrics: %v\n%s", err, body)
	}
	return fams
}

// value returns family name's sample for stream (any stream when ""), or -1.
func value(fams map[string]*dto.MetricFamily, name, stream string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range f.GetMetric() {
		match := stream == ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "stream" && l.GetValue() == stream {
				match = true
			}
		}
		if !match {
			continue
		}
		if f.GetType() == dto.MetricType_COUNTER {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

// Without systemd, KVSRELAY_HEALTH_ADDR (a bare port: loopback) serves
// /healthz under the watchdog's rule: 200 while data flows, 503 naming the
// blocked push once the sink wedges, 200 again once it drains; /metrics
// counts the frames in Prometheus text.
func TestHealthzFollowsTheWatchdogRuleWithoutSystemd(t *testing.T) {
	fifo, drain := wedgeableFIFO(t)
	port := servers.FreePort(t)
	env := harness.Env(t, "KVSRELAY_HEALTH_ADDR="+itoa(port), "KVSRELAY_HEALTH_INTERVAL=2s")
	l := harness.StartLaunch(t, env, "reconnectbin", "name=cam", "stall-timeout=1000000000", "source=videotestsrc is-live=true",
		"!", "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "!", "filesink", "location="+fifo)
	c := newHealthClient(t, port)
	c.waitHealthz(30*time.Second, http.StatusOK, "ok")
	var frames float64
	harness.WaitUntil(t, 10*time.Second, "frames counted in /metrics", func() bool {
		fams := c.metrics()
		frames = value(fams, "kvsrelay_frames_out_total", "cam")
		return frames > 0 && value(fams, "kvsrelay_healthy", "") == 1
	})

	drain <- false // the FIFO fills and filesink's push blocks
	c.waitHealthz(30*time.Second, http.StatusServiceUnavailable, "unhealthy: cam: downstream push blocked for")
	if v := value(c.metrics(), "kvsrelay_healthy", ""); v != 0 {
		t.Errorf("kvsrelay_healthy = %v while /healthz says 503", v)
	}
	drain <- true
	c.waitHealthz(30*time.Second, http.StatusOK, "ok")
	if got := value(c.metrics(), "kvsrelay_frames_out_total", "cam"); got <= frames {
		t.Errorf("frames_out_total went from %v to %v across the wedge", frames, got)
	}
	if l.Exited() {
		t.Fatalf("gst-launch-1.0 exited (%d)", l.ExitCode())
	}
}

// A kvssink whose fragments are never persisted makes /healthz 503 with the
// upload named, as it withholds WATCHDOG=1 under systemd, while frames keep
// flowing; /metrics shows the ack age of its stream.
func TestHealthzReportsAWedgedUpload(t *testing.T) {
	imds := imdsfake.Start(t, imdsfake.Options{})
	cred := filepath.Join(harness.PrivateDir(t), "credential")
	port := servers.FreePort(t)
	env := harness.Env(t, "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds.URL(),
		"KVSRELAY_HEALTH_ADDR=127.0.0.1:"+itoa(port), "KVSRELAY_HEALTH_INTERVAL=2s")
	l := harness.StartLaunch(t, env, "kvscredprovider", "name=cp", "ack-timeout=10000000000", "credential-path="+cred,
		"reconnectbin", "source=videotestsrc is-live=true", "!", "x264enc", "tune=zerolatency", "speed-preset=ultrafast",
		"key-int-max=30", "!", "h264parse", "!", "video/x-h264,stream-format=avc,alignment=au", "!",
		"kvssink", "name=sink", "stream-name=cam", "buffer-duration=10", "acks=hold")
	c := newHealthClient(t, port)
	c.waitHealthz(30*time.Second, http.StatusOK, "ok")
	c.waitHealthz(60*time.Second, http.StatusServiceUnavailable, "vetoed by sink: upload wedged: no PERSISTED ack for")
	fams := c.metrics()
	if age := value(fams, "kvsrelay_upload_ack_age_seconds", "cam"); age < 10 {
		t.Errorf("kvsrelay_upload_ack_age_seconds{stream=\"cam\"} = %v while wedged, want >= 10", age)
	}
	if v := value(fams, "kvsrelay_credential_seconds_to_expiry", "cam"); v <= 0 {
		t.Errorf("kvsrelay_credential_seconds_to_expiry{stream=\"cam\"} = %v", v)
	}
	if l.Exited() {
		t.Fatalf("gst-launch-1.0 exited (%d)", l.ExitCode())
	}
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Errorf("gst-launch-1.0 exited %d after EOS", code)
	}
}

// A KVSRELAY_HEALTH_ADDR that cannot be used is named in the log, and the
// relay runs on without the endpoint.
func TestBadHealthAddrIsNamedAndTheRelayRuns(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "gst.log")
	env := harness.Env(t, "KVSRELAY_HEALTH_ADDR=eighty", "GST_DEBUG=reconnectbin:2", "GST_DEBUG_FILE="+logFile,
		"GST_DEBUG_NO_COLOR=1")
	l := harness.StartLaunch(t, env, "reconnectbin", "name=r", "source=videotestsrc is-live=true", "!", "fakesink")
	harness.WaitUntil(t, 30*time.Second, "the log naming KVSRELAY_HEALTH_ADDR", func() bool {
		data, _ := os.ReadFile(logFile)
		return strings.Contains(string(data), `health server disabled: KVSRELAY_HEALTH_ADDR="eighty"`)
	})
	// The line is logged while gst-launch builds the pipeline, before it
	// handles SIGINT: the relay is running once reconnectbin is PLAYING.
	l.WaitFor(30*time.Second, 1, "reconnectbin in PLAYING", func(m harness.Message) bool {
		return m.Type == "state-changed" && m.Source == "r" && strings.Contains(m.Text, "new-state=(GstState)playing")
	})
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Errorf("gst-launch-1.0 exited %d", code)
	}
}
