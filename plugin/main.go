// Command plugin is the shared-object entry point of kvsrelay: built with
// -buildmode=c-shared into libgstkvsrelay.so and loaded by GStreamer through
// GST_PLUGIN_PATH or the user's plugin folder.
//
// It holds no element code: every element lives in its own package under
// plugin/ and registers itself through plugin/kvsrelay, which Go programs call
// directly instead of loading this .so (one Go runtime per process).
package main

import "C"

import (
	"unsafe"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/plugin/kvsrelay"
)

// extraElements is filled by build-tagged files (the test build adds the
// kvssink stand-in); the shipped .so registers only kvsrelay's own elements.
var extraElements []func(*gst.Plugin) bool

var pluginMeta = &gst.PluginMetadata{
	MajorVersion: gst.VersionMajor,
	MinorVersion: gst.VersionMinor,
	Name:         kvsrelay.PluginName,
	Description:  kvsrelay.PluginDescription,
	Version:      kvsrelay.Version,
	License:      gst.LicenseLGPL,
	Source:       "kvsrelay",
	Package:      "kvsrelay",
	Origin:       kvsrelay.Origin,
	ReleaseDate:  kvsrelay.ReleaseDate,
	Init: func(plugin *gst.Plugin) bool {
		if !kvsrelay.Register(plugin) {
			return false
		}
		for _, register := range extraElements {
			if !register(plugin) {
				return false
			}
		}
		return true
	},
}

// GStreamer derives this symbol's name from the file name libgstkvsrelay.so.
//
//export gst_plugin_kvsrelay_get_desc
func gst_plugin_kvsrelay_get_desc() unsafe.Pointer { return pluginMeta.Export() }

func main() {}
