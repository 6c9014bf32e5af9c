package kvssinkstandin

import (
	"fmt"
	"testing"
)

func TestAckModes(t *testing.T) {
	type ack struct {
		typ    int32
		tc     uint64
		result uint32
	}
	render := func(acts []action) string {
		var out []string
		for _, a := range acts {
			switch a.kind {
			case actFragmentAck:
				out = append(out, fmt.Sprint(ack{a.ackType, a.timecode, a.status}))
			case actStreamError:
				out = append(out, fmt.Sprintf("stream-error 0x%08x", a.status))
			}
		}
		return fmt.Sprint(out)
	}
	cases := []struct {
		mode           string
		hasPrev, start bool
		want           string
	}{
		{"", false, true, "[{1 2000 0}]"},
		{"persist", true, true, "[{2 1000 0} {3 1000 0} {1 2000 0}]"},
		{"persist", true, false, "[{2 1000 0} {3 1000 0}]"},
		{"hold", true, true, "[{1 2000 0}]"},
		{"off", true, true, "[]"},
		{"error:4004", true, true, "[{4 1000 4004} {1 2000 0}]"},
		{"stream-error:0x52000010", true, true, "[stream-error 0x52000010]"},
		{"stream-error:0x52000010", true, false, "[]"},
	}
	for _, c := range cases {
		m, err := parseAckMode(c.mode)
		if err != nil {
			t.Fatalf("%q: %v", c.mode, err)
		}
		got := render(fragmentActions(m, c.hasPrev, 1000, fragmentSeq(1), c.start, 2000, fragmentSeq(2)))
		if got != c.want {
			t.Errorf("%q prev=%v starting=%v: %s, want %s", c.mode, c.hasPrev, c.start, got, c.want)
		}
	}
	for _, bad := range []string{"persisted", "error:", "error:x", "stream-error:-1"} {
		if _, err := parseAckMode(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
