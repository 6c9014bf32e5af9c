package uridesc

import "testing"

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
		ok   bool
	}{
		{"1.22.0", Version{1, 22, 0}, true},
		{"1.22.12", Version{1, 22, 12}, true},
		{"1.23.0.1", Version{1, 23, 0}, true},
		{" 1.24.0\n", Version{1, 24, 0}, true},
		{"1.22", Version{}, false},
		{"1.x.0", Version{}, false},
		{"", Version{}, false},
	} {
		got, ok := ParseVersion(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIsHLS(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"http://cam/index.m3u8", true},
		{"https://cam.example/live/Stream.M3U8?token=a.mp4", true},
		{"http://127.0.0.1:8080/playlist.m3u8#frag", true},
		{"http://cam/video.mp4", false},
		{"http://cam/index.m3u8.bak", false},
		{"http://cam/hls?format=index.m3u8", false}, // only the path counts
		{"file:///srv/index.m3u8", false},           // not fetched over HTTP
		{"rtsp://cam/index.m3u8", false},
		{"srt://127.0.0.1:9000", false},
		{"::not a uri", false},
	} {
		if got := IsHLS(tc.uri); got != tc.want {
			t.Errorf("IsHLS(%q) = %v, want %v", tc.uri, got, tc.want)
		}
	}
}

func TestUseLegacyHLS(t *testing.T) {
	affected := Runtime{HLSDemux2: Version{1, 22, 0}, HLSDemux2OK: true, Legacy: true}
	for _, tc := range []struct {
		name string
		uri  string
		rt   Runtime
		want bool
	}{
		{"1.22.0 HLS", "http://cam/index.m3u8", affected, true},
		{"last 1.22", "http://cam/index.m3u8", Runtime{Version{1, 22, 12}, true, true}, true},
		{"1.23 development", "http://cam/index.m3u8", Runtime{Version{1, 23, 90}, true, true}, true},
		{"1.24.0", "http://cam/index.m3u8", Runtime{Version{1, 24, 0}, true, true}, false},
		{"2.0", "http://cam/index.m3u8", Runtime{Version{2, 0, 0}, true, true}, false},
		{"not HLS", "rtsp://cam/stream", affected, false},
		{"no hlsdemux2", "http://cam/index.m3u8", Runtime{Legacy: true}, false},
		{"no legacy hlsdemux", "http://cam/index.m3u8", Runtime{Version{1, 22, 0}, true, false}, false},
	} {
		if got := UseLegacyHLS(tc.uri, tc.rt); got != tc.want {
			t.Errorf("%s: UseLegacyHLS(%q, %+v) = %v, want %v", tc.name, tc.uri, tc.rt, got, tc.want)
		}
	}
}

func TestDescription(t *testing.T) {
	for _, tc := range []struct {
		uri    string
		legacy bool
		want   string
	}{
		{"http://cam/index.m3u8", false, `uridecodebin3 uri="http://cam/index.m3u8"`},
		{"http://cam/index.m3u8", true, `souphttpsrc location="http://cam/index.m3u8" ! hlsdemux ! decodebin`},
		{`http://cam/a"b.m3u8`, true, `souphttpsrc location="http://cam/a\"b.m3u8" ! hlsdemux ! decodebin`},
		{`rtsp://cam/"x"`, false, `uridecodebin3 uri="rtsp://cam/\"x\""`},
		{"tcp://10.0.0.30:9000", false, `tcpclientsrc host="10.0.0.30" port=9000 ! decodebin`},
		{"TCP://encoder.local:9000/", true, `tcpclientsrc host="encoder.local" port=9000 ! decodebin`},
		{"tcp://[::1]:9000", false, `tcpclientsrc host="::1" port=9000 ! decodebin`},
		// Not an address tcpclientsrc can take: left to uridecodebin3, which
		// reports it.
		{"tcp://encoder.local", false, `uridecodebin3 uri="tcp://encoder.local"`},
		{"tcp://encoder.local:70000", false, `uridecodebin3 uri="tcp://encoder.local:70000"`},
		{"tcp://encoder.local:9000/live?x=1", false, `uridecodebin3 uri="tcp://encoder.local:9000/live?x=1"`},
	} {
		if got := Description(tc.uri, tc.legacy); got != tc.want {
			t.Errorf("Description(%q, %v) = %s, want %s", tc.uri, tc.legacy, got, tc.want)
		}
	}
}
