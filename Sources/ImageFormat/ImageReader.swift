// Kernel and host side: a validated view of an image (layout in ImageFormat.swift).
//
// `init` checks every header field and every record once, so that afterwards lookups,
// listings and `contents(of:)` only touch bytes proven to be in bounds and never trap on
// any input. Cost: O(total path bytes + entries × log entries), no allocation.

/// One index record, decoded. `path` and `linkTarget` are views into the image.
public struct ImageEntry {
    /// Position in the index (0 is the root directory).
    public var index: Int
    public var kind: EntryKind
    /// Permission bits (<= 0o7777).
    public var mode: UInt32
    /// File: length in bytes. Symlink: target length. Directory: 0.
    public var size: UInt64
    /// File: offset of its bytes in the image (a multiple of 4096). Otherwise 0.
    public var dataOffset: UInt64
    /// The normalized absolute path.
    public var path: UnsafeRawBufferPointer
    /// Symlink: the target as stored. Otherwise nil.
    public var linkTarget: UnsafeRawBufferPointer?
    /// The VM may not change it (nor, for a directory, anything below it).
    public var readOnly = false

    /// The last path component ("/" for the root).
    public var name: UnsafeRawBufferPointer {
        guard path.count > 1, let last = path.lastIndex(of: slash) else { return path }
        return UnsafeRawBufferPointer(rebasing: path[(last + 1)...])
    }
}

public struct ImageReader {
    let view: ByteView
    public let entryCount: Int
    let entrypointIndex: Int
    let indexOffset: Int
    let strings: Range<Int>
    /// The image length from the header; the buffer may be longer.
    public let totalSize: UInt64

    public init(bytes: UnsafeRawBufferPointer) throws(ImageError) {
        let view = ByteView(bytes: bytes)
        self.view = view

        // Header.
        guard view.count >= ImageFormat.headerSize else {
            // A short buffer that does not even start like an image is reported as such.
            for i in 0..<min(view.count, 8) where view.u8(at: i) != ImageFormat.magic[i] { throw .badMagic }
            throw .truncated
        }
        for i in 0..<8 where view.u8(at: i) != ImageFormat.magic[i] { throw .badMagic }
        let version = view.u32(at: 8)
        guard version == ImageFormat.version else { throw .unsupportedVersion(version) }
        let flags = view.u32(at: 12)
        let count = view.u32(at: 16)
        let entrypoint = view.u32(at: 20)
        let indexOffset = view.u64(at: 24)
        let stringsOffset = view.u64(at: 32)
        let stringsSize = view.u64(at: 40)
        let dataOffset = view.u64(at: 48)
        let totalSize = view.u64(at: 56)

        let pageMask = ImageFormat.pageSize - 1
        guard flags == 0, dataOffset & pageMask == 0, totalSize & pageMask == 0,
              dataOffset <= totalSize, indexOffset >= UInt64(ImageFormat.headerSize),
              indexOffset & 7 == 0
        else { throw .badHeader }
        guard totalSize <= UInt64(view.count) else { throw .truncated }
        guard count >= 1,
              let index = ByteView.range(offset: indexOffset,
                                         length: UInt64(count) * UInt64(ImageFormat.recordSize),
                                         limit: dataOffset)
        else { throw .indexOutOfBounds }
        guard stringsOffset >= UInt64(index.upperBound),
              let strings = ByteView.range(offset: stringsOffset, length: stringsSize, limit: dataOffset)
        else { throw .stringTableOutOfBounds }

        self.entryCount = Int(count)
        self.indexOffset = index.lowerBound
        self.strings = strings
        self.totalSize = totalSize
        self.entrypointIndex = Int(entrypoint)

        // Records, in order: each one alone, then against its predecessor and its parent.
        var previous = UnsafeRawBufferPointer(start: nil, count: 0)
        for i in 0..<entryCount {
            let record = index.lowerBound + i * ImageFormat.recordSize
            guard let path = stringRange(offset: UInt64(view.u32(at: record)),
                                         length: UInt64(view.u32(at: record + 4)))
            else { throw .stringOutOfBounds(index: i) }
            let kindByte = view.u8(at: record + 8)
            let reserved = UInt32(view.u8(at: record + 9) & ~ImageFormat.readOnlyFlag)
                | UInt32(view.u8(at: record + 10)) | UInt32(view.u8(at: record + 11))
            let mode = view.u32(at: record + 12)
            let size = view.u64(at: record + 16)
            let offset = view.u64(at: record + 24)
            guard let kind = EntryKind(rawValue: kindByte), reserved == 0,
                  mode & ~ImageFormat.modeMask == 0
            else { throw .badEntry(index: i) }

            let pathBytes = view.slice(path)
            guard ImagePath.isNormalized(pathBytes) else { throw .badPath(index: i) }
            if i == 0 {
                guard pathBytes.count == 1, kind == .directory else { throw .noRoot }
            } else {
                guard compareBytes(previous, pathBytes) < 0 else { throw .unsortedIndex(index: i) }
                let parentPath = UnsafeRawBufferPointer(rebasing: pathBytes[0..<ImagePath.parentLength(pathBytes)])
                guard let parent = search(parentPath, in: 0..<i),
                      view.u8(at: self.indexOffset + parent * ImageFormat.recordSize + 8)
                          == EntryKind.directory.rawValue
                else { throw .missingParent(index: i) }
            }
            previous = pathBytes

            switch kind {
            case .file:
                guard offset & pageMask == 0 else { throw .misalignedData(index: i) }
                guard offset >= dataOffset,
                      ByteView.range(offset: offset, length: size, limit: totalSize) != nil
                else { throw .dataOutOfBounds(index: i) }
            case .directory:
                guard size == 0, offset == 0 else { throw .badEntry(index: i) }
            case .symlink:
                guard let target = stringRange(offset: offset, length: size) else {
                    throw .stringOutOfBounds(index: i)
                }
                guard target.count >= 1, target.count <= ImageFormat.maxPathLength,
                      !view.slice(target).contains(0)
                else { throw .badEntry(index: i) }
            }
        }

        guard entrypoint < count else { throw .entrypointOutOfRange(entrypoint) }
        guard entry(at: entrypointIndex).kind == .file else { throw .entrypointNotAFile }
    }

    /// The record at `index` (< entryCount).
    public func entry(at index: Int) -> ImageEntry {
        precondition(index >= 0 && index < entryCount, "image entry index out of range")
        let record = indexOffset + index * ImageFormat.recordSize
        // Validated by init: the kind byte is valid and both string references are in bounds.
        let kind = EntryKind(rawValue: view.u8(at: record + 8)) ?? .directory
        let path = view.slice(stringRange(offset: UInt64(view.u32(at: record)),
                                          length: UInt64(view.u32(at: record + 4))) ?? 0..<0)
        let size = view.u64(at: record + 16)
        let offset = view.u64(at: record + 24)
        var target: UnsafeRawBufferPointer? = nil
        if kind == .symlink {
            target = view.slice(stringRange(offset: offset, length: size) ?? 0..<0)
        }
        return ImageEntry(index: index, kind: kind, mode: view.u32(at: record + 12), size: size,
                          dataOffset: kind == .file ? offset : 0, path: path, linkTarget: target,
                          readOnly: view.u8(at: record + 9) & ImageFormat.readOnlyFlag != 0)
    }

    /// The entry whose path is exactly `path` (byte comparison; `path` should be
    /// normalized), or nil. Binary search: O(log entryCount) comparisons.
    public func lookup(path: UnsafeRawBufferPointer) -> ImageEntry? {
        search(path, in: 0..<entryCount).map { entry(at: $0) }
    }

    public func lookup(path: String) -> ImageEntry? {
        var path = path
        return path.withUTF8 { lookup(path: UnsafeRawBufferPointer($0)) }
    }

    /// The program to run.
    public var entrypoint: ImageEntry { entry(at: entrypointIndex) }

    /// A regular file's bytes as a slice of the image; empty for other kinds.
    public func contents(of entry: ImageEntry) -> UnsafeRawBufferPointer {
        // Re-read the record so a stale or foreign `ImageEntry` cannot name other bytes.
        let current = self.entry(at: entry.index)
        guard current.kind == .file else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        // In bounds: init checked dataOffset + size <= totalSize <= buffer length.
        let start = Int(current.dataOffset)
        return view.slice(start..<(start + Int(current.size)))
    }

    /// The direct children of a directory, in path order; empty for other kinds.
    public func children(of directory: ImageEntry) -> ImageChildren {
        let current = entry(at: directory.index)
        guard current.kind == .directory else {
            return ImageChildren(reader: self, position: 0, end: 0, nameStart: 0)
        }
        let range = descendants(of: current)
        let nameStart = current.path.count == 1 ? 1 : current.path.count + 1
        return ImageChildren(reader: self, position: range.lowerBound, end: range.upperBound,
                             nameStart: nameStart)
    }

    // MARK: Internals

    /// `[offset, offset + length)` inside the string table, as an absolute byte range.
    private func stringRange(offset: UInt64, length: UInt64) -> Range<Int>? {
        guard let relative = ByteView.range(offset: offset, length: length, limit: UInt64(strings.count))
        else { return nil }
        return (strings.lowerBound + relative.lowerBound)..<(strings.lowerBound + relative.upperBound)
    }

    /// Path of record `index`, which init has validated. Out of line: every search step
    /// and listing step reads one.
    @inline(never)
    func pathOfRecord(_ index: Int) -> UnsafeRawBufferPointer {
        let record = indexOffset + index * ImageFormat.recordSize
        let range = stringRange(offset: UInt64(view.u32(at: record)), length: UInt64(view.u32(at: record + 4)))
        return view.slice(range ?? 0..<0)
    }

    /// Index of the record whose path equals `key` within `range` (sorted), or nil.
    private func search(_ key: UnsafeRawBufferPointer, in range: Range<Int>) -> Int? {
        var low = range.lowerBound
        var high = range.upperBound
        while low < high {
            let middle = low + (high - low) / 2
            let order = compareBytes(pathOfRecord(middle), key)
            if order == 0 { return middle }
            if order < 0 { low = middle + 1 } else { high = middle }
        }
        return nil
    }

    /// First index in `range` whose path is >= `prefix` followed by `last`. Out of line:
    /// listings call it from several places.
    @inline(never)
    func lowerBound(_ prefix: UnsafeRawBufferPointer, _ last: UInt8, in range: Range<Int>) -> Int {
        var low = range.lowerBound
        var high = range.upperBound
        while low < high {
            let middle = low + (high - low) / 2
            if compareBytes(pathOfRecord(middle), prefix, last) < 0 { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The index range of everything below the directory `entry`: the paths in
    /// [path + "/", path + "0"), which in byte order is contiguous and starts after `entry`.
    func descendants(of entry: ImageEntry) -> Range<Int> {
        if entry.path.count == 1 { return 1..<entryCount }  // the root: everything else
        let after = (entry.index + 1)..<entryCount
        let start = lowerBound(entry.path, slash, in: after)
        let end = lowerBound(entry.path, slash + 1, in: start..<entryCount)
        return start..<end
    }
}

/// The direct children of a directory, in path order. Walks the directory's descendants
/// (one contiguous run of the index); on meeting a grandchild "/d/c/…" it jumps past the
/// whole subtree of "/d/c" with one binary search, so a listing costs
/// O(children × log entries). Children and subtrees interleave ("/d/c-x" sorts between
/// "/d/c" and "/d/c/…", since '-' < '/'), which is why the jump happens at the grandchild
/// and not at the child directory.
public struct ImageChildren: Sequence, IteratorProtocol {
    let reader: ImageReader
    var position: Int
    let end: Int
    /// Length of the directory's path plus its separator: where a child's name starts.
    let nameStart: Int

    public mutating func next() -> ImageEntry? {
        while position < end {
            let path = reader.pathOfRecord(position)
            var i = nameStart
            while i < path.count && path[i] != slash { i += 1 }
            if i == path.count {
                position += 1
                return reader.entry(at: position - 1)
            }
            // path[0..<i] is a child directory; skip everything below it.
            let child = UnsafeRawBufferPointer(rebasing: path[0..<i])
            position = reader.lowerBound(child, slash + 1, in: position..<end)
        }
        return nil
    }
}
