// Package servers runs real local media servers that kvsrelay's integration
// tests and benchmark fault-inject against: MPEG-TS over TCP, HLS over HTTP,
// SRT, RTSP, and a toxiproxy-based TCP fault injector.
//
// Media is produced by gst-launch-1.0 (or Debian's python3 with
// gst-rtsp-server) subprocesses, never by GStreamer in-process, so a test
// can SIGKILL, SIGSTOP or restart a "camera" exactly as it fails in the field.
// Every server listens on 127.0.0.1 on a kernel-chosen port, every child runs
// in its own process group, and everything is torn down through tb.Cleanup.
//
// All producers emit H.264 with short GOPs (x264enc tune=zerolatency,
// speed-preset=ultrafast) from a live videotestsrc, so they run in real time.
package servers
