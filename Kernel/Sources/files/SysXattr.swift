import GuestABI
import LinuxABI
import VFS

/// Extended attributes: the VM's file systems keep none, so reads answer as Linux does for
/// a file without any (ENODATA, an empty list) once the file is found, and writes are not
/// supported (ENOTSUP). Programs that copy or list attributes (tar, ls -l, cp -a) go on.
enum SysXattr {
    /// The file the call names must exist (ENOENT, ENOTDIR, EACCES… from the walk).
    private static func check(_ a: SyscallArguments, follow: Bool) throws(Errno) {
        _ = try SysIO.fs.fstatat(AtFlags.AT_FDCWD, SysIO.path(a[0]), flags: follow ? [] : [.AT_SYMLINK_NOFOLLOW])
    }

    private static func checkName(_ address: UInt64) throws(Errno) {
        let name = try UserMemory.string(address, limit: 255)
        guard !name.isEmpty else { throw .ERANGE }
    }

    static func getxattr(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try check(a, follow: true)
        try checkName(a[1])
        throw .ENODATA
    }

    static func lgetxattr(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try check(a, follow: false)
        try checkName(a[1])
        throw .ENODATA
    }

    static func fgetxattr(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        _ = try SysIO.fs.fstat(a.fd(0))
        try checkName(a[1])
        throw .ENODATA
    }

    static func listxattr(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try check(a, follow: true)
        return 0
    }

    static func llistxattr(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try check(a, follow: false)
        return 0
    }

    static func flistxattr(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        _ = try SysIO.fs.fstat(a.fd(0))
        return 0
    }
}
