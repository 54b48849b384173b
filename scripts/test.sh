#!/usr/bin/env bash
# The whole test suite: builds everything once (scripts/build.sh: kernel, CLI, test guests),
# then runs the host unit tests and the integration tests, which boot every test guest
# natively, under the apus VMM (/dev/kvm) and under QEMU, and compare their output; last,
# short fuzzing runs (scripts/fuzz.sh).
# With CI=true a missing /dev/kvm or QEMU is a failure, not a skip.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/build.sh
export APUS_BIN="$(swift build -c release --show-bin-path)/apus"
export APUS_GUESTS="$repo/out/guests"
swift test --disable-swift-testing
# Every parser of untrusted input under libFuzzer + ASan, 30 s each (about 4.5 minutes with the
# build): any crash, failed invariant, leak or timeout fails the suite.
scripts/fuzz.sh 30
