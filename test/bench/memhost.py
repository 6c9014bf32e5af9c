#!/usr/bin/python3
"""Host process of kvsrelay-bench's memory scenario.

Runs one pipeline (argv[1]) holding a reconnectbin named rb, like
gst-launch-1.0 would, and takes one command a line on stdin so that the
bench can stop the rebuild loop, wait until every stopped source instance
is freed, and sample the process at rest:

  source DESC   set rb's source (used from its next rebuild on); prints "ok"
  end           send EOS from the element named memhold inside rb's current
                source instance, which ends it (the rebuild uses the source
                set last); prints "ok", or "error ..." when there is none
  stats         prints "stats holding=0|1 STRUCTURE": whether the current
                instance is the memhold one, and rb's stats
  trim          returns the C heap's free memory to the system (glibc's
                malloc_trim), so that RSS counts what is allocated rather
                than what the allocator kept from a peak; prints "ok"

It prints "recovered N" for every reconnectbin-recovered message (N counts
from 1), and "error TEXT" before it exits 1 on an ERROR or EOS. It exits 0
when stdin closes. Run with Debian's python3 (python3-gi, python3-gst-1.0).
"""
import ctypes
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    Gst.init(None)
    pipeline = Gst.parse_launch(sys.argv[1])
    rb = pipeline.get_by_name("rb")
    if rb is None:
        say("error the pipeline has no element named rb")
        return 1
    loop = GLib.MainLoop()
    state = {"recovered": 0, "failed": False, "pending": b""}

    def fail(text):
        say("error " + text)
        state["failed"] = True
        loop.quit()

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ELEMENT:
            st = msg.get_structure()
            if st is not None and st.get_name() == "reconnectbin-recovered":
                state["recovered"] += 1
                say("recovered %d" % state["recovered"])
        elif msg.type == Gst.MessageType.ERROR:
            err, _ = msg.parse_error()
            fail("%s: %s" % (msg.src.get_name(), err.message))
        elif msg.type == Gst.MessageType.EOS:
            fail("the pipeline ended (EOS)")
        return True

    def command(line):
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "source":
            rb.set_property("source", arg)
            say("ok")
        elif cmd == "end":
            hold = rb.get_by_name("memhold")
            if hold is None:
                say("error no element named memhold in the current source instance")
                return
            hold.send_event(Gst.Event.new_eos())
            del hold  # no reference may keep the instance alive
            say("ok")
        elif cmd == "stats":
            hold = rb.get_by_name("memhold")
            holding = 0 if hold is None else 1
            del hold
            say("stats holding=%d %s" % (holding, rb.get_property("stats").to_string()))
        elif cmd == "trim":
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            say("ok")
        else:
            say("error unknown command %r" % cmd)

    def on_stdin(fd, _cond):
        data = os.read(fd, 65536)
        if not data:
            loop.quit()
            return False
        state["pending"] += data
        while b"\n" in state["pending"]:
            line, state["pending"] = state["pending"].split(b"\n", 1)
            command(line.decode())
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, on_stdin)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        say("error the pipeline did not start")
        return 1
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    return 1 if state["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
