// Metadata: stat, chmod, chown, utimensat, access. Image entries carry only a mode; their
// owner is root and their times are the mount's `imageTime`. Who may change what follows
// `credentials` by Linux's rules (Permissions.swift, fs/attr.c).

import ImageFormat
import LinuxABI

/// utimensat's special tv_nsec values.
public enum UtimeSpecial {
    /// Set the time to now.
    public static let UTIME_NOW: Int64 = (1 << 30) - 1
    /// Leave the time alone.
    public static let UTIME_OMIT: Int64 = (1 << 30) - 2
}

extension FileSystem {
    /// The stat of `node`.
    func stat(node: Int) -> Stat {
        // Field by field rather than through a copy of the Node, which would retain and
        // release its three arrays.
        let type = nodes[node].type
        let links = nodes[node].links
        var s = Stat()
        s.device = FileSystem.deviceNumber
        s.inode = nodes[node].ino
        s.mode = type.modeBits | nodes[node].permissions
        s.uid = ownerUID(node)
        s.gid = ownerGID(node)
        s.blockSize = 4096
        switch type {
        case .directory:
            s.linkCount = links == 0 ? 0 : directoryLinkCount(node)
            s.size = 4096
            s.blocks = 8
        case .regular, .symlink:
            s.linkCount = UInt64(links)
            s.size = Int64(contentSize(node))
            // Allocated 512-byte blocks, in whole pages as tmpfs allocates them.
            s.blocks = type == .regular ? (s.size + 4095) / 4096 * 8 : 0
        case .generated:
            s.linkCount = UInt64(links)
            s.size = 0  // like /proc: the size is known only by reading
        case .device(let device):
            s.linkCount = UInt64(max(links, 1))
            s.specialDevice = device.rdev
        }
        s.accessTime = nodes[node].accessTime
        s.modificationTime = nodes[node].modificationTime
        s.changeTime = nodes[node].changeTime
        return s
    }

    /// fstat(2). O_PATH descriptors included.
    public func fstat(_ fd: Int32) throws(Errno) -> Stat {
        stat(node: try descriptionNode(fd))
    }

    /// newfstatat(2) (stat, lstat): `flags` may hold AT_SYMLINK_NOFOLLOW (lstat),
    /// AT_EMPTY_PATH and AT_NO_AUTOMOUNT.
    @inline(never)  // the kernel calls it from several syscalls; one copy
    public mutating func fstatat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, flags: AtFlags) throws(Errno) -> Stat {
        guard flags.subtracting([.AT_SYMLINK_NOFOLLOW, .AT_EMPTY_PATH, .AT_NO_AUTOMOUNT]).isEmpty
        else { throw .EINVAL }
        let node = try resolveAt(dirfd, path, follow: !flags.contains(.AT_SYMLINK_NOFOLLOW),
                                 emptyPath: flags.contains(.AT_EMPTY_PATH))
        return stat(node: node)
    }

    /// fchmod(2): stores the permission, setuid/setgid and sticky bits. EPERM unless the
    /// caller owns the file or is root.
    public mutating func fchmod(_ fd: Int32, mode: UInt32) throws(Errno) {
        let node = try openFile(fd: fd)
        try changeMode(node, mode)
    }

    /// fchmodat(2): AT_SYMLINK_NOFOLLOW is EOPNOTSUPP on a symlink (Linux has no symlink modes).
    @inline(never)  // the kernel calls it from several syscalls; one copy
    public mutating func fchmodat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, mode: UInt32,
                                  flags: AtFlags) throws(Errno) {
        guard flags.subtracting([.AT_SYMLINK_NOFOLLOW, .AT_EMPTY_PATH]).isEmpty else { throw .EINVAL }
        let node = try resolveAt(dirfd, path, follow: !flags.contains(.AT_SYMLINK_NOFOLLOW),
                                 emptyPath: flags.contains(.AT_EMPTY_PATH))
        if nodes[node].type == .symlink { throw .EOPNOTSUPP }
        try changeMode(node, mode)
    }

    /// The owner or root may; the setgid bit is kept only for a member of the file's group
    /// or root (silently cleared otherwise, as Linux's setattr_prepare).
    mutating func changeMode(_ node: Int, _ mode: UInt32) throws(Errno) {
        try checkWritable(node)
        guard isOwnerOrPrivileged(node) else { throw .EPERM }
        var permissions = mode & 0o7777
        if permissions & FileMode.S_ISGID != 0 && !isInGroupOrPrivileged(nodes[node].gid) {
            permissions &= ~FileMode.S_ISGID
        }
        nodes[node].permissions = permissions
        nodes[node].changeTime = host.now()
    }

    /// fchown(2): `UInt32.max` (-1) leaves an id unchanged.
    public mutating func fchown(_ fd: Int32, uid: UInt32, gid: UInt32) throws(Errno) {
        let node = try openFile(fd: fd)
        try changeOwner(node, uid, gid)
    }

    /// fchownat(2) (chown, lchown): `flags` may hold AT_SYMLINK_NOFOLLOW and AT_EMPTY_PATH.
    @inline(never)  // the kernel calls it from several syscalls; one copy
    public mutating func fchownat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, uid: UInt32, gid: UInt32,
                                  flags: AtFlags) throws(Errno) {
        guard flags.subtracting([.AT_SYMLINK_NOFOLLOW, .AT_EMPTY_PATH]).isEmpty else { throw .EINVAL }
        let node = try resolveAt(dirfd, path, follow: !flags.contains(.AT_SYMLINK_NOFOLLOW),
                                 emptyPath: flags.contains(.AT_EMPTY_PATH))
        try changeOwner(node, uid, gid)
    }

    /// Linux's chown_common and setattr_prepare: root may give the file to anyone; its
    /// owner may only set the owner to itself and the group to one of its own groups (EPERM
    /// otherwise). Any chown of a non-directory, even by root and even with both ids -1,
    /// clears setuid, and setgid when group-executable or when the caller is neither of the
    /// file's old group nor root, nor, if setuid was cleared, of its new group. A caller
    /// who does not own a file may not clear its bits that way (EPERM).
    mutating func changeOwner(_ node: Int, _ uid: UInt32, _ gid: UInt32) throws(Errno) {
        try checkWritable(node)
        let oldUID = nodes[node].uid
        let oldGID = nodes[node].gid
        let caller = credentials.filesystemUID
        let privileged = credentials.hasFileCapabilities
        if uid != UInt32.max && !privileged && !(caller == oldUID && uid == oldUID) { throw .EPERM }
        if gid != UInt32.max && !privileged
            && !(caller == oldUID && (gid == oldGID || credentials.isInGroup(gid))) { throw .EPERM }
        let newGID = gid == UInt32.max ? oldGID : gid
        var permissions = nodes[node].permissions
        if !isDirectory(node) {
            let old = permissions
            permissions &= ~FileMode.S_ISUID
            if permissions & FileMode.S_ISGID != 0
                && (permissions & 0o010 != 0 || !isInGroupOrPrivileged(oldGID)
                    || (old & FileMode.S_ISUID != 0 && !isInGroupOrPrivileged(newGID))) {
                permissions &= ~FileMode.S_ISGID
            }
            if permissions != old && !isOwnerOrPrivileged(node) { throw .EPERM }
        }
        if uid != UInt32.max { nodes[node].uid = uid }
        nodes[node].gid = newGID
        nodes[node].permissions = permissions
        nodes[node].changeTime = host.now()
    }

    /// utimensat(2): `times` is (atime, mtime), nil meaning both now; a tv_nsec of
    /// UTIME_NOW or UTIME_OMIT means now or unchanged; any other tv_nsec outside [0, 1e9) is
    /// EINVAL. A nil `path` is futimens on `dirfd`. `flags` may hold AT_SYMLINK_NOFOLLOW
    /// and AT_EMPTY_PATH. Both times UTIME_OMIT: nothing is done, the path not even looked
    /// up. Setting both to now (nil, or both UTIME_NOW) needs ownership, root or write
    /// permission (EACCES); any other change ownership or root (EPERM).
    public mutating func utimensat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer?,
                                   times: (Timespec, Timespec)?, flags: AtFlags) throws(Errno) {
        if let times, times.0.nanoseconds == UtimeSpecial.UTIME_OMIT,
           times.1.nanoseconds == UtimeSpecial.UTIME_OMIT { return }
        guard flags.subtracting([.AT_SYMLINK_NOFOLLOW, .AT_EMPTY_PATH]).isEmpty else { throw .EINVAL }
        func valid(_ t: Timespec) -> Bool {
            t.isValid || t.nanoseconds == UtimeSpecial.UTIME_NOW || t.nanoseconds == UtimeSpecial.UTIME_OMIT
        }
        if let times { guard valid(times.0), valid(times.1) else { throw .EINVAL } }
        let node: Int
        if let path {
            node = try resolveAt(dirfd, path, follow: !flags.contains(.AT_SYMLINK_NOFOLLOW),
                                 emptyPath: flags.contains(.AT_EMPTY_PATH))
        } else {
            node = try descriptionNode(dirfd)
        }
        let now = host.now()
        let requested = times ?? (Timespec(seconds: 0, nanoseconds: UtimeSpecial.UTIME_NOW),
                                  Timespec(seconds: 0, nanoseconds: UtimeSpecial.UTIME_NOW))
        func resolved(_ t: Timespec) -> Timespec? {
            if t.nanoseconds == UtimeSpecial.UTIME_OMIT { return nil }
            if t.nanoseconds == UtimeSpecial.UTIME_NOW { return now }
            return t
        }
        let access = resolved(requested.0)
        let modification = resolved(requested.1)
        try checkWritable(node)
        if !isOwnerOrPrivileged(node) {
            let touch = requested.0.nanoseconds == UtimeSpecial.UTIME_NOW
                && requested.1.nanoseconds == UtimeSpecial.UTIME_NOW
            guard touch else { throw .EPERM }
            try checkPermission(node, .write)
        }
        if let access { nodes[node].accessTime = access }
        if let modification { nodes[node].modificationTime = modification }
        nodes[node].changeTime = now
    }

    /// faccessat2(2) (access, faccessat): `mode` is F_OK or a mask of R_OK, W_OK, X_OK
    /// (else EINVAL). The walk and the check use the caller's real uid and gid in place of
    /// its filesystem ids, unless AT_EACCESS. W_OK in a read-only tree is EROFS (devices in
    /// it stay writable), then a refused mode EACCES; root is refused only X_OK on a
    /// non-directory without any x bit.
    public mutating func faccessat(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, mode: Int32,
                                   flags: AtFlags) throws(Errno) {
        guard mode & ~7 == 0 else { throw .EINVAL }
        guard flags.subtracting([.AT_EACCESS, .AT_SYMLINK_NOFOLLOW, .AT_EMPTY_PATH]).isEmpty
        else { throw .EINVAL }
        // Linux's access_override_creds: the real ids stand in for the filesystem ids (a
        // real uid of 0 keeps root's powers, any other drops them) for this call only.
        let (filesystemUID, filesystemGID) = (credentials.filesystemUID, credentials.filesystemGID)
        if !flags.contains(.AT_EACCESS) {
            credentials.filesystemUID = credentials.realUID
            credentials.filesystemGID = credentials.realGID
        }
        defer {
            credentials.filesystemUID = filesystemUID
            credentials.filesystemGID = filesystemGID
        }
        let node = try resolveAt(dirfd, path, follow: !flags.contains(.AT_SYMLINK_NOFOLLOW),
                                 emptyPath: flags.contains(.AT_EMPTY_PATH))
        if mode & AccessMode.W_OK != 0, nodes[node].type == .regular || isDirectory(node) { try checkWritable(node) }
        try checkPermission(node, AccessRequest(rawValue: UInt32(mode)))
    }

    /// The node of an open, non-O_PATH descriptor (fchmod, fchown: Linux's fdget).
    func openFile(fd: Int32) throws(Errno) -> Int {
        openFiles[try ioFile(fd)]?.node ?? FileSystem.rootNode
    }
}
