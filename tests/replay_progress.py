#!/usr/bin/env python3
"""The progress line of `openwfp replay`: drawn on a terminal for a replay
that lasts more than a couple of seconds, never with --quiet or when stdout
is not a terminal. The capture is fed slowly through standard input.

usage: replay_progress.py OPENWFP
"""
import os
import pty
import select
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402
from replay_lib import check  # noqa: E402

OPENWFP = sys.argv[1]
PACKETS = 24000
SECONDS = 3.5


def frames():
    """One TCP connection: handshake, then PACKETS data segments."""
    def frame(flags, seq, ack, payload=b""):
        tcp = struct.pack("!HHIIBBHHH", 40000, 80, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0,
                         bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        return b"\0" * 12 + b"\x08\x00" + ip + tcp
    yield frame(0x02, 1000, 0)
    yield frame(0x12, 5000, 1001)
    yield frame(0x10, 1001, 5001)
    for i in range(PACKETS):
        yield frame(0x18, 1001 + 100 * i, 5001, b"x" * 100)


def feed(pipe):
    pipe.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, f in enumerate(frames()):
        pipe.write(struct.pack("<IIII", 1700000000, i, len(f), len(f)) + f)
        if i % 1000 == 0:
            pipe.flush()
            time.sleep(SECONDS / (PACKETS / 1000))
    pipe.close()


def run(args, tty):
    """Runs openwfp with stdout and stderr on a pty (or a pipe) and returns what they got."""
    if tty:
        master, slave = pty.openpty()
        p = subprocess.Popen([OPENWFP, "replay", *args, "-"], stdin=subprocess.PIPE, stdout=slave, stderr=slave)
        os.close(slave)
    else:
        p = subprocess.Popen([OPENWFP, "replay", *args, "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        master = p.stdout.fileno()
    feed(p.stdin)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 10)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    p.wait(timeout=30)
    return p.returncode, out.decode(errors="replace")


for args, tty, want in ((["--no-progress"], True, False), ([], True, True), (["--quiet"], True, False),
                        ([], False, False)):
    rc, out = run(args, tty)
    shown = "\rreplay " in out.replace("\x1b[K", "") and " packets " in out
    check("%s on a %s: progress %s" % (" ".join(args) or "(default)", "terminal" if tty else "pipe",
                                       "shown" if shown else "not shown"),
          rc == 0 and shown == want and "totals packets=%d" % (PACKETS + 3) in out, repr(out[-400:]))
sys.exit(R.finish())
