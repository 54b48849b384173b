// Linux's discretionary access control over nodes, for `FileSystem.credentials`
// (fs/namei.c generic_permission, may_create, may_delete; fs/attr.c; fs/inode.c):
// - one class of mode bits applies: the owner's if the filesystem uid owns the node, else
//   the group's if the node's group is one of the caller's, else the others';
// - root's file capabilities (see Credentials.swift) override: directories always
//   (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), other nodes for reading and writing, and for
//   executing when at least one x bit is set;
// - creating a name needs write and search on its directory; removing or replacing one too,
//   and in a sticky directory (/tmp) only the owner of the name's node or of the
//   directory (or root) may (EPERM);
// - owner-only changes (chmod, explicit times, O_NOATIME) allow the owner or root
//   (CAP_FOWNER), else EPERM; so does a hard link to a file not safe to pin
//   (fs.protected_hardlinks = 1);
// - the setgid bit survives chmod and chown only for a member of the file's group or root
//   (CAP_FSETID); writing a file drops setuid (and an effective setgid) unless root.
// A read-only tree answers EROFS before any of these are asked.

import LinuxABI

/// What a caller asks of a node: Linux's MAY_READ, MAY_WRITE, MAY_EXEC bits, which line up
/// with one class of mode bits (r = 4, w = 2, x = 1; x on a directory is search).
struct AccessRequest: OptionSet {
    let rawValue: UInt32
    static let read = AccessRequest(rawValue: 4)
    static let write = AccessRequest(rawValue: 2)
    static let execute = AccessRequest(rawValue: 1)
}

extension ExecutableFile {
    /// The set-user-ID bit: running it makes the owner the effective uid.
    public var setsUserID: Bool { mode & FileMode.S_ISUID != 0 }
    /// The set-group-ID bit with group execute (without it the bit means mandatory locking,
    /// which execve ignores): running it makes the group the effective gid.
    public var setsGroupID: Bool { mode & FileMode.S_ISGID != 0 && mode & 0o010 != 0 }
}

extension FileSystem {
    // MARK: Ownership

    /// The owner of `node`. /proc/self/fd belongs to the process looking at it, as Linux's
    /// /proc/[pid]/ belongs to the task's effective uid and gid.
    func ownerUID(_ node: Int) -> UInt32 {
        node == descriptorDirectory ? credentials.effectiveUID : nodes[node].uid
    }

    func ownerGID(_ node: Int) -> UInt32 {
        node == descriptorDirectory ? credentials.effectiveGID : nodes[node].gid
    }

    /// Linux's inode_owner_or_capable: the caller owns `node` or holds CAP_FOWNER.
    @inline(never)  // asked by many calls; one copy keeps the kernel small
    func isOwnerOrPrivileged(_ node: Int) -> Bool {
        credentials.filesystemUID == ownerUID(node) || credentials.hasFileCapabilities
    }

    /// Linux's in_group_or_capable: `gid` is one of the caller's groups or it holds
    /// CAP_FSETID (may keep a setgid bit of that group).
    func isInGroupOrPrivileged(_ gid: UInt32) -> Bool {
        credentials.isInGroup(gid) || credentials.hasFileCapabilities
    }

    // MARK: Checks

    /// Whether the caller may do `request` to `node` (generic_permission, without ACLs).
    func isPermitted(_ node: Int, _ request: AccessRequest) -> Bool {
        let mode = nodes[node].permissions
        let granted: UInt32
        if credentials.filesystemUID == ownerUID(node) {
            granted = mode >> 6
        } else if credentials.isInGroup(ownerGID(node)) {
            granted = mode >> 3
        } else {
            granted = mode
        }
        if request.rawValue & ~granted & 7 == 0 { return true }
        guard credentials.hasFileCapabilities else { return false }
        if isDirectory(node) { return true }
        return !request.contains(.execute) || mode & 0o111 != 0
    }

    /// EACCES unless the caller may do `request` to `node`.
    @inline(never)  // asked by many calls; one copy keeps the kernel small
    func checkPermission(_ node: Int, _ request: AccessRequest) throws(Errno) {
        guard isPermitted(node, request) else { throw .EACCES }
    }

    /// Search permission on directory `dir`, which a path walk needs for every directory it
    /// looks a name up in (path_resolution(7)). A directory searchable by all (the common
    /// 0755) passes whichever class applies, and root passes, without asking further.
    func checkSearch(_ dir: Int) throws(Errno) {
        if nodes[dir].permissions & 0o111 == 0o111 || credentials.hasFileCapabilities { return }
        try checkPermission(dir, .execute)
    }

    /// May a name be made in `dir` (may_create): write and search permission on it.
    func checkCanCreate(in dir: Int) throws(Errno) {
        try checkPermission(dir, [.write, .execute])
    }

    /// May the name of `node` in `dir` go away or be replaced (may_delete): write and search
    /// on `dir`, and in a sticky directory the caller owns `node` or `dir` or is root
    /// (EPERM). Then the type: `directory` (rmdir, or renaming a directory) needs one
    /// (ENOTDIR), a non-directory call refuses one (EISDIR).
    @inline(never)  // unlink, rmdir and rename (twice); one copy keeps the kernel small
    func checkCanRemove(_ node: Int, from dir: Int, directory: Bool) throws(Errno) {
        try checkPermission(dir, [.write, .execute])
        if nodes[dir].permissions & FileMode.S_ISVTX != 0,
           credentials.filesystemUID != ownerUID(node),
           credentials.filesystemUID != ownerUID(dir),
           !credentials.hasFileCapabilities {
            throw .EPERM
        }
        if directory {
            guard isDirectory(node) else { throw .ENOTDIR }
        } else if isDirectory(node) {
            throw .EISDIR
        }
    }

    /// Linux's may_linkat with fs.protected_hardlinks = 1 (what distributions set): a new
    /// name for a file the caller does not own (and root aside) only if it is a regular
    /// file, not setuid, not setgid and group-executable, and readable and writable by the
    /// caller; EPERM otherwise.
    func checkCanHardLink(_ node: Int) throws(Errno) {
        if isOwnerOrPrivileged(node) { return }
        let mode = nodes[node].permissions
        guard nodes[node].type == .regular, mode & FileMode.S_ISUID == 0,
              mode & (FileMode.S_ISGID | 0o010) != FileMode.S_ISGID | 0o010,
              isPermitted(node, [.read, .write]) else { throw .EPERM }
    }

    /// fcntl(F_SETFL) on description `index` may turn O_NOATIME on or off only for the
    /// owner of the file or root (EPERM).
    @inline(never)
    func checkNoAccessTimeChange(_ index: Int, to flags: OpenFlags) throws(Errno) {
        guard let node = openFiles[index]?.node, let old = openFiles[index]?.flags else { return }
        if old.contains(.O_NOATIME) != flags.contains(.O_NOATIME) && !isOwnerOrPrivileged(node) { throw .EPERM }
    }

    /// execve's check of the program file (may_open with MAY_EXEC): a regular file the
    /// caller may execute, else EACCES. Reading it is not needed.
    func checkExecutable(_ node: Int) throws(Errno) {
        guard case .regular = nodes[node].type else { throw .EACCES }
        try checkPermission(node, .execute)
    }

    // MARK: Changes

    /// Gives a node just made in `dir` its owner (inode_init_owner): the filesystem uid, and
    /// the filesystem gid, or `dir`'s group if `dir` is setgid (a new directory then is
    /// setgid too). A non-directory made setgid and group-executable there keeps that bit
    /// only for a member of the group or root (mode_strip_sgid).
    mutating func setNewOwner(_ node: Int, in dir: Int) {
        nodes[node].uid = credentials.filesystemUID
        let parentGroup = nodes[dir].gid
        guard nodes[dir].permissions & FileMode.S_ISGID != 0 else {
            nodes[node].gid = credentials.filesystemGID
            return
        }
        nodes[node].gid = parentGroup
        if isDirectory(node) {
            nodes[node].permissions |= FileMode.S_ISGID
        } else if nodes[node].permissions & (FileMode.S_ISGID | 0o010) == FileMode.S_ISGID | 0o010,
                  !isInGroupOrPrivileged(parentGroup) {
            nodes[node].permissions &= ~FileMode.S_ISGID
        }
    }

    /// A write or truncation of regular file `node` by someone other than root drops its
    /// setuid bit, and its setgid bit when that is effective (group-executable) or the
    /// writer is not of the file's group (Linux's file_remove_privs).
    mutating func dropPrivilegeBitsOnWrite(_ node: Int) {
        let mode = nodes[node].permissions
        guard mode & (FileMode.S_ISUID | FileMode.S_ISGID) != 0, !credentials.hasFileCapabilities else { return }
        var kept = mode & ~FileMode.S_ISUID
        if kept & FileMode.S_ISGID != 0 && (kept & 0o010 != 0 || !credentials.isInGroup(nodes[node].gid)) {
            kept &= ~FileMode.S_ISGID
        }
        nodes[node].permissions = kept
    }
}
