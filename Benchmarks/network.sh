#!/usr/bin/env bash
# Network benchmark: servers and bulk TCP in Apus, against the same programs run natively on
# the host and in QEMU (`apus run --vmm qemu`: microvm, software emulation, QEMU's user
# network), all in one run, with ratios against native.
#   Benchmarks/network.sh [RUNS]     (default 5; the median of RUNS runs per cell; needs
#                                     scripts/build.sh and Debian's redis-server, redis-tools,
#                                     nginx-light, wrk: scripts/setup.sh installs them)
# Measures:
#   - redis-server (Debian's, dynamic): redis-benchmark GET and SET, requests/s, p50 and p99
#     latency (-n 50000 -c 50; QEMU -n 5000), through `-p` (apus, qemu) or directly (native)
#   - nginx (Debian's, an `apus build` image): wrk -t2 -c50 -d5s, requests/s and mean latency
#   - TCP bulk: out/guests/fetch.musl sends N MiB to / receives N MiB from a host-side
#     fetch.musl on 127.0.0.1 (the guest reaches it as 10.0.2.2), as measured by the client
#     from connect to the last byte acknowledged (64 MiB; QEMU 8 MiB out, 2 MiB in)
# Everything is on 127.0.0.1 with ports chosen at run time, bounded in count and time (every
# client under `timeout`, every VM under `apus run --timeout`), and every process started
# here is stopped on exit. A cell that failed or timed out shows "fail" (or "errors" for a wrk
# run with socket errors or non-2xx answers) instead of a number.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
apus="$(cd "$repo" && swift build -c release --show-bin-path)/apus"
fetch="$repo/out/guests/fetch.musl"
for f in "$apus" "$fetch"; do
    [ -x "$f" ] || { echo "network.sh: $f is missing: run scripts/build.sh first" >&2; exit 1; }
done
for tool in redis-server redis-cli redis-benchmark nginx wrk python3 timeout; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
        { echo "network.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
redis_server=$(command -v redis-server)
nginx=$(command -v nginx || echo /usr/sbin/nginx)
work=$(mktemp -d)
export APUS_HOME="$work/store"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do stop "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# wait_port PORT SECONDS CHECK...: retries CHECK (a command) until it succeeds.
wait_until() {
    local seconds=$1; shift
    local deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# descendants PID: every live descendant's pid (apus --vmm qemu runs QEMU under `timeout`).
descendants() {
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do echo "$child"; descendants "$child"; done
}
# stop PID: SIGTERM, then SIGKILL after 3 s; then any descendant still alive (a QEMU that
# apus left behind) by its pid.
stop() {
    local pid=$1 i kids
    kids=$(descendants "$pid")
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    sleep 0.2
    for i in $kids; do kill -KILL "$i" 2>/dev/null || true; done
}

# Each result is one line of $work/results: WHAT TARGET VALUE (VALUE "fail" when it failed).
results="$work/results"
: > "$results"
record() { echo "$1 $2 $3" >> "$results"; }

# start TARGET PORT GUESTPORT LOG PROGRAM ARGS...: a server natively or in apus/qemu; sets $server_pid.
start() {
    local target=$1 port=$2 gport=$3 log=$4; shift 4
    case "$target" in
        native) "$@" > "$log" 2>&1 & ;;
        apus) "$apus" run --timeout 600 -m 512M -p "$port:$gport" "$@" > "$log" 2>&1 & ;;
        qemu) "$apus" run --vmm qemu --timeout 900 -m 512M -p "$port:$gport" "$@" > "$log" 2>&1 & ;;
    esac
    server_pid=$!
    pids+=("$server_pid")
}

# ---------------------------------------------------------------- redis
bench_redis() {
    local target=$1 n=50000 limit=120 port log r csv
    [ "$target" = qemu ] && { n=5000; limit=40; }
    port=$(free_port)
    log="$work/redis-$target.log"
    if [ "$target" = native ]; then
        start native "$port" 0 "$log" "$redis_server" --port "$port" --bind 127.0.0.1 --save '' --appendonly no
    else
        start "$target" "$port" 6379 "$log" "$redis_server" --save '' --protected-mode no --bind 0.0.0.0 --appendonly no
    fi
    if ! wait_until 120 redis-cli -p "$port" ping; then
        echo "network.sh: redis ($target) did not start: $(tail -3 "$log")" >&2
        for what in set_rps set_p50 set_p99 get_rps get_p50 get_p99; do record "redis_$what" "$target" fail; done
        stop "$server_pid"; return
    fi
    local failures=0
    for r in $(seq "$runs"); do
        csv="$work/redis-$target-$r.csv"
        ((failures >= 2)) && break   # each failure costs the time limit: two are enough to tell
        if timeout "$limit" redis-benchmark -p "$port" -n "$n" -c 50 -t get,set --csv > "$csv" 2>/dev/null; then
            python3 - "$csv" "$target" >> "$results" <<'PY'
import csv, sys
rows = {r["test"]: r for r in csv.DictReader(open(sys.argv[1]))}
for test in ("SET", "GET"):
    r = rows.get(test)
    for key, name in (("rps", "rps"), ("p50_latency_ms", "p50"), ("p99_latency_ms", "p99")):
        print(f"redis_{test.lower()}_{name} {sys.argv[2]} {r[key] if r else 'fail'}")
PY
        else
            echo "network.sh: redis-benchmark against $target failed or timed out after $limit s (run $r)" >&2
            failures=$((failures + 1))
            for what in set_rps set_p50 set_p99 get_rps get_p50 get_p99; do record "redis_$what" "$target" fail; done
        fi
    done
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    stop "$server_pid"
}

# ---------------------------------------------------------------- nginx
nginx_conf() {   # DIR LISTEN
    mkdir -p "$1/conf" "$1/html" "$1/lib"
    cp /etc/nginx/mime.types "$1/conf/"
    cat > "$1/conf/nginx.conf" <<EOF
user root;
worker_processes 1;
error_log stderr;
pid $3;
events { worker_connections 1024; }
http {
    include mime.types;
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path $4/body;
    proxy_temp_path $4/proxy;
    fastcgi_temp_path $4/fastcgi;
    uwsgi_temp_path $4/uwsgi;
    scgi_temp_path $4/scgi;
    server {
        listen $2;
        root $5;
    }
}
EOF
    echo '<!doctype html><title>apus</title><h1>nginx benchmark page</h1>' > "$1/html/index.html"
}
bench_nginx() {
    local target=$1 port log r out rps lat
    port=$(free_port)
    log="$work/nginx-$target.log"
    if [ "$target" = native ]; then
        nginx_conf "$work/nginx-native" "127.0.0.1:$port" "$work/nginx-native/nginx.pid" "$work/nginx-native/lib" "$work/nginx-native/html"
        start native "$port" 0 "$log" "$nginx" -p "$work/nginx-native" -c "$work/nginx-native/conf/nginx.conf" -g 'daemon off; master_process off;'
    else
        if [ ! -d "$work/nginx-image" ]; then
            nginx_conf "$work/nginx-image" 8080 /tmp/nginx.pid /var/lib/nginx /srv/www
            "$apus" build -t nginx-bench "$nginx" --add "$work/nginx-image/conf:/etc/nginx" --add "$work/nginx-image/html:/srv/www" \
                --add "$work/nginx-image/lib:/var/lib/nginx" -- -g 'daemon off; master_process off;' >/dev/null
        fi
        start "$target" "$port" 8080 "$log" nginx-bench
    fi
    # Ready when it answers; given up early when it exited or logs that it cannot serve.
    local deadline=$((SECONDS + 120)) ok=0
    while ((SECONDS < deadline)); do
        curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/" && { ok=1; break; }
        kill -0 "$server_pid" 2>/dev/null || break
        grep -q -e '\[alert\]' -e '\[emerg\]' "$log" && break
        sleep 0.2
    done
    if ((ok == 0)); then
        echo "network.sh: nginx ($target) does not answer: $(grep -m1 -e '\[alert\]' -e '\[emerg\]' "$log" || tail -c 300 "$log")" >&2
        record nginx_rps "$target" fail; record nginx_lat "$target" fail
        stop "$server_pid"; return
    fi
    for r in $(seq "$runs"); do
        if out=$(timeout 30 wrk -t2 -c50 -d5s --timeout 2s "http://127.0.0.1:$port/" 2>&1); then
            if grep -q -e "Socket errors" -e "Non-2xx" <<<"$out"; then
                echo "network.sh: wrk against nginx ($target): $(grep -e 'Socket errors' -e 'Non-2xx' <<<"$out" | tr -s ' ')" >&2
                record nginx_rps "$target" errors; record nginx_lat "$target" errors
            else
                rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
                lat=$(awk '/^ +Latency/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
                record nginx_rps "$target" "${rps:-fail}"; record nginx_lat "$target" "${lat:-fail}"
            fi
        else
            record nginx_rps "$target" fail; record nginx_lat "$target" fail
        fi
    done
    stop "$server_pid"
}

# ---------------------------------------------------------------- TCP bulk
# bulk TARGET DIRECTION MIB: one transfer; the client's MB/s on stdout, or "fail".
bulk_once() {
    local target=$1 dir=$2 mib=$3 hostlog="$work/bulk-host.log" clientlog="$work/bulk-client.log" port host serve client pid line
    case "$dir" in
        out) serve=(serve-recv 127.0.0.1 0); client=(send) ;;
        in) serve=(serve-send 127.0.0.1 0 "$mib"); client=(recv) ;;
    esac
    hostlog="$work/bulk-host-$target-$dir-$RANDOM.log"
    : > "$hostlog"
    timeout 120 "$fetch" "${serve[@]}" > "$hostlog" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_until 10 grep -q '^port ' "$hostlog" || { stop "$pid"; echo fail; return; }
    port=$(awk '/^port /{print $2}' "$hostlog")
    local args
    case "$target" in
        native) host=127.0.0.1 ;;
        *) host=10.0.2.2 ;;
    esac
    args=("${client[0]}" "$host" "$port")
    [ "$dir" = out ] && args+=("$mib")
    case "$target" in
        native) timeout 120 "$fetch" "${args[@]}" > "$clientlog.out" 2> "$clientlog" || true ;;
        apus) "$apus" run --timeout 30 "$fetch" "${args[@]}" > "$clientlog.out" 2> "$clientlog" || true ;;
        qemu) "$apus" run --vmm qemu --timeout 120 "$fetch" "${args[@]}" > "$clientlog.out" 2> "$clientlog" || true ;;
    esac
    stop "$pid"
    # The client's own timing; the data checked byte for byte by whoever received it.
    line=$(grep -E '^(sent|received) [0-9]+ bytes in' "$clientlog" || true)
    if [ -n "$line" ] && grep -q "pattern ok" "$clientlog.out"; then
        sed -E 's/.*\(([0-9.]+) MB\/s\).*/\1/' <<<"$line"
    else
        echo "network.sh: bulk $dir in $target failed: $(tr '\n' ' ' < "$clientlog" | tail -c 300)" >&2
        echo fail
    fi
}
bench_bulk() {
    local target=$1 out_mib=64 in_mib=64 r
    [ "$target" = qemu ] && { out_mib=8; in_mib=2; }
    local v failed_out=0 failed_in=0
    for r in $(seq "$runs"); do   # after a failure (each costs a timeout) that direction is not retried
        if ((!failed_out)); then
            v=$(bulk_once "$target" out "$out_mib")
            [ "$v" = fail ] && failed_out=1
            record bulk_out "$target" "$v"
        fi
        if ((!failed_in)); then
            v=$(bulk_once "$target" in "$in_mib")
            [ "$v" = fail ] && failed_in=1
            record bulk_in "$target" "$v"
        fi
    done
}

for target in native apus qemu; do
    echo "network.sh: redis, $target" >&2
    bench_redis "$target"
    echo "network.sh: nginx, $target" >&2
    bench_nginx "$target"
    echo "network.sh: TCP bulk, $target" >&2
    bench_bulk "$target"
done

python3 - "$results" "$runs" "$repo/Benchmarks/lib" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
from results import fmt, medians
med = medians(sys.argv[1])
rows = [
    ("redis SET requests/s", "redis_set_rps", True),
    ("redis SET p50 latency ms", "redis_set_p50", False),
    ("redis SET p99 latency ms", "redis_set_p99", False),
    ("redis GET requests/s", "redis_get_rps", True),
    ("redis GET p50 latency ms", "redis_get_p50", False),
    ("redis GET p99 latency ms", "redis_get_p99", False),
    ("nginx (wrk -c50 5 s) requests/s", "nginx_rps", True),
    ("nginx (wrk) mean latency ms", "nginx_lat", False),
    ("TCP guest→host MB/s", "bulk_out", True),
    ("TCP host→guest MB/s", "bulk_in", True),
]
print(f"Network benchmark: median of {sys.argv[2]} runs each (QEMU: fewer requests, smaller transfers)\n")
print(f"| {'case':<34} | {'native':>10} | {'apus':>12} | {'× native':>8} | {'qemu':>12} | {'× native':>8} |")
print(f"|{'-'*36}|{'-'*11}:|{'-'*13}:|{'-'*9}:|{'-'*13}:|{'-'*9}:|")
for name, key, higher_better in rows:
    n, nerr = med(key, "native")
    cells = [nerr or fmt(n)]
    for target in ("apus", "qemu"):
        v, err = med(key, target)
        cells.append(err or fmt(v))
        cells.append(f"{v / n:.2f}" if v is not None and n else "")
    print(f"| {name:<34} | {cells[0]:>10} | {cells[1]:>12} | {cells[2]:>8} | {cells[3]:>12} | {cells[4]:>8} |")
print("\n× native: the Apus (or QEMU) value over the native one (requests/s and MB/s: higher is better;\n"
      "latency: lower is better). Native: the same program on the host, over 127.0.0.1.")
PY
