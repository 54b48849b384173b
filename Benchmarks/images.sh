#!/usr/bin/env bash
# Image benchmark: Debian's own dynamically linked programs as Apus images.
#   Benchmarks/images.sh [RUNS]     (default 10 runs per case; needs scripts/build.sh first)
# Measures, in one run:
#   - `apus build` of a python3 image (cold: empty store; warm: unchanged inputs, a cache hit)
#   - the image's size against the sum of the files in it
#   - `apus run` of a python3 one-liner end to end, against native python3 and under QEMU
#   - the same for node's -e one-liner, when node is installed
# Uses a temporary APUS_HOME, so the user's store is untouched. Prints a table of medians.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-10}
apus="$(cd "$repo" && swift build -c release --show-bin-path)/apus"
[ -x "$apus" ] || { echo "images.sh: $apus is missing: run scripts/build.sh first" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "images.sh: hyperfine is missing: run scripts/setup.sh" >&2; exit 1; }
# Debian's own binaries (not whatever a version manager puts first on PATH).
python=$(readlink -f /usr/bin/python3)
[ -x "$python" ] || { echo "images.sh: /usr/bin/python3 is missing: run scripts/setup.sh" >&2; exit 1; }
pylib="/usr/lib/python3.$("$python" -c 'import sys; print(sys.version_info[1])')"
work=$(mktemp -d)
export APUS_HOME="$work/store"
trap 'rm -rf "$work"' EXIT
oneliner='import json,hashlib,sqlite3,threading; print(json.dumps({"sha": hashlib.sha256(b"apus").hexdigest()[:12], "sqlite": sqlite3.sqlite_version, "threads": threading.active_count()}))'

# Build: cold (each run into an empty store), then warm (the cache hit).
hyperfine --style none --runs "$runs" -N --prepare "rm -rf $APUS_HOME" --export-json "$work/build-cold.json" \
    "$apus build -t py $python --add $pylib" >/dev/null
"$apus" build -t py "$python" --add "$pylib" >/dev/null
hyperfine --style none --warmup 1 --runs "$runs" -N --export-json "$work/build-warm.json" \
    "$apus build -t py $python --add $pylib" >/dev/null

# Run: the one-liner natively, in apus (the stored image) and under QEMU.
cases=(-n native "$python -c '$oneliner'" -n apus "$apus run -m 512M py -c '$oneliner'"
       -n qemu "$apus run --vmm qemu -m 512M py -c '$oneliner'")
hyperfine --style none --warmup 2 --runs "$runs" --export-json "$work/python.json" "${cases[@]}" >/dev/null

node=""
[ -x /usr/bin/node ] && node=/usr/bin/node
if [ -n "$node" ]; then
    node=$(readlink -f "$node")
    "$apus" build -t nodeimg "$node" >/dev/null
    js='Promise.resolve(20).then(x => setTimeout(() => console.log("done", x + 1), 5))'
    hyperfine --style none --warmup 2 --runs "$runs" --export-json "$work/node.json" \
        -n native "$node -e '$js'" -n apus "$apus run -m 1G nodeimg -e '$js'" >/dev/null
fi

# Image size vs the sum of the files it holds (apus inspect lists them).
"$apus" inspect --json py > "$work/inspect.json"

python3 - "$work" "$runs" "$python" "$pylib" <<'PY'
import json, os, statistics, sys
work, runs, python, pylib = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
def medians(name):
    path = os.path.join(work, name)
    if not os.path.exists(path):
        return {}
    return {r["command"]: statistics.median(r["times"]) * 1000 for r in json.load(open(path))["results"]}
cold = list(medians("build-cold.json").values())[0]
warm = list(medians("build-warm.json").values())[0]
py = medians("python.json")
node = medians("node.json")
inspect = json.load(open(os.path.join(work, "inspect.json")))
image_size, image_files = inspect["size"], inspect["fileBytes"]
file_sum = 0
for dp, _, fs in os.walk(pylib):
    for f in fs:
        p = os.path.join(dp, f)
        if os.path.isfile(p) and not os.path.islink(p):
            file_sum += os.path.getsize(p)
print(f"Image benchmark: medians of {runs} runs each\n")
print(f"| {'case':<52} | {'median ms':>9} | {'× native':>8} | {'× qemu':>7} |")
print(f"|{'-'*54}|{'-'*11}:|{'-'*9}:|{'-'*8}:|")
rows = [("python3 one-liner, native", py["native"], py["native"], py["qemu"]),
        ("apus run py (python3 one-liner, end to end)", py["apus"], py["native"], py["qemu"]),
        ("apus run --vmm qemu py (QEMU microvm, TCG)", py["qemu"], py["native"], py["qemu"])]
if node:
    rows += [("node -e (Promise + setTimeout), native", node["native"], node["native"], None),
             ("apus run nodeimg -e (end to end)", node["apus"], node["native"], None)]
for name, ms, native, qemu in rows:
    q = f"{ms / qemu:7.3f}" if qemu else f"{'':>7}"
    print(f"| {name:<52} | {ms:9.1f} | {ms / native:8.2f} | {q} |")
print()
print(f"| {'build':<52} | {'median ms':>9} |")
print(f"|{'-'*54}|{'-'*11}:|")
print(f"| {'apus build -t py python3 --add ' + os.path.basename(pylib) + ' (empty store)':<52} | {cold:9.1f} |")
print(f"| {'the same again (unchanged inputs: cache hit)':<52} | {warm:9.1f} |")
print()
print(f"python3 image: {image_size / 2**20:.1f} MiB holding {image_files / 2**20:.1f} MiB of files "
      f"(the rest: the index and each file padded to 4 KiB); the standard library directory alone is "
      f"{file_sum / 2**20:.1f} MiB of files")
PY
