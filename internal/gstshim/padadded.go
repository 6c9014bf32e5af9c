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

extern void shimCapsNotify(GstPad *pad, guintptr id);

static void shim_caps_notify_cb(GObject *pad, GParamSpec *pspec, gpointer id) {
	shimCapsNotify(GST_PAD(pad), (guintptr)id);
}

static gulong shim_connect_caps_notify(gpointer pad, guintptr id) {
	return g_signal_connect(pad, "notify::caps", G_CALLBACK(shim_caps_notify_cb), (gpointer)id);
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

// ConnectCapsNotify calls fn when pad's caps are set (notify::caps), until
// the returned disconnect is called. GStreamer emits it while storing a new
// CAPS event, before the pad pushes its sticky events on: a pad linked from
// fn sends stream-start, caps and segment downstream in order. Connected the
// way ConnectPadAdded is, for the same reason.
func ConnectCapsNotify(pad *gst.Pad, fn func(*gst.Pad)) (disconnect func()) {
	id := newHandle(fn)
	handler := C.shim_connect_caps_notify(C.gpointer(pad.Unsafe()), C.guintptr(id))
	var once sync.Once
	return func() {
		once.Do(func() {
			C.shim_disconnect(C.gpointer(pad.Unsafe()), handler)
			deleteHandle(id)
		})
	}
}

//export shimCapsNotify
func shimCapsNotify(pad *C.GstPad, id C.guintptr) {
	if fn, _ := handleValue(uintptr(id)).(func(*gst.Pad)); fn != nil {
		fn(gst.FromGstPadUnsafeNone(unsafe.Pointer(pad)))
	}
}
