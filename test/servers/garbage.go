package servers

import (
	"math/rand/v2"

	"github.com/Shopify/toxiproxy/v2/stream"
	"github.com/Shopify/toxiproxy/v2/toxics"
)

// garbageToxicType is the toxiproxy toxic type name of garbageToxic.
const garbageToxicType = "kvsrelay_garbage"

// garbageToxic replaces every byte that passes with a random one, keeping
// the chunk sizes and timing: the client of a TCP port still receives a
// steady stream, only it is noise (a port reused by another service, a
// corrupted link). toxiproxy runs one Pipe per connection and direction, so
// it keeps no state: math/rand/v2's top-level functions are safe for
// concurrent use.
type garbageToxic struct{}

func (*garbageToxic) Pipe(stub *toxics.ToxicStub) {
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			noise := make([]byte, len(c.Data))
			for i := range noise {
				noise[i] = byte(rand.Uint32())
			}
			stub.Output <- &stream.StreamChunk{Data: noise, Timestamp: c.Timestamp}
		}
	}
}

func init() {
	toxics.Register(garbageToxicType, new(garbageToxic))
}

// Garbage makes every byte from upstream to the client, on current and new
// connections, a random one (same sizes and pacing as the real stream).
// Lasts until Clear.
func (p *Proxy) Garbage() error {
	return p.addToxic("garbage_down", garbageToxicType, "downstream", `{}`)
}
