import ImageFormat
import XCTest

/// Deterministic pseudo-random generator (SplitMix64) for reproducible fuzz loops.
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
    mutating func put32(_ v: UInt32, at o: Int) { for i in 0..<4 { self[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    mutating func put64(_ v: UInt64, at o: Int) { for i in 0..<8 { self[o + i] = UInt8(truncatingIfNeeded: v >> (8 * i)) } }
    func get32(_ o: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(self[o + $1]) << (8 * $1) } }
    func get64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(self[o + $1]) << (8 * $1) } }
}

func text(_ raw: UnsafeRawBufferPointer?) -> String? { raw.map { String(decoding: $0, as: UTF8.self) } }

/// Writes a complete image: metadata plus each file's bytes from `contents(id)`.
func buildImage(_ writer: ImageWriter, contents: (Int, UInt64) -> [UInt8]) throws -> [UInt8] {
    let layout = try writer.layout()
    var image = [UInt8](repeating: 0, count: Int(layout.totalSize))
    image.replaceSubrange(0..<layout.metadata.count, with: layout.metadata)
    for file in layout.fileDataOffsets {
        let bytes = contents(file.entryID, file.size)
        image.replaceSubrange(Int(file.offset)..<(Int(file.offset) + bytes.count), with: bytes)
    }
    return image
}

func fill(_ id: Int, _ size: UInt64) -> [UInt8] { (0..<Int(size)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ id) } }

/// A small image: a program, a library under a nested directory, a symlink, an empty file.
func sampleImage() throws -> (bytes: [UInt8], ids: [String: Int]) {
    var w = ImageWriter()
    var ids: [String: Int] = [:]
    ids["/bin/hello"] = try w.addFile(path: "/bin/hello", size: 5000, mode: 0o755)
    ids["/usr/lib/libc.so"] = try w.addFile(path: "/usr/lib/libc.so", size: 4096, mode: 0o644)
    ids["/etc/empty"] = try w.addFile(path: "/etc/empty", size: 0, mode: 0o600)
    try w.addDirectory(path: "/tmp", mode: 0o1777)
    try w.addSymlink(path: "/lib/ld-musl-x86_64.so.1", target: "/usr/lib/libc.so")
    try w.setEntrypoint(path: "/bin/hello")
    return (try buildImage(w, contents: fill), ids)
}

func readerError(_ bytes: [UInt8]) -> ImageError? {
    bytes.withUnsafeBytes { raw in
        do throws(ImageError) { _ = try ImageReader(bytes: raw); return nil } catch { return error }
    }
}

/// Every accessor of an accepted image, to show none traps on what init accepted.
func exerciseEverything(_ raw: UnsafeRawBufferPointer) {
    guard let reader = try? ImageReader(bytes: raw) else { return }
    var sum = 0
    for i in 0..<reader.entryCount {
        let e = reader.entry(at: i)
        // Touch both ends of the contents: a bad bound would show here.
        let contents = reader.contents(of: e)
        sum &+= Int(contents.first ?? 0) &+ Int(contents.last ?? 0)
        sum &+= e.name.count &+ (e.linkTarget?.count ?? 0)
        _ = reader.lookup(path: e.path)
        for child in reader.children(of: e) { sum &+= child.index }
    }
    _ = reader.entrypoint
    _ = reader.lookup(path: "/bin/hello")
    _ = reader.lookup(path: "")
    _ = sum
}

final class ImageRoundTripTests: XCTestCase {
    func testRoundTrip() throws {
        let (bytes, ids) = try sampleImage()
        try bytes.withUnsafeBytes { raw in
            let r = try ImageReader(bytes: raw)
            // "/", /bin, /bin/hello, /etc, /etc/empty, /lib, /lib/ld…, /tmp, /usr, /usr/lib, /usr/lib/libc.so
            XCTAssertEqual(r.entryCount, 11)
            XCTAssertEqual((0..<r.entryCount).map { text(r.entry(at: $0).path)! }, [
                "/", "/bin", "/bin/hello", "/etc", "/etc/empty", "/lib", "/lib/ld-musl-x86_64.so.1",
                "/tmp", "/usr", "/usr/lib", "/usr/lib/libc.so",
            ])

            let hello = try XCTUnwrap(r.lookup(path: "/bin/hello"))
            XCTAssertEqual(hello.kind, .file)
            XCTAssertEqual(hello.mode, 0o755)
            XCTAssertEqual(hello.size, 5000)
            XCTAssertEqual(text(hello.name), "hello")
            XCTAssertEqual(Array(r.contents(of: hello)), fill(ids["/bin/hello"]!, 5000))
            XCTAssertEqual(text(r.entrypoint.path), "/bin/hello")

            let libc = try XCTUnwrap(r.lookup(path: "/usr/lib/libc.so"))
            XCTAssertEqual(Array(r.contents(of: libc)), fill(ids["/usr/lib/libc.so"]!, 4096))

            let empty = try XCTUnwrap(r.lookup(path: "/etc/empty"))
            XCTAssertEqual(empty.size, 0)
            XCTAssertEqual(r.contents(of: empty).count, 0)

            let link = try XCTUnwrap(r.lookup(path: "/lib/ld-musl-x86_64.so.1"))
            XCTAssertEqual(link.kind, .symlink)
            XCTAssertEqual(text(link.linkTarget), "/usr/lib/libc.so")
            XCTAssertEqual(link.size, 16)
            XCTAssertEqual(r.contents(of: link).count, 0)

            let tmp = try XCTUnwrap(r.lookup(path: "/tmp"))
            XCTAssertEqual(tmp.kind, .directory)
            XCTAssertEqual(tmp.mode, 0o1777)
            let usr = try XCTUnwrap(r.lookup(path: "/usr"), "parents are created")
            XCTAssertEqual(usr.kind, .directory)
            XCTAssertEqual(usr.mode, ImageWriter.defaultDirectoryMode)
            XCTAssertNil(r.lookup(path: "/usr/lib/"))
            XCTAssertNil(r.lookup(path: "/nope"))
            XCTAssertNil(r.lookup(path: "/bin/hello2"))
            XCTAssertNil(r.lookup(path: "/bi"))
            XCTAssertEqual(r.lookup(path: "/")?.index, 0)
            XCTAssertEqual(text(r.entry(at: 0).name), "/")
        }
    }

    func testChildren() throws {
        var w = ImageWriter()
        for p in ["/a/x", "/a/y/deep/file", "/a/y/z", "/a-b/q", "/a0", "/b", "/a/yy"] {
            _ = try w.addFile(path: p, size: 1, mode: 0o644)
        }
        try w.setEntrypoint(path: "/b")
        let bytes = try buildImage(w, contents: fill)
        try bytes.withUnsafeBytes { raw in
            let r = try ImageReader(bytes: raw)
            func names(_ path: String) -> [String] {
                r.children(of: r.lookup(path: path)!).map { text($0.name)! }
            }
            XCTAssertEqual(names("/"), ["a", "a-b", "a0", "b"])
            XCTAssertEqual(names("/a"), ["x", "y", "yy"])
            XCTAssertEqual(names("/a/y"), ["deep", "z"])
            XCTAssertEqual(names("/a/y/deep"), ["file"])
            XCTAssertEqual(names("/a/x"), [], "a file has no children")
        }
    }

    func testReadOnlyFlagRoundTrips() throws {
        var w = ImageWriter()
        _ = try w.addFile(path: "/data/a", size: 1, mode: 0o644)
        _ = try w.addFile(path: "/bin/p", size: 1, mode: 0o755)
        try w.setEntrypoint(path: "/bin/p")
        try w.markReadOnly(path: "/data")
        let layout = try w.layout()
        var bytes = [UInt8](repeating: 0, count: Int(layout.totalSize))
        bytes.replaceSubrange(0..<layout.metadata.count, with: layout.metadata)
        try bytes.withUnsafeBytes { raw in
            let reader = try ImageReader(bytes: raw)
            XCTAssertEqual(reader.lookup(path: "/data")?.readOnly, true)
            XCTAssertEqual(reader.lookup(path: "/data/a")?.readOnly, false, "the flag is on the marked entry only")
            XCTAssertEqual(reader.lookup(path: "/bin")?.readOnly, false)
        }
    }

    func testPageAlignmentOfFileData() throws {
        var w = ImageWriter()
        let sizes: [UInt64] = [0, 1, 4095, 4096, 4097, 10_000, 0, 3]
        for (i, s) in sizes.enumerated() { _ = try w.addFile(path: "/f\(i)", size: s, mode: 0o644) }
        try w.setEntrypoint(path: "/f1")
        let layout = try w.layout()
        XCTAssertEqual(layout.totalSize % 4096, 0)
        XCTAssertEqual(layout.metadata.count % 4096, 0)
        XCTAssertEqual(layout.fileDataOffsets.count, sizes.count)
        var previousEnd = UInt64(layout.metadata.count)
        for f in layout.fileDataOffsets {
            XCTAssertEqual(f.offset % 4096, 0)
            XCTAssertGreaterThanOrEqual(f.offset, previousEnd, "no overlap, ascending")
            previousEnd = f.offset + f.size
        }
        XCTAssertLessThanOrEqual(previousEnd, layout.totalSize)
        let image = try buildImage(w, contents: fill)
        try image.withUnsafeBytes { raw in
            let r = try ImageReader(bytes: raw)
            for i in 0..<r.entryCount where r.entry(at: i).kind == .file {
                let e = r.entry(at: i)
                XCTAssertEqual(e.dataOffset % 4096, 0)
                let c = r.contents(of: e)
                XCTAssertEqual(c.count, Int(e.size))
                if let base = c.baseAddress, let imageBase = raw.baseAddress {
                    XCTAssertEqual(base - imageBase, Int(e.dataOffset), "contents is a view into the image")
                }
            }
        }
    }

    func testManyEntriesSortedAndSearchable() throws {
        var w = ImageWriter()
        var rng = SplitMix64(state: 42)
        var paths = Set<String>()
        while paths.count < 2000 {
            let depth = Int.random(in: 1...4, using: &rng)
            let parts = (0..<depth).map { _ in
                String((0..<Int.random(in: 1...6, using: &rng)).map { _ in "abcXY-._0".randomElement(using: &rng)! })
            }
            let path = "/" + parts.joined(separator: "/")
            if parts.contains(".") || parts.contains("..") { continue }
            paths.insert(path)
        }
        var added: [String] = []
        for p in paths.sorted().shuffled(using: &rng) {
            do throws(ImageError) {
                _ = try w.addFile(path: p, size: UInt64(p.utf8.count), mode: 0o644)
                added.append(p)
            } catch {
                // Only expected when an earlier file took this name as a directory, or a
                // parent's name as a file.
                switch error {
                case .duplicatePath, .parentNotDirectory: break
                default: XCTFail(error.message)
                }
            }
        }
        try w.setEntrypoint(path: added[0])
        let image = try buildImage(w) { _, size in [UInt8](repeating: 0x5a, count: Int(size)) }
        try image.withUnsafeBytes { raw in
            let r = try ImageReader(bytes: raw)
            for i in 1..<r.entryCount {
                XCTAssertTrue(Array(r.entry(at: i - 1).path).lexicographicallyPrecedes(Array(r.entry(at: i).path)))
            }
            for p in added {
                let e = try XCTUnwrap(r.lookup(path: p), p)
                XCTAssertEqual(text(e.path), p)
                XCTAssertEqual(e.kind, .file)
                XCTAssertEqual(r.contents(of: e).count, p.utf8.count)
            }
            XCTAssertNil(r.lookup(path: "/zzzzzz/none"))
            // Listing every directory visits every entry except the root exactly once.
            var seen = 0
            for i in 0..<r.entryCount { seen += Array(r.children(of: r.entry(at: i))).count }
            XCTAssertEqual(seen, r.entryCount - 1)
        }
    }
}

final class ImageWriterTests: XCTestCase {
    func testPathNormalization() throws {
        let cases: [(String, String)] = [
            ("/", "/"), ("//", "/"), ("/.", "/"), ("/./", "/"), ("/a", "/a"), ("/a/", "/a"),
            ("//a//b///c", "/a/b/c"), ("/a/./b/.", "/a/b"), ("/usr/lib/x.so", "/usr/lib/x.so"),
            ("/a/.hidden/..b/...", "/a/.hidden/..b/..."), ("/é/ü", "/é/ü"),
        ]
        for (input, expected) in cases {
            XCTAssertEqual(try ImagePath.normalize(input), expected, input)
        }
        let bad: [(String, ImagePathProblem)] = [
            ("", .empty), ("a/b", .relative), ("./a", .relative), ("/a/../b", .dotDot), ("/..", .dotDot),
            ("/a\0b", .containsNUL), ("/" + String(repeating: "x", count: 256), .componentTooLong),
            (String(repeating: "/abcdefg", count: 512), .tooLong),
        ]
        for (input, problem) in bad {
            XCTAssertThrowsError(try ImagePath.normalize(input)) { error in
                XCTAssertEqual(error as? ImageError, .invalidPath(input, problem))
            }
        }
        XCTAssertEqual(try ImagePath.normalize("/" + String(repeating: "x", count: 255)).utf8.count, 256)
    }

    func testIsNormalized() {
        func check(_ s: String) -> Bool { Array(s.utf8).withUnsafeBytes { ImagePath.isNormalized($0) } }
        for good in ["/", "/a", "/a/b", "/.x", "/..x", "/a/..."] { XCTAssertTrue(check(good), good) }
        for bad in ["", "a", "//", "/a/", "/a//b", "/.", "/a/.", "/a/..", "/a\0"] { XCTAssertFalse(check(bad), bad) }
    }

    func testWriterErrors() throws {
        var w = ImageWriter()
        _ = try w.addFile(path: "/bin/sh", size: 10, mode: 0o755)
        XCTAssertThrowsError(try w.markReadOnly(path: "/nope")) {
            XCTAssertEqual($0 as? ImageError, .missingPath("/nope"))
        }
        XCTAssertThrowsError(try w.addFile(path: "/bin//sh", size: 1, mode: 0o755)) {
            XCTAssertEqual($0 as? ImageError, .duplicatePath("/bin//sh"))
        }
        XCTAssertThrowsError(try w.addFile(path: "/bin", size: 1, mode: 0o755)) {
            XCTAssertEqual($0 as? ImageError, .duplicatePath("/bin"))
        }
        XCTAssertThrowsError(try w.addFile(path: "/bin/sh/x", size: 1, mode: 0o644)) {
            XCTAssertEqual($0 as? ImageError, .parentNotDirectory("/bin/sh/x"))
        }
        XCTAssertThrowsError(try w.addFile(path: "/x", size: 1, mode: 0o100755)) {
            XCTAssertEqual($0 as? ImageError, .invalidMode(0o100755))
        }
        XCTAssertThrowsError(try w.addSymlink(path: "/l", target: "")) {
            XCTAssertEqual($0 as? ImageError, .invalidSymlinkTarget(""))
        }
        XCTAssertThrowsError(try w.addDirectory(path: "/bin/sh", mode: 0o755)) {
            XCTAssertEqual($0 as? ImageError, .duplicatePath("/bin/sh"))
        }
        XCTAssertThrowsError(try w.layout()) { XCTAssertEqual($0 as? ImageError, .noEntrypoint) }
        XCTAssertThrowsError(try w.setEntrypoint(path: "/nope")) {
            XCTAssertEqual($0 as? ImageError, .entrypointNotFound("/nope"))
        }
        XCTAssertThrowsError(try w.setEntrypoint(path: "/bin")) {
            XCTAssertEqual($0 as? ImageError, .entrypointNotAFile)
        }
        // An implicit parent may get its mode later, once; an explicit one is a duplicate.
        try w.addDirectory(path: "/bin", mode: 0o711)
        XCTAssertThrowsError(try w.addDirectory(path: "/bin", mode: 0o711)) {
            XCTAssertEqual($0 as? ImageError, .duplicatePath("/bin"))
        }
        try w.addDirectory(path: "/", mode: 0o755)
        try w.setEntrypoint(path: "/bin/./sh")
        let image = try buildImage(w, contents: fill)
        try image.withUnsafeBytes { raw in
            let r = try ImageReader(bytes: raw)
            XCTAssertEqual(r.lookup(path: "/bin")?.mode, 0o711)
        }
        XCTAssertEqual(ImageError.duplicatePath("/a").message, "image path \"/a\" added twice")
        XCTAssertTrue(ImageError.invalidPath("x", .relative).message.contains("not absolute"))
        XCTAssertNotEqual(ImageError.duplicatePath("/a"), .duplicatePath("/b"))
    }

    func testSizeOverflowIsAnError() throws {
        var w = ImageWriter()
        _ = try w.addFile(path: "/a", size: UInt64.max - 100, mode: 0o644)
        _ = try w.addFile(path: "/b", size: 1, mode: 0o644)
        try w.setEntrypoint(path: "/a")
        XCTAssertThrowsError(try w.layout()) { XCTAssertEqual($0 as? ImageError, .tooLarge) }
    }
}

final class ImageMalformedTests: XCTestCase {
    // Offsets in the sample image (see the layout table in ImageFormat.swift).
    let indexOffset = 64
    func record(_ i: Int) -> Int { 64 + 32 * i }

    func sample() throws -> [UInt8] { try sampleImage().bytes }

    func testValidSampleIsAccepted() throws {
        XCTAssertNil(readerError(try sample()))
    }

    func testTruncatedAndMagicAndVersion() throws {
        let good = try sample()
        XCTAssertEqual(readerError([]), .truncated)
        XCTAssertEqual(readerError(Array("APUS".utf8)), .truncated)
        XCTAssertEqual(readerError(Array("ELF!".utf8)), .badMagic)
        XCTAssertEqual(readerError(Array(good[0..<63])), .truncated)
        XCTAssertEqual(readerError(Array(good[0..<4096])), .truncated)
        XCTAssertEqual(readerError(Array(good.dropLast())), .truncated)
        var b = good; b[7] = UInt8(ascii: "2")
        XCTAssertEqual(readerError(b), .badMagic)
        b = good; b.put32(2, at: 8)
        XCTAssertEqual(readerError(b), .unsupportedVersion(2))
        XCTAssertNil(readerError(good + [UInt8](repeating: 0, count: 4096)), "a longer buffer is fine")
    }

    func testHeaderConsistency() throws {
        let good = try sample()
        var b = good; b.put32(1, at: 12)
        XCTAssertEqual(readerError(b), .badHeader, "reserved flags")
        b = good; b.put64(100, at: 48)
        XCTAssertEqual(readerError(b), .badHeader, "dataOffset not page aligned")
        b = good; b.put64(good.get64(56) + 1, at: 56)
        XCTAssertEqual(readerError(b), .badHeader, "totalSize not page aligned")
        b = good; b.put64(good.get64(56) + 4096, at: 56)
        XCTAssertEqual(readerError(b), .truncated, "totalSize beyond the buffer")
        b = good; b.put64(32, at: 24)
        XCTAssertEqual(readerError(b), .badHeader, "index overlaps the header")
    }

    func testIndexOutOfBounds() throws {
        let good = try sample()
        var b = good; b.put32(UInt32.max, at: 16)
        XCTAssertEqual(readerError(b), .indexOutOfBounds)
        b = good; b.put64(UInt64.max & ~7, at: 24)
        XCTAssertEqual(readerError(b), .indexOutOfBounds)
        b = good; b.put32(0, at: 16)
        XCTAssertEqual(readerError(b), .indexOutOfBounds, "no entries, not even the root")
        b = good; b.put64(UInt64.max, at: 40)
        XCTAssertEqual(readerError(b), .stringTableOutOfBounds)
        b = good; b.put64(64, at: 32)
        XCTAssertEqual(readerError(b), .stringTableOutOfBounds, "string table overlaps the index")
    }

    func testUnsortedIndex() throws {
        var b = try sample()
        // Swap records 1 (/bin) and 3 (/etc).
        let r1 = Array(b[record(1)..<record(2)]), r3 = Array(b[record(3)..<record(4)])
        b.replaceSubrange(record(1)..<record(2), with: r3)
        b.replaceSubrange(record(3)..<record(4), with: r1)
        XCTAssertEqual(readerError(b), .unsortedIndex(index: 2))
        // A duplicate path is out of order too (strictly ascending).
        b = try sample()
        b.replaceSubrange(record(2)..<record(3), with: Array(b[record(1)..<record(2)]))
        XCTAssertEqual(readerError(b), .unsortedIndex(index: 2))
    }

    func testMisalignedAndOutOfBoundsData() throws {
        let good = try sample()
        var b = good; b.put64(good.get64(record(2) + 24) + 8, at: record(2) + 24)
        XCTAssertEqual(readerError(b), .misalignedData(index: 2))
        b = good; b.put64(good.get64(56), at: record(2) + 24)
        XCTAssertEqual(readerError(b), .dataOutOfBounds(index: 2), "data beyond the end")
        b = good; b.put64(UInt64.max, at: record(2) + 16)
        XCTAssertEqual(readerError(b), .dataOutOfBounds(index: 2), "offset + size overflows")
        b = good; b.put64(0, at: record(2) + 24)
        XCTAssertEqual(readerError(b), .dataOutOfBounds(index: 2), "data overlapping the metadata")
    }

    func testStringReferences() throws {
        let good = try sample()
        var b = good; b.put32(0xffff_fff0, at: record(3))
        XCTAssertEqual(readerError(b), .stringOutOfBounds(index: 3))
        b = good; b.put32(0xffff, at: record(3) + 4)
        XCTAssertEqual(readerError(b), .stringOutOfBounds(index: 3))
        // The symlink (record 6) target.
        b = good; b.put64(UInt64.max, at: record(6) + 24)
        XCTAssertEqual(readerError(b), .stringOutOfBounds(index: 6))
        b = good; b.put64(0, at: record(6) + 16)
        XCTAssertEqual(readerError(b), .badEntry(index: 6), "empty symlink target")
    }

    func testEntriesAndPaths() throws {
        let good = try sample()
        var b = good; b[record(4) + 8] = 9
        XCTAssertEqual(readerError(b), .badEntry(index: 4), "unknown kind")
        b = good; b[record(4) + 10] = 1
        XCTAssertEqual(readerError(b), .badEntry(index: 4), "reserved byte")
        b = good; b[record(4) + 9] = 2
        XCTAssertEqual(readerError(b), .badEntry(index: 4), "unknown flag")
        b = good; b[record(4) + 9] = ImageFormat.readOnlyFlag
        XCTAssertNil(readerError(b), "the read-only flag is valid")
        b = good; b.put32(0o170000, at: record(4) + 12)
        XCTAssertEqual(readerError(b), .badEntry(index: 4), "mode beyond permission bits")
        b = good; b.put64(4096, at: record(1) + 16)
        XCTAssertEqual(readerError(b), .badEntry(index: 1), "a directory with a size")
        // Point /bin's path at "/bin/hello" minus its first byte: "bin/h…" is relative.
        b = good; b.put32(good.get32(record(2)) + 1, at: record(1)); b.put32(3, at: record(1) + 4)
        XCTAssertEqual(readerError(b), .badPath(index: 1))
        // Make /etc (record 3) a file: /etc/empty then has no parent directory.
        b = good; b[record(3) + 8] = 1; b.put64(good.get64(48), at: record(3) + 24)
        XCTAssertEqual(readerError(b), .missingParent(index: 4))
        // Entry 0 must be the root.
        b = good; b[record(0) + 8] = 1; b.put64(good.get64(48), at: record(0) + 24)
        XCTAssertEqual(readerError(b), .noRoot)
    }

    func testEntrypoint() throws {
        let good = try sample()
        var b = good; b.put32(1, at: 20)
        XCTAssertEqual(readerError(b), .entrypointNotAFile)
        b = good; b.put32(6, at: 20)
        XCTAssertEqual(readerError(b), .entrypointNotAFile, "a symlink")
        b = good; b.put32(99, at: 20)
        XCTAssertEqual(readerError(b), .entrypointOutOfRange(99))
    }

    func testTruncationAtEveryLength() throws {
        let good = try sample()
        for length in 0..<good.count {
            let prefix = Array(good[0..<length])
            XCTAssertNotNil(readerError(prefix), "length \(length)")
            prefix.withUnsafeBytes { exerciseEverything($0) }
        }
    }

    func testRandomByteFlips() throws {
        let good = try sample()
        let metadataEnd = Int(good.get64(48))
        var rng = SplitMix64(state: 0x1A9E)
        var accepted = 0
        for _ in 0..<30_000 {
            var b = good
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                // Mostly the metadata (where flips matter), sometimes anywhere.
                let limit = Int.random(in: 0..<8, using: &rng) == 0 ? good.count : metadataEnd
                b[Int.random(in: 0..<limit, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            b.withUnsafeBytes { exerciseEverything($0) }
            if readerError(b) == nil { accepted += 1 }
        }
        XCTAssertGreaterThan(accepted, 0, "some flips land in padding or data and are harmless")
    }
}
