// Who is asking: a process's user and group ids, as Linux keeps them (credentials(7)).
//
// The file system checks permissions against `FileSystem.credentials`, which the kernel sets
// to the running process's before each call. Linux grants root's file powers through
// capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_CHOWN);
// it raises and drops exactly these with the filesystem uid (they form CAP_FS_MASK), so here
// a filesystem uid of 0 holds them and any other uid holds none. There are no file
// capabilities, user namespaces or ACLs.

import LinuxABI

/// A process's credentials: real, effective, saved and filesystem user and group ids, and
/// the supplementary groups.
public struct Credentials: Equatable, Sendable {
    public var realUID: UInt32
    public var effectiveUID: UInt32
    public var savedUID: UInt32
    /// The uid file permissions are checked against; follows `effectiveUID` whenever that
    /// changes (setfsuid(2) alone sets it apart).
    public var filesystemUID: UInt32
    public var realGID: UInt32
    public var effectiveGID: UInt32
    public var savedGID: UInt32
    /// The gid new files get and group permission is checked against (see `filesystemUID`).
    public var filesystemGID: UInt32
    /// setgroups(2)'s list, in the order given.
    public var supplementaryGroups: [UInt32]

    /// Every uid `uid`, every gid `gid`.
    public init(uid: UInt32, gid: UInt32, supplementaryGroups: [UInt32] = []) {
        realUID = uid
        effectiveUID = uid
        savedUID = uid
        filesystemUID = uid
        realGID = gid
        effectiveGID = gid
        savedGID = gid
        filesystemGID = gid
        self.supplementaryGroups = supplementaryGroups
    }

    /// uid 0, gid 0, no supplementary groups: what a process starts as.
    public static let root = Credentials(uid: 0, gid: 0)

    /// Whether `gid` is one of the caller's groups for file access: the filesystem gid or a
    /// supplementary group (Linux's in_group_p).
    public func isInGroup(_ gid: UInt32) -> Bool {
        if gid == filesystemGID { return true }
        for group in supplementaryGroups where group == gid { return true }
        return false
    }

    /// Whether the caller holds root's file capabilities (CAP_DAC_OVERRIDE and the rest of
    /// CAP_FS_MASK): its filesystem uid is 0.
    var hasFileCapabilities: Bool { filesystemUID == 0 }
}

// MARK: Changing ids (kernel/sys.c)
//
// Root here is an effective uid of 0: Linux's CAP_SETUID and CAP_SETGID are effective
// exactly then (they leave the effective set when the effective uid leaves 0, and come back
// from the permitted set, kept while any uid is 0, when it returns). Without them a process
// may only move among the ids it already has. Every change of the effective uid or gid
// carries the filesystem one along. An id of `UInt32.max` ((uid_t)-1) means "leave it" where
// Linux allows that and is EINVAL where it does not.

extension Credentials {
    /// NGROUPS_MAX: setgroups(2) with more is EINVAL.
    public static let maxSupplementaryGroups = 65536

    private var mayChangeIDs: Bool { effectiveUID == 0 }

    /// setuid(2): root sets all four uids; anyone else only the effective (and filesystem)
    /// uid, to its real or saved uid (EPERM otherwise).
    public mutating func setUID(_ uid: UInt32) throws(Errno) {
        guard uid != UInt32.max else { throw .EINVAL }
        if mayChangeIDs {
            realUID = uid
            savedUID = uid
        } else if uid != realUID && uid != savedUID {
            throw .EPERM
        }
        effectiveUID = uid
        filesystemUID = uid
    }

    /// setgid(2), as `setUID` for the group ids (root: an effective uid of 0).
    public mutating func setGID(_ gid: UInt32) throws(Errno) {
        guard gid != UInt32.max else { throw .EINVAL }
        if mayChangeIDs {
            realGID = gid
            savedGID = gid
        } else if gid != realGID && gid != savedGID {
            throw .EPERM
        }
        effectiveGID = gid
        filesystemGID = gid
    }

    /// setreuid(2): without root the real uid may become the effective one and the
    /// effective uid the real or saved one (EPERM otherwise). Setting the real uid, or the
    /// effective uid to anything but the old real uid, makes the saved uid the new effective.
    public mutating func setREUID(real: UInt32, effective: UInt32) throws(Errno) {
        var new = self
        if real != UInt32.max {
            guard mayChangeIDs || real == realUID || real == effectiveUID else { throw .EPERM }
            new.realUID = real
        }
        if effective != UInt32.max {
            guard mayChangeIDs || effective == realUID || effective == effectiveUID || effective == savedUID
            else { throw .EPERM }
            new.effectiveUID = effective
        }
        if real != UInt32.max || (effective != UInt32.max && effective != realUID) {
            new.savedUID = new.effectiveUID
        }
        new.filesystemUID = new.effectiveUID
        self = new
    }

    /// setregid(2), as `setREUID` for the group ids.
    public mutating func setREGID(real: UInt32, effective: UInt32) throws(Errno) {
        var new = self
        if real != UInt32.max {
            guard mayChangeIDs || real == realGID || real == effectiveGID else { throw .EPERM }
            new.realGID = real
        }
        if effective != UInt32.max {
            guard mayChangeIDs || effective == realGID || effective == effectiveGID || effective == savedGID
            else { throw .EPERM }
            new.effectiveGID = effective
        }
        if real != UInt32.max || (effective != UInt32.max && effective != realGID) {
            new.savedGID = new.effectiveGID
        }
        new.filesystemGID = new.effectiveGID
        self = new
    }

    /// setresuid(2): without root each new id must be one of the current real, effective
    /// or saved uids (EPERM, and nothing changes).
    public mutating func setRESUID(real: UInt32, effective: UInt32, saved: UInt32) throws(Errno) {
        func allowed(_ id: UInt32) -> Bool {
            id == UInt32.max || mayChangeIDs || id == realUID || id == effectiveUID || id == savedUID
        }
        guard allowed(real), allowed(effective), allowed(saved) else { throw .EPERM }
        if real != UInt32.max { realUID = real }
        if effective != UInt32.max { effectiveUID = effective }
        if saved != UInt32.max { savedUID = saved }
        filesystemUID = effectiveUID
    }

    /// setresgid(2), as `setRESUID` for the group ids.
    public mutating func setRESGID(real: UInt32, effective: UInt32, saved: UInt32) throws(Errno) {
        func allowed(_ id: UInt32) -> Bool {
            id == UInt32.max || mayChangeIDs || id == realGID || id == effectiveGID || id == savedGID
        }
        guard allowed(real), allowed(effective), allowed(saved) else { throw .EPERM }
        if real != UInt32.max { realGID = real }
        if effective != UInt32.max { effectiveGID = effective }
        if saved != UInt32.max { savedGID = saved }
        filesystemGID = effectiveGID
    }

    /// setfsuid(2): returns the previous filesystem uid, and sets `uid` if it is one of the
    /// real, effective, saved or filesystem uids, or the caller is root; never fails.
    public mutating func setFilesystemUID(_ uid: UInt32) -> UInt32 {
        let old = filesystemUID
        if uid != UInt32.max
            && (mayChangeIDs || uid == realUID || uid == effectiveUID || uid == savedUID || uid == filesystemUID) {
            filesystemUID = uid
        }
        return old
    }

    /// setfsgid(2), as `setFilesystemUID` for the group ids.
    public mutating func setFilesystemGID(_ gid: UInt32) -> UInt32 {
        let old = filesystemGID
        if gid != UInt32.max
            && (mayChangeIDs || gid == realGID || gid == effectiveGID || gid == savedGID || gid == filesystemGID) {
            filesystemGID = gid
        }
        return old
    }

    /// setgroups(2): root only (EPERM); more than `maxSupplementaryGroups` is EINVAL. Kept
    /// sorted, as Linux keeps them (getgroups returns them in that order).
    public mutating func setSupplementaryGroups(_ groups: [UInt32]) throws(Errno) {
        guard groups.count <= Credentials.maxSupplementaryGroups else { throw .EINVAL }
        guard mayChangeIDs else { throw .EPERM }
        supplementaryGroups = groups.sorted()
    }

    /// What execve(2) does to the ids once the new program is loaded: a set-user-ID file's
    /// owner becomes the effective uid and a set-group-ID file's group the effective gid if
    /// `honourSetID` (the kernel's choice: Linux ignores the bits under no_new_privs, on a
    /// nosuid mount or when traced); then the saved and filesystem ids follow the effective
    /// ones. Returns whether the program runs with ids other than its real ones (AT_SECURE).
    public mutating func execute(_ file: ExecutableFile, honourSetID: Bool) -> Bool {
        if honourSetID {
            if file.setsUserID { effectiveUID = file.uid }
            if file.setsGroupID { effectiveGID = file.gid }
        }
        savedUID = effectiveUID
        filesystemUID = effectiveUID
        savedGID = effectiveGID
        filesystemGID = effectiveGID
        return effectiveUID != realUID || effectiveGID != realGID
    }
}
