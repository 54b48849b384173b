// What of the files belongs to one process: its descriptor table, current directory, umask
// and executable. The open file descriptions the descriptors point at are the file system's,
// shared between processes (fork shares offsets and status flags, as on Linux).
//
// The running process's table lives inside the FileSystem (every call works on it); the
// kernel keeps the others in its processes and exchanges them when another process runs.

import LinuxABI

/// One process's descriptor table, current directory, umask and /proc/self/exe target.
public struct ProcessFiles {
    /// The descriptor table: index = fd.
    var descriptors: [DescriptorSlot] = []
    /// The current directory (holds one `opens` reference on its node).
    var cwd: Int = 0
    /// The file-creation mask (umask(2)); applied to the mode of open(O_CREAT), mkdir and
    /// (by Linux's rules) not to symlinks.
    var umask: UInt32 = 0o022
    /// What /proc/self/exe points at.
    var executablePath: [UInt8] = []
    /// Changes with every open, dup and close (for /proc/self/fd); `identity` tells tables
    /// apart, so a listing made for another process's table is made again.
    var version = 0
    var identity = 0
    /// RLIMIT_NOFILE: fork and execve keep it (the table is copied or kept).
    public var descriptorLimit = DescriptorLimit(soft: 1024, hard: 524_288)

    public init() {}
}

/// RLIMIT_NOFILE of one process: new descriptors are below `soft` (open: EMFILE, dup2:
/// EBADF, F_DUPFD: EINVAL beyond it); setrlimit moves `soft` up to `hard` and may lower
/// `hard`, never raise it: nobody holds CAP_SYS_RESOURCE, as in a container (root included).
public struct DescriptorLimit: Equatable, Sendable {
    public var soft: Int
    public var hard: Int

    public init(soft: Int, hard: Int) {
        self.soft = soft
        self.hard = hard
    }

    /// setrlimit's checks: EINVAL when soft > hard, EPERM when `hard` would rise.
    public func changed(soft newSoft: UInt64, hard newHard: UInt64) throws(Errno) -> DescriptorLimit {
        guard newSoft <= newHard else { throw .EINVAL }
        guard newHard <= UInt64(hard) else { throw .EPERM }
        return DescriptorLimit(soft: Int(newSoft), hard: Int(newHard))
    }
}

extension FileSystem {
    var descriptors: [DescriptorSlot] {
        _read { yield process.descriptors }
        _modify { yield &process.descriptors }
    }

    var cwd: Int {
        get { process.cwd }
        set { process.cwd = newValue }
    }

    var descriptorVersion: Int {
        get { process.version }
        set { process.version = newValue }
    }

    public var umask: UInt32 {
        get { process.umask }
        set { process.umask = newValue }
    }

    /// The running process's RLIMIT_NOFILE (setrlimit changes it with `DescriptorLimit.changed`).
    public var descriptorLimit: DescriptorLimit {
        get { process.descriptorLimit }
        set { process.descriptorLimit = newValue }
    }

    /// Makes `files` the running process's table and hands back the one that was.
    public mutating func exchangeProcessFiles(_ files: inout ProcessFiles) {
        swap(&process, &files)
        if executableLink >= 0 { nodes[executableLink].data = process.executablePath }
    }

    /// fork: a copy of the running process's table whose descriptors share the same open file
    /// descriptions (each taking one more reference), with the same current directory.
    public mutating func forkProcessFiles(identity: Int) -> ProcessFiles {
        var copy = process
        copy.identity = identity
        for slot in copy.descriptors where slot.openFile >= 0 {
            openFiles[slot.openFile]?.references += 1
        }
        nodes[copy.cwd].opens += 1
        return copy
    }

    /// The highest open descriptor plus one (a bound for walking the table).
    public var descriptorTableSize: Int { descriptors.count }

    /// Drops the running process's current directory (its exit, after its descriptors were
    /// closed); the table is left empty.
    public mutating func releaseProcessFiles() {
        for fd in 0..<descriptors.count where descriptors[fd].openFile >= 0 {
            let index = descriptors[fd].openFile
            setDescriptor(fd, .free)
            releaseOpenFile(index)
        }
        let old = cwd
        cwd = FileSystem.rootNode
        nodes[old].opens -= 1
        releaseIfUnused(old)
        process.descriptors = []
    }

    /// execve: the program /proc/self/exe names from now on.
    public mutating func setExecutablePath(_ path: [UInt8]) {
        process.executablePath = path
        if executableLink >= 0 { nodes[executableLink].data = path }
    }
}

/// A program file execve found: its bytes (a slice of the image, page aligned, when it was
/// never changed in the VM; else a copy of the overlay's) and its mode and owner.
public struct ExecutableFile {
    public var imageBytes: UnsafeRawBufferPointer?
    public var copiedBytes: [UInt8]
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
}

extension FileSystem {
    /// The file execve(dirfd, path) runs, symlinks followed (AT_EMPTY_PATH: `dirfd`'s own
    /// file, for execveat and fexecve). ENOENT/ENOTDIR/ELOOP from the walk; EACCES for a
    /// directory, a device or a file whose x bits do not let the caller run it (root needs
    /// any one, as on Linux; see `checkExecutable`). No read permission is needed.
    public mutating func executable(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, follow: Bool = true,
                                    emptyPath: Bool = false) throws(Errno) -> ExecutableFile {
        let node = try resolveAt(dirfd, path, follow: follow, emptyPath: emptyPath)
        if nodes[node].type == .symlink { throw .ELOOP }  // AT_SYMLINK_NOFOLLOW on a link
        try checkExecutable(node)
        var file = ExecutableFile(imageBytes: imageBytes(node), copiedBytes: [], mode: nodes[node].permissions,
                                  uid: nodes[node].uid, gid: nodes[node].gid)
        if file.imageBytes == nil {
            let size = contentSize(node)
            guard host.canAllocate(size) else { throw .ENOMEM }
            file.copiedBytes = [UInt8](repeating: 0, count: size)
            file.copiedBytes.withUnsafeMutableBytes { buffer in
                _ = readRegular(node, at: 0, into: buffer)
            }
        }
        return file
    }
}

extension FileSystem {
    /// `path` (relative to `dirfd`, or `dirfd`'s own path when empty) made absolute and
    /// lexically normalized, as /proc/self/exe and AT_EXECFN show a program.
    public func normalizedPath(_ dirfd: Int32, _ path: UnsafeRawBufferPointer) -> [UInt8] {
        if path.isEmpty, let index = try? openFileIndex(dirfd), let file = openFiles[index], !file.path.isEmpty {
            return file.path
        }
        return absolutePath(dirfd, path)
    }
}

extension FileSystem {
    /// Removes what `addSynthetic` put at the absolute `path` (a /proc/PID directory when
    /// its process is gone), with everything below it. Nothing happens if it is not there.
    public mutating func removeSynthetic(path: UnsafeRawBufferPointer) {
        let path = Array(path)
        var directory = FileSystem.rootNode
        var components = PathComponents(path)
        var last: Range<Int>? = nil
        while let component = components.next() {
            if let previous = last {
                guard let next = child(of: directory, named: Array(path[previous])), isDirectory(next) else { return }
                directory = next
            }
            last = component
        }
        guard let last, let node = child(of: directory, named: Array(path[last])) else { return }
        if isDirectory(node) {
            for entry in nodes[node].entries where entry.node >= 0 { dropLink(entry.node) }
            nodes[node].entries = []
        }
        removeEntry(in: directory, named: Array(path[last]))
        dropLink(node)
    }
}

extension FileSystem {
    /// The absolute path of the file (`dirfd`, `path`) names with every symlink resolved, as
    /// /proc/PID/exe shows a program (nil if it does not resolve).
    public mutating func canonicalPath(_ dirfd: Int32, _ path: UnsafeRawBufferPointer) -> [UInt8]? {
        let bytes = Array(path)
        guard !bytes.isEmpty, let start = try? startDirectory(dirfd, for: bytes) else { return nil }
        var links = 0
        guard var lookup = try? walkToParent(bytes, from: start, links: &links) else { return nil }
        while true {
            guard let node = lookupLast(lookup) else { return nil }
            if nodes[node].type == .symlink {
                links += 1
                guard links <= FileSystemLimits.maxSymlinks,
                      let next = try? walkToParent(linkTarget(node), from: lookup.parent, links: &links) else { return nil }
                lookup = next
                continue
            }
            guard case .name(let name) = lookup.last, var result = try? pathOfDirectory(lookup.parent) else { return nil }
            if result != [slash] { result.append(slash) }
            return result + name
        }
    }
}
