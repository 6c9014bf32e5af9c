package relay_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/internal/uridesc"
	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// hlsSource is the incident report's source chain, as relays run it.
func hlsSource(srv *servers.HLSServer) string {
	return "source=souphttpsrc location=" + srv.PlaylistURL() + " ! hlsdemux ! decodebin"
}

func newHLS(t *testing.T) *servers.HLSServer {
	t.Helper()
	return servers.NewHLSServer(t, servers.HLSOptions{StartSegments: 3})
}

// A playlist that stops updating gives no error at all: hlsdemux just waits.
// stall-timeout turns the silence into a rebuild.
func TestHLSFrozenPlaylistIsAStall(t *testing.T) {
	srv := newHLS(t)
	r := startRelay(t, hlsSource(srv), "stall-timeout="+sec(3*time.Second))
	r.waitStreaming(t)

	srv.FreezePlaylist(true)
	r.WaitFor(30*time.Second, 1, "a stall restart on the frozen playlist", restartWithReason("stall"))
	srv.FreezePlaylist(false)
	r.WaitFor(40*time.Second, 1, "recovery once the playlist moves again", recovered)
	r.waitGrowth(t, 20*time.Second)
	r.finish(t)
}

// Segments answered 503 (and then 404) for a while: the relay retries until
// the server serves again.
func TestHLSSegmentErrors(t *testing.T) {
	for _, code := range []int{http.StatusServiceUnavailable, http.StatusNotFound} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			srv := newHLS(t)
			r := startRelay(t, hlsSource(srv), "stall-timeout="+sec(3*time.Second))
			r.waitStreaming(t)

			srv.SegmentStatus(code)
			r.WaitFor(40*time.Second, 1, "a restart while segments fail", restartWithReason("error", "eos", "stall"))
			srv.SegmentStatus(0)
			r.WaitFor(40*time.Second, 1, "recovery once segments are served", recovered)
			r.waitGrowth(t, 20*time.Second)
			r.finish(t)
		})
	}
}

// The server drops connections half-way through each segment.
func TestHLSConnectionDroppedMidSegment(t *testing.T) {
	srv := newHLS(t)
	r := startRelay(t, hlsSource(srv), "stall-timeout="+sec(3*time.Second))
	r.waitStreaming(t)

	srv.DropMidSegment(true)
	r.WaitFor(40*time.Second, 1, "a restart while segments are cut", restartWithReason("error", "eos", "stall"))
	srv.DropMidSegment(false)
	r.WaitFor(40*time.Second, 1, "recovery once segments are whole again", recovered)
	r.waitGrowth(t, 20*time.Second)
	r.finish(t)
}

// The case that defeats hlsdemux and ffmpeg: the encoder behind the playlist
// restarts and segment numbering starts again at 0. A client that kept the
// old media sequence waits, without any error, until the new numbers pass
// the old ones. reconnectbin's stall detection rebuilds the client, which
// starts fresh on the new playlist.
func TestHLSEncoderRestartNumberingFromZero(t *testing.T) {
	srv := servers.NewHLSServer(t, servers.HLSOptions{StartSegments: 3})
	// Let the old numbering run well ahead of what the new encoder will
	// have produced by the time the relay should be back.
	if err := srv.WaitSegments(8, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	stall := 3 * time.Second
	r := startRelay(t, hlsSource(srv), "stall-timeout="+sec(stall))
	r.waitStreaming(t)

	if err := srv.RestartEncoderBehindFrozenPlaylist(2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Back within stall-timeout plus a fresh client's start (playlist, first
	// segment, decoder), not after the old numbers are caught up with.
	rec := r.WaitFor(stall+15*time.Second, 1, "recovery on the renumbered playlist", recovered)
	r.waitGrowth(t, 20*time.Second)
	var reasons []string
	for _, m := range r.restarts() {
		reasons = append(reasons, m.Field("reason"))
	}
	t.Logf("outage %v, restart reasons %v", nsField(t, rec, "outage"), reasons)
	r.finish(t)
}

// The uri property with an HLS URI: the relay survives the server going
// away and coming back, several times in one run, each outage rebuilding the
// source. On GStreamer 1.22 hlsdemux2 (which uridecodebin3 picks for HLS)
// wrote into freed memory when a playlist refresh failed while the CPU was
// busy (adaptivedemux2's download helper unlocked a request its blocking
// caller had already freed), and gst-launch crashed now and then; reconnectbin
// uses the legacy hlsdemux for HLS URIs there. A crash fails the test (the
// harness watches for GStreamer's "Caught SIG...").
func TestURIPropertyRelaysAndRecovers(t *testing.T) {
	srv := newHLS(t)
	r := startRelay(t, "uri="+srv.PlaylistURL(), "stall-timeout="+sec(3*time.Second))
	r.waitStreaming(t)
	const outages = 3
	for i := 1; i <= outages; i++ {
		restartsBefore := len(r.restarts())
		srv.StopHTTP()
		r.WaitFor(40*time.Second, restartsBefore+1, fmt.Sprintf("a restart while the server is down (outage %d)", i),
			restartWithReason("error", "eos", "stall", "start-failed"))
		if err := srv.StartHTTP(); err != nil {
			t.Fatal(err)
		}
		r.WaitFor(40*time.Second, i, fmt.Sprintf("recovery once the server is back (outage %d)", i), recovered)
		r.waitGrowth(t, 20*time.Second)
	}
	r.finish(t)
	// Where hlsdemux2 has the bug, the relay must not have used it: this
	// fails every run, where the crash above needs luck.
	if v, ok := hlsdemux2Version(t); ok && uridesc.UseLegacyHLS(srv.PlaylistURL(),
		uridesc.Runtime{HLSDemux2: v, HLSDemux2OK: true, Legacy: true}) {
		// hlsdemux2 instances are named hlsdemux2-0, ...; the legacy
		// hlsdemux's hlsdemux0, hlsdemux1, hlsdemux2, ...
		if n := r.Count(func(m harness.Message) bool { return strings.HasPrefix(m.Source, "hlsdemux2-") }); n > 0 {
			t.Errorf("hlsdemux2 %v posted %d messages: the uri HLS source ran through it, not through the legacy hlsdemux", v, n)
		}
	}
}

// hlsdemux2Version is the installed adaptivedemux2 plugin's version, as
// gst-inspect-1.0 reports it (false when the plugin is missing).
func hlsdemux2Version(t *testing.T) (uridesc.Version, bool) {
	t.Helper()
	out, code := harness.Run(t, harness.Env(t), 30*time.Second, "gst-inspect-1.0", "adaptivedemux2")
	if code != 0 {
		return uridesc.Version{}, false
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Version" {
			return uridesc.ParseVersion(f[1])
		}
	}
	return uridesc.Version{}, false
}

// Segments answered 404 for 10 s, three times over (issue #12). In such an
// outage GStreamer 1.22's legacy hlsdemux deadlocked the thread of a soup
// session shared by its playlist and fragment sources: the segment's 404 is
// handled on the thread that must also finish the playlist refresh holding
// the lock the handler waits for. Every later instance inherited that
// session: no request reached the server after the fault, stall rebuilds
// forever, and gst-launch-1.0 could not exit (gst_deinit waits for the
// stuck task threads). The relay must come back after each outage and exit
// cleanly at the end.
func TestHLSLongSegmentOutageRecovers(t *testing.T) {
	const outage = 10 * time.Second
	srv := newHLS(t)
	r := startRelay(t, hlsSource(srv), "stall-timeout="+sec(3*time.Second))
	r.waitStreaming(t)

	isRestart := harness.Element("reconnectbin-restart")
	defer func() {
		if t.Failed() {
			t.Logf("HTTP requests since the last outage ended: %v", srv.RequestCounts())
		}
	}()
	for round := 1; round <= 3; round++ {
		restarts := r.Count(isRestart)
		start := time.Now()
		srv.SegmentStatus(http.StatusNotFound)
		r.WaitFor(60*time.Second, restarts+2, fmt.Sprintf("round %d: two rebuilds while segments answer 404", round), isRestart)
		// The outage's length is the scenario: segments stay 404 for that
		// long, whatever the relay does meanwhile.
		time.Sleep(time.Until(start.Add(outage)))
		srv.SegmentStatus(0)
		srv.ResetRequestCounts()
		lifted := time.Now()
		r.WaitFor(90*time.Second, round, fmt.Sprintf("round %d: recovery once segments are served again", round), recovered)
		t.Logf("round %d: back %v after the outage ended", round, time.Since(lifted).Round(100*time.Millisecond))
		r.waitGrowth(t, 30*time.Second)
	}
	r.finish(t)
}
