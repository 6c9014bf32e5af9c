package servers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BlackHole is a TCP port on 127.0.0.1 where a connect() blocks: a listener
// that never accepts, with its accept queue already full, so the kernel
// drops every new SYN and the client retransmits for minutes. That is what
// a camera behind a firewall that drops packets looks like, and it holds a
// connecting source (tcpclientsrc connects inside its state change) stuck.
type BlackHole struct {
	port    int
	fd      int
	fillers []net.Conn
	once    sync.Once
}

// NewBlackHole opens a black-hole port; it is closed on test cleanup.
func NewBlackHole(tb testing.TB) *BlackHole {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("servers: black hole socket: %v", err)
	}
	h := &BlackHole{fd: fd}
	tb.Cleanup(h.Close)
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		tb.Fatalf("servers: black hole SO_REUSEADDR: %v", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatalf("servers: black hole bind: %v", err)
	}
	// Backlog 0: the kernel queues one completed connection, then drops SYNs.
	if err := syscall.Listen(fd, 0); err != nil {
		tb.Fatalf("servers: black hole listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatalf("servers: black hole getsockname: %v", err)
	}
	h.port = sa.(*syscall.SockaddrInet4).Port
	// Fill the accept queue until a connect no longer completes.
	for i := 0; i < 16; i++ {
		c, err := net.DialTimeout("tcp", h.Addr(), 500*time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return h
		}
		if err != nil {
			tb.Fatalf("servers: filling the black hole's accept queue: %v", err)
		}
		h.fillers = append(h.fillers, c)
	}
	tb.Fatalf("servers: the kernel completed %d connections to a listener with backlog 0; cannot make a black hole", len(h.fillers))
	return nil
}

// Port is the black hole's port.
func (h *BlackHole) Port() int { return h.port }

// Addr is host:port.
func (h *BlackHole) Addr() string { return fmt.Sprintf("127.0.0.1:%d", h.port) }

// Close stops listening: the port is free for a real server (pending
// connects then reach whoever listens next, or are refused).
func (h *BlackHole) Close() {
	h.once.Do(func() {
		for _, c := range h.fillers {
			_ = c.Close()
		}
		_ = syscall.Close(h.fd)
	})
}

// Connecting counts the sockets on this machine stuck connecting to the
// black hole (SYN_SENT in /proc/net/tcp): a client is blocked in connect().
func (h *BlackHole) Connecting() (int, error) {
	data, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, fmt.Errorf("servers: reading /proc/net/tcp: %w", err)
	}
	// Columns: sl local_address rem_address st ...; addresses are hex
	// IP:port, st 02 is SYN_SENT.
	remote := fmt.Sprintf("0100007F:%04X", h.port)
	n := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == remote && f[3] == "02" {
			n++
		}
	}
	return n, nil
}
