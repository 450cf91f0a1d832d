#!/usr/bin/env python3
"""The example drivers on live traffic through `openwfp proxy` (their replay
tests cover captures): tls_sni_block against curl's real TLS ClientHello
(nginx with a throw-away certificate), stream_edit's out-of-band mode with
its DEFER back-pressure, and flow_monitor's per-flow byte counts against
the proxy's own.

usage: proxy_drivers_live.py OPENWFP TLS_SNI_BLOCK.so STREAM_EDIT.so FLOW_MONITOR.so
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_lib as L  # noqa: E402

OPENWFP, TLS_SNI, STREAM_EDIT, FLOW_MONITOR = sys.argv[1:5]


def curl(*args, timeout=60):
    p = subprocess.run(["curl", "-s", "-S", *args], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def tls_nginx(root):
    """nginx with TLS on a loopback port, certificate made here."""
    d = tempfile.mkdtemp(prefix="owfp-tls-")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=openwfp-test", "-keyout", d + "/key.pem", "-out",
                    d + "/cert.pem"], check=True, capture_output=True)
    port = L.free_port()
    conf = d + "/nginx.conf"
    with open(conf, "w") as f:
        f.write("""daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{ listen 127.0.0.1:{p} ssl; ssl_certificate {d}/cert.pem;
    ssl_certificate_key {d}/key.pem; root {r}; }} }}
""".format(d=d, p=port, r=root))
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", d], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if not L.wait_port("127.0.0.1", port):
        proc.kill()
        raise RuntimeError("TLS nginx did not start")
    return proc, port, d


def test_tls_sni_block(root, digest):
    nginx, nport, d = tls_nginx(root)
    port = L.free_port()
    proxy = L.Proxy(OPENWFP, ["--listen", "127.0.0.1:%d" % port, "--upstream",
                              "127.0.0.1:%d" % nport, "--strict", "--driver", TLS_SNI,
                              "--driver-param", "BlockedNames=blocked.test,.evil.test"])
    try:
        def get(name):
            return curl("-k", "--resolve", "%s:%d:127.0.0.1" % (name, port),
                        "https://%s:%d/big.bin" % (name, port))
        rc, body, err = get("allowed.test")
        L.check("tls_sni_block: an unlisted name downloads intact", rc == 0 and
                L.hashlib.sha256(body).hexdigest() == digest, "curl %d %s" % (rc, err))
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
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(d, ignore_errors=True)
    L.check("tls_sni_block: exit 0 under --strict", rc == 0, proxy.text()[-2000:])


def raw_get(port, path):
    """The whole response up to the server's FIN: an edit that changes the
    body's length makes Content-Length wrong, so HTTP clients would stop early."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
        chunks = []
        while True:
            c = s.recv(1 << 16)
            if not c:
                break
            chunks.append(c)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    return head, body


def test_stream_edit_oob(nginx, data):
    expected = data.replace(b"secret", b"[REDACTED]")
    for limit in (65536, 4096):
        port = L.free_port()
        proxy = L.Proxy(OPENWFP, ["--listen", "127.0.0.1:%d" % port, "--upstream",
                                  "127.0.0.1:%d" % nginx.port, "--strict", "--driver",
                                  STREAM_EDIT, "--driver-param", "Mode=oob", "--driver-param",
                                  "Find=secret", "--driver-param", "Replace=[REDACTED]",
                                  "--driver-param", "Direction=1",
                                  "--driver-param", "QueueLimit=%d" % limit])
        try:
            for n in range(3):
                head, body = raw_get(port, "/secrets.txt")
                L.check("stream_edit oob (QueueLimit %d) download %d: edited exactly"
                        % (limit, n), head.startswith(b"HTTP/1.1 200") and body == expected,
                        "%d bytes, want %d" % (len(body), len(expected)))
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
    port = L.free_port()
    proxy = L.Proxy(OPENWFP, ["--listen", "127.0.0.1:%d" % port, "--upstream",
                              "127.0.0.1:%d" % nginx.port, "--strict", "--driver", FLOW_MONITOR])
    try:
        for _ in range(4):
            curl("http://127.0.0.1:%d/secrets.txt" % port)
        curl("-T", os.path.join(nginx.root, "secrets.txt"),
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
