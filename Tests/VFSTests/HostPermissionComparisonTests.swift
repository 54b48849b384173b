// Permission checks against the host's Linux: the same tree of owners and modes on the host
// and in the VFS, and the same calls made by a caller that is not root, must succeed or
// fail alike (same errno) and leave the same owners and modes behind.
//
// The host side runs on this test's thread with filesystem uid and gid 1000 (setfsuid and
// setfsgid act on the calling thread only, and leaving fsuid 0 drops exactly the file
// capabilities); its real and effective uid stay 0. The VFS gets the same credentials:
// root's real and effective ids, filesystem ids 1000, and the host's supplementary groups.
// Needs root on the host (to chown the tree and switch the filesystem ids); skipped
// otherwise.

#if canImport(Glibc)
import Foundation
import Glibc
import ImageFormat
import LinuxABI
import VFS
import XCTest

/// Linux's O_NOATIME and O_PATH, which Glibc's module does not export.
private let noAccessTime: Int32 = 0o100_0000
private let pathOnly: Int32 = 0o1000_0000

/// renameat2(2) and setfsuid(2)/setfsgid(2) from the C library (not in Glibc's module).
private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
private typealias SetFilesystemID = @convention(c) (UInt32) -> Int32

private func cFunction<T>(_ name: String, as type: T.Type) -> T? {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
    return unsafeBitCast(symbol, to: type)
}

final class HostPermissionComparisonTests: XCTestCase {
    enum Op {
        case stat(String), open(String, Int32), mkdir(String, UInt32), unlink(String), rmdir(String)
        case rename(String, String), exchange(String, String), link(String, String), symlink(String, String)
        case chmod(String, UInt32), chown(String, UInt32, UInt32), touch(String), setTimes(String)
        case truncate(String), access(String, Int32), effectiveAccess(String, Int32), writeByte(String)
    }

    /// (path, directory, mode, uid, gid), made in order.
    let tree: [(String, Bool, UInt32, UInt32, UInt32)] = [
        ("t", true, 0o755, 0, 0),
        ("t/secret", true, 0o700, 0, 0), ("t/secret/f", false, 0o644, 0, 0),
        ("t/nox", true, 0o644, 0, 0), ("t/nox/f", false, 0o644, 0, 0),
        ("t/f600", false, 0o600, 0, 0), ("t/f644", false, 0o644, 0, 0), ("t/f640", false, 0o640, 0, 100),
        ("t/f604", false, 0o604, 0, 100), ("t/f660", false, 0o660, 0, 0),
        ("t/mine", false, 0o644, 1000, 0), ("t/mine-suid", false, 0o6755, 1000, 1000),
        ("t/mine-sgid", false, 0o2644, 1000, 7), ("t/mine-sgidx", false, 0o2755, 1000, 1000),
        ("t/ro", true, 0o755, 0, 0), ("t/ro/a", false, 0o666, 0, 0),
        ("t/w", true, 0o777, 0, 0), ("t/w/a", false, 0o644, 1001, 1001), ("t/w/sub", true, 0o755, 0, 0),
        ("t/s", true, 0o1777, 0, 0), ("t/s/a", false, 0o666, 1001, 0), ("t/s/b", false, 0o644, 1000, 0),
        ("t/s/dir", true, 0o777, 1001, 0), ("t/s/dir/x", false, 0o644, 1001, 0),
        ("t/s/empty", true, 0o755, 1001, 0), ("t/s/mydir", true, 0o755, 1000, 0),
        ("t/sg", true, 0o2777, 0, 50),
        ("t/other666", false, 0o666, 1001, 0), ("t/other-suid", false, 0o4777, 1001, 0),
        ("t/other-sgidx", false, 0o2777, 1001, 0), ("t/other-sgid", false, 0o2666, 1001, 0),
        ("t/x644", false, 0o644, 0, 0), ("t/x711", false, 0o711, 0, 0), ("t/x100", false, 0o100, 0, 0),
        ("t/dirA", true, 0o777, 0, 0), ("t/dirB", true, 0o777, 0, 0),
        ("t/dirA/sub", true, 0o755, 0, 0), ("t/dirA/mysub", true, 0o755, 1000, 0),
        ("t/dirA/sub2", true, 0o755, 0, 0),
    ]

    let ops: [Op] = [
        // Search permission along the path.
        .stat("t/secret/f"), .stat("t/secret/none"), .stat("t/nox/f"), .stat("t/nox"), .stat("t/nox/."),
        .open("t/secret", O_RDONLY | pathOnly), .open("t/nox/f", O_RDONLY),
        // Opening.
        .open("t/f600", O_RDONLY), .open("t/f644", O_RDONLY), .open("t/f644", O_WRONLY), .open("t/f644", O_RDWR),
        .open("t/f644", O_RDONLY | O_TRUNC), .open("t/f644", O_ACCMODE), .open("t/f640", O_RDONLY),
        .open("t/f640", O_WRONLY), .open("t/f604", O_RDONLY), .open("t/f660", O_RDWR), .open("t/f644", pathOnly),
        .open("t/other666", O_RDONLY | noAccessTime), .open("t/mine", O_RDONLY | noAccessTime), .open("t/secret", O_RDONLY),
        .open("t/w", O_RDONLY | O_DIRECTORY), .open("t/nox", O_RDONLY | O_DIRECTORY),
        // Creating.
        .open("t/ro/new", O_WRONLY | O_CREAT), .open("t/ro/a", O_WRONLY | O_CREAT), .open("t/ro/a", O_WRONLY | O_CREAT | O_EXCL),
        .mkdir("t/ro/d", 0o755), .mkdir("t/ro/a", 0o755), .symlink("x", "t/ro/l"), .link("t/mine", "t/ro/l"),
        .open("t/w/new444", O_WRONLY | O_CREAT), .stat("t/w/new444"), .mkdir("t/w/d", 0o777), .stat("t/w/d"),
        .symlink("new444", "t/w/l"), .mkdir("t/secret/d", 0o755),
        .open("t/sg/f", O_WRONLY | O_CREAT), .stat("t/sg/f"), .mkdir("t/sg/d", 0o755), .stat("t/sg/d"),
        .open("t/sg/d/g", O_WRONLY | O_CREAT), .stat("t/sg/d/g"),
        // Hard links (fs.protected_hardlinks).
        .link("t/f644", "t/w/l1"), .link("t/other666", "t/w/l2"), .link("t/other-suid", "t/w/l3"),
        .link("t/other-sgidx", "t/w/l4"), .link("t/other-sgid", "t/w/l5"), .link("t/mine-suid", "t/w/l6"),
        .link("t/dirA", "t/w/l7"), .link("t/f644", "t/ro/l8"),
        // Removing, the sticky bit.
        .unlink("t/ro/a"), .unlink("t/ro/missing"), .unlink("t/dirA"), .rmdir("t/ro/none"),
        .unlink("t/s/a"), .rename("t/s/a", "t/s/a2"), .rename("t/s/b", "t/s/a"), .rmdir("t/s/dir"),
        .rmdir("t/s/empty"), .unlink("t/s/b"), .unlink("t/w/a/"), .unlink("t/w/a"), .unlink("t/s/dir/x"),
        .rmdir("t/s/mydir"), .rmdir("t/w/sub"), .unlink("t/w/sub"),
        // Renaming.
        .rename("t/dirA/sub", "t/dirB/sub"), .rename("t/dirA/sub", "t/dirA/subr"), .rename("t/dirA/mysub", "t/dirB/mysub"),
        .rename("t/ro/a", "t/w/a2"), .rename("t/w/new444", "t/ro/b"), .exchange("t/dirB/mysub", "t/dirA/sub2"),
        .rename("t/w/new444", "t/w/d"), .exchange("t/w/new444", "t/w/d"),
        // chmod, chown.
        .chmod("t/f644", 0o777), .chmod("t/mine", 0o2755), .stat("t/mine"), .chown("t/mine", UInt32.max, 100),
        .chmod("t/mine", 0o2755), .stat("t/mine"), .chown("t/mine", UInt32.max, 7), .chown("t/mine", 1001, UInt32.max),
        .chown("t/mine", 1000, UInt32.max), .chown("t/other666", UInt32.max, UInt32.max),
        .chown("t/other-suid", UInt32.max, UInt32.max), .stat("t/other-suid"),
        .chown("t/mine-sgid", UInt32.max, UInt32.max), .stat("t/mine-sgid"),
        .chown("t/mine-suid", UInt32.max, 100), .stat("t/mine-suid"), .chown("t/mine-sgidx", 1000, UInt32.max),
        .stat("t/mine-sgidx"), .chmod("t/dirA/mysub", 0o700), .chmod("t/dirA", 0o777),
        // Times, truncation, writes.
        .touch("t/f644"), .touch("t/other666"), .setTimes("t/other666"), .setTimes("t/mine"),
        .truncate("t/f644"), .truncate("t/other666"), .truncate("t/nox/f"),
        .writeByte("t/other-suid"), .stat("t/other-suid"), .writeByte("t/other-sgid"), .stat("t/other-sgid"),
        .writeByte("t/other-sgidx"), .stat("t/other-sgidx"),
        // access: the real uid (0) unless AT_EACCESS (the filesystem uid).
        .access("t/f600", 4), .access("t/x644", 1), .access("t/secret/f", 0),
        .effectiveAccess("t/f600", 4), .effectiveAccess("t/f644", 4), .effectiveAccess("t/f644", 2),
        .effectiveAccess("t/f640", 4), .effectiveAccess("t/f640", 2), .effectiveAccess("t/x711", 1),
        .effectiveAccess("t/x100", 1), .effectiveAccess("t/x644", 1), .effectiveAccess("t/w", 7),
        .effectiveAccess("t/secret/f", 0), .effectiveAccess("t/nox", 1),
    ]

    func testPermissionsMatchHost() throws {
        guard getuid() == 0 else { throw XCTSkip("needs root on the host") }
        guard let setfsuid = cFunction("setfsuid", as: SetFilesystemID.self),
              let setfsgid = cFunction("setfsgid", as: SetFilesystemID.self),
              cFunction("renameat2", as: RenameAt2.self) != nil
        else { throw XCTSkip("no setfsuid or renameat2 in the C library") }

        let image = try ImageBuffer()
        var fs = image.mount(executable: nil)
        let root = FileManager.default.temporaryDirectory
            .appendingPathComponent("vfs-permissions-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        XCTAssertEqual(chmod(root.path, 0o755), 0)
        let dirfd = Glibc.open(root.path, O_RDONLY | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(dirfd, 0)
        defer { Glibc.close(dirfd) }
        let oldMask = umask(0o022)
        defer { umask(oldMask) }
        fs.umask = 0o022

        for (path, directory, mode, uid, gid) in tree {
            if directory {
                XCTAssertEqual(mkdirat(dirfd, path, 0o700), 0, path)
                try fs.makeDirectory("/" + path, mode, uid: uid, gid: gid)
            } else {
                let fd = openat(dirfd, path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
                XCTAssertGreaterThanOrEqual(fd, 0, path)
                Glibc.close(fd)
                try fs.makeFile("/" + path, mode, uid: uid, gid: gid)
            }
            XCTAssertEqual(fchownat(dirfd, path, uid, gid, 0), 0, path)
            XCTAssertEqual(fchmodat(dirfd, path, mode, 0), 0, path)
        }

        var groups = [gid_t](repeating: 0, count: 64)
        let groupCount = getgroups(Int32(groups.count), &groups)
        XCTAssertGreaterThanOrEqual(groupCount, 0)
        var caller = Credentials(uid: 0, gid: 0, supplementaryGroups: Array(groups.prefix(Int(max(groupCount, 0)))))
        caller.filesystemUID = 1000
        caller.filesystemGID = 1000
        fs.credentials = caller

        _ = setfsuid(1000)
        _ = setfsgid(1000)
        defer {
            _ = setfsuid(0)
            _ = setfsgid(0)
        }
        guard setfsuid(1000) == 1000, setfsgid(1000) == 1000 else { throw XCTSkip("setfsuid refused") }

        for (number, op) in ops.enumerated() {
            let host = hostResult(op, dirfd, root: root.path)
            let vfs = vfsResult(op, &fs)
            XCTAssertEqual(vfs, host, "op \(number) \(op)")
        }
    }

    func describe(_ errno: Int32) -> String { errno == 0 ? "ok" : Errno(errno).name.text }

    /// `op` on the host, paths relative to `dirfd`, which is the directory `root`.
    func hostResult(_ op: Op, _ dirfd: Int32, root: String) -> String {
        var result: Int32 = 0
        switch op {
        case .stat(let p):
            var st = Glibc.stat()
            if fstatat(dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0 {
                return "\(st.st_uid) \(st.st_gid) " + String(st.st_mode, radix: 8)
            }
            result = -1
        case .open(let p, let flags):
            result = openat(dirfd, p, flags, 0o444)
            if result >= 0 { Glibc.close(result); result = 0 }
        case .mkdir(let p, let mode): result = mkdirat(dirfd, p, mode)
        case .unlink(let p): result = unlinkat(dirfd, p, 0)
        case .rmdir(let p): result = unlinkat(dirfd, p, AT_REMOVEDIR)
        case .rename(let a, let b): result = renameat(dirfd, a, dirfd, b)
        case .exchange(let a, let b):
            result = cFunction("renameat2", as: RenameAt2.self)!(dirfd, a, dirfd, b, RenameFlags.RENAME_EXCHANGE)
        case .link(let a, let b): result = linkat(dirfd, a, dirfd, b, 0)
        case .symlink(let t, let p): result = symlinkat(t, dirfd, p)
        case .chmod(let p, let mode): result = fchmodat(dirfd, p, mode, 0)
        case .chown(let p, let uid, let gid): result = fchownat(dirfd, p, uid, gid, 0)
        case .touch(let p): result = utimensat(dirfd, p, nil, 0)
        case .setTimes(let p):
            var times = [timespec(tv_sec: 1, tv_nsec: 1), timespec(tv_sec: 2, tv_nsec: 2)]
            result = utimensat(dirfd, p, &times, 0)
        case .truncate(let p): result = Glibc.truncate(root + "/" + p, 0)
        case .access(let p, let mode): result = faccessat(dirfd, p, mode, 0)
        case .effectiveAccess(let p, let mode): result = faccessat(dirfd, p, mode, AT_EACCESS)
        case .writeByte(let p):
            let fd = openat(dirfd, p, O_WRONLY)
            result = fd < 0 ? -1 : (Glibc.write(fd, "x", 1) == 1 ? 0 : -1)
            let saved = errno
            if fd >= 0 { Glibc.close(fd) }
            errno = saved
        }
        return describe(result == 0 ? 0 : errno)
    }

    func vfsResult(_ op: Op, _ fs: inout TestFS) -> String {
        func run(_ body: () throws(Errno) -> Void) -> String {
            do { try body(); return "ok" } catch { return describe(error.rawValue) }
        }
        switch op {
        case .stat(let p):
            do {
                let st = try fs.lstat(p)
                return "\(st.uid) \(st.gid) " + String(st.mode, radix: 8)
            } catch {
                return describe(error.rawValue)
            }
        case .open(let p, let flags):
            return run { () throws(Errno) in
                try fs.close(fs.open(p, OpenFlags(rawValue: UInt32(bitPattern: flags)), mode: 0o444))
            }
        case .mkdir(let p, let mode): return run { () throws(Errno) in try fs.mkdir(p, mode: mode) }
        case .unlink(let p): return run { () throws(Errno) in try fs.unlink(p) }
        case .rmdir(let p): return run { () throws(Errno) in try fs.rmdir(p) }
        case .rename(let a, let b): return run { () throws(Errno) in try fs.rename(a, b) }
        case .exchange(let a, let b):
            return run { () throws(Errno) in try fs.rename(a, b, flags: RenameFlags.RENAME_EXCHANGE) }
        case .link(let a, let b): return run { () throws(Errno) in try fs.link(a, b) }
        case .symlink(let t, let p): return run { () throws(Errno) in try fs.symlink(t, p) }
        case .chmod(let p, let mode): return run { () throws(Errno) in try fs.chmod(p, mode) }
        case .chown(let p, let uid, let gid): return run { () throws(Errno) in try fs.chown(p, uid, gid) }
        case .touch(let p):
            return run { () throws(Errno) in
                try withPath(p) { (path) throws(Errno) in try fs.utimensat(cwd, path, times: nil, flags: []) }
            }
        case .setTimes(let p):
            let times = (Timespec(seconds: 1, nanoseconds: 1), Timespec(seconds: 2, nanoseconds: 2))
            return run { () throws(Errno) in
                try withPath(p) { (path) throws(Errno) in try fs.utimensat(cwd, path, times: times, flags: []) }
            }
        case .truncate(let p):
            return run { () throws(Errno) in try withPath(p) { (path) throws(Errno) in try fs.truncate(path, length: 0) } }
        case .access(let p, let mode):
            return run { () throws(Errno) in
                try withPath(p) { (path) throws(Errno) in try fs.faccessat(cwd, path, mode: mode, flags: []) }
            }
        case .effectiveAccess(let p, let mode):
            return run { () throws(Errno) in
                try withPath(p) { (path) throws(Errno) in try fs.faccessat(cwd, path, mode: mode, flags: .AT_EACCESS) }
            }
        case .writeByte(let p):
            return run { () throws(Errno) in
                let fd = try fs.open(p, .O_WRONLY)
                try fs.write(fd, "x")
                try fs.close(fd)
            }
        }
    }
}
#endif
