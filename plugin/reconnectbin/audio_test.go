package reconnectbin_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// offsets records, per output pad, how far each buffer was moved from its
// source instance's running time to the bin's output running time. Within
// one instance every buffer of every stream must move by the same amount:
// that is what keeps audio and video in sync across rebuilds.
type offsets struct {
	mu sync.Mutex
	// lastSource is the running time of the buffer just seen on the
	// instance's pad for each stream; the same thread then pushes it out.
	lastSource map[string]int64
	gen        map[string]int
	byGen      map[int]map[string][]int64 // instance -> pad -> offsets
	instance   int
	outPTS     map[string][]int64
	outEnd     map[string][]int64
	backwards  map[string]int
	starts     map[string]int
}

func newOffsets() *offsets {
	return &offsets{lastSource: map[string]int64{}, gen: map[string]int{}, byGen: map[int]map[string][]int64{},
		outPTS: map[string][]int64{}, outEnd: map[string][]int64{}, backwards: map[string]int{}, starts: map[string]int{}}
}

// watchInstance probes a new source instance's ghost pads ("src", "audio").
func (o *offsets) watchInstance(child *gst.Element) {
	o.mu.Lock()
	o.instance++
	gen := o.instance
	o.mu.Unlock()
	var segMu sync.Mutex
	segs := map[string]*gst.Segment{}
	_, _ = child.Connect("pad-added", func(_ *gst.Element, pad *gst.Pad) {
		name := pad.GetName()
		pad.AddProbe(gst.PadProbeTypeBuffer|gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
			if info.Type()&gst.PadProbeTypeBuffer == 0 {
				if ev := info.GetEvent(); ev != nil && ev.Type() == gst.EventTypeSegment {
					segMu.Lock()
					segs[name] = ev.ParseSegment().Copy()
					segMu.Unlock()
				}
				return gst.PadProbeOK
			}
			segMu.Lock()
			seg := segs[name]
			segMu.Unlock()
			buf := info.GetBuffer()
			if seg == nil || buf.PresentationTimestamp() == gst.ClockTimeNone {
				return gst.PadProbeOK
			}
			o.mu.Lock()
			o.lastSource[name] = seg.ToRunningTimeFull(gst.FormatTime, uint64(buf.PresentationTimestamp()))
			o.gen[name] = gen
			o.mu.Unlock()
			return gst.PadProbeOK
		})
	})
}

// watchOutput probes the sink pad fed by the bin's pad called name.
func (o *offsets) watchOutput(name string, sinkPad *gst.Pad) {
	var seg *gst.Segment
	sinkPad.AddProbe(gst.PadProbeTypeBuffer|gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		if info.Type()&gst.PadProbeTypeBuffer == 0 {
			if ev := info.GetEvent(); ev != nil {
				switch ev.Type() {
				case gst.EventTypeSegment:
					seg = ev.ParseSegment().Copy()
				case gst.EventTypeStreamStart:
					o.mu.Lock()
					o.starts[name]++
					o.mu.Unlock()
				}
			}
			return gst.PadProbeOK
		}
		buf := info.GetBuffer()
		if seg == nil || buf.PresentationTimestamp() == gst.ClockTimeNone {
			return gst.PadProbeOK
		}
		out := seg.ToRunningTimeFull(gst.FormatTime, uint64(buf.PresentationTimestamp()))
		o.mu.Lock()
		defer o.mu.Unlock()
		if n := len(o.outPTS[name]); n > 0 && name == "src" && out <= o.outPTS[name][n-1] {
			o.backwards[name]++
		}
		o.outPTS[name] = append(o.outPTS[name], out)
		end := out
		if d := buf.Duration(); d != gst.ClockTimeNone {
			end += int64(d)
		}
		o.outEnd[name] = append(o.outEnd[name], end)
		src, ok := o.lastSource[name]
		if !ok {
			return gst.PadProbeOK
		}
		g := o.gen[name]
		if o.byGen[g] == nil {
			o.byGen[g] = map[string][]int64{}
		}
		o.byGen[g][name] = append(o.byGen[g][name], out-src)
		return gst.PadProbeOK
	})
}

// A source with video and AAC audio (MPEG-TS over TCP, decoded by decodebin)
// exposes the bin's src and audio pads; across a restart both stay linked,
// continuous, and in sync: every buffer of an instance, audio or video, is
// moved by the same offset.
func TestAudioAndVideoStayInSyncAcrossRebuilds(t *testing.T) {
	media := servers.MediaOptions{Audio: true}
	t.Run("mpegts", func(t *testing.T) {
		srv := servers.NewTSServer(t, servers.TSOptions{Media: media})
		checkAVAcrossRestart(t, fmt.Sprintf("tcpclientsrc host=127.0.0.1 port=%d ! decodebin", srv.Port()), srv.Kill, srv.Restart)
	})
	t.Run("hls", func(t *testing.T) {
		srv := servers.NewHLSServer(t, servers.HLSOptions{Media: media, StartSegments: 3})
		checkAVAcrossRestart(t, "souphttpsrc location="+srv.PlaylistURL()+" ! hlsdemux ! decodebin",
			func() error { srv.StopHTTP(); return nil }, srv.StartHTTP)
	})
}

func checkAVAcrossRestart(t *testing.T, source string, kill, restart func() error) {
	p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb stall-timeout=2000000000
		source="%s"
		! fakesink name=video sync=false  rb.audio ! fakesink name=audio sync=false`, source))
	rb, err := p.GetElementByName("rb")
	if err != nil {
		t.Fatal(err)
	}
	o := newOffsets()
	if _, err := rb.Connect("element-added", func(_ *gst.Element, child *gst.Element) { o.watchInstance(child) }); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"video", "audio"} {
		sink, err := p.GetElementByName(name)
		if err != nil {
			t.Fatal(err)
		}
		pad := "src"
		if name == "audio" {
			pad = "audio"
		}
		o.watchOutput(pad, sink.GetStaticPad("sink"))
	}
	p.Start()
	haveBoth := func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.outPTS["src"]) > 25 && len(o.outPTS["audio"]) > 25
	}
	harness.WaitUntil(t, 30*time.Second, "audio and video at the sinks", haveBoth)
	if err := kill(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(30*time.Second, 1, "a restart", harness.ElementMessage("reconnectbin-restart"))
	if err := restart(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(30*time.Second, 1, "recovery", harness.ElementMessage("reconnectbin-recovered"))
	harness.WaitUntil(t, 30*time.Second, "audio and video from the new instance", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		last := o.byGen[o.instance]
		return len(last["src"]) > 25 && len(last["audio"]) > 25
	})
	_ = p.SetState(gst.StateNull)

	o.mu.Lock()
	defer o.mu.Unlock()
	if o.starts["src"] != 1 || o.starts["audio"] != 1 {
		t.Errorf("stream-start events: src %d, audio %d; want one each for the life of the bin", o.starts["src"], o.starts["audio"])
	}
	if o.backwards["src"] != 0 {
		t.Errorf("video running time went backwards %d times", o.backwards["src"])
	}
	var report []string
	for g := 1; g <= o.instance; g++ {
		byPad := o.byGen[g]
		if len(byPad["src"]) == 0 || len(byPad["audio"]) == 0 {
			continue
		}
		v, a := byPad["src"][0], byPad["audio"][0]
		for _, off := range byPad["src"] {
			if off != v {
				t.Errorf("instance %d: video buffers moved by different offsets (%v and %v)", g, time.Duration(v), time.Duration(off))
				break
			}
		}
		skew := time.Duration(a - v)
		report = append(report, fmt.Sprintf("instance %d: A/V offset %v", g, skew))
		if skew < -100*time.Millisecond || skew > 100*time.Millisecond {
			t.Errorf("instance %d: audio moved %v relative to video (limit 100 ms)", g, skew)
		}
	}
	if len(report) < 2 {
		t.Fatalf("fewer than two instances delivered both audio and video: %v", report)
	}
	t.Log(strings.Join(report, "; "))
}

// With fallback on and raw audio, an outage is filled on both pads: frames on
// src and silence on audio, on one timeline with no hole and nothing going
// backwards, until the source is back.
func TestFallbackFillsAudioWithSilence(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Audio: true}})
	p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb stall-timeout=2000000000 fallback=black
		output-caps="video/x-raw,format=I420,width=160,height=120,framerate=25/1"
		source="tcpclientsrc host=127.0.0.1 port=%d ! decodebin"
		! fakesink name=video sync=false  rb.audio ! fakesink name=audio sync=false`, srv.Port()))
	o := newOffsets()
	for _, name := range []string{"video", "audio"} {
		sink, err := p.GetElementByName(name)
		if err != nil {
			t.Fatal(err)
		}
		pad := "src"
		if name == "audio" {
			pad = "audio"
		}
		o.watchOutput(pad, sink.GetStaticPad("sink"))
	}
	p.Start()
	count := func(pad string) int {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.outPTS[pad])
	}
	harness.WaitUntil(t, 30*time.Second, "audio and video at the sinks", func() bool { return count("src") > 25 && count("audio") > 25 })
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(30*time.Second, 1, "fallback", harness.ElementMessage("reconnectbin-fallback-started"))
	v, a := count("src"), count("audio")
	harness.WaitUntil(t, 30*time.Second, "fill frames and silence", func() bool { return count("src") > v+50 && count("audio") > a+50 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(30*time.Second, 1, "fallback to end", harness.ElementMessage("reconnectbin-fallback-ended"))
	v, a = count("src"), count("audio")
	harness.WaitUntil(t, 30*time.Second, "the live source again", func() bool { return count("src") > v+25 && count("audio") > a+25 })
	_ = p.SetState(gst.StateNull)

	o.mu.Lock()
	defer o.mu.Unlock()
	for _, pad := range []string{"src", "audio"} {
		pts := o.outPTS[pad]
		var backwards int
		var gap int64
		at := 0
		ends := o.outEnd[pad]
		for i := 1; i < len(pts); i++ {
			if pts[i] < pts[i-1] {
				backwards++
			}
			// The hole before buffer i: from the end of the one before.
			if d := pts[i] - ends[i-1]; d > gap {
				gap, at = d, i
			}
		}
		t.Logf("%s: largest step at buffer %d of %d (%v into the output)", pad, at, len(pts), time.Duration(pts[at]-pts[0]))
		if backwards != 0 {
			t.Errorf("%s: running time went backwards %d times", pad, backwards)
		}
		// Buffers back to back; a switch may leave at most about a frame.
		if time.Duration(gap) > 60*time.Millisecond {
			t.Errorf("%s: a %v hole in the output despite fallback", pad, time.Duration(gap))
		}
		t.Logf("%s: %d buffers, largest hole %v", pad, len(pts), time.Duration(gap))
	}
}
