package withhold

import (
	"fmt"
	"strings"
	"testing"
)

const ms = int64(1_000_000)

// step is one thing a gate sees: a mark or a buffer.
type step struct {
	start, end bool
	episode    uint64
	at         int64 // end: the takeover time; start (audio): the first fill time
	key        bool  // video buffer: a keyframe
	pts        int64 // buffer
	resumeAt   int64 // audio buffer: the episode's takeover time as known then
}

func vstart(ep uint64) step             { return step{start: true, episode: ep} }
func vend(ep uint64, at int64) step     { return step{end: true, episode: ep, at: at} }
func key(pts int64) step                { return step{key: true, pts: pts} }
func delta(pts int64) step              { return step{pts: pts} }
func astart(ep uint64, from int64) step { return step{start: true, episode: ep, at: from} }
func abuf(pts, resumeAt int64) step     { return step{pts: pts, resumeAt: resumeAt} }

// verdicts renders what a gate decided on each buffer: "p" passed, "w"
// withheld, "r<n>" resumed after n withheld.
func verdicts(vs []Verdict) string {
	var out []string
	for _, v := range vs {
		switch {
		case v.Withhold:
			out = append(out, "w")
		case v.Resumed:
			out = append(out, fmt.Sprintf("r%d", v.Withheld))
		default:
			out = append(out, "p")
		}
	}
	return strings.Join(out, " ")
}

func TestVideo(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  string
	}{
		{"no outage: everything passes",
			[]step{key(0), delta(40 * ms), delta(80 * ms)}, "p p p"},
		{"fill between the marks is withheld; the takeover keyframe resumes",
			[]step{key(0), delta(40 * ms), vstart(1), delta(80 * ms), delta(120 * ms), key(160 * ms), vend(1, 200*ms), key(200 * ms), delta(240 * ms)},
			"p p w w w r3 p"},
		{"a fill keyframe the encoder made after the end mark (a race) is withheld by its time",
			[]step{key(0), vstart(1), delta(40 * ms), vend(1, 120*ms), key(80 * ms), key(120 * ms), delta(160 * ms)},
			"p w w r2 p"},
		{"the encoder ignored the keyframe request: real frames wait for the next keyframe",
			[]step{key(0), vstart(1), delta(40 * ms), vend(1, 80*ms), delta(80 * ms), delta(120 * ms), key(160 * ms)},
			"p w w w r3"},
		{"an end without its start changes nothing",
			[]step{key(0), vend(1, 40*ms), delta(40 * ms)}, "p p"},
		{"an end of an older episode does not resume a newer one",
			[]step{vstart(1), delta(0), vstart(2), delta(40 * ms), vend(1, 80*ms), key(80 * ms), vend(2, 120*ms), key(120 * ms)},
			"w w w r3"},
		{"an outage starting before the last resumed continues its count",
			[]step{vstart(1), delta(0), vend(1, 80*ms), delta(40 * ms), vstart(2), delta(80 * ms), vend(2, 120*ms), key(120 * ms)},
			"w w w r3"},
		{"no takeover time: the first keyframe after the end resumes",
			[]step{vstart(1), delta(0), vend(1, None), delta(40 * ms), key(80 * ms)}, "w w r2"},
		{"a keyframe without a time after the end waits for one with a time",
			[]step{vstart(1), vend(1, 80*ms), key(None), key(80 * ms)}, "w r1"},
		{"two outages, each counted on its own",
			[]step{vstart(1), delta(0), vend(1, 40*ms), key(40 * ms), vstart(2), delta(80 * ms), delta(120 * ms), vend(2, 160*ms), key(160 * ms)},
			"w r1 w w r2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Video
			var got []Verdict
			for _, s := range tt.steps {
				switch {
				case s.start:
					v.Start(s.episode)
				case s.end:
					v.End(s.episode, s.at)
				default:
					got = append(got, v.Buffer(s.key, s.pts))
				}
			}
			if g := verdicts(got); g != tt.want {
				t.Errorf("got %q, want %q", g, tt.want)
			}
		})
	}
}

func TestAudio(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		want  string
	}{
		{"no outage: everything passes",
			[]step{abuf(0, None), abuf(21*ms, None)}, "p p"},
		{"fill from the start time to the video's takeover is withheld",
			[]step{abuf(0, None), astart(1, 30*ms), abuf(21*ms, None), abuf(42*ms, None), abuf(63*ms, None), abuf(84*ms, 100*ms), abuf(105*ms, 100*ms), abuf(126*ms, 100*ms)},
			"p p w w w r3 p"},
		{"audio the encoder held back from before the outage passes after the start mark",
			[]step{astart(1, 50*ms), abuf(20*ms, None), abuf(41*ms, None), abuf(62*ms, None)}, "p p w"},
		{"after the takeover is known, audio before it is still withheld",
			[]step{astart(1, 0), abuf(0, 100*ms), abuf(90*ms, 100*ms), abuf(100*ms, 100*ms)}, "w w r2"},
		{"while the takeover is unknown, audio past any time is withheld",
			[]step{astart(1, 0), abuf(5000*ms, None)}, "w"},
		{"a buffer without a time is withheld during an outage, passes outside",
			[]step{abuf(None, None), astart(1, 0), abuf(None, None), abuf(None, 10*ms)}, "p w w"},
		{"an outage starting before the last resumed keeps the first start time",
			[]step{astart(1, 100*ms), abuf(120*ms, None), astart(2, 300*ms), abuf(200*ms, None), abuf(400*ms, 400*ms)}, "w w r2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Audio
			var got []Verdict
			for _, s := range tt.steps {
				if s.start {
					a.Start(s.episode, s.at)
					continue
				}
				got = append(got, a.Buffer(s.pts, s.resumeAt))
			}
			if g := verdicts(got); g != tt.want {
				t.Errorf("got %q, want %q", g, tt.want)
			}
		})
	}
}
