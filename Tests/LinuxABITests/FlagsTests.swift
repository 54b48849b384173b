import Glibc
import LinuxABI
import XCTest

final class FlagsTests: XCTestCase {
    func testMmapConstantsMatchGlibc() {
        XCTAssertEqual(MmapProtection.PROT_NONE.rawValue, UInt64(PROT_NONE))
        XCTAssertEqual(MmapProtection.PROT_READ.rawValue, UInt64(PROT_READ))
        XCTAssertEqual(MmapProtection.PROT_WRITE.rawValue, UInt64(PROT_WRITE))
        XCTAssertEqual(MmapProtection.PROT_EXEC.rawValue, UInt64(PROT_EXEC))
        XCTAssertEqual(MmapProtection.PROT_GROWSDOWN.rawValue, UInt64(PROT_GROWSDOWN))
        XCTAssertEqual(MmapProtection.PROT_GROWSUP.rawValue, UInt64(PROT_GROWSUP))
        let flags: [(MmapFlags, Int32)] = [
            (.MAP_SHARED, MAP_SHARED), (.MAP_PRIVATE, MAP_PRIVATE),
            (.MAP_SHARED_VALIDATE, MAP_SHARED_VALIDATE), (.MAP_TYPE, MAP_TYPE), (.MAP_FIXED, MAP_FIXED),
            (.MAP_ANONYMOUS, MAP_ANONYMOUS), (.MAP_32BIT, MAP_32BIT), (.MAP_GROWSDOWN, MAP_GROWSDOWN),
            (.MAP_DENYWRITE, MAP_DENYWRITE), (.MAP_EXECUTABLE, MAP_EXECUTABLE), (.MAP_LOCKED, MAP_LOCKED),
            (.MAP_NORESERVE, MAP_NORESERVE), (.MAP_POPULATE, MAP_POPULATE), (.MAP_NONBLOCK, MAP_NONBLOCK),
            (.MAP_STACK, MAP_STACK), (.MAP_HUGETLB, MAP_HUGETLB), (.MAP_SYNC, MAP_SYNC),
            (.MAP_FIXED_NOREPLACE, MAP_FIXED_NOREPLACE),
        ]
        for (ours, glibc) in flags { XCTAssertEqual(ours.rawValue, UInt64(glibc)) }
        XCTAssertEqual(MmapFlags.MAP_HUGE_SHIFT, Int(MAP_HUGE_SHIFT))
        XCTAssertEqual(MmapFlags.MAP_HUGE_MASK, UInt64(MAP_HUGE_MASK))
        XCTAssertEqual(MadviseAdvice.MADV_DONTNEED, MADV_DONTNEED)
        XCTAssertEqual(MadviseAdvice.MADV_FREE, MADV_FREE)
        XCTAssertEqual(MadviseAdvice.MADV_DONTDUMP, MADV_DONTDUMP)
        XCTAssertEqual(MadviseAdvice.MADV_HUGEPAGE, MADV_HUGEPAGE)
    }

    func testMmapFlagValidation() {
        XCTAssertNil(thrownErrno { () throws(Errno) in try MmapFlags([.MAP_PRIVATE, .MAP_ANONYMOUS]).validate() })
        XCTAssertNil(thrownErrno { () throws(Errno) in try MmapFlags([.MAP_SHARED, .MAP_ANONYMOUS]).validate() })
        XCTAssertNil(thrownErrno { () throws(Errno) in try MmapFlags(rawValue: 0x01 | 0x40_0000).validate() },
                     "MAP_SHARED ignores unknown flags")
        XCTAssertEqual(thrownErrno { () throws(Errno) in try MmapFlags.MAP_ANONYMOUS.validate() }, .EINVAL,
                       "no mapping type")
        XCTAssertEqual(thrownErrno { () throws(Errno) in try MmapFlags(rawValue: 0x0f).validate() }, .EINVAL)
        XCTAssertEqual(thrownErrno { () throws(Errno) in try MmapFlags([.MAP_SHARED_VALIDATE, .MAP_SYNC]).validate() },
                       .EOPNOTSUPP)
        XCTAssertNil(thrownErrno { () throws(Errno) in try MmapFlags([.MAP_SHARED_VALIDATE, .MAP_POPULATE]).validate() })
        XCTAssertEqual(thrownErrno { () throws(Errno) in
            try MmapFlags([.MAP_SHARED_VALIDATE, .MAP_ANONYMOUS]).validate() }, .EINVAL)
        XCTAssertEqual(MmapFlags([.MAP_PRIVATE, .MAP_FIXED_NOREPLACE]).isFixed, true)
        XCTAssertEqual(MmapFlags.MAP_PRIVATE.isFixed, false)
        XCTAssertEqual(MmapFlags(rawValue: 3).mappingType, .sharedValidate)
        XCTAssertNil(MmapFlags(rawValue: 0x08).mappingType)

        XCTAssertNil(thrownErrno { () throws(Errno) in try MmapProtection([.PROT_READ, .PROT_WRITE]).validateForMprotect() })
        XCTAssertEqual(thrownErrno { () throws(Errno) in try MmapProtection(rawValue: 0x10).validateForMprotect() }, .EINVAL)
        XCTAssertEqual(thrownErrno { () throws(Errno) in
            try MmapProtection([.PROT_GROWSDOWN, .PROT_GROWSUP]).validateForMprotect() }, .EINVAL)
    }

    /// validate() against the host kernel's own mmap for the same flags (anonymous and file
    /// mappings): the same success or the same errno.
    func testMmapValidationMatchesTheHostKernel() throws {
        let path = "/tmp/linuxabi-mmap-\(getpid())"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd); unlink(path) }
        XCTAssertEqual(ftruncate(fd, 4096), 0)

        var cases: [(UInt64, Bool)] = []
        // Every mapping type except MAP_DROPPABLE (8), which Apus deliberately does not support.
        for type in UInt64(0)...15 where type != 8 {
            cases.append((type | UInt64(MAP_ANONYMOUS), true))
            cases.append((type, false))
        }
        cases += [
            (UInt64(MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN), true),
            (UInt64(MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN), true),
            (UInt64(MAP_SHARED_VALIDATE | MAP_SYNC), false),
            (UInt64(MAP_SHARED_VALIDATE | MAP_POPULATE), false),
            (UInt64(MAP_SHARED_VALIDATE) | 0x20_0000, false),
            (UInt64(MAP_SHARED) | 0x20_0000, false),
            (UInt64(MAP_SHARED | MAP_NORESERVE | MAP_STACK), false),
        ]
        for (raw, anonymous) in cases {
            let p = mmap(nil, 4096, PROT_READ, Int32(raw), anonymous ? -1 : fd, 0)
            let kernel: Errno? = p == MAP_FAILED ? Errno(errno) : nil
            if p != MAP_FAILED { munmap(p, 4096) }
            let ours = thrownErrno { () throws(Errno) in try MmapFlags(rawValue: raw).validate() }
            XCTAssertEqual(ours, kernel, "flags 0x\(String(raw, radix: 16))")
        }
    }

    func testClockIDs() {
        let pairs: [(ClockID, Int32)] = [
            (.CLOCK_REALTIME, CLOCK_REALTIME), (.CLOCK_MONOTONIC, CLOCK_MONOTONIC),
            (.CLOCK_PROCESS_CPUTIME_ID, CLOCK_PROCESS_CPUTIME_ID),
            (.CLOCK_THREAD_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID), (.CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_RAW),
            (.CLOCK_REALTIME_COARSE, CLOCK_REALTIME_COARSE), (.CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC_COARSE),
            (.CLOCK_BOOTTIME, CLOCK_BOOTTIME), (.CLOCK_REALTIME_ALARM, CLOCK_REALTIME_ALARM),
            (.CLOCK_BOOTTIME_ALARM, CLOCK_BOOTTIME_ALARM), (.CLOCK_TAI, CLOCK_TAI),
        ]
        for (ours, glibc) in pairs { XCTAssertEqual(ours.rawValue, glibc) }
        XCTAssertNil(ClockID(rawValue: 10))
        XCTAssertNil(ClockID(rawValue: 12))
        XCTAssertNil(ClockID(rawValue: -1))
        XCTAssertNil(ClockID(rawValue: .max))
        XCTAssertEqual(ClockID(rawValue: 1), .CLOCK_MONOTONIC)
        XCTAssertEqual(ClockID.TIMER_ABSTIME, TIMER_ABSTIME)
        XCTAssertEqual(IntervalTimer.ITIMER_PROF.rawValue, Int32(ITIMER_PROF.rawValue))
    }

    func testSignals() throws {
        typealias AbbrevFn = @convention(c) (Int32) -> UnsafePointer<CChar>?
        let sigabbrev = try XCTUnwrap(libcFunction("sigabbrev_np", as: AbbrevFn.self))
        for n in Int32(1)...31 {
            let signal = try XCTUnwrap(Signal(rawValue: n))
            var glibc = "SIG" + String(cString: try XCTUnwrap(sigabbrev(n)))
            if glibc == "SIGPOLL" { glibc = "SIGIO" }  // glibc prefers the alias for 29
            XCTAssertEqual(String(signal.name), glibc, "signal \(n)")
            XCTAssertFalse(signal.isRealtime)
        }
        XCTAssertEqual(Signal.SIGSEGV.rawValue, SIGSEGV)
        XCTAssertEqual(Signal.SIGKILL.rawValue, SIGKILL)
        XCTAssertEqual(Signal.SIGCHLD.rawValue, SIGCHLD)
        XCTAssertEqual(Signal.SIGSYS.rawValue, SIGSYS)
        XCTAssertEqual(Signal.SIGIOT, .SIGABRT)
        XCTAssertEqual(Signal.SIGPOLL, .SIGIO)
        XCTAssertEqual(Signal.SIGRTMIN.rawValue, 32)
        XCTAssertEqual(Signal.SIGRTMAX.rawValue, 64)
        XCTAssertEqual(String(Signal.SIGRTMIN.name), "SIGRT")
        XCTAssertTrue(Signal.SIGRTMAX.isRealtime)
        XCTAssertNil(Signal(rawValue: 0))
        XCTAssertNil(Signal(rawValue: 65))
        XCTAssertNil(Signal(rawValue: -9))

        XCTAssertEqual(Signal.SIGSEGV.defaultAction, .coreDump)
        XCTAssertEqual(Signal.SIGCHLD.defaultAction, .ignore)
        XCTAssertEqual(Signal.SIGWINCH.defaultAction, .ignore)
        XCTAssertEqual(Signal.SIGTSTP.defaultAction, .stop)
        XCTAssertEqual(Signal.SIGCONT.defaultAction, .continue)
        XCTAssertEqual(Signal.SIGTERM.defaultAction, .terminate)
        XCTAssertEqual(Signal.SIGRTMIN.defaultAction, .terminate)
        XCTAssertFalse(Signal.SIGKILL.isCatchable)
        XCTAssertTrue(Signal.SIGUSR1.isCatchable)

        var set = SignalSet()
        set.insert(.SIGHUP)
        set.insert(.SIGKILL)
        set.insert(.SIGSTOP)
        set.insert(.SIGRTMAX)
        XCTAssertEqual(set.rawValue, 1 | (1 << 8) | (1 << 18) | (1 << 63))
        XCTAssertTrue(set.contains(.SIGRTMAX))
        XCTAssertEqual(set.blockable.rawValue, 1 | (1 << 63))
        set.remove(.SIGHUP)
        XCTAssertFalse(set.contains(.SIGHUP))
        XCTAssertEqual(SignalSet.size, 8)

        XCTAssertEqual(SigprocmaskHow.SIG_BLOCK.rawValue, SIG_BLOCK)
        XCTAssertEqual(SigprocmaskHow.SIG_UNBLOCK.rawValue, SIG_UNBLOCK)
        XCTAssertEqual(SigprocmaskHow.SIG_SETMASK.rawValue, SIG_SETMASK)
        XCTAssertEqual(SigactionFlags.SA_SIGINFO.rawValue, UInt64(SA_SIGINFO))
        XCTAssertEqual(SigactionFlags.SA_ONSTACK.rawValue, UInt64(SA_ONSTACK))
        XCTAssertEqual(SigactionFlags.SA_RESTART.rawValue, UInt64(SA_RESTART))
        XCTAssertEqual(SigactionFlags.SA_NODEFER.rawValue, UInt64(SA_NODEFER))
        XCTAssertEqual(SigactionFlags.SA_RESETHAND.rawValue, UInt64(UInt32(truncatingIfNeeded: SA_RESETHAND)))
        XCTAssertEqual(SigactionFlags.SA_NOCLDSTOP.rawValue, UInt64(SA_NOCLDSTOP))
        XCTAssertEqual(SigactionFlags.SA_NOCLDWAIT.rawValue, UInt64(SA_NOCLDWAIT))
        XCTAssertEqual(WaitStatus.exited(code: 3), 0x300)
        XCTAssertEqual(WaitStatus.signaled(.SIGSEGV, coreDumped: true), 0x8b)
        XCTAssertEqual(WaitOptions.WNOHANG.rawValue, UInt32(WNOHANG))
        XCTAssertEqual(WaitOptions.WUNTRACED.rawValue, UInt32(WUNTRACED))
        XCTAssertEqual(WaitOptions.WEXITED.rawValue, UInt32(WEXITED))
        XCTAssertEqual(WaitOptions.WNOWAIT.rawValue, UInt32(WNOWAIT))
    }

    func testRlimitResources() {
        XCTAssertEqual(RlimitResource.RLIMIT_STACK.rawValue, Int32(RLIMIT_STACK.rawValue))
        XCTAssertEqual(RlimitResource.RLIMIT_NOFILE.rawValue, Int32(RLIMIT_NOFILE.rawValue))
        XCTAssertEqual(RlimitResource.RLIMIT_AS.rawValue, Int32(RLIMIT_AS.rawValue))
        XCTAssertEqual(RlimitResource.RLIMIT_CPU.rawValue, Int32(RLIMIT_CPU.rawValue))
        XCTAssertEqual(RlimitResource.RLIMIT_DATA.rawValue, Int32(RLIMIT_DATA.rawValue))
        XCTAssertEqual(RlimitResource.RLIMIT_CORE.rawValue, Int32(RLIMIT_CORE.rawValue))
        XCTAssertEqual(RlimitResource.RLIMIT_NPROC.rawValue, Int32(__RLIMIT_NPROC.rawValue))
        XCTAssertEqual(RlimitResource.RLIMIT_MEMLOCK.rawValue, Int32(__RLIMIT_MEMLOCK.rawValue))
        XCTAssertEqual(RlimitResource.RLIMIT_RTTIME.rawValue, Int32(__RLIMIT_RTTIME.rawValue))
        XCTAssertEqual(RlimitResource.allCases.count, RlimitResource.count)
        XCTAssertEqual(RlimitResource.count, Int(__RLIMIT_NLIMITS.rawValue))
        XCTAssertNil(RlimitResource(rawValue: 16))
        XCTAssertNil(RlimitResource(rawValue: -1))
        // Every resource answers getrlimit on the host.
        for resource in RlimitResource.allCases {
            var limit = rlimit()
            XCTAssertEqual(getrlimit(resource.rawValue, &limit), 0, "\(resource)")
        }
    }

    func testFileConstantsMatchGlibc() {
        XCTAssertEqual(OpenFlags.O_WRONLY.rawValue, UInt32(O_WRONLY))
        XCTAssertEqual(OpenFlags.O_RDWR.rawValue, UInt32(O_RDWR))
        XCTAssertEqual(OpenFlags.O_ACCMODE.rawValue, UInt32(O_ACCMODE))
        XCTAssertEqual(OpenFlags.O_CREAT.rawValue, UInt32(O_CREAT))
        XCTAssertEqual(OpenFlags.O_EXCL.rawValue, UInt32(O_EXCL))
        XCTAssertEqual(OpenFlags.O_NOCTTY.rawValue, UInt32(O_NOCTTY))
        XCTAssertEqual(OpenFlags.O_TRUNC.rawValue, UInt32(O_TRUNC))
        XCTAssertEqual(OpenFlags.O_APPEND.rawValue, UInt32(O_APPEND))
        XCTAssertEqual(OpenFlags.O_NONBLOCK.rawValue, UInt32(O_NONBLOCK))
        XCTAssertEqual(OpenFlags.O_DSYNC.rawValue, UInt32(O_DSYNC))
        XCTAssertEqual(OpenFlags.O_ASYNC.rawValue, UInt32(O_ASYNC))
        XCTAssertEqual(OpenFlags.O_DIRECTORY.rawValue, UInt32(O_DIRECTORY))
        XCTAssertEqual(OpenFlags.O_NOFOLLOW.rawValue, UInt32(O_NOFOLLOW))
        XCTAssertEqual(OpenFlags.O_CLOEXEC.rawValue, UInt32(O_CLOEXEC))
        XCTAssertEqual(OpenFlags.O_SYNC.rawValue, UInt32(O_SYNC))
        XCTAssertEqual(OpenFlags(rawValue: UInt32(O_RDWR | O_CREAT)).accessMode, .readWrite)
        XCTAssertEqual(OpenFlags.O_RDONLY.accessMode, .readOnly)
        XCTAssertEqual(OpenFlags.O_WRONLY.accessMode, .writeOnly)
        XCTAssertEqual(OpenFlags.O_ACCMODE.accessMode, OpenFlags.AccessMode.none)
        XCTAssertTrue(OpenFlags.O_RDONLY.isReadable)
        XCTAssertFalse(OpenFlags.O_RDONLY.isWritable)
        XCTAssertTrue(OpenFlags.O_RDWR.isWritable)

        XCTAssertEqual(AtFlags.AT_FDCWD, AT_FDCWD)
        XCTAssertEqual(AtFlags.AT_SYMLINK_NOFOLLOW.rawValue, UInt32(AT_SYMLINK_NOFOLLOW))
        XCTAssertEqual(AtFlags.AT_REMOVEDIR.rawValue, UInt32(AT_REMOVEDIR))
        XCTAssertEqual(AtFlags.AT_EACCESS.rawValue, UInt32(AT_EACCESS))
        XCTAssertEqual(AtFlags.AT_SYMLINK_FOLLOW.rawValue, UInt32(AT_SYMLINK_FOLLOW))

        XCTAssertEqual(FcntlCommand.F_DUPFD, F_DUPFD)
        XCTAssertEqual(FcntlCommand.F_GETFD, F_GETFD)
        XCTAssertEqual(FcntlCommand.F_SETFD, F_SETFD)
        XCTAssertEqual(FcntlCommand.F_GETFL, F_GETFL)
        XCTAssertEqual(FcntlCommand.F_SETFL, F_SETFL)
        XCTAssertEqual(FcntlCommand.F_GETLK, F_GETLK)
        XCTAssertEqual(FcntlCommand.F_SETLKW, F_SETLKW)
        XCTAssertEqual(FcntlCommand.F_DUPFD_CLOEXEC, F_DUPFD_CLOEXEC)
        XCTAssertEqual(FcntlCommand.FD_CLOEXEC, FD_CLOEXEC)
        XCTAssertEqual(SeekWhence.SEEK_SET.rawValue, SEEK_SET)
        XCTAssertEqual(SeekWhence.SEEK_CUR.rawValue, SEEK_CUR)
        XCTAssertEqual(SeekWhence.SEEK_END.rawValue, SEEK_END)
        XCTAssertEqual(AccessMode.R_OK, R_OK)
        XCTAssertEqual(AccessMode.W_OK, W_OK)
        XCTAssertEqual(AccessMode.X_OK, X_OK)
        XCTAssertEqual(AccessMode.F_OK, F_OK)

        XCTAssertEqual(FileMode.S_IFMT, S_IFMT)
        XCTAssertEqual(FileMode.S_IFSOCK, S_IFSOCK)
        XCTAssertEqual(FileMode.S_IFLNK, S_IFLNK)
        XCTAssertEqual(FileMode.S_IFREG, S_IFREG)
        XCTAssertEqual(FileMode.S_IFBLK, S_IFBLK)
        XCTAssertEqual(FileMode.S_IFDIR, S_IFDIR)
        XCTAssertEqual(FileMode.S_IFCHR, S_IFCHR)
        XCTAssertEqual(FileMode.S_IFIFO, S_IFIFO)
        XCTAssertEqual(FileMode.S_ISVTX, S_ISVTX)
        XCTAssertEqual(Int(DirentType.DT_REG), Int(DT_REG))
        XCTAssertEqual(Int(DirentType.DT_DIR), Int(DT_DIR))
        XCTAssertEqual(Int(DirentType.DT_LNK), Int(DT_LNK))
        XCTAssertEqual(Int(DirentType.DT_SOCK), Int(DT_SOCK))
        XCTAssertEqual(Int(DirentType.DT_FIFO), Int(DT_FIFO))
        XCTAssertEqual(DirentType.from(mode: FileMode.S_IFDIR | 0o755), DirentType.DT_DIR)
        XCTAssertEqual(DirentType.from(mode: FileMode.S_IFCHR), DirentType.DT_CHR)
        XCTAssertEqual(PollEvents.POLLIN, Int16(POLLIN))
        XCTAssertEqual(PollEvents.POLLOUT, Int16(POLLOUT))
        XCTAssertEqual(PollEvents.POLLHUP, Int16(POLLHUP))
        XCTAssertEqual(PollEvents.POLLNVAL, Int16(POLLNVAL))
        XCTAssertEqual(PollEvents.POLLWRNORM, Int16(POLLWRNORM))
    }

    /// Flag values the Glibc module hides (it is built without _GNU_SOURCE), checked by their
    /// effect on the host kernel.
    func testGNUOnlyFlagsAgainstTheHostKernel() {
        // O_PATH: an fd that cannot be read.
        let fd = open("/proc/self/exe", Int32(bitPattern: OpenFlags.O_PATH.rawValue))
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        var byte: UInt8 = 0
        XCTAssertEqual(read(fd, &byte, 1), -1)
        XCTAssertEqual(errno, EBADF)
        // AT_EMPTY_PATH: fstatat on the fd itself.
        var st = stat()
        XCTAssertEqual(fstatat(fd, "", &st, Int32(AtFlags.AT_EMPTY_PATH.rawValue)), 0)
        XCTAssertEqual(fstatat(fd, "", &st, 0), -1)
        XCTAssertEqual(errno, ENOENT)
        // The kernel reports O_LARGEFILE back in F_GETFL for 64-bit opens.
        let rfd = open("/proc/self/exe", O_RDONLY)
        defer { close(rfd) }
        XCTAssertNotEqual(UInt32(fcntl(rfd, F_GETFL)) & OpenFlags.O_LARGEFILE.rawValue, 0)
        XCTAssertNotEqual(UInt32(fcntl(fd, F_GETFL)) & OpenFlags.O_PATH.rawValue, 0)
    }

    func testIoctlAndArchPrctl() {
        XCTAssertEqual(IoctlRequest.TCGETS, UInt32(TCGETS))
        XCTAssertEqual(IoctlRequest.TCSETS, UInt32(TCSETS))
        XCTAssertEqual(IoctlRequest.TCSETSW, UInt32(TCSETSW))
        XCTAssertEqual(IoctlRequest.TCSETSF, UInt32(TCSETSF))
        XCTAssertEqual(IoctlRequest.TIOCSCTTY, UInt32(TIOCSCTTY))
        XCTAssertEqual(IoctlRequest.TIOCGPGRP, UInt32(TIOCGPGRP))
        XCTAssertEqual(IoctlRequest.TIOCSPGRP, UInt32(TIOCSPGRP))
        XCTAssertEqual(IoctlRequest.TIOCOUTQ, UInt32(TIOCOUTQ))
        XCTAssertEqual(IoctlRequest.TIOCGWINSZ, UInt32(TIOCGWINSZ))
        XCTAssertEqual(IoctlRequest.TIOCSWINSZ, UInt32(TIOCSWINSZ))
        XCTAssertEqual(IoctlRequest.FIONREAD, UInt32(FIONREAD))
        XCTAssertEqual(IoctlRequest.FIONBIO, UInt32(FIONBIO))
        XCTAssertEqual(IoctlRequest.TIOCNOTTY, UInt32(TIOCNOTTY))
        XCTAssertEqual(IoctlRequest.TIOCGSID, UInt32(TIOCGSID))
        XCTAssertEqual(IoctlRequest.FIONCLEX, UInt32(FIONCLEX))
        XCTAssertEqual(IoctlRequest.FIOCLEX, UInt32(FIOCLEX))
        XCTAssertEqual(IoctlRequest.FIOASYNC, UInt32(FIOASYNC))
        XCTAssertEqual(ArchPrctlCode(rawValue: 0x1002), .ARCH_SET_FS)
        XCTAssertEqual(ArchPrctlCode.ARCH_SET_GS.rawValue, 0x1001)
        XCTAssertEqual(ArchPrctlCode.ARCH_GET_FS.rawValue, 0x1003)
        XCTAssertEqual(ArchPrctlCode.ARCH_GET_GS.rawValue, 0x1004)
        XCTAssertNil(ArchPrctlCode(rawValue: 0x1005))
    }

    func testProcessFlags() {
        let fork = CloneFlags(rawValue: UInt64(SIGCHLD))
        XCTAssertEqual(fork.exitSignal, SIGCHLD)
        // glibc's pthread_create flags.
        let thread: CloneFlags = [.CLONE_VM, .CLONE_FS, .CLONE_FILES, .CLONE_SIGHAND, .CLONE_THREAD,
                                  .CLONE_SYSVSEM, .CLONE_SETTLS, .CLONE_PARENT_SETTID, .CLONE_CHILD_CLEARTID]
        XCTAssertEqual(thread.rawValue, 0x3d0f00)
        XCTAssertEqual(thread.exitSignal, 0)
        XCTAssertEqual(FutexOp.command(FutexOp.FUTEX_WAIT_BITSET | FutexOp.FUTEX_PRIVATE_FLAG
                                       | FutexOp.FUTEX_CLOCK_REALTIME), FutexOp.FUTEX_WAIT_BITSET)
        XCTAssertEqual(FutexOp.command(FutexOp.FUTEX_WAKE | FutexOp.FUTEX_PRIVATE_FLAG), FutexOp.FUTEX_WAKE)
        XCTAssertEqual(GetrandomFlags.GRND_NONBLOCK.rawValue, 1)
        XCTAssertEqual(MremapFlags.MREMAP_MAYMOVE.rawValue, 1)
    }

    /// The auxiliary vector keys against what the host kernel gave this test process.
    func testAuxvKeysAgainstTheHostKernel() throws {
        typealias GetauxvalFn = @convention(c) (UInt) -> UInt
        let getauxval = try XCTUnwrap(libcFunction("getauxval", as: GetauxvalFn.self))
        func aux(_ key: AuxvKey) -> UInt { getauxval(UInt(key.rawValue)) }
        XCTAssertEqual(aux(.AT_PAGESZ), UInt(sysconf(Int32(_SC_PAGESIZE))))
        XCTAssertEqual(aux(.AT_CLKTCK), UInt(sysconf(Int32(_SC_CLK_TCK))))
        XCTAssertEqual(aux(.AT_PHENT), 56, "sizeof(Elf64_Phdr)")
        XCTAssertGreaterThan(aux(.AT_PHNUM), 0)
        XCTAssertNotEqual(aux(.AT_PHDR), 0)
        XCTAssertNotEqual(aux(.AT_ENTRY), 0)
        XCTAssertEqual(aux(.AT_UID), UInt(getuid()))
        XCTAssertEqual(aux(.AT_EUID), UInt(geteuid()))
        XCTAssertEqual(aux(.AT_GID), UInt(getgid()))
        XCTAssertEqual(aux(.AT_EGID), UInt(getegid()))
        XCTAssertEqual(aux(.AT_SECURE), 0)
        let platform = try XCTUnwrap(UnsafePointer<CChar>(bitPattern: aux(.AT_PLATFORM)))
        XCTAssertEqual(String(cString: platform), String(InitialStack.platform))
        let execfn = try XCTUnwrap(UnsafePointer<CChar>(bitPattern: aux(.AT_EXECFN)))
        XCTAssertFalse(String(cString: execfn).isEmpty)
        XCTAssertNotEqual(aux(.AT_RANDOM), 0)
        let vdso = try XCTUnwrap(UnsafePointer<UInt8>(bitPattern: aux(.AT_SYSINFO_EHDR)))
        XCTAssertEqual([vdso[0], vdso[1], vdso[2], vdso[3]], [0x7f, 0x45, 0x4c, 0x46], "the vDSO's ELF header")
        XCTAssertNotEqual(aux(.AT_HWCAP), 0)
        XCTAssertGreaterThan(aux(.AT_MINSIGSTKSZ), 0)
    }
}
