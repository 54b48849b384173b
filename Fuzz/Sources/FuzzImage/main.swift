// Image index harness: what the kernel (and `apus run` on the host) does with an image file:
// ImageReader.init, entry(at:), lookup(path:), contents(of:), children(of:), entrypoint.
// Checks that every view lies inside the image, that lookups find exactly the entries the
// index holds, that listing every directory visits every entry once under its parent, and
// that a valid image survives a round trip through ImageWriter (same entries, same bytes).
//
// Input: the image itself. An image is at least one page (dataOffset and totalSize are
// multiples of 4096), so that the fuzzer need not carry zero pages around, an input shorter
// than the totalSize its header names (up to 256 KiB) is also tried zero-padded to it.
import FuzzSupport
import ImageFormat

func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    examine(bytes)
    if size >= 64 {
        var header = FuzzInput(UnsafeRawBufferPointer(rebasing: bytes[56..<64]))
        let totalSize = header.u64()
        if totalSize > UInt64(size) && totalSize <= 256 * 1024 {
            let padded = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(totalSize), alignment: 4096)
            defer { padded.deallocate() }
            padded.initializeMemory(as: UInt8.self, repeating: 0)
            padded.copyMemory(from: bytes)
            examine(UnsafeRawBufferPointer(padded))
        }
    }
    return 0
}

func examine(_ bytes: UnsafeRawBufferPointer) {
    guard let image = try? ImageReader(bytes: bytes) else { return }
    check(image.entryCount >= 1 && image.totalSize <= UInt64(bytes.count), "header accepted with a bad count or size")
    let root = image.entry(at: 0)
    check(root.kind == .directory && root.path.count == 1 && root.path[0] == UInt8(ascii: "/"), "entry 0 is not the root")
    check(image.entrypoint.kind == .file, "entrypoint is not a file")

    var listed = 0
    var previous: UnsafeRawBufferPointer? = nil
    for index in 0..<image.entryCount {
        let entry = image.entry(at: index)
        check(entry.index == index, "entry index")
        check(lies(entry.path, within: bytes) && ImagePath.isNormalized(entry.path), "entry \(index): bad path view")
        if let previous { check(previous.lexicographicallyPrecedes(entry.path), "entry \(index): index not sorted") }
        previous = entry.path
        check(image.lookup(path: entry.path)?.index == index, "entry \(index): lookup does not find it")
        check(entry.mode & ~0o7777 == 0, "entry \(index): mode \(entry.mode)")
        check(lies(entry.name, within: entry.path), "entry \(index): name outside its path")
        switch entry.kind {
        case .file:
            let contents = image.contents(of: entry)
            check(entry.dataOffset % 4096 == 0, "entry \(index): misaligned data")
            check(contents.count == Int(entry.size) && lies(contents, within: bytes), "entry \(index): contents outside the image")
            check(entry.linkTarget == nil, "entry \(index): file with a link target")
        case .symlink:
            guard let target = entry.linkTarget else { fatalError("entry \(index): symlink without target") }
            check(lies(target, within: bytes) && !target.isEmpty && target.count <= 4095 && !target.contains(0),
                  "entry \(index): bad link target")
            check(image.contents(of: entry).isEmpty, "entry \(index): symlink with contents")
        case .directory:
            check(entry.size == 0 && image.contents(of: entry).isEmpty, "entry \(index): directory with data")
            // Each child: a direct child by path, in order, and a real entry.
            var last: UnsafeRawBufferPointer? = nil
            for child in image.children(of: entry) {
                let prefix = entry.path.count == 1 ? 1 : entry.path.count + 1
                check(child.path.count > prefix && child.path.starts(with: entry.path)
                          && child.path[prefix - 1] == UInt8(ascii: "/")
                          && !child.path[prefix...].contains(UInt8(ascii: "/")),
                      "entry \(index): listed a non-child")
                if let last { check(last.lexicographicallyPrecedes(child.path), "entry \(index): children out of order") }
                last = child.path
                listed += 1
            }
        }
    }
    // Every entry but the root has exactly one parent directory, so listings see each once.
    check(listed == image.entryCount - 1, "listings saw \(listed) children of \(image.entryCount - 1)")
    // A lookup of arbitrary bytes (the kernel looks up what the guest names) finds that path
    // exactly or nothing. The probe: the image's last bytes up to a NUL, at most 64.
    let tail = UnsafeRawBufferPointer(rebasing: bytes[max(bytes.count - 64, 0)...])
    let probe = UnsafeRawBufferPointer(rebasing: tail[(tail.lastIndex(of: 0).map { $0 + 1 } ?? 0)...])
    if let found = image.lookup(path: probe) { check(found.path.elementsEqual(probe), "lookup found another path") }

    roundTrip(image, bytes)
}

/// Rewrites the image with ImageWriter from what the reader reports and reads it back:
/// the same entries, modes, flags, targets and file bytes. Skipped when a path or target is
/// not UTF-8 (the writer takes Strings).
func roundTrip(_ image: ImageReader, _ bytes: UnsafeRawBufferPointer) {
    func text(_ b: UnsafeRawBufferPointer) -> String? {
        let s = String(decoding: b, as: UTF8.self)
        return s.utf8.elementsEqual(b) ? s : nil
    }
    var writer = ImageWriter()
    var ids: [Int: Int] = [:]
    do {
        for index in 0..<image.entryCount {
            let entry = image.entry(at: index)
            guard let path = text(entry.path) else { return }
            switch entry.kind {
            case .directory: try writer.addDirectory(path: path, mode: entry.mode)
            case .file: ids[index] = try writer.addFile(path: path, size: entry.size, mode: entry.mode)
            case .symlink:
                guard let target = text(entry.linkTarget!) else { return }
                try writer.addSymlink(path: path, target: target)
            }
            if entry.readOnly { try writer.markReadOnly(path: path) }
        }
        try writer.setEntrypoint(path: text(image.entrypoint.path)!)
    } catch {
        fatalError("the writer refused what the reader accepted: \(error)")
    }
    let layout: ImageLayout
    do { layout = try writer.layout() } catch { fatalError("layout failed: \(error)") }
    var rewritten = [UInt8](repeating: 0, count: Int(layout.totalSize))
    rewritten.replaceSubrange(0..<layout.metadata.count, with: layout.metadata)
    let entryOfID = Dictionary(uniqueKeysWithValues: ids.map { ($0.value, $0.key) })
    for placement in layout.fileDataOffsets {
        let contents = image.contents(of: image.entry(at: entryOfID[placement.entryID]!))
        check(UInt64(contents.count) == placement.size, "writer placed a different size")
        let start = Int(placement.offset)
        rewritten.replaceSubrange(start..<(start + contents.count), with: contents)
    }
    rewritten.withUnsafeBytes { copy in
        let again: ImageReader
        do { again = try ImageReader(bytes: copy) } catch { fatalError("rewritten image rejected: \(error)") }
        check(again.entryCount == image.entryCount, "round trip changed the entry count")
        check(again.entrypoint.path.elementsEqual(image.entrypoint.path), "round trip changed the entrypoint")
        for index in 0..<image.entryCount {
            let a = image.entry(at: index), b = again.entry(at: index)
            // A symlink's mode is not the writer's to choose (always 0o777, as on Linux); the
            // reader accepts any permission bits there.
            check(a.path.elementsEqual(b.path) && a.kind == b.kind && a.size == b.size && a.readOnly == b.readOnly
                      && (a.mode == b.mode || a.kind == .symlink),
                  "round trip changed entry \(index)")
            if a.kind == .symlink { check(a.linkTarget!.elementsEqual(b.linkTarget!), "round trip changed a target") }
            if a.kind == .file {
                check(image.contents(of: a).elementsEqual(again.contents(of: b)), "round trip changed file bytes")
            }
        }
    }
}

// MARK: Seeds

/// An image made by ImageWriter: files (one empty, one over a page), nested directories,
/// symlinks (absolute and relative), a read-only subtree, and names that sort between a
/// directory and its children ("/etc/ssl-x" between "/etc/ssl" and "/etc/ssl/…").
func seedImage(small: Bool) -> [UInt8] {
    var writer = ImageWriter()
    var contents: [Int: [UInt8]] = [:]
    func file(_ path: String, _ data: [UInt8], mode: UInt32 = 0o644) {
        contents[try! writer.addFile(path: path, size: UInt64(data.count), mode: mode)] = data
    }
    file("/app/main", Array("\u{7f}ELF-not-really".utf8), mode: 0o755)
    file("/etc/hostname", Array("apus\n".utf8))
    if !small {
        file("/etc/ssl/certs/ca.pem", [UInt8](repeating: 0x41, count: 5000))
        file("/etc/ssl-x", [])
        try! writer.addDirectory(path: "/tmp", mode: 0o1777)
        try! writer.addSymlink(path: "/bin", target: "usr/bin")
        try! writer.addSymlink(path: "/etc/ssl/cert.pem", target: "/etc/ssl/certs/ca.pem")
        file("/usr/bin/tool", [1, 2, 3], mode: 0o4755)
        try! writer.markReadOnly(path: "/usr")
    }
    try! writer.setEntrypoint(path: "/app/main")
    return imageBytes(writer, contents)
}

/// Metadata only: an empty entrypoint, directories and a symlink (dataOffset = totalSize).
func metadataOnlyImage() -> [UInt8] {
    var writer = ImageWriter()
    let id = try! writer.addFile(path: "/a/b/prog", size: 0, mode: 0o755)
    try! writer.addDirectory(path: "/a/c", mode: 0o700)
    try! writer.addSymlink(path: "/a/b/link", target: "../c")
    try! writer.markReadOnly(path: "/a/b")
    try! writer.setEntrypoint(path: "/a/b/prog")
    return imageBytes(writer, [id: []])
}

func imageBytes(_ writer: ImageWriter, _ contents: [Int: [UInt8]]) -> [UInt8] {
    let layout = try! writer.layout()
    var image = [UInt8](repeating: 0, count: Int(layout.totalSize))
    image.replaceSubrange(0..<layout.metadata.count, with: layout.metadata)
    for placement in layout.fileDataOffsets {
        let data = contents[placement.entryID]!
        image.replaceSubrange(Int(placement.offset)..<(Int(placement.offset) + data.count), with: data)
    }
    // Zero pages at the end are implied by the padding rule above: keep the seed small.
    while image.count > 64 && image.last == 0 { image.removeLast() }
    return image
}

runFuzzer(seeds: {
    [("small.img", seedImage(small: true)), ("tree.img", seedImage(small: false)),
     ("metadata-only.img", metadataOnlyImage())]
}, { testOneInput($0, $1) })
