#!/usr/bin/env bash
# nginx with its stock master/worker layout: requests/s and mean latency of Debian's nginx
# with a master and 2 worker processes in Apus (an `apus build` image, through `-p`) against
# the same nginx with 2 workers natively on the host, over 127.0.0.1; and, for scale, both
# with one process (`master_process off`, what Benchmarks/network.sh measures).
#   Benchmarks/nginx.sh [RUNS]     (default 5; the median of RUNS wrk runs per cell; needs
#                                   scripts/build.sh, and Debian's nginx-light and wrk:
#                                   scripts/setup.sh installs them)
# Each run: wrk -t2 -c50 -d5s against a static page (stock nginx.conf http block: sendfile,
# tcp_nopush, gzip, an access log). The VM has the default vCPU (one): its two workers share
# it, while native nginx's workers run on the host's cores. Every process started here is
# stopped on exit; a cell whose server did not answer shows "fail", one whose wrk run had
# socket errors or non-2xx answers "errors".
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
apus="$(cd "$repo" && swift build -c release --show-bin-path)/apus"
[ -x "$apus" ] || { echo "nginx.sh: $apus is missing: run scripts/build.sh first" >&2; exit 1; }
for tool in wrk curl python3 timeout; do
    command -v "$tool" >/dev/null || { echo "nginx.sh: $tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx.sh: nginx is missing: run scripts/setup.sh (nginx-light)" >&2; exit 1; }
work=$(mktemp -d)
export APUS_HOME="$work/store"
pids=()
stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${pids[@]}"; do stop "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

results="$work/results"
: > "$results"
record() { echo "$1 $2 $3" >> "$results"; }

# conf DIR LISTEN PREFIX MASTER WORKERS: the stock nginx.conf (nginx-common 1.22) with daemon
# off, the given process layout, user root, the log on stderr, pid and temp files under
# PREFIX, no module or site includes (one inline server on LISTEN with root PREFIX/html).
conf() {
    local dir=$1 listen=$2 prefix=$3 master=$4 workers=$5
    mkdir -p "$dir/conf" "$dir/html" "$dir/log" "$dir/tmp"
    cp /etc/nginx/mime.types "$dir/conf/"
    cat > "$dir/conf/nginx-$master-$workers.conf" <<EOF
user root;
worker_processes $workers;
master_process $master;
daemon off;
pid $prefix/tmp/nginx.pid;
error_log stderr;
events {
	worker_connections 768;
}
http {
	sendfile on;
	tcp_nopush on;
	types_hash_max_size 2048;
	include $prefix/conf/mime.types;
	default_type application/octet-stream;
	access_log $prefix/log/access.log;
	gzip on;
	client_body_temp_path $prefix/tmp/body;
	proxy_temp_path $prefix/tmp/proxy;
	fastcgi_temp_path $prefix/tmp/fastcgi;
	uwsgi_temp_path $prefix/tmp/uwsgi;
	scgi_temp_path $prefix/tmp/scgi;
	server {
		listen $listen;
		root $prefix/html;
	}
}
EOF
    echo '<!doctype html><title>apus</title><h1>nginx benchmark page</h1>' > "$dir/html/index.html"
}

# bench TARGET MASTER WORKERS: one server, RUNS wrk runs.
bench() {
    local target=$1 master=$2 workers=$3 port log r out rps lat key="$2-$3"
    port=$(free_port)
    log="$work/nginx-$target-$key.log"
    if [ "$target" = native ]; then
        conf "$work/native" "127.0.0.1:$port" "$work/native" "$master" "$workers"
        : > "$work/native/log/access.log"
        "$nginx" -c "$work/native/conf/nginx-$key.conf" > "$log" 2>&1 &
    else
        conf "$work/image" 8080 /srv/nginx "$master" "$workers"
        "$apus" build -t "nginx-bench-$key" "$nginx" --add "$work/image/conf:/srv/nginx/conf" \
            --add "$work/image/html:/srv/nginx/html" --add "$work/image/log:/srv/nginx/log" \
            --add "$work/image/tmp:/srv/nginx/tmp" -- -c "/srv/nginx/conf/nginx-$key.conf" >/dev/null
        "$apus" run --timeout 600 -m 512M -p "$port:8080" "nginx-bench-$key" > "$log" 2>&1 &
    fi
    local server=$!
    pids+=("$server")
    local deadline=$((SECONDS + 60)) ok=0
    while ((SECONDS < deadline)); do
        curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/" && { ok=1; break; }
        kill -0 "$server" 2>/dev/null || break
        sleep 0.2
    done
    if ((ok == 0)); then
        echo "nginx.sh: nginx ($target, $key) does not answer: $(grep -m1 -e '\[alert\]' -e '\[emerg\]' "$log" || tail -c 300 "$log")" >&2
        record "rps-$key" "$target" fail; record "lat-$key" "$target" fail
        stop "$server"; return
    fi
    for r in $(seq "$runs"); do
        if out=$(timeout 30 wrk -t2 -c50 -d5s --timeout 2s "http://127.0.0.1:$port/" 2>&1) &&
           ! grep -q -e "Socket errors" -e "Non-2xx" <<<"$out"; then
            rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
            lat=$(awk '/^ +Latency/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
            record "rps-$key" "$target" "${rps:-fail}"; record "lat-$key" "$target" "${lat:-fail}"
        else
            echo "nginx.sh: wrk against nginx ($target, $key): $(grep -e 'Socket errors' -e 'Non-2xx' <<<"$out" | tr -s ' ' || true)" >&2
            record "rps-$key" "$target" errors; record "lat-$key" "$target" errors
        fi
    done
    if grep -q -e '\[alert\]' -e '\[emerg\]' "$log"; then
        echo "nginx.sh: nginx ($target, $key) logged: $(grep -m1 -e '\[alert\]' -e '\[emerg\]' "$log")" >&2
    fi
    stop "$server"
}

for target in native apus; do
    for layout in "on 2" "off 1"; do
        echo "nginx.sh: $target, master_process/worker_processes $layout" >&2
        bench "$target" $layout
    done
done

python3 - "$results" "$runs" "$repo/Benchmarks/lib" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
from results import fmt, medians
med = medians(sys.argv[1])
rows = [
    ("master + 2 workers: requests/s", "rps-on-2", True),
    ("master + 2 workers: mean latency ms", "lat-on-2", False),
    ("one process: requests/s", "rps-off-1", True),
    ("one process: mean latency ms", "lat-off-1", False),
]
print(f"nginx benchmark (wrk -t2 -c50 -d5s, static page): median of {sys.argv[2]} runs each\n")
print(f"| {'case':<36} | {'native':>10} | {'apus':>12} | {'× native':>8} |")
print(f"|{'-'*38}|{'-'*11}:|{'-'*13}:|{'-'*9}:|")
for name, key, higher in rows:
    n, nerr = med(key, "native")
    v, err = med(key, "apus")
    ratio = f"{v / n:.2f}" if v is not None and n else ""
    print(f"| {name:<36} | {nerr or fmt(n):>10} | {err or fmt(v):>12} | {ratio:>8} |")
print("\n× native: the Apus value over the native one (requests/s: higher is better; latency: lower\n"
      "is better). Native: the same nginx and configuration on the host, over 127.0.0.1.")
PY
