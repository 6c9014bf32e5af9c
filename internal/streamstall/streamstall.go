// Package streamstall decides, for reconnectbin, when one stream of a
// source instance went silent while another still flows: a camera whose
// video stops while its audio goes on (go2rtc users report relays stuck on
// such audio-only streams). The whole-source stall (no buffer at all) is
// the supervisor's; this rule covers what that one cannot see, because the
// audio keeps the source "alive".
//
// # The rule
//
// The video of an instance is stalled when video is expected from it (the
// run's video has flowed before, or the instance routed a video pad), no
// video buffer arrived for at least the timeout since the later of the
// instance's start and its last video buffer, and audio did arrive within
// the timeout. When nothing flows at all the rule says nothing: that is the
// supervisor's whole-source stall.
//
// Audio that stops while video flows is not a stall. Video is what a relay
// is for; a rebuild cuts the working picture for the length of a reconnect
// to repair the sound, and reconnectbin already fills missing audio with
// silence where downstream waits for it. A camera whose microphone is quiet
// still sends (silent) audio packets, so the case is rare, but when it
// happens the picture is kept. Silent reports it so that stats can show it.
//
// Only the streams the glue reports count: reconnectbin reports video and
// audio pads it routed, never absorbed pads (subtitles, metadata, KLV).
//
// A Watch takes buffers from streaming threads lock-free (one atomic store)
// and is checked from the supervise loop.
package streamstall

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Stream is one of the two streams the rule compares.
type Stream int

const (
	Video Stream = iota
	Audio
	streamCount
)

func (s Stream) String() string {
	if s == Audio {
		return "audio"
	}
	return "video"
}

// Clock tells the time; tests inject a manual one.
type Clock interface{ Now() time.Time }

const noTime = math.MinInt64

// Watch is one source instance's streams.
type Watch struct {
	clk     Clock
	start   time.Time
	timeout time.Duration
	expect  [streamCount]atomic.Bool
	last    [streamCount]atomic.Int64 // ns since start of the latest buffer; noTime if none
}

// New starts watching an instance that starts now. timeout <= 0 turns the
// rule off (stall-timeout 0). expectVideo says the run's video flowed before
// this instance: an instance that comes back with audio only is stalled.
func New(clk Clock, timeout time.Duration, expectVideo bool) *Watch {
	w := &Watch{clk: clk, start: clk.Now(), timeout: timeout}
	for i := range w.last {
		w.last[i].Store(noTime)
	}
	w.expect[Video].Store(expectVideo)
	return w
}

func (w *Watch) now() int64 { return int64(w.clk.Now().Sub(w.start)) }

// Routed records that the instance routed a pad of stream s: data is
// expected on it.
func (w *Watch) Routed(s Stream) { w.expect[s].Store(true) }

// Buffer records a buffer of stream s arriving from the source.
func (w *Watch) Buffer(s Stream) {
	w.expect[s].Store(true)
	w.last[s].Store(w.now())
}

// Stall is a verdict: Stream has been silent for Silent while Flowing
// delivered.
type Stall struct {
	Stream  Stream
	Flowing Stream
	Silent  time.Duration
}

// Text is the failure's text for logs, messages and stats.
func (s Stall) Text() string {
	return fmt.Sprintf("no %s from the source for %v while its %s kept flowing", s.Stream, s.Silent.Round(time.Millisecond), s.Flowing)
}

// Check applies the rule now. stalled is true only for the video: see the
// package comment.
func (w *Watch) Check() (st Stall, stalled bool) {
	st, silent := w.Silent(Video)
	return st, silent
}

// Silent reports whether stream s has been silent for at least the timeout
// while the other stream delivered within it, whichever s is: the audio's
// answer is information (stats), not a stall.
func (w *Watch) Silent(s Stream) (Stall, bool) {
	if w.timeout <= 0 || !w.expect[s].Load() {
		return Stall{}, false
	}
	other := Audio
	if s == Audio {
		other = Video
	}
	now := w.now()
	otherLast := w.last[other].Load()
	if otherLast == noTime || time.Duration(now-otherLast) >= w.timeout {
		return Stall{}, false // nothing flows: the whole-source stall's case
	}
	ref := max(0, w.last[s].Load())
	silent := time.Duration(now - ref)
	if silent < w.timeout {
		return Stall{}, false
	}
	return Stall{Stream: s, Flowing: other, Silent: silent}, true
}
