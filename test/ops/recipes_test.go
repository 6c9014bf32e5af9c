package ops_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

func recipe(name string) string { return filepath.Join(harness.RepoRoot(), "pipelines", name) }

func size(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// The MPEG-TS recipe as written, with only SINK swapped for a local file:
// it relays, survives the encoder going away and coming back, and leaves a
// file with monotonic timestamps.
func TestRecipeMPEGTSOverTCPRunsLocally(t *testing.T) {
	srv := servers.NewTSServer(t, servers.TSOptions{})
	out := filepath.Join(t.TempDir(), "relay.mkv")
	env := harness.Env(t,
		"SOURCE=tcp://127.0.0.1:"+strconv.Itoa(srv.Port()),
		"SINK=matroskamux ! filesink location="+out,
		"STALL_TIMEOUT_MS=2000",
		"GST_LAUNCH_FLAGS=-m -e")
	l := harness.StartCommand(t, env, "bash", recipe("mpegts-tcp.sh"))
	harness.WaitUntil(t, 60*time.Second, "the recording to start", func() bool { return size(out) > 4096 })
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	l.WaitFor(30*time.Second, 1, "a restart", harness.Element("reconnectbin-restart"))
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	l.WaitFor(30*time.Second, 1, "recovery", harness.Element("reconnectbin-recovered"))
	grown := size(out)
	harness.WaitUntil(t, 30*time.Second, "the recording to grow after recovery", func() bool { return size(out) > grown+4096 })
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("recipe exited %d", code)
	}
	packets := harness.ProbePackets(t, out)
	if v := harness.DecodeOrderViolations(packets); v != 0 || len(packets) == 0 {
		t.Errorf("%d packets, %d going backwards", len(packets), v)
	}
}

// The HLS transcode recipe as written, ending in kvssink (the stand-in, with
// a static credential file instead of IMDS): one encoder configuration
// through an encoder restart, frames accepted after it.
func TestRecipeHLSTranscodeIntoKVSSink(t *testing.T) {
	srv := servers.NewHLSServer(t, servers.HLSOptions{StartSegments: 3})
	dir := t.TempDir()
	report := filepath.Join(dir, "kvssink.json")
	cred := filepath.Join(dir, "credential")
	exp := time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	if err := os.WriteFile(cred, []byte("CREDENTIALS AKIATESTRECIPE0001 "+exp+" recipe-secret recipe-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := harness.Env(t,
		"SOURCE="+srv.PlaylistURL(),
		"STREAM_NAME=recipe-test",
		"AWS_REGION=us-east-1",
		"CREDS=", // no IMDS here: the file above stands in for kvscredprovider's
		"SINK=kvssink stream-name=recipe-test credential-path="+cred+" report="+report,
		"OUTPUT_CAPS=video/x-raw,format=I420,width=320,height=240,framerate=25/1",
		"STALL_TIMEOUT_MS=3000",
		"X264_PRESET=ultrafast",
		"GST_LAUNCH_FLAGS=-m -e")
	l := harness.StartCommand(t, env, "bash", recipe("hls-transcode.sh"))
	accepted := func() uint64 {
		rep, err := kvssinkstandin.ReadReport(report)
		if err != nil {
			return 0
		}
		return rep.TotalAccepted()
	}
	harness.WaitUntil(t, 60*time.Second, "kvssink to accept frames", func() bool { return accepted() > 25 })
	if err := srv.RestartEncoder(true); err != nil {
		t.Fatal(err)
	}
	before := accepted()
	l.WaitFor(60*time.Second, 1, "recovery after the encoder restart", harness.Element("reconnectbin-recovered"))
	harness.WaitUntil(t, 30*time.Second, "frames after recovery", func() bool { return accepted() > before+25 })
	l.Interrupt()
	if code := l.Wait(30 * time.Second); code != 0 {
		t.Fatalf("recipe exited %d", code)
	}
	rep, err := kvssinkstandin.ReadReport(report)
	if err != nil {
		t.Fatal(err)
	}
	if rep.CapsChanges != 0 || rep.RunningTimeViolations != 0 || len(rep.Errors) != 0 {
		t.Errorf("kvssink: %d caps changes, %d running-time violations, errors %v", rep.CapsChanges, rep.RunningTimeViolations, rep.Errors)
	}
}

// asWritten runs a recipe exactly as an operator would against real KVS: no
// SINK or CREDS override, so the pipeline keeps kvscredprovider (getting
// credentials from a local IMDS fake) and ends in kvssink, here the test
// build's stand-in, which reports every frame it accepted. The only recipe
// variable a test passes is the camera's (SOURCE), pointed at a local server;
// GST_LAUNCH_FLAGS=-m only lets the harness read the bus. The relay is
// stopped as systemctl stop does (SIGINT, the unit's KillSignal): the
// recipe's own -e must turn that into an EOS that reaches kvssink.
type asWritten struct {
	t      *testing.T
	report string
	launch *harness.Launch
}

func startAsWritten(t *testing.T, script string, recipeVars ...string) *asWritten {
	t.Helper()
	imds := imdsfake.Start(t, imdsfake.Options{})
	report := filepath.Join(t.TempDir(), "kvssink.json")
	env := harness.Env(t, append([]string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL(),
		"KVSSINK_STANDIN_REPORT=" + report,
		"GST_LAUNCH_FLAGS=-m",
	}, recipeVars...)...)
	r := &asWritten{t: t, report: report, launch: harness.StartCommand(t, env, "bash", recipe(script))}
	// Registered after the launch's cleanup, so it runs before the relay is
	// killed: a failed run shows what kvssink got per track (a track with
	// no frame holds every other one back, as collectpads does).
	t.Cleanup(func() {
		if t.Failed() {
			data, err := os.ReadFile(report)
			t.Logf("kvssink report (%v):\n%s", err, data)
		}
	})
	return r
}

func (r *asWritten) accepted() uint64 {
	rep, err := kvssinkstandin.ReadReport(r.report)
	if err != nil {
		return 0
	}
	return rep.TotalAccepted()
}

// finish waits for kvssink to accept frames (two seconds of video at the
// sources' 25 fps), ends the relay with an EOS and checks what kvssink saw:
// one H.264 track with codec data that never changed, no frame going
// backwards, credentials from kvscredprovider's file, no errors.
func (r *asWritten) finish() *kvssinkstandin.Report {
	t := r.t
	t.Helper()
	const frames = 50
	harness.WaitUntil(t, 60*time.Second, "kvssink to accept frames", func() bool {
		return r.accepted() >= frames || r.launch.Exited()
	})
	if r.launch.Exited() {
		t.Fatalf("the recipe exited (%d) before kvssink accepted %d frames", r.launch.ExitCode(), frames)
	}
	r.launch.Interrupt()
	if code := r.launch.Wait(30 * time.Second); code != 0 {
		t.Fatalf("recipe exited %d", code)
	}
	rep, err := kvssinkstandin.ReadReport(r.report)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.EOS {
		t.Error("kvssink got no EOS after SIGINT: its last fragment would not be closed and what it holds not uploaded")
	}
	if !rep.Started || rep.TotalAccepted() < frames || rep.Keyframes == 0 {
		t.Errorf("kvssink: started %v, %d frames accepted, %d keyframes", rep.Started, rep.TotalAccepted(), rep.Keyframes)
	}
	if video := firstCaps(rep, "video_0"); video == nil || !strings.Contains(video.Caps, "video/x-h264") || video.CodecData == "" {
		t.Errorf("kvssink caps %+v: want H.264 with codec data on video_0", rep.Caps)
	}
	if rep.CapsChanges != 0 || rep.RunningTimeViolations != 0 || len(rep.Errors) != 0 {
		t.Errorf("kvssink: %d caps changes, %d running-time violations, errors %v", rep.CapsChanges, rep.RunningTimeViolations, rep.Errors)
	}
	if n := rep.Dropped(kvssinkstandin.DropHeaderNoTimestamp); n != 0 {
		// An encoder's keyframe (SPS/PPS) without timestamps: kvssink drops
		// it, and the frames after it until the next keyframe.
		t.Errorf("kvssink dropped %d keyframes that had no timestamps", n)
	}
	if rep.CredentialSource != "file" || rep.FramesWithExpiredCredentials != 0 {
		t.Errorf("kvssink credentials from %q (%d frames with expired ones): want kvscredprovider's file", rep.CredentialSource, rep.FramesWithExpiredCredentials)
	}
	t.Logf("kvssink accepted %d frames, %d keyframes, max gap %v", rep.TotalAccepted(), rep.Keyframes, time.Duration(rep.MaxGapNs))
	return rep
}

// firstCaps is the first caps event kvssink saw on track (a pad name), or nil.
func firstCaps(rep *kvssinkstandin.Report, track string) *kvssinkstandin.CapsRecord {
	for i := range rep.Caps {
		if rep.Caps[i].Track == track {
			return &rep.Caps[i]
		}
	}
	return nil
}

// h264TS is a live camera stand-in for the MPEG-TS senders below: H.264 with
// SPS/PPS before every keyframe, muxed for SRT/UDP (7 TS packets a buffer).
const h264TS = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! " +
	"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=15 bitrate=400 ! " +
	"video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 ! mpegtsmux alignment=7"

// startSender runs a gst-launch-1.0 sender; the test's cleanup kills it.
func startSender(t *testing.T, name, desc string) *servers.Process {
	t.Helper()
	servers.RequireElements(t, "videotestsrc", "x264enc", "h264parse", "mpegtsmux")
	return servers.StartProcess(t, servers.ProcessOptions{Name: name, Path: servers.GstLaunch, Args: strings.Fields(desc)})
}

// The RTSP camera recipe, H.264 passed through, from a local
// gst-rtsp-server camera.
func TestRecipeRTSPPassthroughIntoKVSSink(t *testing.T) {
	cam := servers.NewRTSPServer(t, servers.RTSPOptions{})
	startAsWritten(t, "rtsp-passthrough.sh", "SOURCE="+cam.URL()).finish()
}

// Issue #16 part 5: a camera sending G.711 (A-law, then mu-law) beside its
// H.264, relayed by the RTSP recipe as written with AUDIO=aac: kvssink gets
// an H.264 video track and an AAC audio track (what the KVS console and HLS
// playback play, unlike G.711), both flowing, before and after the camera
// restarts, with one set of caps each.
func TestRecipeRTSPPassthroughG711AudioIntoKVSSink(t *testing.T) {
	servers.RequireElements(t, "avenc_aac", "aacparse", "rtppcmadepay", "rtppcmudepay", "alawdec", "mulawdec")
	for _, law := range []string{"pcma", "pcmu"} {
		t.Run(law, func(t *testing.T) {
			cam := servers.NewRTSPServer(t, servers.RTSPOptions{Media: servers.MediaOptions{Audio: true, AudioCodec: law}})
			r := startAsWritten(t, "rtsp-passthrough.sh", "SOURCE="+cam.URL(), "AUDIO=aac", "STALL_TIMEOUT_MS=2000")
			tracks := func() (video, audio uint64) {
				rep, err := kvssinkstandin.ReadReport(r.report)
				if err != nil {
					return 0, 0
				}
				return rep.FramesAccepted["video_0"], rep.FramesAccepted["audio_0"]
			}
			both := func(what string) {
				v0, a0 := tracks()
				harness.WaitUntil(t, 60*time.Second, what, func() bool {
					v, a := tracks()
					return (v >= v0+50 && a >= a0+50) || r.launch.Exited()
				})
				if r.launch.Exited() {
					t.Fatalf("the recipe exited (%d) while waiting for %s", r.launch.ExitCode(), what)
				}
			}
			both("kvssink to accept the camera's video and audio")
			if err := cam.Restart(); err != nil {
				t.Fatal(err)
			}
			r.launch.WaitFor(30*time.Second, 1, "recovery after the camera restarted", harness.Element("reconnectbin-recovered"))
			both("kvssink to accept video and audio after the camera restarted")
			rep := r.finish()
			if rep.MediaTypes["video_0"] != "video/x-h264" || rep.MediaTypes["audio_0"] != "audio/mpeg" {
				t.Errorf("kvssink's tracks %v: want video_0 H.264 and audio_0 AAC (audio/mpeg)", rep.MediaTypes)
			}
			audio := firstCaps(rep, "audio_0")
			if audio == nil || !strings.Contains(audio.Caps, "mpegversion=(int)4") || !strings.Contains(audio.Caps, "stream-format=(string)raw") ||
				audio.CodecData == "" {
				t.Errorf("kvssink's audio caps %+v: want raw AAC (mpegversion 4) with codec data", audio)
			}
			if n := r.launch.Count(harness.OfType("error")); n != 0 {
				t.Errorf("%d ERROR messages on the bus", n)
			}
			t.Logf("kvssink accepted %v", rep.FramesAccepted)
		})
	}
}

// The MPEG-TS recipe with AUDIO=aac, passing the H.264 through (the camera's
// AAC decoded and re-encoded outside reconnectbin) and transcoding (the whole
// TS decoded inside, silence in the same format while the camera is away):
// kvssink gets H.264 and AAC, both flowing, with one set of caps each.
func TestRecipeMPEGTSWithAudioIntoKVSSink(t *testing.T) {
	servers.RequireElements(t, "avenc_aac", "aacparse")
	for _, transcode := range []string{"0", "1"} {
		t.Run("TRANSCODE="+transcode, func(t *testing.T) {
			srv := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Audio: true}})
			requireAACAndVideo(t, startAsWritten(t, "mpegts-tcp.sh", "SOURCE="+srv.URL(), "AUDIO=aac", "TRANSCODE="+transcode,
				"OUTPUT_CAPS=video/x-raw,format=I420,width=320,height=240,framerate=25/1", "X264_PRESET=ultrafast"))
		})
	}
}

// The HLS recipe with AUDIO=aac: the segments' AAC is decoded inside
// reconnectbin (decodebin), held to output-audio-caps, and re-encoded; kvssink
// gets H.264 and AAC, both flowing, one set of caps each. The segments are
// pushed faster than real time, so the audio often places the source ahead
// of the clock and the video's first frames fall before output time 0: once
// they left without a timestamp, x264enc's first keyframe had none and its
// later frames ran 1000 hours ahead of the audio, and kvssink took no frame
// at all (most runs on a loaded machine; issue #16 part 5).
func TestRecipeHLSTranscodeWithAudioIntoKVSSink(t *testing.T) {
	servers.RequireElements(t, "avenc_aac", "aacparse")
	srv := servers.NewHLSServer(t, servers.HLSOptions{StartSegments: 3, Media: servers.MediaOptions{Audio: true}})
	requireAACAndVideo(t, startAsWritten(t, "hls-transcode.sh", "SOURCE="+srv.PlaylistURL(), "AUDIO=aac",
		"OUTPUT_CAPS=video/x-raw,format=I420,width=320,height=240,framerate=25/1", "X264_PRESET=ultrafast"))
}

// requireAACAndVideo waits for a recipe's kvssink to accept 50 frames of
// video and of audio, ends the relay and checks the audio was AAC and no
// ERROR came.
func requireAACAndVideo(t *testing.T, r *asWritten) {
	t.Helper()
	harness.WaitUntil(t, 60*time.Second, "kvssink to accept video and audio", func() bool {
		rep, err := kvssinkstandin.ReadReport(r.report)
		return (err == nil && rep.FramesAccepted["video_0"] >= 50 && rep.FramesAccepted["audio_0"] >= 50) || r.launch.Exited()
	})
	rep := r.finish()
	if rep.MediaTypes["audio_0"] != "audio/mpeg" || rep.FramesAccepted["audio_0"] < 50 {
		t.Errorf("kvssink's tracks %v, accepted %v: want AAC audio flowing", rep.MediaTypes, rep.FramesAccepted)
	}
	if n := r.launch.Count(harness.OfType("error")); n != 0 {
		t.Errorf("%d ERROR messages on the bus", n)
	}
}

// SRT, this host calling an encoder that listens.
func TestRecipeSRTCallerIntoKVSSink(t *testing.T) {
	enc := servers.NewSRTSender(t, servers.SRTOptions{})
	startAsWritten(t, "srt-caller.sh", "SOURCE="+enc.URL()).finish()
}

// SRT, this host listening and the encoder calling in once it listens.
func TestRecipeSRTListenerIntoKVSSink(t *testing.T) {
	servers.RequireElements(t, "srtsink", "srtsrc")
	port := servers.FreeUDPPort(t)
	r := startAsWritten(t, "srt-listener.sh", "SOURCE=srt://127.0.0.1:"+strconv.Itoa(port))
	if err := servers.WaitUDPBound(port, 30*time.Second); err != nil {
		t.Fatalf("the relay does not listen on UDP port %d: %v", port, err)
	}
	startSender(t, "srt-caller-encoder", fmt.Sprintf("%s ! srtsink uri=srt://127.0.0.1:%d?mode=caller", h264TS, port))
	r.finish()
}

// MPEG-TS over UDP (unicast) from an encoder sending to this host.
func TestRecipeMPEGTSOverUDPIntoKVSSink(t *testing.T) {
	servers.RequireElements(t, "udpsink")
	port := servers.FreeUDPPort(t)
	r := startAsWritten(t, "mpegts-udp.sh", "SOURCE=udp://127.0.0.1:"+strconv.Itoa(port))
	if err := servers.WaitUDPBound(port, 30*time.Second); err != nil {
		t.Fatalf("the relay does not receive on UDP port %d: %v", port, err)
	}
	startSender(t, "udp-encoder", fmt.Sprintf("%s ! udpsink host=127.0.0.1 port=%d", h264TS, port))
	r.finish()
}

// The test pattern needs no camera at all: as written, 720p x264.
func TestRecipeTestPatternIntoKVSSink(t *testing.T) {
	rep := startAsWritten(t, "testpattern.sh").finish()
	if len(rep.Caps) > 0 && (rep.Caps[0].Width != 1280 || rep.Caps[0].Height != 720) {
		t.Errorf("kvssink got %dx%d, want the recipe's default 1280x720", rep.Caps[0].Width, rep.Caps[0].Height)
	}
}
