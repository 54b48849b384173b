// open, read, write, seek, truncate, getdents64: the data path.

import ImageFormat
import LinuxABI

extension FileSystem {
    // MARK: open

    /// openat(2). Returns the new descriptor (the lowest free). Honours O_CREAT, O_EXCL,
    /// O_TRUNC, O_DIRECTORY, O_NOFOLLOW, O_PATH, O_APPEND, O_NONBLOCK, O_CLOEXEC; `mode`'s
    /// permission bits, less the umask, are the new file's, and the caller owns it (see
    /// `setNewOwner`). An existing file needs read permission to be opened for reading and
    /// write permission for writing or O_TRUNC (EACCES); O_NOATIME is for its owner or root
    /// (EPERM). O_TMPFILE is EOPNOTSUPP.
    public mutating func openat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, flags: OpenFlags,
                                mode: UInt32 = 0) throws(Errno) -> Int32 {
        if flags.contains(.O_TMPFILE) { throw .EOPNOTSUPP }
        let closeOnExec = flags.contains(.O_CLOEXEC)
        if flags.contains(.O_PATH) {
            // O_PATH ignores every flag but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC.
            let node = try resolveAt(dirfd, path, follow: !flags.contains(.O_NOFOLLOW))
            if flags.contains(.O_DIRECTORY) && !isDirectory(node) { throw .ENOTDIR }
            var file = OpenFile(node: node, flags: .O_PATH)
            file.path = absolutePath(dirfd, path)
            return try install(file, closeOnExec: closeOnExec)
        }
        // Linux 6.4+: O_CREAT | O_DIRECTORY is EINVAL.
        if flags.contains(.O_CREAT) && flags.contains(.O_DIRECTORY) { throw .EINVAL }

        let node: Int
        var created = false
        if flags.contains(.O_CREAT) {
            (node, created) = try openCreating(dirfd, path, flags: flags, mode: mode)
        } else {
            node = try resolveAt(dirfd, path, follow: !flags.contains(.O_NOFOLLOW))
        }
        let type = nodes[node].type
        // O_TRUNC asks for write access even with O_RDONLY (Linux's build_open_flags).
        let writes = flags.isWritable || flags.contains(.O_TRUNC)
        switch type {
        case .symlink:
            // Only reachable with O_NOFOLLOW (a followed link resolves further).
            throw .ELOOP
        case .directory:
            if flags.contains(.O_CREAT) || writes { throw .EISDIR }
        case .regular, .generated, .device:
            if flags.contains(.O_DIRECTORY) { throw .ENOTDIR }
        }
        // Devices stay writable in a read-only tree, as on a read-only mount.
        if writes && !created, case .regular = type { try checkWritable(node) }
        // A file this call made is not checked: open(O_CREAT | O_WRONLY, 0444) writes it.
        if !created {
            // O_ACCMODE 3 (neither reading nor writing) asks for both, as Linux's ACC_MODE.
            var request: AccessRequest = writes ? .write : []
            if flags.accessMode != .writeOnly { request.insert(.read) }
            if flags.accessMode == .none { request.insert(.write) }
            try checkPermission(node, request)
            if flags.contains(.O_NOATIME) && !isOwnerOrPrivileged(node) { throw .EPERM }
        }
        var file = OpenFile(node: node, flags: flags.intersection(
            [.O_ACCMODE, .O_APPEND, .O_NONBLOCK, .O_ASYNC, .O_DIRECT, .O_NOATIME, .O_DSYNC, .O_SYNC]))
        if case .generated(let id) = type {
            // Synthetic files are read-only, as /proc's are to an unprivileged writer.
            if writes { throw .EACCES }
            file.snapshot = try host.generate(id)
        }
        if type == .regular && flags.contains(.O_TRUNC) && !created && contentSize(node) > 0 {
            try resize(node, to: 0)
        }
        file.path = absolutePath(dirfd, path)
        return try install(file, closeOnExec: closeOnExec)
    }

    /// The O_CREAT part of openat: the existing node (following a final symlink unless
    /// O_NOFOLLOW, even a dangling one: then the link's target is created), or a new file.
    mutating func openCreating(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, flags: OpenFlags,
                               mode: UInt32) throws(Errno) -> (node: Int, created: Bool) {
        var lookup = try resolveParentAt(dirfd, path)
        // With O_CREAT a trailing slash is EISDIR whatever the name is (Linux's
        // open_last_lookups checks it before looking the name up).
        if lookup.trailingSlash { throw .EISDIR }
        var links = 0
        while true {
            guard case .name(let name) = lookup.last else { throw .EISDIR }
            if let existing = child(of: lookup.parent, named: name) {
                if flags.contains(.O_EXCL) { throw .EEXIST }
                if nodes[existing].type == .symlink {
                    if flags.contains(.O_NOFOLLOW) { throw .ELOOP }
                    links += 1
                    guard links <= FileSystemLimits.maxSymlinks else { throw .ELOOP }
                    let trailingSlash = lookup.trailingSlash
                    lookup = try walkToParent(linkTarget(existing), from: lookup.parent, links: &links)
                    lookup.trailingSlash = lookup.trailingSlash || trailingSlash
                    continue
                }
                if lookup.trailingSlash && !isDirectory(existing) { throw .ENOTDIR }
                return (existing, false)
            }
            // A symlink's target ending in '/' asks for a directory, which O_CREAT does not make.
            if lookup.trailingSlash { throw .EISDIR }
            guard nodes[lookup.parent].links > 0 || lookup.parent == FileSystem.rootNode else { throw .ENOENT }
            try checkWritable(lookup.parent)
            try checkCanCreate(in: lookup.parent)
            try checkRoomForName(in: lookup.parent, nameLength: name.count, newNode: true)
            let now = host.now()
            let node = makeNode(.regular, permissions: mode & ~umask, time: now)
            setNewOwner(node, in: lookup.parent)
            setEntry(in: lookup.parent, named: name, to: node)
            touchDirectory(lookup.parent, now)
            return (node, true)
        }
    }

    /// A directory's contents changed at `now`.
    mutating func touchDirectory(_ dir: Int, _ now: Timespec) {
        nodes[dir].modificationTime = now
        nodes[dir].changeTime = now
    }

    // MARK: read / write

    /// read(2): EBADF if not open for reading, EISDIR on a directory.
    public mutating func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let index = try ioFile(fd)
        guard let file = openFiles[index], file.flags.isReadable else { throw .EBADF }
        let count = try readAt(index, offset: file.offset, into: buffer)
        if case .device = nodes[file.node].type { return count }
        openFiles[index]?.offset = file.offset + Int64(count)
        return count
    }

    /// pread64(2): as read at `offset`, leaving the file offset alone. EINVAL for a negative
    /// offset, ESPIPE on a console.
    public mutating func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer,
                               offset: Int64) throws(Errno) -> Int {
        let index = try ioFile(fd)
        guard let file = openFiles[index], file.flags.isReadable else { throw .EBADF }
        if case .device(.console) = nodes[file.node].type { throw .ESPIPE }
        guard offset >= 0 else { throw .EINVAL }
        return try readAt(index, offset: offset, into: buffer)
    }

    mutating func readAt(_ index: Int, offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        guard let file = openFiles[index] else { throw .EBADF }
        let node = file.node
        switch nodes[node].type {
        case .directory:
            throw .EISDIR
        case .symlink:
            throw .EBADF
        case .regular:
            return readRegular(node, at: offset, into: buffer)
        case .generated:
            return file.snapshot.withUnsafeBytes { copyOut($0, from: offset, into: buffer) }
        case .device(let device):
            switch device {
            case .null:
                return 0
            case .zero, .full:
                if buffer.count > 0 { buffer.initializeMemory(as: UInt8.self, repeating: 0) }
                return buffer.count
            case .random, .urandom:
                host.fillRandom(buffer)
                return buffer.count
            case .console(let id):
                return try host.consoleRead(id, into: buffer, nonblocking: file.flags.contains(.O_NONBLOCK))
            }
        }
    }

    /// A regular file's bytes at `offset`: the image's while unchanged, else the overlay's,
    /// after collecting what a shared mapping of it holds. Returns the count (0 at or past
    /// the end).
    mutating func readRegular(_ node: Int, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        if let bytes = imageBytes(node) { return copyOut(bytes, from: offset, into: buffer) }
        if offset >= 0 { collectShared(node, Int(offset), buffer.count) }
        return nodes[node].data.withUnsafeBytes { copyOut($0, from: offset, into: buffer) }
    }

    /// An unchanged regular image file's bytes, a slice of the image that starts on a page
    /// boundary and is zero-padded to the next; nil for anything else.
    func imageBytes(_ node: Int) -> UnsafeRawBufferPointer? {
        guard nodes[node].type == .regular, nodes[node].image >= 0 else { return nil }
        return image.contents(of: image.entry(at: nodes[node].image))
    }

    /// Copies `source[offset...]` into `buffer`; returns the count (0 at or past the end).
    func copyOut(_ source: UnsafeRawBufferPointer, from offset: Int64,
                 into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard offset >= 0, offset < Int64(source.count) else { return 0 }
        let start = Int(offset)
        let count = min(buffer.count, source.count - start)
        guard count > 0, let to = buffer.baseAddress, let from = source.baseAddress else { return 0 }
        to.copyMemory(from: from + start, byteCount: count)
        return count
    }

    /// write(2): EBADF if not open for writing. With O_APPEND every write goes to the end.
    public mutating func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        let index = try ioFile(fd)
        guard let file = openFiles[index], file.flags.isWritable else { throw .EBADF }
        let node = file.node
        if case .device = nodes[node].type { return try writeDevice(file, bytes) }
        let offset = file.flags.contains(.O_APPEND) ? Int64(contentSize(node)) : file.offset
        let count = try writeRegular(node, at: offset, bytes)
        openFiles[index]?.offset = offset + Int64(count)
        return count
    }

    /// pwrite64(2): as write at `offset` without moving the file offset; EINVAL for a
    /// negative offset. As on Linux, an O_APPEND description appends regardless.
    public mutating func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, offset: Int64) throws(Errno) -> Int {
        let index = try ioFile(fd)
        guard let file = openFiles[index], file.flags.isWritable else { throw .EBADF }
        let node = file.node
        if case .device(.console) = nodes[node].type { throw .ESPIPE }
        guard offset >= 0 else { throw .EINVAL }
        if case .device = nodes[node].type { return try writeDevice(file, bytes) }
        let at = file.flags.contains(.O_APPEND) ? Int64(contentSize(node)) : offset
        return try writeRegular(node, at: at, bytes)
    }

    mutating func writeDevice(_ file: OpenFile, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        guard case .device(let device) = nodes[file.node].type else { throw .EBADF }
        switch device {
        case .null, .zero, .random, .urandom:
            return bytes.count
        case .full:
            throw .ENOSPC
        case .console(let id):
            return try host.consoleWrite(id, bytes, nonblocking: file.flags.contains(.O_NONBLOCK))
        }
    }

    mutating func writeRegular(_ node: Int, at offset: Int64, _ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        guard nodes[node].type == .regular else { throw .EBADF }
        guard bytes.count > 0 else { return 0 }
        let (end, overflow) = offset.addingReportingOverflow(Int64(bytes.count))
        guard !overflow, end <= Int64(options.maxFileSize) else { throw .EFBIG }
        try checkSealsAllowWrite(node, end: end)
        try copyUp(node)
        try reserve(node, Int(end))
        dropPrivilegeBitsOnWrite(node)
        if Int(end) > nodes[node].data.count {
            nodes[node].data.append(contentsOf: repeatElement(0, count: Int(end) - nodes[node].data.count))
        }
        let start = Int(offset)
        nodes[node].data.withUnsafeMutableBytes { data in
            if let to = data.baseAddress, let from = bytes.baseAddress {
                (to + start).copyMemory(from: from, byteCount: bytes.count)
            }
        }
        pushShared(node, from: start, to: Int(end))
        let now = host.now()
        nodes[node].modificationTime = now
        nodes[node].changeTime = now
        return bytes.count
    }

    /// Makes room for `count` bytes in a tmpfs file: capacity doubles (amortized appends),
    /// or grows to just `count` when the host cannot spare double; ENOSPC when it cannot
    /// spare even that.
    mutating func reserve(_ node: Int, _ count: Int) throws(Errno) {
        let capacity = nodes[node].data.capacity
        guard count > capacity else { return }
        var target = max(count, 2 * capacity)
        if !host.canAllocate(target) {
            guard host.canAllocate(count) else { throw .ENOSPC }
            target = count
        }
        nodes[node].data.reserveCapacity(target)
    }

    /// Sets a regular file's length (zero-filling growth); EFBIG beyond the size limit.
    mutating func resize(_ node: Int, to length: Int64) throws(Errno) {
        guard length <= Int64(options.maxFileSize) else { throw .EFBIG }
        try checkSealsAllowResize(node, to: length)
        try copyUp(node)
        try reserve(node, Int(length))
        dropPrivilegeBitsOnWrite(node)
        let size = nodes[node].data.count
        if Int(length) < size {
            nodes[node].data.removeSubrange(Int(length)..<size)
        } else if Int(length) > size {
            nodes[node].data.append(contentsOf: repeatElement(0, count: Int(length) - size))
        }
        // Shrinking: the pages past the end read zero; growing: the new bytes are zero even
        // where the app stored past the old end through a mapping (Linux zeroes them too).
        if Int(length) != size { pushShared(node, from: min(size, Int(length)), to: Int.max) }
        let now = host.now()
        nodes[node].modificationTime = now
        nodes[node].changeTime = now
    }

    // MARK: seek, truncate

    /// lseek(2). Regular and generated files: SEEK_SET/CUR/END, and SEEK_DATA/SEEK_HOLE
    /// (no holes: data up to the end, ENXIO at or past it); a result below 0 is EINVAL.
    /// Directories: SEEK_SET and SEEK_CUR move the getdents64 cookie. Consoles: ESPIPE.
    /// Other devices: always 0.
    public mutating func lseek(_ fd: Int32, _ offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        let index = try ioFile(fd)
        guard let file = openFiles[index] else { throw .EBADF }
        guard let how = SeekWhence(rawValue: whence) else { throw .EINVAL }
        let size: Int64
        switch nodes[file.node].type {
        case .device(.console):
            throw .ESPIPE
        case .device, .symlink:
            return 0
        case .directory:
            guard how == .SEEK_SET || how == .SEEK_CUR else { throw .EINVAL }
            size = 0
        case .regular:
            size = Int64(contentSize(file.node))
        case .generated:
            size = Int64(file.snapshot.count)
        }
        let result: Int64
        switch how {
        case .SEEK_SET:
            result = offset
        case .SEEK_CUR:
            let (sum, overflow) = file.offset.addingReportingOverflow(offset)
            guard !overflow else { throw .EOVERFLOW }
            result = sum
        case .SEEK_END:
            let (sum, overflow) = size.addingReportingOverflow(offset)
            guard !overflow else { throw .EOVERFLOW }
            result = sum
        case .SEEK_DATA:
            guard offset >= 0, offset < size else { throw .ENXIO }
            result = offset
        case .SEEK_HOLE:
            guard offset >= 0, offset < size else { throw .ENXIO }
            result = size
        }
        guard result >= 0 else { throw .EINVAL }
        openFiles[index]?.offset = result
        return result
    }

    /// ftruncate(2): EINVAL for a negative length or a descriptor that is not a regular
    /// file open for writing.
    public mutating func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {
        guard length >= 0 else { throw .EINVAL }
        let index = try ioFile(fd)
        guard let file = openFiles[index], file.flags.isWritable,
              nodes[file.node].type == .regular else { throw .EINVAL }
        try resize(file.node, to: length)
    }

    /// truncate(2): follows symlinks; EISDIR on a directory, EINVAL on other non-files,
    /// EACCES without write permission.
    public mutating func truncate(_ path: UnsafeRawBufferPointer, length: Int64) throws(Errno) {
        guard length >= 0 else { throw .EINVAL }
        let node = try resolveAt(AtFlags.AT_FDCWD, path, follow: true)
        switch nodes[node].type {
        case .regular:
            try checkWritable(node)
            try checkPermission(node, .write)
            try resize(node, to: length)
        case .directory: throw .EISDIR
        default: throw .EINVAL
        }
    }

    // MARK: getdents64

    /// getdents64(2): fills `buffer` with linux_dirent64 records and returns the bytes
    /// used; 0 at the end. EINVAL if the next record does not fit at all, ENOTDIR if `fd`
    /// is not a directory. The offset (d_off cookie) is the position in the listing:
    /// 0 ".", 1 "..", 2 + k the k-th child in name order (see `OpenFile.directoryCookie`
    /// for how a listing resumes when the directory changes between calls).
    /// `legacy`: the records are the old getdents's `struct linux_dirent` (`LegacyDirent`).
    public mutating func getdents64(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer,
                                    legacy: Bool = false) throws(Errno) -> Int {
        let index = try ioFile(fd)
        guard let file = openFiles[index] else { throw .EBADF }
        let dir = file.node
        guard isDirectory(dir) else { throw .ENOTDIR }
        if dir == descriptorDirectory { refreshDescriptorDirectory() }

        var written = 0
        var position = file.offset
        var full = false
        func emit(_ name: UnsafeRawBufferPointer, _ ino: UInt64, _ type: UInt8, next: Int64) -> Bool {
            let encoded = legacy
                ? LegacyDirent.encode(into: buffer, at: written, inode: ino, nextOffset: next, type: type, name: name)
                : Dirent64.encode(into: buffer, at: written, inode: ino, nextOffset: next, type: type, name: name)
            guard let length = encoded else {
                full = true
                return false
            }
            written += length
            return true
        }
        if position == 0 {
            let ok = [dot].withUnsafeBytes { emit($0, nodes[dir].ino, DirentType.DT_DIR, next: 1) }
            if ok { position = 1 }
        }
        if position == 1 && !full {
            let parent = nodes[nodes[dir].parent].ino
            let ok = [dot, dot].withUnsafeBytes { emit($0, parent, DirentType.DT_DIR, next: 2) }
            if ok { position = 2 }
        }
        var lastName: [UInt8]? = nil
        if position >= 2 && !full {
            let resumeName: [UInt8]? = file.directoryCookie == position ? file.directoryName : nil
            var k: Int64 = 2
            var walk = walkChildren(of: dir)
            while let child = nextChild(&walk) {
                defer { k += 1 }
                let more = child.name.withBytes { name -> Bool in
                    if let resumeName {
                        if compareNames(resumeName, name) >= 0 { return true }
                    } else if k < position {
                        return true
                    }
                    guard emit(name, child.ino, child.type.direntType, next: k + 1) else { return false }
                    position = k + 1
                    lastName = Array(name)
                    return true
                }
                if !more { break }
            }
        }
        if written == 0 && full { throw .EINVAL }
        openFiles[index]?.offset = position
        if let lastName {
            openFiles[index]?.directoryCookie = position
            openFiles[index]?.directoryName = lastName
        }
        return written
    }

    // MARK: mmap support

    /// For an image-backed regular file (never written, so not copied up): its bytes as a
    /// slice of the image, which starts on a page boundary and is zero-padded to the next,
    /// so the kernel can map the image's pages directly. Nil for any other descriptor.
    public func imageContents(_ fd: Int32) -> UnsafeRawBufferPointer? {
        guard let index = try? ioFile(fd), let file = openFiles[index] else { return nil }
        return imageBytes(file.node)
    }

    /// The size of `fd`'s file in bytes (what mmap of a tmpfs file copies).
    public func fileSize(_ fd: Int32) throws(Errno) -> Int {
        let node = try descriptionNode(fd)
        return contentSize(node)
    }
}
