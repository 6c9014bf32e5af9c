package kvsendpoint

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
)

// Builders for EBML test streams.

func idBytes(id uint32) []byte {
	b := []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// sizeBytes writes n as an 8-byte EBML size (what muxers often do).
func sizeBytes(n int) []byte {
	b := make([]byte, 8)
	v := uint64(n)
	for i := 7; i >= 1; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	b[0] = 0x01
	return b
}

var unknownSize = []byte{0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}

func el(id uint32, children ...[]byte) []byte {
	data := bytes.Join(children, nil)
	return append(append(idBytes(id), sizeBytes(len(data))...), data...)
}

// short writes a 1-byte size (values up to 126).
func short(id uint32, data []byte) []byte {
	return append(append(idBytes(id), 0x80|byte(len(data))), data...)
}

func open(id uint32) []byte { return append(idBytes(id), unknownSize...) }

func uintEl(id uint32, v uint64) []byte {
	return short(id, []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func simpleBlock(track byte, rel int16, key bool, payload int) []byte {
	flags := byte(0)
	if key {
		flags = 0x80
	}
	data := append([]byte{0x80 | track, byte(uint16(rel) >> 8), byte(rel), flags}, make([]byte, payload)...)
	return el(idSimpleBlock, data)
}

func block(track byte, rel int16) []byte {
	return el(idBlock, []byte{0x80 | track, byte(uint16(rel) >> 8), byte(rel), 0}, []byte{1, 2, 3})
}

var (
	ebmlHeader = el(idEBML, short(0x4282, []byte("matroska")))
	tracks     = el(idTracks, el(idTrackEntry, uintEl(idTrackNumber, 1), short(idCodecID, []byte("V_MPEG4/ISO/AVC")),
		short(idCodecPrivate, []byte{0x01, 0x64, 0x00, 0x1f})))
	eofrTags = el(idTags, el(0x7373, short(0x67C8, []byte("AWS_KINESISVIDEO_END_OF_FRAGMENT"))))
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// summarize scans data and describes the events as short strings.
func summarize(data []byte) ([]string, error) {
	var out []string
	err := newMKVScanner(bytes.NewReader(data), func(ev mkvEvent) error {
		switch ev.Kind {
		case evSegmentStart:
			out = append(out, "segment")
		case evTimecodeScale:
			out = append(out, fmt.Sprintf("scale:%d", ev.TimecodeScale))
		case evTracks:
			for _, t := range ev.Tracks {
				out = append(out, fmt.Sprintf("track:%d:%s:%s", t.Number, t.CodecID, hex.EncodeToString(t.CodecPrivate)))
			}
		case evClusterStart:
			out = append(out, "cluster")
		case evClusterTimecode:
			out = append(out, fmt.Sprintf("tc:%d", ev.Timecode))
		case evBlock:
			key := "delta"
			if ev.Block.Keyframe {
				key = "key"
			}
			out = append(out, fmt.Sprintf("block:%d:%d:%s:%d", ev.Block.Track, ev.Block.Relative, key, ev.Block.Frames))
		case evClusterEnd:
			out = append(out, "end")
		}
		return nil
	}).run()
	return out, err
}

func TestScannerFindsClustersAsAProducerWritesThem(t *testing.T) {
	laced := el(idSimpleBlock, []byte{0x81, 0, 0, 0x80 | 0x02, 2}, make([]byte, 9))
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{
			"unknown-size segment and clusters, each ended by the next",
			cat(ebmlHeader, open(idSegment), tracks,
				open(idCluster), uintEl(idTimecode, 1000), simpleBlock(1, 0, true, 50), simpleBlock(1, 33, false, 20),
				open(idCluster), uintEl(idTimecode, 1500), simpleBlock(1, 0, true, 50)),
			[]string{"segment", "track:1:V_MPEG4/ISO/AVC:0164001f", "cluster", "tc:1000", "block:1:0:key:1", "block:1:33:delta:1",
				"end", "cluster", "tc:1500", "block:1:0:key:1", "end"},
		},
		{
			"known-size clusters",
			cat(ebmlHeader, el(idSegment, tracks,
				el(idCluster, uintEl(idTimecode, 0), simpleBlock(1, 0, true, 10)),
				el(idCluster, uintEl(idTimecode, 40), simpleBlock(1, 0, false, 10)))),
			[]string{"segment", "track:1:V_MPEG4/ISO/AVC:0164001f", "cluster", "tc:0", "block:1:0:key:1", "end",
				"cluster", "tc:40", "block:1:0:delta:1", "end"},
		},
		{
			"kvssink's end-of-fragment Tags end the cluster at once",
			cat(ebmlHeader, open(idSegment), open(idCluster), uintEl(idTimecode, 7), simpleBlock(1, 0, true, 5), eofrTags),
			[]string{"segment", "cluster", "tc:7", "block:1:0:key:1", "end"},
		},
		{
			"a new EBML header ends cluster and segment",
			cat(ebmlHeader, open(idSegment), open(idCluster), uintEl(idTimecode, 7), simpleBlock(1, 0, true, 5),
				ebmlHeader, open(idSegment), open(idCluster), uintEl(idTimecode, 9)),
			[]string{"segment", "cluster", "tc:7", "block:1:0:key:1", "end", "segment", "cluster", "tc:9", "end"},
		},
		{
			"Void and CRC-32 stay inside an unknown-size cluster",
			cat(ebmlHeader, open(idSegment), open(idCluster), uintEl(idTimecode, 1), short(idVoid, []byte{0, 0}),
				short(idCRC32, []byte{1, 2, 3, 4}), simpleBlock(1, 1, false, 1)),
			[]string{"segment", "cluster", "tc:1", "block:1:1:delta:1", "end"},
		},
		{
			"BlockGroup: keyframe unless it has a ReferenceBlock",
			cat(ebmlHeader, open(idSegment), open(idCluster), uintEl(idTimecode, 0),
				el(idBlockGroup, block(1, 0)), el(idBlockGroup, block(1, 40), short(idReferenceBlk, []byte{0xD8}))),
			[]string{"segment", "cluster", "tc:0", "block:1:0:key:1", "block:1:40:delta:1", "end"},
		},
		{
			"laced block counts its frames; TimecodeScale from Info",
			cat(ebmlHeader, open(idSegment), el(idInfo, uintEl(idTimecodeScale, 100000)), open(idCluster), uintEl(idTimecode, 0), laced),
			[]string{"segment", "scale:100000", "cluster", "tc:0", "block:1:0:key:3", "end"},
		},
		{
			"negative relative block timecode",
			cat(ebmlHeader, open(idSegment), open(idCluster), uintEl(idTimecode, 100), simpleBlock(2, -20, false, 1)),
			[]string{"segment", "cluster", "tc:100", "block:2:-20:delta:1", "end"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := summarize(tc.data)
			if err != nil {
				t.Fatalf("scan: %v (events %v)", err, got)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("events\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestScannerRejectsBrokenStreams(t *testing.T) {
	knownCluster := el(idCluster, uintEl(idTimecode, 0), simpleBlock(1, 0, true, 100))
	fullBlock := simpleBlock(1, 0, true, 100)
	tests := []struct {
		name    string
		data    []byte
		want    error
		partial []string // events before the error
	}{
		{"cut inside a known-size cluster", cat(ebmlHeader, open(idSegment), knownCluster[:len(knownCluster)-30]), io.ErrUnexpectedEOF,
			[]string{"segment", "cluster", "tc:0"}},
		{"cut inside a block of an unknown-size cluster",
			cat(ebmlHeader, open(idSegment), open(idCluster), uintEl(idTimecode, 0), fullBlock[:len(fullBlock)-1]), io.ErrUnexpectedEOF,
			[]string{"segment", "cluster", "tc:0"}},
		{"cut inside an element header", cat(ebmlHeader, open(idSegment), open(idCluster), []byte{0x1F, 0x43}), io.ErrUnexpectedEOF,
			[]string{"segment", "cluster"}},
		{"unknown size on a non-master element", cat(ebmlHeader, open(idSegment), open(idCluster), open(idSimpleBlock)), errInvalidMKV,
			[]string{"segment", "cluster"}},
		{"cluster outside a segment", cat(ebmlHeader, open(idCluster)), errInvalidMKV, nil},
		{"segment without an EBML header", cat(open(idSegment), open(idCluster)), errInvalidMKV, nil},
		{"text", []byte("this is not a matroska stream"), errInvalidMKV, nil},
		{"zero byte where an ID starts", cat(ebmlHeader, []byte{0x00, 0x81}), errInvalidMKV, nil},
		{"child running past its parent", cat(ebmlHeader, el(idSegment, append(idBytes(idTags), 0x85, 1, 2))), errInvalidMKV,
			[]string{"segment"}},
		{"oversized codec private", cat(ebmlHeader, open(idSegment), el(idTracks, el(idTrackEntry, el(idCodecPrivate, make([]byte, maxCodecPrivate+1))))),
			errInvalidMKV, []string{"segment"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := summarize(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !reflect.DeepEqual(got, tc.partial) {
				t.Errorf("events before the error\n got %v\nwant %v", got, tc.partial)
			}
		})
	}
}

// A reader that hands out one byte at a time must give the same events:
// the scanner works on a stream as it arrives, not on whole buffers.
func TestScannerOnATrickle(t *testing.T) {
	data := cat(ebmlHeader, open(idSegment), tracks, open(idCluster), uintEl(idTimecode, 3), simpleBlock(1, 0, true, 300),
		open(idCluster), uintEl(idTimecode, 9), simpleBlock(1, 0, true, 3))
	want, err := summarize(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = newMKVScanner(io.MultiReader(oneByteReader{bytes.NewReader(data)}), func(ev mkvEvent) error {
		got = append(got, fmt.Sprint(ev.Kind))
		return nil
	}).run()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d events one byte at a time, %d at once", len(got), len(want))
	}
}

type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
