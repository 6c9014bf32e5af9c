package mediakind

import "testing"

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		caps string
		want Kind
	}{
		// Decoded and passthrough video, images.
		{"video/x-raw, format=(string)I420, width=(int)320, height=(int)240", Video},
		{"video/x-raw(memory:GLMemory), format=(string)RGBA", Video},
		{"video/x-h264, stream-format=(string)avc, alignment=(string)au", Video},
		{"video/x-h265", Video},
		{"image/jpeg", Video},
		{"video/mpegts, systemstream=(boolean)true", Video},
		// Decoded and passthrough audio.
		{"audio/x-raw, format=(string)S16LE, rate=(int)44100, channels=(int)2", Audio},
		{"audio/mpeg, mpegversion=(int)4, stream-format=(string)adts", Audio},
		{"audio/x-alaw, rate=(int)8000", Audio},
		{"audio/x-mulaw", Audio},
		{"audio/x-opus", Audio},
		// RTP: the media field decides; template caps have none.
		{"application/x-rtp, media=(string)video, encoding-name=(string)H264", Video},
		{"application/x-rtp, media=(string)audio, encoding-name=(string)MPEG4-GENERIC", Audio},
		{"application/x-rtp, media=audio", Audio},
		{`application/x-rtp, media="video"`, Video},
		{"application/x-rtp, media=(string)application", Other},
		{"application/x-rtp", Unknown},
		// Neither video nor audio: absorbed.
		{"text/x-raw, format=(string)utf8", Other},
		{"subpicture/x-dvb", Other},
		{"application/x-subtitle-vtt", Other},
		{"closedcaption/x-cea-708, format=(string)cc_data", Other},
		{"meta/x-klv, parsed=(boolean)true", Other},
		{"application/x-klv", Other},
		{"application/x-id3", Other},
		// Nothing known until negotiated.
		{"ANY", Unknown},
		{"EMPTY", Unknown},
		{"", Unknown},
		{"  ", Unknown},
		// A pad that may carry either must negotiate first.
		{"video/x-raw; audio/x-raw", Unknown},
		{"video/x-raw, format=(string)I420; video/x-raw, format=(string)NV12; image/jpeg", Video},
		{"audio/x-raw; audio/mpeg", Audio},
		// Bare structure names.
		{"video/x-raw", Video},
		{"audio/x-raw", Audio},
	} {
		if got := Classify(tc.caps); got != tc.want {
			t.Errorf("Classify(%q) = %v, want %v", tc.caps, got, tc.want)
		}
	}
}

func TestOfStructureIgnoresFeaturesAndSpaces(t *testing.T) {
	for _, tc := range []struct {
		name, media string
		want        Kind
	}{
		{" video/x-raw(memory:DMABuf) ", "", Video},
		{"audio/x-raw(meta:GstAudioMeta)", "", Audio},
		{"application/x-srtp", "video", Video},
		{"application/x-rtp", "text", Other},
		{"NONE", "", Unknown},
	} {
		if got := OfStructure(tc.name, tc.media); got != tc.want {
			t.Errorf("OfStructure(%q, %q) = %v, want %v", tc.name, tc.media, got, tc.want)
		}
	}
}

func TestCombine(t *testing.T) {
	for _, tc := range []struct {
		kinds []Kind
		want  Kind
	}{
		{nil, Unknown},
		{[]Kind{Video}, Video},
		{[]Kind{Audio, Audio}, Audio},
		{[]Kind{Video, Audio}, Unknown},
		{[]Kind{Video, Unknown}, Unknown},
		{[]Kind{Other, Other}, Other},
	} {
		if got := Combine(tc.kinds...); got != tc.want {
			t.Errorf("Combine(%v) = %v, want %v", tc.kinds, got, tc.want)
		}
	}
}
