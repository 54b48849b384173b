import GuestABI
import LinuxABI
import VFS

/// User and group ids: the get*id and set*id calls over the running process's `Credentials`
/// (Linux's rules live in Sources/VFS/Credentials.swift, host-tested). The VFS checks file
/// permissions against the running process's credentials (`Processes.switchTo` installs
/// them; a change here installs them at once).
enum SysCredentials {
    private static var me: Process { Process.current }

    private static func change(_ body: (inout Credentials) throws(Errno) -> Void) throws(Errno) -> UInt64 {
        var c = me.credentials
        try body(&c)
        me.credentials = c
        SysIO.fs.credentials = c
        return 0
    }

    static func getuid(_ a: SyscallArguments) throws(Errno) -> UInt64 { UInt64(me.credentials.realUID) }
    static func geteuid(_ a: SyscallArguments) throws(Errno) -> UInt64 { UInt64(me.credentials.effectiveUID) }
    static func getgid(_ a: SyscallArguments) throws(Errno) -> UInt64 { UInt64(me.credentials.realGID) }
    static func getegid(_ a: SyscallArguments) throws(Errno) -> UInt64 { UInt64(me.credentials.effectiveGID) }

    static func getresuid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let c = me.credentials
        try UserMemory.store(c.realUID, a[0])
        try UserMemory.store(c.effectiveUID, a[1])
        try UserMemory.store(c.savedUID, a[2])
        return 0
    }

    static func getresgid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let c = me.credentials
        try UserMemory.store(c.realGID, a[0])
        try UserMemory.store(c.effectiveGID, a[1])
        try UserMemory.store(c.savedGID, a[2])
        return 0
    }

    static func setuid(_ a: SyscallArguments) throws(Errno) -> UInt64 { try change { c throws(Errno) in try c.setUID(a.uint32(0)) } }
    static func setgid(_ a: SyscallArguments) throws(Errno) -> UInt64 { try change { c throws(Errno) in try c.setGID(a.uint32(0)) } }
    static func setreuid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try change { c throws(Errno) in try c.setREUID(real: a.uint32(0), effective: a.uint32(1)) }
    }
    static func setregid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try change { c throws(Errno) in try c.setREGID(real: a.uint32(0), effective: a.uint32(1)) }
    }
    static func setresuid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try change { c throws(Errno) in try c.setRESUID(real: a.uint32(0), effective: a.uint32(1), saved: a.uint32(2)) }
    }
    static func setresgid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try change { c throws(Errno) in try c.setRESGID(real: a.uint32(0), effective: a.uint32(1), saved: a.uint32(2)) }
    }

    /// setfsuid/setfsgid return the previous id whether or not they changed it.
    static func setfsuid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        var old: UInt32 = 0
        _ = try change { c in old = c.setFilesystemUID(a.uint32(0)) }
        return UInt64(old)
    }
    static func setfsgid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        var old: UInt32 = 0
        _ = try change { c in old = c.setFilesystemGID(a.uint32(0)) }
        return UInt64(old)
    }

    /// getgroups(size, list): the count with size 0, else EINVAL if they do not fit.
    static func getgroups(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(0) >= 0 else { throw .EINVAL }
        let groups = me.credentials.supplementaryGroups
        if a.int32(0) == 0 { return UInt64(groups.count) }
        guard Int(a.int32(0)) >= groups.count else { throw .EINVAL }
        let out = try UserMemory.writable(a[1], groups.count * 4)
        for (i, g) in groups.enumerated() { out.writeLE(g, at: i * 4) }
        return UInt64(groups.count)
    }

    /// setgroups(size, list).
    static func setgroups(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[0] <= UInt64(Credentials.maxSupplementaryGroups) else { throw .EINVAL }
        let count = Int(a[0])
        let bytes = try UserMemory.readable(a[1], count * 4)
        var groups: [UInt32] = []
        groups.reserveCapacity(count)
        for i in 0..<count { groups.append(bytes.readLE(UInt32.self, at: i * 4)) }
        return try change { c throws(Errno) in try c.setSupplementaryGroups(groups) }
    }

    /// Whether the running process may signal `target` (kill(2)): root may signal anyone;
    /// otherwise its real or effective uid must be the target's real or saved uid.
    static func maySignal(_ target: Process) -> Bool {
        let c = me.credentials, t = target.credentials
        if c.effectiveUID == 0 { return true }
        return c.realUID == t.realUID || c.realUID == t.savedUID || c.effectiveUID == t.realUID || c.effectiveUID == t.savedUID
    }
}
