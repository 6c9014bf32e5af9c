package servers

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func TestTSServerServesH264AndSurvivesKillRestart(t *testing.T) {
	t.Parallel()
	s := NewTSServer(t, TSOptions{Media: MediaOptions{Width: 352, Height: 288, Audio: true}})
	requireH264(t, s.URL(), 352, 288, true)
	requireGstClientPlays(t, "tcpclientsrc host=127.0.0.1 port="+itoa(s.Port())+" ! tsdemux ! h264parse")

	// Through toxiproxy too: that is how the reconnect tests will use it.
	proxy := NewProxy(t, s.Addr())
	requireH264(t, "tcp://"+proxy.Addr(), 352, 288, true)

	if testing.Short() {
		return
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	requireRefused(t, s.Addr())
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	requireH264(t, s.URL(), 352, 288, true)
}

// readSome reads until it has n bytes or the deadline passes.
func readSome(conn net.Conn, n int, timeout time.Duration) (int, error) {
	if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	buf := make([]byte, n)
	return io.ReadFull(conn, buf)
}

// drain reads until no byte arrives for quiet, returning how much it read.
func drain(conn net.Conn, quiet time.Duration) (int, error) {
	total := 0
	buf := make([]byte, 64<<10)
	for {
		if err := conn.SetReadDeadline(time.Now().Add(quiet)); err != nil {
			return total, err
		}
		n, err := conn.Read(buf)
		total += n
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func TestTSServerPauseStallsWithConnectionOpen(t *testing.T) {
	t.Parallel()
	s := NewTSServer(t, TSOptions{})
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := readSome(conn, 4096, 10*time.Second); err != nil {
		t.Fatalf("no TS bytes from a running server: %v", err)
	}

	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	// Whatever was already in flight drains; after that a stream that
	// normally delivers ~50 KB/s must deliver nothing, yet stay connected.
	if _, err := drain(conn, 700*time.Millisecond); err != nil {
		t.Fatalf("connection broke while paused: %v", err)
	}
	if n, err := drain(conn, 700*time.Millisecond); n != 0 || err != nil {
		t.Fatalf("paused server still sent %d bytes (err %v)", n, err)
	}

	if err := s.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := readSome(conn, 4096, 10*time.Second); err != nil {
		t.Fatalf("no TS bytes on the same connection after Resume: %v", err)
	}

	// Stop is graceful: gst-launch-1.0 -e turns SIGINT into EOS and exits 0.
	if err := s.Process().Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Process().Wait(10 * time.Second); err != nil {
		t.Fatalf("producer did not exit cleanly on Stop: %v", err)
	}
}

func TestSRTSenderServesH264AndSurvivesKillRestart(t *testing.T) {
	t.Parallel()
	s := NewSRTSender(t, SRTOptions{Media: MediaOptions{Audio: true}})
	requireH264(t, s.URL()+"?mode=caller", 320, 240, true)
	requireGstClientPlays(t, "srtsrc uri="+s.URL()+" ! tsdemux ! h264parse")
	if testing.Short() {
		return
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	requireH264(t, s.URL()+"?mode=caller", 320, 240, true)
}

func TestRTSPServerServesH264AndSurvivesKillRestart(t *testing.T) {
	t.Parallel()
	s := NewRTSPServer(t, RTSPOptions{Media: MediaOptions{Width: 256, Height: 144}})
	requireH264(t, s.URL(), 256, 144, false, "-rtsp_transport", "tcp")
	requireGstClientPlays(t, "rtspsrc location="+s.URL()+" ! rtph264depay ! h264parse")
	if testing.Short() {
		return
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	requireRefused(t, net.JoinHostPort("127.0.0.1", itoa(s.Port())))
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	requireH264(t, s.URL(), 256, 144, false, "-rtsp_transport", "tcp")
}

func TestRTSPServerCustomLaunchAndPath(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("extra RTSP server start")
	}
	s := NewRTSPServer(t, RTSPOptions{
		Path: "stream1",
		Launch: "( videotestsrc is-live=true ! video/x-raw,width=160,height=120,framerate=15/1 ! " +
			"x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! rtph264pay name=pay0 pt=96 config-interval=-1 )",
	})
	if want := "/stream1"; s.URL()[len(s.URL())-len(want):] != want {
		t.Fatalf("URL %q does not end in %q", s.URL(), want)
	}
	requireH264(t, s.URL(), 160, 120, false, "-rtsp_transport", "tcp")
}
