#!/usr/bin/env python3
"""Fuzz inputs outside the fuzzer: `openwfp fuzz --seed-from` writes tapes
that carry a capture's connections byte for byte; `openwfp replay
--fuzz-input` plays a tape the same way every time, drivers' out-of-band
work included, and a reset may overtake that work (S10); a faulty driver's
finding comes back from the tape alone;
and the command's misuse gets clear errors.

Usage: replay_fuzz_input.py OPENWFP CORPUS FAULTY_DRIVER STREAM_EDIT
"""
import hashlib
import os
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402

check = R.check
OPENWFP, CORPUS, FAULTY, STREAM_EDIT = sys.argv[1:5]
SV = os.path.join(CORPUS, "pcap", "suricata-verify")
# Captures whose connections are whole and in order: a seed replays them as
# the capture does.
CLEAN = [R.SAMPLE,
         os.path.join(SV, "alert-no-3whs-established", "no-3whs.pcap"),
         os.path.join(SV, "community-id-ipv6", "input.pcap"),
         os.path.join(SV, "tcp-empty-sack", "tcp-opt.pcap")]
OOB = R.driver_args(STREAM_EDIT, "Mode=oob", "Find=secret", "Replace=XY")
# Received data, and a queue so short that responses are deferred and
# continued by the work items.
OOB_DEFER = R.driver_args(STREAM_EDIT, "Mode=oob", "Find=secret", "Replace=XY", "Direction=1",
                          "QueueLimit=64")


def fuzz(*args):
    """`openwfp fuzz ARGS...`: (exit status, stderr)."""
    p = subprocess.run([OPENWFP, "fuzz", *args], capture_output=True, timeout=120)
    return p.returncode, p.stderr.decode(errors="replace")


def seeds(capture, d):
    rc, err = fuzz("--seed-from", capture, "--corpus", d)
    check("seed %s: exit 0" % os.path.basename(capture), rc == 0, err)
    return sorted(os.path.join(d, f) for f in os.listdir(d))


def tapes(paths):
    return [a for p in paths for a in ("--fuzz-input", p)]


def stream_hashes(files):
    """The sha256 of each non-empty stream file, sorted (file names carry
    addresses, which differ between a capture and its tapes)."""
    return sorted(hashlib.sha256(b).hexdigest() for b in files.values() if b)


def test_seeds_carry_the_capture(tmp):
    for i, cap in enumerate(CLEAN):
        name = os.path.basename(os.path.dirname(cap)) + "/" + os.path.basename(cap)
        d = os.path.join(tmp, "seeds%d" % i)
        ins = seeds(cap, d)
        rc, out, err, want = R.write_streams(OPENWFP, os.path.join(tmp, "cap%d" % i), "--json",
                                             "--example", "noop", cap)
        n = R.totals(out)["connections"] if rc == 0 else -1
        check("%s: one tape per connection (%d)" % (name, n), len(ins) == n, (len(ins), err))
        rc, out, err, got = R.write_streams(OPENWFP, os.path.join(tmp, "tape%d" % i), "--json",
                                            "--example", "noop", *tapes(ins))
        check("%s: the tapes replay (exit 0)" % name, rc == 0, err)
        check("%s: every direction's bytes as the capture's" % name,
              stream_hashes(got) == stream_hashes(want) and want,
              "%d vs %d streams" % (len(got), len(want)))


def test_replay_of_a_tape_repeats_with_out_of_band_work(tmp):
    ins = seeds(R.SAMPLE, os.path.join(tmp, "s"))
    runs = []
    for k in range(3):
        rc, out, err, files = R.write_streams(OPENWFP, os.path.join(tmp, "run%d" % k), "--json",
                                              *OOB_DEFER, *tapes(ins))
        runs.append((rc, out, sorted(files.items())))
        check("stream_edit oob, run %d: exit 0" % k, rc == 0, err)
    check("stream_edit oob: three runs give the same reports and streams",
          runs[0] == runs[1] == runs[2])
    t = R.totals(runs[0][1])
    check("stream_edit oob: the work items edited and reinjected (injected %d)"
          % t["recv"]["injected"], t["recv"]["injected"] > 0 and t["recv"]["permitted"] == 0, t)
    check("stream_edit oob: a queue of 64 bytes deferred the responses (%d connections)"
          % t["deferred"], t["deferred"] > 0, t)


def raw_segments(path):
    """(source port, TCP flags, payload) of each frame of a raw-IP capture,
    as `--write-pcap` writes a tape's."""
    with open(path, "rb") as f:
        data = f.read()
    segs, off = [], 24
    while off + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, off + 8)[0]
        ip = data[off + 16:off + 16 + caplen]
        off += 16 + caplen
        tcp = ip[(ip[0] & 15) * 4:] if ip[0] >> 4 == 4 else ip[40:]
        segs.append((struct.unpack_from(">H", tcp)[0], tcp[13], tcp[(tcp[12] >> 4) * 4:]))
    return segs


def test_work_runs_when_the_tape_says(tmp):
    """A tape's WORK operation runs the driver's queued work items then and
    there: the edited request goes out before the next connection opens;
    without it, only when the replay ends."""
    op = lambda kind, slot=0, side=0, mod=0: bytes([kind | slot << 3 | side << 6 | mod << 7])
    body = b"GET /secret HTTP/1.1\r\n\r\n"
    request = op(0) + bytes([len(body)]) + body
    open_next = op(7) + bytes([1, 0])  # CTRL OPEN: slot 1, IPv4, handshake, port 80
    for name, tape, first in (("WORK", request + op(6, mod=1) + open_next, True),
                              ("no WORK", request + open_next, False)):
        path = os.path.join(tmp, name.replace(" ", "_"))
        with open(path, "wb") as f:
            f.write(tape)
        rc, out, err = R.replay(OPENWFP, "--quiet", *OOB, "--write-pcap", path + ".pcap",
                                "--fuzz-input", path)
        segs = raw_segments(path + ".pcap") if rc == 0 else []
        order = [(sport, payload) for sport, flags, payload in segs
                 if payload or flags & 0x12 == 0x02]  # data, and the clients' SYNs
        want = [(40000, b""), (40000, b"GET /XY HTTP/1.1\r\n\r\n"), (40256, b"")]
        if not first:
            want = [want[0], want[2], want[1]]
        check("%s: the edited request %s the next connection's SYN"
              % (name, "before" if first else "after"), rc == 0 and order == want,
              (rc, order, err[-1000:]))


def test_S10_reset_overtakes_queued_work(tmp):
    """In a tape a client's RST may come while the driver's work item still
    holds the server's data, as on Windows; the item then runs after the
    ABORT indication and must inject nothing (S10), whichever direction the
    callout edits. Released before the RST, the edit goes out."""
    op = lambda kind, slot=0, side=0, mod=0: bytes([kind | slot << 3 | side << 6 | mod << 7])
    request, response = b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 200 OK\r\n\r\nsecret"
    exchange = op(0) + bytes([len(request)]) + request + \
        op(0, side=1) + bytes([len(response)]) + response
    edit = R.driver_args(STREAM_EDIT, "Mode=oob", "Find=secret", "Replace=XY", "Direction=1")
    for name, tape, edited in (("RST first", exchange + op(3), False),
                               ("WORK, then RST", exchange + op(6, mod=1) + op(3), True)):
        path = os.path.join(tmp, name.replace(" ", "_").replace(",", ""))
        with open(path, "wb") as f:
            f.write(tape)
        rc, out, err = R.replay(OPENWFP, "--quiet", "--verify=strict", *edit,
                                "--write-pcap", path + ".pcap", "--fuzz-input", path)
        payloads = [p for sport, flags, p in raw_segments(path + ".pcap")
                    if sport == 80 and p] if rc == 0 else []
        want = [b"HTTP/1.1 200 OK\r\n\r\nXY"] if edited else []
        check("%s: exit 0 under --verify=strict, the server's data %s" %
              (name, "edited" if edited else "gone with the reset"),
              rc == 0 and payloads == want, (rc, payloads, err[-2000:]))


def test_faulty_driver_finding_comes_back_from_the_tape(tmp):
    ins = seeds(R.SAMPLE, os.path.join(tmp, "f"))
    rc, out, err = R.replay(OPENWFP, "--quiet", "--verify=strict",
                            *R.driver_args(FAULTY, "Fault=defer-on-send"), "--fuzz-input", ins[0])
    check("defer-on-send: --verify=strict exits 4", rc == 4, (rc, err[-2000:]))
    check("defer-on-send: the finding is S19 defer-on-send", "verify S19 defer-on-send" in err,
          err[-2000:])


def test_errors(tmp):
    rc, out, err = R.replay(OPENWFP, "--fuzz-input", os.path.join(tmp, "missing"))
    check("missing fuzz input: exit 1 naming it", rc == 1 and "missing" in err, (rc, err))
    rc, out, err = R.replay(OPENWFP, "--fuzz-input", R.SAMPLE, R.SAMPLE)
    check("captures with --fuzz-input: exit 2", rc == 2 and "do not mix" in err, (rc, err))
    big = os.path.join(tmp, "big")
    with open(big, "wb") as f:
        f.truncate((16 << 20) + 1)
    rc, out, err = R.replay(OPENWFP, "--fuzz-input", big)
    check("fuzz input over 16 MiB: exit 1", rc == 1 and "at most" in err, (rc, err))
    rc, err = fuzz()
    check("fuzz without a driver: exit 2", rc == 2 and "--driver" in err, (rc, err))
    rc, err = fuzz("--seed-from", R.SAMPLE)
    check("--seed-from without --driver or --corpus: exit 2", rc == 2, (rc, err))
    rc, err = fuzz("--seed-from", os.path.join(tmp, "nope.pcap"), "--corpus", tmp)
    check("--seed-from a missing capture: exit 2", rc == 2 and "nope.pcap" in err, (rc, err))
    rc, err = fuzz("--driver", FAULTY, "--corpus", os.path.join(tmp, "c"), "stray")
    check("a stray argument before --: exit 2", rc == 2 and "stray" in err, (rc, err))
    os.environ["OPENWFP_FUZZ_HOST"] = os.path.join(tmp, "no-such-host")
    try:
        rc, err = fuzz("--driver", FAULTY, "--corpus", os.path.join(tmp, "c"),
                       "--artifacts", os.path.join(tmp, "a"))
    finally:
        del os.environ["OPENWFP_FUZZ_HOST"]
    check("no openwfp-fuzz: exit 2, saying how to build it", rc == 2 and "-Dfuzz=true" in err,
          (rc, err))


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for t in (test_seeds_carry_the_capture,
                  test_replay_of_a_tape_repeats_with_out_of_band_work,
                  test_work_runs_when_the_tape_says,
                  test_S10_reset_overtakes_queued_work,
                  test_faulty_driver_finding_comes_back_from_the_tape,
                  test_errors):
            d = os.path.join(tmp, t.__name__)
            os.mkdir(d)
            t(d)
    return R.finish()


if __name__ == "__main__":
    sys.exit(main())
