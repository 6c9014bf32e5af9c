package servers

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pollInterval is how often condition waits re-check their condition.
const pollInterval = 25 * time.Millisecond

// FreePort returns a TCP port on 127.0.0.1 that the kernel reported free.
// The port is released before returning, so a child process can bind it;
// binding may still race with an unrelated process, which is acceptable in
// tests.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("servers: find free TCP port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		tb.Fatalf("servers: release free TCP port %d: %v", port, err)
	}
	return port
}

// FreeUDPPort returns a UDP port on 127.0.0.1 that the kernel reported free.
func FreeUDPPort(tb testing.TB) int {
	tb.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("servers: find free UDP port: %v", err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	if err := c.Close(); err != nil {
		tb.Fatalf("servers: release free UDP port %d: %v", port, err)
	}
	return port
}

// errProcessExited is returned by waits that gave up because the process that
// should have opened the socket is gone.
var errProcessExited = errors.New("process exited")

// WaitTCPListening waits until some socket is in LISTEN state on
// 127.0.0.1:port (or the wildcard address). It reads /proc/net/tcp{,6}
// instead of connecting, so servers that count or serve clients (tcpserversink,
// the RTSP server) never see a probe connection.
func WaitTCPListening(port int, timeout time.Duration) error {
	return waitSocket("tcp", port, timeout, nil)
}

// WaitUDPBound waits until some UDP socket is bound to 127.0.0.1:port (or the
// wildcard address), e.g. an SRT listener.
func WaitUDPBound(port int, timeout time.Duration) error {
	return waitSocket("udp", port, timeout, nil)
}

// waitSocket polls /proc/net until the socket shows up, the timeout passes,
// or exited (if non-nil) is closed.
func waitSocket(proto string, port int, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		ok, err := socketPresent(proto, port)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s port %d not open after %v", proto, port, timeout)
		}
		select {
		case <-exited:
			return fmt.Errorf("waiting for %s port %d: %w", proto, port, errProcessExited)
		case <-ticker.C:
		}
	}
}

// socketPresent reports whether /proc/net/<proto>{,6} lists a local socket on
// the port: LISTEN state for TCP, any state for UDP.
func socketPresent(proto string, port int) (bool, error) {
	for _, file := range []string{"/proc/net/" + proto, "/proc/net/" + proto + "6"} {
		ok, err := procNetHasPort(file, proto == "tcp", port)
		if err != nil {
			return false, err
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// tcpListenState is the kernel's hex code for TCP_LISTEN in /proc/net/tcp.
const tcpListenState = "0A"

func procNetHasPort(file string, needListen bool, port int) (bool, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // e.g. no IPv6 in this kernel
	}
	if err != nil {
		return false, fmt.Errorf("read socket table %s: %w", file, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header line
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 {
			continue
		}
		// local_address is HEXIP:HEXPORT.
		i := strings.LastIndexByte(fields[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(fields[1][i+1:], 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		if needListen && fields[3] != tcpListenState {
			continue
		}
		return true, nil
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read socket table %s: %w", file, err)
	}
	return false, nil
}
