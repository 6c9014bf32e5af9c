package sdnotify

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// fakeSystemd is a unix datagram socket standing in for systemd's notify
// socket, published through NOTIFY_SOCKET for the test.
type fakeSystemd struct {
	conn *net.UnixConn
}

func listenFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	// Socket paths are limited to 108 bytes; t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listening on %s: %v", path, err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return &fakeSystemd{conn: conn}
}

// next returns the next datagram, failing the test if none comes.
func (f *fakeSystemd) next(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 4096)
	if err := f.conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, _, err := f.conn.ReadFromUnix(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("no datagram from the notifier")
		}
		t.Fatal(err)
	}
	return string(buf[:n])
}

func (f *fakeSystemd) expect(t *testing.T, want string) {
	t.Helper()
	if got := f.next(t); got != want {
		t.Fatalf("systemd received %q, want %q", got, want)
	}
}

func TestRealSocketReadyWatchdogAndWedgedSink(t *testing.T) {
	sd := listenFakeSystemd(t)
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))

	clock := newClock()
	ticker := &fakeTicker{c: make(chan time.Time)}
	n, err := FromEnvironment(Options{NewTicker: func(d time.Duration) Ticker { ticker.period = d; return ticker }})
	if err != nil {
		t.Fatal(err)
	}
	if n.WatchdogInterval() != 30*time.Second {
		t.Fatalf("watchdog interval %v, want 30s from WATCHDOG_USEC", n.WatchdogInterval())
	}
	n.Start()
	t.Cleanup(n.Close)
	src := n.Register("cam-1")
	pushes := trackPushes(src, clock)

	// A buffer leaves the bin: the unit becomes ready.
	pushes.started()
	src.DataOut()
	pushes.finished()
	sd.expect(t, "READY=1")

	// Data flows: every tick pings.
	for i := 0; i < 3; i++ {
		pushes.started()
		src.DataOut()
		pushes.finished()
		clock.Advance(15 * time.Second)
		ticker.fire(t)
		sd.expect(t, "WATCHDOG=1")
	}

	// kvssink wedges: the next push never returns. The source goes quiet,
	// its stall detection kicks in and the supervisor retries, which alone
	// would look like progress; the blocked push must veto the ping.
	pushes.started()
	src.DataOut()
	clock.Advance(10 * time.Second)
	src.Retrying(true)
	ticker.fire(t) // blocked 10 s: under the 15 s limit, data moved: ping
	sd.expect(t, "WATCHDOG=1")
	clock.Advance(15 * time.Second)
	ticker.fire(t) // blocked 25 s: no ping
	clock.Advance(15 * time.Second)
	ticker.fire(t) // blocked 40 s: no ping
	src.SetStatus("marker: sink blocked")
	sd.expect(t, "STATUS=marker: sink blocked") // nothing came before the marker

	// The sink recovers (or a restart brought a fresh one): pings resume.
	pushes.finished()
	src.Retrying(false)
	pushes.started()
	src.DataOut()
	pushes.finished()
	clock.Advance(15 * time.Second)
	ticker.fire(t)
	sd.expect(t, "WATCHDOG=1")
}

func TestRealSocketWatchdogPIDForAnotherProcess(t *testing.T) {
	sd := listenFakeSystemd(t)
	t.Setenv("WATCHDOG_USEC", "30000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()+1))
	n, err := FromEnvironment(Options{NewTicker: func(time.Duration) Ticker {
		t.Error("watchdog ticker started although WATCHDOG_PID names another process")
		return &fakeTicker{c: make(chan time.Time)}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if n.WatchdogInterval() != 0 {
		t.Fatalf("watchdog interval %v, want 0", n.WatchdogInterval())
	}
	n.Start()
	t.Cleanup(n.Close)
	n.Register("cam").DataOut()
	sd.expect(t, "READY=1") // notifications still go out, pings do not
}

func TestFromEnvironmentWithoutSocketIsInert(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "30000000")
	n, err := FromEnvironment(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Enabled() || n.WatchdogInterval() != 0 {
		t.Fatalf("enabled=%v interval=%v, want an inert notifier", n.Enabled(), n.WatchdogInterval())
	}
}

func TestFromEnvironmentBadWatchdogStillNotifies(t *testing.T) {
	sd := listenFakeSystemd(t)
	t.Setenv("WATCHDOG_USEC", "thirty")
	t.Setenv("WATCHDOG_PID", "")
	n, err := FromEnvironment(Options{})
	if err == nil {
		t.Fatal("want an error naming WATCHDOG_USEC")
	}
	n.Start()
	t.Cleanup(n.Close)
	n.Register("cam").DataOut()
	sd.expect(t, "READY=1")
}
