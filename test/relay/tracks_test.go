package relay_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// Issue #16 part 2: cameras that send a track that is neither audio nor
// video (KLV metadata as a data PID in MPEG-TS, or as an RTP stream with
// media=application in RTSP). reconnectbin absorbs it: the relay runs with
// no ERROR and nothing "not-linked", only video leaves, the metadata track
// pausing or stopping is never taken for a stall, and a camera restart
// still recovers.

// klvEvery is a busy metadata track, ten packets a second.
const klvEvery = 100 * time.Millisecond

// framesPastStalls is how many frames (at the servers' 25 fps) a relay must
// take while the metadata is silent: 6 s, three stall-timeouts of the
// tests below.
const framesPastStalls = 150

// checkNothingNotLinked fails the test if the pipeline reported an ERROR or
// any message mentioning not-linked (a data stream left dangling inside the
// source stops its demuxer with it).
func checkNothingNotLinked(t *testing.T, l *harness.Launch) {
	t.Helper()
	if n := l.Count(harness.OfType("error")); n != 0 {
		t.Errorf("%d ERROR messages on the bus", n)
	}
	for _, m := range l.Messages() {
		if strings.Contains(strings.ToLower(m.Text), "not-linked") || strings.Contains(strings.ToLower(m.Text), "not linked") {
			t.Errorf("%s message from %s: %s", m.Type, m.Source, m.Text)
		}
	}
	if s := l.Stderr(); strings.Contains(s, "not-linked") {
		t.Errorf("gst-launch-1.0 printed not-linked: %s", s)
	}
}

// noRestarts fails the test if reconnectbin rebuilt its source.
func noRestarts(t *testing.T, l *harness.Launch, why string) {
	t.Helper()
	for _, m := range l.Messages() {
		if harness.Element("reconnectbin-restart")(m) {
			t.Errorf("reconnectbin restarted %s: %s", why, m.Text)
		}
	}
}

// The decoded relay of an MPEG-TS camera with a KLV data PID, through each
// way of writing the source: explicit tsdemux, decodebin, and uri=.
func TestTSCameraWithKLVDecoded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		source func(port int) string
	}{
		{"tsdemux", tsSource},
		{"decodebin", func(port int) string {
			return fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! decodebin", port)
		}},
		{"uri", func(port int) string { return fmt.Sprintf("uri=tcp://127.0.0.1:%d", port) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{KLVEvery: klvEvery}})
			r := startRelay(t, tc.source(srv.Port()), "stall-timeout="+sec(2*time.Second))
			r.waitStreaming(t)
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			r.WaitFor(30*time.Second, 1, "recovery after the camera restarted", recovered)
			r.waitGrowth(t, 20*time.Second)
			packets := r.finish(t)
			checkNothingNotLinked(t, r.Launch)
			t.Logf("%d video packets recorded", len(packets))
		})
	}
}

// kvsTracks is what the stand-in accepted so far, by pad.
func (r *kvsRelay) tracks() map[string]uint64 {
	rep, err := kvssinkstandin.ReadReport(r.report)
	if err != nil {
		return nil
	}
	return rep.FramesAccepted
}

// waitVideo waits until kvssink accepted n more video frames.
func (r *kvsRelay) waitVideo(t *testing.T, n uint64, timeout time.Duration, what string) {
	t.Helper()
	start := r.tracks()["video_0"]
	harness.WaitUntil(t, timeout, what, func() bool { return r.tracks()["video_0"] >= start+n || r.Exited() })
	if r.Exited() {
		t.Fatalf("gst-launch-1.0 quit by itself (exit %d) while waiting for %s", r.ExitCode(), what)
	}
}

// checkVideoOnly: kvssink got one H.264 track and nothing else.
func checkVideoOnly(t *testing.T, rep *kvssinkstandin.Report) {
	t.Helper()
	if len(rep.MediaTypes) != 1 || rep.MediaTypes["video_0"] != "video/x-h264" {
		t.Errorf("kvssink's tracks %v: want video_0 H.264 only", rep.MediaTypes)
	}
	for pad, n := range rep.FramesAccepted {
		if pad != "video_0" && n != 0 {
			t.Errorf("kvssink accepted %d frames on %s", n, pad)
		}
	}
}

// passthroughWithMetadata relays source (H.264 passed through) into the
// kvssink stand-in and checks the whole story: video flows with the busy
// metadata track, the metadata going quiet or stopping costs no rebuild,
// and a camera restart recovers.
func passthroughWithMetadata(t *testing.T, source string, restart func() error) {
	t.Helper()
	r := startKVSRelay(t, []string{"stall-timeout=" + sec(2*time.Second), source}, "")
	r.waitVideo(t, 50, 60*time.Second, "kvssink to accept the camera's video")
	// Three stall-timeouts of video with the metadata silent (the server's
	// track has ended or sends every 10 s): a stall would have rebuilt.
	r.waitVideo(t, framesPastStalls, 60*time.Second, "kvssink to accept 6 s of video past the metadata's silence")
	noRestarts(t, r.Launch, "while video flowed and only the metadata track was silent")
	if err := restart(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(30*time.Second, 1, "recovery after the camera restarted", recovered)
	r.waitVideo(t, 50, 30*time.Second, "kvssink to accept video after the camera restarted")
	rep := r.finish(t)
	checkVideoOnly(t, rep)
	checkNothingNotLinked(t, r.Launch)
	t.Logf("kvssink accepted %v (%v)", rep.FramesAccepted, rep.MediaTypes)
}

// MPEG-TS passthrough (tsdemux ! h264parse) with a KLV data PID into
// kvssink: a busy metadata track, and one that sends 5 packets and ends.
// (A sparse one, a packet every 10 s, cannot be made here: the test
// server's mpegtsmux then holds the video back until each KLV packet, a
// stall the relay rightly rebuilds. The RTSP test below has it.)
func TestTSCameraWithKLVPassthroughIntoKVSSink(t *testing.T) {
	for _, tc := range []struct {
		name  string
		media servers.MediaOptions
	}{
		{"busy", servers.MediaOptions{KLVEvery: klvEvery}},
		{"ends", servers.MediaOptions{KLVEvery: klvEvery, KLVPackets: 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := servers.NewTSServer(t, servers.TSOptions{Media: tc.media})
			passthroughWithMetadata(t, fmt.Sprintf("source=tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse", srv.Port()), srv.Restart)
		})
	}
}

// An RTSP camera with a KLV stream (application/x-rtp, media=application,
// SMPTE336M) beside its H.264: passthrough into kvssink, the metadata busy,
// ending, or sparse; and one announcing its metadata stream as ONVIF's
// (VND.ONVIF.METADATA).
func TestRTSPCameraWithKLVPassthroughIntoKVSSink(t *testing.T) {
	for _, tc := range []struct {
		name  string
		media servers.MediaOptions
	}{
		{"busy", servers.MediaOptions{KLVEvery: klvEvery}},
		{"ends", servers.MediaOptions{KLVEvery: klvEvery, KLVPackets: 5}},
		{"sparse", servers.MediaOptions{KLVEvery: 10 * time.Second}},
		{"onvif", servers.MediaOptions{KLVEvery: klvEvery, KLVAsONVIF: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cam := servers.NewRTSPServer(t, servers.RTSPOptions{Media: tc.media})
			passthroughWithMetadata(t, "source=rtspsrc location="+cam.URL()+" protocols=tcp latency=200 ! rtph264depay ! h264parse", cam.Restart)
		})
	}
}

// The same RTSP camera (H.264, G.711 audio and KLV) decoded through uri=:
// video leaves src, the KLV stream is absorbed, nothing errors.
func TestRTSPCameraWithKLVThroughURI(t *testing.T) {
	cam := servers.NewRTSPServer(t, servers.RTSPOptions{Media: servers.MediaOptions{Audio: true, AudioCodec: "pcma", KLVEvery: klvEvery}})
	r := startRelay(t, "uri="+cam.URL(), "stall-timeout="+sec(2*time.Second))
	r.waitStreaming(t)
	if err := cam.Restart(); err != nil {
		t.Fatal(err)
	}
	r.WaitFor(30*time.Second, 1, "recovery after the camera restarted", recovered)
	r.waitGrowth(t, 20*time.Second)
	r.finish(t)
	checkNothingNotLinked(t, r.Launch)
}
