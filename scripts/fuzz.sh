#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/, docs/ARCHITECTURE.md "Fuzzing") with AddressSanitizer
# and runs each for SECONDS (default 45) on a scratch copy of its seed corpus, one after the
# other. Fails on any crash, failed invariant, leak, timeout or out-of-memory, naming the
# reproducer (replay it with `.build-fuzz/release/<Harness> <file>`).
#
#   scripts/fuzz.sh                 every harness, 45 s each (what CI runs, with less time)
#   scripts/fuzz.sh 3600 FuzzELF    one harness for an hour
#
# The repository's corpus is only read: a run works on a scratch copy, deleted afterwards.
# A failing run leaves its reproducer and its log in .build-fuzz/findings/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

seconds=${1:-45}
shift || true
harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
    harnesses=(FuzzELF FuzzImage FuzzGuestABI FuzzVirtio FuzzNetStack)
fi
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number, got '$seconds'" >&2; exit 2 ;; esac

# libFuzzer without its main (the harnesses have their own, see Fuzz/Sources/FuzzSupport), so
# the coverage flags of -sanitize=fuzzer are spelled out and the runtime is linked by hand.
runtime=$(ls -d "$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")"/lib/clang/*/lib/linux | head -1)
fuzzer_lib="$runtime/libclang_rt.fuzzer_no_main-x86_64.a"
[ -f "$fuzzer_lib" ] || { echo "fuzz.sh: libFuzzer not found in the toolchain ($fuzzer_lib)" >&2; exit 2; }
build=(swift build -c release --package-path Fuzz --build-path "$repo/.build-fuzz"
       -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table
       -Xlinker "$fuzzer_lib" -Xlinker -lstdc++)
echo "== building the fuzz harnesses"
start=$(date +%s)
mkdir -p "$repo/.build-fuzz"
for h in "${harnesses[@]}"; do
    [ -d "Fuzz/Sources/$h" ] || { echo "fuzz.sh: no harness named $h (see Fuzz/Sources)" >&2; exit 2; }
    if ! "${build[@]}" --product "$h" >"$repo/.build-fuzz/build.log" 2>&1; then
        grep -E "error" "$repo/.build-fuzz/build.log" | head -20 >&2
        echo "fuzz.sh: building $h failed (log: .build-fuzz/build.log)" >&2
        exit 1
    fi
done

echo "   built in $(( $(date +%s) - start )) s"
bin=$("${build[@]}" --show-bin-path)

scratch=$(mktemp -d "${TMPDIR:-/tmp}/apus-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
findings="$repo/.build-fuzz/findings"
failed=0
for h in "${harnesses[@]}"; do
    mkdir -p "$scratch/$h" "$findings"
    cp -R "Fuzz/Corpus/$h/." "$scratch/$h/"
    log="$scratch/$h.log"
    # The Swift runtime's own crash backtracer would race ASan's report (and can hang).
    status=0
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
        "$bin/$h" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$findings/$h-" "$scratch/$h" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
    coverage=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
    if [ "$status" -eq 0 ] && ! grep -qE '^==[0-9]+==ERROR|^SUMMARY: |Test unit written to' "$log"; then
        printf '%-13s %10s runs  %7s exec/s  %-22s peak RSS %5s MB  0 crashes\n' \
            "$h" "${runs:-?}" "${speed:-?}" "${coverage:-cov: ?}" "${rss:-?}"
    else
        failed=1
        echo "$h FAILED (exit status $status) after ${runs:-?} runs:"
        grep -E 'invariant violated|Fatal error|^==[0-9]+==ERROR|^SUMMARY|ERROR: libFuzzer' "$log" | head -5 | sed 's/^/    /'
        reproducer=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$log" | tail -1)
        echo "    reproducer: ${reproducer:-(none written; see the log)}"
        cp "$log" "$findings/$h.log"
        echo "    log: $findings/$h.log"
    fi
done
exit $failed
