package emf

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/manualclock"
)

// newClock is the manual clock a Recorder under test reads.
func newClock() *manualclock.Clock {
	return manualclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
}

// fakeTicker is a ticker the test fires by hand.
type fakeTicker struct {
	c       chan time.Time
	stopped chan struct{}
	once    sync.Once
}

func (t *fakeTicker) C() <-chan time.Time { return t.c }
func (t *fakeTicker) Stop()               { t.once.Do(func() { close(t.stopped) }) }

// emfUnits is the list of units the EMF specification allows (MetricDatum units).
var emfUnits = map[string]bool{
	"Seconds": true, "Microseconds": true, "Milliseconds": true, "Bytes": true, "Kilobytes": true,
	"Megabytes": true, "Gigabytes": true, "Terabytes": true, "Bits": true, "Kilobits": true,
	"Megabits": true, "Gigabits": true, "Terabits": true, "Percent": true, "Count": true,
	"Bytes/Second": true, "Kilobytes/Second": true, "Megabytes/Second": true, "Gigabytes/Second": true,
	"Terabytes/Second": true, "Bits/Second": true, "Kilobits/Second": true, "Megabits/Second": true,
	"Gigabits/Second": true, "Terabits/Second": true, "Count/Second": true, "None": true,
}

// validateEMF checks one log line against the rules of the CloudWatch
// embedded metric format specification and returns the decoded root node.
func validateEMF(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("root is not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the root object")
	}
	aws, ok := root["_aws"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("_aws missing or not an object")
	}
	for k := range aws {
		if k != "Timestamp" && k != "CloudWatchMetrics" {
			return nil, fmt.Errorf("_aws has an unexpected member %q", k)
		}
	}
	ts, ok := aws["Timestamp"].(json.Number)
	if !ok {
		return nil, fmt.Errorf("_aws.Timestamp missing or not a number")
	}
	if _, err := ts.Int64(); err != nil {
		return nil, fmt.Errorf("_aws.Timestamp %s is not an integer of milliseconds", ts)
	}
	directives, ok := aws["CloudWatchMetrics"].([]any)
	if !ok {
		return nil, fmt.Errorf("_aws.CloudWatchMetrics missing or not an array")
	}
	if len(directives) == 0 {
		return nil, fmt.Errorf("_aws.CloudWatchMetrics is empty: no metric would be extracted")
	}
	for i, d := range directives {
		dir, ok := d.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("directive %d is not an object", i)
		}
		for k := range dir {
			if k != "Namespace" && k != "Dimensions" && k != "Metrics" {
				return nil, fmt.Errorf("directive %d has an unexpected member %q", i, k)
			}
		}
		ns, ok := dir["Namespace"].(string)
		if !ok || len(ns) < 1 || len(ns) > 255 {
			return nil, fmt.Errorf("directive %d: Namespace %v is not a string of 1-255 chars", i, dir["Namespace"])
		}
		dims, ok := dir["Dimensions"].([]any)
		if !ok || len(dims) < 1 {
			return nil, fmt.Errorf("directive %d: Dimensions is not a non-empty array", i)
		}
		for j, set := range dims {
			keys, ok := set.([]any)
			if !ok {
				return nil, fmt.Errorf("directive %d: dimension set %d is not an array", i, j)
			}
			if len(keys) > 30 {
				return nil, fmt.Errorf("directive %d: dimension set %d has %d keys, max 30", i, j, len(keys))
			}
			for _, k := range keys {
				key, ok := k.(string)
				if !ok || len(key) < 1 || len(key) > 255 {
					return nil, fmt.Errorf("directive %d: dimension key %v is not a string of 1-255 chars", i, k)
				}
				if _, ok := root[key].(string); !ok {
					return nil, fmt.Errorf("dimension %q has no string member on the root node", key)
				}
			}
		}
		metrics, ok := dir["Metrics"].([]any)
		if !ok {
			return nil, fmt.Errorf("directive %d: Metrics is not an array", i)
		}
		if len(metrics) > 100 {
			return nil, fmt.Errorf("directive %d: %d metrics, max 100", i, len(metrics))
		}
		for _, m := range metrics {
			def, ok := m.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("directive %d: metric definition %v is not an object", i, m)
			}
			for k := range def {
				if k != "Name" && k != "Unit" {
					return nil, fmt.Errorf("metric definition has an unexpected member %q", k)
				}
			}
			name, ok := def["Name"].(string)
			if !ok || len(name) < 1 || len(name) > 255 {
				return nil, fmt.Errorf("metric Name %v is not a string of 1-255 chars", def["Name"])
			}
			if u, present := def["Unit"]; present {
				unit, ok := u.(string)
				if !ok || !emfUnits[unit] {
					return nil, fmt.Errorf("metric %q: unit %v is not a CloudWatch unit", name, u)
				}
			}
			switch v := root[name].(type) {
			case json.Number:
			case []any:
				if len(v) > 100 {
					return nil, fmt.Errorf("metric %q: %d values, max 100", name, len(v))
				}
				for _, e := range v {
					if _, ok := e.(json.Number); !ok {
						return nil, fmt.Errorf("metric %q: array value %v is not a number", name, e)
					}
				}
			default:
				return nil, fmt.Errorf("metric %q has no numeric member on the root node (got %T)", name, root[name])
			}
		}
	}
	return root, nil
}

// parseLines validates every line of out and indexes them by stream name.
func parseLines(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	byStream := map[string]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		root, err := validateEMF(sc.Bytes())
		if err != nil {
			t.Fatalf("line is not valid EMF: %v\n%s", err, sc.Text())
		}
		name := root["StreamName"].(string)
		if _, dup := byStream[name]; dup {
			t.Fatalf("two lines for stream %q in one flush", name)
		}
		byStream[name] = root
	}
	return byStream
}

func num(t *testing.T, root map[string]any, metric string) float64 {
	t.Helper()
	n, ok := root[metric].(json.Number)
	if !ok {
		t.Fatalf("metric %s missing from %v", metric, root)
	}
	f, err := n.Float64()
	if err != nil {
		t.Fatalf("metric %s: %v", metric, err)
	}
	return f
}

func declared(root map[string]any) map[string]string {
	units := map[string]string{}
	dir := root["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
	for _, m := range dir["Metrics"].([]any) {
		def := m.(map[string]any)
		units[def["Name"].(string)] = def["Unit"].(string)
	}
	return units
}

func TestValidatorRejectsBrokenDocuments(t *testing.T) {
	// The validator must be able to fail, or the format tests prove nothing.
	good := `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"N","Dimensions":[["S"]],"Metrics":[{"Name":"M","Unit":"Count"}]}]},"S":"x","M":1}`
	if _, err := validateEMF([]byte(good)); err != nil {
		t.Fatalf("valid document rejected: %v", err)
	}
	bad := map[string]string{
		"float timestamp":     strings.Replace(good, `"Timestamp":1`, `"Timestamp":1.5`, 1),
		"missing metric":      strings.Replace(good, `,"M":1`, ``, 1),
		"string metric":       strings.Replace(good, `"M":1`, `"M":"1"`, 1),
		"numeric dimension":   strings.Replace(good, `"S":"x"`, `"S":3`, 1),
		"unknown unit":        strings.Replace(good, `"Count"`, `"Frames"`, 1),
		"empty namespace":     strings.Replace(good, `"Namespace":"N"`, `"Namespace":""`, 1),
		"dimensions not sets": strings.Replace(good, `[["S"]]`, `["S"]`, 1),
		"trailing data":       good + ` {}`,
	}
	for name, doc := range bad {
		if _, err := validateEMF([]byte(doc)); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
}

func TestFlushWritesValidLinesWithDeltas(t *testing.T) {
	clock := newClock()
	rec := NewRecorder(RecorderOptions{Now: clock.Now})
	var out bytes.Buffer
	w, err := NewWriter(rec, WriterOptions{Out: &out})
	if err != nil {
		t.Fatal(err)
	}

	cam1 := rec.Stream("cam-1")
	cam2 := rec.Stream("cam-2")
	cam1.AddRestart()
	cam1.AddRestart()
	cam1.AddStall()
	cam1.AddFramesOut(1500)
	cam1.AddCredentialRefreshFailure()
	cam1.SetCredentialExpiry(clock.Now().Add(40 * time.Minute))
	cam1.SetOutage(true)
	clock.Advance(2500 * time.Millisecond)
	cam1.SetOutage(false)
	cam2.SetFallback(true)
	clock.Advance(10 * time.Second)

	type want struct {
		stream  string
		metrics map[string]float64
		expiry  bool
	}
	steps := []struct {
		name  string
		setup func()
		want  []want
	}{
		{
			name: "first line carries everything since creation",
			want: []want{
				{"cam-1", map[string]float64{"Restarts": 2, "Stalls": 1, "FramesOut": 1500, "OutageSeconds": 2.5,
					"FallbackSeconds": 0, "CredentialRefreshFailures": 1, "CredentialSecondsToExpiry": 40*60 - 13}, true},
				{"cam-2", map[string]float64{"Restarts": 0, "FallbackSeconds": 10}, false},
			},
		},
		{
			name: "second line carries only what happened since the first",
			setup: func() {
				cam1.AddRestart()
				cam1.AddFramesOut(250)
				clock.Advance(60 * time.Second)
			},
			want: []want{
				{"cam-1", map[string]float64{"Restarts": 1, "Stalls": 0, "FramesOut": 250, "OutageSeconds": 0,
					"CredentialRefreshFailures": 0, "CredentialSecondsToExpiry": 40*60 - 73}, true},
				// a fallback still running is reported per interval, not at its end
				{"cam-2", map[string]float64{"FallbackSeconds": 60}, false},
			},
		},
		{
			name: "quiet interval still writes zeros",
			setup: func() {
				cam2.SetFallback(false)
				clock.Advance(60 * time.Second)
			},
			want: []want{
				{"cam-1", map[string]float64{"Restarts": 0, "FramesOut": 0}, true},
				{"cam-2", map[string]float64{"FallbackSeconds": 0, "FramesOut": 0}, false},
			},
		},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if step.setup != nil {
				step.setup()
			}
			out.Reset()
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			lines := parseLines(t, out.String())
			if len(lines) != len(step.want) {
				t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(step.want), out.String())
			}
			for _, wl := range step.want {
				root, ok := lines[wl.stream]
				if !ok {
					t.Fatalf("no line for %s", wl.stream)
				}
				ts, _ := root["_aws"].(map[string]any)["Timestamp"].(json.Number).Int64()
				if ts != clock.Now().UnixMilli() {
					t.Errorf("%s: Timestamp %d, want %d", wl.stream, ts, clock.Now().UnixMilli())
				}
				for m, v := range wl.metrics {
					if got := num(t, root, m); got != v {
						t.Errorf("%s: %s = %v, want %v", wl.stream, m, got, v)
					}
				}
				units := declared(root)
				if _, has := root[MetricCredentialSecondsToExpiry]; has != wl.expiry {
					t.Errorf("%s: CredentialSecondsToExpiry present = %v, want %v", wl.stream, has, wl.expiry)
				}
				wantUnits := map[string]string{"Restarts": "Count", "Stalls": "Count", "OutageSeconds": "Seconds",
					"FallbackSeconds": "Seconds", "FramesOut": "Count", "CredentialRefreshFailures": "Count"}
				if wl.expiry {
					wantUnits["CredentialSecondsToExpiry"] = "Seconds"
				}
				if fmt.Sprint(units) != fmt.Sprint(wantUnits) {
					t.Errorf("%s: declared metrics %v, want %v", wl.stream, units, wantUnits)
				}
				dir := root["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)
				if dir["Namespace"] != "KVSRelay" || fmt.Sprint(dir["Dimensions"]) != "[[StreamName]]" {
					t.Errorf("%s: namespace/dimensions %v %v", wl.stream, dir["Namespace"], dir["Dimensions"])
				}
			}
		})
	}
}

func TestEmptyStreamNameStillGivesAValidDimension(t *testing.T) {
	rec := NewRecorder(RecorderOptions{Now: newClock().Now})
	rec.Stream("").AddRestart()
	var out bytes.Buffer
	w, _ := NewWriter(rec, WriterOptions{Out: &out})
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	lines := parseLines(t, out.String())
	if _, ok := lines["unnamed"]; !ok {
		t.Fatalf("want a line for stream \"unnamed\", got %s", out.String())
	}
}

func TestRunWritesEveryTickAndOnStop(t *testing.T) {
	clock := newClock()
	rec := NewRecorder(RecorderOptions{Now: clock.Now})
	cam := rec.Stream("cam")
	out := &lockedBuffer{lines: make(chan string, 10)}
	ticker := &fakeTicker{c: make(chan time.Time), stopped: make(chan struct{})}
	var gotInterval time.Duration
	w, err := NewWriter(rec, WriterOptions{Out: out, NewTicker: func(d time.Duration) Ticker {
		gotInterval = d
		return ticker
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	cam.AddFramesOut(7)
	ticker.c <- clock.Now()
	first := out.next(t)
	if got := num(t, mustValidate(t, first), "FramesOut"); got != 7 {
		t.Errorf("first tick FramesOut = %v, want 7", got)
	}
	cam.AddFramesOut(3)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	last := out.next(t)
	if got := num(t, mustValidate(t, last), "FramesOut"); got != 3 {
		t.Errorf("final line FramesOut = %v, want 3 (frames after the last tick)", got)
	}
	if gotInterval != DefaultInterval {
		t.Errorf("interval %v, want default %v", gotInterval, DefaultInterval)
	}
	select {
	case <-ticker.stopped:
	default:
		t.Error("ticker not stopped")
	}
}

func mustValidate(t *testing.T, line string) map[string]any {
	t.Helper()
	root, err := validateEMF([]byte(line))
	if err != nil {
		t.Fatalf("invalid EMF: %v\n%s", err, line)
	}
	return root
}

// lockedBuffer hands each written line to the test through a channel.
type lockedBuffer struct{ lines chan string }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.lines <- string(p)
	return len(p), nil
}

func (b *lockedBuffer) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-b.lines:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("no line written")
		return ""
	}
}

func TestConcurrentRecordingIsCountedExactly(t *testing.T) {
	rec := NewRecorder(RecorderOptions{Now: newClock().Now})
	var out bytes.Buffer
	w, _ := NewWriter(rec, WriterOptions{Out: &out})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := rec.Stream("cam")
			for i := 0; i < 1000; i++ {
				s.AddFramesOut(1)
				s.SetOutage(i%2 == 0)
			}
		}()
	}
	wg.Wait()
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := num(t, parseLines(t, out.String())["cam"], "FramesOut"); got != 8000 {
		t.Fatalf("FramesOut = %v, want 8000", got)
	}
}

func TestOpenOutput(t *testing.T) {
	t.Run("off", func(t *testing.T) {
		w, closeFn, err := OpenOutput("")
		if err != nil || w != nil {
			t.Fatalf("OpenOutput(\"\") = %v, %v; want nil writer, no error", w, err)
		}
		_ = closeFn()
	})
	t.Run("stdout and stderr", func(t *testing.T) {
		for spec, want := range map[string]*os.File{"stdout": os.Stdout, "stderr": os.Stderr} {
			w, _, err := OpenOutput(spec)
			if err != nil || w != want {
				t.Errorf("OpenOutput(%q) = %v, %v", spec, w, err)
			}
		}
	})
	t.Run("file appends and is not world readable", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "metrics.emf")
		if err := os.WriteFile(path, []byte("earlier line\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		w, closeFn, err := OpenOutput(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("new line\n")); err != nil {
			t.Fatal(err)
		}
		if err := closeFn(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != "earlier line\nnew line\n" {
			t.Errorf("file = %q, want the new line appended", got)
		}
		fresh := filepath.Join(t.TempDir(), "fresh.emf")
		_, closeFresh, err := OpenOutput(fresh)
		if err != nil {
			t.Fatal(err)
		}
		_ = closeFresh()
		fi, err := os.Stat(fresh)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&^0o640 != 0 {
			t.Errorf("new metrics file mode %v, want at most 0640", perm)
		}
	})
	t.Run("bad path names the variable", func(t *testing.T) {
		_, _, err := OpenOutput(filepath.Join(t.TempDir(), "missing-dir", "m.emf"))
		if err == nil || !strings.Contains(err.Error(), "KVSRELAY_METRICS") {
			t.Fatalf("error %v does not name KVSRELAY_METRICS", err)
		}
	})
}

func TestUploadMetricsAppearOnceWatchedWithLargestAckAgePerLine(t *testing.T) {
	clock := newClock()
	rec := NewRecorder(RecorderOptions{Now: clock.Now})
	var out bytes.Buffer
	w, err := NewWriter(rec, WriterOptions{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	cam := rec.Stream("cam-1")
	cam.AddFramesOut(1)
	flush := func() map[string]any {
		t.Helper()
		out.Reset()
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		return parseLines(t, out.String())["cam-1"]
	}
	if root := flush(); root[MetricUploadAckAgeSeconds] != nil || root[MetricUploadErrors] != nil {
		t.Fatalf("upload metrics in the line of a stream whose upload is not watched: %v", root)
	}

	cam.SetUploadAckAge(2 * time.Second)
	cam.SetUploadAckAge(75 * time.Second) // a stall ...
	cam.SetUploadAckAge(time.Second)      // ... that ended before the line
	cam.AddUploadError()
	cam.AddUploadError()
	cam.AddUploadFramesDropped(3)
	root := flush()
	for m, v := range map[string]float64{MetricUploadAckAgeSeconds: 75, MetricUploadErrors: 2, MetricUploadFramesDropped: 3} {
		if got := num(t, root, m); got != v {
			t.Errorf("%s = %v, want %v", m, got, v)
		}
	}
	if _, has := root[MetricUploadAckLatencySeconds]; has {
		t.Error("UploadAckLatencySeconds before any latency was measured")
	}
	units := declared(root)
	for m, u := range map[string]string{MetricUploadAckAgeSeconds: "Seconds", MetricUploadErrors: "Count", MetricUploadFramesDropped: "Count"} {
		if units[m] != u {
			t.Errorf("%s declared as %q, want %q", m, units[m], u)
		}
	}

	cam.SetUploadAckAge(3 * time.Second)
	cam.SetUploadAckLatency(2500 * time.Millisecond)
	root = flush()
	for m, v := range map[string]float64{MetricUploadAckAgeSeconds: 3, MetricUploadErrors: 0, MetricUploadFramesDropped: 0, MetricUploadAckLatencySeconds: 2.5} {
		if got := num(t, root, m); got != v {
			t.Errorf("second line: %s = %v, want %v", m, got, v)
		}
	}
	if declared(root)[MetricUploadAckLatencySeconds] != "Seconds" {
		t.Error("UploadAckLatencySeconds not declared")
	}
}
