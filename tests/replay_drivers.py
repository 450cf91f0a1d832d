#!/usr/bin/env python3
"""Callout drivers built as shared modules (tests/drivers/) through
`openwfp replay --driver`: DriverEntry and DriverUnload run, a stream callout
sees exactly the replay's bytes, a failing DriverEntry, an API openwfp does
not have, a pool leak and --strict, --driver-param through the registry, a
driver crashing in classifyFn (the report names it), timers, DPCs and
resources a driver leaves behind at unload.

usage: replay_drivers.py OPENWFP CORPUS_DIR COUNT.so FAIL.so LEAK.so PARAM.so UNRESOLVED.so
       CRASH.so TIMER.so
OWFP_SANITIZE in the environment: the build's b_sanitize option.
"""
import functools
import os
import re
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402
from replay_lib import check, totals  # noqa: E402

OPENWFP, CORPUS, COUNT, FAIL, LEAK, PARAM, UNRESOLVED, CRASH, TIMER = sys.argv[1:10]
ASAN = "address" in os.environ.get("OWFP_SANITIZE", "")
PCAP = os.path.join(CORPUS, "pcap")
HTTP = os.path.join(PCAP, "debian-python3-dpkt/examples/data/http.pcap")
OVERLAP = os.path.join(PCAP, "suricata-verify/eve-payload-01-tcp-exact-overlap/tcp-overlap.pcap")


def no_core_dump():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# leaks=True: the leak driver leaks on purpose, and a crashed process leaves
# everything behind.
replay = functools.partial(R.replay, OPENWFP)


COUNTED = re.compile(r"^\[count_driver\] CountDriver: unloaded after (\d+) classifies, (\d+) stream bytes$", re.M)


def test_count_driver():
    for capture in (HTTP, OVERLAP):
        name = os.path.basename(capture)
        rc, out, err = replay("--json", "--strict", "--driver", COUNT, capture)
        check("count %s: exit 0 under --strict" % name, rc == 0, err)
        check("count %s: DriverEntry saw its DRIVER_OBJECT name" % name,
              "[count_driver] CountDriver: loaded as \\Driver\\count_driver\n" in err, err)
        m = COUNTED.search(err)
        check("count %s: DriverUnload ran and printed with the driver's name" % name, m is not None, err)
        if m and rc == 0:
            t = totals(out)
            want = t["send"]["seen"] + t["recv"]["seen"]
            check("count %s: the callout saw exactly the stream bytes (%d)" % (name, want),
                  int(m.group(2)) == want and want > 0, "%s vs totals %s" % (m.group(0), t))
        check("count %s: nothing left behind" % name, "leak" not in err, err)


def test_default_capture_without_examples():
    rc, out, err = replay("--driver", COUNT)
    check("sample + driver: exit 0", rc == 0, err)
    check("sample + driver: no built-in examples", "examples" not in out and " blocked=0 " in out, out)
    m = COUNTED.search(err)
    check("sample + driver: the driver saw the sample's bytes", m is not None and int(m.group(2)) > 0, err)


def test_failing_driver():
    rc, out, err = replay("--quiet", "--driver", FAIL, HTTP)
    check("fail: exit 2", rc == 2, err)
    check("fail: the message names the driver and the status",
          re.search(r"driver fail_driver .*DriverEntry failed with status 0xC000009A", err) is not None, err)
    check("fail: no replay ran", "totals" not in out, out)
    check("fail: nothing left behind", "leak" not in err, err)
    # A driver loaded before the failing one is unloaded again.
    rc, out, err = replay("--quiet", "--driver", COUNT, "--driver", FAIL, HTTP)
    check("fail after another: exit 2, the first is unloaded",
          rc == 2 and COUNTED.search(err) is not None, err)


def test_unresolved_symbol():
    rc, out, err = replay("--quiet", "--driver", UNRESOLVED, HTTP)
    check("unresolved: exit 2", rc == 2, err)
    check("unresolved: the message names the missing function",
          "undefined symbol: KeNotImplementedByOpenwfp" in err and "unresolved_driver" in err, err)


def test_missing_file():
    rc, out, err = replay("--quiet", "--driver", "/nonexistent/none.so", HTTP)
    check("missing file: exit 2 and a message", rc == 2 and "driver none: cannot load" in err, err)


def test_leaking_driver():
    rc, out, err = replay("--quiet", "--driver", LEAK, HTTP, leaks=True)
    check("leak: exit 0 without --strict", rc == 0, err)
    check("leak: the tag, count and bytes are reported",
          "openwfp: driver leak_driver: leak: pool tag 'Leak': 1 allocation, 100 bytes" in err, err)
    check("leak: DriverUnload ran", "[leak_driver] LeakDriver: unloading" in err, err)
    rc, out, err = replay("--quiet", "--strict", "--driver", LEAK, HTTP, leaks=True)
    check("leak: --strict exits 3", rc == 3 and "--strict" in err, err)


def test_order():
    rc, out, err = replay("--quiet", "--driver", COUNT, "--driver", LEAK, HTTP, leaks=True)
    lines = err.splitlines()
    loaded = [i for i, l in enumerate(lines) if "CountDriver: loaded" in l]
    count_unload = [i for i, l in enumerate(lines) if COUNTED.match(l)]
    leak_unload = [i for i, l in enumerate(lines) if "LeakDriver: unloading" in l]
    check("two drivers: both run, unloaded in reverse order",
          rc == 0 and loaded and count_unload and leak_unload and leak_unload[0] < count_unload[0], err)
    check("two drivers: the leak is the leak driver's",
          "driver leak_driver: leak: pool tag 'Leak'" in err and "driver count_driver: leak" not in err, err)


def test_params():
    rc, out, err = replay("--quiet", "--driver", PARAM, "--driver-param", "Threshold=0x2a",
                          "--driver-param", "Greeting=hello world", HTTP)
    check("params: exit 0", rc == 0, err)
    check("params: REG_DWORD from hex via ZwQueryValueKey",
          "[param_driver] ParamDriver: Threshold=42 (REG_DWORD)" in err, err)
    check("params: REG_SZ via ZwQueryValueKey",
          "[param_driver] ParamDriver: Greeting=hello world (REG_SZ)" in err, err)
    check("params: a missing value is STATUS_OBJECT_NAME_NOT_FOUND",
          "[param_driver] ParamDriver: Missing: 0xC0000034" in err, err)
    check("params: RtlQueryRegistryValues DIRECT",
          "RtlQueryRegistryValues: 0x00000000 Threshold=42 Greeting=hello world" in err, err)
    check("params: every key handle closed", "leak" not in err, err)
    # Before any --driver: for every driver; a later value of a name wins.
    rc, out, err = replay("--quiet", "--driver-param", "Threshold=7", "--driver-param", "Greeting=all",
                          "--driver", PARAM, "--driver-param", "Threshold=1234", HTTP)
    check("params: global ones apply, the driver's own win",
          rc == 0 and "Threshold=1234 (REG_DWORD)" in err and "Greeting=all (REG_SZ)" in err, err)
    # A parameter given after another driver is not this driver's.
    rc, out, err = replay("--quiet", "--driver", PARAM, "--driver", COUNT, "--driver-param", "Threshold=5", HTTP)
    check("params: those of another driver stay there",
          rc == 0 and "ParamDriver: Threshold: 0xC0000034" in err, err)
    # Not a number: a string.
    rc, out, err = replay("--quiet", "--driver", PARAM, "--driver-param", "Threshold=12x", HTTP)
    check("params: a non-number is REG_SZ", rc == 0 and "ParamDriver: Threshold: 0x00000000" in err, err)
    check("params: RTL_QUERY_REGISTRY_TYPECHECK refuses it",
          "RtlQueryRegistryValues: 0xC0000024" in err, err)
    rc, out, err = replay("--quiet", "--driver", PARAM, "--driver-param", "novalue", HTTP)
    check("params: NAME=VALUE is required", rc == 2 and "NAME=VALUE" in err, err)


def test_crash_driver():
    rc, out, err = replay("--quiet", "--driver", CRASH, HTTP)
    check("crash: without its parameter the driver runs and unloads",
          rc == 0 and "[crash_driver] CrashDriver: 0 parameter(s), Crash=0" in err
          and "CrashDriver: unloaded" in err and "fatal signal" not in err, err)
    rc, out, err = replay("--quiet", "--driver", CRASH, "--driver-param", "Crash=1", HTTP,
                          leaks=True, preexec_fn=no_core_dump)
    check("crash: ZwQueryKey and ZwEnumerateValueKey found the parameter",
          "[crash_driver] CrashDriver: 1 parameter(s), Crash=1" in err, err)
    if ASAN:
        # The sanitizers' own report is the one wanted there (UBSan's null
        # store check may come before ASan's SEGV): openwfp installs nothing.
        check("crash (ASan): the sanitizer reports it in the driver, no openwfp handler",
              rc != 0 and ("AddressSanitizer" in err or "runtime error" in err)
              and "crash_driver.c" in err and "openwfp: fatal signal" not in err, err)
        return
    check("crash: the process dies by SIGSEGV (default action re-raised)",
          rc == -signal.SIGSEGV, "exit status %d\n%s" % (rc, err))
    check("crash: the report names the signal and the faulting address",
          re.search(r"^openwfp: fatal signal SIGSEGV \(11\) at address 0x0, code at 0x[0-9a-f]+$",
                    err, re.M) is not None, err)
    check("crash: the report names the driver and where in it",
          re.search(r"^openwfp: the crash is in driver crash_driver \(\S*crash_driver\.so\+0x[0-9a-f]+\)$",
                    err, re.M) is not None, err)
    lines = err.splitlines()
    bt = [i for i, l in enumerate(lines) if l == "openwfp: backtrace:"]
    check("crash: a backtrace starting in the driver",
          bt and bt[0] + 1 < len(lines) and "crash_driver.so(" in lines[bt[0] + 1], err)
    check("crash: no unload ran after the crash", "CrashDriver: unloaded" not in err, err)


def test_timer_driver():
    rc, out, err = replay("--quiet", "--strict", "--driver", TIMER, HTTP)
    check("timer: the DPC ran on the timer; WaitAll on the event and the timer returned",
          "[timer_driver] TimerDriver: three ticks: 0x00000000" in err, err)
    check("timer: cancelled and flushed at unload, nothing reported under --strict",
          rc == 0 and "TimerDriver: unloaded, ticked" in err and "leak" not in err
          and "finding" not in err, err)

    rc, out, err = replay("--quiet", "--driver", TIMER, "--driver-param", "LeaveTimer=1", HTTP)
    check("timer left set: reported, cancelled, the module unmapped",
          rc == 0 and "openwfp: driver timer_driver: leak: 1 timer(s) still set at unload "
          "(KeCancelTimer); cancelled" in err and "kept mapped" not in err, err)
    rc, out, err = replay("--quiet", "--strict", "--driver", TIMER, "--driver-param", "LeaveTimer=1",
                          HTTP)
    check("timer left set: --strict exits 3", rc == 3, err)

    rc, out, err = replay("--quiet", "--driver", TIMER, "--driver-param", "LeaveDpc=1", HTTP)
    lines = err.splitlines()
    done = [i for i, l in enumerate(lines) if l.endswith("TimerDriver: slow DPC done")]
    left = [i for i, l in enumerate(lines)
            if l == "openwfp: driver timer_driver: leak: 1 DPC(s) still queued at unload "
                    "(KeRemoveQueueDpc, KeFlushQueuedDpcs); removed"]
    check("DPC left queued: reported and removed, never run",
          rc == 0 and left and "late DPC ran" not in err, err)
    check("DPC running at unload: the host waited for it before unmapping",
          done and left and done[0] < left[0] and "kept mapped" not in err, err)

    rc, out, err = replay("--quiet", "--driver", TIMER, "--driver-param", "LeaveResource=1", HTTP,
                          leaks=True)
    check("ERESOURCE not deleted: reported",
          rc == 0 and "openwfp: driver timer_driver: leak: 1 ERESOURCE(s) not deleted "
          "(ExDeleteResourceLite)" in err, err)


def test_help():
    rc, out, err = replay("--help")
    check("--help names --driver, --driver-param, --strict",
          rc == 0 and all(o in out for o in ("--driver PATH", "--driver-param", "--strict")), out)


for t in (test_count_driver, test_default_capture_without_examples, test_failing_driver,
          test_unresolved_symbol, test_missing_file, test_leaking_driver, test_order, test_params,
          test_crash_driver, test_timer_driver, test_help):
    t()
sys.exit(R.finish())
