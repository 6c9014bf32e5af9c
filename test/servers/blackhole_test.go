package servers

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestBlackHoleHoldsConnectsUntilClosed(t *testing.T) {
	h := NewBlackHole(t)
	_, err := net.DialTimeout("tcp", h.Addr(), 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("connect to the black hole: got %v, want a timeout", err)
	}
	h.Close()
	l, err := net.Listen("tcp", h.Addr())
	if err != nil {
		t.Fatalf("the port is not free after Close: %v", err)
	}
	l.Close()
}

func TestBlackHoleShowsBlockedConnects(t *testing.T) {
	h := NewBlackHole(t)
	done := make(chan error, 1)
	go func() {
		_, err := net.DialTimeout("tcp", h.Addr(), 20*time.Second)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := h.Connecting()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a blocked connect never showed as SYN_SENT")
		}
		select {
		case err := <-done:
			t.Fatalf("the connect ended (%v) before showing as blocked", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	h.Close()
}
