package reconnectbin_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// avPipeline is issue #18's relay with fallback into matroskamux (no
// queues), source given; it returns the pipeline and a count of buffers the
// muxer wrote.
func avPipeline(t *testing.T, source, extra string) (*harness.Pipeline, func() int) {
	p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb stall-timeout=2000000000 fallback=black %s
		output-caps="video/x-raw,format=I420,width=160,height=120,framerate=25/1"
		source="%s"
		! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! h264parse ! mux.
		rb.audio ! audioconvert ! audioresample ! %s ! aacparse ! mux.
		matroskamux name=mux ! fakesink name=out sync=false`, extra, source, servers.AACEncoder(t)))
	out, err := p.GetElementByName("out")
	if err != nil {
		t.Fatal(err)
	}
	d := watchDownstream(t, out.GetStaticPad("sink"))
	return p, func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.buffers
	}
}

// Application EOS ends an audio+video relay within 2 s (the bound)
// in every state: its first start still blocked in a connect, retrying a
// camera that refuses connections, running, and filling an outage. Before,
// the muxer waited for audio that never came and EOS never got through.
func TestAVRelayEndsWithin2sOfEOS(t *testing.T) {
	for _, state := range []string{"never-started", "retrying", "running", "filling"} {
		t.Run(state, func(t *testing.T) {
			port := servers.FreePort(t)
			var srv *servers.TSServer
			switch state {
			case "never-started":
				port = servers.NewBlackHole(t).Port()
			case "running", "filling":
				srv = servers.NewTSServer(t, servers.TSOptions{Port: port, Media: servers.MediaOptions{Audio: true}})
			}
			p, written := avPipeline(t, fmt.Sprintf("tcpclientsrc host=127.0.0.1 port=%d ! decodebin", port), "")
			p.Start()
			harness.WaitUntil(t, 30*time.Second, "the muxer to write", func() bool { return written() > 10 })
			switch state {
			case "running":
				p.WaitFor(30*time.Second, 1, "the source", harness.ElementMessage("reconnectbin-fallback-ended"))
			case "filling":
				if err := srv.Kill(); err != nil {
					t.Fatal(err)
				}
				p.WaitFor(30*time.Second, 1, "fallback", harness.ElementMessage("reconnectbin-restart"))
			}
			n := written()
			harness.WaitUntil(t, 30*time.Second, "the muxer to go on writing", func() bool { return written() > n+10 })
			start := time.Now()
			p.SendEvent(gst.NewEOSEvent())
			p.WaitFor(2*time.Second, 1, "EOS at the end of the pipeline", harness.MessageOfType(gst.MessageEOS))
			t.Logf("EOS through the pipeline %v after it was sent", time.Since(start).Round(time.Millisecond))
		})
	}
}

// output-audio-caps fixes the audio pad's format: the silence before the
// camera is in it, and so is the camera's audio (44.1 kHz mono AAC in the
// stream), converted and resampled.
func TestOutputAudioCapsFixTheAudioFormat(t *testing.T) {
	const want = "audio/x-raw, format=(string)S16LE, layout=(string)interleaved, rate=(int)16000, channels=(int)1"
	port := servers.FreePort(t)
	p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb stall-timeout=2000000000 fallback=black
		output-caps="video/x-raw,format=I420,width=160,height=120,framerate=25/1"
		output-audio-caps="audio/x-raw,format=S16LE,rate=16000,channels=1"
		source="tcpclientsrc host=127.0.0.1 port=%d ! decodebin"
		! fakesink name=video sync=false  rb.audio ! fakesink name=audio sync=false`, port))
	audio, err := p.GetElementByName("audio")
	if err != nil {
		t.Fatal(err)
	}
	pad := audio.GetStaticPad("sink")
	caps := make(chan string, 64)
	pad.AddProbe(gst.PadProbeTypeEventDownstream, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		if ev := info.GetEvent(); ev != nil && ev.Type() == gst.EventTypeCaps {
			select {
			case caps <- ev.ParseCaps().String():
			default:
			}
		}
		return gst.PadProbeOK
	})
	d := watchDownstream(t, pad)
	buffers := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.buffers
	}
	p.Start()
	harness.WaitUntil(t, 30*time.Second, "silence", func() bool { return buffers() > 10 })
	servers.NewTSServer(t, servers.TSOptions{Port: port, Media: servers.MediaOptions{Audio: true}})
	p.WaitFor(30*time.Second, 1, "the camera", harness.ElementMessage("reconnectbin-recovered"))
	p.WaitFor(30*time.Second, 1, "the camera's audio", harness.ElementMessage("reconnectbin-fallback-ended"))
	n := buffers()
	harness.WaitUntil(t, 30*time.Second, "the camera's audio", func() bool { return buffers() > n+25 })
	_ = p.SetState(gst.StateNull)
	close(caps)
	var seen []string
	for c := range caps {
		seen = append(seen, c)
	}
	if len(seen) != 1 || !gst.NewCapsFromString(seen[0]).IsEqual(gst.NewCapsFromString(want)) {
		t.Errorf("caps on the audio pad: %q, want only %q", seen, want)
	}
}

// A camera without a microphone in an audio+video relay: its video runs
// from the start and the audio pad gets silence beside it (from 0.5 s on),
// so the muxer, which waits for both streams, writes; the video is never
// replaced by fallback frames.
func TestSilenceBesideAVideoOnlySource(t *testing.T) {
	p, written := avPipeline(t, "videotestsrc is-live=true ! capsfilter caps=video/x-raw,width=320,height=240,framerate=25/1", "")
	mux, err := p.GetElementByName("mux")
	if err != nil {
		t.Fatal(err)
	}
	var audioPad *gst.Pad
	pads, err := mux.GetSinkPads()
	if err != nil {
		t.Fatal(err)
	}
	for _, pad := range pads {
		if pad.GetName() == "audio_0" {
			audioPad = pad
		}
	}
	if audioPad == nil {
		t.Fatal("matroskamux has no audio_0 pad")
	}
	audio := watchDownstream(t, audioPad)
	p.Start()
	harness.WaitUntil(t, 30*time.Second, "the muxer to write video and AAC silence", func() bool {
		audio.mu.Lock()
		defer audio.mu.Unlock()
		return written() > 50 && audio.buffers > 50
	})
	if n := len(matching(p, harness.ElementMessage("reconnectbin-fallback-started"))); n != 0 {
		t.Errorf("%d fallback episodes: the source's video was replaced", n)
	}
}
