import ELF
import Foundation
import XCTest

/// A deterministic pseudo-random generator (SplitMix64) so fuzz-style loops are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

extension Array where Element == UInt8 {
    mutating func put16(_ v: UInt16, at o: Int) { for i in 0..<2 { self[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func put32(_ v: UInt32, at o: Int) { for i in 0..<4 { self[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func put64(_ v: UInt64, at o: Int) { for i in 0..<8 { self[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func put(_ bytes: [UInt8], at o: Int) { replaceSubrange(o..<(o + bytes.count), with: bytes) }
}

/// Assembles small ELF64 x86-64 images for tests: header, program headers at offset 64,
/// caller-placed bytes, and optionally a .symtab/.strtab with section headers.
struct ELFBuilder {
    struct Segment {
        var type: UInt32 = PT_LOAD
        var flags: UInt32
        var offset: UInt64
        var vaddr: UInt64
        var filesz: UInt64
        var memsz: UInt64
        var align: UInt64 = 0x1000
    }
    struct Symbol {
        var name: String
        var value: UInt64
        var size: UInt64
        var type: UInt8 = 2  // STT_FUNC
        var section: UInt16 = 1
    }

    var type: UInt16 = 2
    var machine: UInt16 = 62
    var entry: UInt64 = 0x40_1000
    var segments: [Segment] = [
        Segment(flags: PF_R | PF_X, offset: 0x1000, vaddr: 0x40_1000, filesz: 0x100, memsz: 0x100),
        Segment(flags: PF_R | PF_W, offset: 0x2000, vaddr: 0x40_2000, filesz: 0x10, memsz: 0x200),
    ]
    var size = 0x2010
    var blobs: [(offset: Int, bytes: [UInt8])] = []
    var symbols: [Symbol] = []

    /// A dynamic executable: ET_DYN with a PT_INTERP naming `path`.
    static func withInterpreter(_ path: String) -> ELFBuilder {
        var b = ELFBuilder()
        b.type = 3
        b.entry = 0x1000
        b.segments = [
            Segment(type: PT_INTERP, flags: PF_R, offset: 0x200, vaddr: 0x200,
                    filesz: UInt64(path.utf8.count + 1), memsz: UInt64(path.utf8.count + 1), align: 1),
            Segment(flags: PF_R, offset: 0, vaddr: 0, filesz: 0x300, memsz: 0x300),
            Segment(flags: PF_R | PF_X, offset: 0x1000, vaddr: 0x1000, filesz: 0x100, memsz: 0x100),
        ]
        b.size = 0x1100
        b.blobs = [(0x200, Array(path.utf8) + [0])]
        return b
    }

    func build() -> [UInt8] {
        var total = size
        var symtabOffset = 0, strtabOffset = 0, shOffset = 0
        var strtab: [UInt8] = [0]
        var nameOffsets: [Int] = []
        if !symbols.isEmpty {
            for s in symbols { nameOffsets.append(strtab.count); strtab += Array(s.name.utf8) + [0] }
            symtabOffset = (total + 7) & ~7
            strtabOffset = symtabOffset + 24 * (symbols.count + 1)
            shOffset = (strtabOffset + strtab.count + 7) & ~7
            total = shOffset + 3 * 64
        }
        var b = [UInt8](repeating: 0, count: total)
        b.put([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], at: 0)
        b.put16(type, at: 16)
        b.put16(machine, at: 18)
        b.put32(1, at: 20)
        b.put64(entry, at: 24)
        b.put64(64, at: 32)
        b.put16(64, at: 52)
        b.put16(56, at: 54)
        b.put16(UInt16(segments.count), at: 56)
        for (i, s) in segments.enumerated() {
            let o = 64 + 56 * i
            b.put32(s.type, at: o)
            b.put32(s.flags, at: o + 4)
            b.put64(s.offset, at: o + 8)
            b.put64(s.vaddr, at: o + 16)
            b.put64(s.vaddr, at: o + 24)
            b.put64(s.filesz, at: o + 32)
            b.put64(s.memsz, at: o + 40)
            b.put64(s.align, at: o + 48)
        }
        for blob in blobs { b.put(blob.bytes, at: blob.offset) }
        if !symbols.isEmpty {
            for (i, s) in symbols.enumerated() {
                let o = symtabOffset + 24 * (i + 1)
                b.put32(UInt32(nameOffsets[i]), at: o)
                b[o + 4] = 0x10 | s.type  // STB_GLOBAL
                b.put16(s.section, at: o + 6)
                b.put64(s.value, at: o + 8)
                b.put64(s.size, at: o + 16)
            }
            b.put(strtab, at: strtabOffset)
            // Section 0 is null; 1 .symtab (link 2); 2 .strtab.
            b.put32(2, at: shOffset + 64 + 4)
            b.put64(UInt64(symtabOffset), at: shOffset + 64 + 24)
            b.put64(UInt64(24 * (symbols.count + 1)), at: shOffset + 64 + 32)
            b.put32(2, at: shOffset + 64 + 40)
            b.put64(24, at: shOffset + 64 + 56)
            b.put32(3, at: shOffset + 128 + 4)
            b.put64(UInt64(strtabOffset), at: shOffset + 128 + 24)
            b.put64(UInt64(strtab.count), at: shOffset + 128 + 32)
            b.put64(UInt64(shOffset), at: 40)
            b.put16(64, at: 58)
            b.put16(3, at: 60)
            b.put16(2, at: 62)
        }
        return b
    }
}

/// Parses `bytes` and runs validation, returning the first error (nil if valid).
func elfError(_ bytes: [UInt8]) -> ELFError? {
    bytes.withUnsafeBytes { raw in
        do throws(ELFError) {
            let file = try ELFFile(bytes: raw)
            try file.validateForLoading()
            return nil
        } catch {
            return error
        }
    }
}

/// Every accessor of a parsed file, to prove none traps on whatever the parser accepted.
func exerciseEverything(_ raw: UnsafeRawBufferPointer) {
    guard let file = try? ELFFile(bytes: raw) else { return }
    _ = try? file.validateForLoading()
    for header in file.programHeaders { _ = (header.isLoad, header.readable, header.writable, header.executable) }
    _ = file.interpreter
    _ = file.isStaticPIE
    _ = file.loadRange
    _ = file.programHeaderAddress
    _ = file.symbol(containing: file.entry)
    _ = file.symbol(containing: 0x40_1010)
}

func string(_ raw: UnsafeRawBufferPointer?) -> String? {
    raw.map { String(decoding: $0, as: UTF8.self) }
}

/// Compiles `source` with `compiler` and `flags` in a temporary directory; nil if the
/// compiler is missing or fails (the calling test then skips).
func compile(_ source: String, compiler: String, flags: [String]) -> [UInt8]? {
    let fm = FileManager.default
    guard let path = ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
        .map({ "\($0)/\(compiler)" }).first(where: { fm.isExecutableFile(atPath: $0) })
    else { return nil }
    let dir = fm.temporaryDirectory.appendingPathComponent("apus-elf-\(UUID().uuidString)")
    guard (try? fm.createDirectory(at: dir, withIntermediateDirectories: true)) != nil else { return nil }
    defer { try? fm.removeItem(at: dir) }
    let src = dir.appendingPathComponent("t.c"), out = dir.appendingPathComponent("t")
    guard (try? source.write(to: src, atomically: true, encoding: .utf8)) != nil else { return nil }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = flags + ["-o", out.path, src.path]
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    process.waitUntilExit()
    guard process.terminationStatus == 0, let data = fm.contents(atPath: out.path) else { return nil }
    return [UInt8](data)
}
