import ImageFormat
import LinuxABI
import VFS
import XCTest

final class MountAndReadTests: XCTestCase {
    func testMountLayout() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        let tmp = try fs.stat("/tmp")
        XCTAssertEqual(tmp.mode, FileMode.S_IFDIR | 0o1777)
        XCTAssertEqual(try fs.list("/tmp"), [".", ".."])
        for name in ["null", "zero", "full", "random", "urandom", "tty", "console"] {
            XCTAssertEqual(try fs.stat("/dev/" + name).mode & FileMode.S_IFMT, FileMode.S_IFCHR, name)
        }
        XCTAssertEqual(try fs.stat("/dev/null").specialDevice, 0x103)
        XCTAssertEqual(try fs.readlink("/proc/self/exe"), "/bin/prog")
        XCTAssertEqual(try fs.stat("/proc/self/exe").size, 5000)
        XCTAssertEqual(try fs.list("/"), [".", "..", "abs", "bin", "dangling", "dangling-tmp", "dev", "dirlink",
                                          "etc", "lib", "loop1", "loop2", "proc", "tmp", "usr", "var"])
    }

    func testReadImageFile() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        let fd = try fs.open("/bin/prog")
        XCTAssertEqual(fd, 0, "the lowest free descriptor")
        XCTAssertEqual(try fs.read(fd, count: 100), Array(imageFiles[0].bytes[0..<100]))
        XCTAssertEqual(try fs.read(fd, count: 10_000), Array(imageFiles[0].bytes[100...]))
        XCTAssertEqual(try fs.read(fd), [], "end of file")
        XCTAssertEqual(try fs.pread(fd, count: 3, offset: 4998), Array(imageFiles[0].bytes[4998...]))
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.pread(fd, count: 3, offset: -1) }
        XCTAssertEqual(try fs.lseek(fd, -10, whence: SeekWhence.SEEK_END.rawValue), 4990)
        XCTAssertEqual(try fs.lseek(fd, 5, whence: SeekWhence.SEEK_CUR.rawValue), 4995)
        XCTAssertEqual(try fs.lseek(fd, 100_000, whence: SeekWhence.SEEK_SET.rawValue), 100_000)
        XCTAssertEqual(try fs.read(fd), [])
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.lseek(fd, -1, whence: SeekWhence.SEEK_SET.rawValue) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.lseek(fd, 0, whence: 9) }
        XCTAssertEqual(try fs.lseek(fd, 10, whence: SeekWhence.SEEK_DATA.rawValue), 10)
        XCTAssertEqual(try fs.lseek(fd, 10, whence: SeekWhence.SEEK_HOLE.rawValue), 5000)
        XCTAssertErrno(.ENXIO) { () throws(Errno) in try fs.lseek(fd, 5000, whence: SeekWhence.SEEK_DATA.rawValue) }
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.write(fd, "x") }

        let st = try fs.fstat(fd)
        XCTAssertEqual(st.mode, FileMode.S_IFREG | 0o755)
        XCTAssertEqual(st.size, 5000)
        XCTAssertEqual(st.blocks, 16)
        XCTAssertEqual(st.blockSize, 4096)
        XCTAssertEqual(st.linkCount, 1)
        XCTAssertEqual(st.modificationTime, imageTime)
        XCTAssertEqual(st.inode, try fs.stat("/bin/../bin/prog").inode, "st_ino is stable")
        XCTAssertNotEqual(st.inode, try fs.stat("/etc/hosts").inode)
        XCTAssertEqual(try fs.stat("/usr").linkCount, 4, "2 + lib and share")

        // mmap support: the very bytes of the image, page-aligned.
        let slice = try XCTUnwrap(fs.imageContents(fd))
        XCTAssertEqual(slice.count, 5000)
        XCTAssertEqual(UInt(bitPattern: slice.baseAddress) % 4096, 0)
        XCTAssertEqual(slice.baseAddress, image.reader.contents(of: image.reader.lookup(path: "/bin/prog")!).baseAddress)
        try fs.close(fd)
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.close(fd) }
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.read(fd) }
    }

    func testDirectoryDescriptors() throws {
        var fs = try ImageBuffer().mount()
        let dir = try fs.open("/etc", .O_DIRECTORY)
        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.read(dir) }
        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.open("/etc", .O_WRONLY) }
        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.open("/etc", .O_TRUNC) }
        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.open("/etc", .O_CREAT) }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.open("/etc/hosts", .O_DIRECTORY) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.open("/tmp/x", [.O_CREAT, .O_DIRECTORY]) }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in
            var buffer = [UInt8](repeating: 0, count: 100)
            let file = try fs.open("/etc/hosts")
            return try buffer.withUnsafeMutableBytes { raw in Result { () throws(Errno) in try fs.getdents64(file, into: raw) } }.get()
        }
        // *at calls relative to a directory descriptor.
        XCTAssertEqual(try fs.stat("hosts", at: dir).size, 20)
        XCTAssertEqual(try fs.stat("/etc/hosts", at: 999).size, 20, "an absolute path ignores dirfd")
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.stat("hosts", at: 999) }
        let file = try fs.open("/etc/hosts")
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.stat("x", at: file) }
        let st = try withPath("") { (p) throws(Errno) in try fs.fstatat(file, p, flags: .AT_EMPTY_PATH) }
        XCTAssertEqual(st.size, 20)
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("", at: file) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try withPath("/x") { (p) throws(Errno) in try fs.fstatat(cwd, p, flags: AtFlags(rawValue: 1)) } }
    }
}

final class PathTests: XCTestCase {
    func testEdgeCases() throws {
        var fs = try ImageBuffer().mount()
        let hosts = try fs.stat("/etc/hosts").inode
        for path in ["//etc///hosts", "/./etc/./hosts", "/usr/lib/../../etc/hosts", "/../../etc/hosts",
                     "etc/hosts", "./etc//hosts", "/abs", "/etc/../abs"] {
            XCTAssertEqual(try fs.stat(path).inode, hosts, path)
        }
        XCTAssertEqual(try fs.stat("/..").inode, try fs.stat("/").inode)
        XCTAssertEqual(try fs.stat("/etc/").mode & FileMode.S_IFMT, FileMode.S_IFDIR)
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.stat("/etc/hosts/") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.stat("/etc/hosts/.") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.stat("/etc/hosts/x") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.open("/etc/hosts/") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.open("") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/missing/x") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/etc/missing") }
        let longName = String(repeating: "a", count: 256)
        XCTAssertErrno(.ENAMETOOLONG) { () throws(Errno) in try fs.stat("/tmp/" + longName) }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/tmp/" + String(repeating: "a", count: 255)) }
        XCTAssertErrno(.ENAMETOOLONG) { () throws(Errno) in try fs.stat(String(repeating: "/", count: 4096)) }
        XCTAssertEqual(try fs.stat(String(repeating: "/", count: 4095)).inode, try fs.stat("/").inode)
    }

    func testSymlinks() throws {
        var fs = try ImageBuffer().mount()
        let libc = try fs.stat("/usr/lib/libc.so")
        XCTAssertEqual(try fs.stat("/lib/libc.so").inode, libc.inode, "relative link to a directory, mid-path")
        XCTAssertEqual(try fs.stat("/etc/rel").inode, libc.inode, "relative target with ..")
        XCTAssertEqual(try fs.stat("/etc/chain").inode, libc.inode, "link to a link")
        XCTAssertEqual(try fs.lstat("/etc/chain").mode, FileMode.S_IFLNK | 0o777)
        XCTAssertEqual(try fs.lstat("/etc/chain").size, 3)
        XCTAssertEqual(try fs.stat("/dirlink/doc/readme").size, 8)
        XCTAssertEqual(try fs.lstat("/dirlink/").mode & FileMode.S_IFMT, FileMode.S_IFDIR, "a trailing slash follows")
        XCTAssertEqual(try fs.readlink("/etc/rel"), "../usr/lib/libc.so")
        XCTAssertEqual(try fs.readlink("/etc/rel", size: 5), "../us", "truncated, no NUL")
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.readlink("/etc/hosts") }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.readlink("/etc/rel", size: 0) }
        XCTAssertErrno(.ELOOP) { () throws(Errno) in try fs.stat("/loop1") }
        XCTAssertErrno(.ELOOP) { () throws(Errno) in try fs.stat("/loop1/x") }
        XCTAssertEqual(try fs.lstat("/loop1").mode & FileMode.S_IFMT, FileMode.S_IFLNK)
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/dangling") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.stat("/abs/") }

        // O_NOFOLLOW and O_PATH.
        XCTAssertErrno(.ELOOP) { () throws(Errno) in try fs.open("/abs", .O_NOFOLLOW) }
        XCTAssertEqual(try fs.read(try fs.open("/abs")), imageFiles[1].bytes)
        let path = try fs.open("/abs", [.O_PATH, .O_NOFOLLOW])
        XCTAssertEqual(try fs.fstat(path).mode & FileMode.S_IFMT, FileMode.S_IFLNK)
        XCTAssertEqual(try fs.readlink("", at: path), "/etc/hosts")
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.read(path) }

        // Exactly 40 links resolve; 41 are ELOOP.
        try fs.symlink("/etc/hosts", "/tmp/l0")
        for i in 1...40 { try fs.symlink("l\(i - 1)", "/tmp/l\(i)") }
        XCTAssertEqual(try fs.stat("/tmp/l39").size, 20)
        XCTAssertErrno(.ELOOP) { () throws(Errno) in try fs.stat("/tmp/l40") }

        // O_CREAT through a dangling link creates its target.
        let fd = try fs.open("/dangling-tmp", [.O_CREAT, .O_WRONLY])
        try fs.write(fd, "via link")
        XCTAssertEqual(text(try fs.contents("/tmp/made-through-link")), "via link")
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.open("/abs", [.O_CREAT, .O_EXCL]) }
        XCTAssertErrno(.ELOOP) { () throws(Errno) in try fs.open("/abs", [.O_CREAT, .O_NOFOLLOW]) }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.open("/dangling", [.O_CREAT, .O_WRONLY]) }
    }
}

final class WriteTests: XCTestCase {
    func testCreateWriteRead() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        let fd = try fs.open("/tmp/a", [.O_CREAT, .O_RDWR], mode: 0o666)
        var st = try fs.fstat(fd)
        XCTAssertEqual(st.mode, FileMode.S_IFREG | 0o644, "umask 022")
        XCTAssertEqual(st.size, 0)
        XCTAssertEqual(st.linkCount, 1)
        XCTAssertEqual(try fs.write(fd, "hello"), 5)
        XCTAssertEqual(try fs.lseek(fd, 0, whence: 0), 0)
        XCTAssertEqual(text(try fs.read(fd)), "hello")
        try fs.pwrite(fd, "X", offset: 8)
        XCTAssertEqual(try fs.pread(fd, count: 100, offset: 0), Array("hello".utf8) + [0, 0, 0] + Array("X".utf8))
        st = try fs.fstat(fd)
        XCTAssertEqual(st.size, 9)
        XCTAssertEqual(st.blocks, 8)
        XCTAssertGreaterThan(st.modificationTime.seconds, 1000, "tmpfs times come from the host clock")
        try fs.ftruncate(fd, length: 2)
        XCTAssertEqual(text(try fs.pread(fd, count: 100, offset: 0)), "he")
        try fs.ftruncate(fd, length: 4)
        XCTAssertEqual(try fs.pread(fd, count: 100, offset: 0), [104, 101, 0, 0])
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.ftruncate(fd, length: -1) }
        XCTAssertErrno(.EFBIG) { () throws(Errno) in try fs.ftruncate(fd, length: 1 << 40) }
        XCTAssertErrno(.EFBIG) { () throws(Errno) in try fs.pwrite(fd, "x", offset: 1 << 40) }

        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.open("/tmp/a", [.O_CREAT, .O_EXCL, .O_RDWR]) }
        let ro = try fs.open("/tmp/a")
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.write(ro, "x") }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.ftruncate(ro, length: 0) }
        let wo = try fs.open("/tmp/a", .O_WRONLY)
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.read(wo) }

        // O_APPEND writes at the end whatever the offset; pwrite too (Linux's behaviour).
        let app = try fs.open("/tmp/a", [.O_WRONLY, .O_APPEND])
        try fs.write(app, "12")
        try fs.pwrite(app, "3", offset: 0)
        XCTAssertEqual(try fs.contents("/tmp/a"), [104, 101, 0, 0] + Array("123".utf8))
        // O_TRUNC empties; O_CREAT on an existing file keeps it.
        _ = try fs.open("/tmp/a", [.O_CREAT, .O_WRONLY])
        XCTAssertEqual(try fs.stat("/tmp/a").size, 7)
        _ = try fs.open("/tmp/a", [.O_WRONLY, .O_TRUNC])
        XCTAssertEqual(try fs.stat("/tmp/a").size, 0)

        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.open("/tmp/new/", [.O_CREAT, .O_WRONLY]) }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.open("/tmp/missing/new", [.O_CREAT, .O_WRONLY]) }
        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.open("/tmp/.", [.O_CREAT, .O_WRONLY]) }
        XCTAssertErrno(.EOPNOTSUPP) { () throws(Errno) in try fs.open("/tmp", [.O_TMPFILE, .O_RDWR]) }
        // Writing anywhere works: the overlay covers the whole tree.
        let root = try fs.open("/newfile", [.O_CREAT, .O_WRONLY])
        try fs.write(root, "r")
        XCTAssertEqual(try fs.stat("/newfile").size, 1)
    }

    func testCopyUp() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        let original = image.contents("/etc/hosts")
        let reader = try fs.open("/etc/hosts")
        XCTAssertNotNil(fs.imageContents(reader))
        let inode = try fs.stat("/etc/hosts").inode
        let writer = try fs.open("/etc/hosts", .O_RDWR)
        try fs.pwrite(writer, "10.0", offset: 0)
        XCTAssertEqual(text(try fs.contents("/etc/hosts")), "10.00.0.1 localhost\n")
        XCTAssertEqual(text(try fs.read(reader)), "10.00.0.1 localhost\n", "one node: earlier opens see the write")
        XCTAssertEqual(image.contents("/etc/hosts"), original, "the image is never written")
        XCTAssertNil(fs.imageContents(reader), "no longer image-backed")
        XCTAssertEqual(try fs.stat("/etc/hosts").inode, inode, "copy-up keeps the inode")
        XCTAssertEqual(try fs.stat("/abs").size, 20, "via the link too")

        // Truncating an image file copies up too; a fresh mount sees the image again.
        let trunc = try fs.open("/bin/prog", [.O_WRONLY, .O_TRUNC])
        XCTAssertEqual(try fs.fstat(trunc).size, 0)
        XCTAssertEqual(image.contents("/bin/prog"), imageFiles[0].bytes)
        var fresh = image.mount()
        XCTAssertEqual(try fresh.stat("/bin/prog").size, 5000)
        // Metadata changes need no copy.
        try withPath("/usr/lib/libc.so") { (p) throws(Errno) in try fs.fchmodat(cwd, p, mode: 0o600, flags: []) }
        XCTAssertEqual(try fs.stat("/usr/lib/libc.so").mode, FileMode.S_IFREG | 0o600)
        let libc = try fs.open("/usr/lib/libc.so")
        XCTAssertNotNil(fs.imageContents(libc))
    }

    func testWhiteout() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        let old = try fs.stat("/etc/hosts").inode
        try fs.unlink("/etc/hosts")
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/etc/hosts") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.unlink("/etc/hosts") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.open("/etc/hosts") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/abs") }
        XCTAssertEqual(try fs.list("/etc"), [".", "..", "chain", "empty", "rel"])
        let fd = try fs.open("/etc/hosts", [.O_CREAT, .O_EXCL, .O_WRONLY])
        try fs.write(fd, "new")
        XCTAssertEqual(text(try fs.contents("/abs")), "new")
        XCTAssertNotEqual(try fs.stat("/etc/hosts").inode, old)
        XCTAssertEqual(try fs.list("/etc"), [".", "..", "chain", "empty", "hosts", "rel"])
        XCTAssertEqual(image.contents("/etc/hosts"), imageFiles[1].bytes)

        // rmdir of an image directory, then mkdir: the image's children stay hidden.
        XCTAssertErrno(.ENOTEMPTY) { () throws(Errno) in try fs.rmdir("/usr/share/doc") }
        try fs.unlink("/usr/share/doc/readme")
        try fs.unlink("/usr/share/doc/notes")
        XCTAssertEqual(try fs.list("/usr/share/doc"), [".", ".."])
        try fs.rmdir("/usr/share/doc")
        XCTAssertEqual(try fs.list("/usr/share"), [".", ".."])
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/usr/share/doc/readme") }
        try fs.mkdir("/usr/share/doc")
        XCTAssertEqual(try fs.list("/usr/share/doc"), [".", ".."])
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/usr/share/doc/readme") }
    }

    func testFullMemoryIsENOSPC() throws {
        var fs = try ImageBuffer().mount()
        let fd = try fs.open("/tmp/f", [.O_CREAT, .O_RDWR])
        try fs.write(fd, "kept")
        fs.host.spareBytes = 1000
        XCTAssertErrno(.ENOSPC) { () throws(Errno) in _ = try fs.write(fd, [UInt8](repeating: 1, count: 2000)) }
        XCTAssertErrno(.ENOSPC) { () throws(Errno) in try fs.ftruncate(fd, length: 5000) }
        // An image file too large to copy up cannot be opened for change.
        let image = try fs.open("/bin/prog", [.O_RDWR])
        XCTAssertErrno(.ENOSPC) { () throws(Errno) in _ = try fs.pwrite(image, "x", offset: 0) }
        XCTAssertEqual(text(try fs.pread(fd, count: 10, offset: 0)), "kept")
        // What fits still goes in: capacity grows to the exact need when double is too much.
        XCTAssertEqual(try fs.write(fd, [UInt8](repeating: 2, count: 600)), 600)
        XCTAssertEqual(try fs.fstat(fd).size, 604)
    }

    /// Names and inodes are memory too: a directory that would have to grow past what the
    /// host can spare is full (ENOSPC, as tmpfs), and a failed create leaves nothing behind.
    func testManyNamesAreENOSPCWhenMemoryRunsOut() throws {
        var fs = try ImageBuffer().mount()
        try fs.mkdir("/tmp/many")
        fs.host.spareBytes = 0  // not even one name
        XCTAssertErrno(.ENOSPC) { () throws(Errno) in _ = try fs.open("/tmp/many/a", [.O_CREAT, .O_RDWR]) }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in _ = try fs.stat("/tmp/many/a") }

        fs.host.spareBytes = 64 * 1024
        var created = 0
        var failure: Errno? = nil
        while created < 100_000 {
            do {
                let fd = try fs.open("/tmp/many/f\(created)", [.O_CREAT, .O_EXCL, .O_RDWR])
                try fs.close(fd)
                created += 1
            } catch {
                failure = error
                break
            }
        }
        XCTAssertEqual(failure, .ENOSPC, "\(created) files went in")
        XCTAssertGreaterThan(created, 10)
        XCTAssertErrno(.ENOENT) { () throws(Errno) in _ = try fs.stat("/tmp/many/f\(created)") }
        XCTAssertErrno(.ENOSPC) { () throws(Errno) in try fs.mkdir("/tmp/many/sub") }
        XCTAssertErrno(.ENOSPC) { () throws(Errno) in try fs.symlink("/tmp/x", "/tmp/many/link") }
        // Everything created is there and intact.
        XCTAssertEqual(try fs.list("/tmp/many").count, created + 2)
        XCTAssertEqual(try fs.stat("/tmp/many/f\(created - 1)").size, 0)
        // With memory to spare, the directory grows again.
        fs.host.spareBytes = Int.max
        try fs.mkdir("/tmp/many/sub")
        try fs.symlink("/tmp/x", "/tmp/many/link")
        try fs.link("/tmp/many/f0", "/tmp/many/f0-again")
        XCTAssertEqual(try fs.list("/tmp/many").count, created + 5)
    }

    func testOpenUnlinkedFileLivesOn() throws {
        var fs = try ImageBuffer().mount()
        let fd = try fs.open("/tmp/f", [.O_CREAT, .O_RDWR])
        try fs.write(fd, "data")
        try fs.unlink("/tmp/f")
        XCTAssertEqual(try fs.fstat(fd).linkCount, 0)
        XCTAssertEqual(text(try fs.pread(fd, count: 10, offset: 0)), "data")
        XCTAssertErrno(.ENOENT) { () throws(Errno) in
            try withPath("") { (e) throws(Errno) in
                try withPath("/tmp/g") { (n) throws(Errno) in try fs.linkat(fd, e, cwd, n, flags: .AT_EMPTY_PATH) }
            }
        }
        try fs.close(fd)
        // The freed node is reusable; a new file is intact.
        let again = try fs.open("/tmp/h", [.O_CREAT, .O_RDWR])
        XCTAssertEqual(try fs.fstat(again).size, 0)
    }
}

final class NamespaceTests: XCTestCase {
    func testMkdirUnlinkErrors() throws {
        var fs = try ImageBuffer().mount()
        try fs.mkdir("/tmp/d", mode: 0o777)
        XCTAssertEqual(try fs.stat("/tmp/d").mode, FileMode.S_IFDIR | 0o755)
        try fs.mkdir("/tmp/e/")
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.mkdir("/tmp/d") }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.mkdir("/etc/hosts") }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.mkdir("/dangling") }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.mkdir("/") }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.mkdir("/tmp/.") }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.mkdir("/tmp/..") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.mkdir("/tmp/x/y") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.mkdir("/etc/hosts/y") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.mkdir("") }

        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.unlink("/tmp/d") }
        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.unlink("/tmp/.") }
        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.unlink("/") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.unlink("/etc/hosts/") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.unlink("/tmp/none") }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try withPath("/tmp/d") { (p) throws(Errno) in try fs.unlinkat(cwd, p, flags: .AT_SYMLINK_NOFOLLOW) } }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.rmdir("/tmp/d/.") }
        XCTAssertErrno(.ENOTEMPTY) { () throws(Errno) in try fs.rmdir("/tmp/d/..") }
        XCTAssertErrno(.EBUSY) { () throws(Errno) in try fs.rmdir("/") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.rmdir("/etc/hosts") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.rmdir("/dirlink") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.rmdir("/tmp/none") }
        XCTAssertErrno(.ENOTEMPTY) { () throws(Errno) in try fs.rmdir("/tmp") }
        try fs.rmdir("/tmp/d/")
        try fs.rmdir("/tmp/e")
        XCTAssertEqual(try fs.list("/tmp"), [".", ".."])
        // An unlinked symlink goes, not its target.
        try fs.unlink("/abs")
        XCTAssertEqual(try fs.stat("/etc/hosts").size, 20)

        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.symlink("", "/tmp/s") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.symlink("x", "/tmp/s/") }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.symlink("x", "/etc/") }
        XCTAssertErrno(.ENAMETOOLONG) { () throws(Errno) in try fs.symlink(String(repeating: "x", count: 4096), "/tmp/s") }
        try fs.symlink("anything at all", "/tmp/s")
        XCTAssertEqual(try fs.readlink("/tmp/s"), "anything at all")
    }

    func testRename() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        // Image file into the overlay-only /tmp.
        let inode = try fs.stat("/etc/hosts").inode
        try fs.rename("/etc/hosts", "/tmp/hosts")
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/etc/hosts") }
        XCTAssertEqual(try fs.stat("/tmp/hosts").inode, inode)
        XCTAssertEqual(try fs.contents("/tmp/hosts"), imageFiles[1].bytes)
        XCTAssertFalse(try fs.list("/etc").contains("hosts"))
        // And back over an image name.
        try fs.rename("/tmp/hosts", "/etc/empty")
        XCTAssertEqual(try fs.contents("/etc/empty"), imageFiles[1].bytes)
        XCTAssertEqual(try fs.list("/tmp"), [".", ".."])

        // An image directory, children and all.
        try fs.rename("/usr/share", "/tmp/share")
        XCTAssertEqual(text(try fs.contents("/tmp/share/doc/readme")), "read me\n")
        XCTAssertEqual(try fs.list("/tmp/share/doc"), [".", "..", "notes", "readme"])
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.stat("/usr/share") }
        XCTAssertEqual(try fs.stat("/usr").linkCount, 3)
        let doc = try fs.open("/tmp/share/doc", .O_DIRECTORY)
        XCTAssertEqual(try fs.dents(doc)[1].ino, try fs.stat("/tmp/share").inode, "'..' follows the move")

        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.rename("/tmp/share", "/tmp/share/doc/x") }
        XCTAssertErrno(.ENOTEMPTY) { () throws(Errno) in try fs.rename("/tmp/share/doc", "/tmp/share") }
        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.rename("/etc/empty", "/tmp/share") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.rename("/tmp/share", "/etc/empty") }
        XCTAssertErrno(.ENOTEMPTY) { () throws(Errno) in try fs.rename("/var", "/tmp") }
        XCTAssertErrno(.EBUSY) { () throws(Errno) in try fs.rename("/tmp/.", "/tmp/z") }
        XCTAssertErrno(.EBUSY) { () throws(Errno) in try fs.rename("/tmp/share", "/") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.rename("/tmp/none", "/tmp/z") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.rename("/etc/empty/", "/tmp/z") }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.rename("/etc/empty", "/tmp/z/") }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.rename("/etc/empty", "/etc/rel", flags: RenameFlags.RENAME_NOREPLACE) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.rename("/etc/empty", "/etc/rel", flags: 3) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.rename("/etc/empty", "/etc/rel", flags: RenameFlags.RENAME_WHITEOUT) }
        // Over an empty directory; a directory keeps its inode.
        try fs.mkdir("/tmp/emptydir")
        let share = try fs.stat("/tmp/share").inode
        try fs.rename("/tmp/share/", "/tmp/emptydir/")
        XCTAssertEqual(try fs.stat("/tmp/emptydir").inode, share)
        // Over a file; a link to itself is a no-op.
        try fs.rename("/etc/empty", "/etc/chain")
        XCTAssertEqual(try fs.lstat("/etc/chain").mode & FileMode.S_IFMT, FileMode.S_IFREG)
        try fs.link("/etc/chain", "/tmp/same")
        try fs.rename("/etc/chain", "/tmp/same")
        XCTAssertEqual(try fs.stat("/etc/chain").linkCount, 2)
        // RENAME_EXCHANGE swaps.
        try fs.rename("/etc/chain", "/etc/rel", flags: RenameFlags.RENAME_EXCHANGE)
        XCTAssertEqual(try fs.lstat("/etc/chain").mode & FileMode.S_IFMT, FileMode.S_IFLNK)
        XCTAssertEqual(try fs.lstat("/etc/rel").mode & FileMode.S_IFMT, FileMode.S_IFREG)
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.rename("/etc/rel", "/etc/nothing", flags: RenameFlags.RENAME_EXCHANGE) }
    }

    func testHardLinks() throws {
        var fs = try ImageBuffer().mount()
        try fs.link("/etc/hosts", "/tmp/hosts2")
        XCTAssertEqual(try fs.stat("/tmp/hosts2").inode, try fs.stat("/etc/hosts").inode)
        XCTAssertEqual(try fs.stat("/etc/hosts").linkCount, 2)
        let fd = try fs.open("/tmp/hosts2", .O_WRONLY)
        try fs.write(fd, "X")
        XCTAssertEqual(try fs.contents("/etc/hosts").first, UInt8(ascii: "X"))
        try fs.unlink("/etc/hosts")
        XCTAssertEqual(try fs.stat("/tmp/hosts2").linkCount, 1)
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.link("/etc", "/tmp/etc") }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.link("/tmp/hosts2", "/etc/empty") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.link("/tmp/none", "/tmp/x") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.link("/tmp/hosts2", "/tmp/x/") }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.link("/tmp/hosts2", "/tmp/x", flags: .AT_REMOVEDIR) }
        // Without AT_SYMLINK_FOLLOW a link to the symlink itself; with it, to the target.
        try fs.link("/etc/rel", "/tmp/rel-link")
        XCTAssertEqual(try fs.lstat("/tmp/rel-link").mode & FileMode.S_IFMT, FileMode.S_IFLNK)
        XCTAssertErrno(.ENOENT, "/abs points to the unlinked /etc/hosts") { () throws(Errno) in
            try fs.link("/abs", "/tmp/abs-target", flags: .AT_SYMLINK_FOLLOW)
        }
        try fs.link("/usr/lib/libc.so", "/tmp/libc", flags: .AT_SYMLINK_FOLLOW)
        XCTAssertEqual(try fs.stat("/tmp/libc").linkCount, 2)
    }

    func testCurrentDirectory() throws {
        var fs = try ImageBuffer().mount()
        XCTAssertEqual(text(try fs.currentDirectoryPath()), "/")
        try fs.chdir("/dirlink/doc")
        XCTAssertEqual(text(try fs.currentDirectoryPath()), "/usr/share/doc")
        XCTAssertEqual(try fs.stat("readme").size, 8)
        XCTAssertEqual(try fs.stat("../../lib/libc.so").size, 4096)
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.chdir("readme") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.chdir("nothing") }
        var small = [UInt8](repeating: 0, count: 14)
        XCTAssertErrno(.ERANGE) { () throws(Errno) in try small.withUnsafeMutableBytes { raw in Result { () throws(Errno) in try fs.getcwd(into: raw) } }.get() }
        var big = [UInt8](repeating: 0xff, count: 15)
        XCTAssertEqual(try big.withUnsafeMutableBytes { raw in Result { () throws(Errno) in try fs.getcwd(into: raw) } }.get(), 15)
        XCTAssertEqual(big, Array("/usr/share/doc".utf8) + [0])

        let etc = try fs.open("/etc", [.O_PATH, .O_DIRECTORY])
        try fs.fchdir(etc)
        XCTAssertEqual(try fs.stat("hosts").size, 20)
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try fs.fchdir(try fs.open("hosts")) }
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.fchdir(77) }

        try fs.mkdir("/tmp/gone")
        try fs.chdir("/tmp/gone")
        try fs.rmdir("/tmp/gone")
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.currentDirectoryPath() }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.open("new", [.O_CREAT, .O_WRONLY]) }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.mkdir("new") }
        XCTAssertEqual(try fs.stat(".").linkCount, 0)
        try fs.chdir("/")
        XCTAssertEqual(text(try fs.currentDirectoryPath()), "/")
    }
}

final class GetdentsTests: XCTestCase {
    func testListingAndTypes() throws {
        var fs = try ImageBuffer().mount()
        try fs.mkdir("/etc/sub")
        let fd = try fs.open("/etc", .O_DIRECTORY)
        let all = try fs.dents(fd)
        XCTAssertEqual(all.map(\.name), [".", "..", "chain", "empty", "hosts", "rel", "sub"])
        XCTAssertEqual(all.map(\.type), [4, 4, 10, 8, 8, 10, 4])
        XCTAssertEqual(all.map(\.off), [1, 2, 3, 4, 5, 6, 7])
        XCTAssertEqual(all[0].ino, try fs.stat("/etc").inode)
        XCTAssertEqual(all[1].ino, try fs.stat("/").inode)
        XCTAssertEqual(all[3].ino, try fs.stat("/etc/empty").inode, "d_ino matches st_ino, image entry")
        XCTAssertEqual(all[6].ino, try fs.stat("/etc/sub").inode, "and overlay entry")
        XCTAssertEqual(try fs.dents(fd).count, 0, "end of directory")
        XCTAssertEqual(try fs.lseek(fd, 0, whence: 0), 0)
        XCTAssertEqual(try fs.dents(fd).count, 7, "rewound")
        XCTAssertEqual(try fs.stat("/etc").linkCount, 3)
    }

    func testTinyBuffer() throws {
        var fs = try ImageBuffer().mount()
        let full = try fs.list("/usr/share/doc/../../..")
        // 24 bytes hold exactly one record with a name of up to 4 bytes; 32 up to 12.
        XCTAssertEqual(try fs.list("/", bufferSize: 32), full)
        let fd = try fs.open("/", .O_DIRECTORY)
        var seen: [String] = []
        var offsets: [Int64] = []
        while true {
            let one = try fs.dents(fd, bufferSize: 32)
            XCTAssertLessThanOrEqual(one.count, 1)
            guard let record = one.first else { break }
            seen.append(record.name)
            offsets.append(record.off)
        }
        XCTAssertEqual(seen, full)
        XCTAssertEqual(offsets, (1...Int64(full.count)).map { $0 })
        XCTAssertErrno(.EINVAL) { () throws(Errno) in
            _ = try fs.lseek(fd, 0, whence: 0)
            return try fs.dents(fd, bufferSize: 20)
        }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in
            _ = try fs.lseek(fd, 5, whence: 0)  // "dangling-tmp" needs 32 bytes
            return try fs.dents(fd, bufferSize: 24)
        }
        // seekdir to a cookie resumes there.
        _ = try fs.lseek(fd, offsets[4], whence: 0)
        XCTAssertEqual(try fs.dents(fd).map(\.name), Array(full[5...]))
    }

    func testChangesBetweenCalls() throws {
        var fs = try ImageBuffer().mount()
        let fd = try fs.open("/etc", .O_DIRECTORY)
        XCTAssertEqual(try fs.dents(fd, bufferSize: 80).map(\.name), [".", "..", "chain"])
        // Removing an entry already returned and adding one before the cursor does not
        // repeat or skip the rest.
        try fs.unlink("/etc/chain")
        try fs.mkdir("/etc/a")
        XCTAssertEqual(try fs.list("/etc"), [".", "..", "a", "empty", "hosts", "rel"])
        var rest: [String] = []
        while true {
            let batch = try fs.dents(fd, bufferSize: 32)
            if batch.isEmpty { break }
            rest += batch.map(\.name)
        }
        XCTAssertEqual(rest, ["empty", "hosts", "rel"])
    }
}

final class DescriptorTests: XCTestCase {
    func testAllocationAndDup() throws {
        var fs = try ImageBuffer().mount()
        try fs.installConsole(fd: 0, id: ConsoleID.stdin, flags: .O_RDONLY)
        try fs.installConsole(fd: 1, id: ConsoleID.stdout, flags: .O_WRONLY)
        try fs.installConsole(fd: 2, id: ConsoleID.stderr, flags: .O_WRONLY)
        let a = try fs.open("/etc/hosts")
        let b = try fs.open("/etc/hosts")
        let c = try fs.open("/etc/hosts")
        XCTAssertEqual([a, b, c], [3, 4, 5])
        try fs.close(b)
        XCTAssertEqual(try fs.open("/etc/empty"), 4, "lowest free")
        XCTAssertEqual(try fs.duplicate(a), 6)
        XCTAssertEqual(try fs.duplicate(a, minimum: 10), 10)
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.duplicate(a, minimum: -1) }
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.duplicate(99) }

        // dup'ed descriptors share the offset.
        XCTAssertEqual(try fs.read(a, count: 4), Array("127.".utf8))
        XCTAssertEqual(try fs.read(6, count: 4), Array("0.0.".utf8))
        XCTAssertEqual(try fs.read(c, count: 4), Array("127.".utf8), "a separate open has its own")

        // dup2: same fd is a no-op check; it closes the target; bad old is EBADF.
        XCTAssertEqual(try fs.duplicate2(c, c), c)
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.duplicate2(50, 50) }
        XCTAssertEqual(try fs.duplicate2(c, 4), 4)
        XCTAssertEqual(try fs.read(4, count: 4), Array("0.0.".utf8), "4 is now c's description")
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.duplicate2(c, -1) }
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.duplicate2(c, 1024) }
        XCTAssertEqual(try fs.duplicate2(c, 1023), 1023)
        XCTAssertEqual(try fs.duplicate2(a, 1), 1, "replaces a console")
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.duplicate3(c, c, flags: []) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.duplicate3(c, 8, flags: .O_APPEND) }
        XCTAssertEqual(try fs.duplicate3(c, 8, flags: .O_CLOEXEC), 8)
        XCTAssertEqual(try fs.descriptorFlags(8), FcntlCommand.FD_CLOEXEC)
        XCTAssertEqual(try fs.descriptorFlags(c), 0)
        XCTAssertEqual(try fs.duplicate(c, closeOnExec: true), 7)
        try fs.setDescriptorFlags(c, FcntlCommand.FD_CLOEXEC)
        let keep = try fs.open("/etc/hosts", .O_CLOEXEC)
        try fs.setDescriptorFlags(keep, 0)
        fs.closeOnExec()
        XCTAssertFalse(fs.isOpen(8))
        XCTAssertFalse(fs.isOpen(7))
        XCTAssertFalse(fs.isOpen(c))
        XCTAssertTrue(fs.isOpen(keep))
        XCTAssertTrue(fs.isOpen(4), "its description survives in 4")

        // F_GETFL / F_SETFL.
        let w = try fs.open("/tmp/f", [.O_CREAT, .O_WRONLY])
        XCTAssertEqual(try fs.statusFlags(w), [.O_WRONLY, .O_LARGEFILE])
        try fs.setStatusFlags(w, [.O_APPEND, .O_NONBLOCK, .O_RDWR, .O_CREAT])
        XCTAssertEqual(try fs.statusFlags(w), [.O_WRONLY, .O_APPEND, .O_NONBLOCK, .O_LARGEFILE])
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.setStatusFlags(try fs.open("/", .O_PATH), .O_APPEND) }
    }

    func testDescriptorLimit() throws {
        var fs = try ImageBuffer().mount(maxDescriptors: 4)
        for expected in Int32(0)..<4 { XCTAssertEqual(try fs.open("/etc/hosts"), expected) }
        XCTAssertErrno(.EMFILE) { () throws(Errno) in try fs.open("/etc/hosts") }
        XCTAssertErrno(.EMFILE) { () throws(Errno) in try fs.duplicate(0) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.duplicate(0, minimum: 4) }
        try fs.close(2)
        XCTAssertEqual(try fs.duplicate(0), 2)
    }

    func testDevicesAndConsoles() throws {
        var fs = try ImageBuffer().mount()
        try fs.installConsole(fd: 0, id: ConsoleID.stdin, flags: .O_RDONLY)
        try fs.installConsole(fd: 1, id: ConsoleID.stdout, flags: .O_WRONLY)
        try fs.installConsole(fd: 2, id: ConsoleID.stderr, flags: .O_WRONLY)
        try fs.write(1, "out")
        try fs.write(2, "err")
        fs.host.consoleInput = Array("typed".utf8)
        XCTAssertEqual(text(try fs.read(0)), "typed")
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.write(0, "x") }
        XCTAssertErrno(.ESPIPE) { () throws(Errno) in try fs.lseek(1, 0, whence: 0) }
        XCTAssertErrno(.ESPIPE) { () throws(Errno) in try fs.pwrite(1, "x", offset: 0) }
        XCTAssertEqual(try fs.fstat(1).mode & FileMode.S_IFMT, FileMode.S_IFCHR)
        if case .device(.console(let id)) = try fs.nodeType(2) { XCTAssertEqual(id, ConsoleID.stderr) } else { XCTFail() }
        let tty = try fs.open("/dev/tty", .O_RDWR)
        try fs.write(tty, "tty")
        XCTAssertEqual(fs.host.consoleOutput[ConsoleID.stdout].map(text), "out")
        XCTAssertEqual(fs.host.consoleOutput[ConsoleID.stderr].map(text), "err")
        XCTAssertEqual(fs.host.consoleOutput[ConsoleID.tty].map(text), "tty")

        let null = try fs.open("/dev/null", .O_RDWR)
        XCTAssertEqual(try fs.read(null), [])
        XCTAssertEqual(try fs.write(null, "gone"), 4)
        XCTAssertEqual(try fs.lseek(null, 100, whence: 0), 0)
        let zero = try fs.open("/dev/zero")
        XCTAssertEqual(try fs.read(zero, count: 5), [0, 0, 0, 0, 0])
        let full = try fs.open("/dev/full", .O_RDWR)
        XCTAssertErrno(.ENOSPC) { () throws(Errno) in try fs.write(full, "x") }
        XCTAssertEqual(try fs.read(full, count: 2), [0, 0])
        let random = try fs.open("/dev/urandom")
        XCTAssertEqual(try fs.read(random, count: 3), [1, 2, 3], "from the host")
        XCTAssertEqual(try fs.read(try fs.open("/dev/random"), count: 2), [4, 5])
        XCTAssertErrno(.EISDIR) { () throws(Errno) in try fs.open("/dev", .O_WRONLY) }
        // Writes to /dev go to the overlay like anywhere else.
        _ = try fs.open("/dev/shm/seg", [.O_CREAT, .O_RDWR])
        XCTAssertEqual(try fs.list("/dev"), [".", "..", "console", "full", "null", "random", "shm", "tty", "urandom", "zero"])
    }

    func testGeneratedFiles() throws {
        var fs = try ImageBuffer().mount()
        fs.host.generated[7] = Array("MemTotal: 1 kB\n".utf8)
        try withPath("/proc/meminfo") { (p) throws(Errno) in try fs.addSynthetic(path: p, .generated(7)) }
        try withPath("/proc/self/cwd") { (p) throws(Errno) in try fs.addSynthetic(path: p, .symlink(target: Array("/tmp".utf8))) }
        try withPath("/proc/sys/kernel") { (p) throws(Errno) in try fs.addSynthetic(path: p, .directory) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try withPath("proc/x") { (p) throws(Errno) in try fs.addSynthetic(path: p, .directory) } }
        XCTAssertErrno(.ENOTDIR) { () throws(Errno) in try withPath("/proc/meminfo/x") { (p) throws(Errno) in try fs.addSynthetic(path: p, .directory) } }
        XCTAssertEqual(try fs.list("/proc"), [".", "..", "meminfo", "self", "sys"])
        XCTAssertEqual(try fs.list("/proc/self"), [".", "..", "cwd", "exe"])
        let st = try fs.stat("/proc/meminfo")
        XCTAssertEqual(st.mode, FileMode.S_IFREG | 0o444)
        XCTAssertEqual(st.size, 0)
        let fd = try fs.open("/proc/meminfo")
        fs.host.generated[7] = Array("changed".utf8)
        XCTAssertEqual(text(try fs.read(fd)), "MemTotal: 1 kB\n", "a snapshot taken at open")
        XCTAssertEqual(try fs.lseek(fd, 0, whence: 0), 0)
        XCTAssertEqual(text(try fs.read(fd, count: 3)), "Mem")
        XCTAssertEqual(text(try fs.read(try fs.open("/proc/meminfo"))), "changed")
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.open("/proc/meminfo", .O_WRONLY) }
        XCTAssertEqual(try fs.stat("/proc/self/cwd").inode, try fs.stat("/tmp").inode)
        try withPath("/proc/bad") { (p) throws(Errno) in try fs.addSynthetic(path: p, .generated(99)) }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.open("/proc/bad") }
    }
}

final class MetadataTests: XCTestCase {
    func testModesOwnersTimes() throws {
        var fs = try ImageBuffer().mount()
        let fd = try fs.open("/tmp/f", [.O_CREAT, .O_RDWR], mode: 0o755)
        try fs.fchmod(fd, mode: 0o4755 | FileMode.S_IFREG)
        XCTAssertEqual(try fs.fstat(fd).mode, FileMode.S_IFREG | 0o4755, "type bits ignored")
        try fs.fchown(fd, uid: 1000, gid: UInt32.max)
        var st = try fs.fstat(fd)
        XCTAssertEqual([st.uid, st.gid], [1000, 0])
        XCTAssertEqual(st.mode, FileMode.S_IFREG | 0o755, "chown clears setuid")
        try withPath("/abs") { (p) throws(Errno) in try fs.fchownat(cwd, p, uid: 5, gid: 6, flags: .AT_SYMLINK_NOFOLLOW) }
        XCTAssertEqual(try fs.lstat("/abs").uid, 5)
        XCTAssertEqual(try fs.stat("/abs").uid, 0)
        XCTAssertErrno(.EOPNOTSUPP) { () throws(Errno) in try withPath("/abs") { (p) throws(Errno) in try fs.fchmodat(cwd, p, mode: 0o600, flags: .AT_SYMLINK_NOFOLLOW) } }
        XCTAssertErrno(.EBADF) { () throws(Errno) in try fs.fchmod(try fs.open("/tmp/f", .O_PATH), mode: 0) }

        let when = Timespec(seconds: 42, nanoseconds: 5)
        try withPath("/tmp/f") { (p) throws(Errno) in
            try fs.utimensat(cwd, p, times: (when, Timespec(seconds: 0, nanoseconds: UtimeSpecial.UTIME_OMIT)), flags: [])
        }
        st = try fs.fstat(fd)
        XCTAssertEqual(st.accessTime, when)
        XCTAssertNotEqual(st.modificationTime, when)
        try fs.utimensat(fd, nil, times: (Timespec(seconds: 0, nanoseconds: UtimeSpecial.UTIME_OMIT), when), flags: [])
        XCTAssertEqual(try fs.fstat(fd).modificationTime, when)
        try fs.utimensat(fd, nil, times: nil, flags: [])
        XCTAssertGreaterThan(try fs.fstat(fd).modificationTime.seconds, 1000)
        XCTAssertErrno(.EINVAL) { () throws(Errno) in
            try fs.utimensat(fd, nil, times: (Timespec(seconds: 0, nanoseconds: -1), when), flags: [])
        }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.utimensat(fd, nil, times: nil, flags: .AT_REMOVEDIR) }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try withPath("/none") { (p) throws(Errno) in try fs.utimensat(cwd, p, times: nil, flags: []) } }

        // access as root.
        try fs.access("/etc/hosts", AccessMode.R_OK | AccessMode.W_OK)
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.access("/etc/hosts", AccessMode.X_OK) }
        try fs.access("/bin/prog", AccessMode.X_OK)
        try fs.access("/etc", AccessMode.X_OK)
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try fs.access("/none", AccessMode.F_OK) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try fs.access("/etc", 8) }
    }
}

final class RobustnessTests: XCTestCase {
    /// Random paths and operations never trap, and leave the tree consistent.
    func testRandomOperations() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        var rng = SplitMix64(state: 42)
        let alphabet: [UInt8] = Array("/./a/b/..//etc/hosts/tmp/x".utf8) + [0, 0xff]
        func randomPath() -> [UInt8] {
            (0..<Int(rng.next() % 24)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
        }
        var buffer = [UInt8](repeating: 0, count: 64)
        for _ in 0..<20_000 {
            let path = randomPath()
            let other = randomPath()
            let fd = Int32(truncatingIfNeeded: Int64(rng.next() % 12) - 2)
            let choice = rng.next() % 12
            path.withUnsafeBytes { p in
                other.withUnsafeBytes { o in
                    buffer.withUnsafeMutableBytes { b in
                        switch choice {
                        case 0: _ = try? fs.openat(fd, p, flags: OpenFlags(rawValue: UInt32(truncatingIfNeeded: rng.next()) & 0o3777), mode: 0o644)
                        case 1: _ = try? fs.mkdirat(fd, p, mode: 0o755)
                        case 2: _ = try? fs.unlinkat(fd, p, flags: rng.next() % 2 == 0 ? [] : .AT_REMOVEDIR)
                        case 3: _ = try? fs.renameat2(fd, p, cwd, o, flags: UInt32(rng.next() % 4))
                        case 4: _ = try? fs.symlinkat(o, fd, p)
                        case 5: _ = try? fs.linkat(fd, p, cwd, o, flags: [])
                        case 6: _ = try? fs.getdents64(fd, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<Int(rng.next() % 64)]))
                        case 7: _ = try? fs.write(fd, UnsafeRawBufferPointer(b))
                        case 8: _ = try? fs.read(fd, into: b)
                        case 9: _ = try? fs.close(fd)
                        case 10: _ = try? fs.chdir(p)
                        default: _ = try? fs.lseek(fd, Int64(bitPattern: rng.next()) >> 40, whence: Int32(rng.next() % 6))
                        }
                    }
                }
            }
        }
        // Whatever happened, the image is intact and the root lists.
        XCTAssertEqual(image.contents("/etc/hosts"), imageFiles[1].bytes)
        try fs.chdir("/")
        XCTAssertGreaterThan(try fs.list("/").count, 2)
    }
}

/// Deterministic pseudo-random generator (SplitMix64).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

final class DescriptorDirectoryTests: XCTestCase {
    func testProcSelfFdFollowsTheDescriptorTable() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        try withPath("/proc/self/fd") { (p) throws(Errno) in try fs.addSynthetic(path: p, .descriptorDirectory) }
        try fs.installConsole(fd: 0, id: ConsoleID.stdin, flags: .O_RDONLY)
        try fs.chdir("/usr")
        let hosts = try fs.open("../etc/./hosts")
        let tmp = try fs.open("/tmp/new", [.O_CREAT, .O_WRONLY])
        let dir = try fs.open("/usr/share", .O_DIRECTORY)
        XCTAssertEqual(try fs.readlink("/proc/self/fd/\(hosts)"), "/etc/hosts", "normalized absolute path")
        XCTAssertEqual(try fs.readlink("/proc/self/fd/\(tmp)"), "/tmp/new")
        XCTAssertEqual(try fs.readlink("/proc/self/fd/\(dir)"), "/usr/share")
        XCTAssertEqual(try fs.readlink("/proc/self/fd/0"), "pipe:[0]", "the host names consoles")
        XCTAssertEqual(try fs.lstat("/proc/self/fd/\(hosts)").mode, FileMode.S_IFLNK | 0o500)
        XCTAssertEqual(try fs.lstat("/proc/self/fd/\(tmp)").mode, FileMode.S_IFLNK | 0o300)
        // Opening through the link opens the file it names.
        let again = try fs.open("/proc/self/fd/\(hosts)")
        XCTAssertEqual(try fs.read(again), image.contents("/etc/hosts"))

        XCTAssertEqual([hosts, tmp, dir, again], [1, 2, 3, 4])
        // list() opens the directory itself as 5, which the listing shows too, as on Linux.
        XCTAssertEqual(try fs.list("/proc/self/fd"), [".", "..", "0", "1", "2", "3", "4", "5"])
        try fs.close(tmp)
        XCTAssertErrno(.ENOENT) { () throws(Errno) in _ = try fs.readlink("/proc/self/fd/\(tmp)") }
        _ = try fs.duplicate2(hosts, 9)
        XCTAssertEqual(try fs.readlink("/proc/self/fd/9"), "/etc/hosts")
        try fs.chdir("/")
        XCTAssertEqual(try fs.readlink("/proc/self/fd/\(dir)"), "/usr/share", "a directory keeps its own path")
    }

    func testDescriptorPathsAreNormalizedLexically() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        try withPath("/proc/self/fd") { (p) throws(Errno) in try fs.addSynthetic(path: p, .descriptorDirectory) }
        try fs.chdir("/usr")
        let above = try fs.open("../../..//etc/./../etc//hosts")
        XCTAssertEqual(try fs.readlink("/proc/self/fd/\(above)"), "/etc/hosts", "\"..\" stops at the root")
        let absolute = try fs.open("//etc/hosts")
        XCTAssertEqual(try fs.readlink("/proc/self/fd/\(absolute)"), "/etc/hosts")
        let created = try fs.open("share/../../tmp/./made", [.O_CREAT, .O_WRONLY])
        XCTAssertEqual(try fs.readlink("/proc/self/fd/\(created)"), "/tmp/made")
    }
}

final class ReadOnlyTreeTests: XCTestCase {
    func testReadOnlyTreeRefusesChangesWithEROFS() throws {
        let image = try ImageBuffer(readOnly: ["/usr/share"])
        var fs = image.mount()
        XCTAssertEqual(try fs.read(try fs.open("/usr/share/doc/notes")), Array("notes\n".utf8), "reads work")
        XCTAssertErrno(.EROFS) { () throws(Errno) in _ = try fs.open("/usr/share/doc/notes", .O_WRONLY) }
        XCTAssertErrno(.EROFS) { () throws(Errno) in _ = try fs.open("/usr/share/doc/notes", .O_TRUNC) }
        XCTAssertErrno(.EROFS) { () throws(Errno) in _ = try fs.open("/usr/share/doc/new", [.O_CREAT, .O_WRONLY]) }
        XCTAssertErrno(.EEXIST) { () throws(Errno) in try fs.mkdir("/usr/share/doc") }
        XCTAssertErrno(.EROFS) { () throws(Errno) in try fs.mkdir("/usr/share/doc/sub") }
        XCTAssertErrno(.EROFS) { () throws(Errno) in try fs.unlink("/usr/share/doc/notes") }
        XCTAssertErrno(.EROFS) { () throws(Errno) in try fs.rmdir("/usr/share/doc") }
        XCTAssertErrno(.EROFS) { () throws(Errno) in try fs.rename("/usr/share/doc/notes", "/tmp/notes") }
        XCTAssertErrno(.EROFS) { () throws(Errno) in try fs.symlink("x", "/usr/share/link") }
        XCTAssertErrno(.EROFS) { () throws(Errno) in try fs.access("/usr/share/doc/notes", AccessMode.W_OK) }
        XCTAssertErrno(.EROFS) { () throws(Errno) in
            try withPath("/usr/share/doc/notes") { (p) throws(Errno) in try fs.fchmodat(cwd, p, mode: 0o600, flags: []) }
        }
        XCTAssertErrno(.EROFS) { () throws(Errno) in
            try withPath("/usr/share/doc/notes") { (p) throws(Errno) in try fs.truncate(p, length: 0) }
        }
        let tmp = try fs.open("/tmp/f", [.O_CREAT, .O_WRONLY])
        try fs.close(tmp)
        XCTAssertErrno(.EROFS) { () throws(Errno) in try fs.rename("/tmp/f", "/usr/share/f") }
        try fs.access("/usr/share/doc/notes", AccessMode.R_OK)
        // Outside the read-only tree everything stays writable, its parent included.
        _ = try fs.open("/usr/lib/new", [.O_CREAT, .O_WRONLY])
        try fs.mkdir("/usr/other")
        XCTAssertEqual(image.contents("/usr/share/doc/notes"), Array("notes\n".utf8))
    }
}

/// MAP_SHARED coherence: the host's pages (TestHost.mappedPages) and read/write/truncate
/// agree at every call, and the mapping holds the file.
final class SharedMappingTests: XCTestCase {
    /// Maps `fd` shared as the kernel does: the VFS call, then pages filled from the file.
    func mapShared(_ fs: inout TestFS, _ fd: Int32, length: Int, writable: Bool = true) throws -> Int {
        let node = try XCTUnwrap(try fs.beginSharedMapping(fd, writable: writable))
        var pages = [UInt8](repeating: 0, count: length)
        _ = pages.withUnsafeMutableBytes { fs.readShared(node, at: 0, into: $0) }
        fs.host.mappedPages[node] = pages
        return node
    }

    func testStoresReadsWritesAndTruncation() throws {
        var fs = try ImageBuffer().mount()
        let fd = try fs.open("/tmp/shared", [.O_CREAT, .O_RDWR])
        try fs.write(fd, "hello, world")
        let node = try mapShared(&fs, fd, length: 4096)
        XCTAssertEqual(text(Array(fs.host.mappedPages[node]![0..<12])), "hello, world")

        // A store through the mapping is what read sees.
        fs.host.mappedPages[node]![0] = UInt8(ascii: "J")
        XCTAssertEqual(text(try fs.pread(fd, count: 100, offset: 0)), "Jello, world")
        // A write is what the mapping sees.
        _ = try fs.pwrite(fd, "W", offset: 7)
        XCTAssertEqual(text(Array(fs.host.mappedPages[node]![0..<12])), "Jello, World")
        // Bytes stored past the end are not the file's; growing the file zeroes them.
        fs.host.mappedPages[node]![20] = 7
        XCTAssertEqual(try fs.fstat(fd).size, 12)
        try fs.ftruncate(fd, length: 30)
        XCTAssertEqual(fs.host.mappedPages[node]![20], 0)
        // Shrinking zeroes what the mapping shows past the new end.
        try fs.ftruncate(fd, length: 5)
        XCTAssertEqual(Array(fs.host.mappedPages[node]![5..<12]), [0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(text(try fs.pread(fd, count: 100, offset: 0)), "Jello")
    }

    func testTheMappingHoldsAnUnlinkedFileAndWritesBack() throws {
        var fs = try ImageBuffer().mount()
        let fd = try fs.open("/tmp/held", [.O_CREAT, .O_RDWR])
        try fs.write(fd, "abc")
        let node = try mapShared(&fs, fd, length: 4096)
        try fs.close(fd)
        try fs.unlink("/tmp/held")
        XCTAssertTrue(fs.isSharedMapped(node))
        fs.host.mappedPages[node]![1] = UInt8(ascii: "B")
        var buffer = [UInt8](repeating: 0, count: 3)
        XCTAssertEqual(buffer.withUnsafeMutableBytes { fs.readShared(node, at: 0, into: $0) }, 3)
        XCTAssertEqual(text(buffer), "aBc")
        fs.endSharedMapping(node)
        XCTAssertFalse(fs.isSharedMapped(node))
        // The node was freed and is reused intact.
        let again = try fs.open("/tmp/other", [.O_CREAT, .O_RDWR])
        XCTAssertEqual(try fs.fstat(again).size, 0)

        // A linked file keeps what was stored once the mapping ends.
        let kept = try fs.open("/tmp/kept", [.O_CREAT, .O_RDWR])
        try fs.write(kept, "xyz")
        let keptNode = try mapShared(&fs, kept, length: 4096)
        fs.host.mappedPages[keptNode]![2] = UInt8(ascii: "!")
        fs.endSharedMapping(keptNode)
        fs.host.mappedPages[keptNode] = nil
        XCTAssertEqual(text(try fs.pread(kept, count: 10, offset: 0)), "xy!")
    }

    /// The loader's lookup of an image file no call has touched yet (its node is made on the
    /// way), through a symlink too; a file changed in the VM has no image bytes any more.
    func testImageContentsByPath() throws {
        var fs = try ImageBuffer().mount()
        let libc = try XCTUnwrap(try withPath("/usr/lib/libc.so") { (p) throws(Errno) in try fs.imageContents(path: p) })
        XCTAssertEqual(Array(libc), (0..<4096).map { UInt8(truncatingIfNeeded: $0) })
        try fs.symlink("/usr/lib/libc.so", "/tmp/link")
        XCTAssertEqual(try withPath("/tmp/link") { (p) throws(Errno) in try fs.imageContents(path: p) }?.count, 4096)
        let fd = try fs.open("/usr/lib/libc.so", [.O_RDWR])
        _ = try fs.pwrite(fd, "x", offset: 0)
        XCTAssertNil(try withPath("/usr/lib/libc.so") { (p) throws(Errno) in try fs.imageContents(path: p) })
    }

    func testPermissionsAndImageFiles() throws {
        var fs = try ImageBuffer().mount()
        let readOnly = try fs.open("/etc/hosts", [])
        XCTAssertErrno(.EACCES) { () throws(Errno) in _ = try fs.beginSharedMapping(readOnly, writable: true) }
        // A read-only mapping of an image file sees a later write through another descriptor.
        let node = try mapShared(&fs, readOnly, length: 4096, writable: false)
        let writer = try fs.open("/etc/hosts", [.O_RDWR])
        _ = try fs.pwrite(writer, "8", offset: 0)
        XCTAssertEqual(fs.host.mappedPages[node]![0], UInt8(ascii: "8"))
        let appending = try fs.open("/etc/hosts", [.O_RDWR, .O_APPEND])
        XCTAssertEqual(try fs.beginSharedMapping(appending, writable: true), node)
        // Devices are mapped privately by the host.
        let zero = try fs.open("/dev/zero", [.O_RDWR])
        XCTAssertNil(try fs.beginSharedMapping(zero, writable: true))
    }
}

