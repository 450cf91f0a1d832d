#!/usr/bin/env python3
"""KMDF-subset drivers under `openwfp replay --driver`: the framework's
DriverUnload runs EvtDriverUnload and deletes the control device; framework
objects a driver leaves are reported like other leaks (and fail --strict);
after a failed DriverEntry the framework's objects are deleted without
EvtDriverUnload; a driver without EvtDriverUnload stays loaded.

usage: replay_wdf.py OPENWFP WDF_LEAK_DRIVER.so
"""
import functools
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_lib as R  # noqa: E402
from replay_lib import SAMPLE, check  # noqa: E402

OPENWFP, LEAK = sys.argv[1:3]
# The framework frees what is left; nothing should reach LeakSanitizer.
replay = functools.partial(R.replay, OPENWFP, "--quiet")


LEAK_LINE = re.compile(r"^openwfp: driver wdf_leak_driver: leak: (\d+) (\w+) object\(s\) not "
                       r"deleted \((\w+)\)$", re.M)

rc, _, err = replay("--strict", "--driver", LEAK, SAMPLE)
leaks = sorted((m.group(2), int(m.group(1)), m.group(3)) for m in LEAK_LINE.finditer(err))
check("mode 0: EvtDriverUnload ran", "[wdf_leak_driver] WdfLeak: EvtDriverUnload, mode 0" in err, err)
check("mode 0: the open key and the string are reported, by type",
      leaks == [("WDFKEY", 1, "WdfRegistryClose"), ("WDFSTRING", 1, "WdfObjectDelete")], err)
check("mode 0: the framework closed the key and deleted the device (no other leak)",
      "registry key handle" not in err and "device object" not in err, err)
check("mode 0: --strict fails with 3", rc == 3, "exit %d\n%s" % (rc, err))

rc, _, err = replay("--strict", "--driver", LEAK, "--driver-param", "Mode=1", SAMPLE)
check("mode 1: released everything: exit 0 under --strict, no leak line",
      rc == 0 and "leak:" not in err and "EvtDriverUnload, mode 1" in err, "exit %d\n%s" % (rc, err))

rc, _, err = replay("--driver", LEAK, "--driver-param", "Mode=2", SAMPLE)
leaks = sorted((m.group(2), int(m.group(1))) for m in LEAK_LINE.finditer(err))
check("mode 2: DriverEntry fails, exit 2", rc == 2 and "DriverEntry failed" in err,
      "exit %d\n%s" % (rc, err))
check("mode 2: no EvtDriverUnload after a failed DriverEntry", "EvtDriverUnload" not in err, err)
check("mode 2: the key it left is reported, the control device is not",
      leaks == [("WDFKEY", 1), ("WDFSTRING", 1)] and "device object" not in err, err)

rc, _, err = replay("--strict", "--driver", LEAK, "--driver-param", "Mode=3", SAMPLE)
check("mode 3: without EvtDriverUnload the driver is not unloaded (and its objects are freed "
      "at exit, which LeakSanitizer would see otherwise)",
      rc == 0 and "no DriverUnload routine; not unloaded" in err and "leak:" not in err,
      "exit %d\n%s" % (rc, err))

sys.exit(R.finish())
