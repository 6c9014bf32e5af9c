package servers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"
)

// cutToxicType is the toxic Timeout adds: a network cut.
const cutToxicType = "kvsrelay_cut"

func init() {
	toxics.Register(cutToxicType, new(cutToxic))
}

// cutToxic drops every byte, as toxiproxy's timeout toxic does, and also
// holds back the far side's close until the cut ends. toxiproxy's timeout
// toxic passes a close straight through: when the server ends a connection
// during the cut (the local KVS endpoint drops a connection whose request
// headers do not come within its header timeout), the client sees it at
// once, although on a real cut the server's FIN is lost like every other
// packet. With the real kvssink that turned every putMedia attempt during a
// cut into a call that failed after 10 s, and a new one, and when one of
// them failed just as the network came back, the producer's next call began
// mid-stream (issue #14 part 3).
type cutToxic struct{}

func (cutToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				// The far side closed: held until the toxic is removed
				// (Cleanup closes the stub then).
				<-stub.Interrupt
				return
			}
			// Dropped: the cut loses it.
		}
	}
}

// Cleanup ends the connection when the cut is over, as toxiproxy's timeout
// toxic does: its bytes were lost, so it cannot carry on.
func (cutToxic) Cleanup(stub *toxics.ToxicStub) { stub.Close() }

// Proxy is an in-process toxiproxy TCP proxy on 127.0.0.1 in front of one
// upstream, for faults the servers themselves cannot produce: resets, hung
// connections, latency and throttling. Toxics affect new and existing
// connections until Clear. Safe for concurrent use.
type Proxy struct {
	proxy *toxiproxy.Proxy

	mu   sync.Mutex
	addr string
}

var silenceToxiproxy sync.Once

// NewProxy starts a proxy on a free 127.0.0.1 port forwarding to
// upstreamAddr ("host:port"). It is stopped on test cleanup.
//
// toxiproxy logs through zerolog, partly via its global logger; the first
// call sets zerolog's global level to Disabled for the whole test binary.
func NewProxy(tb testing.TB, upstreamAddr string) *Proxy {
	tb.Helper()
	silenceToxiproxy.Do(func() { zerolog.SetGlobalLevel(zerolog.Disabled) })
	// The API server object is only a container for metrics and logging
	// here: its HTTP API is never started.
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	name := fmt.Sprintf("%s-%s", strings.NewReplacer("/", "_", " ", "_").Replace(tb.Name()), upstreamAddr)
	p := toxiproxy.NewProxy(api, name, "127.0.0.1:0", upstreamAddr)
	if err := p.Start(); err != nil {
		tb.Fatalf("servers: start toxiproxy in front of %s: %v", upstreamAddr, err)
	}
	// Toxics come off first: a cut holding a closed connection's end
	// releases it then, so no link is left waiting for the cut to end.
	tb.Cleanup(func() {
		p.Toxics.ResetToxics(context.Background())
		p.Stop()
	})
	// Start resolved the :0 port; Listen now holds the real address, which
	// Enable reuses so the proxy comes back on the same port.
	return &Proxy{proxy: p, addr: p.Listen}
}

// Addr returns the proxy's "127.0.0.1:port"; clients connect here.
func (p *Proxy) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Port returns the proxy's port.
func (p *Proxy) Port() int {
	_, port, _ := net.SplitHostPort(p.Addr())
	n, _ := strconv.Atoi(port)
	return n
}

// Upstream returns the upstream address.
func (p *Proxy) Upstream() string { return p.proxy.Upstream }

// addToxic adds a toxic by its JSON description (toxiproxy's public toxic
// format), so this file does not depend on toxic struct internals.
func (p *Proxy) addToxic(name, typ, stream string, attributes string) error {
	body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attributes)
	if _, err := p.proxy.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
		return fmt.Errorf("toxiproxy: add %s toxic to %s: %w", typ, p.Addr(), err)
	}
	return nil
}

// ResetPeer makes every connection, current and new, close abruptly as soon
// as data flows upstream→client (new connections are reset with TCP RST;
// connections that existed before the call see the close as FIN). Lasts
// until Clear.
func (p *Proxy) ResetPeer() error {
	if err := p.addToxic("reset_down", "reset_peer", "downstream", `{"timeout":0}`); err != nil {
		return err
	}
	return p.addToxic("reset_up", "reset_peer", "upstream", `{"timeout":0}`)
}

// Timeout cuts the network: data in both directions is dropped and the
// connections stay open (the silent-stall case), whatever either end does:
// a side that closes its connection during the cut is not seen closing
// until the cut ends. Lasts until Clear, which ends every connection the
// cut held (their bytes were lost); new connections then pass normally.
func (p *Proxy) Timeout() error {
	if err := p.addToxic("cut_down", cutToxicType, "downstream", `{}`); err != nil {
		return err
	}
	return p.addToxic("cut_up", cutToxicType, "upstream", `{}`)
}

// Latency delays data from upstream to the client by d.
func (p *Proxy) Latency(d time.Duration) error {
	return p.addToxic("latency_down", "latency", "downstream", fmt.Sprintf(`{"latency":%d,"jitter":0}`, d.Milliseconds()))
}

// Bandwidth limits data from upstream to the client to kilobytesPerSecond
// KB/s (toxiproxy's unit; 50 KB/s = 400 kbit/s, the default video bitrate).
func (p *Proxy) Bandwidth(kilobytesPerSecond int) error {
	return p.addToxic("bandwidth_down", "bandwidth", "downstream", fmt.Sprintf(`{"rate":%d}`, kilobytesPerSecond))
}

// BandwidthUp limits data from the client to upstream (an upload) to
// kilobytesPerSecond KB/s.
func (p *Proxy) BandwidthUp(kilobytesPerSecond int) error {
	return p.addToxic("bandwidth_up", "bandwidth", "upstream", fmt.Sprintf(`{"rate":%d}`, kilobytesPerSecond))
}

// Clear removes all toxics: connections a Timeout cut held end (their bytes
// were lost), others resume normal flow.
func (p *Proxy) Clear() {
	p.proxy.Toxics.ResetToxics(context.Background())
}

// Disable stops listening and closes every proxied connection: clients get
// "connection refused" until Enable.
func (p *Proxy) Disable() {
	p.proxy.Stop()
}

// Enable listens again on the same address.
func (p *Proxy) Enable() error {
	if err := p.proxy.Start(); err != nil && !errors.Is(err, toxiproxy.ErrProxyAlreadyStarted) {
		return fmt.Errorf("toxiproxy: re-enable %s: %w", p.Addr(), err)
	}
	return nil
}
