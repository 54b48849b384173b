#!/usr/bin/env bash
# Boot benchmark: how long `apus run hello` takes, end to end, against the same static
# program run natively and booted by QEMU (microvm, TCG) with the same kernel.
#   Benchmarks/boot.sh [RUNS]     (default 30 runs per case; needs scripts/build.sh first)
# Prints a table of medians and ratios; the README shows its latest output.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-30}
apus="$(cd "$repo" && swift build -c release --show-bin-path)/apus"
hello="$repo/out/guests/hello.musl"
for f in "$apus" "$hello"; do
    [ -x "$f" ] || { echo "boot.sh: $f is missing: run scripts/build.sh first" >&2; exit 1; }
done
command -v hyperfine >/dev/null || { echo "boot.sh: hyperfine is missing: run scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# End to end, each command's output discarded, `runs` runs after 3 warm-ups.
hyperfine --style none --warmup 3 --runs "$runs" -N --export-json "$work/e2e.json" \
    -n native "$hello" \
    -n apus "$apus run $hello" \
    -n qemu "$apus run --vmm qemu $hello" >/dev/null

# The parts --timings reports, from `runs` separate runs.
for _ in $(seq "$runs"); do "$apus" run --timings "$hello" 2>>"$work/timings.txt" >/dev/null; done

python3 - "$work/e2e.json" "$work/timings.txt" "$runs" <<'PY'
import json, re, statistics, sys
e2e = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
med = {name: statistics.median(r["times"]) * 1000 for name, r in e2e.items()}
runs = {}
for block in open(sys.argv[2]).read().split("apus: timeline")[1:]:
    stamps = dict((k.strip(), float(v)) for k, v in re.findall(r"^\s+([\w ]+?)\s+([\d.]+) ms", block, re.M))
    for key, value in stamps.items():
        runs.setdefault(key, []).append(value)
def stamp(name): return statistics.median(runs[name])
vmm = stamp("first KVM_RUN")                        # process start of main → guest starts
guest = stamp("app exit") - stamp("kernel entry")   # kernel entry → program exit, in the guest
boot = stamp("app entry") - stamp("kernel entry")   # kernel entry → program entry
rows = [
    ("native ./hello (host process)", med["native"]),
    ("apus run hello (end to end)", med["apus"]),
    ("  apus: main → first KVM_RUN (VMM setup)", vmm),
    ("  apus: kernel entry → app entry (guest boot)", boot),
    ("  apus: kernel entry → app exit (guest total)", guest),
    ("apus run --vmm qemu hello (QEMU microvm, TCG)", med["qemu"]),
]
print(f"Boot benchmark: median of {sys.argv[3]} runs each\n")
print(f"| {'case':<48} | {'median ms':>9} | {'× native':>8} | {'× qemu':>7} |")
print(f"|{'-'*50}|{'-'*11}:|{'-'*9}:|{'-'*8}:|")
for name, ms in rows:
    print(f"| {name:<48} | {ms:9.2f} | {ms / med['native']:8.1f} | {ms / med['qemu']:7.3f} |")
PY
