import LinuxABI

/// setuid, setgid and setgroups while every process is root (uid 0, gid 0, no supplementary
/// groups; getuid and friends answer 0): a call that keeps that identity succeeds, as it does
/// on Linux (a root server dropping to `user root`, as nginx's workers do, or `initgroups`
/// for a user whose only group is 0). Any other identity is ENOSYS: the kernel has no
/// per-process credentials to change yet, and pretending would let a program believe it
/// dropped privileges it still has.
enum SysRootIdentity {
    static func setuid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.uint32(0) == 0 else { throw .ENOSYS }
        return 0
    }

    static func setgid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.uint32(0) == 0 else { throw .ENOSYS }
        return 0
    }

    /// setgroups(size, list): only an empty list or group 0 (root's primary group, which a
    /// supplementary list may repeat) keeps the identity. More than NGROUPS_MAX (65536):
    /// EINVAL, as Linux.
    static func setgroups(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let count = a.int32(0)
        guard count >= 0, count <= 65536 else { throw .EINVAL }
        guard count > 0 else { return 0 }
        let list = try UserMemory.readable(a[1], Int(count) * 4)
        for i in 0..<Int(count) where list.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) != 0 {
            throw .ENOSYS
        }
        return 0
    }
}
