#!/bin/sh
# Writes the NAME.tmh files a WPP-traced driver includes, for openwfp: the
# trace calls become no-ops (see include/wdk/openwfp_wpp.h and
# docs/porting.md). It stands in for the WDK's tracewpp, which writes ETW code.
#
# usage: wpp-tmh.sh [-o DIR] [-func 'Name(LEVEL,FLAGS,MSG,...)']... [-scan FILE]... SOURCE...
#
#   SOURCE      a driver source; DIR/<its name without extension>.tmh is written
#   -o DIR      where the .tmh files go (default: the current directory)
#   -func SPEC  a trace function, as tracewpp's -func: option takes it
#   -scan FILE  a file (often trace.h) read for FUNC lines without a .tmh of its own
#
# Trace functions come from -func and from the FUNC lines of every
# "begin_wpp config" ... "end_wpp" comment block in the SOURCE and -scan
# files. DoTraceMessage and DoTraceLevelMessage are always there.
set -eu

usage() {
    echo "usage: $0 [-o DIR] [-func 'Name(LEVEL,FLAGS,MSG,...)']... [-scan FILE]... SOURCE..." >&2
    exit 2
}

outdir=.
funcs=
scans=
sources=
nl='
'
while [ $# -gt 0 ]; do
    case $1 in
    -o) [ $# -ge 2 ] || usage; outdir=$2; shift 2 ;;
    -func) [ $# -ge 2 ] || usage; funcs="$funcs$2$nl"; shift 2 ;;
    -func:*) funcs="$funcs${1#-func:}$nl"; shift ;;
    -scan) [ $# -ge 2 ] || usage; scans="$scans$2$nl"; shift 2 ;;
    -scan:*) scans="$scans${1#-scan:}$nl"; shift ;;
    -h | --help) usage ;;
    -*) echo "$0: unknown option $1" >&2; usage ;;
    *) sources="$sources$1$nl"; shift ;;
    esac
done
[ -n "$sources" ] || usage
[ -d "$outdir" ] || { echo "$0: $outdir: not a directory" >&2; exit 2; }
old_ifs=$IFS
IFS=$nl
for f in $scans $sources; do
    [ -r "$f" ] || { echo "$0: cannot read $f" >&2; exit 1; }
done
IFS=$old_ifs

# Every FUNC spec, one per line: from -func, then from the config blocks.
specs() {
    printf '%s' "$funcs" | sed -n 's/^[[:space:]]*\(.*[^[:space:]]\)[[:space:]]*$/FUNC \1/p'
    old_ifs=$IFS
    IFS=$nl
    for f in $scans $sources; do
        awk '/begin_wpp[ \t]+config/ { inside = 1; next }
             /end_wpp/ { inside = 0 }
             inside && match($0, /FUNC[ \t]+[A-Za-z_][A-Za-z0-9_]*/) { print substr($0, RSTART) }' "$f"
    done
    IFS=$old_ifs
}

# One macro per FUNC: WPP keyword parameters (FLAG/FLAGS/COMPNAME are WPP
# names, not C) are kept as text, LEVEL and the message go to
# owfp_wpp_trace, any other parameter is a C expression evaluated only when
# tracing is on. Nothing is evaluated when it is off.
macros() {
    awk '
    function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
    {
        line = $0
        sub(/^FUNC[ \t]+/, "", line)
        if (!match(line, /^[A-Za-z_][A-Za-z0-9_]*/)) next
        name = substr(line, 1, RLENGTH)
        rest = substr(line, RLENGTH + 1)
        defaults = ""
        if (match(rest, /^[ \t]*\{[^}]*\}/)) {
            defaults = substr(rest, RSTART, RLENGTH)
            rest = substr(rest, RLENGTH + 1)
            gsub(/[{} \t]/, "", defaults)
        }
        if (!match(rest, /\([^)]*\)/)) next
        plist = substr(rest, RSTART + 1, RLENGTH - 2)
        if (name in seen) next
        seen[name] = 1

        flags = "\"\""; level = "TRACE_LEVEL_NONE"
        nd = split(defaults, d, ",")
        for (i = 1; i <= nd; i++) {
            split(d[i], kv, "=")
            if (kv[1] == "FLAG" || kv[1] == "FLAGS") flags = "\"" kv[2] "\""
            else if (kv[1] == "LEVEL") level = "(" kv[2] ")"
        }
        np = (trim(plist) == "") ? 0 : split(plist, p, ",")
        params = ""; extra = ""; msg = ""; variadic = 0
        for (i = 1; i <= np; i++) {
            a = trim(p[i])
            if (a == "...") { variadic = 1; continue }
            if (a == "MSG" && i < np && trim(p[i + 1]) == "...") { msg = "__VA_ARGS__"; variadic = 1; break }
            params = params (params == "" ? "" : ", ") a
            if (a == "MSG") msg = "MSG"
            else if (a == "FLAG" || a == "FLAGS") flags = "#" a
            else if (a == "LEVEL") level = "(LEVEL)"
            else if (a != "COMPNAME") extra = extra "(void)(" a "); "
        }
        if (variadic) params = params (params == "" ? "" : ", ") "..."
        if (msg == "") msg = "\"" name "\"" (variadic ? ", __VA_ARGS__" : "")
        printf "#ifndef %s\n#define %s(%s) \\\n", name, name, params
        printf "    do { \\\n        if (owfp_wpp_enabled()) { \\\n"
        printf "            %sowfp_wpp_trace(__FILE__, __LINE__, __func__, %s, (int)%s, %s); \\\n", extra, flags, level, msg
        printf "        } \\\n    } while (0)\n#endif\n"
    }'
}

all_macros=$(specs | macros)

old_ifs=$IFS
IFS=$nl
for src in $sources; do
    base=$(basename "$src")
    stem=${base%.*}
    guard=OWFP_TMH_$(printf '%s' "$stem" | tr -c 'A-Za-z0-9_' '_' | tr 'a-z' 'A-Z')
    out="$outdir/$stem.tmh"
    tmp="$out.tmp.$$"
    {
        echo "/* $stem.tmh: WPP tracing as no-ops for openwfp, written by scripts/wpp-tmh.sh"
        echo " * from $base. Do not edit; see docs/porting.md. */"
        echo "#ifndef $guard"
        echo "#define $guard"
        echo
        echo "#include <openwfp_wpp.h>"
        echo
        echo "#ifdef WPP_CONTROL_GUIDS"
        echo "enum { WPP_CONTROL_GUIDS ${guard}_BITS };"
        echo "#endif"
        echo
        [ -z "$all_macros" ] || printf '%s\n\n' "$all_macros"
        echo "#endif"
    } >"$tmp"
    mv "$tmp" "$out"
done
IFS=$old_ifs
