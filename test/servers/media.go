package servers

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// GstLaunch is the gst-launch-1.0 executable used for all producers.
const GstLaunch = "gst-launch-1.0"

// MediaOptions shapes the test media every producer emits: live
// videotestsrc → x264enc (zerolatency, ultrafast, short GOP), optionally with
// a live AAC tone. Zero values mean the defaults below.
type MediaOptions struct {
	Width     int // default 320
	Height    int // default 240
	Framerate int // frames per second, default 25
	// KeyIntMax is the GOP length in frames, default 15 (0.6 s at 25 fps),
	// so clients and segmenters find a keyframe quickly.
	KeyIntMax int
	// BitrateKbps is x264enc's bitrate, default 400.
	BitrateKbps int
	// Pattern is videotestsrc's pattern, default "ball" (moving, so frames
	// differ and frozen video is detectable).
	Pattern string
	// Audio adds a live AAC tone: muxed into MPEG-TS (TCP, SRT), into the
	// HLS segments, or as RTSP payload pay1 (rtpmp4gpay).
	Audio bool
	// VideoFrames, when > 0, ends the video after that many frames while
	// the audio goes on: a camera whose video dies and whose audio still
	// flows. 0 = video for as long as the producer runs.
	VideoFrames int
	// AudioBuffers, when > 0, ends the audio after that many buffers of
	// audiotestsrc (1024 samples, 23 ms at 44.1 kHz) while the video goes
	// on: a camera whose audio track dies. 0 = audio for as long as the
	// producer runs.
	AudioBuffers int
	// AudioCodec picks the tone's codec where a producer offers a choice:
	// "" or "aac", or (RTSP only) "pcma" / "pcmu", G.711 at 8 kHz mono as
	// most IP cameras send it (rtppcmapay / rtppcmupay, static payload
	// types 8 and 0). Needs Audio.
	AudioCodec string
	// KLVEvery adds a KLV metadata track (meta/x-klv, as drone and
	// surveillance encoders send): one packet this often, as a data PID in
	// MPEG-TS or as RTSP payload (rtpklvpay, media=application). Zero: none.
	// The packets are live (timestamped on the clock). In MPEG-TS their
	// bytes are zeros (mpegtsmux and tsdemux do not look inside); RTSP
	// sends well-formed KLV, which rtpklvpay insists on. MPEG-TS cannot
	// have a sparse track (seconds apart): mpegtsmux would hold the video
	// back until each packet.
	KLVEvery time.Duration
	// KLVPackets ends the KLV track after that many packets while video
	// goes on (a metadata track that stops). Zero: endless.
	KLVPackets int
	// KLVAsONVIF (RTSP) announces the metadata stream as an ONVIF camera's
	// (application/x-rtp, media=application, encoding-name
	// VND.ONVIF.METADATA) in the SDP, which is all a client sees before it
	// depayloads; the packets still carry KLV, not ONVIF's XML.
	KLVAsONVIF bool
}

func (o MediaOptions) withDefaults() MediaOptions {
	if o.Width <= 0 {
		o.Width = 320
	}
	if o.Height <= 0 {
		o.Height = 240
	}
	if o.Framerate <= 0 {
		o.Framerate = 25
	}
	if o.KeyIntMax <= 0 {
		o.KeyIntMax = 15
	}
	if o.BitrateKbps <= 0 {
		o.BitrateKbps = 400
	}
	if o.Pattern == "" {
		o.Pattern = "ball"
	}
	return o
}

// videoH264 is a gst-launch fragment producing byte-stream H.264 with SPS/PPS
// before every IDR, so a client joining mid-stream can decode from the next
// keyframe.
func (o MediaOptions) videoH264() string {
	src := "videotestsrc is-live=true"
	if o.VideoFrames > 0 {
		src += fmt.Sprintf(" num-buffers=%d", o.VideoFrames)
	}
	return fmt.Sprintf(src+" pattern=%s ! video/x-raw,width=%d,height=%d,framerate=%d/1 ! "+
		"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=%d bitrate=%d ! "+
		"video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1",
		o.Pattern, o.Width, o.Height, o.Framerate, o.KeyIntMax, o.BitrateKbps)
}

// klvBytesPerSecond paces the KLV track: fakesrc timestamps a buffer of N
// bytes as lasting N / datarate seconds, so a packet of KLVEvery in ms bytes
// comes once per KLVEvery.
const klvBytesPerSecond = 1000

// metadataKLV is a gst-launch fragment producing live KLV packets, or "".
func (o MediaOptions) metadataKLV() string {
	if o.KLVEvery <= 0 {
		return ""
	}
	size := max(int(o.KLVEvery/time.Millisecond), 1)
	count := -1
	if o.KLVPackets > 0 {
		count = o.KLVPackets
	}
	return fmt.Sprintf("fakesrc is-live=true sync=true format=time sizetype=fixed sizemax=%d filltype=zero datarate=%d num-buffers=%d ! "+
		"meta/x-klv,parsed=true", size, klvBytesPerSecond, count)
}

// audioG711 is a gst-launch fragment producing 8 kHz mono A-law ("pcma") or
// mu-law ("pcmu") from a live tone.
func audioG711(law string) string {
	enc := map[string]string{"pcma": "alawenc", "pcmu": "mulawenc"}[law]
	return "audiotestsrc is-live=true wave=sine freq=440 ! audio/x-raw,rate=8000,channels=1 ! " + enc
}

// audioAAC is a gst-launch fragment producing parsed AAC from a live tone.
func (o MediaOptions) audioAAC(encoder string) string {
	src := "audiotestsrc is-live=true"
	if o.AudioBuffers > 0 {
		src += fmt.Sprintf(" num-buffers=%d", o.AudioBuffers)
	}
	return src + " wave=sine freq=440 ! audio/x-raw,rate=44100,channels=1 ! " +
		"audioconvert ! audioresample ! " + encoder + " ! aacparse"
}

// pipelineArgs splits a gst-launch description into argv form. The
// descriptions built here never need shell quoting except where a single
// token contains spaces, which callers avoid.
func pipelineArgs(description string) []string {
	return append([]string{"-e"}, strings.Fields(description)...)
}

var (
	aacOnce    sync.Once
	aacEncoder string
	aacErr     error
)

// AACEncoder returns the name of an installed AAC encoder element (voaacenc
// or avenc_aac), failing the test if there is none.
func AACEncoder(tb testing.TB) string {
	tb.Helper()
	aacOnce.Do(func() {
		for _, name := range []string{"voaacenc", "avenc_aac", "fdkaacenc"} {
			if HasElement(name) {
				aacEncoder = name
				return
			}
		}
		aacErr = fmt.Errorf("no AAC encoder element (voaacenc, avenc_aac, fdkaacenc) installed")
	})
	if aacErr != nil {
		tb.Fatalf("servers: %v", aacErr)
	}
	return aacEncoder
}

var elementCache sync.Map // name -> bool

// HasElement reports whether gst-inspect-1.0 knows the element.
func HasElement(name string) bool {
	if v, ok := elementCache.Load(name); ok {
		return v.(bool)
	}
	ok := exec.Command("gst-inspect-1.0", "--exists", name).Run() == nil
	elementCache.Store(name, ok)
	return ok
}

// RequireElements fails the test unless gst-launch-1.0 and all named
// elements are installed. Failing (not skipping) keeps a machine without
// the GStreamer packages from passing integration tests by running none.
func RequireElements(tb testing.TB, names ...string) {
	tb.Helper()
	if _, err := exec.LookPath(GstLaunch); err != nil {
		tb.Fatalf("servers: %s not installed (Debian package gstreamer1.0-tools): %v", GstLaunch, err)
	}
	for _, name := range names {
		if !HasElement(name) {
			tb.Fatalf("servers: GStreamer element %q not installed (gstreamer1.0-plugins-{base,good,bad,ugly}, gstreamer1.0-libav)", name)
		}
	}
}
