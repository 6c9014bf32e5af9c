package reconnectbin

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-gst/go-gst/gst"

	"github.com/kvsrelay/kvsrelay/internal/fielderr"
	"github.com/kvsrelay/kvsrelay/internal/gstshim"
	"github.com/kvsrelay/kvsrelay/internal/supervisor"
	"github.com/kvsrelay/kvsrelay/internal/uridesc"
)

// settings is what the properties say. Guarded by reconnectBin.settingsMu.
type settings struct {
	source        string
	uri           string
	stallTimeout  time.Duration
	retryDelay    time.Duration
	maxRetryDelay time.Duration
	maxRetries    int
	restartOnEOS  bool
	outputCaps    string // serialized fixed caps, "" for none
	// outputAudioCaps is the raw audio format of the audio pad (serialized
	// fixed caps), "" to negotiate it with downstream when needed.
	outputAudioCaps string
	fallback        int
	fallbackHold    time.Duration
	fallbackImage   string
	onCapsChange    int

	// withholdFill is fallback-upload=false (fallbackupload.go); its zero
	// value is the property's default.
	withholdFill bool
	// The backup source (backup.go): at most one of fallbackURI and
	// fallbackSource.
	fallbackURI    string
	fallbackSource string
	mainSteadyTime time.Duration
}

func defaultSettings() settings {
	return settings{
		stallTimeout:   DefaultStallTimeout,
		retryDelay:     DefaultRetryDelay,
		maxRetryDelay:  DefaultMaxRetryDelay,
		maxRetries:     DefaultMaxRetries,
		restartOnEOS:   DefaultRestartOnEOS,
		fallback:       DefaultFallback,
		fallbackHold:   DefaultFallbackHold,
		onCapsChange:   DefaultOnCapsChange,
		mainSteadyTime: DefaultMainSteadyTime,
	}
}

// reconnectConfig is what the reconnect properties say to the supervisor,
// checked by the supervisor's own rules (one place for them), its problems
// renamed to the properties.
func (s settings) reconnectConfig() (supervisor.Config, error) {
	cfg := supervisor.Config{
		StallTimeout:  s.stallTimeout,
		RetryDelay:    s.retryDelay,
		MaxRetryDelay: s.maxRetryDelay,
		MaxRetries:    s.maxRetries,
		SteadyAfter:   supervisor.DefaultSteadyAfter,
	}
	return cfg, fielderr.Rename(cfg.Validate(), configProperties)
}

// configProperties names the properties behind supervisor.Config's fields
// (SteadyAfter has none: it is fixed), so that its validation errors speak
// of what the user sets.
var configProperties = map[string]string{
	"StallTimeout":  "stall-timeout",
	"RetryDelay":    "retry-delay",
	"MaxRetryDelay": "max-retry-delay",
	"MaxRetries":    "max-retries",
}

// badProperty is a setting the user must fix, as a *fielderr.Error whose
// field is the property: the supervisor's problems, renamed, are the same
// kind, so that every bad setting takes one path to the bus
// (propertyMessage).
func badProperty(property, problem string) error {
	return &fielderr.Error{Field: property, Problem: problem}
}

// propertyMessage says err in the user's words, one line per problem:
// "reconnectbin: property 'max-retry-delay' (1s) must be >= retry-delay (2s)".
func propertyMessage(err error) string {
	var lines []string
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *fielderr.Error
		if !errors.As(err, &fe) {
			lines = append(lines, "reconnectbin: "+err.Error())
			return
		}
		line := fmt.Sprintf("reconnectbin: property '%s'", fe.Field)
		if fe.Value != "" {
			line += " (" + fe.Value + ")"
		}
		lines = append(lines, line+" "+fe.Problem)
	}
	walk(err)
	return strings.Join(lines, "\n")
}

// validateSettings checks what can be checked before anything runs: exactly
// one of source and uri, a coherent backoff, a description that parses and
// can have a src pad, and what fallback needs.
func validateSettings(s settings) error {
	switch {
	case s.source == "" && s.uri == "":
		return badProperty("source", "is empty and so is 'uri': set exactly one of them")
	case s.source != "" && s.uri != "":
		return badProperty("source", "and 'uri' are both set: set exactly one of them")
	}
	if _, err := s.reconnectConfig(); err != nil {
		return err
	}
	if err := validateBackup(s); err != nil {
		return err
	}
	switch {
	case s.fallback != FallbackNone && s.outputCaps == "":
		return badProperty("fallback", "needs 'output-caps': fallback frames are made at its size and frame rate")
	case s.fallback == FallbackImage && s.fallbackImage == "":
		return badProperty("fallback-image", "is empty but fallback=image")
	}
	if s.outputCaps != "" {
		if _, err := parseOutputCaps(s.outputCaps); err != nil {
			return badProperty("output-caps", err.Error())
		}
	}
	if s.outputAudioCaps != "" {
		if _, err := parseOutputAudioCaps(s.outputAudioCaps); err != nil {
			return badProperty("output-audio-caps", err.Error())
		}
	}
	if s.fallback == FallbackImage {
		if f, err := os.Open(s.fallbackImage); err != nil {
			return badProperty("fallback-image", fmt.Sprintf("cannot be read: %v", err))
		} else {
			f.Close()
		}
	}
	return checkDescription(s.description())
}

// checkDescription checks that a source description (the property prop
// gave it) parses and can have an unlinked src pad.
func checkDescription(prop, desc string) error {
	bin, err := gst.NewBinFromString(desc, false)
	if err != nil {
		return badProperty(prop, fmt.Sprintf("does not parse: %v", err))
	}
	if !canHaveSrcPad(bin) {
		return badProperty(prop, fmt.Sprintf("has no unlinked src pad: %q ends in a sink or links every output", desc))
	}
	return nil
}

// canHaveSrcPad reports whether a parsed description has an unlinked src pad
// now or may add one later (a demuxer's or decodebin's sometimes pads).
func canHaveSrcPad(bin *gst.Bin) bool {
	if pad := unlinkedSrcPad(bin); pad != nil {
		return true
	}
	elements, err := bin.GetElements()
	if err != nil {
		return false
	}
	for _, el := range elements {
		for _, tmpl := range el.GetPadTemplates() {
			if tmpl.Direction() == gst.PadDirectionSource && tmpl.Presence() != gst.PadPresenceAlways {
				return true
			}
		}
	}
	return false
}

// description returns the gst-launch description of one source instance and
// the property it came from. A uri plays through uridecodebin3, except an
// HLS URI where hlsdemux2 is known to corrupt memory (see uridesc).
func (s settings) description() (property, desc string) {
	return sourceDescription("source", s.source, "uri", s.uri)
}

// sourceDescription is description() for a source set by one of two
// properties: a description (source) or a URI.
func sourceDescription(sourceProp, source, uriProp, uri string) (property, desc string) {
	if source != "" {
		if endsInCaps(source) {
			// GStreamer's parser needs an element after a caps filter
			// ("no element \"video\"" otherwise), and a source ending in
			// one ("... ! h264parse ! video/x-h264,stream-format=avc") is
			// a common way to write what the source gives.
			return sourceProp, source + " ! identity"
		}
		return sourceProp, source
	}
	return uriProp, uridesc.Description(uri, uridesc.UseLegacyHLS(uri, hlsRuntime()))
}

// outputFormat is what output-caps fixes.
type outputFormat struct {
	caps     string
	width    int
	height   int
	frameDur time.Duration
}

// parseOutputCaps checks that caps are fixed raw video with a size and a
// frame rate, which normalising and fallback frames need.
func parseOutputCaps(s string) (outputFormat, error) {
	caps := gst.NewCapsFromString(s)
	if caps == nil || caps.GetSize() != 1 {
		return outputFormat{}, fmt.Errorf("%q is not one caps structure", s)
	}
	st := caps.GetStructureAt(0)
	if st.Name() != "video/x-raw" {
		return outputFormat{}, fmt.Errorf("%q is not video/x-raw", s)
	}
	if !caps.IsFixed() {
		return outputFormat{}, fmt.Errorf("%q is not fixed: give one format, width, height and framerate", s)
	}
	// Whatever output-caps leaves open would follow the camera and change
	// the encoder's configuration (its codec data) on a rebuild: pin the
	// aspect ratio, interlacing and colour description too.
	for field, value := range map[string]string{"pixel-aspect-ratio": "1/1", "interlace-mode": "progressive",
		"colorimetry": "bt709", "chroma-site": "mpeg2"} {
		if gstshim.StructureFieldString(st, field) == "" {
			caps = gst.NewCapsFromString(caps.String() + "," + field + "=" + value)
			st = caps.GetStructureAt(0)
		}
	}
	f := outputFormat{caps: caps.String()}
	w, errW := st.GetValue("width")
	h, errH := st.GetValue("height")
	if errW != nil || errH != nil {
		return outputFormat{}, fmt.Errorf("%q needs width and height", s)
	}
	f.width, _ = w.(int)
	f.height, _ = h.(int)
	num, den, ok := gstshim.StructureFraction(st, "framerate")
	if !ok || num <= 0 || den <= 0 {
		return outputFormat{}, fmt.Errorf("%q needs a non-zero framerate", s)
	}
	f.frameDur = time.Duration(int64(time.Second) * int64(den) / int64(num))
	return f, nil
}

// parseOutputAudioCaps checks that caps are one fixed raw audio format that
// silence can be made in (format, rate, channels, and a channel-mask beyond
// two channels), and returns them serialized.
func parseOutputAudioCaps(s string) (string, error) {
	caps := gst.NewCapsFromString(s)
	if caps == nil || caps.GetSize() != 1 {
		return "", fmt.Errorf("%q is not one caps structure", s)
	}
	if caps.GetStructureAt(0).Name() != "audio/x-raw" {
		return "", fmt.Errorf("%q is not audio/x-raw", s)
	}
	if gstshim.StructureFieldString(caps.GetStructureAt(0), "layout") == "" {
		caps = gst.NewCapsFromString(caps.String() + ",layout=interleaved")
	}
	if !caps.IsFixed() {
		return "", fmt.Errorf("%q is not fixed: give one format, rate and channels", s)
	}
	if gstshim.Silence(caps, 0, gst.ClockTime(20*time.Millisecond)) == nil {
		return "", fmt.Errorf("%q is not a complete raw audio format: give format, rate and channels (and channel-mask beyond 2 channels)", s)
	}
	return caps.String(), nil
}

// trailingCaps matches a caps string: a media type, an optional caps
// feature, then fields.
var trailingCaps = regexp.MustCompile(`^[A-Za-z]+/[A-Za-z0-9._+-]+(\([^)]*\))?\s*(,.*)?$`)

// endsInCaps reports whether a description's last link is a caps filter
// ("... ! video/x-raw,width=320"), outside quotes.
func endsInCaps(desc string) bool {
	last, quoted := -1, false
	for i, r := range desc {
		switch {
		case r == '"':
			quoted = !quoted
		case r == '!' && !quoted:
			last = i
		}
	}
	if last < 0 {
		return false
	}
	return trailingCaps.MatchString(strings.TrimSpace(desc[last+1:]))
}
