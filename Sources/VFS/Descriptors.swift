// The open-file table: descriptors (small integers, per process) point at open file
// descriptions (offset, status flags; shared by dup and by fork later), which point at nodes.
// Linux's rules: a new descriptor is the lowest free one (at or above a minimum for
// F_DUPFD); close-on-exec belongs to the descriptor, everything else to the description.

import ImageFormat
import LinuxABI

/// An open file description.
struct OpenFile {
    var node: Int
    /// Access mode and status flags (O_APPEND, O_NONBLOCK…; O_PATH for a path-only fd).
    var flags: OpenFlags
    var offset: Int64 = 0
    /// Descriptors referring to this description.
    var references = 1
    /// A generated file's contents, made at open.
    var snapshot: [UInt8] = []
    /// The absolute path it was opened by, lexically normalized (symlinks on the way are not
    /// resolved); empty for a console installed by the kernel. /proc/self/fd shows it.
    var path: [UInt8] = []
    /// getdents64 resume point: after returning the child `directoryName`, the offset was
    /// `directoryCookie`; while the offset still equals it, listing resumes after that name
    /// (so entries added or removed meanwhile do not shift it). -1: resume by position.
    var directoryCookie: Int64 = -1
    var directoryName: [UInt8] = []

    var isPathOnly: Bool { flags.contains(.O_PATH) }
}

/// A descriptor: its description (`-1` when free) and FD_CLOEXEC.
struct DescriptorSlot {
    var openFile: Int
    var closeOnExec: Bool

    static let free = DescriptorSlot(openFile: -1, closeOnExec: false)
}

/// The status flags F_SETFL may change (Linux's SETFL_MASK, less O_DIRECT/O_NOATIME which
/// mean nothing here but are kept if set).
let settableStatusFlags: OpenFlags = [.O_APPEND, .O_NONBLOCK, .O_ASYNC, .O_DIRECT, .O_NOATIME]

extension FileSystem {
    // MARK: Lookup

    /// The description index of `fd`, or EBADF.
    func openFileIndex(_ fd: Int32) throws(Errno) -> Int {
        guard fd >= 0, Int(fd) < descriptors.count else { throw .EBADF }
        let index = descriptors[Int(fd)].openFile
        guard index >= 0 else { throw .EBADF }
        return index
    }

    /// The node `fd` refers to (O_PATH descriptors included), or EBADF.
    func descriptionNode(_ fd: Int32) throws(Errno) -> Int {
        openFiles[try openFileIndex(fd)]?.node ?? FileSystem.rootNode
    }

    /// The description of `fd` for I/O: EBADF if not open or path-only (as Linux's fdget).
    func ioFile(_ fd: Int32) throws(Errno) -> Int {
        let index = try openFileIndex(fd)
        guard let file = openFiles[index], !file.isPathOnly else { throw .EBADF }
        return index
    }

    // MARK: Allocation

    /// The lowest free descriptor >= `minimum`, or EMFILE.
    func lowestFreeDescriptor(from minimum: Int) throws(Errno) -> Int {
        var fd = max(minimum, 0)
        while fd < descriptors.count && descriptors[fd].openFile >= 0 { fd += 1 }
        guard fd < process.descriptorLimit.soft else { throw .EMFILE }
        return fd
    }

    mutating func setDescriptor(_ fd: Int, _ slot: DescriptorSlot) {
        while descriptors.count <= fd { descriptors.append(.free) }
        descriptors[fd] = slot
        descriptorVersion &+= 1
    }

    /// Stores a new description (taking an `opens` reference on its node) and gives it the
    /// lowest free descriptor.
    mutating func install(_ file: OpenFile, closeOnExec: Bool) throws(Errno) -> Int32 {
        let fd = try lowestFreeDescriptor(from: 0)
        let index: Int
        if let free = openFiles.firstIndex(where: { $0 == nil }) {
            index = free
            openFiles[index] = file
        } else {
            index = openFiles.count
            openFiles.append(file)
        }
        nodes[file.node].opens += 1
        setDescriptor(fd, DescriptorSlot(openFile: index, closeOnExec: closeOnExec))
        return Int32(fd)
    }

    /// Drops one descriptor's reference to description `index`.
    mutating func releaseOpenFile(_ index: Int) {
        guard var file = openFiles[index] else { return }
        file.references -= 1
        if file.references > 0 {
            openFiles[index] = file
            return
        }
        openFiles[index] = nil
        nodes[file.node].opens -= 1
        releaseIfUnused(file.node)
    }

    // MARK: Public API

    /// Installs a console description (a `Device.console(id)` with no name) as `fd`,
    /// replacing whatever `fd` was: the kernel's stdin/stdout/stderr at 0, 1, 2. `flags`
    /// gives the access mode (O_RDONLY for stdin, O_WRONLY for the others).
    public mutating func installConsole(fd: Int32, id: UInt32, flags: OpenFlags) throws(Errno) {
        guard fd >= 0, Int(fd) < process.descriptorLimit.soft else { throw .EBADF }
        guard hasRoomForNode() else { throw .ENOMEM }
        let node = makeNode(.device(.console(id)), permissions: 0o620, time: host.now())
        let index: Int
        if let free = openFiles.firstIndex(where: { $0 == nil }) {
            index = free
        } else {
            index = openFiles.count
            openFiles.append(nil)
        }
        openFiles[index] = OpenFile(node: node, flags: flags.intersection([.O_ACCMODE, .O_APPEND, .O_NONBLOCK]))
        nodes[node].opens = 1
        if Int(fd) < descriptors.count, descriptors[Int(fd)].openFile >= 0 {
            releaseOpenFile(descriptors[Int(fd)].openFile)
        }
        setDescriptor(Int(fd), DescriptorSlot(openFile: index, closeOnExec: false))
    }

    /// close(2). EBADF if `fd` is not open.
    @inline(never)  // the kernel calls it from several syscalls; one copy
    public mutating func close(_ fd: Int32) throws(Errno) {
        let index = try openFileIndex(fd)
        setDescriptor(Int(fd), .free)
        releaseOpenFile(index)
    }

    /// dup(2) and fcntl(F_DUPFD / F_DUPFD_CLOEXEC): the lowest free descriptor >= `minimum`
    /// shares `fd`'s description. EINVAL if `minimum` is negative or beyond the limit
    /// (Linux's F_DUPFD), EMFILE if none is free.
    public mutating func duplicate(_ fd: Int32, minimum: Int32 = 0, closeOnExec: Bool = false) throws(Errno) -> Int32 {
        let index = try openFileIndex(fd)
        guard minimum >= 0, Int(minimum) < process.descriptorLimit.soft else { throw .EINVAL }
        let new = try lowestFreeDescriptor(from: Int(minimum))
        openFiles[index]?.references += 1
        setDescriptor(new, DescriptorSlot(openFile: index, closeOnExec: closeOnExec))
        return Int32(new)
    }

    /// dup2(2): `new` becomes a copy of `old` (closing what `new` was); if they are equal,
    /// only checks that `old` is open. EBADF if `old` is not open or `new` is out of range.
    public mutating func duplicate2(_ old: Int32, _ new: Int32) throws(Errno) -> Int32 {
        let index = try openFileIndex(old)
        if old == new { return new }
        try replaceDescriptor(new, with: index, closeOnExec: false)
        return new
    }

    /// dup3(2): as dup2, but `old == new` is EINVAL and `flags` may only be O_CLOEXEC.
    public mutating func duplicate3(_ old: Int32, _ new: Int32, flags: OpenFlags) throws(Errno) -> Int32 {
        guard flags.subtracting(.O_CLOEXEC).isEmpty else { throw .EINVAL }
        guard old != new else { throw .EINVAL }
        let index = try openFileIndex(old)
        try replaceDescriptor(new, with: index, closeOnExec: flags.contains(.O_CLOEXEC))
        return new
    }

    mutating func replaceDescriptor(_ new: Int32, with index: Int, closeOnExec: Bool) throws(Errno) {
        guard new >= 0, Int(new) < process.descriptorLimit.soft else { throw .EBADF }
        openFiles[index]?.references += 1
        if Int(new) < descriptors.count, descriptors[Int(new)].openFile >= 0 {
            releaseOpenFile(descriptors[Int(new)].openFile)
        }
        setDescriptor(Int(new), DescriptorSlot(openFile: index, closeOnExec: closeOnExec))
    }

    /// fcntl(F_GETFD): FD_CLOEXEC or 0.
    public func descriptorFlags(_ fd: Int32) throws(Errno) -> Int32 {
        _ = try openFileIndex(fd)
        return descriptors[Int(fd)].closeOnExec ? FcntlCommand.FD_CLOEXEC : 0
    }

    /// fcntl(F_SETFD).
    public mutating func setDescriptorFlags(_ fd: Int32, _ flags: Int32) throws(Errno) {
        _ = try openFileIndex(fd)
        descriptors[Int(fd)].closeOnExec = flags & FcntlCommand.FD_CLOEXEC != 0
    }

    /// fcntl(F_GETFL): access mode and status flags (O_LARGEFILE always, as on 64-bit Linux).
    @inline(never)  // the kernel calls it from several syscalls; one copy
    public func statusFlags(_ fd: Int32) throws(Errno) -> OpenFlags {
        let index = try openFileIndex(fd)
        return (openFiles[index]?.flags ?? []).union(.O_LARGEFILE)
    }

    /// fcntl(F_SETFL): changes O_APPEND, O_NONBLOCK, O_ASYNC, O_DIRECT, O_NOATIME; other
    /// bits are ignored, as Linux does. EBADF on an O_PATH descriptor; EPERM for changing
    /// O_NOATIME on a file neither the caller's nor root's.
    public mutating func setStatusFlags(_ fd: Int32, _ flags: OpenFlags) throws(Errno) {
        let index = try ioFile(fd)
        try checkNoAccessTimeChange(index, to: flags)
        guard var file = openFiles[index] else { throw .EBADF }
        file.flags = file.flags.subtracting(settableStatusFlags).union(flags.intersection(settableStatusFlags))
        openFiles[index] = file
    }

    /// Closes every close-on-exec descriptor (execve).
    public mutating func closeOnExec() {
        for fd in 0..<descriptors.count where descriptors[fd].openFile >= 0 && descriptors[fd].closeOnExec {
            let index = descriptors[fd].openFile
            setDescriptor(fd, .free)
            releaseOpenFile(index)
        }
    }

    /// Whether `fd` is open.
    @inline(never)  // the kernel asks in many places; one copy
    public func isOpen(_ fd: Int32) -> Bool {
        (try? openFileIndex(fd)) != nil
    }

    // MARK: /proc/self/fd

    /// Rebuilds /proc/self/fd's entries if a descriptor changed since they were made.
    mutating func refreshDescriptorDirectory() {
        let dir = descriptorDirectory
        guard dir >= 0, descriptorDirectoryVersion != descriptorVersion || descriptorDirectoryTable != process.identity,
              nodes[dir].live else { return }
        descriptorDirectoryVersion = descriptorVersion
        descriptorDirectoryTable = process.identity
        let old = nodes[dir].entries
        nodes[dir].entries = []
        for entry in old where entry.node >= 0 { dropLink(entry.node) }
        let time = host.now()
        for fd in 0..<descriptors.count where descriptors[fd].openFile >= 0 {
            guard let file = openFiles[descriptors[fd].openFile] else { continue }
            var permissions: UInt32 = 0o100
            if file.flags.isReadable || file.isPathOnly { permissions |= 0o400 }
            if file.flags.isWritable { permissions |= 0o200 }
            // With memory full the listing stops short rather than the node array growing
            // past what the host can spare.
            guard hasRoomForNode() else { break }
            let link = makeNode(.symlink, permissions: permissions, time: time)
            nodes[link].data = descriptorTarget(file)
            setEntry(in: dir, named: decimalName(fd), to: link)
        }
    }

    /// What /proc/self/fd/N names: a directory's current path, the path a file was opened
    /// by, or the host's name for a console.
    mutating func descriptorTarget(_ file: OpenFile) -> [UInt8] {
        if isDirectory(file.node), let path = try? pathOfDirectory(file.node) { return path }
        if file.path.isEmpty, case .device(.console(let id)) = nodes[file.node].type { return host.consoleName(id) }
        // A file whose last name is gone (unlinked while open, or a memfd), as Linux shows it.
        if nodes[file.node].type == .regular && nodes[file.node].links == 0 && !file.path.isEmpty {
            return file.path + Array(" (deleted)".utf8)
        }
        return file.path
    }

    /// `n` (>= 0) in decimal, most significant digit first.
    private func decimalName(_ n: Int) -> [UInt8] {
        var digits: [UInt8] = []
        var divisor = 1
        while n / divisor >= 10 { divisor *= 10 }
        repeat {
            digits.append(UInt8(ascii: "0") + UInt8(n / divisor % 10))
            divisor /= 10
        } while divisor > 0
        return digits
    }

    /// `path` (relative to `dirfd`) made absolute and lexically normalized: "." and empty
    /// components dropped, ".." taking one off (never above the root).
    func absolutePath(_ dirfd: Int32, _ path: UnsafeRawBufferPointer) -> [UInt8] {
        let bytes = Array(path)
        var result: [UInt8] = []
        if bytes.first != slash {
            let base = dirfd == AtFlags.AT_FDCWD ? cwd : ((try? descriptionNode(dirfd)) ?? cwd)
            if let basePath = try? pathOfDirectory(base) { appendNormalized(basePath, to: &result) }
        }
        appendNormalized(bytes, to: &result)
        return result.isEmpty ? [slash] : result
    }

    /// What `fd` refers to: for the kernel's ioctl, poll and mmap decisions.    /// What `fd` refers to: for the kernel's ioctl, poll and mmap decisions.
    public func nodeType(_ fd: Int32) throws(Errno) -> NodeType {
        nodes[try descriptionNode(fd)].type
    }
}

/// Appends `path`'s components to the normalized absolute path `result` ("/a/b", or empty
/// for the root): "." and empty components are dropped, ".." takes the last component off
/// (never above the root).
func appendNormalized(_ path: [UInt8], to result: inout [UInt8]) {
    var components = PathComponents(path)
    while let component = components.next() {
        let start = component.lowerBound
        if component.count == 1 && path[start] == dot { continue }
        if component.count == 2 && path[start] == dot && path[start + 1] == dot {
            // Remove "/last": bytes up to and including the last slash.
            while let byte = result.popLast(), byte != slash {}
            continue
        }
        result.append(slash)
        for i in component { result.append(path[i]) }
    }
}
