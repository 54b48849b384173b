#!/usr/bin/env bash
# Preemption of code that makes no syscalls: what one timer interruption costs, how late a
# sleeping thread wakes while another spins, and whether a compute loop slows down when it
# is interrupted 100 times a second (Benchmarks/guests/preempt.c: median of 7 rounds inside
# the program), natively, under `apus run` (pvm: the VMM stops the vCPU and enters the
# kernel) and under `apus run --vmm qemu` (TCG: the LAPIC timer). Repeated RUNS times; the
# table shows the median of the runs.
#   Benchmarks/preemption.sh [RUNS]     (needs scripts/build.sh first; default 3 runs)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-3}
apus="$(cd "$repo" && swift build -c release --show-bin-path)/apus"
[ -x "$apus" ] || { echo "preemption.sh: $apus is missing: run scripts/build.sh first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
musl-gcc -static -O2 -o "$work/preempt" "$repo/Benchmarks/guests/preempt.c" -lpthread
for i in $(seq 1 "$runs"); do
    "$work/preempt" > "$work/native.$i.txt"
    "$apus" run "$work/preempt" > "$work/apus.$i.txt"
    "$apus" run --vmm qemu "$work/preempt" > "$work/qemu.$i.txt"
done
python3 - "$work" "$runs" <<'PY'
import statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
def load(name):
    rows = [dict((l.split()[0], float(l.split()[1])) for l in open(f"{work}/{name}.{i}.txt")) for i in range(1, runs + 1)]
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}
native, apus, qemu = load("native"), load("apus"), load("qemu")
print(f"Preemption: median of {runs} runs (each the median of 7 rounds inside the program)\n")
print(f"| {'measure':<52} | {'native':>9} | {'apus':>9} | {'qemu':>9} |")
print(f"|{'-'*54}|{'-'*10}:|{'-'*10}:|{'-'*10}:|")
def slowdown(d): return 100.0 * (1.0 - d["loop-timer"] / d["loop"])
rows = [
    ("compute loop, iterations per ms (no interruption)", lambda d: f"{d['loop']:9.0f}"),
    ("same loop interrupted 100×/s: slower by (%)", lambda d: f"{slowdown(d):9.2f}"),
    ("one interruption: preemption + handler + sigreturn (µs)", lambda d: f"{d['interrupt'] / 1000:9.1f}"),
    ("sleeper wakes late by, another thread spinning (µs)", lambda d: f"{d['wakeup'] / 1000:9.1f}"),
]
for label, f in rows:
    print(f"| {label:<52} | {f(native)} | {f(apus)} | {f(qemu)} |")
print(f"\napus ÷ native, compute loop without interruption: {apus['loop'] / native['loop']:.3f}; "
      f"with 100 interruptions a second: {apus['loop-timer'] / native['loop-timer']:.3f}")
PY
