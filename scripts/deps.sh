# Sourced by the set-up scripts: makes sure the Debian packages named in
# OWFP_PACKAGES are installed, installing them when running as root, and
# otherwise saying exactly what is missing.
owfp_ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "openwfp: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y --no-install-recommends "${missing[@]}" >&2
    else
        echo "openwfp: missing Debian packages: ${missing[*]}" >&2
        echo "openwfp: install them with: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
}

OWFP_BUILD_PACKAGES=(gcc libc6-dev meson ninja-build pkg-config libcmocka-dev libpcap-dev)
# The proxy's tests: real peers, TLS for tls_sni_block, TPROXY in namespaces.
OWFP_PROXY_TEST_PACKAGES=(nginx curl wget openssl nftables iproute2 procps)
# bench/proxy.sh: the load generators, the servers and the other proxies.
OWFP_PROXY_BENCH_PACKAGES=(iperf3 wrk haproxy socat nginx jq procps iproute2)

# Configures DIR as a release build of the benchmarks (no tests, so a test
# that does not compile cannot stop a measurement) and builds it; on failure
# prints the errors and exits.
owfp_release_build() {
    local dir=$1
    if [ -d "$dir" ]; then
        meson setup --reconfigure "$dir" --buildtype=release -Dtests=disabled >/dev/null
    else
        meson setup "$dir" --buildtype=release -Dtests=disabled >/dev/null
    fi
    if ! meson compile -C "$dir" >"$dir/compile.log" 2>&1; then
        grep -E 'error|FAILED' "$dir/compile.log" >&2 || cat "$dir/compile.log" >&2
        echo "build of $dir failed (full log: $dir/compile.log)" >&2
        exit 1
    fi
}
