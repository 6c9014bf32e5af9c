package gstshim

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>

extern void shimDeepElementAdded(guintptr id, GstElement *element);

static void shim_deep_added(GstBin *bin, GstBin *sub, GstElement *element, gpointer id) {
	shimDeepElementAdded((guintptr)id, element);
}

// A deep-element-added subscription that does not keep the bin alive: the
// watcher usually lives inside that bin, so a strong reference would be a
// cycle and the pipeline would never be freed.
typedef struct {
	GWeakRef bin;
	gulong handler;
} ShimBinWatch;

static ShimBinWatch *shim_bin_watch(gpointer bin, guintptr id) {
	ShimBinWatch *w = g_new0(ShimBinWatch, 1);
	g_weak_ref_init(&w->bin, bin);
	w->handler = g_signal_connect(bin, "deep-element-added", G_CALLBACK(shim_deep_added), (gpointer)id);
	return w;
}

static gboolean shim_bin_watches(ShimBinWatch *w, gpointer bin) {
	GObject *b = g_weak_ref_get(&w->bin);
	gboolean same = b != NULL && b == bin;
	if (b != NULL) g_object_unref(b);
	return same;
}

static void shim_bin_unwatch(ShimBinWatch *w) {
	GObject *b = g_weak_ref_get(&w->bin);
	if (b != NULL) {
		if (g_signal_handler_is_connected(b, w->handler)) g_signal_handler_disconnect(b, w->handler);
		g_object_unref(b);
	}
	g_weak_ref_clear(&w->bin);
	g_free(w);
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

//export shimDeepElementAdded
func shimDeepElementAdded(id C.guintptr, element *C.GstElement) {
	if fn, _ := handleValue(uintptr(id)).(func(*gst.Element)); fn != nil {
		fn(gst.FromGstElementUnsafeNone(unsafe.Pointer(element)))
	}
}

// BinWatch is a deep-element-added subscription holding only a weak
// reference to its bin.
type BinWatch struct {
	w  *C.ShimBinWatch
	id uintptr
}

// WatchDeepElementAdded calls fn (in the adding thread, outside the bin's
// lock) for every element added to bin or to any bin inside it.
func WatchDeepElementAdded(bin *gst.Bin, fn func(*gst.Element)) *BinWatch {
	id := newHandle(fn)
	return &BinWatch{w: C.shim_bin_watch(C.gpointer(bin.Unsafe()), C.guintptr(id)), id: id}
}

// Watches reports whether w watches bin (and bin still exists).
func (w *BinWatch) Watches(bin *gst.Bin) bool {
	return w != nil && bin != nil && C.shim_bin_watches(w.w, C.gpointer(bin.Unsafe())) != 0
}

// Close disconnects the handler (if the bin still exists) and releases w.
func (w *BinWatch) Close() {
	if w == nil {
		return
	}
	deleteHandle(w.id)
	C.shim_bin_unwatch(w.w)
}
