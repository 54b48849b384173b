// The same tree on the host's file system and in the VFS; the same sequence of calls on
// both must succeed or fail alike, with the same errno. Host paths are relative to a
// directory descriptor of a fresh temporary directory, so only relative symlinks are used.

#if canImport(Glibc)
import Foundation
import Glibc
import ImageFormat
import LinuxABI
import VFS
import XCTest

final class HostComparisonTests: XCTestCase {
    enum Op {
        case stat(String), lstat(String), open(String, Int32), mkdir(String), unlink(String)
        case rmdir(String), rename(String, String), link(String, String), symlink(String, String)
        case readlink(String), access(String)
    }

    let files: [(path: String, bytes: [UInt8], mode: UInt32)] = [
        ("/bin/prog", [1, 2, 3], 0o755),
        ("/etc/hosts", Array("127.0.0.1 localhost\n".utf8), 0o644),
        ("/usr/lib/libc.so", [9], 0o644),
        ("/usr/share/doc/readme", [7], 0o644),
    ]
    let links: [(path: String, target: String)] = [
        ("/lib", "usr/lib"), ("/etc/rel", "../usr/lib/libc.so"), ("/loop1", "loop2"),
        ("/loop2", "loop1"), ("/etc/dead", "nothing/here"), ("/share", "usr/share/"),
    ]

    func testErrnoMatchesHost() throws {
        let image = try ImageBuffer(files: files, links: links, directories: ["/var/empty", "/tmp"])
        var fs = image.mount(executable: nil)

        let root = FileManager.default.temporaryDirectory
            .appendingPathComponent("vfs-compare-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        for file in files {
            let url = root.appendingPathComponent(String(file.path.dropFirst()))
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(file.bytes).write(to: url)
            XCTAssertEqual(chmod(url.path, mode_t(file.mode)), 0)
        }
        for directory in ["var/empty", "tmp"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(directory), withIntermediateDirectories: true)
        }
        for link in links {
            XCTAssertEqual(Glibc.symlink(link.target, root.appendingPathComponent(String(link.path.dropFirst())).path), 0)
        }
        let dirfd = Glibc.open(root.path, O_RDONLY | O_DIRECTORY)
        XCTAssertGreaterThanOrEqual(dirfd, 0)
        defer { Glibc.close(dirfd) }

        let long = String(repeating: "n", count: 256)
        let ops: [Op] = [
            .stat("etc/hosts"), .stat("etc//hosts"), .stat("./etc/./hosts"), .stat("etc/hosts/"),
            .stat("etc/hosts/."), .stat("etc/hosts/x"), .stat("missing/x"), .stat(""), .stat("etc/"),
            .stat("lib/libc.so"), .stat("etc/rel"), .lstat("etc/rel"), .stat("etc/rel/"), .lstat("lib/"),
            .stat("loop1"), .lstat("loop1"), .stat("loop1/x"), .stat("etc/dead"), .lstat("etc/dead"),
            .stat("tmp/" + long), .stat("share/doc/readme"), .stat("usr/share/doc/../doc/readme"),
            .open("etc/hosts", O_RDONLY), .open("etc/hosts", O_WRONLY), .open("etc", O_WRONLY),
            .open("etc", O_RDONLY | O_TRUNC), .open("etc", O_RDONLY | O_CREAT), .open("etc/hosts", O_DIRECTORY),
            .open("etc/rel", O_NOFOLLOW), .open("etc/rel", O_NOFOLLOW | 0o1000_0000), .open("loop1", O_RDONLY),
            .open("tmp/new", O_WRONLY | O_CREAT), .open("tmp/new", O_WRONLY | O_CREAT | O_EXCL),
            .open("tmp/new/", O_WRONLY | O_CREAT), .open("tmp/other/", O_WRONLY | O_CREAT),
            .open("tmp/.", O_WRONLY | O_CREAT), .open("etc/dead", O_WRONLY | O_CREAT),
            .open("etc/rel", O_WRONLY | O_CREAT | O_EXCL), .open("tmp/x", O_CREAT | O_DIRECTORY),
            .mkdir("tmp/d"), .mkdir("tmp/d"), .mkdir("tmp/d/"), .mkdir("tmp/e/"), .mkdir("etc/hosts"),
            .mkdir("etc/dead"), .mkdir("tmp/."), .mkdir("tmp/.."), .mkdir("no/such"), .mkdir("etc/hosts/x"),
            .unlink("tmp/d"), .unlink("etc/hosts/"), .unlink("tmp/none"), .unlink("tmp/."), .unlink("etc/rel/"),
            .rmdir("tmp/d/."), .rmdir("tmp/d/.."), .rmdir("etc/hosts"), .rmdir("share"), .rmdir("tmp"),
            .rmdir("usr/share/doc"), .rmdir("var/empty"), .rmdir("var/empty"), .rmdir("tmp/e/"),
            .rename("etc/hosts", "tmp/hosts"), .rename("tmp/hosts", "etc/hosts"), .rename("tmp/d", "tmp/d/sub"),
            .rename("tmp/d", "etc/hosts"), .rename("etc/hosts", "tmp/d"), .rename("usr/share", "tmp"),
            .rename("tmp/.", "tmp/z"), .rename("tmp/none", "tmp/z"), .rename("etc/hosts/", "tmp/z"),
            .rename("etc/hosts", "tmp/z/"), .rename("tmp/d", "tmp/d2/"), .rename("tmp/d2", "usr/share/doc/new"),
            .link("etc/hosts", "tmp/h2"), .link("etc/hosts", "tmp/h2"), .link("etc", "tmp/etc"),
            .link("tmp/none", "tmp/x"), .link("etc/hosts", "tmp/x/"), .link("etc/rel", "tmp/rel"),
            .symlink("target", "tmp/s"), .symlink("target", "tmp/s"), .symlink("", "tmp/s2"),
            .symlink("x", "tmp/s3/"), .symlink("x", "etc/"), .readlink("tmp/s"), .readlink("etc/hosts"),
            .readlink("loop1"), .readlink("missing"), .stat("tmp/s"), .unlink("tmp/s"),
            .unlink("etc/rel"), .stat("lib/libc.so"), .unlink("usr/lib/libc.so"), .stat("lib/libc.so"),
            .access("etc/hosts"), .access("missing"), .access("etc/hosts/"),
        ]

        for (number, op) in ops.enumerated() {
            let host = hostErrno(op, dirfd)
            let vfs = vfsErrno(op, &fs)
            XCTAssertEqual(vfs, host, "op \(number) \(op): VFS \(name(vfs)), host \(name(host))")
        }
    }

    func name(_ errno: Int32) -> String { errno == 0 ? "success" : Errno(errno).name.text }

    func hostErrno(_ op: Op, _ dirfd: Int32) -> Int32 {
        var result: Int32 = 0
        var st = Glibc.stat()
        var buffer = [CChar](repeating: 0, count: 256)
        switch op {
        case .stat(let p): result = fstatat(dirfd, p, &st, 0)
        case .lstat(let p): result = fstatat(dirfd, p, &st, AT_SYMLINK_NOFOLLOW)
        case .open(let p, let flags):
            result = openat(dirfd, p, flags, 0o644)
            if result >= 0 { Glibc.close(result); result = 0 }
        case .mkdir(let p): result = mkdirat(dirfd, p, 0o755)
        case .unlink(let p): result = unlinkat(dirfd, p, 0)
        case .rmdir(let p): result = unlinkat(dirfd, p, AT_REMOVEDIR)
        case .rename(let a, let b): result = renameat(dirfd, a, dirfd, b)
        case .link(let a, let b): result = linkat(dirfd, a, dirfd, b, 0)
        case .symlink(let t, let p): result = symlinkat(t, dirfd, p)
        case .readlink(let p): result = readlinkat(dirfd, p, &buffer, 256) >= 0 ? 0 : -1
        case .access(let p): result = faccessat(dirfd, p, F_OK, 0)
        }
        return result == 0 ? 0 : errno
    }

    func vfsErrno(_ op: Op, _ fs: inout TestFS) -> Int32 {
        func run(_ body: () throws(Errno) -> Void) -> Int32 {
            do { try body(); return 0 } catch { return error.rawValue }
        }
        switch op {
        case .stat(let p): return run { () throws(Errno) in _ = try fs.stat(p) }
        case .lstat(let p): return run { () throws(Errno) in _ = try fs.lstat(p) }
        case .open(let p, let flags):
            return run { () throws(Errno) in
                let fd = try fs.open(p, OpenFlags(rawValue: UInt32(bitPattern: flags)))
                try fs.close(fd)
            }
        case .mkdir(let p): return run { () throws(Errno) in try fs.mkdir(p) }
        case .unlink(let p): return run { () throws(Errno) in try fs.unlink(p) }
        case .rmdir(let p): return run { () throws(Errno) in try fs.rmdir(p) }
        case .rename(let a, let b): return run { () throws(Errno) in try fs.rename(a, b) }
        case .link(let a, let b): return run { () throws(Errno) in try fs.link(a, b) }
        case .symlink(let t, let p): return run { () throws(Errno) in try fs.symlink(t, p) }
        case .readlink(let p): return run { () throws(Errno) in _ = try fs.readlink(p, size: 256) }
        case .access(let p): return run { () throws(Errno) in try fs.access(p, AccessMode.F_OK) }
        }
    }
}
#endif
