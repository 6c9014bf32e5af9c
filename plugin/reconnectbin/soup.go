package reconnectbin

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>

// souphttpsrc shares its session (and the session's one thread) only when
// its properties are all defaults; an empty, non-NULL cookie list adds no
// cookie and keeps it from sharing. A cookie list the user set is kept.
static void unshare_soup(GstElement *e) {
	if (g_strcmp0(G_OBJECT_TYPE_NAME(e), "GstSoupHTTPSrc") != 0) return;
	gchar **cookies = NULL;
	g_object_get(e, "cookies", &cookies, NULL);
	if (cookies != NULL) {
		g_strfreev(cookies);
		return;
	}
	gchar *none[] = {NULL};
	g_object_set(e, "cookies", none, NULL);
}

// GstBin announces an added bin's children too, so this sees every element
// once, whatever its depth.
static void on_deep_element_added(GstBin *bin, GstBin *sub, GstElement *element, gpointer unused) {
	unshare_soup(element);
}

// The handler is plain C: it takes no reference to the element, so no Go
// wrapper (freed only by a later garbage collection) keeps a fragment
// source alive after its instance is gone. The handler goes with the bin.
static void watch_soup_sources(GstElement *bin) {
	g_signal_connect(bin, "deep-element-added", G_CALLBACK(on_deep_element_added), NULL);
}
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// unshareSoupSessions keeps every souphttpsrc added inside the bin once it
// runs (the fragment sources hlsdemux creates) from sharing a soup session
// with others. GStreamer 1.22's legacy hlsdemux deadlocks a shared
// session's thread during segment errors: the fragment source posts its
// 404 ERROR from that thread, hlsdemux's message handler waits there for
// the manifest lock, and the playlist refresh holding that lock waits for
// its own request on the same thread (seen in 1 to 3 of 3 ten-second 404
// outages; the instance's threads stay blocked for good and gst_deinit
// then never returns). With a session of its own, a fragment source's
// thread only waits until the refresh is done. The cost: a fragment source
// opens a new session (a thread and a connection) per segment instead of
// reusing one. The description's own souphttpsrc (announced with its
// instance) gets its own session as well; the playlist downloader hlsdemux
// keeps outside any bin is not seen and shares as before, which is safe:
// its errors do not go through hlsdemux's handler.
//
// The watch runs in C only. Through a Go callback, every fragment source
// got a Go wrapper holding a reference until some later garbage
// collection, so sources outlived their instance and could be disposed
// from the collector's thread, even after gst-launch-1.0 had shut
// GStreamer down. A SIGSEGV at exit was seen once in a full make test with
// that callback and never reproduced since; this removes the path.
func unshareSoupSessions(bin *gst.Bin) {
	C.watch_soup_sources((*C.GstElement)(unsafe.Pointer(bin.Unsafe())))
}
