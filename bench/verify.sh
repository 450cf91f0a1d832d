#!/usr/bin/env bash
# The callout verifier's cost on replay throughput (docs/BENCHMARKS.md,
# "Verifier overhead"). One capture, three contenders per callout set:
#   base  an openwfp built without the verifier's engine hooks (BASE)
#   off   the openwfp under test (OPENWFP), no --verify
#   on    the same with --verify
# Each round runs every (callout set, contender) once, the contenders in an
# order rotated by one each round. Times: CPU (user + sys, /usr/bin/time)
# and wall. Prints medians [min..max] and the same-round ratios on/off and
# off/base.
#
#   bench/verify.sh BASE OPENWFP CAPTURE [--runs K] [--driver SO [--driver-param N=V]...]
#
# Without --driver the callout set is `--example noop`; with it, both noop
# and the driver are measured. Run lines go to verify-runs.tsv in the
# current directory.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,16p' "$0"; exit 2; }
base=$1 cur=$2 capture=$3
shift 3
runs=7
driver=()
while [ $# -gt 0 ]; do
    case $1 in
    --runs) runs=$2; shift ;;
    --driver) driver+=(--driver "$2"); shift ;;
    --driver-param) driver+=(--driver-param "$2"); shift ;;
    *) echo "bench/verify.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
command -v /usr/bin/time >/dev/null || { echo "bench/verify.sh: needs /usr/bin/time" >&2; exit 1; }

sets=(noop)
[ ${#driver[@]} -gt 0 ] && sets+=(driver)
contenders=(base off on)
log=verify-runs.tsv
: >"$log"
cat "$capture" >/dev/null # warm the page cache

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # set contender round
    local set=$1 who=$2 bin=$cur args=(replay --quiet --no-progress)
    [ "$who" = base ] && bin=$base
    [ "$who" = on ] && args+=(--verify)
    if [ "$set" = noop ]; then args+=(--example noop); else args+=("${driver[@]}"); fi
    local t0 t1 u s
    t0=$(date +%s%N)
    if ! /usr/bin/time -o "$tmp/time" -f '%U %S' "$bin" "${args[@]}" "$capture" \
            >/dev/null 2>"$tmp/err"; then
        tail -3 "$tmp/err" >&2
        exit 1
    fi
    t1=$(date +%s%N)
    read -r u s <"$tmp/time"
    printf '%s\t%s\t%s\t%s\t%s\n' "$set" "$who" "$3" \
        "$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.3f", u + s }')" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" >>"$log"
}

for ((r = 0; r < runs; r++)); do
    for set in "${sets[@]}"; do
        for ((i = 0; i < 3; i++)); do
            run "$set" "${contenders[$(((i + r) % 3))]}" "$r"
        done
    done
    echo "round $((r + 1))/$runs done" >&2
done

python3 - "$log" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
t = {}
for s, who, r, cpu, wall in rows:
    t[(s, who, int(r))] = (float(cpu), float(wall))
def med(xs):
    return "%.2f [%.2f..%.2f]" % (statistics.median(xs), min(xs), max(xs))
for s in sorted({k[0] for k in t}):
    rounds = sorted({k[2] for k in t if k[0] == s})
    print("## %s: %d rounds" % (s, len(rounds)))
    for i, what in ((0, "CPU s"), (1, "wall s")):
        for who in ("base", "off", "on"):
            print("%-6s %-7s %s" % (what.split()[0], who, med([t[(s, who, r)][i] for r in rounds])))
        on_off = [t[(s, "on", r)][i] / t[(s, "off", r)][i] for r in rounds]
        off_base = [t[(s, "off", r)][i] / t[(s, "base", r)][i] for r in rounds]
        print("%-6s on/off   %s   off/base %s" % (what.split()[0], med(on_off), med(off_base)))
EOF
