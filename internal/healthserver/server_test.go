package healthserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
)

// verdicts is a Check whose answers the test sets.
type verdicts struct {
	healthy bool
	reason  string
	calls   int
}

func (v *verdicts) check() (bool, string) { v.calls++; return v.healthy, v.reason }

func get(t *testing.T, h http.Handler, method, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body), rec.Result().Header
}

func TestHealthzFollowsTheLatestCheck(t *testing.T) {
	v := &verdicts{}
	s, err := New(Options{Check: v.check, Interval: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	steps := []struct {
		name     string
		set      func()
		check    bool
		code     int
		contains string
	}{
		{name: "before the first check", code: 503, contains: "starting: the first check is 5s after the relay started"},
		{name: "healthy check", set: func() { v.healthy = true }, check: true, code: 200, contains: "ok"},
		{name: "a verdict holds between checks", set: func() { v.healthy, v.reason = false, "cam-a: downstream push blocked" }, code: 200, contains: "ok"},
		{name: "unhealthy check", check: true, code: 503, contains: "unhealthy: cam-a: downstream push blocked"},
		{name: "recovered", set: func() { v.healthy = true }, check: true, code: 200, contains: "ok"},
	}
	for _, st := range steps {
		if st.set != nil {
			st.set()
		}
		if st.check {
			s.checkNow()
		}
		code, body, hdr := get(t, h, http.MethodGet, "/healthz")
		if code != st.code || !strings.Contains(body, st.contains) {
			t.Fatalf("%s: GET /healthz = %d %q, want %d containing %q", st.name, code, body, st.code, st.contains)
		}
		if hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", st.name, hdr.Get("Cache-Control"))
		}
		if code, _, _ := get(t, h, http.MethodHead, "/healthz"); code != st.code {
			t.Errorf("%s: HEAD /healthz = %d, want %d", st.name, code, st.code)
		}
	}
	if v.calls != 3 {
		t.Errorf("Check was called %d times; requests must not run checks (3 checks were made)", v.calls)
	}
}

func TestMetricsAreValidPrometheusTextWithTheHealthGauge(t *testing.T) {
	v := &verdicts{healthy: true}
	s, err := New(Options{Check: v.check, Metrics: func(w io.Writer) error {
		_, err := io.WriteString(w, "# HELP kvsrelay_frames_out_total Buffers.\n# TYPE kvsrelay_frames_out_total counter\n"+
			"kvsrelay_frames_out_total{stream=\"cam\"} 42\n")
		return err
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []float64{0, 1} {
		if want == 1 {
			s.checkNow()
		}
		code, body, hdr := get(t, s.Handler(), http.MethodGet, "/metrics")
		if code != 200 {
			t.Fatalf("GET /metrics = %d %q", code, body)
		}
		if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Content-Type %q is not Prometheus text 0.0.4", ct)
		}
		var p expfmt.TextParser
		fams, err := p.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatalf("Prometheus's parser refused /metrics: %v\n%s", err, body)
		}
		if got := fams["kvsrelay_healthy"].GetMetric()[0].GetGauge().GetValue(); got != want {
			t.Errorf("kvsrelay_healthy = %v, want %v", got, want)
		}
		if got := fams["kvsrelay_frames_out_total"].GetMetric()[0].GetCounter().GetValue(); got != 42 {
			t.Errorf("the recorder's metrics are missing: frames_out = %v", got)
		}
	}
}

func TestBadRequestsAndFailingMetrics(t *testing.T) {
	s, err := New(Options{Check: (&verdicts{}).check, Metrics: func(io.Writer) error { return errors.New("disk on fire") }})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{http.MethodPost, "/healthz", 405},
		{http.MethodDelete, "/metrics", 405},
		{http.MethodGet, "/", 404},
		{http.MethodGet, "/metrics", 500},
	} {
		if code, body, _ := get(t, h, tc.method, tc.path); code != tc.code {
			t.Errorf("%s %s = %d %q, want %d", tc.method, tc.path, code, body, tc.code)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "Check") {
		t.Errorf("no Check: %v", err)
	}
	if _, err := New(Options{Check: (&verdicts{}).check, Interval: -time.Second}); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Errorf("negative interval: %v", err)
	}
}

type fakeTicker struct{ c chan time.Time }

func (f fakeTicker) C() <-chan time.Time { return f.c }
func (f fakeTicker) Stop()               {}

// Run checks once per tick of the interval it was given, and stops with
// its context.
func TestRunChecksOncePerTick(t *testing.T) {
	v := &verdicts{healthy: true}
	tick := fakeTicker{c: make(chan time.Time)}
	var period time.Duration
	s, err := New(Options{Check: v.check, Interval: 7 * time.Second,
		NewTicker: func(d time.Duration) Ticker { period = d; return tick }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	for i := 0; i < 3; i++ {
		tick.c <- time.Time{} // unbuffered: taken only once the previous check ended
	}
	cancel()
	<-done
	if v.calls != 3 {
		t.Errorf("Check called %d times for 3 ticks", v.calls)
	}
	if period != 7*time.Second {
		t.Errorf("ticker period %v, want the interval", period)
	}
	if code, _, _ := get(t, s.Handler(), http.MethodGet, "/healthz"); code != 200 {
		t.Errorf("after healthy checks /healthz = %d", code)
	}
}

func TestParseAddr(t *testing.T) {
	cases := []struct {
		spec, want, err string
	}{
		{spec: "", want: ""},
		{spec: "8080", want: "127.0.0.1:8080"},
		{spec: ":8080", want: "127.0.0.1:8080"},
		{spec: "0.0.0.0:9464", want: "0.0.0.0:9464"},
		{spec: "[::1]:9464", want: "[::1]:9464"},
		{spec: "localhost:80", want: "localhost:80"},
		{spec: "0", err: "port must be a number from 1 to 65535"},
		{spec: "http://0.0.0.0:8080", err: "KVSRELAY_HEALTH_ADDR"},
		{spec: "eighty", err: `KVSRELAY_HEALTH_ADDR="eighty"`},
		{spec: "host:99999", err: "port must be"},
	}
	for _, tc := range cases {
		got, err := ParseAddr(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseAddr(%q) = %q, %v; want an error with %q", tc.spec, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseAddr(%q) = %q, %v; want %q", tc.spec, got, err, tc.want)
		}
	}
}
