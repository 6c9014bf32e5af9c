// Package kvsrelay registers every element of the kvsrelay plugin.
//
// The shared object's entry point calls Register with its GstPlugin; Go
// programs (tests, cmd/gst-inspect-helper, applications) call Register(nil)
// after gst.Init to register the same elements statically, because a Go
// process must never load libgstkvsrelay.so (it would start a second Go
// runtime in the process).
package kvsrelay

import (
	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/plugininfo"
	"github.com/kvsrelay/kvsrelay/plugin/kvscredprovider"
	"github.com/kvsrelay/kvsrelay/plugin/reconnectbin"
)

// Plugin metadata shown by gst-inspect-1.0, kept in the cgo-free package
// internal/plugininfo so that the doctor can build without GStreamer.
const (
	PluginName        = plugininfo.PluginName
	PluginDescription = plugininfo.PluginDescription
	Version           = plugininfo.Version
	Origin            = plugininfo.Origin
	ReleaseDate       = plugininfo.ReleaseDate
)

// Elements lists the factory names this plugin registers, in documentation
// order; plugininfo.Elements must name the same (a test checks).
var Elements = []string{reconnectbin.FactoryName, kvscredprovider.FactoryName}

// Register registers every kvsrelay element with plugin, or statically when
// plugin is nil. It reports whether all registrations succeeded.
func Register(plugin *gst.Plugin) bool {
	return reconnectbin.Register(plugin) && kvscredprovider.Register(plugin)
}
