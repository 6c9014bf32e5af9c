package relay_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/imdsfake"
	"github.com/kvsrelay/kvsrelay/test/kvsendpoint"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// Issue #16 part 5 against the real kvssink: an RTSP camera sending H.264
// and G.711 A-law, relayed by pipelines/rtsp-passthrough.sh as written with
// AUDIO=aac (kvscredprovider from a fake IMDS, kvssink uploading to the
// local endpoint). The endpoint gets an AAC track (A_AAC, with its codec
// private data) beside the H.264 one, and audio frames in the persisted
// fragments: what the KVS console and HLS playback can play.
func TestRealKVSSinkRecipeG711CameraAudioAsAAC(t *testing.T) {
	requireRealKVSSink(t)
	t.Parallel()
	cam := servers.NewRTSPServer(t, servers.RTSPOptions{Media: servers.MediaOptions{Audio: true, AudioCodec: "pcma"}})
	recipeAACIntoRealKVSSink(t, "rtsp-passthrough.sh", "SOURCE="+cam.URL())
}

// The HLS recipe with AUDIO=aac against the real kvssink: the segments'
// AAC decoded inside reconnectbin and re-encoded, the video transcoded.
// The segments are pushed faster than real time, so the audio often places
// the source ahead of the clock; once, the video's first frames then left
// reconnectbin without a timestamp, x264enc's segment and frames ended up
// 1000 hours apart, and kvssink's collectpads only ever took audio: nothing
// was persisted (issue #16 part 5).
func TestRealKVSSinkRecipeHLSAudioAsAAC(t *testing.T) {
	requireRealKVSSink(t)
	t.Parallel()
	srv := servers.NewHLSServer(t, servers.HLSOptions{StartSegments: 3, Media: servers.MediaOptions{Audio: true}})
	recipeAACIntoRealKVSSink(t, "hls-transcode.sh", "SOURCE="+srv.PlaylistURL(),
		"OUTPUT_CAPS=video/x-raw,format=I420,width=320,height=240,framerate=25/1", "X264_PRESET=ultrafast")
}

// recipeAACIntoRealKVSSink runs a recipe as written with AUDIO=aac
// (kvscredprovider from a fake IMDS, kvssink uploading to the local
// endpoint) and checks the endpoint got an H.264 track and an AAC track
// with its codec private data, both with frames in persisted fragments.
func recipeAACIntoRealKVSSink(t *testing.T, script string, recipeVars ...string) {
	t.Helper()
	imds := imdsfake.Start(t, imdsfake.Options{})
	ep := kvsendpoint.Start(t, kvsendpoint.Options{
		Validate: kvsendpoint.ValidateIssued(imds),
		Secret:   kvsendpoint.SecretIssued(imds),
		Region:   realRegion,
	})
	logConfig, logFile := kvssinkLogConfig(t)
	env := harness.KVSSinkEnv(t, ep.URL(), realRegion, append([]string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imds.URL(),
		"AUDIO=aac", "STREAM_NAME=" + realStream, "AWS_REGION=" + realRegion,
		"CREDENTIAL_PATH=" + filepath.Join(harness.PrivateDir(t), "credential"),
		"KVSSINK_EXTRA=log-config=" + logConfig, "GST_LAUNCH_FLAGS=-m"}, recipeVars...)...)
	l := harness.StartCommand(t, env, "bash", filepath.Join(harness.RepoRoot(), "pipelines", script))
	r := &realRelay{Launch: l, ep: ep, imds: imds, log: logFile}
	r.waitPersisted(t, 8, time.Time{}, "with the camera's audio")
	up := r.finish(t)
	sessions := ep.Sessions(realStream)
	if len(sessions) == 0 {
		t.Fatal("no putMedia session")
	}
	var codecs []string
	audioPrivate := 0
	for _, tr := range sessions[0].Tracks {
		codecs = append(codecs, tr.CodecID)
		if tr.CodecID == "A_AAC" {
			audioPrivate = len(tr.CodecPrivate)
		}
	}
	if got := strings.Join(codecs, " "); got != "V_MPEG4/ISO/AVC A_AAC" && got != "A_AAC V_MPEG4/ISO/AVC" {
		t.Errorf("uploaded tracks %q: want H.264 and AAC", got)
	}
	if audioPrivate == 0 {
		t.Errorf("the AAC track carries no codec private data (AudioSpecificConfig)")
	}
	if len(up.audio) < 50 || len(up.video) < 50 {
		t.Errorf("persisted %d video and %d audio frames: want both flowing", len(up.video), len(up.audio))
	}
	t.Logf("uploaded tracks %v; persisted %d fragments, %d video and %d audio frames", codecs, len(up.persisted), len(up.video), len(up.audio))
}
