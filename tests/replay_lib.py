"""Shared pieces of the python tests of `openwfp replay` (tests/replay_*.py,
tests/verify_faults.py): the checks and their "ok  "/"FAIL" lines (the proxy
tests print theirs through proxy_lib.py, which takes them from here), the
replay as a child process, its --json records and --write-streams files,
and captures written with scapy.

A test imports it from its own directory:

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import replay_lib as R  # noqa: E402
"""
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE = os.path.join(HERE, "..", "data", "sample-http.pcap")

failures = []


def check(name, cond, detail="", limit=None):
    """Prints "ok   NAME" or "FAIL NAME" and, for a failure, the detail
    indented (its first `limit` characters); returns cond."""
    print("%s %s" % ("ok  " if cond else "FAIL", name), flush=True)
    if not cond:
        failures.append(name)
        if detail:
            print("     " + str(detail).strip().replace("\n", "\n     ")[:limit], flush=True)
    return cond


def finish():
    """The exit status: 1 when a check failed (they are named once more), else 0."""
    if failures:
        print("%d check(s) failed: %s" % (len(failures), ", ".join(failures)))
        return 1
    return 0


# The example drivers of drivers/: every test run of theirs is also checked
# by the verifier (docs/verifier.md), so a finding fails the run (exit 4).
EXAMPLE_DRIVERS = ("flow_monitor", "content_block", "stream_edit", "tls_sni_block")


def verified(args):
    """args with --verify=strict added when they load an example driver and
    choose no --verify themselves."""
    drivers = [os.path.basename(args[i + 1]).split(".")[0]
               for i, a in enumerate(args[:-1]) if a == "--driver"]
    chosen = any(str(a).startswith("--verify") for a in args)
    if chosen or not any(d in EXAMPLE_DRIVERS for d in drivers):
        return list(args)
    return ["--verify=strict", *args]


def replay(openwfp, *args, stdin=None, timeout=120, leaks=False, env=None, preexec_fn=None):
    """`openwfp replay ARGS...`: (exit status, stdout, stderr) as text; runs
    of the example drivers under --verify=strict (verified()).
    leaks=True for a run that leaks on purpose (a leaking driver, a crash):
    LeakSanitizer (ASan builds) would make that its own exit status. env:
    the whole environment (default: this one's)."""
    env = dict(os.environ if env is None else env)
    if leaks:
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    p = subprocess.run([openwfp, "replay", *verified(args)], input=stdin, capture_output=True,
                       timeout=timeout, env=env, preexec_fn=preexec_fn)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def write_streams(openwfp, d, *args, **kw):
    """replay() with --write-streams D, D made here: (exit status, stdout,
    stderr, {stream file name: its bytes})."""
    os.mkdir(d)
    rc, out, err = replay(openwfp, "--write-streams", d, *args, **kw)
    files = {}
    for f in os.listdir(d):
        with open(os.path.join(d, f), "rb") as fh:
            files[f] = fh.read()
    return rc, out, err, files


def driver_args(path, *params):
    """--driver PATH and a --driver-param for each of params (NAME=VALUE)."""
    args = ["--driver", path]
    for p in params:
        args += ["--driver-param", p]
    return args


def conns(out):
    """The per-connection records of a --json run."""
    return [json.loads(l) for l in out.splitlines() if l.startswith('{"conn"')]


def totals(out):
    """The totals record of a --json run (None without one)."""
    return next((json.loads(l)["totals"] for l in out.splitlines() if l.startswith('{"totals"')),
                None)


def scapy_capture(path, script):
    """Runs `script` with the system's python3 (and its scapy) to write a
    capture at path (its sys.argv[1]): None, or the last line of its error
    (a list, empty or of one line) when it could not."""
    p = subprocess.run(["/usr/bin/python3", "-c", script, path], capture_output=True,
                       timeout=120)
    if p.returncode == 0:
        return None
    return p.stderr.decode(errors="replace").strip().splitlines()[-1:]


# The start of a scapy script for scapy_capture(): conn(sport, chunks, reply)
# adds an HTTP-like connection 10.0.0.1:sport -> 10.0.0.2:80 to pkts, the
# client's chunks one segment each (each acknowledged), then the reply, then
# FINs both ways. The script then ends with wrpcap(sys.argv[1], pkts).
SCAPY_HTTP_CONN = r'''
import sys
from scapy.all import IP, TCP, Ether, wrpcap
pkts = []
def conn(sport, chunks, reply):
    c, s = "10.0.0.1", "10.0.0.2"
    E = lambda: Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    cseq, sseq = 1000, 5000
    pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="S", seq=cseq))
    pkts.append(E()/IP(src=s, dst=c)/TCP(sport=80, dport=sport, flags="SA", seq=sseq, ack=cseq+1))
    cseq += 1; sseq += 1
    pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="A", seq=cseq, ack=sseq))
    for ch in chunks:
        pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="PA", seq=cseq, ack=sseq)/ch)
        cseq += len(ch)
        pkts.append(E()/IP(src=s, dst=c)/TCP(sport=80, dport=sport, flags="A", seq=sseq, ack=cseq))
    pkts.append(E()/IP(src=s, dst=c)/TCP(sport=80, dport=sport, flags="PA", seq=sseq, ack=cseq)/reply)
    sseq += len(reply)
    pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="FA", seq=cseq, ack=sseq))
    pkts.append(E()/IP(src=s, dst=c)/TCP(sport=80, dport=sport, flags="FA", seq=sseq, ack=cseq+1))
    pkts.append(E()/IP(src=c, dst=s)/TCP(sport=sport, dport=80, flags="A", seq=cseq+1, ack=sseq+1))
'''
