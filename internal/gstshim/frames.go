package gstshim

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>

static void shim_hold(GstBuffer **slot, GstPadProbeInfo *info) {
	gst_buffer_replace(slot, GST_PAD_PROBE_INFO_BUFFER(info));
}
static void shim_hold_buffer(GstBuffer **slot, GstBuffer *buf) { gst_buffer_replace(slot, buf); }
static GstBuffer *shim_stamped_copy(GstBuffer *src, GstClockTime pts, GstClockTime dur) {
	if (src == NULL) return NULL;
	GstBuffer *b = gst_buffer_copy(src);
	GST_BUFFER_PTS(b) = pts;
	GST_BUFFER_DTS(b) = pts;
	GST_BUFFER_DURATION(b) = dur;
	GST_BUFFER_FLAG_UNSET(b, GST_BUFFER_FLAG_DISCONT | GST_BUFFER_FLAG_DELTA_UNIT | GST_BUFFER_FLAG_GAP);
	return b;
}
static void shim_probe_replace_segment(GstPadProbeInfo *info, guint32 seqnum) {
	GstSegment seg;
	gst_segment_init(&seg, GST_FORMAT_TIME);
	GstEvent *ev = gst_event_new_segment(&seg);
	if (seqnum != 0) gst_event_set_seqnum(ev, seqnum);
	GstEvent *old = GST_PAD_PROBE_INFO_EVENT(info);
	GST_PAD_PROBE_INFO_DATA(info) = ev;
	if (old) gst_event_unref(old);
}
static GstEvent *shim_time_segment_event(void) {
	GstSegment seg;
	gst_segment_init(&seg, GST_FORMAT_TIME);
	return gst_event_new_segment(&seg);
}
*/
import "C"

import (
	"sync"
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// FrameHolder keeps one reference to the latest frame: reconnectbin repeats
// it while the source is down. A C-side slot avoids a Go wrapper (and its
// finalizer) per frame on the streaming thread.
type FrameHolder struct {
	mu  sync.Mutex
	buf *C.GstBuffer
}

// HoldProbeBuffer makes the probed buffer the held frame.
func (h *FrameHolder) HoldProbeBuffer(info *gst.PadProbeInfo) {
	h.mu.Lock()
	C.shim_hold(&h.buf, probeInfoPtr(info))
	h.mu.Unlock()
}

// Hold makes buf the held frame.
func (h *FrameHolder) Hold(buf *gst.Buffer) {
	h.mu.Lock()
	C.shim_hold_buffer(&h.buf, (*C.GstBuffer)(unsafe.Pointer(buf.Instance())))
	h.mu.Unlock()
}

// Release drops the held frame.
func (h *FrameHolder) Release() {
	h.mu.Lock()
	C.shim_hold_buffer(&h.buf, nil)
	h.mu.Unlock()
}

// Empty reports whether no frame is held.
func (h *FrameHolder) Empty() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf == nil
}

// StampedCopy returns a copy of the held frame (its memory shared) stamped
// with pts (as PTS and DTS) and duration, keyframe, no DISCONT; nil when no
// frame is held.
func (h *FrameHolder) StampedCopy(pts, duration gst.ClockTime) *gst.Buffer {
	h.mu.Lock()
	defer h.mu.Unlock()
	b := C.shim_stamped_copy(h.buf, C.GstClockTime(pts), C.GstClockTime(duration))
	if b == nil {
		return nil
	}
	return gst.FromGstBufferUnsafeFull(unsafe.Pointer(b))
}

// ReplaceProbeEventWithTimeSegment swaps the probed event for a TIME
// segment starting at 0 (running time == PTS), keeping its seqnum.
func ReplaceProbeEventWithTimeSegment(info *gst.PadProbeInfo, seqnum uint32) {
	C.shim_probe_replace_segment(probeInfoPtr(info), C.guint32(seqnum))
}

// NewTimeSegmentEvent is a TIME segment event starting at 0.
func NewTimeSegmentEvent() *gst.Event {
	return gst.FromGstEventUnsafeFull(unsafe.Pointer(C.shim_time_segment_event()))
}
