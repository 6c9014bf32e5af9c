package servers

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// PlaylistName is the playlist's file and URL path name.
const PlaylistName = "playlist.m3u8"

// HLSOptions configures an HLSServer. Zero values mean the defaults.
type HLSOptions struct {
	Media MediaOptions
	// Port is the HTTP port; 0 picks a free one.
	Port int
	// TargetDuration is hlssink2's target-duration in seconds, default 1.
	TargetDuration int
	// PlaylistLength is hlssink2's playlist-length, default 5.
	PlaylistLength int
	// MaxFiles is hlssink2's max-files, default 10.
	MaxFiles int
	// StartSegments is how many segments NewHLSServer waits for before
	// returning, default 2 (enough for hlsdemux to start).
	StartSegments int
	// StartTimeout bounds that wait, default 30 s (generous: it only
	// catches an encoder that never produces).
	StartTimeout time.Duration
}

func (o HLSOptions) withDefaults() HLSOptions {
	o.Media = o.Media.withDefaults()
	if o.TargetDuration <= 0 {
		o.TargetDuration = 1
	}
	if o.PlaylistLength <= 0 {
		o.PlaylistLength = 5
	}
	if o.MaxFiles <= 0 {
		o.MaxFiles = 10
	}
	if o.StartSegments <= 0 {
		o.StartSegments = 2
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	return o
}

// hlsGeneration is one run of the encoder. Each run writes into its own
// directory; offset is added to its segment numbers when serving, so a
// generation can either restart numbering at 0 (offset 0) or continue the
// previous one.
type hlsGeneration struct {
	number int
	dir    string
	offset int
	proc   *Process
}

// HLSServer is a live HLS origin: gst-launch-1.0 with hlssink2 writes
// segments into a temp dir and a Go HTTP server on 127.0.0.1 serves them,
// with faults switchable at runtime. All methods are safe for concurrent
// use.
//
// URL space: /playlist.m3u8 and /segmentNNNNN.ts. A segment is looked up in
// the newest encoder generation first and then in older ones, like an origin
// whose old files are still on disk; so after RestartEncoder(true),
// segment00000.ts is the new encoder's, not the old one's.
type HLSServer struct {
	tb   testing.TB
	opts HLSOptions
	root string
	port int
	aac  string

	mu             sync.Mutex
	gens           []*hlsGeneration
	frozen         bool
	frozenPlaylist []byte
	segmentStatus  int
	playlistStatus int
	dropMid        bool
	htmlPlaylist   bool
	truncate       bool
	requests       map[string]int
	httpServer     *http.Server
}

// NewHLSServer starts the encoder and the HTTP server and returns once the
// playlist lists opts.StartSegments segments.
func NewHLSServer(tb testing.TB, opts HLSOptions) *HLSServer {
	tb.Helper()
	opts = opts.withDefaults()
	RequireElements(tb, "videotestsrc", "x264enc", "h264parse", "hlssink2", "mpegtsmux")
	s := &HLSServer{
		tb:       tb,
		opts:     opts,
		root:     tb.TempDir(),
		port:     opts.Port,
		requests: make(map[string]int),
	}
	if opts.Media.Audio {
		s.aac = AACEncoder(tb)
	}
	if s.port == 0 {
		s.port = FreePort(tb)
	}
	tb.Cleanup(func() { s.StopHTTP() })
	if err := s.StartHTTP(); err != nil {
		tb.Fatal(err)
	}
	if err := s.startGeneration(0); err != nil {
		tb.Fatal(err)
	}
	if err := s.WaitSegments(opts.StartSegments, opts.StartTimeout); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Port returns the HTTP port.
func (s *HLSServer) Port() int { return s.port }

// PlaylistURL returns "http://127.0.0.1:port/playlist.m3u8".
func (s *HLSServer) PlaylistURL() string {
	return fmt.Sprintf("http://127.0.0.1:%d/%s", s.port, PlaylistName)
}

// SegmentURL returns the URL of a segment name as listed in the playlist.
func (s *HLSServer) SegmentURL(name string) string {
	return fmt.Sprintf("http://127.0.0.1:%d/%s", s.port, name)
}

// Dir returns the root directory holding one subdirectory per encoder
// generation.
func (s *HLSServer) Dir() string { return s.root }

// Generation returns the current encoder generation, 1 for the first.
func (s *HLSServer) Generation() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.gens)
}

// Encoder returns the current encoder process.
func (s *HLSServer) Encoder() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current().proc
}

func (s *HLSServer) current() *hlsGeneration { return s.gens[len(s.gens)-1] }

func (s *HLSServer) startGeneration(offset int) error {
	s.mu.Lock()
	number := len(s.gens) + 1
	s.mu.Unlock()
	dir := filepath.Join(s.root, fmt.Sprintf("gen%02d", number))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("hls: create segment dir: %w", err)
	}
	o := s.opts
	desc := fmt.Sprintf("%s ! queue ! hlssink2 name=sink location=%s playlist-location=%s target-duration=%d playlist-length=%d max-files=%d",
		o.Media.videoH264(), filepath.Join(dir, "segment%05d.ts"), filepath.Join(dir, PlaylistName),
		o.TargetDuration, o.PlaylistLength, o.MaxFiles)
	if o.Media.Audio {
		desc += " " + o.Media.audioAAC(s.aac) + " ! queue ! sink.audio"
	}
	proc := NewProcess(s.tb, ProcessOptions{
		Name: fmt.Sprintf("hls-encoder:%d#%d", s.port, number),
		Path: GstLaunch,
		Args: pipelineArgs(desc),
	})
	if err := proc.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	s.gens = append(s.gens, &hlsGeneration{number: number, dir: dir, offset: offset, proc: proc})
	s.mu.Unlock()
	return nil
}

// KillEncoder SIGKILLs the encoder: the playlist on disk stops changing (a
// silent stall for clients) but HTTP keeps serving it.
func (s *HLSServer) KillEncoder() error { return s.Encoder().Kill() }

// PauseEncoder SIGSTOPs the encoder (stall without losing state).
func (s *HLSServer) PauseEncoder() error { return s.Encoder().Pause() }

// ResumeEncoder continues a paused encoder.
func (s *HLSServer) ResumeEncoder() error { return s.Encoder().Resume() }

// RestartEncoder kills the encoder and starts a new one (a new generation).
// With restartNumbering the new encoder's playlist starts again at media
// sequence 0 with segment00000.ts, as a restarted hlssink2 does; otherwise
// its segments are served renumbered to continue after the previous
// generation's last segment. Until the new encoder has written its first
// playlist, the previous playlist is served. It returns once the process is
// started; use WaitSegments to wait for output.
func (s *HLSServer) RestartEncoder(restartNumbering bool) error {
	if err := s.KillEncoder(); err != nil {
		return fmt.Errorf("hls: restart encoder: %w", err)
	}
	offset := 0
	if !restartNumbering {
		s.mu.Lock()
		gen := s.current()
		s.mu.Unlock()
		next, err := nextLocalIndex(gen.dir)
		if err != nil {
			return fmt.Errorf("hls: restart encoder: %w", err)
		}
		offset = gen.offset + next
	}
	if err := s.startGeneration(offset); err != nil {
		return fmt.Errorf("hls: restart encoder: %w", err)
	}
	return nil
}

// RestartEncoderBehindFrozenPlaylist is the benchmark's scenario B: freeze
// the playlist (clients see a stall), restart the encoder with numbering
// starting again at 0, wait until it has produced segments segments, then
// unfreeze: clients that kept the old media sequence now see it go back to
// 0 with segment names they have already fetched. The playlist is unfrozen
// when it returns, even if waiting failed (and even if the caller had frozen
// it before).
func (s *HLSServer) RestartEncoderBehindFrozenPlaylist(segments int, timeout time.Duration) error {
	s.FreezePlaylist(true)
	defer s.FreezePlaylist(false)
	if err := s.RestartEncoder(true); err != nil {
		return err
	}
	return s.WaitSegments(segments, timeout)
}

// nextLocalIndex is one past the highest segment number hlssink2 wrote in
// dir (counting a segment it was still writing when killed).
func nextLocalIndex(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("scan segments in %s: %w", dir, err)
	}
	next := 0
	for _, e := range entries {
		if n, ok := SegmentIndex(e.Name()); ok && n+1 > next {
			next = n + 1
		}
	}
	return next, nil
}

// WaitSegments waits until the current encoder generation has completed n
// segments (its playlist lists segment n-1 or later). It fails early if the
// encoder exits.
func (s *HLSServer) WaitSegments(n int, timeout time.Duration) error {
	s.mu.Lock()
	gen := s.current()
	s.mu.Unlock()
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		if produced := producedSegments(gen.dir); produced >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hls: encoder generation %d produced %d of %d segments in %v\n%s",
				gen.number, producedSegments(gen.dir), n, timeout, gen.proc.OutputTail())
		}
		select {
		case <-gen.proc.Exited():
			return fmt.Errorf("hls: waiting for %d segments: %s", n, gen.proc.describeExit())
		case <-ticker.C:
		}
	}
}

// producedSegments counts completed segments of one generation from its
// playlist on disk: the highest listed index + 1.
func producedSegments(dir string) int {
	data, err := os.ReadFile(filepath.Join(dir, PlaylistName))
	if err != nil {
		return 0
	}
	pl, err := ParsePlaylist(data)
	if err != nil {
		return 0
	}
	produced := 0
	for _, name := range pl.Segments {
		if n, ok := SegmentIndex(name); ok && n+1 > produced {
			produced = n + 1
		}
	}
	return produced
}

// livePlaylist renders the newest generation's valid playlist, shifted by
// its offset, or nil if no generation has written one yet.
func (s *HLSServer) livePlaylist() []byte {
	s.mu.Lock()
	gens := append([]*hlsGeneration(nil), s.gens...)
	s.mu.Unlock()
	for i := len(gens) - 1; i >= 0; i-- {
		data, err := os.ReadFile(filepath.Join(gens[i].dir, PlaylistName))
		if err != nil {
			continue
		}
		if _, err := ParsePlaylist(data); err != nil {
			continue // absent or caught mid-write
		}
		return shiftPlaylist(data, gens[i].offset)
	}
	return nil
}

// Playlist returns the playlist as clients are currently served it (the
// frozen snapshot while frozen), ignoring status-code faults.
func (s *HLSServer) Playlist() (Playlist, error) {
	data := s.servedPlaylist()
	if data == nil {
		return Playlist{}, errors.New("hls: no playlist written yet")
	}
	return ParsePlaylist(data)
}

func (s *HLSServer) servedPlaylist() []byte {
	s.mu.Lock()
	if s.frozen {
		defer s.mu.Unlock()
		return s.frozenPlaylist
	}
	s.mu.Unlock()
	return s.livePlaylist()
}

// FreezePlaylist(true) keeps serving the playlist as it is now (a silent
// stall: 200 OK, same content, forever); false goes back to the live one.
func (s *HLSServer) FreezePlaylist(frozen bool) {
	var snapshot []byte
	if frozen {
		snapshot = s.livePlaylist()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if frozen && s.frozen {
		return // keep the first snapshot
	}
	s.frozen = frozen
	s.frozenPlaylist = snapshot
}

// SegmentStatus makes every segment request answer with code (e.g. 404,
// 503) instead of the segment; 0 or 200 restores normal serving.
func (s *HLSServer) SegmentStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.segmentStatus = code
}

// PlaylistStatus is SegmentStatus for the playlist.
func (s *HLSServer) PlaylistStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.playlistStatus = code
}

// DropMidSegment(true) makes segment responses announce the full
// Content-Length, send half the bytes and then close the connection.
func (s *HLSServer) DropMidSegment(drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropMid = drop
}

// HTMLPlaylist(true) answers playlist requests with 200 OK and an HTML
// page (a captive portal, a misrouted load balancer, a CDN's error page),
// which a client must treat as a failure rather than as a playlist.
func (s *HLSServer) HTMLPlaylist(html bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.htmlPlaylist = html
}

// TruncateSegments(true) serves only the first third of every segment, as
// a complete response (the Content-Length matches): a segment file cut
// short on the origin, so the client gets broken MPEG-TS with a clean
// HTTP exchange.
func (s *HLSServer) TruncateSegments(truncate bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = truncate
}

// Requests returns how many requests were made for a URL path such as
// "/playlist.m3u8" or "/segment00003.ts", faulted ones included.
func (s *HLSServer) Requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[path]
}

// SegmentRequests returns the total number of requests for segments.
func (s *HLSServer) SegmentRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for path, n := range s.requests {
		if strings.HasSuffix(path, ".ts") {
			total += n
		}
	}
	return total
}

// RequestCounts returns a copy of all per-path request counts.
func (s *HLSServer) RequestCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

// ResetRequestCounts zeroes the request counts.
func (s *HLSServer) ResetRequestCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = make(map[string]int)
}

// StopHTTP closes the listener and every open connection: clients get
// "connection refused" until StartHTTP. Stopping twice is a no-op.
func (s *HLSServer) StopHTTP() {
	s.mu.Lock()
	srv := s.httpServer
	s.httpServer = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// StartHTTP listens again on the same port. Starting a running server is a
// no-op.
func (s *HLSServer) StartHTTP() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpServer != nil {
		return nil
	}
	addr := fmt.Sprintf("127.0.0.1:%d", s.port)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("hls: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	s.httpServer = srv
	go func() { _ = srv.Serve(ln) }()
	return nil
}

func (s *HLSServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.URL.Path]++
	playlistStatus, segmentStatus, dropMid := s.playlistStatus, s.segmentStatus, s.dropMid
	htmlPlaylist, truncate := s.htmlPlaylist, s.truncate
	s.mu.Unlock()

	name := strings.TrimPrefix(r.URL.Path, "/")
	switch {
	case name == PlaylistName:
		if isFault(playlistStatus) {
			http.Error(w, http.StatusText(playlistStatus), playlistStatus)
			return
		}
		if htmlPlaylist {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte(htmlPage))
			return
		}
		data := s.servedPlaylist()
		if data == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(data)
	default:
		index, ok := SegmentIndex(name)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if isFault(segmentStatus) {
			http.Error(w, http.StatusText(segmentStatus), segmentStatus)
			return
		}
		data, ok := s.readSegment(index)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if truncate {
			data = data[:len(data)/3]
		}
		w.Header().Set("Content-Type", "video/mp2t")
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		if dropMid {
			s.writeHalfAndClose(w, data)
			return
		}
		_, _ = w.Write(data)
	}
}

// htmlPage is what HTMLPlaylist serves instead of the playlist.
const htmlPage = `<!DOCTYPE html>
<html><head><title>Service temporarily unavailable</title></head>
<body><h1>Please log in to continue</h1><p>This page is served instead of the stream.</p></body></html>
`

func isFault(code int) bool { return code != 0 && code != http.StatusOK }

// readSegment finds a served segment number in the newest generation that
// has it.
func (s *HLSServer) readSegment(index int) ([]byte, bool) {
	s.mu.Lock()
	gens := append([]*hlsGeneration(nil), s.gens...)
	s.mu.Unlock()
	for i := len(gens) - 1; i >= 0; i-- {
		local := index - gens[i].offset
		if local < 0 {
			continue
		}
		data, err := os.ReadFile(filepath.Join(gens[i].dir, SegmentName(local)))
		if err == nil {
			return data, true
		}
	}
	return nil, false
}

// writeHalfAndClose sends the header and half the body, then closes the TCP
// connection under the HTTP server, so the client sees a truncated body.
func (s *HLSServer) writeHalfAndClose(w http.ResponseWriter, data []byte) {
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data[:len(data)/2])
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := rc.Hijack()
	if err != nil {
		// Aborting the handler also closes the connection mid-body.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
