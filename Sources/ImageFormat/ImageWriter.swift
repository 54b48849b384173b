// Host side: collects entries and computes the layout described in ImageFormat.swift.
// Pure arithmetic, no I/O: the caller writes `metadata` at offset 0 and each file's bytes
// at its offset, in a file of `totalSize` bytes whose other bytes are zero.

/// Where everything goes in an image.
public struct ImageLayout {
    /// Header, index and string table, zero-padded to the first data offset (a multiple of
    /// 4096). Written at offset 0.
    public var metadata: [UInt8]
    /// For every regular file, in ascending offset order: the id `addFile` returned, where
    /// its bytes go and how many. Offsets are multiples of 4096.
    public var fileDataOffsets: [(entryID: Int, offset: UInt64, size: UInt64)]
    /// The image length; a multiple of 4096.
    public var totalSize: UInt64
}

public struct ImageWriter {
    struct Entry {
        var path: [UInt8]
        var kind: EntryKind
        var mode: UInt32
        var size: UInt64
        var target: [UInt8]
        /// Created as a missing parent; an explicit `addDirectory` may still set its mode.
        var implicit: Bool
        var readOnly = false
    }

    /// Mode of directories the writer creates as missing parents.
    public static let defaultDirectoryMode: UInt32 = 0o755

    /// Entries in insertion order; the position is the entry id. Entry 0 is the root.
    var entries: [Entry]
    /// Entry ids sorted by path bytes: the index order, kept up to date by binary-search
    /// insertion (no hashing, so the module needs nothing beyond the core of the stdlib).
    var sorted: [Int]
    var entrypointID: Int?

    public init() {
        let root = Entry(path: [slash], kind: .directory, mode: ImageWriter.defaultDirectoryMode,
                         size: 0, target: [], implicit: true)
        entries = [root]
        sorted = [0]
        entrypointID = nil
    }

    /// Adds a regular file of `size` bytes with permission bits `mode`, creating missing
    /// parent directories. Returns the entry id that `ImageLayout.fileDataOffsets` refers to.
    @discardableResult
    public mutating func addFile(path: String, size: UInt64, mode: UInt32) throws(ImageError) -> Int {
        try checkMode(mode)
        let bytes = try ImagePath.normalizedBytes(path)
        guard find(bytes) == nil else { throw .duplicatePath(path) }
        try addParents(of: bytes, path: path)
        return append(Entry(path: bytes, kind: .file, mode: mode, size: size, target: [], implicit: false))
    }

    /// Marks an entry added before as read-only in the VM (a directory: its whole subtree).
    public mutating func markReadOnly(path: String) throws(ImageError) {
        guard let id = find(try ImagePath.normalizedBytes(path)) else { throw .missingPath(path) }
        entries[id].readOnly = true
    }

    /// Adds a directory, or sets the mode of one created earlier as a missing parent.
    public mutating func addDirectory(path: String, mode: UInt32) throws(ImageError) {
        try checkMode(mode)
        let bytes = try ImagePath.normalizedBytes(path)
        if let id = find(bytes) {
            guard entries[id].kind == .directory, entries[id].implicit else { throw .duplicatePath(path) }
            entries[id].mode = mode
            entries[id].implicit = false
            return
        }
        try addParents(of: bytes, path: path)
        append(Entry(path: bytes, kind: .directory, mode: mode, size: 0, target: [], implicit: false))
    }

    /// Adds a symbolic link to `target`, stored as given (absolute or relative; the kernel
    /// resolves it). The target must be 1…4095 bytes without NUL.
    public mutating func addSymlink(path: String, target: String) throws(ImageError) {
        let bytes = try ImagePath.normalizedBytes(path)
        let targetBytes = Array(target.utf8)
        guard !targetBytes.isEmpty, targetBytes.count <= ImageFormat.maxPathLength,
              !targetBytes.contains(0)
        else { throw .invalidSymlinkTarget(target) }
        guard find(bytes) == nil else { throw .duplicatePath(path) }
        try addParents(of: bytes, path: path)
        append(Entry(path: bytes, kind: .symlink, mode: 0o777, size: UInt64(targetBytes.count),
                     target: targetBytes, implicit: false))
    }

    /// Names the program the kernel runs; it must already have been added as a file.
    public mutating func setEntrypoint(path: String) throws(ImageError) {
        let bytes = try ImagePath.normalizedBytes(path)
        guard let id = find(bytes) else { throw .entrypointNotFound(path) }
        guard entries[id].kind == .file else { throw .entrypointNotAFile }
        entrypointID = id
    }

    public func layout() throws(ImageError) -> ImageLayout {
        guard let entrypointID else { throw .noEntrypoint }
        guard entries.count <= Int(UInt32.max) else { throw .tooLarge }

        // Index order: path bytes ascending (paths are unique, so the order is strict).
        let order = sorted

        // String table: all paths in index order, then all symlink targets.
        var strings: [UInt8] = []
        var pathOffsets = [Int](repeating: 0, count: entries.count)
        var targetOffsets = [Int](repeating: 0, count: entries.count)
        for id in order {
            pathOffsets[id] = strings.count
            strings.append(contentsOf: entries[id].path)
        }
        for id in order where entries[id].kind == .symlink {
            targetOffsets[id] = strings.count
            strings.append(contentsOf: entries[id].target)
        }
        guard strings.count <= Int(UInt32.max) else { throw .tooLarge }

        let indexOffset = ImageFormat.headerSize
        let stringsOffset = indexOffset + ImageFormat.recordSize * entries.count
        let metadataEnd = stringsOffset + strings.count
        guard let dataOffset = ImageWriter.pageAligned(UInt64(metadataEnd)) else { throw .tooLarge }

        // File data: each file at the next page boundary, in index order.
        var cursor = dataOffset
        var fileDataOffsets: [(entryID: Int, offset: UInt64, size: UInt64)] = []
        var dataOffsets = [UInt64](repeating: 0, count: entries.count)
        for id in order where entries[id].kind == .file {
            dataOffsets[id] = cursor
            fileDataOffsets.append((entryID: id, offset: cursor, size: entries[id].size))
            let (end, overflow) = cursor.addingReportingOverflow(entries[id].size)
            guard !overflow, let next = ImageWriter.pageAligned(end) else { throw .tooLarge }
            cursor = next
        }

        var metadata = [UInt8](repeating: 0, count: Int(dataOffset))
        metadata.replaceSubrange(0..<8, with: ImageFormat.magic)
        metadata.store32(ImageFormat.version, at: 8)
        metadata.store32(0, at: 12)
        metadata.store32(UInt32(entries.count), at: 16)
        metadata.store32(UInt32(order.firstIndex(of: entrypointID) ?? 0), at: 20)
        metadata.store64(UInt64(indexOffset), at: 24)
        metadata.store64(UInt64(stringsOffset), at: 32)
        metadata.store64(UInt64(strings.count), at: 40)
        metadata.store64(dataOffset, at: 48)
        metadata.store64(cursor, at: 56)

        for (position, id) in order.enumerated() {
            let entry = entries[id]
            let record = indexOffset + position * ImageFormat.recordSize
            metadata.store32(UInt32(pathOffsets[id]), at: record)
            metadata.store32(UInt32(entry.path.count), at: record + 4)
            metadata[record + 8] = entry.kind.rawValue
            metadata[record + 9] = entry.readOnly ? ImageFormat.readOnlyFlag : 0
            metadata.store32(entry.mode, at: record + 12)
            switch entry.kind {
            case .file:
                metadata.store64(entry.size, at: record + 16)
                metadata.store64(dataOffsets[id], at: record + 24)
            case .symlink:
                metadata.store64(entry.size, at: record + 16)
                metadata.store64(UInt64(targetOffsets[id]), at: record + 24)
            case .directory:
                break
            }
        }
        metadata.replaceSubrange(stringsOffset..<metadataEnd, with: strings)

        return ImageLayout(metadata: metadata, fileDataOffsets: fileDataOffsets, totalSize: cursor)
    }

    // MARK: Helpers

    private func checkMode(_ mode: UInt32) throws(ImageError) {
        guard mode & ~ImageFormat.modeMask == 0 else { throw .invalidMode(mode) }
    }

    /// Ensures every proper ancestor of `bytes` exists as a directory, creating missing
    /// ones (shallowest first) with `defaultDirectoryMode`.
    private mutating func addParents(of bytes: [UInt8], path: String) throws(ImageError) {
        var end = 1
        while end < bytes.count {
            if bytes[end] == slash {
                let ancestor = Array(bytes[0..<end])
                if let id = find(ancestor) {
                    guard entries[id].kind == .directory else { throw .parentNotDirectory(path) }
                } else {
                    append(Entry(path: ancestor, kind: .directory, mode: ImageWriter.defaultDirectoryMode,
                                 size: 0, target: [], implicit: true))
                }
            }
            end += 1
        }
    }

    @discardableResult
    private mutating func append(_ entry: Entry) -> Int {
        let id = entries.count
        sorted.insert(id, at: insertionPoint(entry.path))
        entries.append(entry)
        return id
    }

    /// First position in `sorted` whose path is not less than `path`.
    private func insertionPoint(_ path: [UInt8]) -> Int {
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = low + (high - low) / 2
            if entries[sorted[middle]].path.lexicographicallyPrecedes(path) { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The id of the entry at `path`, if any.
    private func find(_ path: [UInt8]) -> Int? {
        let position = insertionPoint(path)
        guard position < sorted.count, entries[sorted[position]].path == path else { return nil }
        return sorted[position]
    }

    /// `value` rounded up to a multiple of 4096, or nil on overflow.
    static func pageAligned(_ value: UInt64) -> UInt64? {
        let mask = ImageFormat.pageSize - 1
        let (sum, overflow) = value.addingReportingOverflow(mask)
        return overflow ? nil : sum & ~mask
    }
}

extension Array where Element == UInt8 {
    mutating func store32(_ value: UInt32, at offset: Int) {
        for i in 0..<4 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }

    mutating func store64(_ value: UInt64, at offset: Int) {
        for i in 0..<8 { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
    }
}
