package servers

import (
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SystemPython is Debian's interpreter, which has the gi bindings for
// GStreamer and gst-rtsp-server. The first python3 on PATH may be a pyenv
// build without them.
const SystemPython = "/usr/bin/python3"

//go:embed rtsp_server.py
var rtspServerScript []byte

// RTSPOptions configures an RTSPServer.
type RTSPOptions struct {
	Media MediaOptions
	// Port is the TCP port; 0 picks a free one.
	Port int
	// Path is the mount point, default "/cam".
	Path string
	// Launch replaces the whole media factory launch line, e.g.
	// "( videotestsrc is-live=true ! ... ! rtph264pay name=pay0 pt=96 )".
	// Empty means H.264 from Media (plus its audio as pay1 if Media.Audio,
	// then its KLV track if Media.KLVEvery).
	Launch string
}

// RTSPServer is a gst-rtsp-server instance (run by SystemPython) serving one
// shared live media, like an IP camera.
type RTSPServer struct {
	port int
	path string
	proc *Process
}

// NewRTSPServer starts the server and returns once its port is listening.
func NewRTSPServer(tb testing.TB, opts RTSPOptions) *RTSPServer {
	tb.Helper()
	if _, err := os.Stat(SystemPython); err != nil {
		tb.Fatalf("servers: %s not found (Debian python3 with python3-gst-1.0 and gir1.2-gst-rtsp-server-1.0): %v", SystemPython, err)
	}
	media := opts.Media.withDefaults()
	launch := opts.Launch
	if launch == "" {
		RequireElements(tb, "videotestsrc", "x264enc", "h264parse", "rtph264pay")
		launch = "( " + media.videoH264() + " ! rtph264pay name=pay0 pt=96 config-interval=-1"
		pay := 1
		if media.Audio {
			switch media.AudioCodec {
			case "", "aac":
				RequireElements(tb, "rtpmp4gpay")
				launch += " " + media.audioAAC(AACEncoder(tb)) + " ! rtpmp4gpay name=pay1 pt=97"
			case "pcma":
				RequireElements(tb, "alawenc", "rtppcmapay")
				launch += " " + audioG711("pcma") + " ! rtppcmapay name=pay1 pt=8"
			case "pcmu":
				RequireElements(tb, "mulawenc", "rtppcmupay")
				launch += " " + audioG711("pcmu") + " ! rtppcmupay name=pay1 pt=0"
			default:
				tb.Fatalf("servers: RTSP audio codec %q: want aac, pcma or pcmu", media.AudioCodec)
			}
			pay++
		}
		if media.KLVEvery > 0 {
			// rtpklvpay drops what is not a well-formed KLV packet, so the
			// server script feeds real ones (--klv-every-ms).
			RequireElements(tb, "appsrc", "rtpklvpay")
			launch += " appsrc name=klvsrc is-live=true do-timestamp=true format=time caps=meta/x-klv,parsed=true"
			if media.KLVAsONVIF {
				// gst-rtsp-server takes the SDP from the caps leaving the
				// element named payN, whatever it is.
				launch += fmt.Sprintf(" ! rtpklvpay pt=%d ! capssetter caps=application/x-rtp,encoding-name=VND.ONVIF.METADATA ! identity name=pay%d",
					96+pay, pay)
			} else {
				launch += fmt.Sprintf(" ! rtpklvpay name=pay%d pt=%d", pay, 96+pay)
			}
		}
		launch += " )"
	}
	path := opts.Path
	if path == "" {
		path = "/cam"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	port := opts.Port
	if port == 0 {
		port = FreePort(tb)
	}
	script := filepath.Join(tb.TempDir(), "rtsp_server.py")
	if err := os.WriteFile(script, rtspServerScript, 0o600); err != nil {
		tb.Fatalf("servers: write RTSP server script: %v", err)
	}
	s := &RTSPServer{
		port: port,
		path: path,
		proc: NewProcess(tb, ProcessOptions{
			Name: fmt.Sprintf("rtsp-server:%d", port),
			Path: SystemPython,
			Args: append([]string{script, "--address", "127.0.0.1", "--port", strconv.Itoa(port), "--path", path, "--launch", launch},
				klvArgs(opts)...),
			// Unbuffered, so the output tail is current when a test fails.
			Env: []string{"PYTHONUNBUFFERED=1"},
		}),
	}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	return s
}

func (s *RTSPServer) start() error {
	if err := s.proc.Start(); err != nil {
		return err
	}
	return waitProcessPort(s.proc, "tcp", s.port, DefaultStartTimeout)
}

// Port returns the TCP port.
func (s *RTSPServer) Port() int { return s.port }

// URL returns "rtsp://127.0.0.1:port/path".
func (s *RTSPServer) URL() string { return fmt.Sprintf("rtsp://127.0.0.1:%d%s", s.port, s.path) }

// Process exposes the server process.
func (s *RTSPServer) Process() *Process { return s.proc }

// Kill SIGKILLs the server: RTSP/TCP connections close, RTP stops.
func (s *RTSPServer) Kill() error { return s.proc.Kill() }

// Restart kills the server if running and starts it again on the same port.
func (s *RTSPServer) Restart() error {
	if err := s.proc.Kill(); err != nil {
		return err
	}
	return s.start()
}

// Pause SIGSTOPs the server: sessions stay open, RTP and RTCP stop.
func (s *RTSPServer) Pause() error { return s.proc.Pause() }

// Resume continues a paused server.
func (s *RTSPServer) Resume() error { return s.proc.Resume() }

// klvArgs tells the server script to feed the KLV track's appsrc.
func klvArgs(opts RTSPOptions) []string {
	if opts.Launch != "" || opts.Media.KLVEvery <= 0 {
		return nil
	}
	return []string{"--klv-every-ms", strconv.Itoa(max(int(opts.Media.KLVEvery/time.Millisecond), 1)),
		"--klv-packets", strconv.Itoa(opts.Media.KLVPackets)}
}
