import ImageFormat
import LinuxABI
import VFS
import XCTest

/// Permission checks for a caller that is not root, each against what Linux answers (the
/// expected errnos were taken from a native run of the same operations as uid 1000, gid 1000,
/// supplementary group 100), and root's bypasses.
final class CredentialTests: XCTestCase {
    /// uid 1000, gid 1000, also in group 100.
    let user = Credentials(uid: 1000, gid: 1000, supplementaryGroups: [100])

    /// A file system with, made as root under /t:
    ///   secret/ 0700 root, secret/f 0644; nox/ 0644 root (no search), nox/f;
    ///   f600, f644 (root), f640 and f604 (root, group 100), mine 0644 (1000, group 0);
    ///   ro/ 0755 root with ro/a 0666; w/ 0777 with w/a 0644 of 1001;
    ///   s/ 1777 with s/a 0666 of 1001, s/b of 1000, s/dir/ 0777 of 1001 holding x;
    ///   sg/ 2777 group 50; other666 0666 and other-suid 4777 of 1001;
    ///   dirA/ and dirB/ 0777, dirA/sub/ 0755 root, dirA/mysub/ 0755 of 1000.
    func makeTree() throws -> TestFS {
        let image = try ImageBuffer()
        var fs = image.mount()
        try fs.mkdir("/t", mode: 0o755)
        try fs.makeDirectory("/t/secret", 0o700)
        try fs.makeFile("/t/secret/f", 0o644)
        try fs.makeDirectory("/t/nox", 0o644)
        try fs.makeFile("/t/nox/f", 0o644)
        try fs.makeFile("/t/f600", 0o600)
        try fs.makeFile("/t/f644", 0o644)
        try fs.makeFile("/t/f640", 0o640, gid: 100)
        try fs.makeFile("/t/f604", 0o604, gid: 100)
        try fs.makeFile("/t/mine", 0o644, uid: 1000)
        try fs.makeDirectory("/t/ro", 0o755)
        try fs.makeFile("/t/ro/a", 0o666)
        try fs.makeDirectory("/t/w", 0o777)
        try fs.makeFile("/t/w/a", 0o644, uid: 1001)
        try fs.makeDirectory("/t/s", 0o1777)
        try fs.makeFile("/t/s/a", 0o666, uid: 1001)
        try fs.makeFile("/t/s/b", 0o644, uid: 1000)
        try fs.makeDirectory("/t/s/dir", 0o777, uid: 1001)
        try fs.makeFile("/t/s/dir/x", 0o644, uid: 1001)
        try fs.makeDirectory("/t/sg", 0o2777, gid: 50)
        try fs.makeFile("/t/other666", 0o666, uid: 1001)
        try fs.makeFile("/t/other-suid", 0o4777, uid: 1001)
        try fs.makeDirectory("/t/dirA", 0o777)
        try fs.makeDirectory("/t/dirB", 0o777)
        try fs.makeDirectory("/t/dirA/sub", 0o755)
        try fs.makeDirectory("/t/dirA/mysub", 0o755, uid: 1000)
        return fs
    }

    func testRootIsTheDefaultAndOwnsWhatItMakes() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        XCTAssertEqual(fs.credentials, Credentials.root)
        let fd = try fs.open("/tmp/f", [.O_CREAT, .O_WRONLY])
        XCTAssertEqual(try fs.fstat(fd).uid, 0)
        XCTAssertEqual(try fs.fstat(fd).gid, 0)
        XCTAssertTrue(user.isInGroup(1000) && user.isInGroup(100) && !user.isInGroup(0))
    }

    func testSearchPermissionOnEveryDirectoryOfAWalk() throws {
        var fs = try makeTree()
        fs.credentials = user
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.stat("/t/secret/f") }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.stat("/t/nox/f") }
        XCTAssertErrno(.EACCES, "a missing name behind a closed directory") { () throws(Errno) in try fs.stat("/t/nox/none") }
        XCTAssertEqual(try fs.stat("/t/nox").mode, FileMode.S_IFDIR | 0o644, "the directory itself is visible")
        XCTAssertErrno(.EACCES, "through a symlink") { () throws(Errno) in try fs.symlink("/t/secret/f", "/tmp/l"); return try fs.stat("/tmp/l") }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.open("/t/secret/f", .O_PATH) }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.chdir("/t/nox") }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.chdir("/t/secret") }
        XCTAssertErrno(.EACCES, "creating below a closed directory") { () throws(Errno) in try fs.mkdir("/t/secret/d") }
        XCTAssertEqual(try fs.stat("/").mode & FileMode.S_IFMT, FileMode.S_IFDIR)

        fs.credentials = .root
        XCTAssertEqual(try fs.stat("/t/secret/f").mode, FileMode.S_IFREG | 0o644)
        XCTAssertNoThrow(try fs.close(fs.open("/t/nox/f")))
        try fs.chdir("/t/nox")
        try fs.chdir("/t/secret")
        // A directory fd held from before is still searched with the caller's rights.
        let secret = try fs.open("/t/secret", .O_DIRECTORY)
        fs.credentials = user
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.open("f", at: secret) }
        XCTAssertErrno(.EACCES, "the cwd is searched too") { () throws(Errno) in try fs.stat("f") }
    }

    func testOpenNeedsReadAndWritePermission() throws {
        var fs = try makeTree()
        fs.credentials = user
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.open("/t/f600") }
        XCTAssertNoThrow(try fs.close(fs.open("/t/f644")))
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.open("/t/f644", .O_WRONLY) }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.open("/t/f644", .O_RDWR) }
        XCTAssertErrno(.EACCES, "O_TRUNC asks for write") { () throws(Errno) in try fs.open("/t/f644", .O_TRUNC) }
        XCTAssertErrno(.EACCES, "O_ACCMODE 3 asks for both") { () throws(Errno) in try fs.open("/t/f644", .O_ACCMODE) }
        XCTAssertNoThrow(try fs.close(fs.open("/t/f640")), "group 100 is a supplementary group")
        XCTAssertErrno(.EACCES, "the group class applies, not the others'") { () throws(Errno) in try fs.open("/t/f604") }
        XCTAssertNoThrow(try fs.close(fs.open("/t/f644", .O_PATH)), "O_PATH needs no permission on the file")
        XCTAssertNoThrow(try fs.close(fs.open("/t/w", .O_DIRECTORY)))
        XCTAssertErrno(.EACCES, "listing needs read") { () throws(Errno) in try fs.open("/t/secret", .O_DIRECTORY) }
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.open("/t/other666", .O_NOATIME) }
        XCTAssertNoThrow(try fs.close(fs.open("/t/mine", .O_NOATIME)))
        let other = try fs.open("/t/other666", .O_RDWR)
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.setStatusFlags(other, .O_NOATIME) }
        try fs.setStatusFlags(other, .O_NONBLOCK)
        XCTAssertNoThrow(try fs.close(fs.open("/dev/null", .O_RDWR)))
        XCTAssertErrno(.EACCES, "/dev/console is 0600 root") { () throws(Errno) in try fs.open("/dev/console", .O_WRONLY) }
        // The owner's class is the only one for the owner, even when it grants less.
        try fs.chmod("/t/mine", 0o077)
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.open("/t/mine") }

        fs.credentials = .root
        for flags: OpenFlags in [[], .O_RDWR, .O_TRUNC, .O_NOATIME] {
            XCTAssertNoThrow(try fs.close(fs.open("/t/f600", flags)))
        }
        XCTAssertNoThrow(try fs.close(fs.open("/t/mine")))
    }

    func testCreatingNeedsWriteAndSearchOnTheDirectory() throws {
        var fs = try makeTree()
        fs.credentials = user
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.open("/t/ro/new", [.O_CREAT, .O_WRONLY]) }
        XCTAssertNoThrow(try fs.close(fs.open("/t/ro/a", [.O_CREAT, .O_WRONLY])), "an existing file is only opened")
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.mkdir("/t/ro/d") }
        XCTAssertErrno(.EEXIST, "existence is checked first") { () throws(Errno) in try fs.mkdir("/t/ro/a") }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.symlink("x", "/t/ro/l") }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.link("/t/mine", "/t/ro/l") }
        try fs.close(fs.open("/dangling-tmp", [.O_CREAT, .O_WRONLY]))
        XCTAssertEqual(try fs.stat("/tmp/made-through-link").uid, 1000, "a dangling symlink's target, made in /tmp")

        // A file made by this open is writable whatever its mode; opened again it is not.
        let fd = try fs.open("/t/w/new444", [.O_CREAT, .O_WRONLY], mode: 0o444)
        XCTAssertEqual(try fs.write(fd, "x"), 1)
        let st = try fs.fstat(fd)
        XCTAssertEqual([st.uid, st.gid, st.mode], [1000, 1000, FileMode.S_IFREG | 0o444])
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.open("/t/w/new444", .O_WRONLY) }
        try fs.mkdir("/t/w/d")
        try fs.symlink("new444", "/t/w/l")
        XCTAssertEqual(try fs.stat("/t/w/d").uid, 1000)
        XCTAssertEqual(try fs.lstat("/t/w/l").gid, 1000)

        fs.credentials = .root
        try fs.mkdir("/t/ro/d")
        XCTAssertEqual(try fs.stat("/t/ro/d").uid, 0)
    }

    func testFilesystemIdsOwnNewNodes() throws {
        var fs = try makeTree()
        var caller = user
        caller.effectiveUID = 1000
        caller.filesystemUID = 1234
        caller.filesystemGID = 4321
        fs.credentials = caller
        try fs.mkdir("/t/w/d")
        XCTAssertEqual(try fs.stat("/t/w/d").uid, 1234)
        XCTAssertEqual(try fs.stat("/t/w/d").gid, 4321)
    }

    func testSetgidDirectoryGivesItsGroup() throws {
        var fs = try makeTree()
        fs.credentials = user
        try fs.close(fs.open("/t/sg/f", [.O_CREAT, .O_WRONLY], mode: 0o2755))
        let file = try fs.stat("/t/sg/f")
        XCTAssertEqual([file.uid, file.gid], [1000, 50])
        XCTAssertEqual(file.mode, FileMode.S_IFREG | 0o755, "setgid dropped: not of group 50")
        try fs.mkdir("/t/sg/d", mode: 0o755)
        let dir = try fs.stat("/t/sg/d")
        XCTAssertEqual([dir.uid, dir.gid], [1000, 50])
        XCTAssertEqual(dir.mode, FileMode.S_IFDIR | 0o2755, "a directory inherits setgid")
        try fs.close(fs.open("/t/sg/d/g", [.O_CREAT, .O_WRONLY], mode: 0o644))
        XCTAssertEqual(try fs.stat("/t/sg/d/g").gid, 50, "down the tree")
        try fs.symlink("f", "/t/sg/l")
        XCTAssertEqual(try fs.lstat("/t/sg/l").gid, 50)

        // A member of the group keeps the setgid bit it asked for.
        var member = user
        member.supplementaryGroups = [50]
        fs.credentials = member
        try fs.close(fs.open("/t/sg/kept", [.O_CREAT, .O_WRONLY], mode: 0o2755))
        XCTAssertEqual(try fs.stat("/t/sg/kept").mode, FileMode.S_IFREG | 0o2755)
    }

    func testRemovingAndTheStickyBit() throws {
        var fs = try makeTree()
        fs.credentials = user
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.unlink("/t/ro/a") }
        XCTAssertErrno(.ENOENT, "a missing name before permission") { () throws(Errno) in try fs.unlink("/t/ro/missing") }
        XCTAssertErrno(.EACCES, "permission before the type") { () throws(Errno) in try fs.unlink("/t/dirA") }
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.unlink("/t/s/a") }
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.rename("/t/s/a", "/t/s/a2") }
        XCTAssertErrno(.EPERM, "replacing someone else's name") { () throws(Errno) in try fs.rename("/t/s/b", "/t/s/a") }
        XCTAssertErrno(.EPERM, "before ENOTEMPTY") { () throws(Errno) in try fs.rmdir("/t/s/dir") }
        XCTAssertNoThrow(try fs.unlink("/t/s/b"), "its own file")
        XCTAssertNoThrow(try fs.unlink("/t/w/a"), "someone else's file in a directory without the sticky bit")
        XCTAssertNoThrow(try fs.unlink("/t/s/dir/x"), "the directory s/dir itself is 0777 and not sticky")

        // The owner of a sticky directory may remove anything in it.
        fs.credentials = .root
        try fs.makeDirectory("/t/mysticky", 0o1777, uid: 1000)
        try fs.makeFile("/t/mysticky/theirs", 0o644, uid: 1001)
        fs.credentials = user
        XCTAssertNoThrow(try fs.unlink("/t/mysticky/theirs"))

        fs.credentials = .root
        try fs.unlink("/t/s/a")
        try fs.rmdir("/t/s/dir")
        try fs.unlink("/t/ro/a")
    }

    func testHardLinksToOthersFilesAreProtected() throws {
        var fs = try makeTree()
        fs.credentials = user
        XCTAssertErrno(.EPERM, "not writable by the caller") { () throws(Errno) in try fs.link("/t/f644", "/t/w/l1") }
        XCTAssertErrno(.EPERM, "setuid") { () throws(Errno) in try fs.link("/t/other-suid", "/t/w/l2") }
        XCTAssertErrno(.EPERM, "before EACCES for the directory") { () throws(Errno) in try fs.link("/t/f644", "/t/ro/l") }
        XCTAssertErrno(.EPERM, "a directory") { () throws(Errno) in try fs.link("/t/dirA", "/t/w/l3") }
        XCTAssertNoThrow(try fs.link("/t/other666", "/t/w/l4"), "readable and writable: safe")
        XCTAssertNoThrow(try fs.link("/t/mine", "/t/w/l5"), "its own")
        fs.credentials = .root
        XCTAssertNoThrow(try fs.link("/t/other-suid", "/t/w/l6"))
    }

    func testRenamePermissions() throws {
        var fs = try makeTree()
        fs.credentials = user
        XCTAssertErrno(.EACCES, "a root directory moving to another parent must be writable") { () throws(Errno) in
            try fs.rename("/t/dirA/sub", "/t/dirB/sub")
        }
        XCTAssertNoThrow(try fs.rename("/t/dirA/sub", "/t/dirA/sub2"), "within its parent it need not be")
        XCTAssertNoThrow(try fs.rename("/t/dirA/mysub", "/t/dirB/mysub"))
        XCTAssertErrno(.EACCES, "from a read-only directory") { () throws(Errno) in try fs.rename("/t/ro/a", "/t/w/a2") }
        XCTAssertErrno(.EACCES, "into a read-only directory") { () throws(Errno) in try fs.rename("/t/w/a", "/t/ro/b") }
        XCTAssertErrno(.EACCES, "exchanging with a root directory across parents") { () throws(Errno) in
            try fs.rename("/t/dirB/mysub", "/t/dirA/sub2", flags: RenameFlags.RENAME_EXCHANGE)
        }
        try fs.mkdir("/t/w/emptydir")
        XCTAssertErrno(.EISDIR, "type after permission") { () throws(Errno) in try fs.rename("/t/w/a", "/t/w/emptydir") }
        try fs.rename("/t/w/a", "/t/w/a3")
        XCTAssertEqual(try fs.stat("/t/w/a3").uid, 1001, "a rename keeps the owner")
    }

    func testChmodIsTheOwners() throws {
        var fs = try makeTree()
        fs.credentials = user
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.chmod("/t/f644", 0o777) }
        let fd = try fs.open("/t/other666", .O_RDWR)
        XCTAssertErrno(.EPERM, "fchmod, even with the file open for writing") { () throws(Errno) in try fs.fchmod(fd, mode: 0o600) }
        try fs.chmod("/t/mine", 0o2755)
        XCTAssertEqual(try fs.stat("/t/mine").mode, FileMode.S_IFREG | 0o755, "setgid of a group not its own is cleared")
        try fs.chown("/t/mine", UInt32.max, 100)
        try fs.chmod("/t/mine", 0o2755)
        XCTAssertEqual(try fs.stat("/t/mine").mode, FileMode.S_IFREG | 0o2755, "setgid of its group is kept")
        try fs.chmod("/t/mine", 0o4700)
        XCTAssertEqual(try fs.stat("/t/mine").mode, FileMode.S_IFREG | 0o4700)

        fs.credentials = .root
        try fs.chmod("/t/f644", 0o2600)
        XCTAssertEqual(try fs.stat("/t/f644").mode, FileMode.S_IFREG | 0o2600, "root keeps setgid of any group")
        try fs.fchmod(fd, mode: 0o600)
    }

    func testChownRules() throws {
        var fs = try makeTree()
        try fs.makeFile("/t/mine-suid", 0o6755, uid: 1000, gid: 1000)
        try fs.makeFile("/t/mine-sgid-noexec", 0o2644, uid: 1000, gid: 1000)
        fs.credentials = user
        try fs.chown("/t/mine", UInt32.max, 100)
        XCTAssertEqual([try fs.stat("/t/mine").uid, try fs.stat("/t/mine").gid], [1000, 100])
        XCTAssertErrno(.EPERM, "a group not its own") { () throws(Errno) in try fs.chown("/t/mine", UInt32.max, 7) }
        XCTAssertErrno(.EPERM, "giving a file away") { () throws(Errno) in try fs.chown("/t/mine", 1001, UInt32.max) }
        XCTAssertNoThrow(try fs.chown("/t/mine", 1000, UInt32.max), "to itself")
        XCTAssertErrno(.EPERM, "another's file, even to its own group") { () throws(Errno) in try fs.chown("/t/other666", UInt32.max, 1001) }
        XCTAssertNoThrow(try fs.chown("/t/other666", UInt32.max, UInt32.max), "-1, -1 changes nothing")
        XCTAssertErrno(.EPERM, "-1, -1 would clear another's setuid bit") { () throws(Errno) in try fs.chown("/t/other-suid", UInt32.max, UInt32.max) }
        XCTAssertEqual(try fs.stat("/t/other-suid").mode, FileMode.S_IFREG | 0o4777)
        try fs.chown("/t/mine-sgid-noexec", UInt32.max, UInt32.max)
        XCTAssertEqual(try fs.stat("/t/mine-sgid-noexec").mode, FileMode.S_IFREG | 0o2644, "setgid without group x stays")
        try fs.chown("/t/mine-suid", UInt32.max, 100)
        XCTAssertEqual(try fs.stat("/t/mine-suid").mode, FileMode.S_IFREG | 0o755, "setuid and setgid cleared")
        let fd = try fs.open("/t/mine", .O_RDONLY)
        XCTAssertErrno(.EPERM) { () throws(Errno) in try fs.fchown(fd, uid: 0, gid: UInt32.max) }
        try fs.fchown(fd, uid: UInt32.max, gid: 1000)
        XCTAssertEqual(try fs.fstat(fd).gid, 1000)

        fs.credentials = .root
        try fs.chown("/t/mine", 1001, 7)
        XCTAssertEqual([try fs.stat("/t/mine").uid, try fs.stat("/t/mine").gid], [1001, 7], "root gives anything away")
        try fs.chown("/t/other-suid", UInt32.max, UInt32.max)
        XCTAssertEqual(try fs.stat("/t/other-suid").mode, FileMode.S_IFREG | 0o777, "even root's chown clears setuid")
        try withPath("/t/dirA") { (p) throws(Errno) in try fs.fchownat(cwd, p, uid: 1000, gid: 1000, flags: []) }
        fs.credentials = user
        XCTAssertNoThrow(try fs.open("/t/dirA/sub/../../mine", .O_PATH), "chowned directory still walks")
        XCTAssertNoThrow(try fs.chmod("/t/dirA", 0o700), "the new owner may chmod")
    }

    func testTimesAndTruncate() throws {
        var fs = try makeTree()
        fs.credentials = user
        let omit = Timespec(seconds: 0, nanoseconds: UtimeSpecial.UTIME_OMIT)
        let now = Timespec(seconds: 0, nanoseconds: UtimeSpecial.UTIME_NOW)
        let when = Timespec(seconds: 1, nanoseconds: 1)
        func utimes(_ path: String, _ times: (Timespec, Timespec)?) throws(Errno) {
            try withPath(path) { (p) throws(Errno) in try fs.utimensat(cwd, p, times: times, flags: []) }
        }
        XCTAssertErrno(.EACCES, "now needs write permission") { () throws(Errno) in try utimes("/t/f644", nil) }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try utimes("/t/f644", (now, now)) }
        XCTAssertNoThrow(try utimes("/t/other666", nil), "writable by all")
        XCTAssertNoThrow(try utimes("/t/other666", (now, now)))
        XCTAssertErrno(.EPERM, "explicit times are the owner's") { () throws(Errno) in try utimes("/t/other666", (when, when)) }
        XCTAssertErrno(.EPERM, "now and omit is not 'touch'") { () throws(Errno) in try utimes("/t/other666", (now, omit)) }
        XCTAssertNoThrow(try utimes("/t/secret/f", (omit, omit)), "both omitted: not even looked up")
        try utimes("/t/mine", (when, when))
        XCTAssertEqual(try fs.stat("/t/mine").modificationTime, when)

        XCTAssertErrno(.EACCES) { () throws(Errno) in try withPath("/t/f644") { (p) throws(Errno) in try fs.truncate(p, length: 0) } }
        try withPath("/t/other666") { (p) throws(Errno) in try fs.truncate(p, length: 0) }

        fs.credentials = .root
        try utimes("/t/f644", (when, when))
        try withPath("/t/f644") { (p) throws(Errno) in try fs.truncate(p, length: 0) }
    }

    func testWritingDropsSetuid() throws {
        var fs = try makeTree()
        try fs.makeFile("/t/suid", 0o6755, uid: 1000, gid: 1000)
        try fs.makeFile("/t/sgid-other-group", 0o2666, uid: 1000, gid: 7)
        try fs.makeFile("/t/root-suid", 0o6777)
        fs.credentials = user
        var fd = try fs.open("/t/suid", .O_WRONLY)
        try fs.write(fd, "x")
        XCTAssertEqual(try fs.fstat(fd).mode, FileMode.S_IFREG | 0o755)
        fd = try fs.open("/t/sgid-other-group", .O_WRONLY)
        try fs.write(fd, "x")
        XCTAssertEqual(try fs.fstat(fd).mode, FileMode.S_IFREG | 0o666, "setgid of a group not the writer's")
        fd = try fs.open("/t/root-suid", .O_RDWR)
        try fs.ftruncate(fd, length: 0)
        XCTAssertEqual(try fs.fstat(fd).mode, FileMode.S_IFREG | 0o777, "truncating too")

        fs.credentials = .root
        try fs.chmod("/t/suid", 0o6755)
        fd = try fs.open("/t/suid", .O_WRONLY)
        try fs.write(fd, "y")
        XCTAssertEqual(try fs.fstat(fd).mode, FileMode.S_IFREG | 0o6755, "root's writes keep the bits")
    }

    func testAccessUsesRealIds() throws {
        var fs = try makeTree()
        var setuidRoot = user
        setuidRoot.effectiveUID = 0
        setuidRoot.savedUID = 0
        setuidRoot.filesystemUID = 0
        fs.credentials = setuidRoot
        XCTAssertNoThrow(try fs.close(fs.open("/t/f600")), "opening uses the filesystem uid (0)")
        XCTAssertErrno(.EACCES, "access uses the real uid") { () throws(Errno) in try fs.access("/t/f600", AccessMode.R_OK) }
        XCTAssertErrno(.EACCES, "for the walk too") { () throws(Errno) in try fs.access("/t/secret/f", AccessMode.F_OK) }
        try withPath("/t/f600") { (p) throws(Errno) in
            try fs.faccessat(cwd, p, mode: AccessMode.R_OK | AccessMode.W_OK, flags: .AT_EACCESS)
        }
        XCTAssertEqual(fs.credentials, setuidRoot, "restored after the call")

        fs.credentials = user
        XCTAssertNoThrow(try fs.access("/t/f644", AccessMode.R_OK))
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.access("/t/f644", AccessMode.W_OK) }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.access("/t/f644", AccessMode.X_OK) }
        XCTAssertNoThrow(try fs.access("/t/w", AccessMode.R_OK | AccessMode.W_OK | AccessMode.X_OK))
        XCTAssertNoThrow(try fs.access("/t/f640", AccessMode.R_OK))
        XCTAssertErrno(.EACCES) { () throws(Errno) in try fs.access("/t/f640", AccessMode.W_OK) }

        fs.credentials = .root
        XCTAssertNoThrow(try fs.access("/t/f600", AccessMode.R_OK | AccessMode.W_OK))
        XCTAssertErrno(.EACCES, "root needs an x bit to execute") { () throws(Errno) in try fs.access("/t/f600", AccessMode.X_OK) }
        XCTAssertNoThrow(try fs.access("/t/nox", AccessMode.X_OK), "but not to search")
    }

    func testExecutable() throws {
        var fs = try makeTree()
        try fs.makeFile("/t/x644", 0o644)
        try fs.makeFile("/t/x711", 0o711)
        try fs.makeFile("/t/x100", 0o100)
        try fs.makeFile("/t/suid", 0o4755, uid: 1001, gid: 7)
        try fs.makeFile("/t/sgid-noexec", 0o2745, uid: 1001, gid: 7)
        fs.credentials = user
        func resolve(_ path: String, follow: Bool = true) throws(Errno) -> ExecutableFile {
            try withPath(path) { (p) throws(Errno) in try fs.executable(cwd, p, follow: follow) }
        }
        XCTAssertErrno(.EACCES) { () throws(Errno) in try resolve("/t/x644") }
        XCTAssertErrno(.EACCES, "the owner's x only") { () throws(Errno) in try resolve("/t/x100") }
        XCTAssertErrno(.EACCES, "a directory") { () throws(Errno) in try resolve("/t/dirA") }
        XCTAssertErrno(.EACCES, "a device") { () throws(Errno) in try resolve("/dev/null") }
        XCTAssertErrno(.EACCES, "behind a closed directory") { () throws(Errno) in try resolve("/t/secret/f") }
        XCTAssertErrno(.ENOENT) { () throws(Errno) in try resolve("/t/none") }
        XCTAssertErrno(.ELOOP) { () throws(Errno) in try resolve("/abs", follow: false) }

        let program = try resolve("/t/x711")
        XCTAssertEqual(program.mode, 0o711)
        XCTAssertFalse(program.setsUserID || program.setsGroupID)
        let suid = try resolve("/t/suid")
        XCTAssertTrue(suid.setsUserID)
        XCTAssertFalse(suid.setsGroupID)
        XCTAssertEqual([suid.uid, suid.gid], [1001, 7])
        XCTAssertFalse(try resolve("/t/sgid-noexec").setsGroupID, "setgid without group x is not set-group-ID")

        // A program written in the VM is copied out though the caller may not read it (0711).
        fs.credentials = .root
        let fd = try fs.open("/t/x711", .O_WRONLY)
        try fs.write(fd, "\u{7f}ELF-bytes")
        fs.credentials = user
        let written = try resolve("/t/x711")
        XCTAssertNil(written.imageBytes)
        XCTAssertEqual(written.copiedBytes, Array("\u{7f}ELF-bytes".utf8))
        XCTAssertErrno(.EACCES, "yet not open it for reading") { () throws(Errno) in try fs.open("/t/x711") }

        fs.credentials = .root
        XCTAssertErrno(.EACCES, "root needs some x bit") { () throws(Errno) in try resolve("/t/x644") }
        XCTAssertNoThrow(try resolve("/t/x100"))
        XCTAssertErrno(.EACCES, "a directory, even for root") { () throws(Errno) in try resolve("/t/dirA") }
    }

    func testDescriptorDirectoryBelongsToTheCaller() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        try withPath("/proc/self/fd") { (p) throws(Errno) in try fs.addSynthetic(path: p, .descriptorDirectory) }
        _ = try fs.open("/etc/hosts")
        fs.credentials = user
        let st = try fs.stat("/proc/self/fd")
        XCTAssertEqual([st.uid, st.gid, st.mode], [1000, 1000, FileMode.S_IFDIR | 0o500])
        XCTAssertEqual(try fs.list("/proc/self/fd"), [".", "..", "0", "1"])
        XCTAssertEqual(try fs.contents("/proc/self/fd/0"), imageFiles[1].bytes)
    }
}

/// Setting up a tree as root.
extension FileSystem {
    mutating func chmod(_ path: String, _ mode: UInt32) throws(Errno) {
        try withPath(path) { (p) throws(Errno) in try fchmodat(AtFlags.AT_FDCWD, p, mode: mode, flags: []) }
    }

    mutating func chown(_ path: String, _ uid: UInt32, _ gid: UInt32) throws(Errno) {
        try withPath(path) { (p) throws(Errno) in try fchownat(AtFlags.AT_FDCWD, p, uid: uid, gid: gid, flags: []) }
    }

    mutating func makeFile(_ path: String, _ mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0) throws(Errno) {
        try close(open(path, [.O_CREAT, .O_EXCL, .O_WRONLY], mode: 0))
        try chown(path, uid, gid)
        try chmod(path, mode)
    }

    mutating func makeDirectory(_ path: String, _ mode: UInt32, uid: UInt32 = 0, gid: UInt32 = 0) throws(Errno) {
        try mkdir(path, mode: 0o700)
        try chown(path, uid, gid)
        try chmod(path, mode)
    }
}

/// The set*id rules, each case as a native run answered (uids shown as real, effective,
/// saved).
final class CredentialChangeTests: XCTestCase {
    func ids(_ c: Credentials) -> [UInt32] { [c.realUID, c.effectiveUID, c.savedUID, c.filesystemUID] }
    func gids(_ c: Credentials) -> [UInt32] { [c.realGID, c.effectiveGID, c.savedGID, c.filesystemGID] }
    func with(uids r: UInt32, _ e: UInt32, _ s: UInt32) -> Credentials {
        var c = Credentials(uid: r, gid: 0)
        c.effectiveUID = e
        c.savedUID = s
        c.filesystemUID = e
        return c
    }

    func testSetUID() {
        var c = Credentials.root
        XCTAssertNoThrow(try c.setUID(1000))
        XCTAssertEqual(ids(c), [1000, 1000, 1000, 1000], "root sets all four")
        XCTAssertErrno(.EPERM, "and cannot come back") { () throws(Errno) in try c.setUID(0) }
        XCTAssertErrno(.EINVAL) { () throws(Errno) in try c.setUID(UInt32.max) }

        c = with(uids: 1000, 0, 0)  // a set-user-ID root program
        XCTAssertNoThrow(try c.setUID(1000))
        XCTAssertEqual(ids(c), [1000, 1000, 1000, 1000], "an effective uid of 0 is root: all four")
        XCTAssertErrno(.EPERM) { () throws(Errno) in try c.setRESUID(real: UInt32.max, effective: 0, saved: UInt32.max) }

        c = with(uids: 1000, 1001, 1002)
        XCTAssertNoThrow(try c.setUID(1002))
        XCTAssertEqual(ids(c), [1000, 1002, 1002, 1002], "the saved uid, effective only")
        XCTAssertErrno(.EPERM, "the old effective uid is gone") { () throws(Errno) in try c.setUID(1001) }
    }

    func testSetRESUIDKeepsTheWayBack() {
        var c = Credentials.root
        XCTAssertNoThrow(try c.setRESUID(real: 1000, effective: 1000, saved: 0))
        XCTAssertEqual(ids(c), [1000, 1000, 0, 1000])
        XCTAssertNoThrow(try c.setRESUID(real: UInt32.max, effective: 0, saved: UInt32.max), "0 is the saved uid")
        XCTAssertEqual(ids(c), [1000, 0, 0, 0])
        XCTAssertNoThrow(try c.setUID(0))
        XCTAssertEqual(ids(c), [0, 0, 0, 0])
        c = with(uids: 1000, 1000, 1000)
        XCTAssertErrno(.EPERM) { () throws(Errno) in try c.setRESUID(real: 1000, effective: 1000, saved: 5) }
        XCTAssertEqual(ids(c), [1000, 1000, 1000, 1000], "nothing changed")
    }

    func testSetREUID() {
        var c = with(uids: 1000, 1000, 1000)
        XCTAssertErrno(.EPERM) { () throws(Errno) in try c.setREUID(real: UInt32.max, effective: 1001) }
        c = Credentials.root
        XCTAssertNoThrow(try c.setREUID(real: UInt32.max, effective: 1000))
        XCTAssertEqual(ids(c), [0, 1000, 1000, 1000], "an effective uid other than the real one is saved too")
        XCTAssertNoThrow(try c.setREUID(real: UInt32.max, effective: 0), "0 is the real uid")
        XCTAssertEqual(ids(c), [0, 0, 1000, 0], "back to the real uid: the saved one stays")
        c = with(uids: 1000, 1001, 1002)
        XCTAssertNoThrow(try c.setREUID(real: 1001, effective: 1000), "swapping real and effective")
        XCTAssertEqual(ids(c), [1001, 1000, 1000, 1000])
    }

    func testGroupIDs() {
        var c = Credentials(uid: 1000, gid: 0)
        c.realGID = 5
        c.effectiveGID = 6
        c.savedGID = 7
        c.filesystemGID = 6
        XCTAssertNoThrow(try c.setGID(7))
        XCTAssertEqual(gids(c), [5, 7, 7, 7])
        XCTAssertErrno(.EPERM) { () throws(Errno) in try c.setGID(6) }
        XCTAssertErrno(.EPERM) { () throws(Errno) in try c.setRESGID(real: 9, effective: UInt32.max, saved: UInt32.max) }
        XCTAssertNoThrow(try c.setREGID(real: 7, effective: 5))
        XCTAssertEqual(gids(c), [7, 5, 5, 5])

        // Changing group ids takes an effective uid of 0, whatever the groups are.
        c = with(uids: 1000, 0, 0)
        XCTAssertNoThrow(try c.setGID(9))
        XCTAssertEqual(gids(c), [9, 9, 9, 9])
        XCTAssertNoThrow(try c.setRESGID(real: 1, effective: 2, saved: 3))
        XCTAssertEqual(gids(c), [1, 2, 3, 2])
    }

    func testFilesystemIDs() {
        var c = with(uids: 1000, 1000, 1000)
        XCTAssertEqual(c.setFilesystemUID(0), 1000)
        XCTAssertEqual(c.filesystemUID, 1000, "not one of its ids: unchanged, no error")
        c = Credentials.root
        XCTAssertEqual(c.setFilesystemUID(5), 0)
        XCTAssertEqual(ids(c), [0, 0, 0, 5])
        XCTAssertNoThrow(try c.setRESUID(real: UInt32.max, effective: 7, saved: UInt32.max))
        XCTAssertEqual(c.filesystemUID, 7, "follows the effective uid again")
        XCTAssertEqual(c.setFilesystemGID(UInt32.max), 0)
        XCTAssertEqual(c.filesystemGID, 0)
    }

    func testSupplementaryGroups() {
        var c = Credentials.root
        XCTAssertNoThrow(try c.setSupplementaryGroups([30, 10, 20]))
        XCTAssertEqual(c.supplementaryGroups, [10, 20, 30], "sorted, as getgroups returns them")
        XCTAssertTrue(c.isInGroup(20))
        XCTAssertErrno(.EINVAL) { () throws(Errno) in
            try c.setSupplementaryGroups([UInt32](repeating: 1, count: Credentials.maxSupplementaryGroups + 1))
        }
        try? c.setUID(1000)
        XCTAssertErrno(.EPERM) { () throws(Errno) in try c.setSupplementaryGroups([1]) }
        XCTAssertEqual(c.supplementaryGroups, [10, 20, 30], "kept across setuid")
    }

    func testExecuteSetIDPrograms() throws {
        let image = try ImageBuffer()
        var fs = image.mount()
        let fd = try fs.open("/tmp/su", [.O_CREAT, .O_WRONLY], mode: 0o755)
        try fs.fchown(fd, uid: 0, gid: 42)
        try fs.fchmod(fd, mode: 0o6755)
        fs.credentials = Credentials(uid: 1000, gid: 1000)
        let program = try withPath("/tmp/su") { (p) throws(Errno) in try fs.executable(cwd, p) }

        var c = fs.credentials
        XCTAssertTrue(c.execute(program, honourSetID: true), "AT_SECURE")
        XCTAssertEqual(ids(c), [1000, 0, 0, 0])
        XCTAssertEqual(gids(c), [1000, 42, 42, 42])

        c = fs.credentials
        c.filesystemUID = 5
        XCTAssertFalse(c.execute(program, honourSetID: false))
        XCTAssertEqual(ids(c), [1000, 1000, 1000, 1000], "ignored bits: saved and filesystem ids follow the effective ones")

        let plain = try withPath("/bin/prog") { (p) throws(Errno) in try fs.executable(cwd, p) }
        c = with(uids: 1000, 1001, 1002)
        XCTAssertTrue(c.execute(plain, honourSetID: true), "effective differs from real: still secure")
        XCTAssertEqual(ids(c), [1000, 1001, 1001, 1001])
    }
}
