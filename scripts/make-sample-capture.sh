#!/usr/bin/env bash
# Records data/sample-http.pcap, the capture `openwfp replay` plays by
# default: real HTTP between curl and Python's http.server over IPv4 and
# IPv6, inside a network namespace of its own (loopback with a 1500-byte
# MTU, so segments have Ethernet sizes). Needs root, tcpdump, curl, python3.
#
#   sudo scripts/make-sample-capture.sh [output.pcap]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-data/sample-http.pcap}
ns=owfp-sample-$$
work=$(mktemp -d)
cleanup() {
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns"
ip netns exec "$ns" ip link set lo mtu 1500 up

# The site: a page and a longer text that mention the word the default
# example masks, some of them where segments split.
cat >"$work/index.html" <<'HTML'
<html><body><h1>openwfp sample</h1><p>The secret is out.</p></body></html>
HTML
for i in $(seq 1 400); do
    printf 'line %04d: nothing to see here, but this line keeps a secret %d\n' "$i" "$i"
done >"$work/notes.txt"

run() { ip netns exec "$ns" "$@"; }
(cd "$work" && run /usr/bin/python3 -m http.server 8080 --bind :: >/dev/null 2>&1 &)
(cd "$work" && run /usr/bin/python3 -m http.server 8023 --bind 127.0.0.1 >/dev/null 2>&1 &)
sleep 1
run tcpdump -i lo -w "$work/cap.pcap" -U -s 0 'tcp port 8080 or tcp port 8023' 2>/dev/null &
sleep 1

run curl -s -o /dev/null http://127.0.0.1:8080/
run curl -s -o /dev/null http://127.0.0.1:8080/notes.txt
run curl -s -o /dev/null 'http://[::1]:8080/'
run curl -s -o /dev/null -H 'X-Token: secret' 'http://[::1]:8080/notes.txt' 'http://[::1]:8080/'
run curl -s -o /dev/null -d 'user=alice&password=secret' 'http://[::1]:8080/login'
run curl -s -o /dev/null http://127.0.0.1:8023/
sleep 1
run pkill -INT tcpdump || true
sleep 1
cp "$work/cap.pcap" "$out"
echo "wrote $out ($(stat -c %s "$out") bytes)"
