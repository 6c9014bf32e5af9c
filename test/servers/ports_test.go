package servers

import (
	"net"
	"strconv"
	"testing"
	"time"
)

func itoa(n int) string { return strconv.Itoa(n) }

func TestFreePortIsBindableOnLoopback(t *testing.T) {
	tcp := FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(tcp)))
	if err != nil {
		t.Fatalf("FreePort returned %d but it cannot be bound: %v", tcp, err)
	}
	defer l.Close()

	udp := FreeUDPPort(t)
	c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", itoa(udp)))
	if err != nil {
		t.Fatalf("FreeUDPPort returned %d but it cannot be bound: %v", udp, err)
	}
	defer c.Close()
}

func TestWaitSocketSeesListenersAndTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := WaitTCPListening(l.Addr().(*net.TCPAddr).Port, time.Second); err != nil {
		t.Errorf("listening socket not seen: %v", err)
	}

	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := WaitUDPBound(c.LocalAddr().(*net.UDPAddr).Port, time.Second); err != nil {
		t.Errorf("bound UDP socket not seen: %v", err)
	}

	// A port nobody listens on must time out, not succeed.
	if err := WaitTCPListening(FreePort(t), 100*time.Millisecond); err == nil {
		t.Error("WaitTCPListening on a free port succeeded")
	}
}
