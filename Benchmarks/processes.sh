#!/usr/bin/env bash
# Process benchmark: the cost of making a process, natively, under `apus run` and under
# `apus run --vmm qemu`, per iteration:
#   fork+exit+wait           Benchmarks/guests/procbench.c, 100×SCALE iterations a round,
#   posix_spawn of a hello   median of 7 rounds, timed inside the program
#   sh: $(true)              Debian's busybox sh running `x=$(true)` 1,000 times; the same
#                            command with 0 iterations is subtracted (process start and boot
#                            cancel out), median of RUNS runs each (hyperfine)
#   Benchmarks/processes.sh [RUNS] [SCALE]    (default 5 and 1; needs scripts/build.sh first)
# A run that fails shows as "n/a (why)", never as a number.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
scale=${2:-1}
apus="$(cd "$repo" && swift build -c release --show-bin-path)/apus"
busybox=/bin/busybox
[ -x "$apus" ] || { echo "processes.sh: $apus is missing: run scripts/build.sh first" >&2; exit 1; }
[ -x "$busybox" ] || { echo "processes.sh: $busybox is missing: apt-get install busybox-static" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "processes.sh: hyperfine is missing: run scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
musl-gcc -static -O2 -o "$work/procbench" "$repo/Benchmarks/guests/procbench.c"

# platform NAME: the command prefix that runs a program there.
platform() {
    case "$1" in
        native) echo "" ;;
        apus) echo "$apus run" ;;
        qemu) echo "$apus run --vmm qemu" ;;
    esac
}

# why FILE: the first line of a failed run's stderr, shortened, for "n/a (…)".
why() { head -c 300 "$1" | grep -v '^$' | head -1 | cut -c1-60; }

loop='i=0; while [ $i -lt $0 ]; do x=$(true); i=$((i + 1)); done'
for p in native apus qemu; do
    prefix=$(platform "$p")
    # procbench: its own rounds and medians.
    # A line "NAME error TEXT" is a failure of that one; any other failure (no output, a
    # crash, a failed boot) is told by the exit status and stderr.
    if $prefix "$work/procbench" "$scale" > "$work/$p.bench" 2> "$work/$p.bench.err"; then :; else
        echo "exit $?: $(why "$work/$p.bench.err")" > "$work/$p.bench.na"
    fi
    # The shell loop: one trial run, then hyperfine if it worked.
    if $prefix "$busybox" sh -c "$loop" 1000 > /dev/null 2> "$work/$p.sh.err"; then
        hyperfine --style none --warmup 1 --runs "$runs" -N --export-json "$work/$p.sh.json" \
            -n zero "$prefix $busybox sh -c '$loop' 0" \
            -n thousand "$prefix $busybox sh -c '$loop' 1000" > /dev/null 2> "$work/$p.sh.err" \
            || echo "a timed run failed: $(why "$work/$p.sh.err")" > "$work/$p.sh.na"
    else
        echo "exit $?: $(why "$work/$p.sh.err")" > "$work/$p.sh.na"
    fi
done

python3 - "$work" "$runs" "$scale" <<'PY'
import json, os, statistics, sys
work, runs, scale = sys.argv[1], sys.argv[2], int(sys.argv[3])
def na(path):
    return "n/a (" + open(path).read().strip() + ")"
def bench(p):
    failed = os.path.exists(f"{work}/{p}.bench.na")
    values = {name: na(f"{work}/{p}.bench.na") if failed else "n/a (no output)" for name in ("fork", "spawn")}
    for line in open(f"{work}/{p}.bench"):
        parts = line.split(maxsplit=2)
        if len(parts) == 2:
            values[parts[0]] = float(parts[1])
        elif len(parts) == 3 and parts[1] == "error":
            values[parts[0]] = f"n/a ({parts[2].strip()})"
    return values
def shell(p):
    if os.path.exists(f"{work}/{p}.sh.na"):
        return na(f"{work}/{p}.sh.na")
    results = {r["command"]: statistics.median(r["times"]) for r in json.load(open(f"{work}/{p}.sh.json"))["results"]}
    return (results["thousand"] - results["zero"]) * 1e6 / 1000
table = {p: dict(bench(p), sh=shell(p)) for p in ("native", "apus", "qemu")}
labels = {"fork": "fork + exit + wait", "spawn": "posix_spawn + wait (static hello)", "sh": "busybox sh: x=$(true)"}
def cell(v, width):
    return f"{v:{width}.1f}" if isinstance(v, float) else f"{v:>{width}}"
def ratio(a, b):
    return f"{a / b:13.2f}" if isinstance(a, float) and isinstance(b, float) and b > 0 else f"{'n/a':>13}"
print(f"Process benchmark: µs per iteration; fork/spawn: median of 7 rounds of {100 * scale} inside one run; "
      f"sh: 1,000 iterations minus 0, median of {runs} runs\n")
print(f"| {'operation':<34} | {'native':>9} | {'apus':>9} | {'qemu':>10} | {'apus ÷ native':>13} | {'qemu ÷ native':>13} |")
print(f"|{'-'*36}|{'-'*10}:|{'-'*10}:|{'-'*11}:|{'-'*14}:|{'-'*14}:|")
for k in ("fork", "spawn", "sh"):
    n, a, q = table["native"][k], table["apus"][k], table["qemu"][k]
    print(f"| {labels[k]:<34} | {cell(n, 9)} | {cell(a, 9)} | {cell(q, 10)} | {ratio(a, n)} | {ratio(q, n)} |")
PY
