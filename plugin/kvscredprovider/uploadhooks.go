package kvscredprovider

// C glue of the upload health watch (upload.go): what kvssink tells, read in
// the thread kvssink tells it in, forwarded to Go as plain values.
//
//   - fragment-ack passes a pointer to PIC's FragmentAck, emitted from the
//     SDK's network thread with the stream's lock held: the handler copies
//     the type, timecode and result and returns at once.
//   - stream-error passes the SDK status (guint64).
//   - Frames going in are counted by a buffer probe on each of kvssink's
//     sink pads into an atomic counter the Go side reads once per tick: no
//     call into Go per buffer, and no Go reference to any buffer.
//   - kvssink's own counters (PIC's StreamMetrics: frames dropped from a
//     full buffer, frames skipped, what it holds unsent) come with its
//     stream-client-metric signal, which kvssink emits on every keyframe it
//     stores once its get-kvs-metrics property is on (the hook turns it on):
//     the handler copies them into atomics the Go side reads once per tick.
//   - "put frame error" WARNINGs are read from the top-level bus's
//     sync-message emission (any number of handlers may share it, unlike
//     the bus's one sync handler, which belongs to the application).
//
// No Go wrapper of kvssink is made on these threads: Go receives the
// element's address only, as the key of the watch it belongs to. Every C
// callback finds its Go function through gstshim's handle registry, so a
// call that races with stopping finds nothing and does nothing.

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>
#include <stdio.h>
#include <string.h>

// PIC's FragmentAck (src/client/include/com/amazonaws/kinesis/video/client/
// Include.h, PIC 1.2.0 as kvssink v3.6.0 builds it): UINT32 version,
// FRAGMENT_ACK_TYPE ackType (an enum: int), UINT64 timestamp, CHAR
// sequenceNumber[MAX_FRAGMENT_SEQUENCE_NUMBER + 1] (128 + 1),
// SERVICE_CALL_RESULT result (an enum: int). Versions up to 0 have this
// layout; a later version is read up to the fields it shares.
typedef struct {
	guint32 version;
	gint32 ack_type;
	guint64 timestamp;
	gchar sequence_number[128 + 1];
	gint32 result;
} UhFragmentAck;

// PIC's StreamMetrics (Include.h, STREAM_METRICS_CURRENT_VERSION 3 in PIC
// 1.2.0), up to the fields read: version 0 ends at currentTransferRate,
// version 1 adds the counters. kvssink's KvsSinkMetric (gstkvssink.h) starts
// with a KinesisVideoStreamMetrics, a C++ class with no virtual functions
// whose one member is the StreamMetrics, so the signal's pointer points at
// one.
typedef struct {
	guint32 version;
	guint64 current_view_duration; // 100 ns: what is stored and not yet sent
	guint64 overall_view_duration;
	guint64 current_view_size;
	guint64 overall_view_size;
	gdouble current_frame_rate;
	guint64 current_transfer_rate;
	// version >= 1
	guint64 uptime;
	guint64 transferred_bytes;
	guint64 total_sessions;
	guint64 total_active_sessions;
	guint64 avg_session_duration;
	guint64 buffered_acks;
	guint64 received_acks;
	guint64 persisted_acks;
	guint64 error_acks;
	guint64 dropped_frames; // evicted from a full buffer before being sent
	guint64 dropped_fragments;
	guint64 skipped_frames; // never sent: after a lost keyframe, or in a fragment the service refused
} UhStreamMetrics;

extern void goUploadAck(guintptr id, guintptr sink, gint32 type, guint64 timecode, guint64 result);
extern void goUploadStreamError(guintptr id, guintptr sink, guint64 status);
extern void goUploadPutFrameError(guintptr id, guintptr sink, guint64 status);

// One watched kvssink. Reference counted: held by the Go side, by each pad
// probe and by each signal handler, so a callback still running in another
// thread never sees it freed.
typedef struct {
	guintptr id;
	GstElement *sink; // not referenced: the Go side holds the element
	guint64 frames;   // atomic
	gint active;      // atomic; 0 makes probes remove themselves
	// From stream-client-metric, atomic; has_metrics is 1 once one came.
	guint64 backlog, dropped, skipped;
	gint has_metrics;
	gulong ack_handler, err_handler, pad_handler, metric_handler;
} UhSink;

static void uh_release(gpointer data) { g_atomic_rc_box_release(data); }
static void uh_release_closure(gpointer data, GClosure *c) { g_atomic_rc_box_release(data); }

static void uh_fragment_ack(GstElement *sink, gpointer ack, gpointer data) {
	UhSink *w = data;
	const UhFragmentAck *a = ack;
	if (a == NULL || !g_atomic_int_get(&w->active)) return;
	goUploadAck(w->id, (guintptr)sink, a->ack_type, a->timestamp, (guint64)(gint64)a->result);
}

static void uh_stream_error(GstElement *sink, guint64 status, gpointer data) {
	UhSink *w = data;
	if (!g_atomic_int_get(&w->active)) return;
	goUploadStreamError(w->id, (guintptr)sink, status);
}

static void uh_stream_metric(GstElement *sink, gpointer metric, gpointer data) {
	UhSink *w = data;
	const UhStreamMetrics *m = metric;
	if (m == NULL || m->version < 1 || !g_atomic_int_get(&w->active)) return;
	__atomic_store_n(&w->backlog, m->current_view_duration, __ATOMIC_RELAXED);
	__atomic_store_n(&w->dropped, m->dropped_frames, __ATOMIC_RELAXED);
	__atomic_store_n(&w->skipped, m->skipped_frames, __ATOMIC_RELAXED);
	g_atomic_int_set(&w->has_metrics, 1);
}

static GstPadProbeReturn uh_count(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
	UhSink *w = data;
	if (!g_atomic_int_get(&w->active)) return GST_PAD_PROBE_REMOVE;
	guint64 n = 0;
	if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
		// kvssink discards these unseen (gstkvssink.cpp): no upload is
		// owed for them. reconnectbin's fallback-upload=false withholds
		// fill frames this way through a whole outage.
		GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
		n = GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_DECODE_ONLY) ||
			GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_CORRUPTED) ? 0 : 1;
	} else if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER_LIST)
		n = gst_buffer_list_length(GST_PAD_PROBE_INFO_BUFFER_LIST(info));
	__atomic_add_fetch(&w->frames, n, __ATOMIC_RELAXED);
	return GST_PAD_PROBE_OK;
}

static void uh_probe_pad(UhSink *w, GstPad *pad) {
	if (GST_PAD_DIRECTION(pad) != GST_PAD_SINK) return;
	gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, uh_count,
		g_atomic_rc_box_acquire(w), uh_release);
}

static void uh_pad_added(GstElement *sink, GstPad *pad, gpointer data) {
	UhSink *w = data;
	if (g_atomic_int_get(&w->active)) uh_probe_pad(w, pad);
}

// Key of the qdata marking a kvssink as hooked, so that it is hooked once.
#define UH_KEY "kvscredprovider-upload-watch"

// Hooks sink; NULL when another watch hooked it already.
static UhSink *uh_hook(GstElement *sink, guintptr id) {
	if (g_object_get_data(G_OBJECT(sink), UH_KEY) != NULL) return NULL;
	UhSink *w = g_atomic_rc_box_new0(UhSink);
	w->id = id;
	w->sink = sink;
	w->active = 1;
	g_object_set_data(G_OBJECT(sink), UH_KEY, w);
	if (g_signal_lookup("fragment-ack", G_OBJECT_TYPE(sink)) != 0)
		w->ack_handler = g_signal_connect_data(sink, "fragment-ack", G_CALLBACK(uh_fragment_ack),
			g_atomic_rc_box_acquire(w), uh_release_closure, 0);
	if (g_signal_lookup("stream-error", G_OBJECT_TYPE(sink)) != 0)
		w->err_handler = g_signal_connect_data(sink, "stream-error", G_CALLBACK(uh_stream_error),
			g_atomic_rc_box_acquire(w), uh_release_closure, 0);
	if (g_signal_lookup("stream-client-metric", G_OBJECT_TYPE(sink)) != 0 &&
	    g_object_class_find_property(G_OBJECT_GET_CLASS(sink), "get-kvs-metrics") != NULL) {
		w->metric_handler = g_signal_connect_data(sink, "stream-client-metric", G_CALLBACK(uh_stream_metric),
			g_atomic_rc_box_acquire(w), uh_release_closure, 0);
		g_object_set(sink, "get-kvs-metrics", TRUE, NULL);
	}
	w->pad_handler = g_signal_connect_data(sink, "pad-added", G_CALLBACK(uh_pad_added),
		g_atomic_rc_box_acquire(w), uh_release_closure, 0);
	GstIterator *it = gst_element_iterate_sink_pads(sink);
	GValue item = G_VALUE_INIT;
	while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
		uh_probe_pad(w, GST_PAD(g_value_get_object(&item)));
		g_value_reset(&item);
	}
	g_value_unset(&item);
	gst_iterator_free(it);
	return w;
}

static guint64 uh_frames(UhSink *w) { return __atomic_load_n(&w->frames, __ATOMIC_RELAXED); }

// Reads the last stream-client-metric counters; FALSE when none came yet.
static gboolean uh_metrics(UhSink *w, guint64 *backlog, guint64 *dropped, guint64 *skipped) {
	if (!g_atomic_int_get(&w->has_metrics)) return FALSE;
	*backlog = __atomic_load_n(&w->backlog, __ATOMIC_RELAXED);
	*dropped = __atomic_load_n(&w->dropped, __ATOMIC_RELAXED);
	*skipped = __atomic_load_n(&w->skipped, __ATOMIC_RELAXED);
	return TRUE;
}

// Undoes uh_hook; the element must still be alive (the Go side holds it).
static void uh_unhook(UhSink *w) {
	g_atomic_int_set(&w->active, 0);
	gulong *handlers[] = {&w->ack_handler, &w->err_handler, &w->pad_handler, &w->metric_handler};
	for (int i = 0; i < 4; i++) {
		if (*handlers[i] != 0 && g_signal_handler_is_connected(w->sink, *handlers[i]))
			g_signal_handler_disconnect(w->sink, *handlers[i]);
		*handlers[i] = 0;
	}
	if (g_object_get_data(G_OBJECT(w->sink), UH_KEY) == w) g_object_set_data(G_OBJECT(w->sink), UH_KEY, NULL);
	g_atomic_rc_box_release(w);
}

// The bus watch for kvssink's put frame errors.
typedef struct {
	guintptr id;
	GstBus *bus;
	gulong handler;
} UhBus;

static const char uh_put_frame_error[] = "put frame error occurred. Status: 0x";

static void uh_sync_message(GstBus *bus, GstMessage *msg, gpointer data) {
	guintptr id = (guintptr)data;
	GstObject *src = GST_MESSAGE_SRC(msg);
	if (src == NULL || !GST_IS_ELEMENT(src)) return;
	GstElementFactory *f = gst_element_get_factory(GST_ELEMENT(src));
	if (f == NULL || g_strcmp0(GST_OBJECT_NAME(f), "kvssink") != 0) return;
	GError *err = NULL;
	gchar *debug = NULL;
	gst_message_parse_warning(msg, &err, &debug);
	const char *p = debug != NULL ? strstr(debug, uh_put_frame_error) : NULL;
	unsigned int status = 0;
	if (p != NULL && sscanf(p + sizeof(uh_put_frame_error) - 1, "%x", &status) == 1)
		goUploadPutFrameError(id, (guintptr)src, status);
	g_clear_error(&err);
	g_free(debug);
}

// Watches the bus of top (NULL when top has none: a bin that is not a
// pipeline and has no parent).
static UhBus *uh_watch_bus(GstElement *top, guintptr id) {
	GstBus *bus = gst_element_get_bus(top);
	if (bus == NULL) return NULL;
	UhBus *b = g_new0(UhBus, 1);
	b->id = id;
	b->bus = bus;
	gst_bus_enable_sync_message_emission(bus);
	b->handler = g_signal_connect(bus, "sync-message::warning", G_CALLBACK(uh_sync_message), (gpointer)id);
	return b;
}

static void uh_unwatch_bus(UhBus *b) {
	if (b == NULL) return;
	g_signal_handler_disconnect(b->bus, b->handler);
	gst_bus_disable_sync_message_emission(b->bus);
	gst_object_unref(b->bus);
	g_free(b);
}
*/
import "C"

import (
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/uploadhealth"
)

// sinkHook is one kvssink's C-side watch.
type sinkHook struct {
	c *C.UhSink
}

// hookSink connects to kvssink el; ok is false when el is already hooked
// (by this provider or another one in the same pipeline).
func hookSink(el *gst.Element, id uintptr) (sinkHook, bool) {
	c := C.uh_hook((*C.GstElement)(el.Unsafe()), C.guintptr(id))
	return sinkHook{c: c}, c != nil
}

// frames is how many buffers have gone into the sink's pads since it was hooked.
func (h sinkHook) frames() uint64 { return uint64(C.uh_frames(h.c)) }

// kvsMetrics returns kvssink's own counters from its last
// stream-client-metric signal; ok is false when none came yet (no keyframe
// stored since the hook, or a kvssink without the signal, as the stand-in).
func (h sinkHook) kvsMetrics() (m uploadhealth.SinkMetrics, ok bool) {
	var backlog, dropped, skipped C.guint64
	if C.uh_metrics(h.c, &backlog, &dropped, &skipped) == 0 {
		return m, false
	}
	// The backlog is in PIC's 100 ns units.
	return uploadhealth.SinkMetrics{Backlog: time.Duration(backlog) * 100, Dropped: uint64(dropped), Skipped: uint64(skipped)}, true
}

// unhook disconnects everything; the element must still be alive.
func (h sinkHook) unhook() { C.uh_unhook(h.c) }

// busHook watches a top-level bus for put frame errors.
type busHook struct{ c *C.UhBus }

func hookBus(top *gst.Bin, id uintptr) busHook {
	return busHook{c: C.uh_watch_bus((*C.GstElement)(top.Unsafe()), C.guintptr(id))}
}

func (b busHook) unhook() { C.uh_unwatch_bus(b.c) }

// uploadCallback is what the handle of a provider's upload watch stands for.
type uploadCallback func(kind cbKind, sink uintptr, a, b, c uint64)

type cbKind int

const (
	cbAck cbKind = iota
	cbStreamError
	cbPutFrameError
)

func dispatch(id C.guintptr, kind cbKind, sink C.guintptr, a, b, c uint64) {
	if fn, _ := gstshim.HandleValue(uintptr(id)).(uploadCallback); fn != nil {
		fn(kind, uintptr(sink), a, b, c)
	}
}

//export goUploadAck
func goUploadAck(id C.guintptr, sink C.guintptr, typ C.gint32, timecode, result C.guint64) {
	dispatch(id, cbAck, sink, uint64(typ), uint64(timecode), uint64(result))
}

//export goUploadStreamError
func goUploadStreamError(id C.guintptr, sink C.guintptr, status C.guint64) {
	dispatch(id, cbStreamError, sink, uint64(status), 0, 0)
}

//export goUploadPutFrameError
func goUploadPutFrameError(id C.guintptr, sink C.guintptr, status C.guint64) {
	dispatch(id, cbPutFrameError, sink, uint64(status), 0, 0)
}
