package reconnectbin_test

import (
	"sync"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/test/harness"
)

// A live source rebuilt with output-caps (a transcoded RTSP camera, a
// capture card) stamps its first frame with the pipeline's running time,
// seconds in. The output-caps normaliser's videorate used to fill from its
// segment's start up to that frame: a burst of duplicates as long as the
// pipeline had run, which put the output that far ahead of the clock and
// grew with every rebuild. Frames never leave ahead of the clock.
func TestRebuiltLiveSourceNeverRunsAheadOfTheClock(t *testing.T) {
	p := harness.NewPipeline(t, `reconnectbin name=rb retry-delay=100000000
		source="videotestsrc is-live=true num-buffers=25"
		output-caps=video/x-raw,format=I420,width=64,height=48,framerate=25/1
		! fakesink name=out sync=false`)
	out, err := p.GetElementByName("out")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var frames int
	var worst time.Duration // the furthest a frame left ahead of the clock
	out.GetStaticPad("sink").AddProbe(gst.PadProbeTypeBuffer, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		buf := info.GetBuffer()
		now := gstshim.RunningTimeNow(out)
		if buf == nil || buf.PresentationTimestamp() == gst.ClockTimeNone || now == gst.ClockTimeNone {
			return gst.PadProbeOK
		}
		mu.Lock()
		frames++
		worst = max(worst, time.Duration(int64(buf.PresentationTimestamp())-int64(now)))
		mu.Unlock()
		return gst.PadProbeOK
	})
	p.Start()
	// num-buffers=25: the source ends every second and is rebuilt.
	p.WaitFor(30*time.Second, 3, "three rebuilds of the live source", harness.ElementMessage("reconnectbin-recovered"))
	harness.WaitUntil(t, 10*time.Second, "frames after the third rebuild", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return frames > 90
	})
	mu.Lock()
	defer mu.Unlock()
	if worst > 500*time.Millisecond {
		t.Errorf("a frame left %v ahead of the clock (%d frames)", worst, frames)
	}
}
