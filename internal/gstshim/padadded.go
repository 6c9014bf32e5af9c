package gstshim

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>

extern void shimPadAdded(GstElement *element, GstPad *pad, guintptr id);

static void shim_pad_added_cb(GstElement *element, GstPad *pad, gpointer id) {
	shimPadAdded(element, pad, (guintptr)id);
}

static gulong shim_connect_pad_added(gpointer element, guintptr id) {
	return g_signal_connect(element, "pad-added", G_CALLBACK(shim_pad_added_cb), (gpointer)id);
}

static void shim_disconnect(gpointer object, gulong handler) {
	if (g_signal_handler_is_connected(object, handler))
		g_signal_handler_disconnect(object, handler);
}
*/
import "C"

import (
	"sync"
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// ConnectPadAdded calls fn for every pad element adds, until the returned
// disconnect is called. go-glib v1.4.0's Connect cannot be used for objects
// that come and go: it keeps one reference too many on its GClosure, so the
// closure, and everything its Go function captures, outlives the handler
// (every source instance with a demuxer or decodebin stayed alive after
// its rebuild, with its sockets: two file descriptors per HLS rebuild).
// Here the C handler carries a plain id and disconnect forgets the function.
func ConnectPadAdded(element *gst.Element, fn func(*gst.Pad)) (disconnect func()) {
	id := newHandle(fn)
	handler := C.shim_connect_pad_added(C.gpointer(element.Unsafe()), C.guintptr(id))
	var once sync.Once
	return func() {
		once.Do(func() {
			C.shim_disconnect(C.gpointer(element.Unsafe()), handler)
			deleteHandle(id)
		})
	}
}

//export shimPadAdded
func shimPadAdded(_ *C.GstElement, pad *C.GstPad, id C.guintptr) {
	if fn, _ := handleValue(uintptr(id)).(func(*gst.Pad)); fn != nil {
		fn(gst.FromGstPadUnsafeNone(unsafe.Pointer(pad)))
	}
}
