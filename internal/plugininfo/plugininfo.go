// Package plugininfo is the kvsrelay plugin's identity without any cgo: its
// name, version and element names. plugin/kvsrelay registers the elements
// under these names; cmd/gst-inspect-helper's doctor, which is built with
// CGO_ENABLED=0 so that it runs (and says what is missing) on a host without
// GStreamer's libraries, checks an installed plugin against them.
package plugininfo

// Plugin metadata shown by gst-inspect-1.0.
const (
	PluginName        = "kvsrelay"
	PluginDescription = "Self-healing live relays into AWS Kinesis Video Streams: source reconnection and credential refresh"
	Version           = "0.1.0"
	Origin            = "https://github.com/kvsrelay/kvsrelay"
	ReleaseDate       = "2026-11-25"
)

// Elements lists the factory names the plugin registers, in documentation
// order. plugin/kvsrelay.Elements is built from the element packages'
// FactoryName constants; a test keeps the two equal.
var Elements = []string{"reconnectbin", "kvscredprovider"}
