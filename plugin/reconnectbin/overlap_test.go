package reconnectbin_test

import (
	"sync"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"
	"github.com/go-gst/go-gst/gst/app"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// A camera's G.711 audio whose RTP timestamps jitter, as rtpjitterbuffer
// stamps them on a loaded machine: one 128 ms packet stamped 31.625 ms
// before the previous one ended, and no durations (RTP depayloaders give
// none). Relayed into the recipes' AAC chain, the overlap made
// audioresample resync and the AAC encoder's output step back 27 ms, which
// kvssink refuses (and the next video frame with it, its DTS filled in from
// the audio's). The relay cuts the overlapping samples: its audio never
// overlaps, and the AAC never steps back.
func TestJitteringAudioNeverOverlapsDownstream(t *testing.T) {
	servers.RequireElements(t, "mulawdec", "avenc_aac", "aacparse")
	p := harness.NewPipeline(t, `reconnectbin name=rb stall-timeout=10000000000
		source="appsrc name=camaudio is-live=true format=time caps=audio/x-mulaw,rate=8000,channels=1
			videotestsrc is-live=true ! capsfilter caps=video/x-raw,width=64,height=48,framerate=25/1"
		! fakesink sync=false
		rb.audio ! queue name=relayed ! mulawdec ! audioconvert ! audioresample ! capsfilter caps=audio/x-raw,rate=48000,channels=1
		! avenc_aac ! aacparse ! fakesink name=aac sync=false`)
	type span struct{ pts, end int64 }
	var mu sync.Mutex
	var relayed, aac []span
	record := func(into *[]span) func(*gst.Pad, *gst.PadProbeInfo) gst.PadProbeReturn {
		return func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
			if buf := info.GetBuffer(); buf != nil && buf.PresentationTimestamp() != gst.ClockTimeNone {
				s := span{pts: int64(buf.PresentationTimestamp()), end: int64(buf.PresentationTimestamp())}
				if d := buf.Duration(); d != gst.ClockTimeNone {
					s.end += int64(d)
				} else {
					s.end += int64(buf.GetSize()) * int64(time.Second) / 8000 // mu-law, 8 kHz mono
				}
				mu.Lock()
				*into = append(*into, s)
				mu.Unlock()
			}
			return gst.PadProbeOK
		}
	}
	for name, into := range map[string]*[]span{"relayed": &relayed, "aac": &aac} {
		el, err := p.GetElementByName(name)
		if err != nil {
			t.Fatal(err)
		}
		el.GetStaticPad("sink").AddProbe(gst.PadProbeTypeBuffer, record(into))
	}
	p.Start()
	var src *app.Source
	harness.WaitUntil(t, 20*time.Second, "the camera's audio source running inside reconnectbin", func() bool {
		rb, err := p.GetElementByName("rb")
		if err != nil {
			return false
		}
		el, err := gst.ToGstBin(rb).GetElementByName("camaudio")
		if err != nil || el == nil {
			return false
		}
		src = app.SrcFromElement(el)
		return true
	})
	const packets, packet = 60, int64(128 * time.Millisecond)
	ts := int64(0)
	for i := range packets {
		if i == 30 {
			ts -= 31_625_000 // stamped before the previous packet ended
		}
		buf := gst.NewBufferFromBytes(make([]byte, 1024)) // 1024 mu-law samples: 128 ms
		buf.SetPresentationTimestamp(gst.ClockTime(ts))
		if ret := src.PushBuffer(buf); ret != gst.FlowOK {
			t.Fatalf("pushing packet %d: %v", i, ret)
		}
		ts += packet
	}
	count := func(s *[]span) int {
		mu.Lock()
		defer mu.Unlock()
		return len(*s)
	}
	harness.WaitUntil(t, 30*time.Second, "the camera's audio through the relay and the AAC encoder", func() bool {
		return count(&relayed) >= packets && count(&aac) >= 300
	})
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(relayed); i++ {
		if overlap := relayed[i-1].end - relayed[i].pts; overlap > int64(time.Second)/8000/2 {
			t.Errorf("relayed audio buffer %d starts %v before the previous one ended", i, time.Duration(overlap))
		}
	}
	for i := 1; i < len(aac); i++ {
		if aac[i].pts < aac[i-1].pts {
			t.Errorf("AAC frame %d at %v steps back from %v: kvssink refuses it", i, time.Duration(aac[i].pts), time.Duration(aac[i-1].pts))
		}
	}
}
