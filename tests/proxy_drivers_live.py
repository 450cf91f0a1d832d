#!/usr/bin/env python3
"""The example drivers on live traffic through `openwfp proxy` (their replay
tests cover captures): tls_sni_block against curl's real TLS ClientHello
(nginx with a throw-away certificate), stream_edit's out-of-band mode with
its DEFER back-pressure, and flow_monitor's per-flow byte counts against
the proxy's own.

usage: proxy_drivers_live.py OPENWFP TLS_SNI_BLOCK.so STREAM_EDIT.so FLOW_MONITOR.so
"""
import hashlib
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_lib as L  # noqa: E402

OPENWFP, TLS_SNI, STREAM_EDIT, FLOW_MONITOR = sys.argv[1:5]


def test_tls_sni_block(root, digest):
    nginx = L.Nginx(root, tls=True)
    try:
        proxy, port = L.start(OPENWFP, nginx.port, "--strict", "--driver", TLS_SNI,
                              "--driver-param", "BlockedNames=blocked.test,.evil.test")
        try:
            def get(name):
                return L.curl("-k", "--resolve", "%s:%d:127.0.0.1" % (name, port),
                              "https://%s:%d/big.bin" % (name, port))
            rc, body, err = get("allowed.test")
            L.check("tls_sni_block: an unlisted name downloads intact", rc == 0 and
                    hashlib.sha256(body).hexdigest() == digest, "curl %d %s" % (rc, err))
            s = proxy.stats()
            L.check("tls_sni_block: the judged connection left the engine (splice)",
                    s.get("offloaded_splice") == 1 and s.get("bytes_offloaded_receive", 0) > 0, s)
            for name in ("blocked.test", "www.evil.test"):
                rc, body, err = get(name)
                L.check("tls_sni_block: %s gets no response (curl %d)" % (name, rc),
                        rc != 0 and not body, err)
            s = proxy.stats()
            L.check("tls_sni_block: both listed names dropped", s.get("dropped") == 2, s)
            L.check("tls_sni_block: no bytes reached a listed server",
                    s.get("bytes_permitted_send", -1) < s.get("bytes_read_send", 0), s)
        finally:
            rc = proxy.stop()
    finally:
        nginx.stop()
    L.check("tls_sni_block: exit 0 under --strict", rc == 0, proxy.text()[-2000:])


def test_stream_edit_oob(nginx, data):
    expected = data.replace(b"secret", b"[REDACTED]")
    for limit in (65536, 4096):
        proxy, port = L.start(OPENWFP, nginx.port, "--strict", "--driver", STREAM_EDIT,
                              "--driver-param", "Mode=oob", "--driver-param", "Find=secret",
                              "--driver-param", "Replace=[REDACTED]",
                              "--driver-param", "Direction=1",
                              "--driver-param", "QueueLimit=%d" % limit)
        try:
            for n in range(3):
                # To the server's FIN: the edit makes Content-Length wrong.
                head, body, error = L.raw_get(port, "/secrets.txt", 30)
                L.check("stream_edit oob (QueueLimit %d) download %d: edited exactly"
                        % (limit, n), error is None and head.startswith(b"HTTP/1.1 200") and
                        body == expected,
                        "%s, %d bytes, want %d" % (error, len(body), len(expected)))
            s = proxy.stats()
            L.check("stream_edit oob (QueueLimit %d): every byte re-injected" % limit,
                    s.get("bytes_injected_receive", 0) > 3 * len(expected) and
                    s.get("bytes_permitted_receive", 1) == 0, s)
            if limit == 4096:
                L.check("S19 stream_edit oob: a long queue defers the receive direction",
                        s.get("defers", 0) > 0, s)
        finally:
            rc = proxy.stop()
        L.check("stream_edit oob (QueueLimit %d): exit 0 under --strict" % limit, rc == 0,
                proxy.text()[-2000:])


def test_flow_monitor(nginx):
    proxy, port = L.start(OPENWFP, nginx.port, "--strict", "--driver", FLOW_MONITOR)
    try:
        for _ in range(4):
            L.curl("http://127.0.0.1:%d/secrets.txt" % port)
        L.curl("-T", os.path.join(nginx.root, "secrets.txt"),
               "http://127.0.0.1:%d/upload/copy.txt" % port)
        s = proxy.stats()
    finally:
        rc = proxy.stop()
    m = re.search(r"FlowMonitor: unloaded: (\d+) flows, (\d+) bytes sent, (\d+) bytes received",
                  proxy.text())
    L.check("flow_monitor: DriverUnload reported", m is not None and rc == 0, proxy.text()[-2000:])
    if m:
        L.check("flow_monitor: one flowDeleteFn per connection (5)", int(m.group(1)) == 5, m.group(0))
        L.check("flow_monitor: its byte counts are the proxy's",
                (int(m.group(2)), int(m.group(3))) == (s.get("bytes_read_send"),
                                                       s.get("bytes_read_receive")),
                "%s vs %s" % (m.group(0), s))


def main():
    root = tempfile.mkdtemp(prefix="owfp-live-")
    digest = L.make_file(os.path.join(root, "big.bin"), 4 << 20)
    chunk = b"".join(b"line %06d with a secret inside, " % i for i in range(1, 60000))
    with open(os.path.join(root, "secrets.txt"), "wb") as f:
        f.write(chunk)
    nginx = L.Nginx(root)
    try:
        test_tls_sni_block(root, digest)
        test_stream_edit_oob(nginx, chunk)
        test_flow_monitor(nginx)
    finally:
        nginx.stop()
        shutil.rmtree(root, ignore_errors=True)
    return L.finish()


if __name__ == "__main__":
    sys.exit(main())
