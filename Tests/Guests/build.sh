#!/usr/bin/env bash
# Builds the Apus guest test programs: every Tests/Guests/*.c three ways, plus the
# not-runnable artifacts the CLI tests feed to `apus run`.
#
#   Tests/Guests/build.sh [OUTDIR]      (default: <repo>/out/guests; relative OUTDIR is
#                                        taken relative to the repo root; any cwd works)
#
#   NAME.musl       musl-gcc -static -O2
#   NAME.glibc      gcc -static -O2
#   NAME.glibc-pie  gcc -static-pie -O2
#   NAME.gcc        gcc -O2 (dynamically linked against the host's glibc: apus builds an
#                   image with its interpreter and libraries)
#   truncated.elf   first 100 bytes of hello.musl
#   empty.elf       a zero-byte file
#   wrong-arch.elf  hello.musl with e_machine patched to 183 (AArch64)
#   script.sh       an executable #!/bin/sh script
#   a-directory/    a directory
#
# Symbols are kept (crash reports name functions). Up-to-date outputs are skipped.
# Environment: CC_MUSL (default musl-gcc), CC_GLIBC (default gcc), JOBS (default nproc).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-out/guests}"
case "$out" in /*) ;; *) out="$repo/$out" ;; esac

CC_MUSL="${CC_MUSL:-musl-gcc}"
CC_GLIBC="${CC_GLIBC:-gcc}"
for cc in "$CC_MUSL" "$CC_GLIBC"; do
    if ! command -v "$cc" >/dev/null 2>&1; then
        echo "build.sh: '$cc' not found — run scripts/setup.sh (it installs musl-tools and gcc)" >&2
        exit 1
    fi
done

mkdir -p "$out"
CFLAGS=(-O2 -Wall -Wextra -Wno-unused-result -fno-omit-frame-pointer)
jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"

# build SRC VARIANT: compiles one output if it is missing or older than its inputs.
build() {
    local src="$1" variant="$2" name dst cc mode
    name="$(basename "$src" .c)"
    dst="$out/$name.$variant"
    case "$variant" in
        musl) cc="$CC_MUSL"; mode=-static ;;
        glibc) cc="$CC_GLIBC"; mode=-static ;;
        glibc-pie) cc="$CC_GLIBC"; mode=-static-pie ;;
        gcc) cc="$CC_GLIBC"; mode=-pie ;;
    esac
    if [[ -x "$dst" && "$dst" -nt "$src" && "$dst" -nt "$here/common.h" && "$dst" -nt "$here/build.sh" ]]; then
        return 0
    fi
    local tmp="$dst.tmp.$$"
    if "$cc" "$mode" "${CFLAGS[@]}" -I"$here" -o "$tmp" "$src" -lm -pthread; then
        mv -f "$tmp" "$dst"
        echo "  built $name.$variant"
    else
        rm -f "$tmp"
        echo "build.sh: FAILED: $cc $mode $src" >&2
        return 1
    fi
}

pids=()
failed=0
for src in "$here"/*.c; do
    for variant in musl glibc glibc-pie gcc; do
        build "$src" "$variant" &
        pids+=($!)
        if (( ${#pids[@]} >= jobs )); then
            wait "${pids[0]}" || failed=1
            pids=("${pids[@]:1}")
        fi
    done
done
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done

# Rust guests (*.rs → NAME.rust): static glibc binaries (crt-static), when rustc is there.
# Without rustc they are skipped here and their tests say so.
if command -v rustc >/dev/null 2>&1; then
    for src in "$here"/*.rs; do
        name="$(basename "$src" .rs)"
        dst="$out/$name.rust"
        [[ -x "$dst" && "$dst" -nt "$src" ]] && continue
        if rustc -O -C target-feature=+crt-static -o "$dst.tmp.$$" "$src"; then
            mv -f "$dst.tmp.$$" "$dst"
            echo "  built $name.rust"
        else
            rm -f "$dst.tmp.$$"
            echo "build.sh: FAILED: rustc $src" >&2
            failed=1
        fi
    done
else
    echo "build.sh: rustc not found: Rust guests not built" >&2
fi

# The Swift guest (Tests/Guests/swift → swifthello): `swift build -c release`, dynamically
# linked against the Swift runtime and glibc, when swift is there.
if command -v swift >/dev/null 2>&1; then
    if swift build -c release --package-path "$here/swift" --scratch-path "$out/.swift-build" >/dev/null; then
        cp -f "$out/.swift-build/release/swifthello" "$out/swifthello"
    else
        echo "build.sh: FAILED: swift build of Tests/Guests/swift" >&2
        failed=1
    fi
else
    echo "build.sh: swift not found: the Swift guest is not built" >&2
fi

# Go guests (*.go → NAME.go): static (CGO_ENABLED=0), when go is there.
if command -v go >/dev/null 2>&1; then
    for src in "$here"/*.go; do
        name="$(basename "$src" .go)"
        dst="$out/$name.go"
        [[ -x "$dst" && "$dst" -nt "$src" ]] && continue
        if (cd "$(dirname "$src")" && CGO_ENABLED=0 GOCACHE="${GOCACHE:-$out/.gocache}" GOFLAGS=-mod=mod \
                go build -o "$dst.tmp.$$" "$src"); then
            mv -f "$dst.tmp.$$" "$dst"
            echo "  built $name.go"
        else
            rm -f "$dst.tmp.$$"
            echo "build.sh: FAILED: go build $src" >&2
            failed=1
        fi
    done
else
    echo "build.sh: go not found: Go guests not built" >&2
fi
if (( failed )); then
    echo "build.sh: some guests failed to build" >&2
    exit 1
fi

# Not-runnable artifacts (cheap; always rewritten so they stay consistent with hello.musl).
head -c 100 "$out/hello.musl" > "$out/truncated.elf"
: > "$out/empty.elf"
cp -f "$out/hello.musl" "$out/wrong-arch.elf"
printf '\xb7\x00' | dd of="$out/wrong-arch.elf" bs=1 seek=18 count=2 conv=notrunc status=none
printf '#!/bin/sh\necho "I am a shell script"\n' > "$out/script.sh"
chmod +x "$out/truncated.elf" "$out/empty.elf" "$out/wrong-arch.elf" "$out/script.sh"
mkdir -p "$out/a-directory"

echo "guests in $out"
