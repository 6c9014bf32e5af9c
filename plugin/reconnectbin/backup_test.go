package reconnectbin_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// The main and backup sources of these tests differ in brightness, so the
// output tells which one reached it: white (luma 235), green (about 145 to
// 173), and fallback's black (16).
type picture int

const (
	black picture = iota
	green
	white
	otherPicture
)

func (p picture) String() string {
	return [...]string{"black", "green", "white", "other"}[p]
}

func classify(meanLuma int) picture {
	switch {
	case meanLuma > 200:
		return white
	case meanLuma > 110 && meanLuma < 195:
		return green
	case meanLuma < 40:
		return black
	}
	return otherPicture
}

// frame is one raw I420 frame seen downstream.
type frame struct {
	pts gst.ClockTime
	pic picture
}

// pictures records the frames leaving through a raw I420 pad.
type pictures struct {
	mu     sync.Mutex
	frames []frame
}

func watchPictures(pad *gst.Pad, width, height int) *pictures {
	p := &pictures{}
	pad.AddProbe(gst.PadProbeTypeBuffer, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		buf := info.GetBuffer()
		if buf == nil {
			return gst.PadProbeOK
		}
		m := buf.Map(gst.MapRead)
		if m == nil {
			return gst.PadProbeOK
		}
		data := m.Bytes()
		n, sum := 0, 0
		// The luma plane comes first; sample its middle rows (the borders
		// of a letterboxed picture are black whatever the source).
		for i := width * height / 4; i < 3*width*height/4 && i < len(data); i += 7 {
			sum += int(data[i])
			n++
		}
		buf.Unmap()
		if n == 0 {
			return gst.PadProbeOK
		}
		p.mu.Lock()
		p.frames = append(p.frames, frame{pts: buf.PresentationTimestamp(), pic: classify(sum / n)})
		p.mu.Unlock()
		return gst.PadProbeOK
	})
	return p
}

// runs compresses the frames to the pictures shown, in order, with how many
// frames each lasted.
func (p *pictures) runs() (pics []picture, lengths []int, firstPTS []gst.ClockTime) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.frames {
		if n := len(pics); n > 0 && pics[n-1] == f.pic {
			lengths[n-1]++
			continue
		}
		pics, lengths, firstPTS = append(pics, f.pic), append(lengths, 1), append(firstPTS, f.pts)
	}
	return pics, lengths, firstPTS
}

// handoverGap is the gap in output timestamps where the picture last
// changed from one to the other: between the last frame of one and the
// first of the other.
func (p *pictures) handoverGap(one, other picture) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	gap, found := time.Duration(0), false
	for i := 1; i < len(p.frames); i++ {
		if p.frames[i-1].pic == one && p.frames[i].pic == other {
			gap, found = time.Duration(p.frames[i].pts-p.frames[i-1].pts), true
		}
	}
	return gap, found
}

// since counts the frames of picture pic after the first from.
func (p *pictures) count(pic picture, from int) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for i := from; i < len(p.frames); i++ {
		if p.frames[i].pic == pic {
			n++
		}
	}
	return n
}

func (p *pictures) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.frames)
}

// describe is the run list for failure messages: "white x40, green x75, ...".
func (p *pictures) describe() string {
	pics, lengths, _ := p.runs()
	parts := make([]string, len(pics))
	for i := range pics {
		parts[i] = fmt.Sprintf("%s x%d", pics[i], lengths[i])
	}
	return strings.Join(parts, ", ")
}

// contains reports whether the runs show want in this order (other
// pictures in between allowed).
func containsInOrder(pics []picture, want ...picture) bool {
	i := 0
	for _, p := range pics {
		if i < len(want) && p == want[i] {
			i++
		}
	}
	return i == len(want)
}

func liveSourceIs(source string) func(*gst.Message) bool {
	isLive := harness.ElementMessage("reconnectbin-live-source")
	return func(m *gst.Message) bool { return isLive(m) && messageField(m, "source") == source }
}

func statUint(t *testing.T, rb *gst.Element, name string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(statsOf(t, rb)[name], 10, 64)
	if err != nil {
		t.Fatalf("stats %s: %v", name, err)
	}
	return v
}

const backupTestCaps = "video/x-raw,format=I420,width=64,height=48,framerate=25/1"

// A main source that ends every 1.6 s and comes back 3 s later: while it is
// down the backup (green) feeds the output, not black and not a gap; once
// the main has been live for main-steady-time it feeds the output again
// (white) and the backup is released, and freed. The frames of the two never
// interleave (the one not feeding the output is dropped whole), the output's
// timestamps only go forward, and each change is announced and counted.
func TestBackupSourceFeedsTheOutputWhileTheMainIsDown(t *testing.T) {
	p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb retry-delay=3000000000 max-retry-delay=3000000000
		source="videotestsrc is-live=true pattern=white num-buffers=40 ! video/x-raw,framerate=25/1"
		fallback-source="videotestsrc is-live=true pattern=green ! video/x-raw,framerate=25/1,width=320,height=240"
		main-steady-time=500000000 output-caps="%s" fallback=black fallback-hold=0
		! fakesink name=sink sync=false`, backupTestCaps))
	sink, err := p.GetElementByName("sink")
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := p.GetElementByName("rb")
	d := watchDownstream(t, sink.GetStaticPad("sink"))
	pics := watchPictures(sink.GetStaticPad("sink"), 64, 48)
	p.Start()
	defer func() { t.Logf("pictures out: %s", pics.describe()) }()

	p.WaitFor(30*time.Second, 1, "the output switched to the backup", liveSourceIs("backup"))
	if st := statsOf(t, rb); st["live-source"] != "backup" && st["live-source"] != "main" {
		t.Errorf("stats live-source=%q while the backup was feeding", st["live-source"])
	}
	m := p.WaitFor(30*time.Second, 2, "the output switched back to the main", liveSourceIs("main"))
	if prev := messageField(m, "previous"); prev != "backup" {
		t.Errorf("reconnectbin-live-source source=main previous=%q, want previous=backup", prev)
	}
	from := pics.len()
	harness.WaitUntil(t, 30*time.Second, "white frames after the switch back", func() bool { return pics.count(white, from) > 5 })
	// Two more cycles: every released backup instance is freed (a camera
	// that fails now and then for days must not leave one behind each time).
	p.WaitFor(60*time.Second, 4, "two more switches back to the main", liveSourceIs("main"))
	harness.WaitUntil(t, 30*time.Second, "released backup instances freed", func() bool {
		runtimeGC()
		// The main's instance, and at most one instance on its way out.
		return statUint(t, rb, "instances-allocated") <= 2
	})
	_ = p.SetState(gst.StateNull)

	runs, lengths, _ := pics.runs()
	if !containsInOrder(runs, white, green, white) {
		t.Fatalf("the output showed %s; want the main (white), then the backup (green), then the main again", pics.describe())
	}
	for i, pic := range runs[:len(runs)-1] {
		if (pic == white || pic == green) && lengths[i] < 5 {
			t.Errorf("a run of %d %s frames: the sources' frames interleave (%s)", lengths[i], pic, pics.describe())
		}
		if pic == otherPicture {
			t.Errorf("%d frames neither source nor fallback would show (%s)", lengths[i], pics.describe())
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.backwards != 0 {
		t.Errorf("running time went backwards %d times downstream", d.backwards)
	}
	if d.streamStarts != 1 || d.eos != 0 {
		t.Errorf("downstream saw %d stream-starts and %d EOS; want one stream", d.streamStarts, d.eos)
	}
	if toBackup, toMain := statUint(t, rb, "switches-to-backup"), statUint(t, rb, "switches-to-main"); toBackup < 1 || toMain < 1 {
		t.Errorf("stats switches-to-backup=%d switches-to-main=%d", toBackup, toMain)
	}
}

// A main that flaps (up 1.6 s, down 0.5 s) is never steady for
// main-steady-time: once on the backup, the output stays there, not one
// frame of the main's short lives reaching it, though the main keeps
// coming back; and its failures leave no fallback frame in the backup's
// picture.
func TestFlappingMainLeavesTheOutputOnTheBackup(t *testing.T) {
	p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb retry-delay=500000000 max-retry-delay=500000000
		source="videotestsrc is-live=true pattern=white num-buffers=40 ! video/x-raw,framerate=25/1"
		fallback-source="videotestsrc is-live=true pattern=green ! video/x-raw,framerate=25/1"
		main-steady-time=5000000000 output-caps="%s" fallback=black fallback-hold=0
		! fakesink name=sink sync=false`, backupTestCaps))
	sink, err := p.GetElementByName("sink")
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := p.GetElementByName("rb")
	pics := watchPictures(sink.GetStaticPad("sink"), 64, 48)
	p.Start()
	defer func() { t.Logf("pictures out: %s", pics.describe()) }()
	p.WaitFor(30*time.Second, 1, "the output switched to the backup", liveSourceIs("backup"))
	// The main's first instance had no outage to recover from: three
	// recoveries are three short lives after the switch.
	p.WaitFor(60*time.Second, 3, "the main back three times", harness.ElementMessage("reconnectbin-recovered"))
	_ = p.SetState(gst.StateNull)

	runs, _, _ := pics.runs()
	if len(runs) < 2 || runs[0] != white || runs[len(runs)-1] != green || containsInOrder(runs, green, white) {
		t.Errorf("the output showed %s; want the main (white) until it first failed, then the backup (green) only", pics.describe())
	}
	if containsInOrder(runs, green, black) {
		t.Errorf("the output showed %s: fallback frames while the backup fed it (a main failing leaves no hole then)", pics.describe())
	}
	if n := len(matching(p, liveSourceIs("main"))); n != 1 {
		t.Errorf("%d reconnectbin-live-source source=main messages; want only the one at the start", n)
	}
	if st := statsOf(t, rb); st["switches-to-main"] != "0" {
		t.Errorf("stats switches-to-main=%s for a main never steady", st["switches-to-main"])
	}
}

// An MPEG-TS camera over TCP whose server dies: the backup camera (another
// TS server, tcp:// URI) feeds the output through the same output-caps
// normaliser; while it is down too, fallback's black, until it is back
// (its own retries); once the main's server is back and has been live for
// main-steady-time, the main again, and the backup is released.
func TestBackupCameraOverTCPWhileTheMainServerIsDown(t *testing.T) {
	mainCam := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Pattern: "white"}})
	backupCam := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Pattern: "green"}})
	p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb uri=%s fallback-uri=%s stall-timeout=3000000000
		main-steady-time=2000000000 output-caps="%s" fallback=black fallback-hold=0
		! fakesink name=sink sync=false`, mainCam.URL(), backupCam.URL(), backupTestCaps))
	sink, err := p.GetElementByName("sink")
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := p.GetElementByName("rb")
	d := watchDownstream(t, sink.GetStaticPad("sink"))
	pics := watchPictures(sink.GetStaticPad("sink"), 64, 48)
	p.Start()
	defer func() { t.Logf("pictures out: %s", pics.describe()) }()
	harness.WaitUntil(t, 40*time.Second, "the main camera's picture", func() bool { return pics.count(white, 0) > 10 })
	if st := statsOf(t, rb); st["backup-status"] != "stopped" {
		t.Errorf("backup-status=%q before the main ever failed; the backup is cold", st["backup-status"])
	}

	if err := mainCam.Kill(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(40*time.Second, 1, "the output switched to the backup", liveSourceIs("backup"))
	from := pics.len()
	harness.WaitUntil(t, 30*time.Second, "the backup camera's picture", func() bool { return pics.count(green, from) > 10 })
	if st := statsOf(t, rb); st["live-source"] != "backup" || st["backup-status"] != "running" {
		t.Errorf("stats live-source=%q backup-status=%q while the main is down", st["live-source"], st["backup-status"])
	}

	// Both down: fallback's black, and the backup retried on its own.
	if err := backupCam.Kill(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(40*time.Second, 2, "no source feeding the output", liveSourceIs("none"))
	from = pics.len()
	harness.WaitUntil(t, 30*time.Second, "fallback frames while both are down", func() bool { return pics.count(black, from) > 10 })
	if st := statsOf(t, rb); st["live-source"] != "none" || st["backup-status"] != "retrying" {
		t.Errorf("stats live-source=%q backup-status=%q while both are down", st["live-source"], st["backup-status"])
	}
	if err := backupCam.Restart(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(40*time.Second, 2, "the output switched to the backup again", liveSourceIs("backup"))
	from = pics.len()
	harness.WaitUntil(t, 30*time.Second, "the backup camera's picture again", func() bool { return pics.count(green, from) > 10 })
	if statUint(t, rb, "backup-restarts") < 1 {
		t.Errorf("stats backup-restarts=0 after the backup camera died")
	}

	if err := mainCam.Restart(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(60*time.Second, 2, "the output switched back to the main", liveSourceIs("main"))
	from = pics.len()
	harness.WaitUntil(t, 30*time.Second, "the main camera's picture again", func() bool { return pics.count(white, from) > 10 })
	harness.WaitUntil(t, 30*time.Second, "the backup released", func() bool { return statsOf(t, rb)["backup-status"] == "stopped" })
	_ = p.SetState(gst.StateNull)

	runs, _, _ := pics.runs()
	if !containsInOrder(runs, white, green, black, green, white) {
		t.Fatalf("the output showed %s; want the main (white), the backup (green), fallback (black), the backup, the main again", pics.describe())
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.backwards != 0 {
		t.Errorf("running time went backwards %d times downstream", d.backwards)
	}
}

// Passthrough (no output-caps): H.264 from two TS cameras leaves the bin as
// it is, and each change of source starts on a keyframe, so a decoder
// downstream never starts mid-GOP: the first decoded frame of each source
// is a keyframe of the encoded output, the backup goes on feeding the output
// until the main's keyframe comes (no hole while waiting for it), and the
// encoded timestamps only go forward.
func TestBackupSwitchesStartOnAKeyframeInPassthrough(t *testing.T) {
	servers.RequireElements(t, "avdec_h264")
	// A long GOP (2 s), so a switch that did not wait for a keyframe
	// would be seen.
	media := servers.MediaOptions{Width: 64, Height: 48, KeyIntMax: 50}
	mainMedia, backupMedia := media, media
	mainMedia.Pattern, backupMedia.Pattern = "white", "green"
	mainCam := servers.NewTSServer(t, servers.TSOptions{Media: mainMedia})
	backupCam := servers.NewTSServer(t, servers.TSOptions{Media: backupMedia})
	p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb stall-timeout=3000000000 main-steady-time=1000000000
		source="tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse"
		fallback-source="tcpclientsrc host=127.0.0.1 port=%d ! tsdemux ! h264parse"
		! h264parse name=parse ! avdec_h264 ! videoconvert ! video/x-raw,format=I420 ! fakesink name=sink sync=false`,
		mainCam.Port(), backupCam.Port()))
	parse, err := p.GetElementByName("parse")
	if err != nil {
		t.Fatal(err)
	}
	sink, _ := p.GetElementByName("sink")
	d := watchDownstream(t, parse.GetStaticPad("sink"))
	var keyMu sync.Mutex
	keyframeAt := map[gst.ClockTime]bool{}
	parse.GetStaticPad("sink").AddProbe(gst.PadProbeTypeBuffer, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		if buf := info.GetBuffer(); buf != nil {
			keyMu.Lock()
			keyframeAt[buf.PresentationTimestamp()] = !buf.HasFlags(gst.BufferFlagDeltaUnit)
			keyMu.Unlock()
		}
		return gst.PadProbeOK
	})
	pics := watchPictures(sink.GetStaticPad("sink"), 64, 48)
	p.Start()
	defer func() { t.Logf("pictures out: %s", pics.describe()) }()
	harness.WaitUntil(t, 40*time.Second, "the main camera's picture", func() bool { return pics.count(white, 0) > 10 })

	if err := mainCam.Kill(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(40*time.Second, 1, "the output switched to the backup", liveSourceIs("backup"))
	from := pics.len()
	harness.WaitUntil(t, 30*time.Second, "the backup camera's picture", func() bool { return pics.count(green, from) > 10 })
	if err := mainCam.Restart(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(60*time.Second, 2, "the output switched back to the main", liveSourceIs("main"))
	from = pics.len()
	harness.WaitUntil(t, 30*time.Second, "the main camera's picture again", func() bool { return pics.count(white, from) > 10 })
	_ = p.SetState(gst.StateNull)

	runs, _, firstPTS := pics.runs()
	if !containsInOrder(runs, white, green, white) {
		t.Fatalf("the output showed %s; want the main (white), the backup (green), the main again", pics.describe())
	}
	// The backup feeds the output until the main's keyframe: no hole
	// waiting for it (a GOP is 2 s here).
	if gap, ok := pics.handoverGap(green, white); !ok || gap > 500*time.Millisecond {
		t.Errorf("the output went from the backup to the main with a %v gap (found %v); want the backup until the main's keyframe", gap, ok)
	}
	keyMu.Lock()
	for i, pic := range runs {
		if pic == otherPicture {
			t.Errorf("decoded frames that are neither camera's picture (a source started mid-GOP?): %s", pics.describe())
		}
		if key, seen := keyframeAt[firstPTS[i]]; !seen || !key {
			t.Errorf("the %s run at %v starts on an encoded buffer that is not a keyframe (seen %v)", pic, firstPTS[i], seen)
		}
	}
	keyMu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.backwards != 0 {
		t.Errorf("running time went backwards %d times downstream", d.backwards)
	}
}

// A main camera with audio and a video-only backup camera: while the backup
// feeds the picture, the audio pad goes on with fallback's silence (a muxer
// or kvssink waiting for both streams keeps writing); the main's audio comes
// back with its picture, and the audio's timestamps never go backwards.
func TestBackupWithAnAudioPadKeepsTheAudioGoing(t *testing.T) {
	mainCam := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Pattern: "white", Audio: true}})
	backupCam := servers.NewTSServer(t, servers.TSOptions{Media: servers.MediaOptions{Pattern: "green"}})
	p := harness.NewPipeline(t, fmt.Sprintf(`reconnectbin name=rb uri=%s fallback-uri=%s stall-timeout=3000000000
		main-steady-time=2000000000 output-caps="%s" fallback=black fallback-hold=0
		output-audio-caps="audio/x-raw,format=S16LE,rate=48000,channels=2,layout=interleaved"
		! queue name=vq ! fakesink sync=false  rb.audio ! queue name=aq ! fakesink sync=false`, mainCam.URL(), backupCam.URL(), backupTestCaps))
	vq, err := p.GetElementByName("vq")
	if err != nil {
		t.Fatal(err)
	}
	aq, _ := p.GetElementByName("aq")
	pics := watchPictures(vq.GetStaticPad("src"), 64, 48)
	var mu sync.Mutex
	var audioBuffers, audioBackwards, tone int
	lastAudio := gst.ClockTime(0)
	aq.GetStaticPad("src").AddProbe(gst.PadProbeTypeBuffer, func(_ *gst.Pad, info *gst.PadProbeInfo) gst.PadProbeReturn {
		if buf := info.GetBuffer(); buf != nil && buf.PresentationTimestamp() != gst.ClockTimeNone {
			mu.Lock()
			if audioBuffers > 0 && buf.PresentationTimestamp() < lastAudio {
				audioBackwards++
			}
			audioBuffers++
			lastAudio = buf.PresentationTimestamp()
			mu.Unlock()
			if m := buf.Map(gst.MapRead); m != nil {
				heard := false
				for _, b := range m.Bytes() {
					if b != 0 {
						heard = true
						break
					}
				}
				buf.Unmap()
				if heard {
					mu.Lock()
					tone++
					mu.Unlock()
				}
			}
		}
		return gst.PadProbeOK
	})
	audioCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return audioBuffers
	}
	toneCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		return tone
	}
	p.Start()
	defer func() { t.Logf("pictures out: %s", pics.describe()) }()
	harness.WaitUntil(t, 40*time.Second, "the main camera's picture", func() bool { return pics.count(white, 0) > 10 })

	if err := mainCam.Kill(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(40*time.Second, 1, "the output switched to the backup", liveSourceIs("backup"))
	audio0 := audioCount()
	from := pics.len()
	harness.WaitUntil(t, 30*time.Second, "the backup camera's picture with audio (silence) beside it", func() bool {
		return pics.count(green, from) > 25 && audioCount() > audio0+25
	})

	if err := mainCam.Restart(); err != nil {
		t.Fatal(err)
	}
	p.WaitFor(60*time.Second, 2, "the output switched back to the main", liveSourceIs("main"))
	from = pics.len()
	tone0 := toneCount()
	harness.WaitUntil(t, 30*time.Second, "the main camera's picture and its tone again", func() bool {
		return pics.count(white, from) > 25 && toneCount() > tone0+25
	})
	_ = p.SetState(gst.StateNull)

	if runs, _, _ := pics.runs(); !containsInOrder(runs, white, green, white) {
		t.Fatalf("the output showed %s; want the main (white), the backup (green), the main again", pics.describe())
	}
	mu.Lock()
	defer mu.Unlock()
	if audioBackwards != 0 {
		t.Errorf("audio timestamps went backwards %d times", audioBackwards)
	}
}
