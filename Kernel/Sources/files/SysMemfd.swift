import LinuxABI
import VFS

/// memfd_create and the fcntl seal commands over the VFS's anonymous files (Memfd.swift).
enum SysMemfd {
    /// memfd_create(name, flags): the name is at most 249 bytes (EINVAL beyond; EFAULT for
    /// an unreadable one).
    static func memfdCreate(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let name: UnsafeRawBufferPointer
        do {
            name = try UserMemory.string(a[0], limit: Memfd.maxNameLength)
        } catch {
            throw error == .ENAMETOOLONG ? .EINVAL : error
        }
        guard PhysicalMemory.canGrantAppObject else { throw .ENOMEM }
        return UInt64(try SysIO.fs.memfdCreate(name: name, flags: a.uint32(1)))
    }

    static let F_ADD_SEALS: Int32 = 1033
    static let F_GET_SEALS: Int32 = 1034

    /// fcntl(F_ADD_SEALS / F_GET_SEALS).
    static func fcntl(_ fd: Int32, _ command: Int32, _ argument: UInt64) throws(Errno) -> UInt64 {
        if command == F_GET_SEALS { return UInt64(try SysIO.fs.seals(fd)) }
        try SysIO.fs.addSeals(fd, UInt32(truncatingIfNeeded: argument))
        return 0
    }
}
