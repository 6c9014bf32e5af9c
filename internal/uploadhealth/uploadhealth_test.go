package uploadhealth

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/fielderr"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// step is one input at t0+at seconds; want lists the event kinds it must
// return (nil: none).
type step struct {
	at   float64
	op   string // "frames", "buffering", "persisted", "error-ack", "stream-error", "drop", "tick"
	tc   uint64 // fragment timecode for acks
	code uint64 // status for errors
	want []EventKind
}

func sec(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func run(t *testing.T, w *Watch, steps []step) []Event {
	t.Helper()
	var all []Event
	for i, s := range steps {
		now := sec(s.at)
		var got []Event
		switch s.op {
		case "frames":
			w.FramesIn(now, 1)
		case "buffering":
			got = w.Ack(now, AckBuffering, s.tc, 0)
		case "received":
			got = w.Ack(now, AckReceived, s.tc, 0)
		case "idle":
			got = w.Ack(now, AckIdle, s.tc, 0)
		case "persisted":
			got = w.Ack(now, AckPersisted, s.tc, 0)
		case "error-ack":
			got = w.Ack(now, AckError, s.tc, s.code)
		case "stream-error":
			got = w.StreamError(now, s.code)
		case "drop":
			w.FrameDropped(now, s.code)
		case "tick":
			got = w.Tick(now)
		default:
			t.Fatalf("step %d: unknown op %q", i, s.op)
		}
		var kinds []EventKind
		for _, e := range got {
			kinds = append(kinds, e.Kind)
		}
		if !slices.Equal(kinds, s.want) {
			t.Fatalf("step %d (%s at %vs): events %v, want %v", i, s.op, s.at, kinds, s.want)
		}
		all = append(all, got...)
	}
	return all
}

// feed returns frame steps every second from a to b (inclusive), each
// followed by a tick.
func feed(a, b float64) []step {
	var out []step
	for s := a; s <= b; s++ {
		out = append(out, step{at: s, op: "frames"}, step{at: s, op: "tick"})
	}
	return out
}

func concat(parts ...[]step) []step { return slices.Concat(parts...) }

func TestWedgeRule(t *testing.T) {
	stall := []EventKind{EventStalled}
	wedge := []EventKind{EventWedged}
	both := []EventKind{EventStalled, EventWedged}
	resumed := []EventKind{EventResumed}
	cases := []struct {
		name  string
		opts  Options
		steps []step
		// final snapshot checks
		stalled, wedged bool
		ackAge          time.Duration
	}{
		{
			name: "healthy upload: acks every few seconds never stall",
			opts: Options{AckTimeout: 10 * time.Second},
			steps: concat(
				feed(0, 4), []step{{at: 4, op: "buffering", tc: 1}, {at: 5, op: "persisted", tc: 1}},
				feed(6, 9), []step{{at: 9, op: "persisted", tc: 2}},
				feed(10, 14), []step{{at: 14.5, op: "persisted", tc: 3}},
				feed(15, 20),
			),
			ackAge: 5 * time.Second,
		},
		{
			name:    "frames without any ack stall at the timeout and wedge at once when buffer-duration is shorter",
			opts:    Options{AckTimeout: 10 * time.Second, BufferDuration: 5 * time.Second},
			steps:   concat(feed(0, 9), []step{{at: 10, op: "frames"}, {at: 10, op: "tick", want: both}}, feed(11, 12)),
			stalled: true, wedged: true, ackAge: 12 * time.Second,
		},
		{
			name: "a stall becomes a wedge only once kvssink's buffer-duration has passed",
			opts: Options{AckTimeout: 10 * time.Second, BufferDuration: 30 * time.Second},
			steps: concat(feed(0, 9), []step{{at: 10, op: "frames"}, {at: 10, op: "tick", want: stall}},
				feed(11, 29), []step{{at: 30, op: "frames"}, {at: 30, op: "tick", want: wedge}}, feed(31, 33)),
			stalled: true, wedged: true, ackAge: 33 * time.Second,
		},
		{
			name: "a PERSISTED ack resumes a stalled (and wedged) upload; the wait starts again with the next frame",
			opts: Options{AckTimeout: 10 * time.Second},
			steps: concat(feed(0, 9), []step{{at: 10, op: "frames"}, {at: 10, op: "tick", want: both},
				{at: 11, op: "persisted", tc: 7, want: resumed}, {at: 11, op: "tick"}}, feed(12, 20)),
			ackAge: 8 * time.Second,
		},
		{
			name: "ERROR acks, RECEIVED, BUFFERING and IDLE acks do not end a stall",
			opts: Options{AckTimeout: 10 * time.Second},
			steps: concat(feed(0, 9), []step{{at: 10, op: "frames"}, {at: 10, op: "tick", want: both},
				{at: 11, op: "error-ack", tc: 5, code: 4000, want: []EventKind{EventError}},
				{at: 11, op: "buffering", tc: 6}, {at: 11, op: "received", tc: 6}, {at: 11, op: "idle"}}, feed(12, 13)),
			stalled: true, wedged: true, ackAge: 13 * time.Second,
		},
		{
			name:   "no frames, no stall: a quiet source is not an upload problem",
			opts:   Options{AckTimeout: 10 * time.Second},
			steps:  []step{{at: 0, op: "tick"}, {at: 100, op: "tick"}},
			ackAge: 0,
		},
		{
			name: "frames that stopped an ack-timeout before do not stall, however long nothing is acked",
			opts: Options{AckTimeout: 10 * time.Second},
			steps: concat(feed(0, 3), []step{{at: 13, op: "tick"}, {at: 14, op: "tick"},
				{at: 100, op: "tick"}}),
			ackAge: 100 * time.Second,
		},
		{
			name: "a frame after a quiet gap longer than the timeout starts a new wait instead of stalling at once",
			opts: Options{AckTimeout: 10 * time.Second},
			steps: concat(feed(0, 3), []step{{at: 50, op: "frames"}, {at: 50, op: "tick"}}, feed(51, 59),
				[]step{{at: 60, op: "frames"}, {at: 60, op: "tick", want: both}}),
			stalled: true, wedged: true, ackAge: 10 * time.Second,
		},
		{
			name: "a declared stall lasts when frames stop",
			opts: Options{AckTimeout: 10 * time.Second},
			steps: concat(feed(0, 9), []step{{at: 10, op: "frames"}, {at: 10, op: "tick", want: both},
				{at: 20, op: "tick"}, {at: 200, op: "tick"}}),
			stalled: true, wedged: true, ackAge: 200 * time.Second,
		},
		{
			name:   "ack-timeout 0 turns the stall rule off; errors are still reported",
			opts:   Options{},
			steps:  concat(feed(0, 300), []step{{at: 301, op: "stream-error", code: 0x52000010, want: []EventKind{EventError}}}),
			ackAge: 301 * time.Second,
		},
		{
			name: "stalls again after resuming",
			opts: Options{AckTimeout: 10 * time.Second},
			steps: concat(feed(0, 9), []step{{at: 10, op: "frames"}, {at: 10, op: "tick", want: both},
				{at: 10.5, op: "persisted", tc: 1, want: resumed}}, feed(11, 20),
				[]step{{at: 21, op: "frames"}, {at: 21, op: "tick", want: both}}),
			stalled: true, wedged: true, ackAge: 10 * time.Second,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := New(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			run(t, w, c.steps)
			last := c.steps[len(c.steps)-1].at
			snap := w.Snapshot(sec(last))
			if snap.Stalled != c.stalled || snap.Wedged != c.wedged {
				t.Errorf("stalled=%v wedged=%v, want %v %v", snap.Stalled, snap.Wedged, c.stalled, c.wedged)
			}
			if snap.AckAge != c.ackAge {
				t.Errorf("ack age %v, want %v", snap.AckAge, c.ackAge)
			}
		})
	}
}

func TestEventsCarryWhatTheMessagesSay(t *testing.T) {
	w, err := New(Options{AckTimeout: 10 * time.Second, BufferDuration: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	evs := run(t, w, concat(feed(0, 9),
		[]step{{at: 10, op: "frames"}, {at: 10, op: "tick", want: []EventKind{EventStalled}}},
		feed(11, 19),
		[]step{{at: 20, op: "frames"}, {at: 20, op: "tick", want: []EventKind{EventWedged}}},
		[]step{{at: 21, op: "error-ack", tc: 1234, code: 4002, want: []EventKind{EventError}}},
		[]step{{at: 22, op: "stream-error", code: 0x15000017, want: []EventKind{EventError}}},
		[]step{{at: 23, op: "persisted", tc: 1236, want: []EventKind{EventResumed}}},
	))
	want := []Event{
		{Kind: EventStalled, At: sec(10), AckAge: 10 * time.Second},
		{Kind: EventWedged, At: sec(20), AckAge: 20 * time.Second},
		{Kind: EventError, At: sec(21), AckAge: 21 * time.Second, Source: FromAck, Status: 4002, Timecode: 1234},
		{Kind: EventError, At: sec(22), AckAge: 22 * time.Second, Source: FromStreamError, Status: 0x15000017},
		{Kind: EventResumed, At: sec(23), AckAge: 23 * time.Second},
	}
	if !slices.Equal(evs, want) {
		t.Fatalf("events\n%+v\nwant\n%+v", evs, want)
	}
	snap := w.Snapshot(sec(23))
	if snap.ErrorAcks != 1 || snap.StreamErrors != 1 || snap.Persisted != 1 || snap.Stalls != 1 || snap.LastStatus != 0x15000017 {
		t.Errorf("counters %+v", snap)
	}
}

func TestLatencyIsBufferingToPersistedOfTheSameFragment(t *testing.T) {
	cases := []struct {
		name    string
		steps   []step
		latency time.Duration
		has     bool
	}{
		{"one fragment", []step{{at: 1, op: "buffering", tc: 100}, {at: 1.5, op: "received", tc: 100}, {at: 3.25, op: "persisted", tc: 100}}, 2250 * time.Millisecond, true},
		{"interleaved fragments pair by timecode", []step{{at: 1, op: "buffering", tc: 100}, {at: 3, op: "buffering", tc: 102},
			{at: 4, op: "persisted", tc: 100}, {at: 4.5, op: "persisted", tc: 102}}, 1500 * time.Millisecond, true},
		{"a PERSISTED ack without its BUFFERING measures nothing", []step{{at: 4, op: "persisted", tc: 100}}, 0, false},
		{"an ERROR ack settles older fragments", []step{{at: 1, op: "buffering", tc: 100}, {at: 2, op: "error-ack", tc: 100, code: 5000, want: []EventKind{EventError}},
			{at: 9, op: "persisted", tc: 100}}, 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, _ := New(Options{AckTimeout: 10 * time.Second})
			run(t, w, c.steps)
			s := w.Snapshot(sec(10))
			if s.Latency != c.latency || s.HasLatency != c.has {
				t.Errorf("latency %v (%v), want %v (%v)", s.Latency, s.HasLatency, c.latency, c.has)
			}
		})
	}
}

func TestPendingBufferingTimesAreBounded(t *testing.T) {
	w, _ := New(Options{AckTimeout: 10 * time.Second})
	for i := uint64(0); i < 10*maxPending; i++ {
		w.Ack(sec(float64(i)), AckBuffering, i, 0)
	}
	if len(w.buffering) > maxPending || len(w.bufferingKeys) > maxPending {
		t.Fatalf("%d pending BUFFERING times kept, want at most %d", len(w.buffering), maxPending)
	}
	w.Ack(sec(1000), AckPersisted, 10*maxPending-1, 0)
	if s := w.Snapshot(sec(1000)); !s.HasLatency || s.Latency != time.Duration(1000-(10*maxPending-1))*time.Second {
		t.Errorf("latency of the newest fragment %v (%v)", s.Latency, s.HasLatency)
	}
}

func TestFramesDroppedAreCounted(t *testing.T) {
	w, _ := New(Options{AckTimeout: 10 * time.Second})
	run(t, w, []step{{at: 1, op: "drop", code: 0x32000002}, {at: 2, op: "drop", code: 0x30000005}})
	if s := w.Snapshot(sec(2)); s.FramesDropped != 2 {
		t.Errorf("dropped %d, want 2", s.FramesDropped)
	}
}

// kvssink's count of frames evicted unsent becomes EventFramesLost (skipped
// frames are counted, not reported as lost): the first rise
// at once, then at most one per LossReportInterval carrying everything lost
// since the last one; a stream recreated by kvssink (counters back to 0)
// adds to the totals; the stall rule off does not silence losses.
func TestFramesLostAreReportedFromKVSSinksCounters(t *testing.T) {
	type input struct {
		at      float64
		metrics *SinkMetrics // nil: a tick only
		// wantLost is the Frames of the one EventFramesLost the tick
		// must return, 0 for none.
		wantLost uint64
	}
	m := func(dropped, skipped uint64) *SinkMetrics {
		return &SinkMetrics{Dropped: dropped, Skipped: skipped, Backlog: 150 * time.Second}
	}
	for _, tc := range []struct {
		name        string
		ackTimeout  time.Duration
		steps       []input
		wantDropped uint64
		wantSkipped uint64
	}{
		{"nothing lost", DefaultAckTimeout, []input{{1, m(0, 0), 0}, {2, m(0, 0), 0}}, 0, 0},
		{"no counters yet", DefaultAckTimeout, []input{{1, nil, 0}}, 0, 0},
		{"first loss at once, then throttled", DefaultAckTimeout, []input{
			{1, m(0, 0), 0}, {2, m(25, 0), 25}, {3, m(50, 0), 0}, {11, m(300, 12), 0}, {12, m(325, 12), 300}, {13, nil, 0}, {30, nil, 0},
		}, 325, 12},
		{"loss after a quiet spell reported at once", DefaultAckTimeout, []input{
			{1, m(10, 0), 10}, {100, m(20, 0), 10},
		}, 20, 0},
		{"kvssink made a new stream", DefaultAckTimeout, []input{
			{1, m(40, 5), 40}, {20, m(0, 0), 0}, {40, m(10, 1), 10},
		}, 50, 6},
		{"stall rule off", 0, []input{{1, m(7, 0), 7}}, 7, 0},
		{"skipped only", DefaultAckTimeout, []input{{1, m(0, 25), 0}, {20, m(0, 25), 0}}, 0, 25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(Options{AckTimeout: tc.ackTimeout})
			if err != nil {
				t.Fatal(err)
			}
			for _, in := range tc.steps {
				if in.metrics != nil {
					w.Metrics(*in.metrics)
				}
				var lost []uint64
				for _, ev := range w.Tick(sec(in.at)) {
					if ev.Kind == EventFramesLost {
						lost = append(lost, ev.Frames)
					}
				}
				want := []uint64(nil)
				if in.wantLost > 0 {
					want = []uint64{in.wantLost}
				}
				if !slices.Equal(lost, want) {
					t.Fatalf("tick at %vs: frames-lost events %v, want %v", in.at, lost, want)
				}
			}
			s := w.Snapshot(sec(100))
			if s.BufferDropped != tc.wantDropped || s.Skipped != tc.wantSkipped {
				t.Errorf("snapshot dropped %d skipped %d, want %d and %d", s.BufferDropped, s.Skipped, tc.wantDropped, tc.wantSkipped)
			}
			sawMetrics := slices.ContainsFunc(tc.steps, func(in input) bool { return in.metrics != nil })
			if s.HasSinkMetrics != sawMetrics || (sawMetrics && s.Backlog != 150*time.Second) {
				t.Errorf("snapshot has kvssink's metrics %v, backlog %v", s.HasSinkMetrics, s.Backlog)
			}
		})
	}
}

func TestAckTimeoutValidation(t *testing.T) {
	for _, c := range []struct {
		d  time.Duration
		ok bool
	}{{0, true}, {MinAckTimeout, true}, {DefaultAckTimeout, true}, {time.Second, false}, {MinAckTimeout - 1, false}} {
		_, err := New(Options{AckTimeout: c.d})
		if (err == nil) != c.ok {
			t.Errorf("AckTimeout %v: err %v, want ok=%v", c.d, err, c.ok)
		}
		var fe *fielderr.Error
		if err != nil && (!errors.As(err, &fe) || fe.Field != "AckTimeout") {
			t.Errorf("AckTimeout %v: %v is not a fielderr naming AckTimeout", c.d, err)
		}
	}
}

func TestWedgeAfter(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want time.Duration
	}{
		{Options{}, 0},
		{Options{AckTimeout: 60 * time.Second, BufferDuration: 120 * time.Second}, 120 * time.Second},
		{Options{AckTimeout: 90 * time.Second, BufferDuration: 30 * time.Second}, 90 * time.Second},
	} {
		w, _ := New(c.opts)
		if got := w.WedgeAfter(); got != c.want {
			t.Errorf("%+v: WedgeAfter %v, want %v", c.opts, got, c.want)
		}
	}
}

// Acks arrive on kvssink's threads while frames are counted and ticks run
// elsewhere; -race checks the locking.
func TestConcurrentInputs(t *testing.T) {
	w, _ := New(Options{AckTimeout: 10 * time.Second})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				now := sec(float64(i))
				switch g {
				case 0:
					w.FramesIn(now, 3)
				case 1:
					w.Ack(now, AckBuffering, uint64(i), 0)
					w.Ack(now, AckPersisted, uint64(i), 0)
				case 2:
					w.Tick(now)
				case 3:
					w.Snapshot(now)
				}
			}
		}(g)
	}
	wg.Wait()
	if s := w.Snapshot(sec(500)); s.FramesIn != 1500 || s.Persisted != 500 {
		t.Errorf("counters %+v", s)
	}
}

func TestErrorNames(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{AckErrorName(4004), "fragment timecode not monotonically increasing"},
		{AckErrorName(5000), "internal service error"},
		{AckErrorName(1234), "ErrorId 1234"},
		{StreamErrorName(0x52000049), "invalid streaming token expiration (the credentials are expiring)"},
		{StreamErrorName(0x52000010), "not authorized (HTTP 403: credentials refused)"},
		{StreamErrorName(0x15000017), "credential provider error (the credential file could not be read or its credentials are unusable)"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
