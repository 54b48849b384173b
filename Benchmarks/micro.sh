#!/usr/bin/env bash
# Micro benchmarks: syscall round trip, clock_gettime, thread create/join and a pipe
# ping-pong between two threads, measured inside one static program (Benchmarks/guests/
# micro.c, median of 7 rounds each), run natively, under `apus run` and `apus run --vmm qemu`.
#   Benchmarks/micro.sh     (needs scripts/build.sh first)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
apus="$(cd "$repo" && swift build -c release --show-bin-path)/apus"
[ -x "$apus" ] || { echo "micro.sh: $apus is missing: run scripts/build.sh first" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
musl-gcc -static -O2 -o "$work/micro" "$repo/Benchmarks/guests/micro.c" -lpthread
"$work/micro" > "$work/native.txt"
"$apus" run "$work/micro" > "$work/apus.txt"
"$apus" run --vmm qemu "$work/micro" > "$work/qemu.txt"
python3 - "$work" <<'PY'
import sys
def load(name):
    return dict((l.split()[0], float(l.split()[1])) for l in open(f"{sys.argv[1]}/{name}.txt"))
native, apus, qemu = load("native"), load("apus"), load("qemu")
labels = {"getppid": "syscall round trip (getppid)", "clock_gettime": "clock_gettime(MONOTONIC)",
          "thread": "pthread_create + join", "pipe-pingpong": "pipe ping-pong (2 threads)"}
print("Micro benchmarks: ns per operation, median of 7 rounds inside the program\n")
print(f"| {'operation':<30} | {'native':>9} | {'apus':>9} | {'qemu':>10} | {'apus ÷ native':>13} |")
print(f"|{'-'*32}|{'-'*10}:|{'-'*10}:|{'-'*11}:|{'-'*14}:|")
for k in ["getppid", "clock_gettime", "thread", "pipe-pingpong"]:
    print(f"| {labels[k]:<30} | {native[k]:9.1f} | {apus[k]:9.1f} | {qemu[k]:10.1f} | {apus[k]/native[k]:13.1f} |")
PY
