package reconnectbin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// A description with an explicit branch per stream has several unlinked src
// pads; each goes where its caps say, whatever order the branches are
// written or negotiated in: video to src, audio to audio. Decoded branches
// (with output-caps normalising the video), passthrough branches with
// parsers, and branches without parsers whose caps are known only once
// negotiated (a queue behind a demuxer pad still to come).
func TestExplicitBranchesGoWhereTheirCapsSay(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Audio: true}})
	src := fmt.Sprintf("tcpclientsrc host=127.0.0.1 port=%d ! tsdemux name=d", srv.Port())
	const outputCaps = `output-caps="video/x-raw,format=I420,width=320,height=240,framerate=25/1"`
	for _, tc := range []struct {
		name, branches, props, video, audio string
	}{
		{"decoded", "d. ! queue ! h264parse ! avdec_h264  d. ! queue ! aacparse ! avdec_aac", outputCaps, "video/x-raw", "audio/x-raw"},
		{"decoded audio first", "d. ! queue ! aacparse ! avdec_aac  d. ! queue ! h264parse ! avdec_h264", outputCaps, "video/x-raw", "audio/x-raw"},
		{"passthrough", "d. ! queue ! aacparse  d. ! queue ! h264parse", "", "video/x-h264", "audio/mpeg"},
		{"negotiated only", "d. ! queue  d. ! queue", "", "video/x-h264", "audio/mpeg"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb stall-timeout=5000000000 %s
				source="%s %s"
				! fakesink name=video sync=false  rb.audio ! fakesink name=audio sync=false`, tc.props, src, tc.branches))
			pads := map[string]*gst.Pad{}
			counts := map[string]*downstream{}
			for _, name := range []string{"video", "audio"} {
				sink, err := p.GetElementByName(name)
				if err != nil {
					t.Fatal(err)
				}
				pads[name] = sink.GetStaticPad("sink")
				counts[name] = watchDownstream(t, pads[name])
			}
			p.Start()
			buffers := func(name string) int {
				d := counts[name]
				d.mu.Lock()
				defer d.mu.Unlock()
				return d.buffers
			}
			harness.WaitUntil(t, 30*time.Second, "video and audio at their sinks", func() bool {
				return buffers("video") > 25 && buffers("audio") > 25
			})
			for name, want := range map[string]string{"video": tc.video, "audio": tc.audio} {
				caps := pads[name].GetCurrentCaps()
				if caps == nil || caps.GetStructureAt(0).Name() != want {
					t.Errorf("the %s sink got caps %v, want %s", name, caps, want)
				}
			}
			if n := len(matching(p, harness.ElementMessage("reconnectbin-restart"))); n != 0 {
				t.Errorf("%d restarts: the source did not start cleanly", n)
			}
		})
	}
}

// Streams that are neither video nor audio, and a second stream of a kind
// already taken, are absorbed inside: the source runs without restarts and
// each output pad carries its one stream.
func TestExtraStreamsAreAbsorbed(t *testing.T) {
	p := harness.NewPipeline(t, `reconnectbin name=rb stall-timeout=5000000000
		source="audiotestsrc is-live=true ! capsfilter caps=audio/x-raw,rate=8000,channels=1
			videotestsrc is-live=true ! capsfilter caps=video/x-raw,width=64,height=48,framerate=25/1
			audiotestsrc is-live=true wave=silence ! capsfilter caps=audio/x-raw,rate=16000,channels=2
			videotestsrc is-live=true ! capsfilter caps=video/x-raw,width=32,height=24,framerate=25/1 ! timeoverlay
			appsrc is-live=true caps=text/x-raw,format=utf8"
		! fakesink name=video sync=false  rb.audio ! fakesink name=audio sync=false`)
	video, _ := p.GetElementByName("video")
	audio, _ := p.GetElementByName("audio")
	dv, da := watchDownstream(t, video.GetStaticPad("sink")), watchDownstream(t, audio.GetStaticPad("sink"))
	p.Start()
	harness.WaitUntil(t, 30*time.Second, "video and audio at their sinks", func() bool {
		dv.mu.Lock()
		v := dv.buffers
		dv.mu.Unlock()
		da.mu.Lock()
		defer da.mu.Unlock()
		return v > 25 && da.buffers > 25
	})
	if caps := video.GetStaticPad("sink").GetCurrentCaps(); caps == nil || !strings.HasPrefix(caps.String(), "video/x-raw") {
		t.Errorf("video sink caps %v", caps)
	}
	if caps := audio.GetStaticPad("sink").GetCurrentCaps(); caps == nil || !strings.HasPrefix(caps.String(), "audio/x-raw") {
		t.Errorf("audio sink caps %v", caps)
	}
	if n := len(matching(p, harness.ElementMessage("reconnectbin-restart"))); n != 0 {
		t.Errorf("%d restarts: an extra stream was not absorbed", n)
	}
}

func matching(p *harness.Pipeline, match func(*gst.Message) bool) []*gst.Message {
	var out []*gst.Message
	for _, m := range p.Messages() {
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}
