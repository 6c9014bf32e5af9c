#!/usr/bin/python3
"""Host process of kvsrelay-bench's density scenario: many relays in one
process, as an application running one pipeline per camera would.

Each relay is its own Gst.Pipeline (own bus, own state, its streaming
threads), built from a gst-launch description; the process shares one
GStreamer, one libgstkvsrelay.so and its one Go runtime between them. It
takes one command a line on stdin:

  add DESC   build a pipeline from DESC and set it PLAYING; prints
             "added I" (I counts from 0), or "error -1 TEXT" when DESC
             does not parse or the pipeline does not start

and reports what the relays' buses say, one line each:

  restart I REASON   a reconnectbin-restart message of relay I
  recovered I        a reconnectbin-recovered message
  message I NAME     a kvscredprovider-upload-* message (upload health)
  warning I TEXT     a WARNING message
  error I TEXT       an ERROR message: relay I is stopped (set to NULL),
                     the others go on, as gst-launch-1.0 would end only
                     its own pipeline
  eos I              the pipeline ended (reconnectbin restarts on EOS, so
                     this means the relay is over)

It exits 0 at once when stdin closes, without stopping the pipelines
(stopping many kvssinks waits for their uploads, and the interpreter's
own shutdown with streaming threads still running is not worth the risk
in a measurement host). Run with Debian's python3 (python3-gi, python3-gst-1.0).
"""
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def say(line):
    sys.stdout.write(line.replace("\n", " ") + "\n")
    sys.stdout.flush()


def main():
    Gst.init(None)
    loop = GLib.MainLoop()
    pipelines = []
    pending = [b""]

    def stop(pipeline):
        pipeline.set_state(Gst.State.NULL)
        return False

    def watch(index, pipeline):
        def on_message(_bus, msg):
            if msg.type == Gst.MessageType.ELEMENT:
                st = msg.get_structure()
                name = st.get_name() if st is not None else ""
                if name == "reconnectbin-restart":
                    reason = st.get_string("reason") if st.has_field("reason") else ""
                    say("restart %d %s" % (index, reason or ""))
                elif name == "reconnectbin-recovered":
                    say("recovered %d" % index)
                elif name.startswith("kvscredprovider-upload-"):
                    say("message %d %s" % (index, name))
            elif msg.type == Gst.MessageType.WARNING:
                err, _ = msg.parse_warning()
                say("warning %d %s: %s" % (index, msg.src.get_name(), err.message))
            elif msg.type == Gst.MessageType.ERROR:
                err, _ = msg.parse_error()
                say("error %d %s: %s" % (index, msg.src.get_name(), err.message))
                # Not from the bus handler's own dispatch: a state change
                # to NULL joins streaming threads.
                GLib.idle_add(stop, pipeline)
            elif msg.type == Gst.MessageType.EOS:
                say("eos %d" % index)
            return True

        bus = pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", on_message)

    def add(description):
        try:
            pipeline = Gst.parse_launch(description)
        except GLib.Error as e:
            say("error -1 %s" % e.message)
            return
        index = len(pipelines)
        pipelines.append(pipeline)
        watch(index, pipeline)
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            say("error -1 relay %d did not start" % index)
            return
        say("added %d" % index)

    def on_stdin(fd, _cond):
        data = os.read(fd, 65536)
        if not data:
            loop.quit()
            return False
        pending[0] += data
        while b"\n" in pending[0]:
            line, pending[0] = pending[0].split(b"\n", 1)
            cmd, _, arg = line.decode().strip().partition(" ")
            if cmd == "add":
                add(arg)
            elif cmd:
                say("error -1 unknown command %r" % cmd)
        return True

    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, on_stdin)
    loop.run()
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
