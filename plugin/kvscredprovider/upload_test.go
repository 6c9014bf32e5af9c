package kvscredprovider_test

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/sdnotify"
	"github.com/kvsrelay/kvsrelay/plugin/kvscredprovider"
	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
)

// fastClock runs speed times faster than the wall clock from its start, so
// the upload rule's seconds pass in a fraction of the test's time while
// kvssink (the stand-in) streams in real time. Every duration the rule sees
// is scaled alike; the tests assert on what happened, never on how long.
func fastClock(speed int) func() time.Time {
	start := time.Now()
	return func() time.Time { return start.Add(time.Since(start) * time.Duration(speed)) }
}

// With the stand-in's 1 s fragments (key-int-max=15 at 15 fps) and a clock
// 5 times as fast, a healthy stream is acknowledged every 5 s of the rule's
// time, well within the 10 s ack-timeout below.
const (
	uploadSpeed = 5
	uploadTick  = 200 * time.Millisecond // one second of the rule's time
)

// sentLog is a notifier's Send that keeps every datagram for the test.
type sentLog struct {
	mu   sync.Mutex
	sent []string
	ch   chan struct{}
}

func newSentLog() *sentLog { return &sentLog{ch: make(chan struct{}, 1)} }

func (l *sentLog) send(s string) error {
	l.mu.Lock()
	l.sent = append(l.sent, s)
	l.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
	default:
	}
	return nil
}

// waitFrom waits for a datagram at index from or later matching match and
// returns its index.
func (l *sentLog) waitFrom(t *testing.T, from int, what string, match func(string) bool) int {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		for i := from; i < len(l.sent); i++ {
			if match(l.sent[i]) {
				l.mu.Unlock()
				return i
			}
		}
		all := append([]string(nil), l.sent...)
		l.mu.Unlock()
		select {
		case <-l.ch:
		case <-deadline:
			t.Fatalf("waiting for %s: sent so far %q", what, all)
		}
	}
}

func (l *sentLog) since(from int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sent[from:]...)
}

// pingTicker is a watchdog tick the test fires; the notifier's loop handles
// one completely before taking anything else.
type pingTicker struct{ c chan time.Time }

func (p *pingTicker) C() <-chan time.Time { return p.c }
func (p *pingTicker) Stop()               {}
func (p *pingTicker) fire(t *testing.T) {
	t.Helper()
	select {
	case p.c <- time.Time{}:
	case <-time.After(10 * time.Second):
		t.Fatal("the notifier did not take the tick")
	}
}

// uploadPipeline starts kvscredprovider (ack-timeout 10 s) and the
// stand-in, whose acknowledgements follow acks, on the fast clock, with a
// notifier whose watchdog ticks the test fires and one source that always
// has data, as a flowing reconnectbin would.
func uploadPipeline(t *testing.T, acks, sinkProps string) (*harness.Pipeline, *sentLog, *pingTicker, *sdnotify.Source) {
	t.Helper()
	fakeIMDS(t, imdsfake.Options{})
	t.Setenv(kvssinkstandin.EnvAcks, "")
	path := filepath.Join(harness.PrivateDir(t), "credential")
	p := harness.NewPipeline(t, "kvscredprovider name=cp ack-timeout=10000000000 credential-path="+path+" "+
		encoded+" ! kvssink name=sink stream-name=cam buffer-duration=10 acks="+acks+" "+sinkProps)
	log := newSentLog()
	ticker := &pingTicker{c: make(chan time.Time)}
	n := sdnotify.New(sdnotify.Options{Send: log.send, WatchdogInterval: 30 * time.Second,
		NewTicker: func(time.Duration) sdnotify.Ticker { return ticker }})
	n.Start()
	t.Cleanup(n.Close)
	src := n.Register("relay")
	src.DataOut()
	kvscredprovider.SetUploadClock(element(t, p, "cp"), fastClock(uploadSpeed), uploadTick, n)
	p.Start()
	return p, log, ticker, src
}

func field(t *testing.T, m *gst.Message, name string) any {
	t.Helper()
	v, err := m.GetStructure().GetValue(name)
	if err != nil {
		t.Fatalf("%s: no field %s: %v", m.GetStructure().Name(), name, err)
	}
	return v
}

// uploadState parses the upload-status property: the first (only)
// kvssink's structure.
func uploadState(t *testing.T, cp *gst.Element) *gst.Structure {
	t.Helper()
	s := stringProp(t, cp, "upload-status")
	if s == "" {
		return nil
	}
	caps := gst.NewCapsFromString(s)
	if caps == nil || caps.GetSize() != 1 {
		t.Fatalf("upload-status %q does not parse as one structure", s)
	}
	return caps.GetStructureAt(0)
}

func structUint(t *testing.T, st *gst.Structure, name string) uint64 {
	t.Helper()
	v, err := st.GetValue(name)
	if err != nil {
		t.Fatalf("upload-status has no %s: %v", name, err)
	}
	n, _ := v.(uint64)
	return n
}

func structString(t *testing.T, st *gst.Structure, name string) string {
	t.Helper()
	v, err := st.GetValue(name)
	if err != nil {
		t.Fatalf("upload-status has no %s: %v", name, err)
	}
	s, _ := v.(string)
	return s
}

// A healthy upload (every fragment PERSISTED) is never reported stalled,
// however long it runs: upload-status says ok with its counters and
// latency, and the watchdog keeps pinging.
func TestUploadHealthyIsNeverStalled(t *testing.T) {
	p, log, ticker, src := uploadPipeline(t, "persist", "")
	cp := element(t, p, "cp")
	// 6 PERSISTED acknowledgements: over 30 s of the rule's time, three
	// times the ack-timeout.
	harness.WaitUntil(t, 60*time.Second, "6 PERSISTED acknowledgements", func() bool {
		st := uploadState(t, cp)
		return st != nil && structUint(t, st, "persisted") >= 6
	})
	st := uploadState(t, cp)
	if got := structString(t, st, "state"); got != "ok" {
		t.Errorf("state %q, want ok", got)
	}
	if structString(t, st, "kvssink") != "sink" || structString(t, st, "stream-name") != "cam" {
		t.Errorf("upload-status names %q/%q", structString(t, st, "kvssink"), structString(t, st, "stream-name"))
	}
	if structUint(t, st, "frames-in") == 0 || structUint(t, st, "latency") == 0 || structUint(t, st, "stalls") != 0 {
		t.Errorf("upload-status counters: %s", st)
	}
	for _, m := range p.Messages() {
		if harness.ElementMessage(kvscredprovider.MessageUploadStalled)(m) || harness.ElementMessage(kvscredprovider.MessageUploadError)(m) {
			t.Fatalf("healthy upload reported: %s", m.GetStructure())
		}
	}
	mark := len(log.since(0))
	src.DataOut()
	ticker.fire(t)
	log.waitFrom(t, mark, "WATCHDOG=1", func(s string) bool { return s == "WATCHDOG=1" })
}

// A PutMedia whose fragments are never persisted: upload-stalled with a
// WARNING at ack-timeout, watchdog pings withheld once buffer-duration has
// passed too (STATUS= says why), and everything undone by the next
// PERSISTED acknowledgement.
func TestUploadNeverPersistedStallsVetoesTheWatchdogAndResumes(t *testing.T) {
	p, log, ticker, src := uploadPipeline(t, "hold", "")
	cp := element(t, p, "cp")

	stalled := p.WaitFor(30*time.Second, 1, "upload-stalled", harness.ElementMessage(kvscredprovider.MessageUploadStalled))
	if got := field(t, stalled, "kvssink"); got != "sink" {
		t.Errorf("stalled kvssink %v", got)
	}
	if got := field(t, stalled, "stream-name"); got != "cam" {
		t.Errorf("stalled stream-name %v", got)
	}
	if age, _ := field(t, stalled, "ack-age").(uint64); time.Duration(age) < 10*time.Second {
		t.Errorf("stalled after %v, want at least the 10 s ack-timeout", time.Duration(age))
	}
	// max(ack-timeout 10 s, buffer-duration 10 s)
	if after, _ := field(t, stalled, "restart-after").(uint64); time.Duration(after) != 10*time.Second {
		t.Errorf("restart-after %v, want 10s", time.Duration(after))
	}
	warnings := func() []string { return errorsFrom(p, "cp", gst.MessageWarning) }
	harness.WaitUntil(t, 30*time.Second, "the wedged WARNING", func() bool {
		for _, w := range warnings() {
			if strings.Contains(w, "wedged") {
				return true
			}
		}
		return false
	})
	if st := uploadState(t, cp); structString(t, st, "state") != "wedged" || structUint(t, st, "persisted") != 0 {
		t.Errorf("upload-status while wedged: %s", st)
	}
	status := log.waitFrom(t, 0, "STATUS= naming the wedge", func(s string) bool {
		return strings.HasPrefix(s, "STATUS=") && strings.Contains(s, "sink: upload wedged: no PERSISTED ack for")
	})

	// Data flows, a watchdog tick passes: no WATCHDOG=1. The second tick
	// is taken only once the first was handled completely, so whatever the
	// first sent comes before the marker status.
	src.DataOut()
	ticker.fire(t)
	ticker.fire(t)
	src.SetStatus("marker")
	at := log.waitFrom(t, status, "the marker", func(s string) bool { return strings.HasPrefix(s, "STATUS=marker") })
	for _, s := range log.since(status)[:at-status] {
		if s == "WATCHDOG=1" {
			t.Fatalf("WATCHDOG=1 sent while the upload was wedged: %q", log.since(status))
		}
	}

	// The service persists again.
	if err := element(t, p, "sink").SetProperty("acks", "persist"); err != nil {
		t.Fatal(err)
	}
	resumed := p.WaitFor(30*time.Second, 1, "upload-resumed", harness.ElementMessage(kvscredprovider.MessageUploadResumed))
	if got := field(t, resumed, "kvssink"); got != "sink" {
		t.Errorf("resumed kvssink %v", got)
	}
	if d, _ := field(t, resumed, "stalled-for").(uint64); time.Duration(d) < 10*time.Second {
		t.Errorf("stalled-for %v", time.Duration(d))
	}
	if st := uploadState(t, cp); structString(t, st, "state") != "ok" || structUint(t, st, "stalls") != 1 {
		t.Errorf("upload-status after resuming: %s", st)
	}
	mark := len(log.since(0))
	src.DataOut()
	ticker.fire(t)
	log.waitFrom(t, mark, "WATCHDOG=1 after resuming", func(s string) bool { return s == "WATCHDOG=1" })
	if errs := errorsFrom(p, "", gst.MessageError); len(errs) > 0 {
		t.Fatalf("ERRORs on the bus: %v", errs)
	}
}

// ERROR acknowledgements and stream errors each give an upload-error
// message with the status and a description, and the stall report names
// the last one as the likely cause.
func TestUploadErrorsAreReportedWithTheirStatus(t *testing.T) {
	cases := []struct {
		acks, source string
		status       uint64
		desc         string
	}{
		{"error:4004", "error-ack", 4004, "fragment timecode not monotonically increasing (ErrorId 4004)"},
		{"stream-error:0x52000010", "stream-error", 0x52000010, "stream error 0x52000010: not authorized (HTTP 403"},
	}
	for _, c := range cases {
		t.Run(c.source, func(t *testing.T) {
			p, _, _, _ := uploadPipeline(t, c.acks, "")
			m := p.WaitFor(30*time.Second, 1, "upload-error", harness.ElementMessage(kvscredprovider.MessageUploadError))
			if got := field(t, m, "source"); got != c.source {
				t.Errorf("source %v, want %s", got, c.source)
			}
			if got := field(t, m, "status"); got != c.status {
				t.Errorf("status %v, want %d", got, c.status)
			}
			desc, _ := field(t, m, "description").(string)
			if !strings.Contains(desc, c.desc) {
				t.Errorf("description %q does not say %q", desc, c.desc)
			}
			if field(t, m, "kvssink") != "sink" || field(t, m, "stream-name") != "cam" {
				t.Errorf("error names %v/%v", field(t, m, "kvssink"), field(t, m, "stream-name"))
			}
			stalled := p.WaitFor(30*time.Second, 1, "upload-stalled", harness.ElementMessage(kvscredprovider.MessageUploadStalled))
			if last, _ := field(t, stalled, "last-error").(string); !strings.Contains(last, c.desc) {
				t.Errorf("stall names last error %q, want %q", last, c.desc)
			}
		})
	}
}

// fragment-acks=false: kvssink gets no acknowledgements, so the upload
// cannot be judged: one WARNING saying so, no stall, ever.
func TestUploadWithoutFragmentAcksIsNotJudged(t *testing.T) {
	p, _, _, _ := uploadPipeline(t, "persist", "fragment-acks=false")
	cp := element(t, p, "cp")
	p.WaitFor(30*time.Second, 1, "the fragment-acks WARNING", func(m *gst.Message) bool {
		return m.Type() == gst.MessageWarning && m.Source() == "cp" && strings.Contains(m.ParseWarning().Error(), "fragment-acks=false")
	})
	harness.WaitUntil(t, 30*time.Second, "frames over three ack-timeouts", func() bool {
		st := uploadState(t, cp)
		return st != nil && structUint(t, st, "frames-in") >= 15*7 // 7 s at 15 fps: 35 s of the rule's time
	})
	if st := uploadState(t, cp); structString(t, st, "state") != "unwatched" {
		t.Errorf("state %q, want unwatched", structString(t, st, "state"))
	}
	for _, m := range p.Messages() {
		if harness.ElementMessage(kvscredprovider.MessageUploadStalled)(m) {
			t.Fatalf("stall reported without acknowledgements to judge by: %s", m.GetStructure())
		}
	}
}

// Without kvssink nothing is watched: no status, no messages.
func TestNoKvssinkNothingWatched(t *testing.T) {
	fakeIMDS(t, imdsfake.Options{})
	path := filepath.Join(harness.PrivateDir(t), "credential")
	p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+path+" videotestsrc is-live=true ! fakesink")
	p.Start()
	cp := element(t, p, "cp")
	harness.WaitUntil(t, 30*time.Second, "PLAYING", func() bool { return cp.GetCurrentState() == gst.StatePlaying })
	if s := stringProp(t, element(t, p, "cp"), "upload-status"); s != "" {
		t.Fatalf("upload-status %q without a kvssink", s)
	}
}

// A too short ack-timeout fails the start with an ERROR naming the property.
func TestAckTimeoutTooShortFailsTheStart(t *testing.T) {
	fakeIMDS(t, imdsfake.Options{})
	path := filepath.Join(harness.PrivateDir(t), "credential")
	p := harness.NewPipeline(t, "kvscredprovider name=cp ack-timeout=5000000000 credential-path="+path+" "+encoded+" ! kvssink name=sink")
	_ = p.SetState(gst.StatePlaying) // fails: the ERROR says why
	m := p.WaitFor(30*time.Second, 1, "the ERROR", fromCP(gst.MessageError))
	if text := m.ParseError().Error(); !strings.Contains(text, "ack-timeout") || !strings.Contains(text, "at least 10s") {
		t.Fatalf("ERROR %q does not name ack-timeout and its minimum", text)
	}
}

// Frames kvssink refuses with a "put frame error" WARNING (here: timestamps
// going back) are counted as dropped in upload-status.
func TestUploadCountsFramesKvssinkRefused(t *testing.T) {
	fakeIMDS(t, imdsfake.Options{})
	path := filepath.Join(harness.PrivateDir(t), "credential")
	p := harness.NewPipeline(t, "kvscredprovider name=cp credential-path="+path+" "+encoded+
		" ! identity name=rewind ! kvssink name=sink stream-name=cam")
	// After 30 buffers, every buffer is sent 10 s back in time: kvssink
	// refuses each with a put frame error.
	var n int
	element(t, p, "rewind").GetStaticPad("src").AddProbe(gst.PadProbeTypeBuffer, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		n++
		buf := info.GetBuffer()
		if n <= 30 || buf == nil || buf.PresentationTimestamp() < gst.ClockTime(10*time.Second) {
			return gst.PadProbeOK
		}
		gstshim.SetProbeBufferTimestamps(info, buf.PresentationTimestamp()-gst.ClockTime(10*time.Second),
			buf.DecodingTimestamp()-gst.ClockTime(10*time.Second))
		return gst.PadProbeOK
	})
	p.Start()
	p.WaitFor(60*time.Second, 1, "kvssink's put frame error", func(m *gst.Message) bool {
		return m.Type() == gst.MessageWarning && m.Source() == "sink" &&
			strings.Contains(m.ParseWarning().DebugString(), "put frame error occurred. Status: 0x")
	})
	cp := element(t, p, "cp")
	harness.WaitUntil(t, 30*time.Second, "frames-dropped in upload-status", func() bool {
		st := uploadState(t, cp)
		return st != nil && structUint(t, st, "frames-dropped") > 0
	})
}
