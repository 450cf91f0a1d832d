#!/usr/bin/env bash
# The proxy benchmark: `openwfp proxy` in four modes against no proxy,
# HAProxy (mode tcp, with and without splice), socat and two minimal relays
# (bench/relay_ref.c), under iperf3 bulk transfers and wrk HTTP load, all on
# loopback. Not part of bench/run.sh: with the defaults it takes about 25
# minutes. Results and reading: docs/BENCHMARKS.md, section 7.
#
#   bench/proxy.sh [--dir DIR] [--runs K] [--duration S] [--wrk-duration S]
#                  [--wrk-conns N] [--rows LIST] [--loads LIST] [--perf]
#
#   --dir DIR         where logs and results go (default build-pbench/proxy)
#   --runs K          rounds (default 3); a round runs every row under every load
#   --duration S      seconds of each iperf3 run (default 10)
#   --wrk-duration S  seconds of each wrk run (default 10)
#   --wrk-conns N     wrk connections, over 2 threads (default 50)
#   --rows LIST       comma-separated, default all: direct, haproxy,
#                     haproxy-splice, socat, owfp (no callout: splice offload),
#                     owfp-noop (--example noop: every byte inspected),
#                     owfp-allow (content_block AllowAfter=1: offload after
#                     ALLOW_CONNECTION), owfp-none (--offload none: user-space
#                     relay through the engine), ref-copy, ref-splice,
#                     ref-splice-1m (bench/relay_ref: 64 KiB buffer, 64 KiB
#                     and 1 MiB pipes); also, not by default: ref-copy-256k
#   --loads LIST      comma-separated, default all: bulk1 and bulk4 (iperf3, 1
#                     and 4 streams), keepalive and close (wrk, 1 KiB file
#                     from nginx; close sends `Connection: close`)
#   --perf            also count each proxy's system calls and context switches
#                     during its runs (perf stat on syscall tracepoints; adds
#                     some overhead, so not for the main table) and print them
#                     per GB (bulk) or per request (wrk)
#
# Every proxy is started for one run and stopped after it; iperf3 -s and
# nginx run for the whole benchmark. Within a round each load runs every row
# once, in an order rotated by one each round, so slow phases of the machine
# spread over all rows. Nothing is pinned: proxy, load generator and server
# share the machine's CPUs. CPU = user + sys of the proxy process and its
# children (/proc/PID/stat) over the run. Every process started here is
# stopped on exit; nothing is started as a system service; all traffic is on
# 127.0.0.1, on ports below the ephemeral range that were free at the start.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=build-pbench/proxy runs=3 dur=10 wdur=10 wconns=50 perf=0
allrows=direct,haproxy,haproxy-splice,socat,owfp,owfp-noop,owfp-allow,owfp-none,ref-copy,ref-splice,ref-splice-1m
rowlist=$allrows loadlist=bulk1,bulk4,keepalive,close
allrows+=,ref-copy-256k
while [ $# -gt 0 ]; do
    case $1 in
    --dir) dir=$2; shift ;;
    --runs) runs=$2; shift ;;
    --duration) dur=$2; shift ;;
    --wrk-duration) wdur=$2; shift ;;
    --wrk-conns) wconns=$2; shift ;;
    --rows) rowlist=$2; shift ;;
    --loads) loadlist=$2; shift ;;
    --perf) perf=1 ;;
    -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
    *) echo "bench/proxy.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
IFS=, read -r -a rows <<<"$rowlist"
IFS=, read -r -a loads <<<"$loadlist"
for r in "${rows[@]}"; do
    [[ ",$allrows," == *",$r,"* ]] || { echo "bench/proxy.sh: unknown row $r" >&2; exit 2; }
done
for l in "${loads[@]}"; do
    [[ ",bulk1,bulk4,keepalive,close," == *",$l,"* ]] ||
        { echo "bench/proxy.sh: unknown load $l" >&2; exit 2; }
done

. scripts/deps.sh
owfp_ensure_packages "${OWFP_BUILD_PACKAGES[@]}" "${OWFP_PROXY_BENCH_PACKAGES[@]}"
if [ $perf = 1 ]; then owfp_ensure_packages linux-perf; fi

b=build-pbench
owfp_release_build $b
owfp=$b/openwfp ref=$b/bench/relay_ref cb=$b/drivers/content_block.so
for f in $owfp $ref $cb; do
    [ -e "$f" ] || { echo "bench/proxy.sh: $f was not built" >&2; exit 1; }
done

mkdir -p "$dir/raw"
res=$dir/proxy-results.txt
log=$dir/runs.tsv
tmp=$(mktemp -d /tmp/owfp-pbench.XXXXXX)
chmod 755 "$tmp" # nginx's worker runs as nobody

# ---- processes: each started in its own process group, all stopped on exit
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# spawn LOGFILE CMD...: starts CMD in a new process group; its pid in $spawned.
spawn() {
    local out=$1; shift
    setsid "$@" </dev/null >"$out" 2>&1 &
    spawned=$!
    pids+=("$spawned")
}
# stop PID: SIGTERM to its group, SIGKILL after 5 s.
stop() {
    local p=$1 i
    kill -TERM -- "-$p" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    local keep=()
    for i in "${pids[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
    pids=("${keep[@]}")
}
listening() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }
# wait_port PORT PID: until PORT listens (10 s at most, and while PID lives).
wait_port() {
    local i
    for ((i = 0; i < 100; i++)); do
        listening "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# ticks PID: CPU ticks (user + sys, with waited-for children) of PID and of
# its live descendants.
ticks() {
    local p=$1 t c
    t=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }')
    t=${t:-0}
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do
        t=$((t + $(ticks "$c")))
    done
    echo "$t"
}
hz=$(getconf CLK_TCK)

# ---- ports: a block of free ones below the ephemeral range
lo_eph=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range)
nports=$((2 + 12))
for try in $(seq 1 50); do
    base=$((20000 + RANDOM % (lo_eph - 20000 - nports)))
    ok=1
    for ((p = base; p < base + nports; p++)); do
        if listening $p; then ok=0; break; fi
    done
    [ $ok = 1 ] && break
done
[ $ok = 1 ] || { echo "bench/proxy.sh: no free ports found" >&2; exit 1; }
iport=$base nport=$((base + 1))
rowport() {
    local i=0 r
    for r in ${allrows//,/ }; do
        [ "$r" = "$1" ] && { echo $((base + 2 + i)); return; }
        i=$((i + 1))
    done
}

# ---- servers: iperf3 and nginx with a 1 KiB file, for the whole run
mkdir -p "$tmp/www"
head -c 1024 /dev/urandom >"$tmp/www/1k.bin"
chmod -R a+rX "$tmp/www"
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path $tmp/ngx-body;
    proxy_temp_path $tmp/ngx-proxy;
    fastcgi_temp_path $tmp/ngx-fastcgi;
    uwsgi_temp_path $tmp/ngx-uwsgi;
    scgi_temp_path $tmp/ngx-scgi;
    server {
        listen 127.0.0.1:$nport backlog=4096;
        root $tmp/www;
    }
}
EOF
start_iperf() {
    spawn "$dir/raw/iperf3-server.log" iperf3 -s -B 127.0.0.1 -p $iport
    iperf_pid=$spawned
    wait_port $iport $iperf_pid || { echo "bench/proxy.sh: iperf3 -s did not start" >&2; exit 1; }
}
need_iperf=0 need_nginx=0
for l in "${loads[@]}"; do
    case $l in bulk*) need_iperf=1 ;; *) need_nginx=1 ;; esac
done
if [ $need_iperf = 1 ]; then start_iperf; fi
if [ $need_nginx = 1 ]; then
    spawn "$dir/raw/nginx.log" nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log"
    nginx_pid=$spawned
    wait_port $nport $nginx_pid || { cat "$tmp/nginx-error.log" >&2; exit 1; }
fi

# haproxy_cfg NAME LISTEN UPSTREAM SPLICE: writes $tmp/NAME.cfg.
haproxy_cfg() {
    {
        echo "global"
        echo "    nbthread 2"
        echo "    maxconn 4096"
        [ "$4" = 1 ] || echo "    nosplice"
        echo "defaults"
        echo "    mode tcp"
        echo "    timeout connect 5s"
        echo "    timeout client 60s"
        echo "    timeout server 60s"
        if [ "$4" = 1 ]; then
            echo "    option splice-request"
            echo "    option splice-response"
            echo "    no option splice-auto"
        fi
        echo "frontend fe"
        echo "    bind 127.0.0.1:$2"
        echo "    default_backend be"
        echo "backend be"
        echo "    server s1 127.0.0.1:$3"
    } >"$tmp/$1.cfg"
}
pattern='owfp-bench-pattern-never-sent-7f3a91c2'
# row_cmd ROW LISTEN UPSTREAM: the command line of ROW, in $cmd (an array).
row_cmd() {
    local px=("$owfp" proxy --listen "127.0.0.1:$2" --upstream "127.0.0.1:$3" --workers 2 --grace 1)
    case $1 in
    haproxy) haproxy_cfg haproxy "$2" "$3" 0; cmd=(haproxy -f "$tmp/haproxy.cfg" -db) ;;
    haproxy-splice) haproxy_cfg haproxy-splice "$2" "$3" 1
                    cmd=(haproxy -f "$tmp/haproxy-splice.cfg" -db) ;;
    socat) cmd=(socat "TCP-LISTEN:$2,bind=127.0.0.1,fork,reuseaddr,backlog=4096" "TCP:127.0.0.1:$3") ;;
    owfp) cmd=("${px[@]}") ;;
    owfp-noop) cmd=("${px[@]}" --example noop) ;;
    owfp-allow) cmd=("${px[@]}" --driver "$cb" --driver-param "Pattern=$pattern"
                     --driver-param AllowAfter=1) ;;
    owfp-none) cmd=("${px[@]}" --offload none) ;;
    ref-copy) cmd=("$ref" --listen "$2" --upstream "$3" --mode copy) ;;
    ref-splice) cmd=("$ref" --listen "$2" --upstream "$3" --mode splice) ;;
    ref-splice-1m) cmd=("$ref" --listen "$2" --upstream "$3" --mode splice --pipe 1048576 --buf 1048576) ;;
    ref-copy-256k) cmd=("$ref" --listen "$2" --upstream "$3" --mode copy --buf 262144) ;;
    esac
}
for cfg in 0 1; do # fail early on a config HAProxy refuses
    haproxy_cfg check 1 2 $cfg
    haproxy -c -q -f "$tmp/check.cfg" || { echo "bench/proxy.sh: haproxy -c failed" >&2; exit 1; }
done

# The system calls a relay makes, counted with --perf (each read- or
# write-side call of the relays measured here is one of these).
sysc=(splice recvfrom recvmsg read readv sendto sendmsg write writev epoll_wait)
pevents=context-switches,task-clock
for s in "${sysc[@]}"; do pevents+=,syscalls:sys_enter_$s; done

# run LOAD ROW ROUND: one run, appended to $log as: load row round value p99_ms
# cpu_s count errors load1 engine_bytes offloaded_bytes, where value is
# Gbit/s (bulk) or requests/s (wrk) and count is bytes received or requests.
: >"$log"
run() {
    local load=$1 row=$2 round=$3 up port pid="" t0=0 t1=0 base_name
    base_name=$dir/raw/$load-$row-$round
    case $load in bulk*) up=$iport ;; *) up=$nport ;; esac
    if [ "$row" = direct ]; then
        port=$up
    else
        port=$(rowport "$row")
        row_cmd "$row" "$port" "$up"
        spawn "$base_name.log" "${cmd[@]}"
        pid=$spawned
        if ! wait_port "$port" "$pid"; then
            echo "bench/proxy.sh: $row did not start; see $base_name.log" >&2
            stop "$pid"
            return
        fi
        t0=$(ticks "$pid")
        if [ $perf = 1 ]; then
            perf stat -x, -e "$pevents" -p "$pid" -o "$base_name.perf" 2>/dev/null &
            perf_pid=$!
            sleep 0.2 # attached before the load starts
        fi
    fi
    local load1 value=- p99=- count=- errors=0 ok=1
    load1=$(cut -d' ' -f1 /proc/loadavg)
    case $load in
    bulk1|bulk4)
        timeout $((dur + 30)) iperf3 -c 127.0.0.1 -p "$port" -t "$dur" -P "${load#bulk}" -J \
            >"$base_name.out" 2>&1 || ok=0
        read -r value count < <(jq -r 'if .error then "- -" else
            "\(.end.sum_received.bits_per_second / 1e9) \(.end.sum_received.bytes)" end' \
            "$base_name.out" 2>/dev/null || echo "- -")
        ;;
    keepalive|close)
        local hdr=()
        [ "$load" = close ] && hdr=(-H 'Connection: close')
        timeout $((wdur + 30)) wrk -t 2 -c "$wconns" -d "${wdur}s" --latency "${hdr[@]}" \
            "http://127.0.0.1:$port/1k.bin" >"$base_name.out" 2>&1 || ok=0
        read -r value p99 count errors < <(awk '
            /^ +99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                       p = v * (u == "us" ? 0.001 : u == "s" ? 1000 : u == "m" ? 60000 : 1) }
            / requests in / { n = $1 }
            /^ +Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
            /^ +Non-2xx/ { e += $NF }
            /^Requests\/sec:/ { r = $2 }
            END { if (r == "") print "- - - 0"; else printf "%s %s %s %d\n", r, p, n, e }' \
            "$base_name.out")
        ;;
    esac
    [ "$value" = - ] && ok=0
    local cpu=- eng=- off=-
    if [ -n "$pid" ]; then
        sleep 0.5 # socat's children exit after the last connection closes
        t1=$(ticks "$pid")
        if [ $perf = 1 ]; then
            kill -INT "$perf_pid" 2>/dev/null || true
            wait "$perf_pid" 2>/dev/null || true
        fi
        cpu=$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
        stop "$pid"
        if [[ $row == owfp* ]]; then
            read -r eng off < <(awk '/event=stats/ { for (i = 1; i <= NF; i++) { split($i, kv, "=")
                    if (kv[1] ~ /^bytes_read_/) e += kv[2]; if (kv[1] ~ /^bytes_offloaded_/) o += kv[2] } }
                END { print e + 0, o + 0 }' "$base_name.log")
        fi
    fi
    if [ $ok = 0 ]; then
        echo "bench/proxy.sh: $load through $row, round $round failed; see $base_name.out" >&2
        if [ "$load" != keepalive ] && [ "$load" != close ] && ! kill -0 "$iperf_pid" 2>/dev/null; then
            start_iperf
        fi
        return
    fi
    echo "$load $row $round $value $p99 $cpu $count $errors $load1 $eng $off" >>"$log"
    printf '  %-9s %-14s round %d: %s%s, load %s\n' "$load" "$row" "$round" "$value" \
        "$([ "$p99" = - ] || echo " req/s, p99 $p99 ms")$([ "$cpu" = - ] || echo ", CPU $cpu s")" \
        "$load1" >&2
    sleep 1 # let the last connections' sockets go
}

# summarise LOAD ROW FIELD: "median min max" of FIELD over ROW's runs.
summarise() {
    awk -v l="$1" -v n="$2" -v f="$3" '$1 == l && $2 == n && $f != "-" { print $f }' "$log" |
        sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print "- - -"; exit }
            m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m, v[1], v[NR] }'
}
med() { summarise "$1" "$2" "$3" | cut -d' ' -f1; }
# sround LOAD A B: median over rounds of A's value / B's value in the same round.
sround() {
    awk -v l="$1" -v a="$2" -v b="$3" '$1 == l && $2 == a { x[$3] = $4 } $1 == l && $2 == b { y[$3] = $4 }
        END { for (r in x) if (y[r] > 0) print x[r] / y[r] }' "$log" | sort -g | awk '
        { v[NR] = $1 } END { if (!NR) { print "-"; exit }
          printf "%.2f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f\n", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r == "-" ? "n/a" : r >= t ? "met" : "MISSED") }'; }

{
echo "# openwfp proxy benchmark: $(git describe --always --dirty 2>/dev/null || echo 'no git')," \
     "buildtype=release, $(cc --version | head -n 1)"
echo "# machine: $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1), nproc $(nproc)," \
     "kernel $(uname -r), $(free -g | awk '/^Mem/ { print $2 }') GiB RAM;" \
     "$(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# tools: $(for p in iperf3 wrk haproxy socat nginx; do
                 printf '%s %s  ' $p "$(dpkg-query -W -f '${Version}' $p 2>/dev/null || echo '?')"; done)"
echo "# $runs rounds; iperf3 ${dur} s per run (receiver Gbit/s); wrk -t 2 -c $wconns -d ${wdur}s --latency," \
     "1 KiB file from nginx (1 worker); ports $base-$((base + nports - 1)) on 127.0.0.1;" \
     "fs.pipe-max-size $(cat /proc/sys/fs/pipe-max-size)"
for s in $(pgrep -x nginx; pgrep -x haproxy); do
    in=0
    for p in "${pids[@]}"; do [ "$(ps -o pgid= -p "$s" | tr -d ' ')" = "$p" ] && in=1; done
    [ $in = 1 ] || echo "# note: an nginx or haproxy not started here is running (pid $s: someone else's test?)"
done
} | tee "$res"

for ((r = 0; r < runs; r++)); do
    for load in "${loads[@]}"; do
        for ((j = 0; j < ${#rows[@]}; j++)); do
            k=$(( (j + r) % ${#rows[@]} ))
            run "$load" "${rows[$k]}" "$r"
        done
    done
done

{
echo "# finished $(date -u '+%Y-%m-%d %H:%M UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg);" \
     "1-minute load average at the runs' starts: median $(awk '{ print $9 }' "$log" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%s [%s..%s]", v[int((NR + 1) / 2)], v[1], v[NR] }')"
label() {
    case $1 in
    direct) echo "direct (no proxy)" ;; haproxy) echo "HAProxy tcp" ;;
    haproxy-splice) echo "HAProxy tcp+splice" ;; socat) echo socat ;;
    owfp) echo "openwfp, no callout" ;; owfp-noop) echo "openwfp, noop" ;;
    owfp-allow) echo "openwfp, allow" ;; owfp-none) echo "openwfp, offload none" ;;
    ref-copy) echo "ref read/write" ;; ref-splice) echo "ref splice" ;;
    ref-splice-1m) echo "ref splice, 1 MiB pipe" ;; ref-copy-256k) echo "ref read/write, 256 KiB" ;;
    esac
}
for load in "${loads[@]}"; do
    echo
    case $load in
    bulk*)
        echo "# $load: iperf3 -P ${load#bulk}, Gbit/s received, median [min..max] of $runs;" \
             "x = ratio of medians (same-round median in parentheses); CPU = proxy user+sys s per GB moved"
        printf '%-22s %24s %13s %13s %13s %9s %8s\n' row "Gbit/s" "x direct" "x haproxy" "x hap-splice" \
            "CPU s/GB" "engine%"
        d=$(med $load direct 4) h=$(med $load haproxy 4) hs=$(med $load haproxy-splice 4)
        for row in "${rows[@]}"; do
            read -r m lo hi <<<"$(summarise $load $row 4)"
            [ "$m" = - ] && continue
            cpugb=$(awk -v l=$load -v n=$row '$1 == l && $2 == n && $6 != "-" { print $6 / ($7 / 1e9) }' \
                    "$log" | sort -g | awk '{ v[NR] = $1 } END { if (!NR) print "n/a"; else
                    printf "%.2f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
            eng=$(awk -v l=$load -v n=$row '$1 == l && $2 == n && $10 != "-" { e += $10; o += $11 }
                      END { if (e + o) printf "%.1f", 100 * e / (e + o); else print "-" }' "$log")
            x() { [ "$1" = - ] && { echo -; return; }
                  echo "$(ratio "$m" "$1") ($(sround $load $row "$2"))"; }
            printf '%-22s %24s %13s %13s %13s %9s %8s\n' "$(label $row)" \
                "$(printf '%.2f [%.2f..%.2f]' "$m" "$lo" "$hi")" "$(x "$d" direct)" "$(x "$h" haproxy)" \
                "$(x "$hs" haproxy-splice)" "$cpugb" "$eng"
        done
        ;;
    *)
        echo "# $load: wrk requests/s and p99 latency (ms), median [min..max] of $runs;" \
             "x = ratio of medians (same-round median in parentheses); CPU = proxy user+sys us per request"
        printf '%-22s %26s %13s %24s %9s %9s %7s\n' row "req/s" "x haproxy" "p99 ms" "p99 x hap" \
            "CPU us/r" "errors"
        h=$(med $load haproxy 4) hp=$(med $load haproxy 5)
        for row in "${rows[@]}"; do
            read -r m lo hi <<<"$(summarise $load $row 4)"
            [ "$m" = - ] && continue
            read -r pm plo phi <<<"$(summarise $load $row 5)"
            cpur=$(awk -v l=$load -v n=$row '$1 == l && $2 == n && $6 != "-" { print $6 * 1e6 / $7 }' \
                   "$log" | sort -g | awk '{ v[NR] = $1 } END { if (!NR) print "n/a"; else
                   printf "%.1f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
            errs=$(awk -v l=$load -v n=$row '$1 == l && $2 == n { e += $8 } END { print e + 0 }' "$log")
            printf '%-22s %26s %13s %24s %9s %9s %7s\n' "$(label $row)" \
                "$(printf '%.0f [%.0f..%.0f]' "$m" "$lo" "$hi")" \
                "$([ "$h" = - ] && echo - || echo "$(ratio "$m" "$h") ($(sround $load $row haproxy))")" \
                "$(printf '%.2f [%.2f..%.2f]' "$pm" "$plo" "$phi")" "$(ratio "$pm" "$hp")" "$cpur" "$errs"
        done
        ;;
    esac
done

# ---- the issue's targets, on ratios of medians (same-round medians beside)
echo
echo "# targets (ratio of medians; same-round median in parentheses)"
t() { # t LOAD ROW ANCHOR GOAL TEXT
    local m a s
    m=$(med "$1" "$2" 4) a=$(med "$1" "$3" 4)
    [ "$m" = - ] || [ "$a" = - ] && return 0
    s=$(sround "$1" "$2" "$3")
    printf '%-9s %-22s %-40s %5s (%5s)  %s\n' "$1" "$(label "$2")" "$5" "$(ratio "$m" "$a")" "$s" \
        "$(verdict "$(ratio "$m" "$a")" "$4")"
}
for load in bulk1 bulk4; do
    [[ " ${loads[*]} " == *" $load "* ]] || continue
    t $load owfp-noop haproxy 1.2 "inspected >= 1.2 x HAProxy (no splice)"
    for row in owfp owfp-allow; do
        t $load $row haproxy-splice 1.1 "offloaded >= 1.1 x HAProxy splice"
        t $load $row direct 0.75 "offloaded >= 0.75 x direct"
    done
done
for load in keepalive close; do
    [[ " ${loads[*]} " == *" $load "* ]] || continue
    for row in owfp owfp-noop owfp-allow owfp-none; do
        t $load $row haproxy 1.2 "req/s >= 1.2 x HAProxy"
        pm=$(med $load $row 5) hp=$(med $load haproxy 5)
        [ "$pm" = - ] || [ "$hp" = - ] && continue
        printf '%-9s %-22s %-40s %5s         %s\n' $load "$(label $row)" "p99 <= HAProxy's (x HAProxy)" \
            "$(ratio "$pm" "$hp")" "$(awk -v a="$pm" -v b="$hp" 'BEGIN { print (a <= b ? "met" : "MISSED") }')"
    done
done

if [ $perf = 1 ]; then
    echo
    echo "# perf stat on each proxy during its runs (all rounds summed): system calls and"
    echo "# context switches per GB moved (bulk) or per request (wrk); B/call = bytes moved"
    echo "# per read-side call (recvfrom + recvmsg + read + readv, or half the splices);"
    echo "# CPU = task-clock, s per GB (bulk) or us per request (wrk)"
    for load in "${loads[@]}"; do
        case $load in bulk*) unit=GB ;; *) unit=request ;; esac
        printf '%-9s %-22s' "$load" "per $unit"
        for s in "${sysc[@]}" ctxsw; do printf ' %9s' "$s"; done
        printf ' %9s %7s\n' "B/call" CPU
        for row in "${rows[@]}"; do
            [ "$row" = direct ] && continue
            # count of bytes (bulk) or requests (wrk), over the rounds that have a perf file
            n=0 files=()
            for ((r = 0; r < runs; r++)); do
                f=$dir/raw/$load-$row-$r.perf
                c=$(awk -v l=$load -v n=$row -v r=$r '$1 == l && $2 == n && $3 == r { print $7 }' "$log")
                [ -s "$f" ] && [ -n "$c" ] || continue
                n=$(awk -v a="$n" -v b="$c" 'BEGIN { printf "%.0f", a + b }')
                files+=("$f")
            done
            [ ${#files[@]} -gt 0 ] || continue
            awk -F, -v n="$n" -v unit=$unit -v label="$(label $row)" -v load=$load -v list="${sysc[*]} ctxsw" '
                $3 ~ /^syscalls:sys_enter_/ { k = $3; sub(/^syscalls:sys_enter_/, "", k); v[k] += $1 }
                $3 == "context-switches" { v["ctxsw"] += $1 }
                $3 == "task-clock" { cpu += $1 } # msec
                END {
                    per = unit == "GB" ? n / 1e9 : n
                    printf "%-9s %-22s", load, label
                    m = split(list, names, " ")
                    for (i = 1; i <= m; i++) printf " %9.1f", v[names[i]] / per
                    reads = v["recvfrom"] + v["recvmsg"] + v["read"] + v["readv"] + v["splice"] / 2
                    bytes = unit == "GB" ? n : 0
                    printf " %9s %7.2f\n", bytes && reads ? sprintf("%.0f", bytes / reads) : "-",
                        unit == "GB" ? cpu / 1e3 / per : cpu * 1e3 / per
                }' "${files[@]}"
        done
    done
fi
} 2>&1 | tee -a "$res"
echo "results saved to $res; per-run numbers in $log, raw outputs in $dir/raw/" >&2
