import ELF
import Foundation
import XCTest

final class ELFParsingTests: XCTestCase {
    func testMinimalStaticExecutable() throws {
        let bytes = ELFBuilder().build()
        try bytes.withUnsafeBytes { raw in
            let file = try ELFFile(bytes: raw)
            try file.validateForLoading()
            XCTAssertEqual(file.type, .executable)
            XCTAssertEqual(file.entry, 0x40_1000)
            XCTAssertEqual(file.programHeaderOffset, 64)
            XCTAssertEqual(file.programHeaderEntrySize, 56)
            XCTAssertEqual(file.programHeaderCount, 2)
            XCTAssertNil(file.interpreter)
            XCTAssertFalse(file.isStaticPIE)
            XCTAssertEqual(file.loadRange.low, 0x40_1000)
            XCTAssertEqual(file.loadRange.high, 0x40_3000)
            let text = file.programHeader(at: 0)
            XCTAssertTrue(text.isLoad && text.readable && text.executable && !text.writable)
            XCTAssertEqual(text.offset, 0x1000)
            XCTAssertEqual(text.fileSize, 0x100)
            let data = file.programHeaders[1]
            XCTAssertTrue(data.writable && !data.executable)
            XCTAssertEqual(data.memorySize, 0x200)
            XCTAssertEqual(file.programHeaders.map(\.virtualAddress), [0x40_1000, 0x40_2000])
            XCTAssertNil(file.programHeaderAddress, "the table is in no PT_LOAD")
        }
    }

    func testDynamicExecutableInterpreter() throws {
        let bytes = ELFBuilder.withInterpreter("/lib/ld-musl-x86_64.so.1").build()
        try bytes.withUnsafeBytes { raw in
            let file = try ELFFile(bytes: raw)
            try file.validateForLoading()
            XCTAssertEqual(file.type, .sharedObject)
            XCTAssertEqual(string(file.interpreter), "/lib/ld-musl-x86_64.so.1")
            XCTAssertFalse(file.isStaticPIE)
            XCTAssertEqual(file.loadRange.low, 0)
            XCTAssertEqual(file.loadRange.high, 0x2000)
            XCTAssertEqual(file.programHeaderAddress, 64, "inside the PT_LOAD at offset 0")
        }
    }

    func testStaticPIE() throws {
        var builder = ELFBuilder()
        builder.type = 3
        builder.entry = 0x1000
        builder.segments = [
            .init(flags: PF_R | PF_X, offset: 0x1000, vaddr: 0x1000, filesz: 0x100, memsz: 0x100),
        ]
        builder.size = 0x1100
        try builder.build().withUnsafeBytes { raw in
            let file = try ELFFile(bytes: raw)
            try file.validateForLoading()
            XCTAssertTrue(file.isStaticPIE)
        }
    }

    func testLoadRangeRoundsToPages() throws {
        var builder = ELFBuilder()
        builder.entry = 0x40_1123
        builder.segments = [
            .init(flags: PF_R | PF_X, offset: 0x1123, vaddr: 0x40_1123, filesz: 0x10, memsz: 0x10),
            .init(flags: PF_R | PF_W, offset: 0x1200, vaddr: 0x40_5200, filesz: 0x10, memsz: 0x1000),
        ]
        builder.size = 0x1300
        try builder.build().withUnsafeBytes { raw in
            let file = try ELFFile(bytes: raw)
            try file.validateForLoading()
            XCTAssertEqual(file.loadRange.low, 0x40_1000)
            XCTAssertEqual(file.loadRange.high, 0x40_7000)
        }
    }

    func testProgramHeaderAddressPrefersPT_PHDR() throws {
        var builder = ELFBuilder()
        builder.segments.insert(.init(type: PT_PHDR, flags: PF_R, offset: 64, vaddr: 0x40_0040,
                                      filesz: 3 * 56, memsz: 3 * 56, align: 8), at: 0)
        try builder.build().withUnsafeBytes { raw in
            XCTAssertEqual(try ELFFile(bytes: raw).programHeaderAddress, 0x40_0040)
        }
    }

    func testNonLoadSegmentsAreIgnoredByLoadChecks() throws {
        var builder = ELFBuilder()
        builder.segments.insert(.init(type: PT_GNU_STACK, flags: PF_R | PF_W, offset: 0, vaddr: 0,
                                      filesz: 0, memsz: 0, align: 16), at: 0)
        builder.segments.append(.init(type: PT_GNU_RELRO, flags: PF_R, offset: 0x2000, vaddr: 0x40_2000,
                                      filesz: 0x10, memsz: 0x10, align: 1))
        XCTAssertNil(elfError(builder.build()))
    }

    func testMessages() {
        XCTAssertEqual(ELFError.notELF.message, "not an ELF file (bad magic)")
        XCTAssertEqual(ELFError.wrongMachine(183).message, "ELF for machine 183 (AArch64), expected x86-64 (62)")
        XCTAssertEqual(ELFError.entryOutsideSegments(entry: 0x1234).message,
                       "ELF entry point 0x1234 is not inside an executable segment")
        XCTAssertFalse(ELFError.truncated.message.isEmpty)
    }
}

final class ELFMalformedTests: XCTestCase {
    func valid() -> [UInt8] { ELFBuilder().build() }

    func testEmptyAndTiny() {
        XCTAssertEqual(elfError([]), .truncated)
        XCTAssertEqual(elfError([0x7f, 0x45, 0x4c]), .truncated)
        XCTAssertEqual(elfError(Array(valid()[0..<63])), .truncated)
        XCTAssertEqual(elfError(Array(valid()[0..<5])), .truncated)
    }

    func testBadMagic() {
        var b = valid(); b[1] = 0x46
        XCTAssertEqual(elfError(b), .notELF)
        XCTAssertEqual(elfError(Array("#!/bin/sh\necho hi\n".utf8)), .notELF)
    }

    func testClassDataVersion() {
        var b = valid(); b[4] = 1
        XCTAssertEqual(elfError(b), .not64Bit(1))
        XCTAssertEqual(elfError(Array(b[0..<52])), .not64Bit(1), "an ELF32-sized header still reports its class")
        b = valid(); b[5] = 2
        XCTAssertEqual(elfError(b), .notLittleEndian(2))
        b = valid(); b[6] = 0
        XCTAssertEqual(elfError(b), .badVersion(0))
        b = valid(); b.put32(2, at: 20)
        XCTAssertEqual(elfError(b), .badVersion(2))
    }

    func testMachineAndType() {
        var builder = ELFBuilder()
        builder.machine = 183
        XCTAssertEqual(elfError(builder.build()), .wrongMachine(183))
        builder = ELFBuilder(); builder.type = 1
        XCTAssertEqual(elfError(builder.build()), .notExecutableType(1))
        builder.type = 4
        XCTAssertEqual(elfError(builder.build()), .notExecutableType(4))
        XCTAssertTrue(ELFError.notExecutableType(1).message.contains("REL"))
    }

    func testProgramHeaderTable() {
        var b = valid(); b.put64(0x10_0000, at: 32)
        XCTAssertEqual(elfError(b), .badProgramHeaderTable, "phoff past end")
        b = valid(); b.put64(UInt64.max - 8, at: 32)
        XCTAssertEqual(elfError(b), .badProgramHeaderTable, "phoff + table size overflows")
        b = valid(); b.put16(0xffff, at: 56); b.put16(0xffff, at: 54)
        XCTAssertEqual(elfError(b), .badProgramHeaderTable, "phnum * phentsize beyond the file")
        b = valid(); b.put16(0xfffe, at: 56)
        XCTAssertEqual(elfError(b), .badProgramHeaderTable)
        b = valid(); b.put16(32, at: 54)
        XCTAssertEqual(elfError(b), .badProgramHeaderTable, "wrong phentsize")
        b = valid(); b.put16(0, at: 56)
        XCTAssertEqual(elfError(b), .noLoadableSegments)
    }

    func testSegmentPastEndOfFile() {
        var builder = ELFBuilder()
        builder.segments[1].filesz = 0x100
        XCTAssertEqual(elfError(builder.build()), .segmentOutsideFile(index: 1))
        builder = ELFBuilder()
        builder.segments[1].offset = UInt64.max - 0xfff  // offset + filesz overflows
        builder.segments[1].vaddr = 0x40_2000 + (UInt64.max - 0xfff) % 0x1000
        XCTAssertEqual(elfError(builder.build()), .segmentOutsideFile(index: 1))
    }

    func testFileSizeLargerThanMemorySize() {
        var builder = ELFBuilder()
        builder.segments[1].memsz = 0x8
        XCTAssertEqual(elfError(builder.build()), .fileSizeExceedsMemorySize(index: 1))
    }

    func testMisaligned() {
        var builder = ELFBuilder()
        builder.segments[1].vaddr = 0x40_2010
        XCTAssertEqual(elfError(builder.build()), .misalignedSegment(index: 1))
        builder = ELFBuilder()
        builder.segments[0].offset = 0x1001
        XCTAssertEqual(elfError(builder.build()), .misalignedSegment(index: 0))
        builder = ELFBuilder()
        builder.segments[1].align = 0x1800
        XCTAssertEqual(elfError(builder.build()), .misalignedSegment(index: 1))
    }

    func testAddressRange() {
        var builder = ELFBuilder()
        builder.segments[1].vaddr = UInt64.max & ~0xfff
        XCTAssertEqual(elfError(builder.build()), .segmentAddressOutOfRange(index: 1))
        builder.segments[1].vaddr = 0xffff_8000_0000_0000
        XCTAssertEqual(elfError(builder.build()), .segmentAddressOutOfRange(index: 1))
    }

    func testOverlappingAndUnsorted() {
        var builder = ELFBuilder()
        builder.segments[0].memsz = 0x1001
        XCTAssertEqual(elfError(builder.build()), .overlappingSegments(index: 1))
        builder = ELFBuilder()
        builder.segments.swapAt(0, 1)
        XCTAssertEqual(elfError(builder.build()), .unsortedSegments(index: 1))
    }

    func testEntryOutsideExecutableSegment() {
        var builder = ELFBuilder()
        builder.entry = 0x40_2000  // inside the writable, non-executable segment
        XCTAssertEqual(elfError(builder.build()), .entryOutsideSegments(entry: 0x40_2000))
        builder.entry = 0x40_1100  // one past the end of text
        XCTAssertEqual(elfError(builder.build()), .entryOutsideSegments(entry: 0x40_1100))
        builder.entry = 0
        XCTAssertEqual(elfError(builder.build()), .entryOutsideSegments(entry: 0))
    }

    func testBadInterpreter() {
        var builder = ELFBuilder.withInterpreter("/lib/ld.so")
        builder.blobs[0].bytes[10] = 0x41  // overwrite the NUL
        XCTAssertEqual(elfError(builder.build()), .badInterpreter)

        builder = ELFBuilder.withInterpreter("/lib/ld.so")
        builder.blobs[0].bytes[4] = 0  // interior NUL
        XCTAssertEqual(elfError(builder.build()), .badInterpreter)

        builder = ELFBuilder.withInterpreter("/lib/ld.so")
        builder.segments[0].offset = 0x10_0000
        XCTAssertEqual(elfError(builder.build()), .badInterpreter)

        builder = ELFBuilder.withInterpreter("/lib/ld.so")
        builder.segments[0].filesz = 1
        XCTAssertEqual(elfError(builder.build()), .badInterpreter)

        builder = ELFBuilder.withInterpreter("/lib/ld.so")
        builder.segments.append(builder.segments[0])
        XCTAssertEqual(elfError(builder.build()), .badInterpreter, "two PT_INTERP")
    }

    func testTLSOutsideFile() {
        var builder = ELFBuilder()
        builder.segments.append(.init(type: PT_TLS, flags: PF_R, offset: 0x2000, vaddr: 0x40_2000,
                                      filesz: 0x1000, memsz: 0x1000, align: 8))
        XCTAssertEqual(elfError(builder.build()), .segmentOutsideFile(index: 2))
    }

    /// Every prefix of a valid file (with section headers and symbols) parses or fails
    /// cleanly, and whatever parses can be fully inspected.
    func testTruncationAtEveryLength() {
        var builder = ELFBuilder.withInterpreter("/lib/ld.so")
        builder.symbols = [.init(name: "main", value: 0x1000, size: 0x20)]
        let full = builder.build()
        XCTAssertNil(elfError(full))
        for length in 0...full.count {
            let prefix = Array(full[0..<length])
            prefix.withUnsafeBytes { exerciseEverything($0) }
            if length < 64 { XCTAssertNotNil(elfError(prefix)) }
        }
    }

    /// Random byte flips (fixed seed) never trap, whether the result parses or not.
    func testRandomByteFlips() {
        var builder = ELFBuilder.withInterpreter("/lib/ld.so")
        builder.symbols = [.init(name: "main", value: 0x1000, size: 0x20),
                           .init(name: "data", value: 0x200, size: 8, type: 1)]
        let full = builder.build()
        // Bias flips toward the headers and tables, where they matter.
        let interesting = [0..<(64 + 56 * 3), 0x200..<0x210, (full.count - 0x100)..<full.count]
        var rng = SplitMix64(state: 0xA905)
        var parsed = 0
        for _ in 0..<20_000 {
            var b = full
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let region = interesting[Int.random(in: 0..<interesting.count, using: &rng)]
                b[Int.random(in: region, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            b.withUnsafeBytes { exerciseEverything($0) }
            if elfError(b) == nil { parsed += 1 }
        }
        XCTAssertGreaterThan(parsed, 0)
    }
}

final class ELFSymbolTests: XCTestCase {
    func testSyntheticSymbols() throws {
        var builder = ELFBuilder()
        builder.symbols = [
            .init(name: "data", value: 0x40_2000, size: 8, type: 1),
            .init(name: "label", value: 0x40_1000, size: 0x40, type: 0),
            .init(name: "main", value: 0x40_1000, size: 0x20),
            .init(name: "undefined", value: 0x40_1000, size: 0x100, section: 0),
            .init(name: "empty", value: 0x40_1080, size: 0),
        ]
        try builder.build().withUnsafeBytes { raw in
            let file = try ELFFile(bytes: raw)
            let hit = try XCTUnwrap(file.symbol(containing: 0x40_1010))
            XCTAssertEqual(string(hit.name), "main", "a function is preferred over a NOTYPE label")
            XCTAssertEqual(hit.offset, 0x10)
            XCTAssertEqual(string(file.symbol(containing: 0x40_1030)?.name), "label")
            XCTAssertEqual(string(file.symbol(containing: 0x40_2007)?.name), "data")
            XCTAssertEqual(file.symbol(containing: 0x40_2007)?.offset, 7)
            XCTAssertNil(file.symbol(containing: 0x40_2008))
            XCTAssertNil(file.symbol(containing: 0x40_1080), "undefined and zero-size symbols never match")
        }
    }

    func testStrippedOrBrokenSectionHeaders() throws {
        XCTAssertNil(try ELFBuilder().build().withUnsafeBytes { try ELFFile(bytes: $0).symbol(containing: 0x40_1000) })

        var builder = ELFBuilder()
        builder.symbols = [.init(name: "main", value: 0x40_1000, size: 0x20)]
        let good = builder.build()
        let shoff = Int(good[40]) | Int(good[41]) << 8 | Int(good[42]) << 16
        var corruptions: [[UInt8]] = []
        var b = good; b.put64(UInt64.max, at: 40); corruptions.append(b)                 // shoff overflow
        b = good; b.put16(40, at: 58); corruptions.append(b)                             // shentsize
        b = good; b.put32(7, at: shoff + 64 + 40); corruptions.append(b)                 // sh_link out of range
        b = good; b.put32(1, at: shoff + 128 + 4); corruptions.append(b)                 // strtab wrong type
        b = good; b.put64(UInt64.max, at: shoff + 64 + 32); corruptions.append(b)        // symtab size
        b = good; b.put64(16, at: shoff + 64 + 56); corruptions.append(b)                // entsize
        b = good; b.put64(1000, at: shoff + 128 + 32); corruptions.append(b)             // strtab past EOF
        for (i, bad) in corruptions.enumerated() {
            try bad.withUnsafeBytes { raw in
                XCTAssertNil(try ELFFile(bytes: raw).symbol(containing: 0x40_1000), "corruption \(i)")
            }
        }
        // A name offset past the string table, or a name without NUL, gives nil too.
        let symtab = Int(good[shoff + 64 + 24]) | Int(good[shoff + 64 + 25]) << 8
        b = good; b.put32(0xffff, at: symtab + 24)
        try b.withUnsafeBytes { XCTAssertNil(try ELFFile(bytes: $0).symbol(containing: 0x40_1000)) }
    }

    func testRealStaticBinaryFindsMain() throws {
        let source = "int helper(int x) { return x * 3; }\nint main(void) { return helper(2); }\n"
        guard let bytes = compile(source, compiler: "cc", flags: ["-O0", "-static"]) else {
            throw XCTSkip("cc -static unavailable")
        }
        try bytes.withUnsafeBytes { raw in
            let file = try ELFFile(bytes: raw)
            try file.validateForLoading()
            XCTAssertEqual(file.type, .executable)
            XCTAssertNil(file.interpreter)
            let main = try XCTUnwrap(findSymbol("main", in: file), "main not found")
            let hit = try XCTUnwrap(file.symbol(containing: main + 4))
            XCTAssertEqual(string(hit.name), "main")
            XCTAssertEqual(hit.offset, 4)
        }
    }

    func testRealStaticPIE() throws {
        guard let bytes = compile("int main(void) { return 0; }\n", compiler: "cc",
                                  flags: ["-O1", "-static-pie", "-fPIE"]) else {
            throw XCTSkip("cc -static-pie unavailable")
        }
        try bytes.withUnsafeBytes { raw in
            let file = try ELFFile(bytes: raw)
            try file.validateForLoading()
            XCTAssertEqual(file.type, .sharedObject)
            XCTAssertTrue(file.isStaticPIE)
        }
    }

    func testRealMuslStatic() throws {
        guard let bytes = compile("int main(void) { return 0; }\n", compiler: "musl-gcc", flags: ["-static"]) else {
            throw XCTSkip("musl-gcc unavailable")
        }
        try bytes.withUnsafeBytes { raw in
            let file = try ELFFile(bytes: raw)
            try file.validateForLoading()
            XCTAssertNil(file.interpreter)
            let main = try XCTUnwrap(findSymbol("main", in: file), "main not found")
            XCTAssertEqual(string(file.symbol(containing: main)?.name), "main")
        }
    }

    func testHostDynamicBinaries() throws {
        var tested = 0
        for path in ["/bin/ls", "/bin/sh", "/usr/bin/env"] {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let bytes = [UInt8](data)
            try bytes.withUnsafeBytes { raw in
                let file = try ELFFile(bytes: raw)
                try file.validateForLoading()
                let interpreter = try XCTUnwrap(string(file.interpreter), path)
                XCTAssertTrue(interpreter.hasPrefix("/"), interpreter)
                XCTAssertFalse(file.isStaticPIE)
                XCTAssertLessThan(file.loadRange.low, file.loadRange.high)
                XCTAssertNotNil(file.programHeaderAddress)
                _ = file.symbol(containing: file.entry)  // stripped: dynsym only, may be nil
            }
            // Prefixes of a real binary's headers fail cleanly.
            for length in stride(from: 0, through: min(bytes.count, 8192), by: 1) {
                Array(bytes[0..<length]).withUnsafeBytes { exerciseEverything($0) }
            }
            tested += 1
        }
        if tested == 0 { throw XCTSkip("no host binaries found") }
    }
}

/// The start address of the symbol `name`, found by scanning the executable segments
/// through `symbol(containing:)` itself (the API has no lookup by name).
func findSymbol(_ name: String, in file: ELFFile) -> UInt64? {
    for header in file.programHeaders where header.isLoad && header.executable {
        var address = header.virtualAddress
        while address < header.virtualAddress + header.memorySize {
            if let hit = file.symbol(containing: address), string(hit.name) == name {
                return address - hit.offset
            }
            address += 8
        }
    }
    return nil
}
