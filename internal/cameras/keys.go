package cameras

// known lists every setting a relay reads: the common ones
// (pipelines/README.md, "Variables"), the recipes' own (at the top of each
// script) and the plugin's environment. A test keeps it in step with those
// files.
var known = map[string]bool{}

func init() {
	for _, k := range []string{
		// kvs-relay-run and every recipe
		"RECIPE", "SOURCE", "STREAM_NAME", "AWS_REGION", "SINK", "KVSSINK_EXTRA", "CREDS",
		"CRED_SOURCE", "CRED_ROLE", "CRED_PROFILE", "CREDENTIAL_PATH", "CRED_REFRESH_BEFORE_MS",
		"OUTPUT_CAPS", "FALLBACK", "FALLBACK_HOLD_MS", "FALLBACK_IMAGE", "BITRATE_KBPS", "KEY_INT_MAX",
		"X264_PRESET", "STALL_TIMEOUT_MS", "RETRY_DELAY_MS", "MAX_RETRY_DELAY_MS", "MAX_RETRIES",
		"TRANSCODE", "GST_LAUNCH_FLAGS", "DRY_RUN", "KVSSINK_PLUGIN_DIR", "OUTAGE_BUDGET_S", "STREAM_KBPS",
		"AUDIO", "AUDIO_RATE", "AUDIO_CHANNELS", "AUDIO_BITRATE_KBPS",
		// recipes' own
		"HTTP_RETRIES", "HTTP_TIMEOUT_S", "MULTICAST_IFACE", "UDP_BUFFER_BYTES", "RTSP_LATENCY_MS",
		"RTSP_USER", "RTSP_PASSWORD", "RTSP_PROTOCOLS", "SRT_LATENCY_MS", "SRT_PASSPHRASE", "SRT_STREAMID",
		"PATTERN",
		// the plugin's environment
		"KVSRELAY_METRICS", "KVSRELAY_METRICS_INTERVAL", "KVSRELAY_HEALTH_ADDR", "KVSRELAY_HEALTH_INTERVAL",
		"GST_DEBUG",
	} {
		known[k] = true
	}
}

// Known reports whether key is a relay setting.
func Known(key string) bool { return known[key] }

// KnownKeys returns every setting, for tests and help texts.
func KnownKeys() []string {
	out := make([]string, 0, len(known))
	for k := range known {
		out = append(out, k)
	}
	return out
}

// Secret settings never go into a ConfigMap (the Secret of the group holds
// them), and make environment files readable by root only.
var Secret = map[string]bool{"RTSP_USER": true, "RTSP_PASSWORD": true, "SRT_PASSPHRASE": true}

// forbidden settings would break the relay in every case.
var forbidden = map[string]string{
	"AWS_ACCESS_KEY_ID":     "static keys make kvssink ignore the credential file kvscredprovider refreshes",
	"AWS_SECRET_ACCESS_KEY": "static keys make kvssink ignore the credential file kvscredprovider refreshes",
	"AWS_SESSION_TOKEN":     "static keys make kvssink ignore the credential file kvscredprovider refreshes",
	"RUNTIME_DIRECTORY":     "systemd sets it per instance (the credential folder)",
}

// perCamera settings must differ between cameras of one host or pod.
var perCamera = map[string]bool{"STREAM_NAME": true, "KVSRELAY_HEALTH_ADDR": true, "CREDENTIAL_PATH": true}

var perCameraWhy = map[string]string{
	"STREAM_NAME":          "two relays cannot upload one stream",
	"KVSRELAY_HEALTH_ADDR": "each relay listens on its own port",
	"CREDENTIAL_PATH":      "each kvssink reads its own credential file",
}

// sourceOptional recipes have a default source.
var sourceOptional = map[string]bool{"testpattern": true, "srt-listener": true, "mpegts-udp": true}
