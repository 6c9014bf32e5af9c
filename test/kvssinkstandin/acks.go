package kvssinkstandin

// Fragment acknowledgements: kvssink (fragment-acks=true, its default)
// emits fragment-ack for every acknowledgement the service streams back on
// PutMedia (BUFFERING when a fragment starts arriving, RECEIVED, PERSISTED)
// and stream-error for errors it cannot recover from. The stand-in uploads
// nothing, so it plays the service: by default a healthy one, or the
// failure a test asks for through the `acks` property or
// $KVSSINK_STANDIN_ACKS.

import (
	"fmt"
	"strconv"
	"strings"
)

// EnvAcks is the environment default of the `acks` property.
const EnvAcks = "KVSSINK_STANDIN_ACKS"

// Acknowledgement modes (the `acks` property).
const (
	AcksPersist     = "persist"       // BUFFERING at a fragment's start, RECEIVED and PERSISTED when it ends (the next fragment starts, or EOS)
	AcksHold        = "hold"          // BUFFERING only: a PutMedia whose fragments are never persisted
	AcksOff         = "off"           // no acknowledgements at all
	AcksError       = "error:"        // error:<ErrorId>: an ERROR acknowledgement when a fragment ends
	AcksStreamError = "stream-error:" // stream-error:<status>: the stream-error signal at each fragment's start, no acknowledgements
)

// PIC's FRAGMENT_ACK_TYPE values.
const (
	ackBuffering = 1
	ackReceived  = 2
	ackPersisted = 3
	ackError     = 4
)

// ackMode is a parsed `acks` value.
type ackMode struct {
	kind string // AcksPersist, AcksHold, AcksOff, AcksError, AcksStreamError
	code uint64 // ErrorId or status
}

// parseAckMode reads an `acks` value; "" means persist.
func parseAckMode(v string) (ackMode, error) {
	switch v {
	case "", AcksPersist:
		return ackMode{kind: AcksPersist}, nil
	case AcksHold, AcksOff:
		return ackMode{kind: v}, nil
	}
	for _, prefix := range []string{AcksError, AcksStreamError} {
		if rest, ok := strings.CutPrefix(v, prefix); ok {
			n, err := strconv.ParseUint(rest, 0, 64)
			if err != nil {
				return ackMode{}, fmt.Errorf("acks %q: %s wants a number (decimal, or 0x hex)", v, prefix)
			}
			return ackMode{kind: prefix, code: n}, nil
		}
	}
	return ackMode{}, fmt.Errorf("acks %q: want %s, %s, %s, %s<ErrorId> or %s<status>", v, AcksPersist, AcksHold, AcksOff, AcksError, AcksStreamError)
}

// fragmentSeq is the fragment number acknowledgements carry, like the
// service's (digits only).
func fragmentSeq(n uint64) string { return fmt.Sprintf("91343852333181432392682062%021d", n) }

// fragmentActions are the acknowledgements (or stream error) for a fragment
// that starts (tc, seq) after the one that ended (prevTC, prevSeq; hasPrev
// false for the first), or, with ending, for the last one at EOS.
func fragmentActions(m ackMode, hasPrev bool, prevTC uint64, prevSeq string, starting bool, tc uint64, seq string) []action {
	var out []action
	ack := func(t int32, tc uint64, seq string, result uint64) {
		out = append(out, action{kind: actFragmentAck, ackType: t, timecode: tc, seq: seq, status: uint32(result)})
	}
	switch m.kind {
	case AcksPersist:
		if hasPrev {
			ack(ackReceived, prevTC, prevSeq, 0)
			ack(ackPersisted, prevTC, prevSeq, 0)
		}
		if starting {
			ack(ackBuffering, tc, seq, 0)
		}
	case AcksHold:
		if starting {
			ack(ackBuffering, tc, seq, 0)
		}
	case AcksError:
		if hasPrev {
			ack(ackError, prevTC, prevSeq, m.code)
		}
		if starting {
			ack(ackBuffering, tc, seq, 0)
		}
	case AcksStreamError:
		if starting {
			out = append(out, action{kind: actStreamError, status: uint32(m.code)})
		}
	}
	return out
}
