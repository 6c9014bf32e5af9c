package servers

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tcpUpstream is a TCP server on 127.0.0.1 that hands every connection it
// accepts to serve, on its own goroutine.
func tcpUpstream(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go serve(conn)
		}
	}()
	return l.Addr().String()
}

// echoUpstream is a TCP server on 127.0.0.1 that echoes each line.
func echoUpstream(t *testing.T) string {
	t.Helper()
	return tcpUpstream(t, func(conn net.Conn) {
		defer conn.Close()
		_, _ = io.Copy(conn, conn)
	})
}

func dialProxy(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	if err != nil {
		t.Fatalf("dial proxy %s: %v", p.Addr(), err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, bufio.NewReader(conn)
}

// roundTrip sends a line and reads the echo, with a deadline.
func roundTrip(conn net.Conn, r *bufio.Reader, line string, timeout time.Duration) (string, error) {
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return got[:len(got)-1], nil
}

func TestProxyPassesBytesAndInjectsFaults(t *testing.T) {
	upstream := echoUpstream(t)
	p := NewProxy(t, upstream)
	if p.Upstream() != upstream || p.Port() == 0 {
		t.Fatalf("proxy upstream %q port %d", p.Upstream(), p.Port())
	}

	conn, r := dialProxy(t, p)
	if got, err := roundTrip(conn, r, "hello", 5*time.Second); err != nil || got != "hello" {
		t.Fatalf("through proxy: %q, %v", got, err)
	}

	t.Run("latency", func(t *testing.T) {
		if err := p.Latency(300 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		defer p.Clear()
		start := time.Now()
		if got, err := roundTrip(conn, r, "slow", 5*time.Second); err != nil || got != "slow" {
			t.Fatalf("with latency: %q, %v", got, err)
		}
		// A lower bound only: the toxic cannot make data arrive early.
		if elapsed := time.Since(start); elapsed < 300*time.Millisecond {
			t.Fatalf("round trip took %v with 300ms latency", elapsed)
		}
	})

	t.Run("bandwidth still passes data", func(t *testing.T) {
		if err := p.Bandwidth(100); err != nil {
			t.Fatal(err)
		}
		defer p.Clear()
		if got, err := roundTrip(conn, r, "throttled", 5*time.Second); err != nil || got != "throttled" {
			t.Fatalf("with bandwidth limit: %q, %v", got, err)
		}
	})

	t.Run("timeout hangs with connection open", func(t *testing.T) {
		c, cr := dialProxy(t, p)
		if err := p.Timeout(); err != nil {
			t.Fatal(err)
		}
		_, err := roundTrip(c, cr, "lost", 500*time.Millisecond)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("with timeout toxic: err %v, want a read deadline (hang)", err)
		}
		p.Clear()
	})

	t.Run("reset_peer closes the connection", func(t *testing.T) {
		c, cr := dialProxy(t, p)
		if err := p.ResetPeer(); err != nil {
			t.Fatal(err)
		}
		_, err := roundTrip(c, cr, "reset", 5*time.Second)
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("with reset_peer: err %v, want connection closed", err)
		}
		p.Clear()
		c2, cr2 := dialProxy(t, p)
		if got, err := roundTrip(c2, cr2, "again", 5*time.Second); err != nil || got != "again" {
			t.Fatalf("after Clear: %q, %v", got, err)
		}
	})

	t.Run("garbage replaces the bytes, not the flow", func(t *testing.T) {
		c, cr := dialProxy(t, p)
		if err := p.Garbage(); err != nil {
			t.Fatal(err)
		}
		line := strings.Repeat("the camera's stream ", 50)
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(line)+1)
		if _, err := io.ReadFull(cr, got); err != nil {
			t.Fatalf("reading through the garbage toxic: %v", err)
		}
		if string(got) == line+"\n" {
			t.Fatalf("the garbage toxic passed the bytes unchanged")
		}
		p.Clear()
		c2, cr2 := dialProxy(t, p)
		if got, err := roundTrip(c2, cr2, "clean", 5*time.Second); err != nil || got != "clean" {
			t.Fatalf("after Clear: %q, %v", got, err)
		}
	})

	t.Run("disable refuses, enable restores on the same port", func(t *testing.T) {
		addr := p.Addr()
		p.Disable()
		requireRefused(t, addr)
		if err := p.Enable(); err != nil {
			t.Fatal(err)
		}
		if p.Addr() != addr {
			t.Fatalf("re-enabled on %s, want %s", p.Addr(), addr)
		}
		c, cr := dialProxy(t, p)
		if got, err := roundTrip(c, cr, "back", 5*time.Second); err != nil || got != "back" {
			t.Fatalf("after Enable: %q, %v", got, err)
		}
	})
}

// closingUpstream is a TCP server on 127.0.0.1 that closes every connection
// as soon as it accepts it.
func closingUpstream(t *testing.T) string {
	t.Helper()
	return tcpUpstream(t, func(conn net.Conn) { conn.Close() })
}

// A cut loses the server's close like any other packet: a client whose
// connection the server ended during the cut sees nothing until the cut
// ends, then sees the connection end.
func TestProxyTimeoutHoldsTheServersClose(t *testing.T) {
	p := NewProxy(t, closingUpstream(t))
	if err := p.Timeout(); err != nil {
		t.Fatal(err)
	}
	conn, r := dialProxy(t, p)
	if _, err := roundTrip(conn, r, "lost", 2*time.Second); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("during the cut: err %v, want a read deadline (hang), not the server's close", err)
	}
	p.Clear()
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadByte(); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the cut: err %v, want the connection ended", err)
	}
}
