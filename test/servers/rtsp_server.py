#!/usr/bin/python3
"""Minimal RTSP test server for kvsrelay's integration tests.

Serves one shared media (launch line given on the command line) at
rtsp://ADDRESS:PORT/PATH until SIGINT/SIGTERM. Run with Debian's python3,
which has python3-gst-1.0 and gir1.2-gst-rtsp-server-1.0.
"""
import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


# A KLV packet rtpklvpay accepts: a 16-byte SMPTE universal label (the UAS
# datalink local set's), a BER short-form length, then the value (a
# zero-filled precision time stamp item here: tag 2, length 8).
KLV_PACKET = bytes([0x06, 0x0E, 0x2B, 0x34, 0x02, 0x0B, 0x01, 0x01,
                    0x0E, 0x01, 0x03, 0x01, 0x01, 0x00, 0x00, 0x00,
                    10, 0x02, 0x08, 0, 0, 0, 0, 0, 0, 0, 0])


def feed_klv(_factory, media, every_ms, packets):
    """Push KLV packets into the media's appsrc klvsrc on a timer, like a
    camera's metadata stream: live, timestamped on arrival."""
    src = media.get_element().get_by_name("klvsrc")
    if src is None:
        return
    sent = [0]

    def push():
        if packets and sent[0] >= packets:
            return False  # the track goes silent; video goes on
        src.emit("push-buffer", Gst.Buffer.new_wrapped(KLV_PACKET))
        sent[0] += 1
        return True

    def first():
        # The first packet soon, as a camera sends it with the session's
        # start; the media is only prepared once every stream had data.
        if push():
            GLib.timeout_add(every_ms, push)
        return False

    GLib.timeout_add(min(every_ms, 100), first)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--launch", required=True)
    parser.add_argument("--klv-every-ms", type=int, default=0,
                        help="feed the launch line's appsrc named klvsrc one KLV packet this often")
    parser.add_argument("--klv-packets", type=int, default=0,
                        help="stop feeding klvsrc after this many packets (0: never)")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(args.launch)
    # Shared: every client sees the same live encoder, like a real camera.
    factory.set_shared(True)
    if args.klv_every_ms > 0:
        factory.connect("media-configure", feed_klv, args.klv_every_ms, args.klv_packets)
    server.get_mount_points().add_factory(args.path, factory)

    if server.attach(None) == 0:
        print("rtsp_server: cannot listen on %s:%d" % (args.address, args.port),
              file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("rtsp_server: serving rtsp://%s:%d%s" % (args.address, args.port, args.path),
          file=sys.stderr, flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
