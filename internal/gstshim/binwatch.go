package gstshim

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>
#include <stdlib.h>

extern void shimDeepElementAdded(guintptr id, GstElement *element);

// What one subscription looks for. Owned by the signal handler's closure:
// freed when the handler is disconnected and no emission still runs it.
typedef struct {
	guintptr id;
	gchar *factory;
} ShimWatchTarget;

static gboolean shim_made_by(GstElement *e, const gchar *factory) {
	GstElementFactory *f = gst_element_get_factory(e);
	return f != NULL && g_strcmp0(GST_OBJECT_NAME(f), factory) == 0;
}

// Every element inside bin (recursively) that factory made, as a list of
// references the caller releases (g_list_free_full with gst_object_unref).
static GList *shim_elements_made_by(GstBin *bin, const gchar *factory) {
	GList *found = NULL;
	GstIterator *it = gst_bin_iterate_recurse(bin);
	GValue item = G_VALUE_INIT;
	gboolean done = FALSE;
	while (!done) {
		switch (gst_iterator_next(it, &item)) {
		case GST_ITERATOR_OK: {
			GstElement *child = GST_ELEMENT(g_value_get_object(&item));
			if (shim_made_by(child, factory)) found = g_list_prepend(found, gst_object_ref(child));
			g_value_reset(&item);
			break;
		}
		case GST_ITERATOR_RESYNC:
			g_list_free_full(found, gst_object_unref);
			found = NULL;
			gst_iterator_resync(it);
			break;
		default:
			done = TRUE;
		}
	}
	g_value_unset(&item);
	gst_iterator_free(it);
	return g_list_reverse(found);
}

// GstBin announces a bin's children too when the bin is added, so each
// element comes here once, whatever its depth; only the factory's reach Go.
static void shim_deep_added(GstBin *bin, GstBin *sub, GstElement *element, gpointer data) {
	ShimWatchTarget *t = data;
	if (shim_made_by(element, t->factory)) shimDeepElementAdded(t->id, element);
}

static void shim_free_target(gpointer data, GClosure *closure) {
	ShimWatchTarget *t = data;
	g_free(t->factory);
	g_free(t);
}

// A deep-element-added subscription that does not keep the bin alive: the
// watcher usually lives inside that bin, so a strong reference would be a
// cycle and the pipeline would never be freed.
typedef struct {
	GWeakRef bin;
	gulong handler;
} ShimBinWatch;

static ShimBinWatch *shim_bin_watch(gpointer bin, const gchar *factory, guintptr id) {
	ShimWatchTarget *t = g_new0(ShimWatchTarget, 1);
	t->id = id;
	t->factory = g_strdup(factory);
	ShimBinWatch *w = g_new0(ShimBinWatch, 1);
	g_weak_ref_init(&w->bin, bin);
	w->handler = g_signal_connect_data(bin, "deep-element-added", G_CALLBACK(shim_deep_added), t,
		shim_free_target, 0);
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

// ElementsMadeBy lists the elements inside bin, at any depth, that factory
// made. Only those are wrapped for Go (see WatchDeepElementAdded).
func ElementsMadeBy(bin *gst.Bin, factory string) []*gst.Element {
	cf := C.CString(factory)
	defer C.free(unsafe.Pointer(cf))
	list := C.shim_elements_made_by((*C.GstBin)(unsafe.Pointer(bin.Unsafe())), (*C.gchar)(cf))
	var out []*gst.Element
	for l := list; l != nil; l = l.next {
		// The list's reference goes to the wrapper.
		out = append(out, gst.FromGstElementUnsafeFull(unsafe.Pointer(l.data)))
	}
	C.g_list_free(list)
	return out
}

// BinWatch is a deep-element-added subscription holding only a weak
// reference to its bin.
type BinWatch struct {
	w  *C.ShimBinWatch
	id uintptr
}

// WatchDeepElementAdded calls fn (in the adding thread, outside the bin's
// lock) for every element that factory made and that is added to bin or to
// any bin inside it (GstBin announces an added bin's children too).
//
// The factory is matched in C, so that fn never sees other elements: a Go
// wrapper holds a reference to its element until a garbage collection, and
// wrapping every element a pipeline adds (hlsdemux's fragment sources, a
// reconnectbin's rebuilt instances) would keep each alive past its removal
// and have it disposed later from the collector's thread.
func WatchDeepElementAdded(bin *gst.Bin, factory string, fn func(*gst.Element)) *BinWatch {
	id := newHandle(fn)
	cf := C.CString(factory)
	defer C.free(unsafe.Pointer(cf))
	return &BinWatch{w: C.shim_bin_watch(C.gpointer(bin.Unsafe()), (*C.gchar)(cf), C.guintptr(id)), id: id}
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
