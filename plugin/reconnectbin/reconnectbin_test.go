package reconnectbin_test

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-gst/go-glib/glib"
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/test/gsttest"
	"github.com/kvsrelay/kvsrelay/test/harness"
)

func TestMain(m *testing.M) {
	harness.InitGStreamer(registerAsyncWatchBin)
	os.Exit(m.Run())
}

// asyncWatchBin is a test-only bin that records which of its children
// posted ASYNC_START: what a pipeline holding reconnectbin would wait for.
type asyncWatchBin struct{}

var asyncStartsFrom sync.Map // child name -> *atomic.Int64

func registerAsyncWatchBin(plugin *gst.Plugin) bool {
	return gst.RegisterElement(plugin, "asyncwatchbin", gst.RankNone, &asyncWatchBin{}, gst.ExtendsBin)
}

func (w *asyncWatchBin) New() glib.GoObjectSubclass { return &asyncWatchBin{} }

func (w *asyncWatchBin) ClassInit(klass *glib.ObjectClass) {
	gst.ToElementClass(klass).SetMetadata("Async watch bin", "Generic/Bin", "Test bin recording ASYNC_START from its children", "kvsrelay tests")
}

func (w *asyncWatchBin) HandleMessage(bin *gst.Bin, msg *gst.Message) {
	if msg.Type() == gst.MessageAsyncStart {
		n, _ := asyncStartsFrom.LoadOrStore(msg.Source(), new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
	}
	bin.ParentHandleMessage(msg)
}

// downstream records what a sink pad right after reconnectbin saw.
type downstream struct {
	mu           sync.Mutex
	streamStarts int
	eos          int
	buffers      int
	discont      int
	backwards    int
	lastRT       int64
	segment      *gst.Segment
	// samePTS: several buffers may share a timestamp (RTP packets of one
	// frame); only a step back counts as backwards then.
	samePTS bool
}

func watchDownstream(t *testing.T, pad *gst.Pad) *downstream {
	d := &downstream{lastRT: -1}
	seeBuffer := func(buf *gst.Buffer, strict bool) {
		d.buffers++
		if buf.HasFlags(gst.BufferFlagDiscont) {
			d.discont++
		}
		if d.segment != nil && buf.PresentationTimestamp() != gst.ClockTimeNone {
			rt := d.segment.ToRunningTimeFull(gst.FormatTime, uint64(buf.PresentationTimestamp()))
			if rt < d.lastRT || (strict && rt == d.lastRT) {
				d.backwards++
			}
			d.lastRT = rt
		}
	}
	pad.AddProbe(gst.PadProbeTypeBuffer|gst.PadProbeTypeBufferList|gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		d.mu.Lock()
		defer d.mu.Unlock()
		if info.Type()&gst.PadProbeTypeBuffer != 0 {
			seeBuffer(info.GetBuffer(), !d.samePTS)
			return gst.PadProbeOK
		}
		if info.Type()&gst.PadProbeTypeBufferList != 0 {
			list := info.GetBufferList()
			for i := uint(0); i < list.Length(); i++ {
				seeBuffer(list.GetBufferAt(i), !d.samePTS)
			}
			return gst.PadProbeOK
		}
		ev := info.GetEvent()
		switch ev.Type() {
		case gst.EventTypeStreamStart:
			d.streamStarts++
		case gst.EventTypeEOS:
			d.eos++
		case gst.EventTypeSegment:
			d.segment = ev.ParseSegment()
		}
		return gst.PadProbeOK
	})
	return d
}

// A source that ends every 10 frames is rebuilt again and again; downstream
// sees one stream: one stream-start, no EOS, no DISCONT, running time always
// moving forward.
func TestDownstreamSeesOneContinuousStream(t *testing.T) {
	p := harness.NewPipeline(t, `reconnectbin name=rb retry-delay=0 max-retry-delay=0
		source="videotestsrc is-live=true num-buffers=10"
		! fakesink name=sink sync=true`)
	sink, err := p.GetElementByName("sink")
	if err != nil {
		t.Fatal(err)
	}
	d := watchDownstream(t, sink.GetStaticPad("sink"))
	p.Start()
	p.WaitFor(30*time.Second, 5, "five recoveries", harness.ElementMessage("reconnectbin-recovered"))
	_ = p.SetState(gst.StateNull)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.buffers < 40 {
		t.Fatalf("only %d buffers downstream over five rebuilds", d.buffers)
	}
	if d.streamStarts != 1 {
		t.Errorf("downstream saw %d stream-start events, want 1 for the life of the bin", d.streamStarts)
	}
	if d.eos != 0 {
		t.Errorf("downstream saw %d EOS events from rebuilt sources", d.eos)
	}
	if d.discont != 0 {
		t.Errorf("%d buffers left the bin flagged DISCONT (kvssink drops DISCONT-only keyframes)", d.discont)
	}
	if d.backwards != 0 {
		t.Errorf("running time went backwards %d times downstream", d.backwards)
	}
	rb, _ := p.GetElementByName("rb")
	stats := statsOf(t, rb)
	if restarts, _ := strconv.ParseUint(stats["restarts"], 10, 64); restarts < 5 {
		t.Errorf("stats restarts=%s after five recoveries", stats["restarts"])
	}
	if stats["restarts-eos"] == "0" {
		t.Errorf("stats count no EOS restarts: %v", stats)
	}
}

// RTP payloaders push buffer lists. A non-live source starts its timestamps
// at 0 in every instance, so unless every buffer of a list is placed on the
// bin's timeline, each rebuild sends timestamps backwards downstream.
func TestBufferListsFollowTheOutputTimeline(t *testing.T) {
	p := harness.NewPipeline(t, `reconnectbin name=rb retry-delay=0 max-retry-delay=0 on-caps-change=pass
		source="videotestsrc num-buffers=15 ! video/x-raw,width=64,height=48,framerate=30/1 ! x264enc key-int-max=5 speed-preset=ultrafast ! rtph264pay mtu=80 ssrc=1 timestamp-offset=0 seqnum-offset=0"
		! fakesink name=sink sync=false`)
	sink, err := p.GetElementByName("sink")
	if err != nil {
		t.Fatal(err)
	}
	d := watchDownstream(t, sink.GetStaticPad("sink"))
	d.samePTS = true
	p.Start()
	p.WaitFor(30*time.Second, 3, "three recoveries", harness.ElementMessage("reconnectbin-recovered"))
	_ = p.SetState(gst.StateNull)

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.buffers < 45 {
		t.Fatalf("only %d RTP packets downstream over three rebuilds", d.buffers)
	}
	if d.backwards != 0 {
		t.Errorf("running time went backwards %d times downstream across rebuilds", d.backwards)
	}
}

// statsOf reads the stats property into strings.
func statsOf(t *testing.T, el *gst.Element) map[string]string {
	t.Helper()
	st := gsttest.StructureProperty(el, "stats")
	if st == nil {
		t.Fatal("stats is NULL, want a GstStructure")
	}
	return st
}

func toString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case uint64:
		return strconv.FormatUint(x, 10)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case bool:
		return strconv.FormatBool(x)
	default:
		return ""
	}
}

// Removed source instances are freed, and one process's RSS, threads and
// file descriptors stay flat over many rebuilds: for a source with a static
// src pad, and for one whose pad comes later (decodebin, demuxers), which
// needs a pad-added handler per instance.
func TestRebuildsDoNotLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("many rebuilds")
	}
	for _, source := range []string{"videotestsrc num-buffers=2", "videotestsrc num-buffers=2 ! decodebin"} {
		t.Run(source, func(t *testing.T) { testRebuildsDoNotLeak(t, source) })
	}
}

func testRebuildsDoNotLeak(t *testing.T, source string) {
	p := harness.NewPipeline(t, `reconnectbin name=rb retry-delay=0 max-retry-delay=0
		source="`+source+`" ! fakesink sync=false`)
	rb, err := p.GetElementByName("rb")
	if err != nil {
		t.Fatal(err)
	}
	var added, freed atomic.Int64
	if _, err := rb.Connect("element-added", func(_ *gst.Element, child *gst.Element) {
		added.Add(1)
		gstshim.OnFinalize(child.Object, func() { freed.Add(1) })
	}); err != nil {
		t.Fatal(err)
	}
	p.Start()
	p.WaitFor(60*time.Second, 30, "30 rebuilds to warm up", harness.ElementMessage("reconnectbin-recovered"))
	before := sampleProcess(t)
	p.WaitFor(120*time.Second, 230, "200 more rebuilds", harness.ElementMessage("reconnectbin-recovered"))
	after := sampleProcess(t)
	// A stopped instance is freed at the next collection, while rebuilds go
	// on: nothing keeps it (its sockets, its threads' stacks) for a while.
	// Alive: the running instance, the one being released, and the few
	// released since the last collection (tens of rebuilds a second here;
	// holding each for seconds would leave hundreds).
	harness.WaitUntil(t, 30*time.Second, "removed source instances to be freed while rebuilds go on", func() bool {
		glib.IdleAdd(func() bool { return false }) // keep the main context turning
		runtimeGC()
		return added.Load()-freed.Load() <= 10
	})
	_ = p.SetState(gst.StateNull)

	// Every instance is freed, the last too (a stale slot of the releasing
	// list once kept it until the next release), and the stats count what
	// the test counts.
	var left int64
	allocated := ""
	deadline := time.Now().Add(30 * time.Second)
	for {
		glib.IdleAdd(func() bool { return false }) // keep the main context turning
		runtimeGC()
		left = added.Load() - freed.Load()
		allocated = statsOf(t, rb)["instances-allocated"]
		if left == 0 && allocated == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after NULL, %d of %d removed source instances are not freed; stats instances-allocated %q", left, added.Load(), allocated)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	t.Logf("instances added %d, freed %d; before %+v after %+v", added.Load(), freed.Load(), before, after)
	if after.threads > before.threads+4 {
		t.Errorf("threads grew from %d to %d over 200 rebuilds", before.threads, after.threads)
	}
	if after.fds > before.fds+4 {
		t.Errorf("file descriptors grew from %d to %d over 200 rebuilds", before.fds, after.fds)
	}
	if after.rssKB > before.rssKB+20*1024 {
		t.Errorf("RSS grew from %d kB to %d kB over 200 rebuilds", before.rssKB, after.rssKB)
	}
}

type processSample struct{ rssKB, threads, fds int }

func sampleProcess(t *testing.T) processSample {
	t.Helper()
	runtimeGC()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var s processSample
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.rssKB, _ = strconv.Atoi(f[1])
		case "Threads:":
			s.threads, _ = strconv.Atoi(f[1])
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	s.fds = len(fds)
	return s
}

func runtimeGC() {
	for i := 0; i < 3; i++ {
		runtime.GC()
	}
}

// A source instance's own preroll (here the fakesink on a tee branch inside
// the description) must not become the pipeline's: GstBin forwards a
// child's ASYNC_START upward and, when the ASYNC_DONE comes while the bin
// has no state change pending, drops it, so the pipeline would wait for
// reconnectbin forever and its sink would never leave preroll (seen now and
// then at start under load). reconnectbin, a live source, must never post
// ASYNC_START to its parent at all.
func TestSourcePrerollNeverHoldsThePipeline(t *testing.T) {
	p := harness.NewPipeline(t, `asyncwatchbin.( reconnectbin name=rbpreroll retry-delay=0 max-retry-delay=0
			source="videotestsrc is-live=true num-buffers=10 ! tee name=t t. ! queue ! fakesink async=true t. ! queue" )
		! fakesink name=sink sync=true`)
	p.Start()
	p.WaitFor(30*time.Second, 3, "three rebuilds", harness.ElementMessage("reconnectbin-recovered"))
	ret, cur := p.GetState(gst.StatePlaying, gst.ClockTime(10*time.Second))
	_ = p.SetState(gst.StateNull)
	if n, ok := asyncStartsFrom.Load("rbpreroll"); ok && n.(*atomic.Int64).Load() > 0 {
		t.Errorf("reconnectbin posted ASYNC_START to its parent %d times: a source instance's preroll leaked out", n.(*atomic.Int64).Load())
	}
	if ret != gst.StateChangeSuccess || cur != gst.StatePlaying {
		t.Errorf("the pipeline is %s (%s) after three rebuilds, want PLAYING", cur, ret)
	}
}
