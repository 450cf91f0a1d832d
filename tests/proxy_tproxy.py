#!/usr/bin/env python3
"""`openwfp proxy --tproxy` on a gateway, in three network namespaces:

    client  c0 10.77.1.2/24  fd00:77:1::2/64     default via the gateway
      |
    gateway g0 10.77.1.1/24  fd00:77:1::1/64     the proxy, examples/tproxy.nft,
            g1 10.77.2.1/24  fd00:77:2::1/64     fwmark 1 -> table 100 (local)
      |
    server  s0 10.77.2.2/24  fd00:77:2::2/64     default via the gateway

The client connects to the server's address (never the proxy's); the
gateway's nftables ruleset hands the connection to the proxy, which connects
to the original destination. Checked for IPv4 and IPv6: the transfer is
intact (sha256), the proxy's statistics count the connection, and the server
sees the connection from the gateway's address, or with --spoof-source from
the client's own. `--example block-port=80` resets a transparent connection
to port 80 while port 8080 still passes. docs/proxy-tproxy.md is the recipe
this test follows.

usage: proxy_tproxy.py OPENWFP EXAMPLES/tproxy.nft
Skipped (exit 77) when not root. Namespaces carry the pid in their names, and
are deleted (with their links, routes and nftables tables) however it ends.
"""
import hashlib
import os
import re
import signal
import socket
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import proxy_lib as pl  # noqa: E402
from proxy_lib import blob, check, stats  # noqa: E402

OPENWFP = os.path.abspath(sys.argv[1])
RULESET = os.path.abspath(sys.argv[2])
PORT = 15001           # the proxy's port inside the gateway namespace
SIZE = 4 << 20         # bytes per transfer

ADDR = {
    4: {"client": "10.77.1.2", "gw_client": "10.77.1.1", "gw_server": "10.77.2.1",
        "server": "10.77.2.2", "plen": 24, "family": socket.AF_INET},
    6: {"client": "fd00:77:1::2", "gw_client": "fd00:77:1::1", "gw_server": "fd00:77:2::1",
        "server": "fd00:77:2::2", "plen": 64, "family": socket.AF_INET6},
}


class Server:
    """A python server in the server namespace, on port 80 and 8080 of both
    families: a request line "SEND <n> <seed>\\n" is answered with n bytes,
    then the connection is closed. Each connection's peer address is
    recorded."""

    def __init__(self, ns):
        self.peers = []
        self.socks = []
        self.lock = threading.Lock()
        with ns.entered():
            for fam, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
                for port in (80, 8080):
                    s = socket.socket(fam, socket.SOCK_STREAM)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if fam == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    s.bind((host, port))
                    s.listen(64)
                    self.socks.append(s)
        self.threads = [threading.Thread(target=self._accept, args=(s,), daemon=True)
                        for s in self.socks]
        for t in self.threads:
            t.start()

    def _accept(self, ls):
        while True:
            try:
                c, peer = ls.accept()
            except OSError:
                return
            with self.lock:
                self.peers.append((ls.getsockname()[1], peer[0]))
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            line = b""
            while not line.endswith(b"\n"):
                b = c.recv(256)
                if not b:
                    return
                line += b
            _, n, seed = line.decode().split()
            c.sendall(blob(int(n), seed))
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        for t in self.threads:
            t.join(5)


def fetch(ns, v, port, seed):
    """From the client namespace: connect to the server's address, ask for
    SIZE bytes. Returns (data, outcome, peer address the client saw)."""
    a = ADDR[v]
    with ns.entered():
        s = socket.socket(a["family"], socket.SOCK_STREAM)
    peer = None
    chunks = []
    try:
        s.settimeout(10)
        s.connect((a["server"], port))
        peer = s.getpeername()[0]
        s.sendall(b"SEND %d %s\n" % (SIZE, seed.encode()))
        while True:
            b = s.recv(1 << 20)
            if not b:
                return b"".join(chunks), "eof", peer
            chunks.append(b)
    except ConnectionResetError:
        return b"".join(chunks), "reset", peer
    except ConnectionRefusedError:
        return b"", "refused", peer
    except socket.timeout:
        return b"".join(chunks), "timeout", peer
    finally:
        s.close()


def ruleset_text(port):
    """examples/tproxy.nft with the port of its define replaced."""
    with open(RULESET) as f:
        text = f.read()
    new, n = re.subn(r"(?m)^define PROXY_PORT = \d+$", "define PROXY_PORT = %d" % port, text)
    check("tproxy.nft has a 'define PROXY_PORT = N' line", n == 1)
    return new


def setup(tag):
    """The three namespaces, their links, addresses, routes, the gateway's
    ruleset and policy routing (the commands docs/proxy-tproxy.md lists)."""
    cl = pl.NetNs(tag + "-c")
    made = [cl]
    try:
        gw = pl.NetNs(tag + "-g")
        made.append(gw)
        sv = pl.NetNs(tag + "-s")
        made.append(sv)
        cl.ip("link", "add", "c0", "type", "veth", "peer", "name", "g0", "netns", gw.name)
        gw.ip("link", "add", "g1", "type", "veth", "peer", "name", "s0", "netns", sv.name)
        for v in (4, 6):
            a = ADDR[v]
            fam = ["-6"] if v == 6 else []
            nodad = ["nodad"] if v == 6 else []
            plen = "/%d" % a["plen"]
            cl.ip(*fam, "addr", "add", a["client"] + plen, "dev", "c0", *nodad)
            gw.ip(*fam, "addr", "add", a["gw_client"] + plen, "dev", "g0", *nodad)
            gw.ip(*fam, "addr", "add", a["gw_server"] + plen, "dev", "g1", *nodad)
            sv.ip(*fam, "addr", "add", a["server"] + plen, "dev", "s0", *nodad)
        for ns, dev in ((cl, "c0"), (gw, "g0"), (gw, "g1"), (sv, "s0")):
            ns.ip("link", "set", dev, "up")
        # Client and server reach each other only through the gateway (the
        # server's route back to the client is what --spoof-source needs).
        cl.ip("route", "add", "default", "via", ADDR[4]["gw_client"])
        cl.ip("-6", "route", "add", "default", "via", ADDR[6]["gw_client"])
        sv.ip("route", "add", "default", "via", ADDR[4]["gw_server"])
        sv.ip("-6", "route", "add", "default", "via", ADDR[6]["gw_server"])
        # The gateway: forwarding, the ruleset, policy routing.
        gw.sysctl("net.ipv4.ip_forward", 1)
        gw.sysctl("net.ipv6.conf.all.forwarding", 1)
        gw.run("nft", "-f", "-", input=ruleset_text(PORT))
        gw.ip("rule", "add", "fwmark", "1", "lookup", "100")
        gw.ip("route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", "100")
        gw.ip("-6", "rule", "add", "fwmark", "1", "lookup", "100")
        gw.ip("-6", "route", "add", "local", "::/0", "dev", "lo", "table", "100")
        return cl, gw, sv, made
    except BaseException:
        for ns in reversed(made):
            ns.delete()
        raise


def start_proxy(gw, args):
    return pl.Proxy(OPENWFP, ["--tproxy", "127.0.0.1:%d" % PORT, "--tproxy", "[::1]:%d" % PORT,
                              "--log-level", "debug", *args], preexec_fn=gw.preexec)


def run_relay(cl, gw, sv, server, spoof):
    mode = "spoof-source" if spoof else "gateway source"
    p = start_proxy(gw, ["--spoof-source"] if spoof else [])
    try:
        for v in (4, 6):
            a = ADDR[v]
            name = "IPv%d, %s" % (v, mode)
            s0 = stats(p)
            npeers = len(server.peers)
            seed = "tproxy-%d-%s" % (v, spoof)
            data, outcome, peer = fetch(cl, v, 80, seed)
            check(name + ": the client talked to the server's address %s" % a["server"],
                  peer is not None and socket.inet_pton(a["family"], peer) ==
                  socket.inet_pton(a["family"], a["server"]), peer)
            check(name + ": transfer intact (%d bytes, sha256)" % len(data),
                  outcome == "eof" and hashlib.sha256(data).digest() ==
                  hashlib.sha256(blob(SIZE, seed)).digest(), "%s, %d bytes" % (outcome, len(data)))
            st = p.wait_closed(10, 0.05)
            moved = (st.get("bytes_read_receive", 0) + st.get("bytes_offloaded_receive", 0)
                     - s0.get("bytes_read_receive", 0) - s0.get("bytes_offloaded_receive", 0))
            check(name + ": the proxy accepted it (+1) and relayed the bytes (%d)" % moved,
                  st.get("connections_accepted", 0) - s0.get("connections_accepted", 0) == 1
                  and moved == SIZE, st)
            check(name + ": closed cleanly (connections_open 0, no resets)",
                  st.get("connections_open") == 0 and st.get("peer_resets") == s0.get("peer_resets")
                  and st.get("upstream_failures") == s0.get("upstream_failures"), st)
            seen = [addr for port, addr in server.peers[npeers:] if port == 80]
            want = a["client"] if spoof else a["gw_server"]
            check(name + ": the server saw the connection from %s" % want,
                  len(seen) == 1 and socket.inet_pton(a["family"], seen[0]) ==
                  socket.inet_pton(a["family"], want), seen)
            # The proxy's own record: client and original destination.
            fmt = "%s:%d" if v == 4 else "[%s]:%d"
            dest = fmt % (a["server"], 80)
            opened = [l for l in p.text().splitlines() if "event=open" in l and dest in l]
            check(name + ": its log has the flow to the original destination %s" % dest,
                  any("client=" + (fmt % (a["client"], 0))[:-1] in l for l in opened),
                  "\n".join(opened[-3:]) or p.text()[-1500:])
    finally:
        pl.stop_checked("tproxy (%s)" % mode, p)


def run_local(cl, gw):
    """Connections to the gateway's own address are not proxied (the
    ruleset's `fib daddr type local accept`)."""
    p = start_proxy(gw, [])
    ls = None
    try:
        with gw.entered():
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((ADDR[4]["gw_client"], 8081))
            ls.listen(4)
        ls.settimeout(10)
        s0 = stats(p)
        with cl.entered():
            c = socket.socket()
        with c:
            c.settimeout(10)
            c.connect((ADDR[4]["gw_client"], 8081))
            a, peer = ls.accept()
            with a:
                a.sendall(b"local\n")
            got = c.recv(100)
        st = stats(p)
        name = "a connection to the gateway itself"
        check(name + ": reaches the gateway's own socket from the client's address",
              got == b"local\n" and peer[0] == ADDR[4]["client"], (got, peer))
        check(name + ": is not proxied", st.get("connections_accepted") == s0.get("connections_accepted"),
              st)
    finally:
        if ls:
            ls.close()
        pl.stop_checked("tproxy (gateway-local)", p)


def run_block(cl, gw, sv, server):
    p = start_proxy(gw, ["--example", "block-port=80"])
    try:
        for v in (4, 6):
            name = "IPv%d, block-port=80" % v
            s0 = stats(p)
            data, outcome, _ = fetch(cl, v, 80, "blocked")
            check(name + ": port 80 is reset", outcome == "reset" and not data,
                  "%s, %d bytes" % (outcome, len(data)))
            st = p.wait_closed(10, 0.05)
            check(name + ": ale_blocked +1", st.get("ale_blocked", 0) - s0.get("ale_blocked", 0) == 1,
                  st)
            data, outcome, _ = fetch(cl, v, 8080, "open-%d" % v)
            check(name + ": port 8080 still passes",
                  outcome == "eof" and data == blob(SIZE, "open-%d" % v),
                  "%s, %d bytes" % (outcome, len(data)))
            st = p.wait_closed(10, 0.05)
            check(name + ": ... through the proxy (+2 accepted, 1 blocked)",
                  st.get("connections_accepted", 0) - s0.get("connections_accepted", 0) == 2
                  and st.get("ale_blocked", 0) - s0.get("ale_blocked", 0) == 1, st)
    finally:
        pl.stop_checked("tproxy (block-port)", p)


def main():
    if os.geteuid() != 0:
        print("SKIP: network namespaces and TPROXY need root")
        return 77
    tag = "owfp-t%d" % os.getpid()
    t0 = time.time()
    cl = gw = sv = None
    made = []
    server = None
    try:
        cl, gw, sv, made = setup(tag)
        rules = gw.run("nft", "list", "table", "inet", "openwfp_tproxy")
        check("the gateway's ruleset is loaded with port %d" % PORT,
              "tproxy ip to 127.0.0.1:%d" % PORT in rules and "tproxy ip6 to [::1]:%d" % PORT in rules,
              rules)
        server = Server(sv)
        # Without the proxy the TPROXY rule finds no listener: the ruleset's
        # forward chain refuses instead of letting the connection bypass it.
        for v in (4, 6):
            data, outcome, _ = fetch(cl, v, 80, "no-proxy")
            check("IPv%d without the proxy: refused, not routed around it (%s)" % (v, outcome),
                  outcome == "refused", outcome)
        for fn, args in ((run_relay, (cl, gw, sv, server, False)),
                         (run_relay, (cl, gw, sv, server, True)),
                         (run_local, (cl, gw)),
                         (run_block, (cl, gw, sv, server))):
            try:
                fn(*args)
            except Exception:
                check("%s%s ran to the end" % (fn.__name__, args[4:]), False, traceback.format_exc())
    finally:
        if server:
            server.close()
        if gw is not None:
            gw.run("nft", "delete", "table", "inet", "openwfp_tproxy", check=False)
        for ns in reversed(made):
            ns.delete()
    left = [n for n in os.listdir("/run/netns") if n.startswith(tag)] if os.path.isdir("/run/netns") else []
    check("namespaces deleted", not left, left)
    print("total %.1f s" % (time.time() - t0))
    return pl.finish()


if __name__ == "__main__":
    # A timeout (SIGTERM from meson) still runs the clean-up in the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
