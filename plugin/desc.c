// The plugin descriptor GStreamer reads from libgstkvsrelay.so. It is filled
// in from Go (plugin/main.go) with NUL-terminated copies of the metadata:
// go-gst v1.4.0's PluginMetadata.Export passes the name as a Go byte slice
// without a terminating NUL, which showed up as a garbled plugin name.
#include <gst/gst.h>

extern gboolean kvsrelayPluginInit(GstPlugin *plugin);

static gboolean kvsrelay_plugin_init(GstPlugin *plugin) { return kvsrelayPluginInit(plugin); }

static GstPluginDesc kvsrelay_desc;

const GstPluginDesc *kvsrelay_fill_desc(const char *name, const char *description, const char *version,
                                        const char *license, const char *source, const char *package,
                                        const char *origin, const char *release_date) {
	kvsrelay_desc.major_version = GST_VERSION_MAJOR;
	kvsrelay_desc.minor_version = GST_VERSION_MINOR;
	kvsrelay_desc.name = name;
	kvsrelay_desc.description = description;
	kvsrelay_desc.plugin_init = kvsrelay_plugin_init;
	kvsrelay_desc.version = version;
	kvsrelay_desc.license = license;
	kvsrelay_desc.source = source;
	kvsrelay_desc.package = package;
	kvsrelay_desc.origin = origin;
	kvsrelay_desc.release_datetime = release_date;
	return &kvsrelay_desc;
}
