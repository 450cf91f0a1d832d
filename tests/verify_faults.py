#!/usr/bin/env python3
"""The callout verifier (`--verify`, docs/verifier.md) through `openwfp replay`:

- every fault of tests/drivers/faulty_driver.c, one per run, trips exactly
  the finding(s) named for it: rule id, check, driver, a count, and a
  backtrace naming the faulty function where there is one; `--verify=strict`
  exits 4, `--verify` alone leaves the exit status alone;
- the verifier only reports: the edited streams and the totals are the same
  with and without it;
- the example drivers of drivers/ over corpus captures trip none.

usage: verify_faults.py OPENWFP CORPUS_DIR FAULTY.so FLOW_MONITOR.so CONTENT_BLOCK.so
       STREAM_EDIT.so TLS_SNI_BLOCK.so
Check names start with the rule id they are about.
"""
import filecmp
import functools
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402

OPENWFP, CORPUS, FAULTY, FLOW_MONITOR, CONTENT_BLOCK, STREAM_EDIT, TLS_SNI_BLOCK = sys.argv[1:8]
PCAP = os.path.join(CORPUS, "pcap")
HTTP = os.path.join(PCAP, "debian-python3-dpkt/examples/data/http.pcap")
TLS = os.path.join(PCAP, "suricata-verify/tcp-empty-sack/tcp-opt.pcap")
TLS2 = os.path.join(PCAP, "suricata-verify/bug-5881-01/input.pcap")
RST = os.path.join(PCAP, "suricata-verify/tcp-rst-unacked-stream-01-raw/input.pcap")
RST_HTTP = os.path.join(PCAP, "suricata-verify/tcp-rst-unacked-stream-10/"
                              "TLPW1-tcp-174.56.47.59-10.3.11.101-tcp-80-49309.pcap")
check = functools.partial(R.check, limit=4000)
# The faulty driver leaks on purpose.
replay = functools.partial(R.replay, OPENWFP, "--quiet", "--no-progress", leaks=True)


def findings(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# fault -> (capture, {(rule, check): function named in the backtrace or None})
FAULTS = {
    "terminating-no-decision": (HTTP, {("S24", "terminating-no-decision"): "FaultyStreamClassify"}),
    "enforced-too-many": (HTTP, {("S15", "enforced-exceeds-indication"): "FaultyStreamClassify"}),
    "need-more-data-forever": (HTTP, {("S17", "need-more-data-after-end"): "FaultyStreamClassify"}),
    "defer-on-send": (HTTP, {("S19", "defer-on-send"): "FaultyStreamClassify"}),
    "drop-from-inspection": (HTTP, {("S18", "drop-from-inspection"): "FaultyStreamClassify"}),
    "action-out-of-range": (HTTP, {("S21", "stream-action-out-of-range"): "FaultyStreamClassify"}),
    "write-without-right": (HTTP, {("A5", "action-write-without-right"): "FaultyAleClassify"}),
    "block-keeps-right": (HTTP, {("A6", "block-keeps-right"): "FaultyAleClassify"}),
    "permit-keeps-right": (HTTP, {("A6", "permit-keeps-right"): "FaultyAleClassify"}),
    "oob-after-permit": (HTTP, {("S27", "inject-outside-classify"): "FaultyInjectClone"}),
    "mixed-inline-oob": (HTTP, {("S29", "mixed-inline-oob"): "FaultyInjectClone"}),
    "fin-invented": (HTTP, {("S29", "fin-invented"): "FaultyStreamClassify"}),
    "inject-after-abort": (RST, {("S10", "inject-after-send-abort"): "FaultyInjectClone"}),
    "associate-no-flow-delete": (HTTP, {("F4", "associate-without-flow-delete"):
                                        "FaultyAleClassify"}),
    "remove-missing": (HTTP, {("F6", "remove-missing-context"): "FaultyAleClassify"}),
    "unload-keeps-callouts": (HTTP, {("R8", "call-after-unload"): "FaultyNotify",
                                     ("E3", "callout-registered-at-unload"): None}),
    "wait-in-classify": (HTTP, {("C4", "wait-at-dispatch"): "FaultyStreamClassify"}),
    "sleep-under-spinlock": (HTTP, {("C4", "wait-at-dispatch"): "DriverEntry"}),
    "passive-call-in-classify": (HTTP, {("C4", "call-above-irql"): "FaultyStreamClassify"}),
    "fwpm-in-classify": (HTTP, {("C4", "passive-api-in-callout"): "FaultyStreamClassify"}),
    "continue-in-classify": (HTTP, {("C4", "continue-in-classify"): "FaultyStreamClassify"}),
    "pool-wrong-tag": (HTTP, {("K", "pool"): "DriverEntry"}),
    "leak-pool": (HTTP, {("K", "leak-pool"): None}),
    "leak-nbl": (HTTP, {("K", "leak-nbl"): None}),
    "leak-mdl": (HTTP, {("K", "leak-mdl"): None}),
    "leak-clone": (HTTP, {("S30", "leak-clone"): None}),
    "leak-workitem": (HTTP, {("K", "leak-workitem"): None}),
    "leak-injection-handle": (HTTP, {("E3", "leak-injection-handle"): None}),
}


def test_faults():
    for fault, (capture, want) in FAULTS.items():
        log = os.path.join(tmp, fault + ".jsonl")
        rc, out, err = replay("--verify=strict", "--verify-log", log, "--driver", FAULTY,
                              "--driver-param", "Fault=" + fault, capture)
        rules = " ".join(sorted({r for r, _ in want}))
        name = "%s %s" % (rules, fault)
        check(name + ": --verify=strict exits 4", rc == 4, "rc=%d\n%s" % (rc, err))
        got = findings(log) if os.path.exists(log) else []
        keys = {(f["rule"], f["check"]) for f in got}
        check(name + ": exactly the expected findings %s" % sorted(want), keys == set(want),
              "got %s\n%s" % (sorted(keys), err))
        for (rule, chk), fn in want.items():
            mine = [f for f in got if f["rule"] == rule and f["check"] == chk]
            if not mine:
                continue
            f = mine[0]
            check("%s %s (%s): driver, count, fields" % (rule, chk, fault),
                  f["driver"] == "faulty_driver" and all(x["count"] >= 1 for x in mine) and
                  set(f) >= {"rule", "check", "driver", "callout_key", "flow", "count", "message",
                             "backtrace"} and f["message"], f)
            if fn:
                check("%s %s (%s): the backtrace names %s" % (rule, chk, fault, fn),
                      any(fn in frame for x in mine for frame in x["backtrace"]), f["backtrace"])
            line = "openwfp: verify %s %s driver=faulty_driver" % (rule, chk)
            check("%s %s (%s): reported on stderr when first seen" % (rule, chk, fault),
                  line in err, err)
            check("%s %s (%s): in the summary" % (rule, chk, fault),
                  "verify: %d finding(s)" % len(got) in err, err)


def test_report_only():
    # --verify alone: findings, exit status unchanged.
    rc, out, err = replay("--verify", "--driver", FAULTY, "--driver-param",
                          "Fault=defer-on-send", HTTP)
    check("S19 defer-on-send: --verify alone exits 0", rc == 0, err)
    check("S19 defer-on-send: --verify alone still reports",
          "openwfp: verify S19 defer-on-send" in err, err)
    # --verify-log alone implies --verify.
    log = os.path.join(tmp, "implied.jsonl")
    rc, out, err = replay("--verify-log", log, "--driver", FAULTY, "--driver-param",
                          "Fault=action-out-of-range", HTTP)
    check("S21 stream-action-out-of-range: --verify-log implies --verify (exit 0, logged)",
          rc == 0 and any(f["rule"] == "S21" for f in findings(log)), err)
    # No finding: exit 0, an empty log, "no findings".
    log = os.path.join(tmp, "none.jsonl")
    rc, out, err = replay("--verify=strict", "--verify-log", log, "--driver", FAULTY,
                          "--driver-param", "Fault=none", HTTP)
    check("control: Fault=none trips nothing", rc == 0 and findings(log) == [] and
          "verify: no findings" in err, err)
    rc, out, err = replay("--verify=loose", HTTP)
    check("control: --verify=loose is bad usage (exit 2)", rc == 2, err)


def streams(fault, verify):
    d = os.path.join(tmp, "streams-%s-%s" % (fault, "on" if verify else "off"))
    os.mkdir(d)
    args = ["--json", "--write-streams", d, "--driver", FAULTY, "--driver-param",
            "Fault=" + fault]
    if verify:
        args.insert(0, "--verify")
    rc, out, err = replay(*args, HTTP)
    totals = [l for l in out.splitlines() if l.startswith('{"totals"')]
    return rc, d, totals, err


def test_same_output():
    # The verifier reports; the engine does what it does without it.
    for fault in ("terminating-no-decision", "defer-on-send", "action-out-of-range",
                  "drop-from-inspection", "mixed-inline-oob", "need-more-data-forever",
                  "fin-invented", "none"):
        rc0, d0, t0, e0 = streams(fault, False)
        rc1, d1, t1, e1 = streams(fault, True)
        files = sorted(os.listdir(d0))
        same = rc0 == rc1 == 0 and t0 == t1 and files == sorted(os.listdir(d1)) and all(
            filecmp.cmp(os.path.join(d0, f), os.path.join(d1, f), shallow=False) for f in files)
        check("verifier only reports (%s): same streams and totals with and without --verify"
              % fault, same and len(files) > 0, "%s\n%s\n%s" % (t0, t1, e1))


CLEAN = [
    ("flow_monitor", FLOW_MONITOR, []),
    ("content_block Pattern=secret", CONTENT_BLOCK, ["Pattern=secret"]),
    ("content_block Pattern=HTTP AllowAfter=1", CONTENT_BLOCK, ["Pattern=HTTP", "AllowAfter=1"]),
    ("stream_edit inline", STREAM_EDIT, ["Find=GET", "Replace=PUTX"]),
    ("stream_edit inline receive", STREAM_EDIT, ["Find=HTTP", "Replace=", "Direction=1"]),
    ("stream_edit oob", STREAM_EDIT, ["Mode=oob", "Find=GET", "Replace=PUTX"]),
    ("stream_edit oob receive, deferring", STREAM_EDIT,
     ["Mode=oob", "Find=HTTP", "Replace=XY", "Direction=1", "QueueLimit=100"]),
    ("tls_sni_block", TLS_SNI_BLOCK, ["BlockedNames=.apple.com"]),
    ("tls_sni_block FailClosed", TLS_SNI_BLOCK, ["BlockedNames=dns.google", "FailClosed=1"]),
]


def test_clean_examples():
    for capture in (HTTP, TLS, TLS2, RST_HTTP):
        for name, driver, params in CLEAN:
            log = os.path.join(tmp, "clean.jsonl")
            rc, out, err = replay("--verify=strict", "--verify-log", log,
                                  *R.driver_args(driver, *params), capture)
            got = findings(log)
            check("clean %s over %s: --verify=strict trips nothing" %
                  (name, os.path.basename(capture)), rc == 0 and got == [], "%s\n%s" % (got, err))
    # stream_edit twice (inline and out of band), as replay_stream_edit_oob.py
    # stacks it: a copy under another file name has its own service key.
    oob = os.path.join(tmp, "stream_edit_oob.so")
    shutil.copy(STREAM_EDIT, oob)
    for capture in (HTTP, TLS):
        log = os.path.join(tmp, "stacked.jsonl")
        rc, out, err = replay("--verify=strict", "--verify-log", log,
                              *R.driver_args(STREAM_EDIT, "Find=GET", "Replace=PUT"),
                              *R.driver_args(oob, "Mode=oob", "Find=PUT", "Replace=POST"),
                              capture)
        check("clean stream_edit inline + oob stacked over %s: trips nothing"
              % os.path.basename(capture), rc == 0 and findings(log) == [], err)


with tempfile.TemporaryDirectory(prefix="verify_faults.") as tmp:
    test_faults()
    test_report_only()
    test_same_output()
    test_clean_examples()
sys.exit(R.finish())
