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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--launch", required=True)
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(args.launch)
    # Shared: every client sees the same live encoder, like a real camera.
    factory.set_shared(True)
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
