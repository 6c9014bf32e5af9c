package gstshim

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>

// Up to this many pushes through one pad at once: a source's streaming
// thread, a fallback fill goroutine, and audio padding, with room to spare.
#define SHIM_PUSH_SLOTS 8

// Each slot holds the monotonic time (microseconds, +1 so 0 means free) at
// which a push through the pad began. Slots are claimed and released with
// atomics, before the push waits for its turn, so a push waiting behind one
// held downstream counts as held too. The streaming threads never call
// into Go here.
//
// order serializes the pushes through the pad, the pad's probes included:
// a probe on a src pad runs before the peer's chain takes its stream lock,
// so without it two threads pushing on one pad (a source's streaming thread
// and a fill goroutine at a takeover) could pass the pad's probe in one
// order and reach downstream in the other (a fill buffer stamped before the
// source's arrived after them: kvssink refused it as going backwards).
// One lock per pad: pushes on different pads never wait for each other (a
// muxer holds one stream until another has data).
typedef struct {
	gint64 starts[SHIM_PUSH_SLOTS];
	GMutex order;
} ShimPushTracker;

static GQuark shim_push_tracker_quark(void) {
	return g_quark_from_static_string("kvsrelay-push-tracker");
}

static gint shim_track_begin(ShimPushTracker *t) {
	gint64 now = g_get_monotonic_time() + 1;
	for (gint i = 0; i < SHIM_PUSH_SLOTS; i++) {
		gint64 free_slot = 0;
		if (__atomic_compare_exchange_n(&t->starts[i], &free_slot, now, FALSE, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			return i;
	}
	return -1;
}

static void shim_track_end(ShimPushTracker *t, gint slot) {
	if (slot >= 0)
		__atomic_store_n(&t->starts[slot], 0, __ATOMIC_RELEASE);
}

static GstFlowReturn shim_tracked_chain(GstPad *pad, GstObject *parent, GstBuffer *buf) {
	ShimPushTracker *t = g_object_get_qdata(G_OBJECT(pad), shim_push_tracker_quark());
	gint slot = t ? shim_track_begin(t) : -1;
	if (t) g_mutex_lock(&t->order);
	GstFlowReturn ret = gst_proxy_pad_chain_default(pad, parent, buf);
	if (t) {
		g_mutex_unlock(&t->order);
		shim_track_end(t, slot);
	}
	return ret;
}

static GstFlowReturn shim_tracked_chain_list(GstPad *pad, GstObject *parent, GstBufferList *list) {
	ShimPushTracker *t = g_object_get_qdata(G_OBJECT(pad), shim_push_tracker_quark());
	gint slot = t ? shim_track_begin(t) : -1;
	if (t) g_mutex_lock(&t->order);
	GstFlowReturn ret = gst_proxy_pad_chain_list_default(pad, parent, list);
	if (t) {
		g_mutex_unlock(&t->order);
		shim_track_end(t, slot);
	}
	return ret;
}

static void shim_push_tracker_free(gpointer p) {
	ShimPushTracker *t = p;
	g_mutex_clear(&t->order);
	g_free(t);
}

// Installs a tracker on the ghost pad's internal pad, through which every
// buffer from inside the bin reaches the ghost pad and its peer. The tracker
// lives as long as the internal pad (freed with its qdata).
static ShimPushTracker *shim_track_ghost(gpointer ghost) {
	GstProxyPad *internal = gst_proxy_pad_get_internal(GST_PROXY_PAD(ghost));
	if (internal == NULL) return NULL;
	ShimPushTracker *t = g_new0(ShimPushTracker, 1);
	g_mutex_init(&t->order);
	g_object_set_qdata_full(G_OBJECT(internal), shim_push_tracker_quark(), t, shim_push_tracker_free);
	gst_pad_set_chain_function(GST_PAD(internal), shim_tracked_chain);
	gst_pad_set_chain_list_function(GST_PAD(internal), shim_tracked_chain_list);
	gst_object_unref(internal);
	return t;
}

static GstFlowReturn shim_tracked_push(ShimPushTracker *t, gpointer pad, GstBuffer *buf) {
	gint slot = shim_track_begin(t);
	g_mutex_lock(&t->order);
	GstFlowReturn ret = gst_pad_push(GST_PAD(pad), buf);
	g_mutex_unlock(&t->order);
	shim_track_end(t, slot);
	return ret;
}

// Age in microseconds of the oldest push still in flight; -1 when none.
static gint64 shim_track_oldest(ShimPushTracker *t) {
	gint64 oldest = 0;
	for (gint i = 0; i < SHIM_PUSH_SLOTS; i++) {
		gint64 s = __atomic_load_n(&t->starts[i], __ATOMIC_ACQUIRE);
		if (s != 0 && (oldest == 0 || s < oldest)) oldest = s;
	}
	if (oldest == 0) return -1;
	gint64 age = g_get_monotonic_time() + 1 - oldest;
	return age < 0 ? 0 : age;
}
*/
import "C"

import (
	"time"
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// PushTracker knows which buffer pushes out of one ghost src pad are still
// in flight and since when. A buffer probe cannot tell: probes run before a
// push and nothing runs after it, so a quiet source and a push stuck in a
// wedged sink look the same. The tracker wraps the ghost pad's internal
// chain function instead (every buffer from inside the bin passes there),
// and Push wraps pushes made directly on the ghost pad.
type PushTracker struct {
	pad *gst.GhostPad // keeps the pad, and with it the tracker, alive
	t   *C.ShimPushTracker
}

// TrackPushes installs a tracker on a ghost src pad. Call it once per pad,
// before data flows.
func TrackPushes(pad *gst.GhostPad) *PushTracker {
	if pad == nil {
		return nil
	}
	t := C.shim_track_ghost(C.gpointer(pad.Unsafe()))
	if t == nil {
		return nil
	}
	return &PushTracker{pad: pad, t: t}
}

// Push pushes buf on the tracked pad, counting it as in flight until it
// returns. Like gst.Pad.Push, the caller keeps its own reference to buf.
func (p *PushTracker) Push(buf *gst.Buffer) gst.FlowReturn {
	ref := buf.Ref() // gst_pad_push takes one reference
	return gst.FlowReturn(C.shim_tracked_push(p.t, C.gpointer(p.pad.Unsafe()), (*C.GstBuffer)(unsafe.Pointer(ref.Instance()))))
}

// Oldest returns how long the oldest push still in flight has been going
// on, and whether there is one.
func (p *PushTracker) Oldest() (time.Duration, bool) {
	if p == nil {
		return 0, false
	}
	us := int64(C.shim_track_oldest(p.t))
	if us < 0 {
		return 0, false
	}
	return time.Duration(us) * time.Microsecond, true
}
