#!/usr/bin/env python3
"""Replay soak: the corpus again and again, each run through a random
configuration of the example drivers and built-in callouts (seeded, so a
failure names its seed and replays). Bounded by time and by run count.

Every run must end as the capture's run without callouts ended (the same exit
status: callouts do not change what can be read), under --strict (no leak, no
IRQL finding), with no sanitizer report, and with the same bytes seen per
direction (callouts decide what passes, never what was on the wire).

usage: replay_soak.py OPENWFP CORPUS_DIR DRIVER.so...
environment: SOAK_SECONDS (default 60), SOAK_SEED (default: time-based),
SOAK_RUNS (default 100000).
"""
import glob
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402

OPENWFP, CORPUS, DRIVERS = sys.argv[1], sys.argv[2], sys.argv[3:]
SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
RUNS = int(os.environ.get("SOAK_RUNS", "100000"))
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))
# Not numbers: --driver-param makes those REG_DWORD, and patterns are REG_SZ.
WORDS = ["secret", "GET", "HTTP/1.1", "a", "\\r\\n", "Host", "zz", "ab"]


def driver(name):
    for d in DRIVERS:
        if os.path.basename(d).startswith(name + "."):
            return d
    raise SystemExit("missing driver " + name)


def configuration(rng, tmp):
    """Command-line arguments for one random set of callouts."""
    args = []
    if rng.random() < 0.4:
        args += ["--driver", driver("flow_monitor"), "--driver-param", "Verbose=%d" % rng.randint(0, 1)]
    if rng.random() < 0.4:
        args += ["--driver", driver("content_block"), "--driver-param",
                 "Pattern=" + rng.choice(WORDS).replace("\\r\\n", "\r\n"),
                 "--driver-param", "AllowAfter=%d" % rng.choice([0, 1, 100, 65536])]
    if rng.random() < 0.5:
        # Two stream_edit instances (inline and out of band) need two module
        # names: each loaded driver has its own service key.
        modes = rng.sample(["inline", "oob"], rng.randint(1, 2))
        for i, mode in enumerate(modes):
            path = driver("stream_edit")
            if i:
                path = os.path.join(tmp, "stream_edit_%s.so" % mode)
                shutil.copyfile(driver("stream_edit"), path)
            args += ["--driver", path, "--driver-param", "Mode=" + mode,
                     "--driver-param", "Find=" + rng.choice(["secret", "GET", "a", "HTTP"]),
                     "--driver-param", "Replace=" + rng.choice(["", "x", "[REDACTED]", "yy"]),
                     "--driver-param", "Direction=%d" % rng.randint(0, 1),
                     "--driver-param", "SublayerWeight=%d" % (0x100 + 0x100 * i)]
            if mode == "oob":
                args += ["--driver-param", "QueueLimit=%d" % rng.choice([1, 512, 65536])]
    if rng.random() < 0.3:
        args += ["--driver", driver("tls_sni_block"), "--driver-param",
                 "BlockedNames=" + rng.choice(["example.com", ".com", "google.com,.org"]),
                 "--driver-param", "FailClosed=%d" % rng.randint(0, 1)]
    for ex in ("noop", "mask=secret", rng.choice(["block-port=80", "block-port=443"])):
        if rng.random() < 0.15:
            args += ["--example", ex]
    return args


def run(args, capture):
    return R.replay(OPENWFP, "--json", "--strict", *args, capture, timeout=300)


def seen(out):
    t = R.totals(out)
    return (t["send"]["seen"], t["recv"]["seen"]) if t else None


def main():
    captures = sorted(p for p in glob.glob(os.path.join(CORPUS, "pcap", "**", "*"), recursive=True)
                      if p.endswith((".pcap", ".pcapng", ".cap")))
    if not captures:
        print("skip: no corpus at " + CORPUS)
        return 77
    baseline = {}
    for c in captures:
        rc, out, _ = run([], c)
        baseline[c] = (rc, seen(out))
    rng = random.Random(SEED)
    print("seed %d, %d captures, up to %.0f s" % (SEED, len(captures), SECONDS), flush=True)
    deadline = time.time() + SECONDS
    failures, runs = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        while time.time() < deadline and runs < RUNS and len(failures) < 5:
            capture = rng.choice(captures)
            args = configuration(rng, tmp)
            rc, out, err = run(args, capture)
            runs += 1
            want_rc, want_seen = baseline[capture]
            problems = []
            if rc != want_rc:
                problems.append("exit %d, %d without callouts" % (rc, want_rc))
            if "Sanitizer" in err or "runtime error" in err:
                problems.append("sanitizer report")
            if "leak" in err.lower() and rc == want_rc:
                problems.append("leak report")
            if want_rc == 0 and seen(out) != want_seen:
                problems.append("seen %s, %s without callouts" % (seen(out), want_seen))
            if problems:
                failures.append(capture)
                print("FAIL run %d: %s\n     openwfp replay --json --strict %s %s\n     %s"
                      % (runs, "; ".join(problems), " ".join(args), capture,
                         err.strip()[-2000:].replace("\n", "\n     ")), flush=True)
    print("%d runs, %d failures (seed %d)" % (runs, len(failures), SEED))
    return 1 if failures or runs == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
