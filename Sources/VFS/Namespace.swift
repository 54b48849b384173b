// Names: mkdir, unlink, rmdir, rename, link, symlink, readlink, and the current directory.
// Errors follow Linux's order of checks (fs/namei.c): a last component of "." or ".." or
// the root is refused first, then existence, then permission (Permissions.swift), then type.

import ImageFormat
import LinuxABI

/// renameat2 flags (<linux/fs.h>).
public enum RenameFlags {
    public static let RENAME_NOREPLACE: UInt32 = 1
    public static let RENAME_EXCHANGE: UInt32 = 2
    public static let RENAME_WHITEOUT: UInt32 = 4
}

extension FileSystem {
    /// The name a creating call (mkdir, symlink, link) makes: EEXIST for ".", "..", "/"
    /// and existing names (a dangling symlink exists); ENOENT for a trailing slash on a
    /// non-directory create, or a removed parent; EROFS; then, if `checkingPermission`,
    /// EACCES without write and search permission on the parent.
    mutating func nameToCreate(_ lookup: ParentLookup, directory: Bool,
                               checkingPermission: Bool = true) throws(Errno) -> [UInt8] {
        guard case .name(let name) = lookup.last else { throw .EEXIST }
        if child(of: lookup.parent, named: name) != nil { throw .EEXIST }
        if lookup.trailingSlash && !directory { throw .ENOENT }
        guard nodes[lookup.parent].links > 0 || lookup.parent == FileSystem.rootNode else { throw .ENOENT }
        try checkWritable(lookup.parent)
        if checkingPermission { try checkCanCreate(in: lookup.parent) }
        return name
    }

    /// mkdirat(2): `mode`'s permission and sticky bits, less the umask; owned by the caller
    /// (see `setNewOwner` for a setgid parent).
    @inline(never)  // the kernel calls it from several syscalls; one copy
    public mutating func mkdirat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, mode: UInt32) throws(Errno) {
        let lookup = try resolveParentAt(dirfd, path)
        let name = try nameToCreate(lookup, directory: true)
        try checkRoomForName(in: lookup.parent, nameLength: name.count, newNode: true)
        let now = host.now()
        let node = makeNode(.directory, permissions: mode & 0o1777 & ~umask, time: now)
        setNewOwner(node, in: lookup.parent)
        setEntry(in: lookup.parent, named: name, to: node)
        touchDirectory(lookup.parent, now)
    }

    /// mknodat(2) of a regular file (type S_IFREG, or 0 which means it): an empty file with
    /// `mode`'s permission bits less the umask, as open(O_CREAT | O_EXCL) makes it. A type
    /// that is no file type is EINVAL; FIFOs, sockets and devices are EPERM after the
    /// name's checks (this file system has no special files but its own /dev, as an
    /// unprivileged container cannot make devices).
    public mutating func mknodat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, mode: UInt32) throws(Errno) {
        let type = mode & FileMode.S_IFMT
        let special = type == FileMode.S_IFCHR || type == FileMode.S_IFBLK || type == FileMode.S_IFIFO
            || type == FileMode.S_IFSOCK
        guard type == 0 || type == FileMode.S_IFREG || special else { throw .EINVAL }
        let lookup = try resolveParentAt(dirfd, path)
        let name = try nameToCreate(lookup, directory: false)
        if special { throw .EPERM }
        try checkRoomForName(in: lookup.parent, nameLength: name.count, newNode: true)
        let now = host.now()
        let node = makeNode(.regular, permissions: mode & 0o7777 & ~umask, time: now)
        setNewOwner(node, in: lookup.parent)
        setEntry(in: lookup.parent, named: name, to: node)
        touchDirectory(lookup.parent, now)
    }

    /// symlinkat(2): ENOENT for an empty target, ENAMETOOLONG beyond 4095 bytes.
    public mutating func symlinkat(_ target: UnsafeRawBufferPointer, _ dirfd: Int32,
                                   _ path: UnsafeRawBufferPointer) throws(Errno) {
        guard target.count > 0 else { throw .ENOENT }
        guard target.count <= FileSystemLimits.maxPath else { throw .ENAMETOOLONG }
        let lookup = try resolveParentAt(dirfd, path)
        let name = try nameToCreate(lookup, directory: false)
        try checkRoomForName(in: lookup.parent, nameLength: name.count, newNode: true, extraBytes: target.count)
        let now = host.now()
        let node = makeNode(.symlink, permissions: 0o777, time: now)
        nodes[node].data = Array(target)
        setNewOwner(node, in: lookup.parent)
        setEntry(in: lookup.parent, named: name, to: node)
        touchDirectory(lookup.parent, now)
    }

    /// linkat(2): `flags` may hold AT_SYMLINK_FOLLOW (follow a final symlink of the old
    /// path) and AT_EMPTY_PATH. EPERM for a directory, and for a file neither the caller's
    /// nor safe to pin (see `checkCanHardLink`) before EACCES for the new name's directory.
    public mutating func linkat(_ olddirfd: Int32, _ oldpath: UnsafeRawBufferPointer, _ newdirfd: Int32,
                                _ newpath: UnsafeRawBufferPointer, flags: AtFlags) throws(Errno) {
        guard flags.subtracting([.AT_SYMLINK_FOLLOW, .AT_EMPTY_PATH]).isEmpty else { throw .EINVAL }
        let node = try resolveAt(olddirfd, oldpath, follow: flags.contains(.AT_SYMLINK_FOLLOW),
                                 emptyPath: flags.contains(.AT_EMPTY_PATH))
        let lookup = try resolveParentAt(newdirfd, newpath)
        let name = try nameToCreate(lookup, directory: false, checkingPermission: false)
        try checkCanHardLink(node)
        try checkCanCreate(in: lookup.parent)
        if isDirectory(node) { throw .EPERM }
        // A file whose last name is gone (open, unlinked) cannot get a new one (Linux: ENOENT).
        if nodes[node].links == 0 { throw .ENOENT }
        try checkRoomForName(in: lookup.parent, nameLength: name.count, newNode: false)
        setEntry(in: lookup.parent, named: name, to: node)
        let now = host.now()
        nodes[node].changeTime = now
        touchDirectory(lookup.parent, now)
    }

    /// unlinkat(2): `flags` may only be AT_REMOVEDIR (then rmdir).
    public mutating func unlinkat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, flags: AtFlags) throws(Errno) {
        guard flags.subtracting(.AT_REMOVEDIR).isEmpty else { throw .EINVAL }
        let lookup = try resolveParentAt(dirfd, path)
        if flags.contains(.AT_REMOVEDIR) {
            switch lookup.last {
            case .root: throw .EBUSY
            case .dot: throw .EINVAL
            case .dotDot: throw .ENOTEMPTY
            case .name(let name):
                // As Linux's mnt_want_write: EROFS before the name is even looked up.
                try checkWritable(lookup.parent)
                guard let node = child(of: lookup.parent, named: name) else { throw .ENOENT }
                try checkCanRemove(node, from: lookup.parent, directory: true)
                guard isEmptyDirectory(node) else { throw .ENOTEMPTY }
                removeEntry(in: lookup.parent, named: name)
                dropLink(node)
                touchDirectory(lookup.parent, host.now())
            }
            return
        }
        guard case .name(let name) = lookup.last else { throw .EISDIR }
        try checkWritable(lookup.parent)
        guard let node = child(of: lookup.parent, named: name) else { throw .ENOENT }
        // "name/": refused before permission is asked (Linux's do_unlinkat), EISDIR for a
        // directory, else ENOTDIR (a symlink is not followed here).
        if lookup.trailingSlash { throw isDirectory(node) ? .EISDIR : .ENOTDIR }
        try checkCanRemove(node, from: lookup.parent, directory: false)
        removeEntry(in: lookup.parent, named: name)
        dropLink(node)
        touchDirectory(lookup.parent, host.now())
    }

    /// renameat2(2) with RENAME_NOREPLACE or RENAME_EXCHANGE (RENAME_WHITEOUT is EINVAL).
    public mutating func renameat2(_ olddirfd: Int32, _ oldpath: UnsafeRawBufferPointer, _ newdirfd: Int32,
                                   _ newpath: UnsafeRawBufferPointer, flags: UInt32 = 0) throws(Errno) {
        let noReplace = flags & RenameFlags.RENAME_NOREPLACE != 0
        let exchange = flags & RenameFlags.RENAME_EXCHANGE != 0
        guard flags & ~(RenameFlags.RENAME_NOREPLACE | RenameFlags.RENAME_EXCHANGE) == 0,
              !(noReplace && exchange) else { throw .EINVAL }
        let old = try resolveParentAt(olddirfd, oldpath)
        let new = try resolveParentAt(newdirfd, newpath)
        guard case .name(let oldName) = old.last else { throw .EBUSY }
        guard case .name(let newName) = new.last else { throw noReplace ? .EEXIST : .EBUSY }
        try checkWritable(old.parent)
        try checkWritable(new.parent)
        guard let source = child(of: old.parent, named: oldName) else { throw .ENOENT }
        let target = child(of: new.parent, named: newName)
        if exchange && target == nil { throw .ENOENT }
        if noReplace && target != nil { throw .EEXIST }
        if !isDirectory(source) && (old.trailingSlash || new.trailingSlash) {
            // `if let`, not `target.map(isDirectory)`: that method reference would capture
            // (copy) the whole file system.
            var targetIsDirectory = false
            if let target { targetIsDirectory = isDirectory(target) }
            if !exchange || !targetIsDirectory { throw .ENOTDIR }
        }
        if target == nil {
            guard nodes[new.parent].links > 0 || new.parent == FileSystem.rootNode else { throw .ENOENT }
        }
        // A directory cannot move below itself (EINVAL); a target that is an ancestor of
        // the source is not empty (ENOTEMPTY, found below).
        if isDirectory(source) && isAncestor(source, of: new.parent) { throw .EINVAL }
        if exchange, let target, isDirectory(target), isAncestor(target, of: old.parent) { throw .EINVAL }
        if source == target { return }
        // Permission (vfs_rename): removing the old name, making or replacing the new one,
        // and a directory moving to another parent must be writable (its ".." changes).
        try checkCanRemove(source, from: old.parent, directory: isDirectory(source))
        if let target {
            try checkCanRemove(target, from: new.parent, directory: exchange ? isDirectory(target) : isDirectory(source))
        } else {
            try checkCanCreate(in: new.parent)
        }
        if old.parent != new.parent {
            if isDirectory(source) { try checkPermission(source, .write) }
            if exchange, let target, isDirectory(target) { try checkPermission(target, .write) }
        }
        // A name new to another directory may grow that directory's list.
        if target == nil && new.parent != old.parent {
            try checkRoomForName(in: new.parent, nameLength: newName.count, newNode: false)
        }
        let now = host.now()

        if exchange, let target {
            setEntry(in: old.parent, named: oldName, to: target)
            setEntry(in: new.parent, named: newName, to: source)
            // setEntry counted a link on each; the names only swapped.
            if !isDirectory(target) { nodes[target].links -= 1 }
            if !isDirectory(source) { nodes[source].links -= 1 }
            nodes[source].changeTime = now
            nodes[target].changeTime = now
            touchDirectory(old.parent, now)
            touchDirectory(new.parent, now)
            return
        }
        if let target {
            if isDirectory(source) {
                guard isDirectory(target) else { throw .ENOTDIR }
                guard isEmptyDirectory(target) else { throw .ENOTEMPTY }
            } else if isDirectory(target) {
                throw .EISDIR
            }
        }
        removeEntry(in: old.parent, named: oldName)
        if !isDirectory(source) { nodes[source].links -= 1 }  // setEntry adds it back
        setEntry(in: new.parent, named: newName, to: source)
        if let target { dropLink(target) }
        nodes[source].changeTime = now
        touchDirectory(old.parent, now)
        touchDirectory(new.parent, now)
    }

    /// Whether directory `ancestor` is `dir` or above it.
    func isAncestor(_ ancestor: Int, of dir: Int) -> Bool {
        var node = dir
        var depth = 0
        while depth < 1 << 16 {
            if node == ancestor { return true }
            if node == FileSystem.rootNode || nodes[node].parent == node { return false }
            node = nodes[node].parent
            depth += 1
        }
        return false
    }

    /// readlinkat(2): copies the target (no NUL, truncated to the buffer) and returns its
    /// length. EINVAL if the path is not a symlink or the buffer is empty. An empty path
    /// reads the symlink `dirfd` refers to (an O_PATH | O_NOFOLLOW descriptor).
    public mutating func readlinkat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer,
                                    into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        guard buffer.count > 0 else { throw .EINVAL }
        let node = try resolveAt(dirfd, path, follow: false, emptyPath: true)
        guard nodes[node].type == .symlink else { throw path.count == 0 ? .ENOENT : .EINVAL }
        return linkTarget(node).withUnsafeBytes { copyOut($0, from: 0, into: buffer) }
    }

    // MARK: Current directory

    /// chdir(2): EACCES without search permission on the directory.
    @inline(never)  // the kernel calls it from several syscalls; one copy
    public mutating func chdir(_ path: UnsafeRawBufferPointer) throws(Errno) {
        let node = try resolveAt(AtFlags.AT_FDCWD, path, follow: true)
        guard isDirectory(node) else { throw .ENOTDIR }
        try checkPermission(node, .execute)
        setCurrentDirectory(node)
    }

    /// fchdir(2): O_PATH descriptors included, as on Linux; EACCES as chdir.
    public mutating func fchdir(_ fd: Int32) throws(Errno) {
        let node = try descriptionNode(fd)
        guard isDirectory(node) else { throw .ENOTDIR }
        try checkPermission(node, .execute)
        setCurrentDirectory(node)
    }

    mutating func setCurrentDirectory(_ node: Int) {
        let old = cwd
        nodes[node].opens += 1
        cwd = node
        nodes[old].opens -= 1
        releaseIfUnused(old)
    }

    /// The current directory's absolute path (getcwd(2) copies it with a NUL, ERANGE if it
    /// does not fit). ENOENT if the directory was removed.
    public func currentDirectoryPath() throws(Errno) -> [UInt8] {
        try pathOfDirectory(cwd)
    }

    /// getcwd(2): writes the path and a NUL into `buffer`, returns the length with the NUL.
    public func getcwd(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let path = try pathOfDirectory(cwd)
        guard buffer.count >= path.count + 1 else { throw .ERANGE }
        for i in 0..<path.count { buffer[i] = path[i] }
        buffer[path.count] = 0
        return path.count + 1
    }
}
