#!/usr/bin/env bash
# Builds the Apus kernel: the portable modules and Kernel/Sources in Embedded Swift for
# x86_64-unknown-none-elf, arch/entry.S with clang, linked by ld.lld with linker.ld.
#   Kernel/build.sh [OUTDIR]      (default: <repo>/.build/kernel)
# Output: OUTDIR/apus-kernel.elf (with symbols, for crash reports and debugging) and
# OUTDIR/apus-kernel.stripped.elf (what is measured against the size budget).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
out=${1:-$repo/.build/kernel}
mkdir -p "$out/modules"

swiftc=${SWIFTC:-swiftc}
clang=${CLANG:-clang}
lld=${LD_LLD:-ld.lld}
for tool in "$swiftc" "$clang" "$lld"; do
    command -v "$tool" >/dev/null || { echo "Kernel/build.sh: $tool not found (a Swift 6 toolchain provides swiftc, clang and ld.lld)" >&2; exit 1; }
done

target=x86_64-unknown-none-elf
# -Osize: the kernel must stay small. No red zone is needed: interrupts are only enabled in
# halt_until_interrupt (arch/entry.S), never while Swift code runs.
swift_flags=(-enable-experimental-feature Embedded -target "$target" -wmo -Osize -parse-as-library
             -warnings-as-errors -swift-version 5 -Xfrontend -disable-stack-protector
             -Xcc -ffreestanding -Xcc -mno-red-zone -I "$out/modules")

objects=()
# The vDSO: a small shared object of its own, embedded in the kernel image.
"$clang" --target="$target" -fPIC -c "$here/vdso/vdso.S" -o "$out/vdso.o"
"$lld" -shared -soname linux-vdso.so.1 --hash-style=both --version-script "$here/vdso/vdso.ver" \
    -T "$here/vdso/vdso.lds" -z max-page-size=4096 --build-id=none -z noexecstack \
    -o "$out/vdso.so" "$out/vdso.o"
# The kernel carries the vDSO without its data page (page 1), which must be all zeros.
cmp -s -n 4096 <(tail -c +4097 "$out/vdso.so") /dev/zero || { echo "Kernel/build.sh: the vDSO's data page (page 1) is not empty" >&2; exit 1; }
"$clang" --target="$target" -DVDSO_PATH="\"$out/vdso.so\"" -c "$here/arch/vdso_blob.S" -o "$out/vdso_blob.o"
objects+=("$out/vdso_blob.o")

# Every Swift module goes through LLVM IR, compiled to LLVM bitcode objects (-flto=full): the
# linker optimizes the whole kernel as one module (cross-module inlining, dead code across
# modules; 20 KB smaller than separate objects) and drops what the kernel never calls (the
# portable modules' host-only API). The code is position independent (-fPIC and, for the
# link-time code generation, relocation-model=pic): the kernel runs at 0x7fff_0010_0000,
# outside every non-PIC code model.
ir_flags=(--target="$target" -Oz -fPIC -ffunction-sections -fdata-sections -mno-red-zone -flto=full)
# Portable modules, in dependency order (the same sources the host package builds).
for module in GuestABI ELF ImageFormat LinuxABI VFS NetStack; do
    "$swiftc" "${swift_flags[@]}" -module-name "$module" \
        -emit-module -emit-module-path "$out/modules/$module.swiftmodule" \
        -emit-ir "$repo"/Sources/"$module"/*.swift -o "$out/$module.ll"
    "$clang" "${ir_flags[@]}" -c "$out/$module.ll" -o "$out/$module.o"
    objects+=("$out/$module.o")
done

# Kernel/Sources: one folder per part (process, memory, files, net, drivers, platform, time).
mapfile -t kernel_sources < <(find "$here/Sources" -name '*.swift' | sort)
"$swiftc" "${swift_flags[@]}" -module-name Kernel -I "$here/include" \
    -emit-ir "${kernel_sources[@]}" -o "$out/Kernel.ll"
"$clang" "${ir_flags[@]}" -c "$out/Kernel.ll" -o "$out/Kernel.o"
objects+=("$out/Kernel.o")

"$clang" --target="$target" -ffunction-sections -c "$here/arch/entry.S" -o "$out/entry.o"
objects+=("$out/entry.o")

# A static PIE: each boot runs the kernel at a random place (KernelLayout) and arch/entry.S
# applies .rela.dyn's R_X86_64_RELATIVE entries first; it can apply no other kind.
"$lld" -static -nostdlib -pie --no-dynamic-linker --apply-dynamic-relocs --gc-sections \
    -z max-page-size=4096 -z noexecstack \
    --lto-O2 -mllvm -relocation-model=pic -mllvm -enable-machine-outliner \
    -T "$here/linker.ld" -o "$out/apus-kernel.elf" "${objects[@]}"
objcopy=$(dirname "$(command -v "$clang")")/llvm-objcopy
[ -x "$objcopy" ] || objcopy=objcopy
readelf=$(dirname "$(command -v "$clang")")/llvm-readelf
[ -x "$readelf" ] || readelf=readelf
relocations=$("$readelf" -r "$out/apus-kernel.elf")
if grep -E ' R_X86_64_' <<<"$relocations" | grep -v ' R_X86_64_RELATIVE '; then
    echo "Kernel/build.sh: the kernel has relocations other than R_X86_64_RELATIVE (above)" >&2
    exit 1
fi
"$objcopy" --strip-all "$out/apus-kernel.elf" "$out/apus-kernel.stripped.elf"
echo "kernel: $out/apus-kernel.elf ($(stat -c %s "$out/apus-kernel.stripped.elf") bytes stripped)"
