// Package ops_test checks what an operator relies on when a relay runs under
// systemd and ships metrics: the sd_notify protocol spoken by the plugin
// (against a real unix datagram socket standing in for systemd) and the
// CloudWatch Embedded Metric Format lines it writes.
package ops_test

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvsrelay/kvsrelay/test/harness"
	"github.com/kvsrelay/kvsrelay/test/servers"
)

// notifySocket is a unix datagram socket playing systemd's side.
type notifySocket struct {
	conn *net.UnixConn
	path string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	// Unix socket paths are limited to ~108 bytes: keep it short.
	dir, err := os.MkdirTemp("", "kvsn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &notifySocket{conn: conn, path: path}
}

// next returns the next datagram, or an error at the deadline.
func (s *notifySocket) next(deadline time.Time) (string, error) {
	buf := make([]byte, 4096)
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return "", err
	}
	n, err := s.conn.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// waitFor reads datagrams until one contains want.
func (s *notifySocket) waitFor(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg, err := s.next(deadline)
		if err != nil {
			t.Fatalf("waiting for %s from the relay: %v", want, err)
		}
		if strings.Contains(msg, want) {
			return
		}
	}
}

// countWithin counts datagrams containing want that arrive before the deadline.
func (s *notifySocket) countWithin(want string, d time.Duration) int {
	deadline := time.Now().Add(d)
	n := 0
	for {
		msg, err := s.next(deadline)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return n
		}
		if err != nil {
			return n
		}
		if strings.Contains(msg, want) {
			n++
		}
	}
}

// waitForAll reads datagrams until every one of want was seen in some
// datagram (READY=1 and STATUS= may share one).
func (s *notifySocket) waitForAll(t *testing.T, timeout time.Duration, want ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	for len(missing) > 0 {
		msg, err := s.next(deadline)
		if err != nil {
			t.Fatalf("waiting for %v from the relay: %v", want, err)
		}
		for w := range missing {
			if strings.Contains(msg, w) {
				delete(missing, w)
			}
		}
	}
}

// Under systemd: READY=1 and a first STATUS= line once data leaves
// reconnectbin, and WATCHDOG=1 while data flows. When the sink wedges (a
// FIFO nobody reads: the push blocks forever) the pings stop for longer
// than a whole watchdog interval, so systemd would restart the process, and
// the source is not blamed for it (no rebuild: its data is held downstream).
// When the sink drains again the pings resume.
//
// The timings keep production's order: stall-timeout (1 s here, 5 s by
// default) is shorter than the time a push may stay blocked (half of
// WATCHDOG_USEC: 3 s here, 15 s under the kvs-relay@ unit), so the source
// goes quiet long before the watchdog's block limit is reached.
func TestWatchdogStopsWhileTheSinkIsWedged(t *testing.T) {
	sock := newNotifySocket(t)
	fifo, drain := wedgeableFIFO(t)

	const watchdog = 6 * time.Second
	env := harness.Env(t, "NOTIFY_SOCKET="+sock.path, "WATCHDOG_USEC="+strconv.FormatInt(watchdog.Microseconds(), 10))
	l := harness.StartLaunch(t, env, "reconnectbin", "stall-timeout=1000000000", "source=videotestsrc is-live=true",
		"!", "x264enc", "tune=zerolatency", "speed-preset=ultrafast", "!", "filesink", "location="+fifo)
	sock.waitForAll(t, 30*time.Second, "READY=1", "STATUS=status=running restarts=0 last-outage=none")
	sock.waitFor(t, "WATCHDOG=1", 2*watchdog)
	sock.waitFor(t, "WATCHDOG=1", 2*watchdog)

	drain <- false // nobody reads: the FIFO (64 KiB) fills and filesink blocks
	// Pings come every half interval while all is well; a window of more
	// than a whole interval without one is what makes systemd act.
	deadline := time.Now().Add(40 * time.Second)
	for sock.countWithin("WATCHDOG=1", watchdog+time.Second) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay kept pinging the watchdog while its sink was wedged")
		}
	}
	if n := l.Count(harness.Element("reconnectbin-restart")); n != 0 {
		t.Fatalf("the source was rebuilt %d times while only the sink was blocked", n)
	}
	drain <- true
	sock.waitFor(t, "WATCHDOG=1", 30*time.Second)
	if l.Exited() {
		t.Fatalf("gst-launch-1.0 exited (%d)", l.ExitCode())
	}
}

// wedgeableFIFO makes a FIFO for filesink with a reader that drains it until
// the test sends false on drain (nobody reads: the FIFO's 64 KiB fill and
// filesink's push blocks) and again after true.
func wedgeableFIFO(t *testing.T) (path string, drain chan<- bool) {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "sink.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Open the read end first (non-blocking) so filesink's open succeeds.
	reader, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	modes := make(chan bool, 1)
	modes <- true
	stopped := make(chan struct{})
	t.Cleanup(func() { close(stopped); reader.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		reading := true
		for {
			select {
			case <-stopped:
				return
			case reading = <-modes:
			default:
			}
			if reading {
				// EOF only means no writer yet (or between writers).
				if _, err := reader.Read(buf); err != nil && !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, io.EOF) {
					return
				}
			}
			// A non-blocking FIFO read returns EAGAIN at once when empty:
			// wait for either more data or a change of mode.
			select {
			case <-stopped:
				return
			case reading = <-modes:
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return fifo, modes
}

// emfLine is the part of an EMF line the tests read.
type emfLine struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name string `json:"Name"`
				Unit string `json:"Unit"`
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

// A relay writing EMF lines every second: restarts and outage seconds show up
// under the kvssink stream's name, in spec-valid lines.
func TestMetricsLinesCountRestarts(t *testing.T) {
	metrics := filepath.Join(t.TempDir(), "metrics.log")
	srv := servers.NewTSServer(t, servers.TSOptions{})
	env := harness.Env(t, "KVSRELAY_METRICS="+metrics, "KVSRELAY_METRICS_INTERVAL=1s")
	l := harness.StartLaunch(t, env, "reconnectbin", "name=cam",
		"source=tcpclientsrc host=127.0.0.1 port="+itoa(srv.Port())+" ! tsdemux ! h264parse ! avdec_h264",
		"stall-timeout=2000000000", "!", "fakesink")
	l.WaitFor(30*time.Second, 1, "stream-start", harness.OfType("stream-start"))
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	l.WaitFor(30*time.Second, 1, "a restart", harness.Element("reconnectbin-restart"))
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	l.WaitFor(30*time.Second, 1, "recovery", harness.Element("reconnectbin-recovered"))

	var restarts, outage, frames float64
	harness.WaitUntil(t, 20*time.Second, "metric lines with the restart", func() bool {
		restarts, outage, frames = 0, 0, 0
		data, _ := os.ReadFile(metrics)
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line == "" {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("metric line is not JSON: %v: %q", err, line)
			}
			var parsed emfLine
			if err := json.Unmarshal([]byte(line), &parsed); err != nil || len(parsed.AWS.CloudWatchMetrics) != 1 || parsed.AWS.Timestamp <= 0 {
				t.Fatalf("metric line has no valid _aws block: %q", line)
			}
			if m["StreamName"] != "cam" {
				t.Fatalf("metric line for stream %v, want the bin's name (no kvssink in this pipeline): %q", m["StreamName"], line)
			}
			restarts += m["Restarts"].(float64)
			outage += m["OutageSeconds"].(float64)
			frames += m["FramesOut"].(float64)
		}
		return restarts >= 1 && outage > 0 && frames > 0
	})
	t.Logf("metrics: restarts %v, outage %.2fs, frames %v", restarts, outage, frames)
	l.Interrupt()
	l.Wait(30 * time.Second)
}

func itoa(n int) string { return strconv.Itoa(n) }
