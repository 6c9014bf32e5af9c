package main

import (
	"io"
	"sort"
	"sync"
	"time"
)

// Every contender ends in the same measurable sink: raw I420 frames of
// frameWidth x frameHeight written to file descriptor 3, which the bench
// reads and timestamps on arrival. Tiny frames keep the sink's own cost
// negligible next to decoding; the source stamp (stamp.go) is 8x8 pixels a
// cell at this size.
const (
	frameWidth  = 64
	frameHeight = 48
	frameBytes  = frameWidth * frameHeight * 3 / 2
)

// FrameMark is one frame's arrival at the bench.
type FrameMark struct {
	At time.Time
	// Stamped: the frame carries a readable source stamp, Stamp. Fallback
	// frames (black, image) and unreadable (concealed, corrupt) frames do
	// not.
	Stamped bool
	Stamp   uint32
	// Real: new picture from the source, its stamp newer than that of
	// every frame the contender showed before. A held (repeated) frame or
	// a stale frame flushed late is stamped but not real.
	Real bool
}

// realFrames classifies frames as they arrive: a frame is real when its
// stamp is newer than the newest stamp seen so far.
type realFrames struct {
	newest uint32
	seen   bool
}

// classify reads frame's stamp and reports whether it is new picture.
func (c *realFrames) classify(frame []byte) FrameMark {
	n, ok := readStamp(frame, frameWidth, frameHeight)
	m := FrameMark{Stamped: ok, Stamp: n}
	if ok && (!c.seen || n > c.newest) {
		m.Real = true
		c.newest, c.seen = n, true
	}
	return m
}

// FrameLog collects frame arrivals of one contender across all its process
// runs (a frame repeated by a restarted process is not new picture either).
// Safe for concurrent use.
type FrameLog struct {
	mu    sync.Mutex
	marks []FrameMark
	real  realFrames
	now   func() time.Time
}

func newFrameLog() *FrameLog { return &FrameLog{now: time.Now} }

// ReadFrom reads whole frames until r ends, recording each one.
func (l *FrameLog) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, frameBytes)
	var total int64
	for {
		n, err := io.ReadFull(r, buf)
		total += int64(n)
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return total, nil
			}
			return total, err
		}
		at := l.now()
		l.mu.Lock()
		mark := l.real.classify(buf)
		mark.At = at
		l.marks = append(l.marks, mark)
		l.mu.Unlock()
	}
}

// Marks returns a copy of the arrivals so far, oldest first.
func (l *FrameLog) Marks() []FrameMark {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]FrameMark(nil), l.marks...)
}

// times returns the arrival times of real frames only (realOnly) or of all.
func times(marks []FrameMark, realOnly bool) []time.Time {
	var out []time.Time
	for _, m := range marks {
		if m.Real || !realOnly {
			out = append(out, m.At)
		}
	}
	return out
}

// firstAfter returns the first time >= t.
func firstAfter(ts []time.Time, t time.Time) (time.Time, bool) {
	i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(t) })
	if i == len(ts) {
		return time.Time{}, false
	}
	return ts[i], true
}

// lastBefore returns the last time < t.
func lastBefore(ts []time.Time, t time.Time) (time.Time, bool) {
	i := sort.Search(len(ts), func(i int) bool { return !ts[i].Before(t) })
	if i == 0 {
		return time.Time{}, false
	}
	return ts[i-1], true
}

// longestGap is the longest span without a frame within [from, to], the
// edges counting as gaps too (from the window start to the first frame,
// from the last frame to the window end).
func longestGap(ts []time.Time, from, to time.Time) time.Duration {
	prev := from
	var longest time.Duration
	for _, t := range ts {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		if d := t.Sub(prev); d > longest {
			longest = d
		}
		prev = t
	}
	if d := to.Sub(prev); d > longest {
		longest = d
	}
	return longest
}

// darkSpans returns the spans within [from, to) not covered by any frame,
// where a frame at t covers [t, t+hold): a viewer (or kvssink) sees no
// picture for those spans. hold absorbs the normal spacing of frames,
// including HLS clients that receive a segment's frames in one burst.
func darkSpans(ts []time.Time, from, to time.Time, hold time.Duration) []time.Duration {
	var spans []time.Duration
	coveredUntil := from
	for _, t := range ts {
		if !t.Add(hold).After(from) {
			continue
		}
		if !t.Before(to) {
			break
		}
		if t.After(coveredUntil) {
			spans = append(spans, t.Sub(coveredUntil))
		}
		if end := t.Add(hold); end.After(coveredUntil) {
			coveredUntil = end
		}
	}
	if to.After(coveredUntil) {
		spans = append(spans, to.Sub(coveredUntil))
	}
	return spans
}

// coveredShare is the share of [from, to) covered by frames (see darkSpans).
func coveredShare(ts []time.Time, from, to time.Time, hold time.Duration) float64 {
	total := to.Sub(from)
	if total <= 0 {
		return 0
	}
	dark := time.Duration(0)
	for _, d := range darkSpans(ts, from, to, hold) {
		dark += d
	}
	return 1 - float64(dark)/float64(total)
}
