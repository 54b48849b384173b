#!/usr/bin/env bash
# Installs what building and testing Apus needs on Debian/Ubuntu (run as root, or with sudo
# available). Idempotent: packages already present are not fetched again.
#   musl-tools, gcc    build the static test guests and the bundled example
#   qemu-system-x86    the second VMM (--vmm qemu) and the native-platform tests
#   hyperfine          the benchmarks
#   golang-go          the Go test guest (rustc, when present, builds the Rust one)
#   busybox-static     an unmodified static program from Debian, run by the tests
#   redis-server, redis-tools, nginx-light, wrk, curl, postgresql
#                      servers and clients of the network tests and Benchmarks/network.sh
#                      (the tests choose free ports; a system redis or nginx that apt starts
#                      does not disturb them)
set -euo pipefail
packages=(musl-tools gcc qemu-system-x86 hyperfine golang-go busybox-static python3 sqlite3 nodejs
          redis-server redis-tools nginx-light wrk curl postgresql)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: a Swift 6 toolchain (swift, swiftc, clang, ld.lld) must be on PATH" >&2; exit 1; }
