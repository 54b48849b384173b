// memfd_create: an anonymous tmpfs file. It is a regular node no directory names (links 0),
// freed with its last open description (or shared mapping); /proc/self/fd shows it as
// "/memfd:NAME (deleted)", as Linux does. File seals (F_ADD_SEALS / F_GET_SEALS) belong to
// such files only.

import LinuxABI

/// memfd_create's flags (<linux/memfd.h>) and the F_SEAL_* bits (<linux/fcntl.h>).
public enum Memfd {
    public static let MFD_CLOEXEC: UInt32 = 0x1
    public static let MFD_ALLOW_SEALING: UInt32 = 0x2
    public static let MFD_HUGETLB: UInt32 = 0x4
    public static let MFD_NOEXEC_SEAL: UInt32 = 0x8
    public static let MFD_EXEC: UInt32 = 0x10

    public static let F_SEAL_SEAL: UInt32 = 0x1
    public static let F_SEAL_SHRINK: UInt32 = 0x2
    public static let F_SEAL_GROW: UInt32 = 0x4
    public static let F_SEAL_WRITE: UInt32 = 0x8
    public static let F_SEAL_FUTURE_WRITE: UInt32 = 0x10
    public static let F_SEAL_EXEC: UInt32 = 0x20
    static let allSeals: UInt32 = 0x3f

    /// MFD_NAME_MAX_LEN: NAME_MAX less the "memfd:" prefix.
    public static let maxNameLength = 249
}

extension FileSystem {
    /// memfd_create(2): a new empty file open for reading and writing (mode 0777, as Linux's
    /// memfd; 0666 with MFD_NOEXEC_SEAL), its description's path "/memfd:NAME". Without
    /// MFD_ALLOW_SEALING it starts sealed against sealing (F_SEAL_SEAL). EINVAL for unknown
    /// flags, MFD_HUGETLB (no huge pages here), MFD_EXEC with MFD_NOEXEC_SEAL, or a name
    /// longer than 249 bytes; ENOMEM when memory is short; EMFILE beyond RLIMIT_NOFILE.
    public mutating func memfdCreate(name: UnsafeRawBufferPointer, flags: UInt32) throws(Errno) -> Int32 {
        let known = Memfd.MFD_CLOEXEC | Memfd.MFD_ALLOW_SEALING | Memfd.MFD_NOEXEC_SEAL | Memfd.MFD_EXEC
        guard flags & ~known == 0 else { throw .EINVAL }
        guard flags & Memfd.MFD_NOEXEC_SEAL == 0 || flags & Memfd.MFD_EXEC == 0 else { throw .EINVAL }
        guard name.count <= Memfd.maxNameLength else { throw .EINVAL }
        guard hasRoomForNode() else { throw .ENOMEM }
        _ = try lowestFreeDescriptor(from: 0)  // EMFILE before anything is made
        let noExec = flags & Memfd.MFD_NOEXEC_SEAL != 0
        let node = makeNode(.regular, permissions: noExec ? 0o666 : 0o777, time: host.now())
        nodes[node].uid = credentials.filesystemUID
        nodes[node].gid = credentials.filesystemGID
        var seals: UInt32 = flags & (Memfd.MFD_ALLOW_SEALING | Memfd.MFD_NOEXEC_SEAL) != 0 ? 0 : Memfd.F_SEAL_SEAL
        if noExec { seals |= Memfd.F_SEAL_EXEC }
        nodes[node].seals = seals
        var file = OpenFile(node: node, flags: [.O_RDWR, .O_LARGEFILE])
        file.path = Array("/memfd:".utf8) + Array(name)
        return try install(file, closeOnExec: flags & Memfd.MFD_CLOEXEC != 0)
    }

    /// fcntl(F_GET_SEALS): the seals of a memfd; EINVAL for any other file.
    public func seals(_ fd: Int32) throws(Errno) -> UInt32 {
        let index = try ioFile(fd)
        guard let file = openFiles[index], let seals = nodes[file.node].seals else { throw .EINVAL }
        return seals
    }

    /// fcntl(F_ADD_SEALS): adds `seals`. EINVAL for unknown bits or a file that is no
    /// memfd, EPERM if the description is not writable or F_SEAL_SEAL is set. (Linux also
    /// refuses F_SEAL_WRITE with EBUSY while a writable shared mapping exists; this one
    /// does not look for mappings.)
    public mutating func addSeals(_ fd: Int32, _ seals: UInt32) throws(Errno) {
        let index = try ioFile(fd)
        guard let file = openFiles[index], let current = nodes[file.node].seals else { throw .EINVAL }
        guard seals & ~Memfd.allSeals == 0 else { throw .EINVAL }
        guard file.flags.isWritable else { throw .EPERM }
        guard current & Memfd.F_SEAL_SEAL == 0 else { throw .EPERM }
        nodes[file.node].seals = current | seals
    }

    /// EPERM when the seals of `node` forbid a write of bytes up to `end` (F_SEAL_WRITE,
    /// F_SEAL_FUTURE_WRITE, or growth under F_SEAL_GROW).
    func checkSealsAllowWrite(_ node: Int, end: Int64) throws(Errno) {
        guard let seals = nodes[node].seals, seals != 0 else { return }
        if seals & (Memfd.F_SEAL_WRITE | Memfd.F_SEAL_FUTURE_WRITE) != 0 { throw .EPERM }
        if seals & Memfd.F_SEAL_GROW != 0 && end > Int64(contentSize(node)) { throw .EPERM }
    }

    /// EPERM when the seals of `node` forbid changing its length to `length`.
    func checkSealsAllowResize(_ node: Int, to length: Int64) throws(Errno) {
        guard let seals = nodes[node].seals, seals != 0 else { return }
        let size = Int64(contentSize(node))
        if seals & Memfd.F_SEAL_SHRINK != 0 && length < size { throw .EPERM }
        if seals & Memfd.F_SEAL_GROW != 0 && length > size { throw .EPERM }
    }

    /// Whether `fd`'s file is sealed against writes (mmap refuses a writable shared mapping
    /// of it with EPERM).
    public func isSealedAgainstWrites(_ fd: Int32) -> Bool {
        guard let index = try? ioFile(fd), let file = openFiles[index], let seals = nodes[file.node].seals else { return false }
        return seals & (Memfd.F_SEAL_WRITE | Memfd.F_SEAL_FUTURE_WRITE) != 0
    }
}
