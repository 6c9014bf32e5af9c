package credfakes

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// server is the HTTP plumbing the fakes share: a listener on 127.0.0.1
// that can reset connections (FaultDown), the current fault, and request
// counting.
type server struct {
	url      string
	srv      *http.Server
	ln       net.Listener
	serveErr chan error
	closeMu  sync.Once

	mu       sync.Mutex
	fault    Fault
	requests int
	arrived  chan struct{} // closed and replaced on every request
}

// startServer listens on 127.0.0.1 and serves h. h is called only after
// init has run, so a fake can store the returned server in itself first
// (the race detector sees no order between a store after Serve started and
// a request's goroutine).
func startServer(tb testing.TB, h http.Handler, init func(*server)) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("credfakes: listen: %v", err)
	}
	s := &server{url: "http://" + ln.Addr().String(), serveErr: make(chan error, 1), arrived: make(chan struct{})}
	s.ln = &ResettingListener{Listener: ln, Reset: func() bool { return s.Fault() == FaultDown }}
	s.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	init(s)
	go func() { s.serveErr <- s.srv.Serve(s.ln) }()
	tb.Cleanup(s.close)
}

func (s *server) close() {
	s.closeMu.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		<-s.serveErr
	})
}

// SetFault switches the failure mode; FaultNone heals.
func (s *server) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// Fault returns the current failure mode.
func (s *server) Fault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

// Requests counts the requests received (those reset by FaultDown before a
// request was read excepted).
func (s *server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// WaitForRequests blocks until at least n requests have arrived in total,
// or ctx ends.
func (s *server) WaitForRequests(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, arrived := s.requests, s.arrived
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return fmt.Errorf("%d requests of %d: %w", got, n, ctx.Err())
		}
	}
}

// count records a request and returns the fault to apply to it. A request
// on a connection opened before FaultDown is dropped here.
func (s *server) count(w http.ResponseWriter) (Fault, bool) {
	s.mu.Lock()
	s.requests++
	close(s.arrived)
	s.arrived = make(chan struct{})
	f := s.fault
	s.mu.Unlock()
	if f == FaultDown {
		DropConnection(w)
		return f, false
	}
	return f, true
}

// DropConnection closes the client's connection without an answer, with a
// TCP reset: what a client of a crashed or restarting service sees. The
// IMDS fake (test/imdsfake) uses it too.
func DropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	resetAndClose(conn)
}

func resetAndClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST, like a refused connection
	}
	_ = c.Close()
}

// ResettingListener resets accepted connections while Reset() is true: the
// client sees a connection error while the port stays reserved, so the
// service can come back on the same address.
type ResettingListener struct {
	net.Listener
	Reset func() bool
}

func (l *ResettingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.Reset() {
			resetAndClose(c)
			continue
		}
		return c, nil
	}
}
