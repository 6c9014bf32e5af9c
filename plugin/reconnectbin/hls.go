package reconnectbin

import (
	"fmt"
	"sync"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/uridesc"
)

// hlsRuntime is what this process's GStreamer offers for HLS, looked up once
// (the registry does not change under a running pipeline).
var hlsRuntime = sync.OnceValue(func() uridesc.Runtime {
	var rt uridesc.Runtime
	if gst.Find("hlsdemux2") != nil {
		if plugin, err := gst.GetRegistry().FindPlugin("adaptivedemux2"); err == nil {
			rt.HLSDemux2, rt.HLSDemux2OK = uridesc.ParseVersion(plugin.Version())
		}
	}
	rt.Legacy = gst.Find("souphttpsrc") != nil && gst.Find("hlsdemux") != nil && gst.Find("decodebin") != nil
	if rt.HLSDemux2OK && rt.HLSDemux2.Less(uridesc.SafeHLSDemux2) {
		if rt.Legacy {
			cat.LogInfo(fmt.Sprintf("hlsdemux2 %v is older than %v: HLS URIs play through souphttpsrc ! hlsdemux ! decodebin "+
				"(hlsdemux2 before %v can corrupt memory when a playlist refresh fails)", rt.HLSDemux2, uridesc.SafeHLSDemux2, uridesc.SafeHLSDemux2))
		} else {
			cat.LogWarning(fmt.Sprintf("hlsdemux2 %v is older than %v and the legacy hlsdemux is missing: HLS URIs play through "+
				"hlsdemux2, which can crash the process when a playlist refresh fails (install gst-plugins-bad's hls plugin)",
				rt.HLSDemux2, uridesc.SafeHLSDemux2))
		}
	}
	return rt
})
