package main

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Every source the contenders read is stamped: the bench draws each source
// frame itself, with the moment it was made encoded in its pixels, and
// feeds the raw frames to the test servers' encoders (see stampFeed). A
// contender's output frame is then "real" only if it carries a valid stamp
// newer than every stamp the contender showed before: a black or image
// fallback frame has no stamp, a repeated (held) frame or a stale frame a
// decoder flushes late has an old one. The stamp also tells how far behind
// live each frame is shown.
//
// The stamp is a grid of stampCols x stampRows flat cells, each black or
// white, big enough to survive x264 at the servers' low bitrate and the
// scaling down to the bench's frameWidth x frameHeight sink (8x8 pixels a
// cell there):
//
//	row 0:     white, black, white, ... (fixed marker)
//	rows 1..4: 32 bits, row-major: a 24-bit frame counter, then its CRC-8
//	row 5:     black, white, black, ... (fixed marker)
//
// A frame is read only when both marker rows are right, every cell is
// clearly black or white and the CRC matches, so an arbitrary picture (the
// fallback image, a decoder's grey concealment frame) does not pass.
const (
	stampCols = 8
	stampRows = 6
	// stampTick is one counter step: one frame at the feed's 25 fps.
	stampTick   = 40 * time.Millisecond
	stampBits   = 24
	stampFPS    = 25
	stampWidth  = 320 // the servers' frame size
	stampHeight = 240
	lumaBlack   = 16
	lumaWhite   = 235
	// A cell's mean luma below stampDarkMax is black, above stampLightMin
	// white; in between the frame is unreadable.
	stampDarkMax  = 80
	stampLightMin = 170
)

// crc8 is CRC-8 (polynomial x^8+x^2+x+1) of b.
func crc8(b []byte) byte {
	var c byte
	for _, v := range b {
		c ^= v
		for i := 0; i < 8; i++ {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
	}
	return c
}

// stampCells returns the cell colours (true: white) of stamp n, row-major.
func stampCells(n uint32) [stampRows * stampCols]bool {
	var cells [stampRows * stampCols]bool
	for c := 0; c < stampCols; c++ {
		cells[c] = c%2 == 0
		cells[(stampRows-1)*stampCols+c] = c%2 == 1
	}
	n &= 1<<stampBits - 1
	word := uint32(crc8([]byte{byte(n >> 16), byte(n >> 8), byte(n)}))<<stampBits | n
	for i := 0; i < 32; i++ {
		cells[stampCols+i] = word&(1<<(31-i)) != 0
	}
	return cells
}

// drawStampFrame fills frame, an I420 picture of w x h, with stamp n.
func drawStampFrame(frame []byte, w, h int, n uint32) {
	cells := stampCells(n)
	for y := 0; y < h; y++ {
		row := y * stampRows / h
		line := frame[y*w : (y+1)*w]
		for x := range line {
			if cells[row*stampCols+x*stampCols/w] {
				line[x] = lumaWhite
			} else {
				line[x] = lumaBlack
			}
		}
	}
	chroma := frame[w*h : w*h*3/2]
	for i := range chroma {
		chroma[i] = 128
	}
}

// readStamp reads the stamp of an I420 (or any planar, luma first) frame
// of w x h: the mean luma of the middle half of every cell decides its
// colour. It reports false for a frame without a readable stamp.
func readStamp(frame []byte, w, h int) (uint32, bool) {
	if len(frame) < w*h {
		return 0, false
	}
	var word uint32
	for row := 0; row < stampRows; row++ {
		y0, y1 := row*h/stampRows, (row+1)*h/stampRows
		for col := 0; col < stampCols; col++ {
			x0, x1 := col*w/stampCols, (col+1)*w/stampCols
			// The middle half: away from the cell's edges, where encoding
			// and scaling blur neighbouring cells into each other.
			my0, my1 := y0+(y1-y0)/4, y1-(y1-y0)/4
			mx0, mx1 := x0+(x1-x0)/4, x1-(x1-x0)/4
			sum, count := 0, 0
			for y := my0; y < my1; y++ {
				for x := mx0; x < mx1; x++ {
					sum += int(frame[y*w+x])
					count++
				}
			}
			if count == 0 {
				return 0, false
			}
			mean := sum / count
			var white bool
			switch {
			case mean < stampDarkMax:
			case mean > stampLightMin:
				white = true
			default:
				return 0, false
			}
			switch row {
			case 0:
				if white != (col%2 == 0) {
					return 0, false
				}
			case stampRows - 1:
				if white != (col%2 == 1) {
					return 0, false
				}
			default:
				word <<= 1
				if white {
					word |= 1
				}
			}
		}
	}
	n := word & (1<<stampBits - 1)
	if byte(word>>stampBits) != crc8([]byte{byte(n >> 16), byte(n >> 8), byte(n)}) {
		return 0, false
	}
	return n, true
}

// stampFeed serves raw stamped I420 frames (stampWidth x stampHeight,
// stampFPS) over TCP on 127.0.0.1, one stream per connection, each frame
// stamped with the time it is written: the source picture of every test
// server. A connection that can not take a frame (its reader is stopped)
// blocks; the next frame written carries the time it is written, so a
// stopped source resumes at live, not with a backlog.
type stampFeed struct {
	ln    net.Listener
	epoch time.Time

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

func startStampFeed(epoch time.Time) (*stampFeed, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("stamp feed: %w", err)
	}
	f := &stampFeed{ln: ln, epoch: epoch, conns: map[net.Conn]bool{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

// Port is the feed's TCP port.
func (f *stampFeed) Port() int { return f.ln.Addr().(*net.TCPAddr).Port }

// stampAt is the stamp of a frame made at t.
func (f *stampFeed) stampAt(t time.Time) uint32 {
	return uint32(t.Sub(f.epoch) / stampTick)
}

// madeAt is when a frame with stamp n was made (to within one tick).
func (f *stampFeed) madeAt(n uint32) time.Time {
	return f.epoch.Add(time.Duration(n) * stampTick)
}

func (f *stampFeed) accept() {
	defer f.wg.Done()
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			conn.Close()
			return
		}
		f.conns[conn] = true
		f.wg.Add(1)
		f.mu.Unlock()
		go f.serve(conn)
	}
}

func (f *stampFeed) serve(conn net.Conn) {
	defer f.wg.Done()
	defer func() {
		f.mu.Lock()
		delete(f.conns, conn)
		f.mu.Unlock()
		conn.Close()
	}()
	frame := make([]byte, stampWidth*stampHeight*3/2)
	tick := time.NewTicker(stampTick)
	defer tick.Stop()
	for range tick.C {
		drawStampFrame(frame, stampWidth, stampHeight, f.stampAt(time.Now()))
		if _, err := conn.Write(frame); err != nil {
			return
		}
	}
}

func (f *stampFeed) Close() {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.ln.Close()
	f.wg.Wait()
}

// sourcePattern is the value given to the test servers' videotestsrc
// pattern property (test/servers builds "videotestsrc is-live=true
// pattern=%s ! video/x-raw,... ! x264enc ..."): it ends that videotestsrc
// after one frame into a fakesink and feeds the encoder from the stamp
// feed instead.
func (f *stampFeed) sourcePattern() string {
	return fmt.Sprintf("black num-buffers=1 ! fakesink tcpclientsrc host=127.0.0.1 port=%d ! "+
		"rawvideoparse format=i420 width=%d height=%d framerate=%d/1",
		f.Port(), stampWidth, stampHeight, stampFPS)
}
