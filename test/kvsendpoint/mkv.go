package kvsendpoint

// A small streaming EBML/Matroska reader: just enough of the format to cut
// a PutMedia body into fragments (clusters) as the bytes arrive, with each
// cluster's timecode, its blocks and the tracks' codec private data.
//
// Live producers (kvssink, matroskamux streamable=true) write the Segment
// and every Cluster with "unknown size", so an element's end is only known
// when an element arrives that cannot be its child (the next Cluster, a
// Tags element such as kvssink's end-of-fragment marker, a new EBML
// header) or when the stream ends.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Matroska element IDs, with their length-marker bits, as the spec writes them.
const (
	idEBML          = 0x1A45DFA3
	idSegment       = 0x18538067
	idSeekHead      = 0x114D9B74
	idInfo          = 0x1549A966
	idTimecodeScale = 0x2AD7B1
	idTracks        = 0x1654AE6B
	idTrackEntry    = 0xAE
	idTrackNumber   = 0xD7
	idCodecID       = 0x86
	idCodecPrivate  = 0x63A2
	idCluster       = 0x1F43B675
	idTimecode      = 0xE7
	idSilentTracks  = 0x5854
	idPosition      = 0xA7
	idPrevSize      = 0xAB
	idSimpleBlock   = 0xA3
	idBlockGroup    = 0xA0
	idBlock         = 0xA1
	idReferenceBlk  = 0xFB
	idEncryptedBlk  = 0xAF
	idCues          = 0x1C53BB6B
	idAttachments   = 0x1941A469
	idChapters      = 0x1043A770
	idTags          = 0x1254C367
	idVoid          = 0xEC
	idCRC32         = 0xBF
)

// Limits that keep a broken or hostile stream from exhausting memory.
const (
	maxCodecPrivate = 1 << 20
	maxStringValue  = 1 << 10
)

// defaultTimecodeScale is Matroska's default: timecodes in milliseconds.
const defaultTimecodeScale = 1_000_000

// Track is one TrackEntry of a Tracks element.
type Track struct {
	Number       uint64
	CodecID      string
	CodecPrivate []byte
}

// mkvBlock is one (Simple)Block header.
type mkvBlock struct {
	Track    uint64
	Relative int16 // timecode relative to the cluster's, in timecode-scale units
	Keyframe bool
	Frames   int // >1 with lacing
	Size     int64
}

// mkvEventKind says what the scanner found.
type mkvEventKind int

const (
	evSegmentStart mkvEventKind = iota
	evTimecodeScale
	evTracks
	evClusterStart
	evClusterTimecode
	evBlock
	evClusterEnd
)

// mkvEvent is one thing the scanner found, in stream order.
type mkvEvent struct {
	Kind          mkvEventKind
	TimecodeScale uint64  // evTimecodeScale
	Tracks        []Track // evTracks
	Timecode      uint64  // evClusterTimecode
	Block         mkvBlock
	Offset        int64 // stream offset of the element that caused the event
}

// openElement is a master element being read.
type openElement struct {
	id  uint32
	end int64 // offset just past its data; -1 for unknown size
}

// mkvScanner reads an MKV stream from r and reports events to emit, which
// may stop the scan by returning an error.
type mkvScanner struct {
	r    *bufio.Reader
	pos  int64
	emit func(mkvEvent) error

	stack      []openElement
	tracks     []Track
	track      *Track
	group      *mkvBlock // the Block of the BlockGroup being read
	groupIsKey bool
	sawHeader  bool // the EBML header came
}

func newMKVScanner(r io.Reader, emit func(mkvEvent) error) *mkvScanner {
	return &mkvScanner{r: bufio.NewReaderSize(r, 64<<10), emit: emit}
}

// errInvalidMKV marks data that is not a Matroska stream the scanner can follow.
var errInvalidMKV = errors.New("invalid MKV data")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalidMKV, fmt.Sprintf(format, args...))
}

// run scans until the stream ends (nil), the data is invalid (errInvalidMKV),
// reading fails or emit returns an error.
func (s *mkvScanner) run() error {
	for {
		if err := s.closeFinished(); err != nil {
			return err
		}
		start := s.pos
		id, err := s.readID()
		if errors.Is(err, io.EOF) && s.pos == start {
			return s.closeAtEOF()
		}
		if err != nil {
			return err
		}
		size, unknown, err := s.readSize()
		if err != nil {
			return err
		}
		// An unknown-size master ends where an element arrives that it
		// cannot contain.
		for len(s.stack) > 0 {
			top := s.stack[len(s.stack)-1]
			if top.end >= 0 || canContain(top.id, id) {
				break
			}
			if err := s.pop(start); err != nil {
				return err
			}
		}
		if len(s.stack) > 0 && !unknown {
			if top := s.stack[len(s.stack)-1]; top.end >= 0 && s.pos+size > top.end {
				return invalid("element 0x%X at offset %d runs past its parent 0x%X", id, start, top.id)
			}
		}
		if len(s.stack) == 0 {
			// At the top level only the EBML header, then Segments.
			switch {
			case id == idEBML:
				s.sawHeader = true
			case id == idSegment && s.sawHeader, id == idVoid && s.sawHeader:
			default:
				return invalid("top-level element 0x%X at offset %d; a Matroska stream starts with an EBML header and a Segment", id, start)
			}
		}
		if err := s.element(id, start, size, unknown); err != nil {
			return err
		}
	}
}

// closeFinished pops known-size masters whose data has been read.
func (s *mkvScanner) closeFinished() error {
	for len(s.stack) > 0 {
		top := s.stack[len(s.stack)-1]
		if top.end < 0 || s.pos < top.end {
			return nil
		}
		if err := s.pop(s.pos); err != nil {
			return err
		}
	}
	return nil
}

// closeAtEOF ends the open unknown-size masters at a clean end of stream; a
// known-size master still open means the stream was cut.
func (s *mkvScanner) closeAtEOF() error {
	for len(s.stack) > 0 {
		if top := s.stack[len(s.stack)-1]; top.end >= 0 {
			return fmt.Errorf("stream ended inside element 0x%X (%d bytes missing): %w", top.id, top.end-s.pos, io.ErrUnexpectedEOF)
		}
		if err := s.pop(s.pos); err != nil {
			return err
		}
	}
	return nil
}

func (s *mkvScanner) push(id uint32, size int64, unknown bool) {
	end := s.pos + size
	if unknown {
		end = -1
	}
	s.stack = append(s.stack, openElement{id: id, end: end})
}

// pop ends the innermost open master.
func (s *mkvScanner) pop(at int64) error {
	top := s.stack[len(s.stack)-1]
	s.stack = s.stack[:len(s.stack)-1]
	switch top.id {
	case idTrackEntry:
		if s.track != nil {
			s.tracks = append(s.tracks, *s.track)
			s.track = nil
		}
	case idTracks:
		tracks := s.tracks
		s.tracks = nil
		return s.emit(mkvEvent{Kind: evTracks, Tracks: tracks, Offset: at})
	case idBlockGroup:
		if s.group == nil {
			return invalid("BlockGroup ending at offset %d has no Block", at)
		}
		b := *s.group
		b.Keyframe = s.groupIsKey
		s.group = nil
		return s.emit(mkvEvent{Kind: evBlock, Block: b, Offset: at})
	case idCluster:
		return s.emit(mkvEvent{Kind: evClusterEnd, Offset: at})
	}
	return nil
}

// canContain reports whether an element id may appear directly inside an
// unknown-size master parent (the only unknown-size masters accepted are
// Segment and Cluster).
func canContain(parent, id uint32) bool {
	if id == idVoid || id == idCRC32 {
		return true
	}
	switch parent {
	case idSegment:
		switch id {
		case idSeekHead, idInfo, idTracks, idCluster, idCues, idAttachments, idChapters, idTags:
			return true
		}
		return false
	case idCluster:
		switch id {
		case idTimecode, idSilentTracks, idPosition, idPrevSize, idSimpleBlock, idBlockGroup, idEncryptedBlk:
			return true
		}
		return false
	}
	return true
}

func (s *mkvScanner) parent() uint32 {
	if len(s.stack) == 0 {
		return 0
	}
	return s.stack[len(s.stack)-1].id
}

// element handles one element whose header has just been read.
func (s *mkvScanner) element(id uint32, start, size int64, unknown bool) error {
	switch id {
	case idSegment:
		if s.parent() != 0 {
			return invalid("Segment inside 0x%X at offset %d", s.parent(), start)
		}
		s.push(id, size, unknown)
		return s.emit(mkvEvent{Kind: evSegmentStart, Offset: start})
	case idCluster:
		if s.parent() != idSegment {
			return invalid("Cluster outside a Segment at offset %d", start)
		}
		s.push(id, size, unknown)
		return s.emit(mkvEvent{Kind: evClusterStart, Offset: start})
	case idInfo, idTracks:
		if unknown {
			break
		}
		s.push(id, size, false)
		return nil
	case idTrackEntry:
		if s.parent() == idTracks && !unknown {
			s.push(id, size, false)
			s.track = &Track{}
			return nil
		}
	case idBlockGroup:
		if s.parent() == idCluster && !unknown {
			s.push(id, size, false)
			s.group, s.groupIsKey = nil, true
			return nil
		}
	}
	if unknown {
		return invalid("element 0x%X at offset %d has unknown size", id, start)
	}

	switch {
	case id == idTimecodeScale && s.parent() == idInfo:
		v, err := s.readUint(size)
		if err != nil {
			return err
		}
		if v == 0 {
			return invalid("TimecodeScale 0 at offset %d", start)
		}
		return s.emit(mkvEvent{Kind: evTimecodeScale, TimecodeScale: v, Offset: start})
	case id == idTimecode && s.parent() == idCluster:
		v, err := s.readUint(size)
		if err != nil {
			return err
		}
		return s.emit(mkvEvent{Kind: evClusterTimecode, Timecode: v, Offset: start})
	case id == idSimpleBlock && s.parent() == idCluster:
		b, err := s.readBlock(size, true)
		if err != nil {
			return err
		}
		return s.emit(mkvEvent{Kind: evBlock, Block: b, Offset: start})
	case id == idBlock && s.parent() == idBlockGroup:
		b, err := s.readBlock(size, false)
		if err != nil {
			return err
		}
		s.group = &b
		return nil
	case id == idReferenceBlk && s.parent() == idBlockGroup:
		s.groupIsKey = false // a block that references another is not a keyframe
	case id == idTrackNumber && s.track != nil:
		v, err := s.readUint(size)
		s.track.Number = v
		return err
	case id == idCodecID && s.track != nil:
		v, err := s.readBytes(size, maxStringValue)
		s.track.CodecID = string(trimNUL(v))
		return err
	case id == idCodecPrivate && s.track != nil:
		v, err := s.readBytes(size, maxCodecPrivate)
		s.track.CodecPrivate = v
		return err
	}
	return s.skip(size)
}

func trimNUL(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == 0 {
		b = b[:len(b)-1]
	}
	return b
}

// readBlock reads a (Simple)Block header and skips its frame data.
func (s *mkvScanner) readBlock(size int64, simple bool) (mkvBlock, error) {
	start := s.pos
	track, _, err := s.readVint(false)
	if err != nil {
		return mkvBlock{}, err
	}
	var hdr [3]byte
	if s.pos-start+3 > size {
		return mkvBlock{}, invalid("block at offset %d shorter than its header", start)
	}
	if err := s.readFull(hdr[:]); err != nil {
		return mkvBlock{}, err
	}
	b := mkvBlock{Track: track, Relative: int16(uint16(hdr[0])<<8 | uint16(hdr[1])), Frames: 1, Size: size}
	flags := hdr[2]
	if simple {
		b.Keyframe = flags&0x80 != 0
	}
	if flags&0x06 != 0 { // laced: the next byte is the frame count minus one
		if s.pos-start+1 > size {
			return mkvBlock{}, invalid("laced block at offset %d without a frame count", start)
		}
		var n [1]byte
		if err := s.readFull(n[:]); err != nil {
			return mkvBlock{}, err
		}
		b.Frames = int(n[0]) + 1
	}
	return b, s.skip(size - (s.pos - start))
}

func (s *mkvScanner) readFull(p []byte) error {
	n, err := io.ReadFull(s.r, p)
	s.pos += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (s *mkvScanner) readByte() (byte, error) {
	c, err := s.r.ReadByte()
	if err == nil {
		s.pos++
	}
	return c, err
}

// readVint reads an EBML variable-length integer. keepMarker keeps the
// length-marker bit (element IDs are written with it). allOnes reports the
// reserved all-ones value (unknown size).
func (s *mkvScanner) readVint(keepMarker bool) (v uint64, allOnes bool, err error) {
	start := s.pos
	first, err := s.readByte()
	if err != nil {
		return 0, false, err
	}
	length := 1
	for mask := byte(0x80); length <= 8 && first&mask == 0; mask >>= 1 {
		length++
	}
	if length > 8 {
		return 0, false, invalid("bad variable-length integer 0x00 at offset %d", start)
	}
	marker := byte(0x80) >> (length - 1)
	v = uint64(first)
	if !keepMarker {
		v = uint64(first &^ marker)
	}
	allOnes = first&(marker-1) == marker-1 // the value bits of the first byte
	for i := 1; i < length; i++ {
		c, err := s.readByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, false, err
		}
		v = v<<8 | uint64(c)
		allOnes = allOnes && c == 0xFF
	}
	return v, allOnes, nil
}

func (s *mkvScanner) readID() (uint32, error) {
	start := s.pos
	v, _, err := s.readVint(true)
	if err != nil {
		if errors.Is(err, io.EOF) && s.pos > start {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	if s.pos-start > 4 {
		return 0, invalid("element ID longer than 4 bytes at offset %d", start)
	}
	return uint32(v), nil
}

func (s *mkvScanner) readSize() (size int64, unknown bool, err error) {
	v, allOnes, err := s.readVint(false)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, false, err
	}
	if allOnes {
		return 0, true, nil
	}
	if v > 1<<56 {
		return 0, false, invalid("element size %d too large", v)
	}
	return int64(v), false, nil
}

func (s *mkvScanner) readUint(size int64) (uint64, error) {
	if size > 8 {
		return 0, invalid("unsigned integer of %d bytes at offset %d", size, s.pos)
	}
	var buf [8]byte
	if err := s.readFull(buf[:size]); err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range buf[:size] {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

func (s *mkvScanner) readBytes(size, limit int64) ([]byte, error) {
	if size > limit {
		return nil, invalid("element of %d bytes at offset %d exceeds the %d-byte limit", size, s.pos, limit)
	}
	buf := make([]byte, size)
	return buf, s.readFull(buf)
}

func (s *mkvScanner) skip(n int64) error {
	got, err := io.CopyN(io.Discard, s.r, n)
	s.pos += got
	if err != nil && got < n {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}
