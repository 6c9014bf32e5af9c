package servers

import (
	"fmt"
	"testing"
	"time"
)

// DefaultStartTimeout bounds how long a server constructor or Restart waits
// for its producer to open its port. It only catches a producer that never
// comes up, so it is generous: gst-launch-1.0 and x264enc take seconds to
// start on a loaded 2-core machine.
const DefaultStartTimeout = 20 * time.Second

// TSOptions configures a TSServer.
type TSOptions struct {
	Media MediaOptions
	// Port to listen on; 0 picks a free one.
	Port int
}

// TSServer serves live MPEG-TS over plain TCP from gst-launch-1.0's
// tcpserversink: a client (tcpclientsrc, ffmpeg tcp://) connects and reads.
type TSServer struct {
	port int
	proc *Process
}

// NewTSServer starts a TS-over-TCP producer and returns once its port
// accepts connections. The producer is killed on test cleanup.
func NewTSServer(tb testing.TB, opts TSOptions) *TSServer {
	tb.Helper()
	elements := []string{"videotestsrc", "x264enc", "h264parse", "mpegtsmux", "tcpserversink"}
	media := opts.Media.withDefaults()
	audio := ""
	if media.Audio {
		if media.AudioCodec != "" && media.AudioCodec != "aac" {
			tb.Fatalf("servers: MPEG-TS audio codec %q: only aac", media.AudioCodec)
		}
		audio = " " + media.audioAAC(AACEncoder(tb)) + " ! queue ! mux."
	}
	if klv := media.metadataKLV(); klv != "" {
		elements = append(elements, "fakesrc")
		audio += " " + klv + " ! queue ! mux."
	}
	RequireElements(tb, elements...)
	port := opts.Port
	if port == 0 {
		port = FreePort(tb)
	}
	// sync-method=latest-keyframe: a newly connected client starts at the
	// last keyframe instead of mid-GOP. mpegtsmux keeps delta-unit flags on
	// its output only with the default alignment, so it is left alone here.
	desc := fmt.Sprintf("%s ! queue ! mpegtsmux name=mux ! tcpserversink host=127.0.0.1 port=%d sync-method=latest-keyframe%s",
		media.videoH264(), port, audio)
	s := &TSServer{
		port: port,
		proc: NewProcess(tb, ProcessOptions{Name: fmt.Sprintf("ts-server:%d", port), Path: GstLaunch, Args: pipelineArgs(desc)}),
	}
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
	return s
}

func (s *TSServer) start() error {
	if err := s.proc.Start(); err != nil {
		return err
	}
	return waitProcessPort(s.proc, "tcp", s.port, DefaultStartTimeout)
}

// Port returns the TCP port.
func (s *TSServer) Port() int { return s.port }

// Addr returns "127.0.0.1:port".
func (s *TSServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// URL returns "tcp://127.0.0.1:port" (ffmpeg/reconnectbin style).
func (s *TSServer) URL() string { return "tcp://" + s.Addr() }

// Process exposes the producer for finer control (Stop, Wait, OutputTail).
func (s *TSServer) Process() *Process { return s.proc }

// Kill SIGKILLs the producer: clients see the connection close (RST/EOF)
// and the port refuses connections until Restart.
func (s *TSServer) Kill() error { return s.proc.Kill() }

// Restart kills the producer if it is running and starts it again on the
// same port, returning once the port accepts connections.
func (s *TSServer) Restart() error {
	if err := s.proc.Kill(); err != nil {
		return err
	}
	return s.start()
}

// Pause SIGSTOPs the producer: connections stay open but no bytes flow.
func (s *TSServer) Pause() error { return s.proc.Pause() }

// Resume continues a paused producer.
func (s *TSServer) Resume() error { return s.proc.Resume() }

// waitProcessPort waits until proc has the port open, failing fast with the
// process's output if it exits first.
func waitProcessPort(proc *Process, proto string, port int, timeout time.Duration) error {
	if err := waitSocket(proto, port, timeout, proc.Exited()); err != nil {
		return fmt.Errorf("%s did not open %s port %d: %w\n%s", proc.Name(), proto, port, err, proc.OutputTail())
	}
	return nil
}
