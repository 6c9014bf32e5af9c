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
