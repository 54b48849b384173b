#!/usr/bin/env bash
# PostgreSQL benchmark: pgbench's TPCB-like transactions per second against Debian's
# PostgreSQL natively and in Apus (the same binaries in an image, a backend process per
# connection), loopback only and bounded: pgbench -i -s 1, then RUNS runs of
# `pgbench -c CLIENTS -T SECONDS`; the median TPS of each and their ratio.
#   Benchmarks/postgres.sh [RUNS] [SECONDS] [CLIENTS]    (default 3, 5, 4; scripts/build.sh first)
# QEMU is not measured: under its emulation initdb alone runs for minutes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
seconds=${2:-5}
clients=${3:-4}
apus="$(cd "$repo" && swift build -c release --show-bin-path)/apus"
[ -x "$apus" ] || { echo "postgres.sh: $apus is missing: run scripts/build.sh first" >&2; exit 1; }
version=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -1)
[ -n "$version" ] || { echo "postgres.sh: PostgreSQL is missing: run scripts/setup.sh" >&2; exit 1; }
bin=/usr/lib/postgresql/$version/bin
command -v pgbench >/dev/null || { echo "postgres.sh: pgbench is missing: run scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d)
chmod 755 "$work"
export APUS_HOME="$work/store"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 120); do pg_isready -q -h 127.0.0.1 -p "$1" && return 0; sleep 0.5; done; return 1; }

# bench PORT LABEL: initializes pgbench's tables, then prints one TPS per run.
bench() {
    pgbench -h 127.0.0.1 -p "$1" -U postgres -i -s 1 -q postgres > "$work/$2.init" 2>&1
    for _ in $(seq "$runs"); do
        pgbench -h 127.0.0.1 -p "$1" -U postgres -c "$clients" -T "$seconds" postgres 2> /dev/null \
            | sed -n 's/^tps = \([0-9.]*\).*/\1/p'
    done
}

# Native: an unprivileged user (root may not run postgres) owns the data directory.
native_port=$(free_port)
mkdir "$work/native"
chown 65534:65534 "$work/native"
run_as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
run_as_nobody "$bin/initdb" -D "$work/native/data" -U postgres --auth=trust -E UTF8 --locale=C > "$work/native.initdb" 2>&1
run_as_nobody "$bin/postgres" -D "$work/native/data" -p "$native_port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$work/native" > "$work/native.log" 2>&1 &
server=$!
wait_ready "$native_port" || { echo "postgres.sh: native postgres did not start: $(tail -3 "$work/native.log")" >&2; exit 1; }
bench "$native_port" native > "$work/native.tps"
kill "$server"; wait "$server" 2>/dev/null || true; server=""

# Apus: the image Tests/IntegrationTests/PostgresCases.swift builds.
cat > "$work/start.sh" <<EOF
#!/bin/sh
set -e
mkdir -p /var/lib/pg
chown 999:999 /var/lib/pg
su postgres -s /bin/sh -c "$bin/initdb -D /var/lib/pg/data -U postgres --auth=trust -E UTF8 --locale=C" > /tmp/initdb.log 2>&1 || { cat /tmp/initdb.log; exit 1; }
echo "host all all 0.0.0.0/0 trust" >> /var/lib/pg/data/pg_hba.conf
exec su postgres -s /bin/sh -c "exec $bin/postgres -D /var/lib/pg/data -c listen_addresses=0.0.0.0 -c unix_socket_directories=''"
EOF
chmod 755 "$work/start.sh"
printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/pg:/bin/sh\n' > "$work/passwd"
printf 'root:x:0:\npostgres:x:999:\n' > "$work/group"
libs=$(ldd "$bin/postgres" "$bin/initdb" | grep -o '/[^ ]*' | grep -v ':$' | sort -u)
args=()
for l in $libs; do args+=(--add "$l"); done
[ -e /usr/share/zoneinfo/UTC ] && args+=(--add /usr/share/zoneinfo/UTC)
"$apus" build -t pgbench-server /bin/busybox sh /start.sh --memory 1G \
    --add "$work/start.sh:/start.sh" --add "$work/passwd:/etc/passwd" --add "$work/group:/etc/group" \
    --add /bin/busybox:/usr/bin/sh --add "/usr/lib/postgresql/$version" --add "/usr/share/postgresql/$version" \
    "${args[@]}" > "$work/build.log" 2>&1 || { echo "postgres.sh: apus build failed: $(tail -1 "$work/build.log")" >&2; exit 1; }
apus_port=$(free_port)
"$apus" run --timeout 600 -p "$apus_port:5432" pgbench-server > "$work/apus.log" 2>&1 &
server=$!
if wait_ready "$apus_port"; then
    bench "$apus_port" apus > "$work/apus.tps"
else
    echo "did not start: $(tail -1 "$work/apus.log")" > "$work/apus.na"
fi

python3 - "$work" "$runs" "$seconds" "$clients" <<'PY'
import os, statistics, sys
work, runs, seconds, clients = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def tps(name):
    if os.path.exists(f"{work}/{name}.na"):
        return None, "n/a (" + open(f"{work}/{name}.na").read().strip() + ")"
    values = [float(v) for v in open(f"{work}/{name}.tps").read().split()]
    if len(values) != int(runs):
        return None, f"n/a ({len(values)} of {runs} runs reported a TPS)"
    m = statistics.median(values)
    return m, f"{m:,.0f}"
native, native_text = tps("native")
apus, apus_text = tps("apus")
ratio = f"{apus / native:.2f}" if native and apus else "n/a"
print(f"pgbench TPCB-like, scale 1, {clients} clients, {seconds} s, median of {runs} runs (TPS; higher is better)")
print(f"| {'':<22} | {'native':>8} | {'apus':>8} | {'apus ÷ native':>13} |")
print(f"|{'-'*24}|{'-'*10}|{'-'*10}|{'-'*15}|")
print(f"| {'transactions/s':<22} | {native_text:>8} | {apus_text:>8} | {ratio:>13} |")
PY
