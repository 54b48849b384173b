import LinuxABI
import VFS
import XCTest

/// memfd_create and seals, mknod of regular files, RLIMIT_NOFILE per process, the legacy
/// getdents records.
final class MemfdAndLimitTests: XCTestCase {
    private func memfd(_ fs: inout TestFS, _ name: String, _ flags: UInt32) throws(Errno) -> Int32 {
        try withPath(name) { (n) throws(Errno) in try fs.memfdCreate(name: n, flags: flags) }
    }

    func testMemfdIsAnAnonymousFileNamedInProcSelfFd() throws {
        var fs = try ImageBuffer().mount()
        try withPath("/proc/self/fd") { (p) throws(Errno) in try fs.addSynthetic(path: p, .descriptorDirectory) }
        let fd = try memfd(&fs, "cache", Memfd.MFD_CLOEXEC)
        XCTAssertEqual(try fs.descriptorFlags(fd), FcntlCommand.FD_CLOEXEC)
        XCTAssertEqual(try fs.statusFlags(fd), [.O_RDWR, .O_LARGEFILE])
        XCTAssertEqual(try fs.readlink("/proc/self/fd/\(fd)"), "/memfd:cache (deleted)")
        XCTAssertEqual(try fs.write(fd, "bytes"), 5)
        try fs.ftruncate(fd, length: 100)
        let st = try fs.fstat(fd)
        XCTAssertEqual(st.mode, FileMode.S_IFREG | 0o777)
        XCTAssertEqual(st.size, 100)
        XCTAssertEqual(st.linkCount, 0)
        // Without MFD_ALLOW_SEALING: sealed against sealing.
        XCTAssertEqual(try fs.seals(fd), Memfd.F_SEAL_SEAL)
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.addSeals(fd, Memfd.F_SEAL_WRITE) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in _ = try self.memfd(&fs, "x", 0x100) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in _ = try self.memfd(&fs, String(repeating: "n", count: 250), 0) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in _ = try self.memfd(&fs, "x", Memfd.MFD_EXEC | Memfd.MFD_NOEXEC_SEAL) }
        let regular = try fs.open("/tmp/f", [.O_CREAT, .O_RDWR])
        XCTAssertErrno(.EINVAL) { () throws(Errno) in _ = try fs.seals(regular) }
        // An unlinked regular file shows "(deleted)" too, as on Linux.
        try fs.unlink("/tmp/f")
        XCTAssertEqual(try fs.readlink("/proc/self/fd/\(regular)"), "/tmp/f (deleted)")
    }

    func testSealsRestrictWritesAndLength() throws {
        var fs = try ImageBuffer().mount()
        let fd = try memfd(&fs, "sealed", Memfd.MFD_ALLOW_SEALING)
        XCTAssertEqual(try fs.seals(fd), 0)
        try fs.ftruncate(fd, length: 10)
        try fs.addSeals(fd, Memfd.F_SEAL_GROW | Memfd.F_SEAL_SHRINK)
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.ftruncate(fd, length: 11) }
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.ftruncate(fd, length: 9) }
        XCTAssertErrno(.EPERM) { () throws(Errno) in _ = try fs.pwrite(fd, "xx", offset: 9) }
        XCTAssertEqual(try fs.pwrite(fd, "x", offset: 9), 1)
        XCTAssertNoThrow(try fs.beginSharedMapping(fd, writable: true))
        try fs.addSeals(fd, Memfd.F_SEAL_WRITE)
        XCTAssertTrue(fs.isSealedAgainstWrites(fd))
        XCTAssertErrno(.EPERM) { () throws(Errno) in _ = try fs.pwrite(fd, "x", offset: 0) }
        XCTAssertErrno(.EPERM) { () throws(Errno) in _ = try fs.beginSharedMapping(fd, writable: true) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.addSeals(fd, 0x40) }
        try fs.addSeals(fd, Memfd.F_SEAL_SEAL)
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.addSeals(fd, Memfd.F_SEAL_GROW) }
        XCTAssertEqual(try fs.seals(fd), Memfd.F_SEAL_SEAL | Memfd.F_SEAL_GROW | Memfd.F_SEAL_SHRINK | Memfd.F_SEAL_WRITE)
    }

    func testMknodMakesRegularFilesOnly() throws {
        var fs = try ImageBuffer().mount()
        fs.umask = 0o022
        func mknod(_ path: String, _ mode: UInt32) throws(Errno) {
            try withPath(path) { (p) throws(Errno) in try fs.mknodat(cwd, p, mode: mode) }
        }
        try mknod("/tmp/a", FileMode.S_IFREG | 0o666)
        XCTAssertEqual(try fs.stat("/tmp/a").mode, FileMode.S_IFREG | 0o644)
        try mknod("/tmp/b", 0o600)
        XCTAssertEqual(try fs.stat("/tmp/b").mode, FileMode.S_IFREG | 0o600)
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try mknod("/tmp/a", FileMode.S_IFREG | 0o600) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try mknod("/tmp/c", FileMode.S_IFMT | 0o600) }
        XCTAssertErrno(.EPERM) { () throws(Errno) in try mknod("/tmp/c", FileMode.S_IFCHR | 0o600) }
        XCTAssertErrno(.EPERM) { () throws(Errno) in try mknod("/tmp/c", FileMode.S_IFIFO | 0o600) }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try mknod("/tmp/a", FileMode.S_IFCHR | 0o600) }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try mknod("/tmp/missing/c", FileMode.S_IFREG | 0o600) }
    }

    func testDescriptorLimitIsPerProcessAndMoves() throws {
        var fs = try ImageBuffer().mount(maxDescriptors: 4)
        XCTAssertEqual(fs.descriptorLimit, DescriptorLimit(soft: 4, hard: 524_288))
        fs.descriptorLimit = try fs.descriptorLimit.changed(soft: 2, hard: 8)
        XCTAssertEqual(try fs.open("/etc/hosts"), 0)
        XCTAssertEqual(try fs.open("/etc/hosts"), 1)
        XCTAssertErrno(.EMFILE) { () throws(Errno) in try fs.open("/etc/hosts") }
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.duplicate2(0, 2) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.duplicate(0, minimum: 2) }
        XCTAssertErrno(.EPERM) { () throws(Errno) in _ = try fs.descriptorLimit.changed(soft: 2, hard: 9) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in _ = try fs.descriptorLimit.changed(soft: 5, hard: 4) }
        fs.descriptorLimit = try fs.descriptorLimit.changed(soft: 8, hard: 8)
        XCTAssertEqual(try fs.duplicate2(0, 7), 7)
        // A forked table carries the limit.
        let child = fs.forkProcessFiles(identity: 2)
        XCTAssertEqual(child.descriptorLimit, DescriptorLimit(soft: 8, hard: 8))
    }

    func testLegacyGetdentsRecords() throws {
        var fs = try ImageBuffer().mount()
        try fs.mkdir("/tmp/d")
        try fs.mkdir("/tmp/d/sub")
        _ = try fs.open("/tmp/d/file", [.O_CREAT, .O_WRONLY])
        let dir = try fs.open("/tmp/d", .O_DIRECTORY)
        var buffer = [UInt8](repeating: 0xee, count: 256)
        let used = try buffer.withUnsafeMutableBytes { b throws(Errno) in try fs.getdents64(dir, into: b, legacy: true) }
        var names: [String: UInt8] = [:]
        var offset = 0
        while offset < used {
            let length = Int(buffer[offset + 16]) | Int(buffer[offset + 17]) << 8
            XCTAssertEqual(length % 8, 0)
            let nameBytes = buffer[(offset + LegacyDirent.nameOffset)...].prefix { $0 != 0 }
            names[String(decoding: nameBytes, as: UTF8.self)] = buffer[offset + length - 1]
            offset += length
        }
        XCTAssertEqual(names, [".": DirentType.DT_DIR, "..": DirentType.DT_DIR, "sub": DirentType.DT_DIR, "file": DirentType.DT_REG])
    }
}
