package reconnectbin

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A bad setting reaches the bus naming the property the user sets, whether
// the element's own check or the supervisor's found it.
func TestBadSettingsNameTheirProperty(t *testing.T) {
	base := defaultSettings()
	base.source = "videotestsrc"
	for _, tc := range []struct {
		name   string
		change func(*settings)
		want   string
	}{
		{"neither source nor uri", func(s *settings) { s.source = "" },
			"reconnectbin: property 'source' is empty and so is 'uri': set exactly one of them"},
		{"backoff cap below start", func(s *settings) { s.retryDelay, s.maxRetryDelay = 3*time.Second, time.Second },
			"reconnectbin: property 'max-retry-delay' (1s) must be >= retry-delay (3s)"},
		{"fallback without output-caps", func(s *settings) { s.fallback = FallbackBlack },
			"reconnectbin: property 'fallback' needs 'output-caps': fallback frames are made at its size and frame rate"},
		{"output-audio-caps not audio", func(s *settings) { s.outputAudioCaps = "video/x-raw" },
			`reconnectbin: property 'output-audio-caps' "video/x-raw" is not audio/x-raw`},
		{"output-audio-caps encoded", func(s *settings) { s.outputAudioCaps = "audio/mpeg,mpegversion=4" },
			`reconnectbin: property 'output-audio-caps' "audio/mpeg,mpegversion=4" is not audio/x-raw`},
		{"output-audio-caps not fixed", func(s *settings) { s.outputAudioCaps = "audio/x-raw,format=S16LE,rate=[8000,48000],channels=2" },
			`reconnectbin: property 'output-audio-caps' "audio/x-raw,format=S16LE,rate=[8000,48000],channels=2" is not fixed: give one format, rate and channels`},
		{"output-audio-caps incomplete", func(s *settings) { s.outputAudioCaps = "audio/x-raw,format=S16LE,rate=48000" },
			`reconnectbin: property 'output-audio-caps' "audio/x-raw,format=S16LE,rate=48000" is not a complete raw audio format: give format, rate and channels (and channel-mask beyond 2 channels)`},
		{"fallback-uri and fallback-source both set", func(s *settings) { s.fallbackURI, s.fallbackSource = "tcp://127.0.0.1:1", "videotestsrc" },
			"reconnectbin: property 'fallback-uri' and 'fallback-source' are both set: set at most one of them"},
		{"fallback-source does not parse", func(s *settings) { s.fallbackSource = "nosuchelement42" },
			"reconnectbin: property 'fallback-source' does not parse: no element \"nosuchelement42\""},
		{"fallback-source ends in a sink", func(s *settings) { s.fallbackSource = "videotestsrc ! fakesink" },
			`reconnectbin: property 'fallback-source' has no unlinked src pad: "videotestsrc ! fakesink" ends in a sink or links every output`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := base
			tc.change(&s)
			err := validateSettings(s)
			if err == nil {
				t.Fatal("validateSettings accepted the settings")
			}
			if got := propertyMessage(err); got != tc.want {
				t.Errorf("message %q, want %q", got, tc.want)
			}
		})
	}
	if err := validateSettings(base); err != nil {
		t.Errorf("valid settings refused: %v", err)
	}
	withBackup := base
	withBackup.fallbackURI = "tcp://127.0.0.1:1"
	if err := validateSettings(withBackup); err != nil {
		t.Errorf("a fallback-uri refused: %v", err)
	}
	withAudio := base
	withAudio.outputAudioCaps = "audio/x-raw,format=S16LE,rate=48000,channels=2"
	if err := validateSettings(withAudio); err != nil {
		t.Errorf("a complete output-audio-caps refused: %v", err)
	}
	if got := propertyMessage(errors.New("other")); !strings.HasPrefix(got, "reconnectbin: other") {
		t.Errorf("a non-property error reads %q", got)
	}
}

// A source written as what it gives ("... ! video/x-h264,stream-format=avc")
// is accepted though GStreamer's parser needs an element after caps.
func TestSourceEndingInCapsIsAccepted(t *testing.T) {
	for _, tc := range []struct {
		desc string
		want bool
	}{
		{"videotestsrc ! video/x-raw,width=320,height=240,framerate=25/1", true},
		{"videotestsrc ! video/x-raw", true},
		{"videotestsrc ! video/x-raw(memory:SystemMemory), width=320", true},
		{"rtspsrc location=rtsp://cam/1 ! rtph264depay ! h264parse ! video/x-h264,stream-format=avc,alignment=au", true},
		{"videotestsrc", false},
		{"videotestsrc ! videoconvert", false},
		{"videotestsrc ! capsfilter caps=video/x-raw,width=320", false},
		{`videotestsrc ! textoverlay text="a ! b/c"`, false},
		{"videotestsrc ! video/x-raw ! videoconvert", false},
	} {
		if got := endsInCaps(tc.desc); got != tc.want {
			t.Errorf("endsInCaps(%q) = %v, want %v", tc.desc, got, tc.want)
		}
	}
	s := defaultSettings()
	s.source = "videotestsrc ! video/x-raw,width=320,height=240,framerate=25/1"
	if err := validateSettings(s); err != nil {
		t.Errorf("a source ending in caps refused: %v", err)
	}
}
