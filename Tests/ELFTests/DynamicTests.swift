import ELF
import Foundation
import XCTest

/// A small ET_DYN image with a dynamic section: a read-only PT_LOAD over [0, 0x800) holding
/// the string table at 0x400 and the dynamic table at 0x600 (PT_DYNAMIC), and an
/// executable PT_LOAD at 0x1000. `entries` gets each string's offset in the table.
func dynamicImage(strings: [String], strtab: UInt64 = 0x400,
                  entries: ([UInt64]) -> [(UInt64, UInt64)]) -> [UInt8] {
    var table: [UInt8] = [0]
    var offsets: [UInt64] = []
    for s in strings {
        offsets.append(UInt64(table.count))
        table += Array(s.utf8) + [0]
    }
    precondition(table.count <= 0x200)
    let dynamic = entries(offsets)
    precondition(dynamic.count <= 32)
    var dynamicBytes = [UInt8](repeating: 0, count: dynamic.count * 16)
    for (i, entry) in dynamic.enumerated() {
        dynamicBytes.put64(entry.0, at: 16 * i)
        dynamicBytes.put64(entry.1, at: 16 * i + 8)
    }
    var builder = ELFBuilder()
    builder.type = 3
    builder.entry = 0x1000
    builder.segments = [
        .init(flags: PF_R, offset: 0, vaddr: 0, filesz: 0x800, memsz: 0x800),
        .init(flags: PF_R | PF_X, offset: 0x1000, vaddr: 0x1000, filesz: 0x100, memsz: 0x100),
        .init(type: PT_DYNAMIC, flags: PF_R, offset: 0x600, vaddr: 0x600,
              filesz: UInt64(dynamicBytes.count), memsz: UInt64(dynamicBytes.count), align: 8),
    ]
    builder.size = 0x1100
    builder.blobs = [(Int(strtab), table), (0x600, dynamicBytes)]
    return builder.build()
}

/// One dynamic table entry (d_tag, d_val); a function so that literals take UInt64.
func entry(_ tag: UInt64, _ value: UInt64) -> (UInt64, UInt64) { (tag, value) }

/// The usual synthetic library: two DT_NEEDED, DT_SONAME, DT_RUNPATH, DT_RPATH, DT_FLAGS_1.
func standardDynamicImage() -> [UInt8] {
    let strings = ["libc.so.6", "libfoo.so.1", "libself.so.2", "$ORIGIN/../lib", "/opt/old"]
    return dynamicImage(strings: strings) { o in
        [entry(DT_NEEDED, o[0]), entry(DT_NEEDED, o[1]), entry(DT_SONAME, o[2]), entry(DT_RUNPATH, o[3]), entry(DT_RPATH, o[4]),
         entry(DT_STRTAB, 0x400), entry(DT_STRSZ, 1 + UInt64(strings.reduce(0) { $0 + $1.utf8.count + 1 })),
         entry(DT_FLAGS_1, DF_1_NOW | DF_1_NODEFLIB), entry(DT_FLAGS, DF_ORIGIN), entry(DT_NULL, 0)]
    }
}

/// Parses `bytes` (header and dynamic section only) and returns the section or the error.
func dynamicResult(_ bytes: [UInt8]) -> Result<DynamicStrings?, ELFError> {
    bytes.withUnsafeBytes { raw in
        do throws(ELFError) {
            let file = try ELFFile(bytes: raw)
            return .success(try file.dynamicSection().map(DynamicStrings.init))
        } catch {
            return .failure(error)
        }
    }
}

/// A `DynamicSection` with its views copied into Strings, comparable after the bytes go.
struct DynamicStrings: Equatable {
    var needed: [String]
    var soname: String?
    var rpath: String?
    var runpath: String?
    var flags: UInt64
    var flags1: UInt64

    init(_ d: DynamicSection) {
        needed = d.needed.map { String(decoding: $0, as: UTF8.self) }
        soname = string(d.soname)
        rpath = string(d.rpath)
        runpath = string(d.runpath)
        flags = d.flags
        flags1 = d.flags1
    }

    init(needed: [String], soname: String?, rpath: String?, runpath: String?, flags: UInt64, flags1: UInt64) {
        (self.needed, self.soname, self.rpath, self.runpath, self.flags, self.flags1) = (needed, soname, rpath, runpath, flags, flags1)
    }
}

final class DynamicTests: XCTestCase {
    func testSyntheticDynamicSection() throws {
        let parsed = try dynamicResult(standardDynamicImage()).get()
        XCTAssertEqual(parsed, DynamicStrings(needed: ["libc.so.6", "libfoo.so.1"], soname: "libself.so.2",
                                              rpath: "/opt/old", runpath: "$ORIGIN/../lib",
                                              flags: DF_ORIGIN, flags1: DF_1_NOW | DF_1_NODEFLIB))
    }

    func testNoDynamicSection() throws {
        XCTAssertNil(try dynamicResult(ELFBuilder().build()).get(), "a static executable")
        XCTAssertNil(try dynamicResult(ELFBuilder.withInterpreter("/lib/ld.so").build()).get())
        // A debug-info-only file keeps PT_DYNAMIC with no file bytes; glibc ignores it.
        var builder = ELFBuilder()
        builder.segments.append(.init(type: PT_DYNAMIC, flags: PF_R, offset: 0, vaddr: 0x40_2000,
                                      filesz: 0, memsz: 0x100, align: 8))
        XCTAssertNil(try dynamicResult(builder.build()).get())
    }

    func testNoStringsNeedNoStringTable() throws {
        let bytes = dynamicImage(strings: []) { _ in [entry(DT_FLAGS_1, DF_1_PIE), entry(DT_NULL, 0)] }
        let parsed = try XCTUnwrap(try dynamicResult(bytes).get())
        XCTAssertEqual(parsed.needed, [])
        XCTAssertNil(parsed.soname)
        XCTAssertEqual(parsed.flags1, DF_1_PIE)
    }

    /// Entries after DT_NULL are not read; a repeated DT_SONAME keeps its last value.
    func testTerminationAndRepeats() throws {
        let bytes = dynamicImage(strings: ["a.so", "b.so", "c.so"]) { o in
            [entry(DT_STRTAB, 0x400), entry(DT_SONAME, o[0]), entry(DT_SONAME, o[1]), entry(DT_NEEDED, o[0]),
             entry(DT_NULL, 0), entry(DT_NEEDED, o[2])]
        }
        let parsed = try XCTUnwrap(try dynamicResult(bytes).get())
        XCTAssertEqual(parsed.soname, "b.so")
        XCTAssertEqual(parsed.needed, ["a.so"])
    }

    func testMalformedDynamicSection() {
        // No DT_NULL.
        let unterminated = dynamicImage(strings: ["a.so"]) { o in [entry(DT_STRTAB, 0x400), entry(DT_NEEDED, o[0])] }
        XCTAssertEqual(error(unterminated), .badDynamicSection)

        // PT_DYNAMIC past the end of the file.
        var bytes = standardDynamicImage()
        bytes.put64(0x10_0000, at: 64 + 56 * 2 + 8)
        XCTAssertEqual(error(bytes), .badDynamicSection)

        // p_offset + p_filesz overflows.
        bytes = standardDynamicImage()
        bytes.put64(UInt64.max - 8, at: 64 + 56 * 2 + 32)
        XCTAssertEqual(error(bytes), .badDynamicSection)

        // Two PT_DYNAMIC.
        var builder = ELFBuilder()
        builder.segments += [
            .init(type: PT_DYNAMIC, flags: PF_R, offset: 0x2000, vaddr: 0x40_2000, filesz: 0x10, memsz: 0x10, align: 8),
            .init(type: PT_DYNAMIC, flags: PF_R, offset: 0x2000, vaddr: 0x40_2000, filesz: 0x10, memsz: 0x10, align: 8),
        ]
        XCTAssertEqual(error(builder.build()), .badDynamicSection)
    }

    func testMalformedStrings() {
        // DT_NEEDED without DT_STRTAB.
        XCTAssertEqual(error(dynamicImage(strings: ["a.so"]) { o in [entry(DT_NEEDED, o[0]), entry(DT_NULL, 0)] }),
                       .badDynamicStrings)
        // DT_STRTAB in no segment, and in the zero-filled tail of one.
        XCTAssertEqual(error(dynamicImage(strings: ["a.so"]) { o in [entry(DT_STRTAB, 0x9000), entry(DT_NEEDED, o[0]), entry(DT_NULL, 0)] }),
                       .badDynamicStrings)
        var builder = ELFBuilder()
        builder.type = 3
        builder.entry = 0x1000
        builder.segments = [
            .init(flags: PF_R, offset: 0, vaddr: 0, filesz: 0x300, memsz: 0x2000),
            .init(flags: PF_R | PF_X, offset: 0x1000, vaddr: 0x3000, filesz: 0x100, memsz: 0x100),
            .init(type: PT_DYNAMIC, flags: PF_R, offset: 0x200, vaddr: 0x200, filesz: 48, memsz: 48, align: 8),
        ]
        builder.size = 0x1100
        var table = [UInt8](repeating: 0, count: 48)
        table.put64(DT_STRTAB, at: 0); table.put64(0x800, at: 8)
        table.put64(DT_NEEDED, at: 16); table.put64(1, at: 24)
        builder.blobs = [(0x200, table)]
        XCTAssertEqual(error(builder.build()), .badDynamicStrings)
        // A name offset past the table (DT_STRSZ bounds it).
        XCTAssertEqual(error(dynamicImage(strings: ["a.so"]) { _ in
            [entry(DT_STRTAB, 0x400), entry(DT_STRSZ, 6), entry(DT_NEEDED, 6), entry(DT_NULL, 0)]
        }), .badDynamicStrings)
        XCTAssertEqual(error(dynamicImage(strings: ["a.so"]) { _ in
            [entry(DT_STRTAB, 0x400), entry(DT_NEEDED, UInt64.max), entry(DT_NULL, 0)]
        }), .badDynamicStrings)
        // DT_STRSZ cutting a name before its NUL, and larger than the segment.
        XCTAssertEqual(error(dynamicImage(strings: ["a.so"]) { o in
            [entry(DT_STRTAB, 0x400), entry(DT_STRSZ, 3), entry(DT_NEEDED, o[0]), entry(DT_NULL, 0)]
        }), .badDynamicStrings)
        XCTAssertEqual(error(dynamicImage(strings: ["a.so"]) { o in
            [entry(DT_STRTAB, 0x400), entry(DT_STRSZ, 0x401), entry(DT_NEEDED, o[0]), entry(DT_NULL, 0)]
        }), .badDynamicStrings)
        // A name running to the segment's end without a NUL.
        var bytes = dynamicImage(strings: []) { _ in [entry(DT_STRTAB, 0x7fc), entry(DT_SONAME, 0), entry(DT_NULL, 0)] }
        bytes.put([0x61, 0x62, 0x63, 0x64], at: 0x7fc)
        XCTAssertEqual(error(bytes), .badDynamicStrings)
        // The same name ending exactly at the segment's last byte is fine.
        bytes.put([0x61, 0x62, 0x63, 0x00], at: 0x7fc)
        XCTAssertEqual(try dynamicResult(bytes).get()?.soname, "abc")
    }

    func testMessages() {
        XCTAssertEqual(ELFError.badDynamicSection.message, "ELF dynamic section (PT_DYNAMIC) is malformed or outside the file")
        XCTAssertEqual(ELFError.badDynamicStrings.message,
                       "ELF dynamic string table (DT_STRTAB) is malformed or a name lies outside it")
    }

    /// Every prefix parses or fails with an error: the dynamic table is complete from
    /// 0x600 + its size on, and the strings need the whole first PT_LOAD (0x800 bytes).
    func testTruncationAtEveryLength() {
        let full = standardDynamicImage()
        let expected = try? dynamicResult(full).get()
        XCTAssertNotNil(expected)
        for length in 0...full.count {
            let prefix = Array(full[0..<length])
            let result = dynamicResult(prefix)
            if length >= 0x800 {
                XCTAssertEqual(try? result.get(), expected, "length \(length)")
            } else {
                XCTAssertThrowsError(try result.get(), "length \(length)")
            }
        }
    }

    /// Random byte flips (fixed seed) in the headers, strings and dynamic table never trap.
    func testRandomByteFlips() {
        let full = standardDynamicImage()
        let interesting = [0..<(64 + 56 * 3), 0x400..<0x440, 0x600..<0x6a0]
        var rng = SplitMix64(state: 0xD7_0A11C)
        var parsed = 0, failed = 0
        for _ in 0..<30_000 {
            var b = full
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let region = interesting[Int.random(in: 0..<interesting.count, using: &rng)]
                b[Int.random(in: region, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            switch dynamicResult(b) {
            case .success: parsed += 1
            case .failure(let error): failed += 1; XCTAssertFalse(error.message.isEmpty)
            }
        }
        XCTAssertGreaterThan(parsed, 0)
        XCTAssertGreaterThan(failed, 0)
    }

    private func error(_ bytes: [UInt8]) -> ELFError? {
        if case .failure(let e) = dynamicResult(bytes) { return e }
        return nil
    }
}

/// The host's own objects against `readelf -d`.
final class DynamicTestsAgainstReadelf: XCTestCase {
    func testHostObjectsMatchReadelf() throws {
        guard let readelf = findTool("readelf") else { throw XCTSkip("readelf not found") }
        var paths = ["/usr/bin/python3", "/bin/ls", "/usr/bin/sqlite3", "/usr/bin/node",
                     "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libm.so.6",
                     "/lib64/ld-linux-x86-64.so.2"]
        // The Swift toolchain's objects carry DT_RUNPATH with $ORIGIN.
        if let swift = findTool("swift") {
            let bin = (URL(fileURLWithPath: swift).resolvingSymlinksInPath().path as NSString).deletingLastPathComponent
            paths += [bin + "/swift-frontend", bin + "/../lib/swift/linux/libswiftCore.so",
                      bin + "/../lib/swift/linux/libFoundation.so"]
        }
        var tested = 0, withRunpath = 0
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path),
                  let oracle = readelfDynamic(readelf, path) else { continue }
            let ours = try XCTUnwrap(try dynamicResult([UInt8](data)).get(), path)
            XCTAssertEqual(ours.needed, oracle.needed, path)
            XCTAssertEqual(ours.soname, oracle.soname, path)
            XCTAssertEqual(ours.rpath, oracle.rpath, path)
            XCTAssertEqual(ours.runpath, oracle.runpath, path)
            for (bit, name) in flag1Names {
                XCTAssertEqual(ours.flags1 & bit != 0, oracle.flags1.contains(name), "\(path) FLAGS_1 \(name)")
            }
            if ours.runpath != nil { withRunpath += 1 }
            tested += 1
        }
        if tested == 0 { throw XCTSkip("no host objects found") }
        print("DynamicTestsAgainstReadelf: \(tested) host objects checked, \(withRunpath) with DT_RUNPATH")
    }

    /// Objects gcc builds with each kind of entry, against readelf; then every prefix and
    /// random byte flips of a real shared object never trap.
    func testCompiledObjectsMatchReadelf() throws {
        guard let readelf = findTool("readelf"), let gcc = findTool("gcc") else { throw XCTSkip("gcc or readelf not found") }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("apus-dyn-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "int f(void) { return 1; }\n".write(toFile: dir + "/f.c", atomically: true, encoding: .utf8)
        let variants: [(String, [String])] = [
            ("rpath.so", ["-Wl,-soname,librpath.so.3", "-Wl,--disable-new-dtags", "-Wl,-rpath,/opt/a:$ORIGIN/../lib"]),
            ("runpath.so", ["-Wl,--enable-new-dtags", "-Wl,-rpath,${ORIGIN}:/x", "-Wl,-z,now"]),
            ("needs.so", ["-Wl,--no-as-needed", "-lm", "-lz", "-Wl,-soname,needs.so"]),
            ("plain.so", []),
        ]
        var built = 0
        for (name, flags) in variants {
            let out = dir + "/" + name
            guard runTool(gcc, ["-shared", "-fPIC", "-o", out, dir + "/f.c"] + flags) else { continue }
            built += 1
            let data = try XCTUnwrap(FileManager.default.contents(atPath: out))
            let oracle = try XCTUnwrap(readelfDynamic(readelf, out))
            let ours = try XCTUnwrap(try dynamicResult([UInt8](data)).get(), name)
            XCTAssertEqual(ours.needed, oracle.needed, name)
            XCTAssertEqual(ours.soname, oracle.soname, name)
            XCTAssertEqual(ours.rpath, oracle.rpath, name)
            XCTAssertEqual(ours.runpath, oracle.runpath, name)
            for (bit, flag) in flag1Names {
                XCTAssertEqual(ours.flags1 & bit != 0, oracle.flags1.contains(flag), "\(name) FLAGS_1 \(flag)")
            }
            if name == "rpath.so" {
                XCTAssertEqual(ours.rpath, "/opt/a:$ORIGIN/../lib")
                XCTAssertEqual(ours.soname, "librpath.so.3")
            }
            if name == "runpath.so" {
                XCTAssertEqual(ours.runpath, "${ORIGIN}:/x")
                XCTAssertNotEqual(ours.flags1 & DF_1_NOW, 0)
            }
            if name == "needs.so" {
                XCTAssertTrue(ours.needed.contains("libm.so.6") && ours.needed.contains("libz.so.1"), "\(ours.needed)")
                // Every prefix of a real object parses to the same answer or fails cleanly.
                let bytes = [UInt8](data)
                let expected = ours
                for length in 0...bytes.count {
                    if case .success(let r?) = dynamicResult(Array(bytes[0..<length])) {
                        XCTAssertEqual(r, expected, "prefix \(length)")
                    }
                }
                var rng = SplitMix64(state: 0x5EED)
                for _ in 0..<5_000 {
                    var b = bytes
                    for _ in 0..<Int.random(in: 1...3, using: &rng) {
                        b[Int.random(in: 0..<min(b.count, 0x1000), using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    }
                    _ = dynamicResult(b)
                }
            }
        }
        if built == 0 { throw XCTSkip("gcc could not build shared objects") }
    }
}

let flag1Names: [(UInt64, String)] = [(DF_1_NOW, "NOW"), (DF_1_NODEFLIB, "NODEFLIB"), (DF_1_PIE, "PIE")]

/// What `readelf -dW` shows of the entries the parser reads.
struct ReadelfDynamic {
    var needed: [String] = []
    var soname: String?
    var rpath: String?
    var runpath: String?
    var flags1: Set<String> = []
}

func readelfDynamic(_ readelf: String, _ path: String) -> ReadelfDynamic? {
    guard let output = capture(readelf, ["-dW", path]) else { return nil }
    var result = ReadelfDynamic()
    for line in output.split(separator: "\n") {
        let bracketed: String? = {
            guard let open = line.firstIndex(of: "["), let close = line.lastIndex(of: "]"), open < close else { return nil }
            return String(line[line.index(after: open)..<close])
        }()
        if line.contains("(NEEDED)"), let name = bracketed { result.needed.append(name) }
        if line.contains("(SONAME)") { result.soname = bracketed }
        if line.contains("(RPATH)") { result.rpath = bracketed }
        if line.contains("(RUNPATH)") { result.runpath = bracketed }
        if line.contains("(FLAGS_1)"), let flags = line.range(of: "Flags:") {
            result.flags1 = Set(line[flags.upperBound...].split(separator: " ").map(String.init))
        }
    }
    return result
}

func findTool(_ name: String) -> String? {
    ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":")
        .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Runs `tool` and returns its stdout, or nil if it cannot run or fails.
func capture(_ tool: String, _ arguments: [String]) -> String? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return nil }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }
    return String(decoding: data, as: UTF8.self)
}

func runTool(_ tool: String, _ arguments: [String]) -> Bool {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return false }
    process.waitUntilExit()
    return process.terminationStatus == 0
}
