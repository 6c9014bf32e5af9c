package kvssinkstandin_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/test/gsttest"
	"github.com/kvsrelay/kvsrelay/test/kvssinkstandin"
)

// registryDir holds this run's own GStreamer registry.
var registryDir string

// TestMain initialises GStreamer like test/harness does: an isolated
// registry in a temp folder, no GST_PLUGIN_PATH and the system plugin path
// limited to GStreamer's own folder, so neither a kvssink installed on the
// host nor an installed libgstkvsrelay.so (a second Go runtime) can mix in.
// The stand-in is then registered statically.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvssinkstandin-registry-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	registryDir = dir
	for _, k := range []string{"GST_REGISTRY_1_0", "GST_PLUGIN_PATH", "GST_PLUGIN_PATH_1_0", "GST_PLUGIN_SYSTEM_PATH"} {
		os.Unsetenv(k)
	}
	os.Setenv("GST_REGISTRY", filepath.Join(dir, "registry.bin"))
	os.Setenv("GST_PLUGIN_SYSTEM_PATH_1_0", systemPluginDir())
	gst.Init(nil)
	code := 1
	if kvssinkstandin.Register(nil) {
		code = m.Run()
	} else {
		fmt.Fprintln(os.Stderr, "cannot register the kvssink stand-in")
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// systemPluginDir is GStreamer's own plugin folder (as harness.SystemPluginDir).
func systemPluginDir() string {
	out, err := exec.Command("pkg-config", "--variable=pluginsdir", "gstreamer-1.0").Output()
	if err == nil {
		if dir := strings.TrimSpace(string(out)); dir != "" {
			return dir
		}
	}
	return "/usr/lib/x86_64-linux-gnu/gstreamer-1.0"
}

func TestRegistryIsolated(t *testing.T) {
	if reg := os.Getenv("GST_REGISTRY"); registryDir == "" || filepath.Dir(reg) != registryDir {
		t.Errorf("GST_REGISTRY=%q, want a registry in this run's own temp folder", reg)
	}
	for _, k := range []string{"GST_REGISTRY_1_0", "GST_PLUGIN_PATH", "GST_PLUGIN_PATH_1_0", "GST_PLUGIN_SYSTEM_PATH"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q is set", k, v)
		}
	}
	if got := os.Getenv("GST_PLUGIN_SYSTEM_PATH_1_0"); got != systemPluginDir() {
		t.Errorf("GST_PLUGIN_SYSTEM_PATH_1_0=%q, want only %q", got, systemPluginDir())
	}
	f, err := gst.GetRegistry().LookupFeature(kvssinkstandin.FactoryName)
	if err != nil {
		t.Fatalf("no kvssink feature: %v", err)
	}
	if pl := f.GetPlugin(); pl != nil {
		t.Errorf("kvssink comes from plugin file %s, want the statically registered stand-in", pl.Filename())
	}
	if pl, err := gst.GetRegistry().FindPlugin("kvsrelay"); err == nil && pl != nil {
		t.Errorf("the kvsrelay plugin %s is in this Go process's registry (a second Go runtime)", pl.Filename())
	}
}

// awsVars are every variable kvssink or the stand-in reads.
var awsVars = []string{
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
	kvssinkstandin.EnvReport, kvssinkstandin.EnvLapse, kvssinkstandin.EnvStaticExpires, kvssinkstandin.EnvClockOffset,
}

// clearEnv unsets the variables for the test (kvssink treats a variable set
// to "" as set, so t.Setenv(k, "") is not enough) and restores them after.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range awsVars {
		t.Setenv(k, "") // registers the restore
		os.Unsetenv(k)
	}
}

// expiration formats t the way the credential file wants it.
func expiration(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func writeCredentialFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "credential")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func validCredentialFile(t *testing.T) string {
	return writeCredentialFile(t, fmt.Sprintf("CREDENTIALS AKIAFILEKEY0001 %s fileSecret fileToken\n", expiration(time.Now().Add(time.Hour))))
}

// h264 is an encoded stream kvssink accepts: 25 fps, a keyframe every 10 frames.
func h264(frames int, live bool) string {
	return fmt.Sprintf("videotestsrc num-buffers=%d is-live=%v ! video/x-raw,width=160,height=120,framerate=25/1 ! "+
		"x264enc key-int-max=10 speed-preset=ultrafast tune=zerolatency ! h264parse ! "+
		"capsfilter caps=video/x-h264,stream-format=avc,alignment=au", frames, live)
}

type outcome struct {
	eos      bool
	errs     []*gst.GError
	warnings []*gst.GError
	report   *kvssinkstandin.Report
}

func (o outcome) warningDebugs() string {
	var b strings.Builder
	for _, w := range o.warnings {
		b.WriteString(w.DebugString())
		b.WriteByte('\n')
	}
	return b.String()
}

type pipelineTest struct {
	desc  string                // ends in "kvssink name=k ..." without report=, or has report=REPORT
	setup func(p *gst.Pipeline) // probes, signal handlers
	// timeout for EOS or the first ERROR (default 20 s).
	timeout time.Duration
}

// run plays the pipeline until EOS or ERROR (deadline: timeout), then sets
// it to NULL and reads the stand-in's report.
func run(t *testing.T, pt pipelineTest) outcome {
	t.Helper()
	reportPath := filepath.Join(t.TempDir(), "report.json")
	desc := pt.desc + " report=" + reportPath
	if strings.Contains(pt.desc, "REPORT") {
		desc = strings.ReplaceAll(pt.desc, "REPORT", reportPath)
	}
	p, err := gst.NewPipelineFromString(desc)
	if err != nil {
		t.Fatalf("parse %q: %v", pt.desc, err)
	}
	// go-gst unrefs the pipeline from a finalizer: keep the wrapper alive
	// until the state changes below are done, or GC may dispose it mid-call.
	defer runtime.KeepAlive(p)
	if pt.setup != nil {
		pt.setup(p)
	}
	var out outcome
	bus := p.GetPipelineBus()
	if err := p.SetState(gst.StatePlaying); err != nil {
		t.Logf("set PLAYING: %v", err)
	}
	timeout := pt.timeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for !out.eos && len(out.errs) == 0 {
		if time.Now().After(deadline) {
			p.SetState(gst.StateNull)
			t.Fatalf("no EOS or ERROR within %v", timeout)
		}
		msg := bus.TimedPopFiltered(gst.ClockTime(100*time.Millisecond), gst.MessageEOS|gst.MessageError|gst.MessageWarning)
		if msg == nil {
			continue
		}
		switch msg.Type() {
		case gst.MessageEOS:
			out.eos = true
		case gst.MessageError:
			out.errs = append(out.errs, msg.ParseError())
		case gst.MessageWarning:
			out.warnings = append(out.warnings, msg.ParseWarning())
		}
	}
	// Warnings posted right before EOS/ERROR.
	for msg := bus.TimedPopFiltered(0, gst.MessageWarning); msg != nil; msg = bus.TimedPopFiltered(0, gst.MessageWarning) {
		out.warnings = append(out.warnings, msg.ParseWarning())
	}
	if err := p.SetState(gst.StateNull); err != nil {
		t.Fatalf("set NULL: %v", err)
	}
	out.report, err = kvssinkstandin.ReadReport(reportPath)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	return out
}

// bufferProbe calls f for each buffer leaving the element named name.
func bufferProbe(t *testing.T, p *gst.Pipeline, name string, f func(i int, info *gst.PadProbeInfo) gst.PadProbeReturn) {
	t.Helper()
	el, err := p.GetElementByName(name)
	if err != nil {
		t.Fatalf("no element %s: %v", name, err)
	}
	i := 0
	el.GetStaticPad("src").AddProbe(gst.PadProbeTypeBuffer, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		defer func() { i++ }()
		return f(i, info)
	})
}

func TestHappyPath(t *testing.T) {
	clearEnv(t)
	cred := validCredentialFile(t)
	out := run(t, pipelineTest{desc: h264(50, false) + " ! kvssink name=k credential-path=" + cred})
	r := out.report
	if !out.eos || len(out.errs) > 0 {
		t.Fatalf("eos=%v errors=%v", out.eos, out.errs)
	}
	t.Logf("report: accepted %v dropped %v keyframes %d warnings %v", r.FramesAccepted, r.FramesDropped, r.Keyframes, r.Warnings)
	if r.FramesAccepted["video_0"] != 50 || len(r.FramesDropped) != 0 {
		t.Errorf("accepted %v dropped %v, want all 50 frames accepted", r.FramesAccepted, r.FramesDropped)
	}
	if r.Keyframes != 5 || r.Fragments != 5 {
		t.Errorf("keyframes %d fragments %d, want 5 and 5", r.Keyframes, r.Fragments)
	}
	if !r.EOS || !r.Started || r.CredentialSource != kvssinkstandin.SourceFile || r.Region != "us-west-2" || r.StreamName != "DEFAULT_STREAM" {
		t.Errorf("report %+v", r)
	}
	if len(r.Caps) != 1 || r.Caps[0].CodecData == "" || r.Caps[0].Width != 160 || r.CapsChanges != 0 {
		t.Errorf("caps %+v changes %d, want one caps with codec_data", r.Caps, r.CapsChanges)
	}
	if len(r.CredentialReads) != 1 || !r.CredentialReads[0].OK || r.CredentialReads[0].AccessKeyID != "***********0001" {
		t.Errorf("credential reads %+v", r.CredentialReads)
	}
	if len(r.AccessKeysUsed) != 1 || r.AccessKeysUsed[0].Key != "***********0001" || r.AccessKeysUsed[0].Frames != 50 {
		t.Errorf("access keys used %+v", r.AccessKeysUsed)
	}
	if r.MediaTypes["video_0"] != "video/x-h264" {
		t.Errorf("media types %v", r.MediaTypes)
	}
	if r.FirstPTSRunningTime == nil || r.LastPTSRunningTime == nil || *r.LastPTSRunningTime-*r.FirstPTSRunningTime != uint64(49*40*time.Millisecond) {
		t.Errorf("pts running times %v..%v", r.FirstPTSRunningTime, r.LastPTSRunningTime)
	}
	if r.MaxGapNs != uint64(40*time.Millisecond) {
		t.Errorf("max gap %d, want 40 ms", r.MaxGapNs)
	}
}

// withMod inserts an identity named "mod" right before kvssink, for probes.
func withMod(src string) string { return src + " ! identity name=mod" }

func TestDiscontOnlyKeyframeDropped(t *testing.T) {
	clearEnv(t)
	cred := validCredentialFile(t)
	out := run(t, pipelineTest{
		desc: withMod(h264(30, false)) + " ! kvssink name=k credential-path=" + cred,
		setup: func(p *gst.Pipeline) {
			bufferProbe(t, p, "mod", func(i int, info *gst.PadProbeInfo) gst.PadProbeReturn {
				switch i {
				case 10: // a keyframe carrying only DISCONT (what a naive splice produces)
					gstshim.SetProbeBufferFlags(info, gst.BufferFlagDiscont, ^gst.BufferFlagDiscont)
				case 13: // a delta frame with DISCONT
					gstshim.SetProbeBufferFlags(info, gst.BufferFlagDiscont, 0)
				case 20: // a keyframe with DISCONT and another flag is kept
					gstshim.SetProbeBufferFlags(info, gst.BufferFlagDiscont|gst.BufferFlagMarker, 0)
				case 25:
					gstshim.SetProbeBufferFlags(info, gst.BufferFlagCorrupted, 0)
				case 26:
					gstshim.SetProbeBufferFlags(info, gst.BufferFlagDecodeOnly, 0)
				}
				return gst.PadProbeOK
			})
		},
	})
	r := out.report
	if !out.eos {
		t.Fatalf("no EOS: %v", out.errs)
	}
	want := map[string]uint64{
		kvssinkstandin.DropDiscont: 1, kvssinkstandin.DropDiscontDelta: 1,
		kvssinkstandin.DropCorrupted: 1, kvssinkstandin.DropDecodeOnly: 1,
	}
	for reason, n := range want {
		if r.Dropped(reason) != n {
			t.Errorf("dropped[%s] = %d, want %d (all: %v)", reason, r.Dropped(reason), n, r.FramesDropped)
		}
	}
	// The deltas after the dropped keyframe still go in (kvssink does not
	// wait for the next keyframe): the upload is corrupt, silently.
	if r.FramesAccepted["video_0"] != 26 || r.Keyframes != 2 {
		t.Errorf("accepted %d keyframes %d, want 26 and 2", r.FramesAccepted["video_0"], r.Keyframes)
	}
	if len(out.warnings) != 0 {
		t.Errorf("flag drops are silent, got warnings %s", out.warningDebugs())
	}
}

func TestNonKeyframesSkippedAtStart(t *testing.T) {
	clearEnv(t)
	cred := validCredentialFile(t)
	out := run(t, pipelineTest{
		desc: withMod(h264(30, false)) + " ! kvssink name=k credential-path=" + cred,
		setup: func(p *gst.Pipeline) {
			bufferProbe(t, p, "mod", func(i int, info *gst.PadProbeInfo) gst.PadProbeReturn {
				if i == 0 {
					return gst.PadProbeDrop // lose the first keyframe
				}
				return gst.PadProbeOK
			})
		},
	})
	r := out.report
	if r.Dropped(kvssinkstandin.DropNotKeyframe) != 9 || r.FramesAccepted["video_0"] != 20 {
		t.Fatalf("dropped %v accepted %v, want 9 not-keyframe drops and 20 accepted", r.FramesDropped, r.FramesAccepted)
	}
}

// shiftBack moves every buffer from index from on back by d, like a source
// whose timestamps restart after a reconnect.
func shiftBack(from int, d time.Duration) func(i int, info *gst.PadProbeInfo) gst.PadProbeReturn {
	return func(i int, info *gst.PadProbeInfo) gst.PadProbeReturn {
		if i < from {
			return gst.PadProbeOK
		}
		buf := info.GetBuffer()
		pts, dts := buf.PresentationTimestamp(), buf.DecodingTimestamp()
		if pts != gst.ClockTimeNone {
			pts -= gst.ClockTime(d)
		}
		if dts != gst.ClockTimeNone {
			dts -= gst.ClockTime(d)
		}
		gstshim.SetProbeBufferTimestamps(info, pts, dts)
		return gst.PadProbeOK
	}
}

func TestBackwardsRunningTimeDropped(t *testing.T) {
	clearEnv(t)
	cred := validCredentialFile(t)
	out := run(t, pipelineTest{
		desc: withMod(h264(50, false)) + " ! kvssink name=k credential-path=" + cred,
		setup: func(p *gst.Pipeline) {
			bufferProbe(t, p, "mod", shiftBack(25, 500*time.Millisecond))
		},
	})
	r := out.report
	if !out.eos {
		t.Fatalf("no EOS: %v", out.errs)
	}
	// Frames 25..36 (1000..1440 ms shifted to 500..940 ms) fall below frame
	// 24 (960 ms); those below the fragment start (800 ms) get 0x32000002,
	// the others 0x30000005.
	if r.RunningTimeViolations != 12 || r.Dropped(kvssinkstandin.DropBackwards) != 12 || r.FramesAccepted["video_0"] != 38 {
		t.Errorf("violations %d dropped %v accepted %v, want 12 backwards drops and 38 accepted",
			r.RunningTimeViolations, r.FramesDropped, r.FramesAccepted)
	}
	debugs := out.warningDebugs()
	for _, status := range []string{"0x32000002", "0x30000005"} {
		if !strings.Contains(debugs, "put frame error occurred. Status: "+status) {
			t.Errorf("no bus WARNING with status %s; warnings:\n%s", status, debugs)
		}
	}
	if len(out.warnings) != 12 {
		t.Errorf("%d warnings, want one per dropped frame (12)", len(out.warnings))
	}
}

func TestForwardGapAccepted(t *testing.T) {
	clearEnv(t)
	cred := validCredentialFile(t)
	out := run(t, pipelineTest{
		desc: withMod(h264(30, false)) + " ! kvssink name=k credential-path=" + cred,
		setup: func(p *gst.Pipeline) {
			bufferProbe(t, p, "mod", shiftBack(20, -10*time.Second))
		},
	})
	r := out.report
	if r.FramesAccepted["video_0"] != 30 || len(r.FramesDropped) != 0 {
		t.Fatalf("accepted %v dropped %v, want everything accepted", r.FramesAccepted, r.FramesDropped)
	}
	if r.MaxGapNs != uint64(10*time.Second+40*time.Millisecond) {
		t.Errorf("max gap %v, want 10.04 s", time.Duration(r.MaxGapNs))
	}
}

func TestCapsChangeRecorded(t *testing.T) {
	clearEnv(t)
	cred := validCredentialFile(t)
	desc := "videotestsrc num-buffers=40 ! capsfilter name=res caps=video/x-raw,width=160,height=120,framerate=25/1 ! " +
		"x264enc key-int-max=10 speed-preset=ultrafast tune=zerolatency ! h264parse ! " +
		"capsfilter caps=video/x-h264,stream-format=avc,alignment=au ! identity name=mod ! kvssink name=k credential-path=" + cred
	out := run(t, pipelineTest{
		desc: desc,
		setup: func(p *gst.Pipeline) {
			res, err := p.GetElementByName("res")
			if err != nil {
				t.Fatal(err)
			}
			var once sync.Once
			bufferProbe(t, p, "mod", func(i int, info *gst.PadProbeInfo) gst.PadProbeReturn {
				if i == 15 {
					// A source that comes back at another resolution.
					once.Do(func() {
						res.SetProperty("caps", gst.NewCapsFromString("video/x-raw,width=320,height=240,framerate=25/1"))
					})
				}
				return gst.PadProbeOK
			})
		},
	})
	r := out.report
	if !out.eos {
		t.Fatalf("no EOS: %v", out.errs)
	}
	if r.CapsChanges < 1 {
		t.Fatalf("caps changes %d, want the resolution change recorded; caps %+v", r.CapsChanges, r.Caps)
	}
	last := r.Caps[len(r.Caps)-1]
	if !last.Changed || last.Width != 320 || last.CodecData == r.Caps[0].CodecData {
		t.Errorf("last caps %+v, want a changed 320-wide caps with new codec_data", last)
	}
	if len(out.warnings) != 0 {
		t.Errorf("kvssink posts nothing on a caps change, got %s", out.warningDebugs())
	}
}

// startFailure sets a pipeline to READY and returns the ERROR kvssink posted.
func startFailure(t *testing.T, p *gst.Pipeline) *gst.GError {
	t.Helper()
	defer runtime.KeepAlive(p)
	defer p.SetState(gst.StateNull)
	if err := p.SetState(gst.StateReady); err == nil {
		t.Fatal("NULL->READY succeeded, want it to fail")
	}
	msg := p.GetPipelineBus().TimedPopFiltered(gst.ClockTime(5*time.Second), gst.MessageError)
	if msg == nil {
		t.Fatal("no ERROR on the bus")
	}
	return msg.ParseError()
}

func TestStartFailsWithoutPeer(t *testing.T) {
	clearEnv(t)
	cred := validCredentialFile(t)
	p, err := gst.NewPipeline("")
	if err != nil {
		t.Fatal(err)
	}
	k, err := gst.NewElementWithProperties("kvssink", map[string]any{"credential-path": cred})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Add(k); err != nil {
		t.Fatal(err)
	}
	pad := k.GetRequestPad("video_%u")
	if pad == nil || pad.GetName() != "video_0" {
		t.Fatalf("request pad %v, want video_0", pad)
	}
	if second := k.GetRequestPad("video_%u"); second != nil {
		t.Fatalf("got a second video pad %s, kvssink allows one", second.GetName())
	}
	// Released and requested again, it is video_0 again.
	k.ReleaseRequestPad(pad)
	if pad = k.GetRequestPad("video_%u"); pad == nil || pad.GetName() != "video_0" {
		t.Fatalf("request pad after release %v, want video_0", pad)
	}
	if audio := k.GetRequestPad("audio_%u"); audio == nil || audio.GetName() != "audio_0" {
		t.Fatalf("audio pad %v, want audio_0", audio)
	}
	gerr := startFailure(t, p)
	if !strings.Contains(gerr.DebugString(), "Failed to init kvs producer. Error: pad ") ||
		!strings.Contains(gerr.DebugString(), "has no peer") {
		t.Fatalf("error %q / %q", gerr.Error(), gerr.DebugString())
	}
}

func TestStartFailsWithoutCredentials(t *testing.T) {
	clearEnv(t)
	missing := filepath.Join(t.TempDir(), "no-such-credential")
	p, err := gst.NewPipelineFromString(h264(10, false) + " ! kvssink name=k credential-path=" + missing)
	if err != nil {
		t.Fatal(err)
	}
	gerr := startFailure(t, p)
	if gerr.Error() != "Could not initialize supporting library." {
		t.Errorf("message %q, want GStreamer's LIBRARY INIT text", gerr.Error())
	}
	if !strings.HasSuffix(gerr.DebugString(), "Failed to init kvs producer. Error: Could not find any AWS credentials!") {
		t.Fatalf("debug %q", gerr.DebugString())
	}
}

func TestStartFailsWithBadCredentialFile(t *testing.T) {
	clearEnv(t)
	// The AWS SDK's expiration format (fractional seconds) is not kvssink's.
	cred := writeCredentialFile(t, "CREDENTIALS AKIAFILEKEY0001 "+time.Now().Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000Z")+" s t\n")
	reportPath := filepath.Join(t.TempDir(), "report.json")
	p, err := gst.NewPipelineFromString(h264(10, false) + " ! kvssink name=k credential-path=" + cred + " report=" + reportPath)
	if err != nil {
		t.Fatal(err)
	}
	gerr := startFailure(t, p)
	if !strings.Contains(gerr.DebugString(), "Unable to create Rotating Credential provider") {
		t.Fatalf("debug %q", gerr.DebugString())
	}
	r, err := kvssinkstandin.ReadReport(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	if r.Started || len(r.CredentialReads) != 1 || r.CredentialReads[0].Status != "0x16000005" {
		t.Fatalf("report started=%v reads %+v, want one failed read with status 0x16000005", r.Started, r.CredentialReads)
	}
}

func TestEnvironmentKeysWinOverFile(t *testing.T) {
	clearEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENVKEY004321")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envSecret")
	t.Setenv("AWS_DEFAULT_REGION", "eu-west-1")
	cred := validCredentialFile(t)
	out := run(t, pipelineTest{desc: h264(10, false) + " ! kvssink name=k aws-region=us-east-1 credential-path=" + cred})
	r := out.report
	if r.CredentialSource != kvssinkstandin.SourceEnv || len(r.CredentialReads) != 0 {
		t.Errorf("source %q reads %d, want env and the file never read", r.CredentialSource, len(r.CredentialReads))
	}
	if len(r.AccessKeysUsed) != 1 || r.AccessKeysUsed[0].Key != "************4321" {
		t.Errorf("keys used %+v", r.AccessKeysUsed)
	}
	if r.Region != "eu-west-1" || r.RegionSource != "AWS_DEFAULT_REGION" {
		t.Errorf("region %q from %s, want eu-west-1 from AWS_DEFAULT_REGION", r.Region, r.RegionSource)
	}
}

func TestEmptyEnvironmentKeysFailStart(t *testing.T) {
	clearEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	cred := validCredentialFile(t)
	p, err := gst.NewPipelineFromString(h264(10, false) + " ! kvssink name=k credential-path=" + cred)
	if err != nil {
		t.Fatal(err)
	}
	gerr := startFailure(t, p)
	if !strings.Contains(gerr.DebugString(), "empty access key id") {
		t.Fatalf("debug %q", gerr.DebugString())
	}
}

// lapsingCredentialFile holds a credential that kvssink accepts at start
// but that has under 30 s left about a second later, and is never refreshed.
func lapsingCredentialFile(t *testing.T) string {
	t.Setenv(kvssinkstandin.EnvClockOffset, "29m27s")
	// The stand-in's clock runs 29m27s ahead: the credential has 33-34 s left,
	// so it lapses 3-4 s into the stream.
	return writeCredentialFile(t, fmt.Sprintf("CREDENTIALS AKIALAPSE00001 %s s t\n", expiration(time.Now().Add(30*time.Minute+time.Second))))
}

func TestCredentialLapseErrorsOut(t *testing.T) {
	clearEnv(t)
	cred := lapsingCredentialFile(t)
	var status atomic.Uint64
	out := run(t, pipelineTest{
		desc: h264(250, true) + " ! kvssink name=k credential-path=" + cred,
		setup: func(p *gst.Pipeline) {
			k, _ := p.GetElementByName("k")
			if _, err := k.Connect("stream-error", func(_ *gst.Element, s uint64) { status.Store(s) }); err != nil {
				t.Fatalf("connect stream-error: %v", err)
			}
		},
	})
	r := out.report
	if len(out.errs) != 1 || !strings.Contains(out.errs[0].DebugString(), "[DEFAULT_STREAM] Stream error occurred. Status: 0x15000017") {
		t.Fatalf("errors %v, want the stream error", out.errs)
	}
	if status.Load() != 0x15000017 {
		t.Errorf("stream-error signal status 0x%x, want 0x15000017", status.Load())
	}
	if r.FramesAccepted["video_0"] == 0 || len(r.StreamErrors) != 1 || !strings.Contains(r.StreamErrors[0].Message, "The security token included in the request is expired") {
		t.Errorf("accepted %v stream errors %+v", r.FramesAccepted, r.StreamErrors)
	}
	// The file was re-read (now + 38 s passed its expiration) but not refreshed.
	if len(r.CredentialReads) < 2 || !r.CredentialReads[1].OK {
		t.Errorf("credential reads %+v, want the start read and lazy re-reads", r.CredentialReads)
	}
}

func TestCredentialLapseStalls(t *testing.T) {
	clearEnv(t)
	t.Setenv(kvssinkstandin.EnvLapse, kvssinkstandin.LapseStall)
	cred := lapsingCredentialFile(t)
	out := run(t, pipelineTest{desc: h264(125, true) + " ! kvssink name=k credential-path=" + cred})
	r := out.report
	if !out.eos || len(out.errs) != 0 {
		t.Fatalf("eos=%v errors=%v, want the pipeline to run on silently", out.eos, out.errs)
	}
	if !strings.Contains(out.warningDebugs(), "Invalid auth token as it is expiring in less than 30 seconds") {
		t.Errorf("warnings %s", out.warningDebugs())
	}
	dropped := r.Dropped(kvssinkstandin.DropCredentialsExpired)
	if dropped == 0 || r.FramesWithExpiredCredentials != dropped || r.FramesAccepted["video_0"]+dropped != 125 {
		t.Errorf("accepted %v dropped %v expired %d, want the frames after the lapse dropped",
			r.FramesAccepted, r.FramesDropped, r.FramesWithExpiredCredentials)
	}
}

func TestStaticSessionCredentialsExpire(t *testing.T) {
	clearEnv(t)
	t.Setenv(kvssinkstandin.EnvStaticExpires, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	out := run(t, pipelineTest{desc: h264(10, false) + " ! kvssink name=k access-key=AKIASTATIC0001 secret-key=x session-token=tok"})
	if len(out.errs) != 1 || out.report.CredentialSource != kvssinkstandin.SourceStatic || out.report.TotalAccepted() != 0 {
		t.Fatalf("errors %v source %q accepted %d, want the expired static token to fail the first frame",
			out.errs, out.report.CredentialSource, out.report.TotalAccepted())
	}
}

func TestAudioVideoEOSWaitsForBothPads(t *testing.T) {
	clearEnv(t)
	cred := validCredentialFile(t)
	out := run(t, pipelineTest{desc: "kvssink name=k report=REPORT credential-path=" + cred + " " +
		h264(10, false) + " ! k.video_%u " +
		"audiotestsrc num-buffers=40 samplesperbuffer=1024 ! audio/x-raw,rate=44100,channels=1 ! voaacenc ! aacparse ! k.audio_%u"})
	r := out.report
	if !out.eos || !r.EOS {
		t.Fatalf("eos=%v report eos=%v errors %v", out.eos, r.EOS, out.errs)
	}
	if r.FramesAccepted["video_0"] != 10 || r.FramesAccepted["audio_0"] == 0 {
		t.Errorf("accepted %v dropped %v, want frames on both tracks", r.FramesAccepted, r.FramesDropped)
	}
	if r.MediaTypes["audio_0"] != "audio/mpeg" {
		t.Errorf("media types %v", r.MediaTypes)
	}
}

// realProperties is every property of the real kvssink (name, nick, value
// type, param spec default as g_strdup_value_contents prints it), read from
// src/gstreamer/gstkvssink.cpp of the producer SDK C++.
var realProperties = []gsttest.ParamInfo{
	{Name: "stream-name", Nick: "Stream Name", Type: "gchararray", Default: `"DEFAULT_STREAM"`},
	{Name: "user-agent", Nick: "Custom user agent name", Type: "gchararray", Default: `"AWS-SDK-KVS-CPP-CLIENT"`},
	{Name: "retention-period", Nick: "Retention Period", Type: "guint", Default: "2"},
	{Name: "streaming-type", Nick: "Streaming Type", Type: "GstKvsSinkStreamingType", Default: "((GstKvsSinkStreamingType) streaming type realtime)"},
	{Name: "content-type", Nick: "Content Type", Type: "gchararray", Default: `"video/h264"`},
	{Name: "max-latency", Nick: "Max Latency", Type: "guint", Default: "60"},
	{Name: "fragment-duration", Nick: "Fragment Duration", Type: "guint", Default: "2000"},
	{Name: "timecode-scale", Nick: "Timecode Scale", Type: "guint", Default: "1"},
	{Name: "key-frame-fragmentation", Nick: "Do key frame fragmentation", Type: "gboolean", Default: "TRUE"},
	{Name: "frame-timecodes", Nick: "Do frame timecodes", Type: "gboolean", Default: "TRUE"},
	{Name: "absolute-fragment-times", Nick: "Use absolute fragment time", Type: "gboolean", Default: "TRUE"},
	{Name: "fragment-acks", Nick: "Do fragment acks", Type: "gboolean", Default: "TRUE"},
	{Name: "restart-on-error", Nick: "Do restart on error", Type: "gboolean", Default: "TRUE"},
	{Name: "recalculate-metrics", Nick: "Do recalculate metrics", Type: "gboolean", Default: "TRUE"},
	{Name: "framerate", Nick: "Framerate", Type: "guint", Default: "25"},
	{Name: "avg-bandwidth-bps", Nick: "Average bandwidth bps", Type: "guint", Default: "4194304"},
	{Name: "buffer-duration", Nick: "Buffer duration", Type: "guint", Default: "120"},
	{Name: "replay-duration", Nick: "Replay duration", Type: "guint", Default: "40"},
	{Name: "connection-staleness", Nick: "Connection staleness", Type: "guint", Default: "60"},
	{Name: "codec-id", Nick: "Codec ID", Type: "gchararray", Default: `"V_MPEG4/ISO/AVC"`},
	{Name: "track-name", Nick: "Track name", Type: "gchararray", Default: `"kinesis_video"`},
	{Name: "access-key", Nick: "Access Key", Type: "gchararray", Default: `"access_key"`},
	{Name: "secret-key", Nick: "Secret Key", Type: "gchararray", Default: `"secret_key"`},
	{Name: "session-token", Nick: "Session token", Type: "gchararray", Default: `"session_token"`},
	{Name: "aws-region", Nick: "AWS Region", Type: "gchararray", Default: `"us-west-2"`},
	{Name: "rotation-period", Nick: "Rotation Period", Type: "guint", Default: "3600"},
	{Name: "log-config", Nick: "Log Configuration", Type: "gchararray", Default: `"../kvs_log_configuration"`},
	{Name: "storage-size", Nick: "Storage Size", Type: "guint", Default: "128"},
	{Name: "stop-stream-timeout", Nick: "Stop stream timeout", Type: "guint", Default: "120"},
	{Name: "connection-timeout", Nick: "Service call connection timeout", Type: "guint", Default: "5"},
	{Name: "completion-timeout", Nick: "Service call completion timeout", Type: "guint", Default: "10"},
	{Name: "credential-path", Nick: "Credential File Path", Type: "gchararray", Default: `".kvs/credential"`},
	{Name: "iot-certificate", Nick: "Iot Certificate", Type: "GstStructure", Default: "NULL"},
	{Name: "stream-tags", Nick: "Stream Tags", Type: "GstStructure", Default: "NULL"},
	{Name: "file-start-time", Nick: "File Start Time", Type: "guint64", Default: "0"},
	{Name: "disable-buffer-clipping", Nick: "Disable Buffer Clipping", Type: "gboolean", Default: "FALSE"},
	{Name: "use-original-pts", Nick: "Use Original PTS", Type: "gboolean", Default: "FALSE"},
	{Name: "get-kvs-metrics", Nick: "Get client and stream level metrics on every key frame", Type: "gboolean", Default: "FALSE"},
	{Name: "allow-create-stream", Nick: "Allow creating stream if stream does not exist", Type: "gboolean", Default: "TRUE"},
}

// TestPropertiesMatchRealElement: every property of the real element, with
// the same name, type and param spec default, and nothing else but the
// stand-in's own `report` and `acks`.
func TestPropertiesMatchRealElement(t *testing.T) {
	k, err := gst.NewElement("kvssink")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]gsttest.ParamInfo{}
	for _, p := range gsttest.OwnProperties(k.Object.Object) {
		got[p.Name] = p
	}
	for _, want := range realProperties {
		g, ok := got[want.Name]
		if !ok {
			t.Errorf("missing property %s (%s, default %s)", want.Name, want.Type, want.Default)
			continue
		}
		delete(got, want.Name)
		if g.Nick != want.Nick || g.Type != want.Type || g.Default != want.Default {
			t.Errorf("%s: nick %q type %s default %s, want %q %s %s", want.Name, g.Nick, g.Type, g.Default, want.Nick, want.Type, want.Default)
		}
	}
	delete(got, "report")
	delete(got, "acks")
	for name, p := range got {
		t.Errorf("property %s (%s) is not one of the real element's", name, p.Type)
	}
}

// TestPropertyDefaults reads a new instance's values, which is what
// gst-inspect-1.0 shows as defaults: a few differ from the param specs, as
// in the real element's instance init.
func TestPropertyDefaults(t *testing.T) {
	before := uint64(time.Now().Unix())
	k, err := gst.NewElement("kvssink")
	if err != nil {
		t.Fatal(err)
	}
	after := uint64(time.Now().Unix())
	want := map[string]any{
		"stream-name": "DEFAULT_STREAM", "aws-region": "us-west-2", "access-key": "access_key", "secret-key": "secret_key",
		"session-token": "session_token", "credential-path": ".kvs/credential", "storage-size": uint(128), "restart-on-error": true,
		"fragment-acks": true, "retention-period": uint(2), "streaming-type": 0,
		"max-latency": uint(60), "fragment-duration": uint(2000), "timecode-scale": uint(1), "key-frame-fragmentation": true,
		"frame-timecodes": true, "absolute-fragment-times": true, "framerate": uint(25), "avg-bandwidth-bps": uint(4 * 1024 * 1024),
		"buffer-duration": uint(120), "replay-duration": uint(40), "connection-staleness": uint(60), "codec-id": "V_MPEG4/ISO/AVC",
		"track-name": "kinesis_video", "disable-buffer-clipping": false, "use-original-pts": false,
		"get-kvs-metrics": false, "log-config": "../kvs_log_configuration", "rotation-period": uint(3600),
		"stop-stream-timeout": uint(120), "connection-timeout": uint(5), "completion-timeout": uint(10),
		"allow-create-stream": true, "recalculate-metrics": true,
		// The instance init appends the SDK version to the user agent.
		"user-agent": "AWS-SDK-KVS-CPP-CLIENT/3.6.0",
	}
	for name, w := range want {
		got, err := k.GetProperty(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got != w {
			t.Errorf("%s = %#v, want %#v", name, got, w)
		}
	}
	// content-type is never set by the instance init: NULL until NULL->READY.
	if got, err := k.GetProperty("content-type"); err != nil || (got != nil && got != "") {
		t.Errorf("content-type = %#v (%v), want NULL", got, err)
	}
	// file-start-time is the creation time (epoch seconds), not the spec's 0.
	if got, err := k.GetProperty("file-start-time"); err != nil {
		t.Errorf("file-start-time: %v", err)
	} else if v, ok := got.(uint64); !ok || v < before || v > after {
		t.Errorf("file-start-time = %#v, want the creation time in [%d, %d]", got, before, after)
	}
	if err := k.SetProperty("stream-name", "cam-1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := k.GetProperty("stream-name"); got != "cam-1" {
		t.Errorf("stream-name after set = %v", got)
	}
	if !k.Has(gst.ElementFlagSink) {
		t.Error("kvssink must carry the SINK flag so pipelines wait for its EOS")
	}
}

// TestPadTemplatesMatchRealElement compares the request pad templates with
// the real element's static ones (audiosink_templ, videosink_templ).
func TestPadTemplatesMatchRealElement(t *testing.T) {
	real := map[string]string{
		"video_%u": "video/x-h264, stream-format = (string) avc, alignment = (string) au, width = (int) [ 16, MAX ], height = (int) [ 16, MAX ] ; " +
			"video/x-h265, alignment = (string) au, width = (int) [ 16, MAX ], height = (int) [ 16, MAX ] ;",
		"audio_%u": "audio/mpeg, mpegversion = (int) { 2, 4 }, stream-format = (string) raw, channels = (int) [ 1, MAX ], rate = (int) [ 1, MAX ] ; " +
			"audio/x-alaw, channels = (int) { 1, 2 }, rate = (int) [ 8000, 192000 ] ; " +
			"audio/x-mulaw, channels = (int) { 1, 2 }, rate = (int) [ 8000, 192000 ] ; ",
	}
	k, err := gst.NewElement("kvssink")
	if err != nil {
		t.Fatal(err)
	}
	templates := map[string]*gst.PadTemplate{}
	for _, tp := range k.GetPadTemplates() {
		templates[tp.Name()] = tp
	}
	if len(templates) != len(real) {
		t.Errorf("templates %v, want video_%%u and audio_%%u", templates)
	}
	for name, caps := range real {
		tp := templates[name]
		if tp == nil {
			t.Errorf("no pad template %s", name)
			continue
		}
		if tp.Direction() != gst.PadDirectionSink || tp.Presence() != gst.PadPresenceRequest {
			t.Errorf("%s: direction %v presence %v, want a sink request template", name, tp.Direction(), tp.Presence())
		}
		if want := gst.NewCapsFromString(caps); !tp.Caps().IsEqual(want) {
			t.Errorf("%s caps\n %s\nwant\n %s", name, tp.Caps(), want)
		}
	}
	for _, c := range []struct {
		template, caps string
		ok             bool
	}{
		{"video_%u", "video/x-h265, stream-format=byte-stream, alignment=au, width=320, height=240", true},
		{"video_%u", "video/x-h265, stream-format=hev1, alignment=au, width=320, height=240", true},
		{"video_%u", "video/x-h264, stream-format=avc, alignment=au, width=8, height=8", false},
		{"video_%u", "video/x-h264, stream-format=byte-stream, alignment=au, width=320, height=240", false},
		{"audio_%u", "audio/mpeg, mpegversion=4, stream-format=raw, channels=6, rate=48000", true},
		{"audio_%u", "audio/x-alaw, channels=2, rate=16000", true},
		{"audio_%u", "audio/x-alaw, channels=3, rate=8000", false},
		{"audio_%u", "audio/x-mulaw, channels=1, rate=4000", false},
	} {
		if tp := templates[c.template]; tp != nil && tp.Caps().CanIntersect(gst.NewCapsFromString(c.caps)) != c.ok {
			t.Errorf("%s accepts %q: %v, want %v", c.template, c.caps, !c.ok, c.ok)
		}
	}
}

// TestFlushDoesNotWaitForKeyframe: kvssink gives flushes no special
// handling, so delta frames right after a FLUSH_START/FLUSH_STOP still go in.
func TestFlushDoesNotWaitForKeyframe(t *testing.T) {
	clearEnv(t)
	cred := validCredentialFile(t)
	var flushed atomic.Bool
	out := run(t, pipelineTest{
		desc: withMod(h264(30, false)) + " ! kvssink name=k credential-path=" + cred,
		setup: func(p *gst.Pipeline) {
			mod, err := p.GetElementByName("mod")
			if err != nil {
				t.Fatal(err)
			}
			i := 0
			mod.GetStaticPad("src").AddProbe(gst.PadProbeTypeBuffer, func(pad *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
				defer func() { i++ }()
				// Frame 15 is a delta frame (keyframes every 10): flush right before it.
				if i != 15 || !info.GetBuffer().HasFlags(gst.BufferFlagDeltaUnit) {
					return gst.PadProbeOK
				}
				seg := pad.GetStickyEvent(gst.EventTypeSegment, 0)
				if seg == nil {
					return gst.PadProbeOK
				}
				ok := pad.PushEvent(gst.NewFlushStartEvent()) && pad.PushEvent(gst.NewFlushStopEvent(false)) && pad.PushEvent(seg)
				flushed.Store(ok)
				return gst.PadProbeOK
			})
		},
	})
	r := out.report
	if !flushed.Load() {
		t.Fatal("the flush was not sent before delta frame 15")
	}
	if !out.eos || len(out.errs) != 0 {
		t.Fatalf("eos=%v errors=%v", out.eos, out.errs)
	}
	if r.FramesAccepted["video_0"] != 30 || len(r.FramesDropped) != 0 || r.Keyframes != 3 {
		t.Errorf("accepted %v dropped %v keyframes %d, want all 30 frames (3 keyframes) and no drop after the flush",
			r.FramesAccepted, r.FramesDropped, r.Keyframes)
	}
}

// TestFailedRereadRaisesStreamError: a re-read of the credential file that
// fails raises a stream error with the read's status, every time, even while
// the cached credential still has 30 s or more.
func TestFailedRereadRaisesStreamError(t *testing.T) {
	clearEnv(t)
	// The stand-in's clock runs 29m24s ahead: the credential has 36-37 s
	// left, so every frame re-reads the file (now + 38 s is past the
	// expiration) while the credential stays usable for ~6 s, far longer
	// than these 25 frames take.
	t.Setenv(kvssinkstandin.EnvClockOffset, "29m24s")
	cred := writeCredentialFile(t, fmt.Sprintf("CREDENTIALS AKIAREREAD0001 %s s t\n", expiration(time.Now().Add(30*time.Minute+time.Second))))
	var signals atomic.Int64
	var status atomic.Uint64
	out := run(t, pipelineTest{
		desc: withMod(h264(25, false)) + " ! kvssink name=k credential-path=" + cred,
		setup: func(p *gst.Pipeline) {
			k, _ := p.GetElementByName("k")
			if _, err := k.Connect("stream-error", func(_ *gst.Element, s uint64) { signals.Add(1); status.Store(s) }); err != nil {
				t.Fatalf("connect stream-error: %v", err)
			}
			// kvssink started from the good file at NULL->READY (sinks change
			// state first); break it before the first frame reaches kvssink.
			bufferProbe(t, p, "mod", func(i int, _ *gst.PadProbeInfo) gst.PadProbeReturn {
				if i == 0 {
					if err := os.WriteFile(cred, []byte("NOT-CREDENTIALS x y z\n"), 0o600); err != nil {
						t.Errorf("break the credential file: %v", err)
					}
				}
				return gst.PadProbeOK
			})
		},
	})
	r := out.report
	if !out.eos || len(out.errs) != 0 {
		t.Fatalf("eos=%v errors=%v, want the stream to go on with the cached credential", out.eos, out.errs)
	}
	if r.FramesAccepted["video_0"] != 25 {
		t.Errorf("accepted %v dropped %v, want all 25 frames", r.FramesAccepted, r.FramesDropped)
	}
	if signals.Load() != 25 || status.Load() != 0x15000024 {
		t.Errorf("%d stream-error signals, last status 0x%x; want one per failed re-read (25) with 0x15000024", signals.Load(), status.Load())
	}
	if r.StreamErrorsTotal != 25 || len(r.StreamErrors) != 25 || r.StreamErrors[0].Status != "0x15000024" ||
		!strings.Contains(r.StreamErrors[0].Message, "re-reading") {
		t.Errorf("stream errors total %d: %+v, want 25 with status 0x15000024", r.StreamErrorsTotal, r.StreamErrors)
	}
	if len(r.CredentialReads) != 2 || !r.CredentialReads[0].OK || r.CredentialReads[1].OK ||
		r.CredentialReads[1].Count != 25 || r.CredentialReads[1].Status != "0x15000024" {
		t.Errorf("credential reads %+v, want the start read and 25 failed re-reads", r.CredentialReads)
	}
}

// TestStartFailsWithCredentialExpiringSoon: a credential file with under
// 30 s left fails NULL->READY (stream creation needs a streaming token).
func TestStartFailsWithCredentialExpiringSoon(t *testing.T) {
	clearEnv(t)
	cred := writeCredentialFile(t, fmt.Sprintf("CREDENTIALS AKIASOON00001 %s s t\n", expiration(time.Now().Add(20*time.Second))))
	reportPath := filepath.Join(t.TempDir(), "report.json")
	p, err := gst.NewPipelineFromString(h264(10, false) + " ! kvssink name=k credential-path=" + cred + " report=" + reportPath)
	if err != nil {
		t.Fatal(err)
	}
	gerr := startFailure(t, p)
	debug := gerr.DebugString()
	for _, want := range []string{"Failed to create stream. Error: ", "0x52000049",
		"Invalid auth token as it is expiring in less than 30 seconds", "********0001"} {
		if !strings.Contains(debug, want) {
			t.Errorf("debug %q does not contain %q", debug, want)
		}
	}
	r, err := kvssinkstandin.ReadReport(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	if r.Started || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "0x52000049") {
		t.Errorf("report started=%v errors %v, want the start failure", r.Started, r.Errors)
	}
}

// TestStartFailsWithPlaceholderSecret: with access-key set, kvssink takes
// secret-key as it is, even its placeholder, and every signed call fails.
func TestStartFailsWithPlaceholderSecret(t *testing.T) {
	clearEnv(t)
	p, err := gst.NewPipelineFromString(h264(10, false) + " ! kvssink name=k access-key=AKIASTATIC0001")
	if err != nil {
		t.Fatal(err)
	}
	gerr := startFailure(t, p)
	if !strings.Contains(gerr.DebugString(), `Failed to create stream. Error: the access-key property is set but secret-key is still its placeholder "secret_key"`) {
		t.Fatalf("debug %q", gerr.DebugString())
	}
}
