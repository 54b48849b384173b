#!/usr/bin/env bash
# Long runs of the syscall fuzzer guest (Tests/Guests/sysfuzz.c) inside VMs:
#
#   scripts/sysfuzz.sh [CALLS] [SEEDS] [FIRST_SEED]
#
# CALLS fuzzed syscalls in all (default 10,000,000), spread over SEEDS runs of one VM each
# (default 100), seeds FIRST_SEED, FIRST_SEED+1, … (default 1). Environment: VMM (apus or
# qemu; default apus), VARIANT (musl, glibc, glibc-pie; default musl), MEMORY (default: the
# apus default), TIMEOUT per run in seconds (default: 60 + 1 s per 10,000 calls).
#
# Every run must exit 0 with the fuzzer's summary: a guest kernel panic (250), a hang past
# the timeout (251), a fault of the fuzzer itself (3) or a crash of apus fails it. A failed
# run's output is kept in out/sysfuzz/seed-N.{out,err}; replay one call by call with
#   apus run --network none out/guests/sysfuzz.VARIANT SEED CALLS_PER_RUN v
# (v prints each call and its result before the next).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
calls=${1:-10000000}
seeds=${2:-100}
first=${3:-1}
vmm=${VMM:-apus}
variant=${VARIANT:-musl}
per_run=$(( (calls + seeds - 1) / seeds ))
timeout=${TIMEOUT:-$(( 60 + per_run / 10000 ))}
bin="$(swift build -c release --show-bin-path)/apus"
guest="$repo/out/guests/sysfuzz.$variant"
if [[ ! -x "$bin" || ! -x "$guest" ]]; then
    echo "sysfuzz.sh: build first (scripts/build.sh): need $bin and $guest" >&2
    exit 2
fi
memory=()
[[ -n "${MEMORY:-}" ]] && memory=(--memory "$MEMORY")
mkdir -p out/sysfuzz
total=0
failed=0
start=$(date +%s)
for (( seed = first; seed < first + seeds; seed++ )); do
    out="out/sysfuzz/seed-$seed"
    set +e
    "$bin" run --vmm "$vmm" --network none --timeout "$timeout" "${memory[@]}" "$guest" "$seed" "$per_run" \
        >"$out.out" 2>"$out.err"
    status=$?
    set -e
    if [[ $status -eq 0 ]] && grep -q '^sysfuzz: done$' "$out.out"; then
        made=$(sed -n 's/^sysfuzz: seed [0-9]*: \([0-9]*\) calls made.*/\1/p' "$out.out")
        total=$(( total + made ))
        rm -f "$out.out" "$out.err"
    else
        failed=$(( failed + 1 ))
        echo "sysfuzz.sh: seed $seed FAILED (exit $status): $(grep -v 'unimplemented syscall' "$out.err" | tail -1)" >&2
    fi
done
echo "sysfuzz.sh: $total syscalls fuzzed in $seeds runs on $vmm ($variant), $failed failed, $(( $(date +%s) - start )) s"
[[ $failed -eq 0 ]]
