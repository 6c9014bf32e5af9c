package servers

import (
	"fmt"
	"testing"
)

// SRTOptions configures an SRTSender.
type SRTOptions struct {
	Media MediaOptions
	// Port is the UDP port to listen on; 0 picks a free one.
	Port int
	// LatencyMs is the SRT latency; 0 keeps srtsink's default (125 ms).
	LatencyMs int
}

// SRTSender is an SRT listener sending live MPEG-TS (srtsink
// mode=listener), the way an encoder or camera with SRT output behaves. The
// relay connects as caller: srtsrc uri=srt://127.0.0.1:PORT.
type SRTSender struct {
	port int
	proc *Process
}

// NewSRTSender starts the sender and returns once its UDP port is bound.
func NewSRTSender(tb testing.TB, opts SRTOptions) *SRTSender {
	tb.Helper()
	RequireElements(tb, "videotestsrc", "x264enc", "h264parse", "mpegtsmux", "srtsink")
	media := opts.Media.withDefaults()
	audio := ""
	if media.Audio {
		audio = " " + media.audioAAC(AACEncoder(tb)) + " ! queue ! mux."
	}
	port := opts.Port
	if port == 0 {
		port = FreeUDPPort(tb)
	}
	// mode must be in the URI: srtsink re-reads its parameters from the URI,
	// so a separate mode= property set before or after it is lost.
	uri := fmt.Sprintf("uri=srt://127.0.0.1:%d?mode=listener", port)
	if opts.LatencyMs > 0 {
		uri += fmt.Sprintf("&latency=%d", opts.LatencyMs)
	}
	// alignment=7: 7×188 = 1316 bytes per buffer, one SRT live-mode payload.
	// wait-for-connection=false: keep encoding in real time with no caller,
	// so a caller joining later gets live data rather than a backlog.
	desc := fmt.Sprintf("%s ! queue ! mpegtsmux name=mux alignment=7 ! srtsink %s wait-for-connection=false%s",
		media.videoH264(), uri, audio)
	s := &SRTSender{
		port: port,
		proc: NewProcess(tb, ProcessOptions{Name: fmt.Sprintf("srt-sender:%d", port), Path: GstLaunch, Args: pipelineArgs(desc)}),
	}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	return s
}

func (s *SRTSender) start() error {
	if err := s.proc.Start(); err != nil {
		return err
	}
	return waitProcessPort(s.proc, "udp", s.port, DefaultStartTimeout)
}

// Port returns the UDP port.
func (s *SRTSender) Port() int { return s.port }

// URL returns "srt://127.0.0.1:port" for a caller (srtsrc's default mode).
func (s *SRTSender) URL() string { return fmt.Sprintf("srt://127.0.0.1:%d", s.port) }

// Process exposes the sender process.
func (s *SRTSender) Process() *Process { return s.proc }

// Kill SIGKILLs the sender; callers time out (SRT has no connection close
// on a dead peer).
func (s *SRTSender) Kill() error { return s.proc.Kill() }

// Restart kills the sender if running and starts it again on the same port.
func (s *SRTSender) Restart() error {
	if err := s.proc.Kill(); err != nil {
		return err
	}
	return s.start()
}

// Pause SIGSTOPs the sender (no data, no keepalives).
func (s *SRTSender) Pause() error { return s.proc.Pause() }

// Resume continues a paused sender.
func (s *SRTSender) Resume() error { return s.proc.Resume() }
