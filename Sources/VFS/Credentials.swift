// Who is asking: a process's user and group ids, as Linux keeps them (credentials(7)).
//
// The file system checks permissions against `FileSystem.credentials`, which the kernel sets
// to the running process's before each call. Linux grants root's file powers through
// capabilities (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_CHOWN);
// it raises and drops exactly these with the filesystem uid (they form CAP_FS_MASK), so here
// a filesystem uid of 0 holds them and any other uid holds none. There are no file
// capabilities, user namespaces or ACLs.

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
