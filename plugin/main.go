// Command plugin is the shared-object entry point of kvsrelay: built with
// -buildmode=c-shared into libgstkvsrelay.so and loaded by GStreamer through
// GST_PLUGIN_PATH or the user's plugin folder.
//
// It holds no element code: every element lives in its own package under
// plugin/ and registers itself through plugin/kvsrelay, which Go programs call
// directly instead of loading this .so (one Go runtime per process).
package main

/*
#cgo pkg-config: gstreamer-1.0
#include <gst/gst.h>
const GstPluginDesc *kvsrelay_fill_desc(const char *name, const char *description, const char *version,
	const char *license, const char *source, const char *package, const char *origin, const char *release_date);
*/
import "C"

import (
	"sync"
	"unsafe"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/plugin/kvsrelay"
)

// extraElements is filled by build-tagged files (the test build adds the
// kvssink stand-in); the shipped .so registers only kvsrelay's own elements.
var extraElements []func(*gst.Plugin) bool

var (
	descOnce sync.Once
	desc     unsafe.Pointer
)

// GStreamer derives this symbol's name from the file name libgstkvsrelay.so.
//
//export gst_plugin_kvsrelay_get_desc
func gst_plugin_kvsrelay_get_desc() unsafe.Pointer {
	descOnce.Do(func() {
		// The strings live as long as the process, as GStreamer expects.
		desc = unsafe.Pointer(C.kvsrelay_fill_desc(
			C.CString(kvsrelay.PluginName), C.CString(kvsrelay.PluginDescription), C.CString(kvsrelay.Version),
			C.CString("LGPL"), C.CString("kvsrelay"), C.CString("kvsrelay"),
			C.CString(kvsrelay.Origin), C.CString(kvsrelay.ReleaseDate)))
	})
	return desc
}

//export kvsrelayPluginInit
func kvsrelayPluginInit(plugin *C.GstPlugin) C.gboolean {
	p := gst.FromGstPluginUnsafeNone(unsafe.Pointer(plugin))
	if !kvsrelay.Register(p) {
		return C.FALSE
	}
	for _, register := range extraElements {
		if !register(p) {
			return C.FALSE
		}
	}
	return C.TRUE
}

func main() {}
