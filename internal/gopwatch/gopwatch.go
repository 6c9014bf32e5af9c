// Package gopwatch measures the keyframe interval of the encoded video
// reconnectbin passes through and says when it is longer than kvssink
// accepts. kvssink cuts a fragment at each keyframe and refuses fragments
// longer than MAX_FRAGMENT_DURATION (10 s; amazon-kinesis-video-streams-
// producer-sdk-cpp issues 289 and 716): a camera with a 12 s GOP uploads
// nothing, with no error that names the GOP.
//
// The interval is the PTS distance between keyframes (buffers without
// DELTA_UNIT). A long one is reported as soon as the distance since the
// last keyframe exceeds the limit, without waiting for the next keyframe;
// Longest keeps growing to the full interval. Distances never span source
// instances: the gap of a rebuild is an outage, not a GOP. The report is
// made once per Watch; reconnectbin keeps one per run (a camera's GOP is its
// configuration, it does not change with a reconnect, so one warning per
// run says it without repeating at every rebuild).
//
// Raw video has no DELTA_UNIT buffers: every frame is a keyframe, nothing is
// reported.
package gopwatch

import (
	"fmt"
	"math"
	"sync"
	"time"
)

// DefaultLimit is kvssink's MAX_FRAGMENT_DURATION.
const DefaultLimit = 10 * time.Second

// RecommendedInterval is the keyframe interval the warning recommends.
const RecommendedInterval = 2 * time.Second

const noTime = math.MinInt64

// Long is a report: no keyframe for Interval (at least) from a source
// whose frames came at FPS (0 when unknown).
type Long struct {
	Interval time.Duration
	Limit    time.Duration
	FPS      float64
}

// KeyIntMax is the x264enc key-int-max that gives RecommendedInterval at
// the measured frame rate, 0 when the rate is unknown.
func (l Long) KeyIntMax() int {
	if l.FPS <= 0 {
		return 0
	}
	return max(1, int(math.Round(l.FPS*RecommendedInterval.Seconds())))
}

// Text says what was measured and how to fix it.
func (l Long) Text() string {
	keyInt := "<2 x the frame rate>"
	if k := l.KeyIntMax(); k > 0 {
		keyInt = fmt.Sprintf("%d (2 s at %.3g fps)", k, l.FPS)
	}
	return fmt.Sprintf("the source's keyframe interval is at least %v (no keyframe for that long), longer than "+
		"kvssink's %v fragment limit (MAX_FRAGMENT_DURATION): kvssink refuses such fragments. "+
		"Set the camera's keyframe (GOP, I-frame) interval to %v or less, or transcode with x264enc key-int-max=%s",
		l.Interval.Round(100*time.Millisecond), l.Limit, RecommendedInterval, keyInt)
}

// Watch follows one run's video. Safe for concurrent use.
type Watch struct {
	limit time.Duration

	mu       sync.Mutex
	instance uint64
	lastKey  int64 // PTS (ns) of the instance's last keyframe; noTime before one
	framesIn int   // frames since lastKey, lastKey's included
	lastPTS  int64
	longest  time.Duration
	fps      float64
	reported bool
}

// New returns a Watch; limit <= 0 uses DefaultLimit.
func New(limit time.Duration) *Watch {
	if limit <= 0 {
		limit = DefaultLimit
	}
	return &Watch{limit: limit, lastKey: noTime}
}

// Frame records a video frame of source instance inst with presentation
// time pts (ns; negative when unknown: ignored). It returns a report the
// first time the distance since the last keyframe exceeds the limit, once
// per Watch.
func (w *Watch) Frame(inst uint64, pts int64, keyframe bool) (Long, bool) {
	if pts < 0 {
		return Long{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if inst != w.instance {
		w.instance, w.lastKey, w.framesIn = inst, noTime, 0
	}
	if w.lastKey == noTime {
		if keyframe {
			w.lastKey, w.framesIn, w.lastPTS = pts, 1, pts
		}
		return Long{}, false
	}
	dist := time.Duration(pts - w.lastKey)
	if dist > w.longest {
		w.longest = dist
	}
	if pts > w.lastPTS && w.framesIn > 1 {
		// frames per second since the keyframe, from the frames seen before this one
		w.fps = float64(w.framesIn-1) / time.Duration(w.lastPTS-w.lastKey).Seconds()
	}
	w.lastPTS = max(w.lastPTS, pts)
	if keyframe {
		w.lastKey, w.framesIn = pts, 1
		return Long{}, false
	}
	w.framesIn++
	if dist <= w.limit || w.reported {
		return Long{}, false
	}
	w.reported = true
	return Long{Interval: dist, Limit: w.limit, FPS: w.fps}, true
}

// Longest is the longest keyframe distance seen (the full interval once
// the next keyframe came), 0 before any.
func (w *Watch) Longest() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.longest
}

// Reported says whether the report was made.
func (w *Watch) Reported() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reported
}
