package pipelines_test

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/emf"
	"github.com/kvsrelay/kvsrelay/internal/healthserver"
	"github.com/kvsrelay/kvsrelay/internal/manualclock"
)

// kvs-relay-liveness against metrics files written by the relay's own EMF
// writer, interval after interval: data moving or an outage being ridden out
// is alive; a stream that moved nothing outside an outage, a writer that
// stopped, or no file is not.
func TestLivenessProbe(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cam-1.emf")
	clk := manualclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	rec := emf.NewRecorder(emf.RecorderOptions{Now: clk.Now})
	cam1, cam2 := rec.Stream("cam-1"), rec.Stream("cam-2")
	env := baseEnv("KVSRELAY_METRICS="+path, "KVSRELAY_METRICS_INTERVAL=15s")
	if r := runScript(t, "kvs-relay-liveness", env); r.code != 1 || !strings.Contains(r.stdout, "no metrics file") {
		t.Fatalf("before the relay started: exit %d, %q", r.code, r.stdout)
	}
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w, err := emf.NewWriter(rec, emf.WriterOptions{Out: out, Interval: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	probe := func(env []string, args ...string) runResult {
		t.Helper()
		cmd := exec.Command("./kvs-relay-liveness", args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("running kvs-relay-liveness: %v", err)
		}
		return runResult{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	}
	expect := func(what string, wantCode int, wantText string, env []string, args ...string) {
		t.Helper()
		r := probe(env, args...)
		if r.code != wantCode || !strings.Contains(r.stdout+r.stderr, wantText) {
			t.Fatalf("%s: exit %d, output %q%q; want exit %d with %q", what, r.code, r.stdout, r.stderr, wantCode, wantText)
		}
	}
	interval := func() {
		t.Helper()
		clk.Advance(15 * time.Second)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}

	expect("empty file just created", 0, "no complete metrics line", env)

	cam1.AddFramesOut(375)
	cam2.AddFramesOut(375)
	interval()
	expect("both streams moving", 0, "alive: 2 stream(s)", env)

	cam1.AddFramesOut(375)
	cam2.SetOutage(true) // camera 2 away, reconnectbin rebuilding it
	interval()
	expect("one stream in an outage", 0, "alive", env)

	cam1.AddFramesOut(375)
	clk.Advance(5 * time.Second)
	cam2.SetOutage(false) // back without frames yet: 5 s of outage in this interval
	clk.Advance(10 * time.Second)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	expect("outage ended during the interval", 0, "alive", env)

	cam1.AddFramesOut(375)
	interval() // cam-2 sent nothing, no outage: wedged
	expect("a wedged stream", 1, "stream cam-2 sent no frames", env)

	cam1.AddFramesOut(375)
	cam2.AddFramesOut(375)
	interval()
	expect("recovered", 0, "alive", env)

	old := time.Now().Add(-46 * time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	expect("writer stopped (3 intervals of 15 s)", 1, "stopped writing metrics", env)
	expect("explicit larger limit", 0, "alive", env, path, "60")
	expect("interval in minutes", 0, "alive", baseEnv("KVSRELAY_METRICS="+path, "KVSRELAY_METRICS_INTERVAL=1m"))

	// A line cut while being written is left out; the newest complete
	// line of the stream counts.
	if _, err := out.WriteString(`{"_aws":{"Timestamp":1},"StreamName":"cam-2","Restarts":0,"FramesOut":0`); err != nil {
		t.Fatal(err)
	}
	expect("a line being written", 0, "alive", env, path, "60")

	// Over the trim size, a successful check empties the file; the relay's
	// next line lands in the emptied file.
	trimEnv := append(env, "KVSRELAY_LIVENESS_TRIM_BYTES=100")
	expect("trim", 0, "alive", trimEnv, path, "60")
	if st, err := os.Stat(path); err != nil || st.Size() != 0 {
		t.Fatalf("not emptied over the trim size: %v, %v", st.Size(), err)
	}
	cam1.AddFramesOut(1)
	cam2.AddFramesOut(1)
	interval()
	expect("after the trim", 0, "alive: 2 stream(s)", env)
	cam1.AddFramesOut(1)
	interval() // cam-2 wedged: failing checks never empty the file
	size := func() int64 { st, _ := os.Stat(path); return st.Size() }
	before := size()
	expect("wedged, over the trim size", 1, "stream cam-2", trimEnv)
	if size() != before {
		t.Fatal("a failing check emptied the file")
	}

	// An empty file nobody wrote for longer than the limit: stuck before
	// the first line.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	expect("empty and old", 1, "stopped writing metrics", env)

	expect("metrics to stdout", 2, "KVSRELAY_METRICS", baseEnv("KVSRELAY_METRICS=stdout"))
	expect("bad limit", 2, "MAX_AGE_SECONDS", env, path, "soon")
}

// healthTicker is a healthserver ticker the test fires.
type healthTicker chan time.Time

func (c healthTicker) C() <-chan time.Time { return c }
func (c healthTicker) Stop()               {}

// With KVSRELAY_HEALTH_ADDR set, kvs-relay-liveness asks the relay's own
// /healthz (served here by the relay's health server code) and passes on
// its verdict and reason; nothing listening is not alive.
func TestLivenessProbeAsksHealthz(t *testing.T) {
	healthy, reason := false, ""
	var mu sync.Mutex
	tick := make(healthTicker)
	srv, err := healthserver.New(healthserver.Options{
		Check: func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return healthy, reason
		},
		NewTicker: func(time.Duration) healthserver.Ticker { return tick },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	web := httptest.NewServer(srv.Handler())
	addr := strings.TrimPrefix(web.URL, "http://")
	port := addr[strings.LastIndex(addr, ":")+1:]
	// Each judged window: the second send returns only once the loop is
	// back from the first check.
	judge := func(h bool, r string) {
		mu.Lock()
		healthy, reason = h, r
		mu.Unlock()
		tick <- time.Time{}
		tick <- time.Time{}
	}

	for _, tc := range []struct {
		what, addr string
		set        func()
		code       int
		text       string
	}{
		{what: "starting", addr: addr, code: 1, text: "not alive: /healthz: starting"},
		{what: "healthy", addr: addr, set: func() { judge(true, "") }, code: 0, text: "alive: /healthz: ok"},
		{what: "a bare port is loopback", addr: port, code: 0, text: "alive"},
		{what: "0.0.0.0 is reached on loopback", addr: "0.0.0.0:" + port, code: 0, text: "alive"},
		{what: "wedged", addr: addr, set: func() { judge(false, "vetoed by sink: upload wedged") }, code: 1,
			text: "not alive: /healthz: unhealthy: vetoed by sink: upload wedged"},
		{what: "relay gone", addr: addr, set: web.Close, code: 1, text: "nothing answers on 127.0.0.1:" + port},
		{what: "no port", addr: "localhost:", code: 2, text: "has no port number"},
	} {
		if tc.set != nil {
			tc.set()
		}
		r := runScript(t, "kvs-relay-liveness", baseEnv("KVSRELAY_HEALTH_ADDR="+tc.addr))
		if r.code != tc.code || !strings.Contains(r.stdout+r.stderr, tc.text) {
			t.Errorf("%s: exit %d, output %q%q; want exit %d with %q", tc.what, r.code, r.stdout, r.stderr, tc.code, tc.text)
		}
		if tc.code != 2 && r.stderr != "" {
			t.Errorf("%s: stderr %q; a probe's verdict is one stdout line", tc.what, r.stderr)
		}
	}
}
