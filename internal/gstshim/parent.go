package gstshim

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>

static GstObject *shim_top_level(GstObject *obj) {
	GstObject *top = gst_object_ref(obj);
	GstObject *parent;
	while ((parent = gst_object_get_parent(top)) != NULL) {
		gst_object_unref(top);
		top = parent;
	}
	return top;
}

// The outermost bin holding obj (a new reference), or NULL when obj has no
// parent.
static GstBin *shim_top_level_bin(GstObject *obj) {
	GstObject *top = shim_top_level(obj);
	if (top == obj || !GST_IS_BIN(top)) {
		gst_object_unref(top);
		return NULL;
	}
	return GST_BIN(top);
}

static gboolean shim_is_bin(gpointer e) { return GST_IS_BIN(e); }
*/
import "C"

import (
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// TopLevel returns the outermost ancestor of obj (the pipeline), or obj
// itself when it has no parent. go-gst v1.4.0 has no GetParent.
func TopLevel(obj *gst.Object) *gst.Element {
	top := C.shim_top_level((*C.GstObject)(obj.Unsafe()))
	return gst.FromGstElementUnsafeFull(unsafe.Pointer(top))
}

// TopLevelBin returns the outermost bin holding e, or nil when e is in none.
func TopLevelBin(e *gst.Element) *gst.Bin {
	b := C.shim_top_level_bin((*C.GstObject)(e.Unsafe()))
	if b == nil {
		return nil
	}
	return gst.ToGstBin(gst.FromGstElementUnsafeFull(unsafe.Pointer(b)))
}

// IsBin reports whether e is a GstBin (and so may hold other elements).
func IsBin(e *gst.Element) bool {
	return e != nil && C.shim_is_bin(C.gpointer(e.Unsafe())) != 0
}
