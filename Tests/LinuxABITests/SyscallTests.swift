import LinuxABI
import XCTest

final class SyscallTests: XCTestCase {
    /// Numbers from the x86-64 syscall table, typed independently of the generated file.
    let known: [(Int, Int, String)] = [
        (SyscallNumber.read, 0, "read"), (SyscallNumber.write, 1, "write"),
        (SyscallNumber.open, 2, "open"), (SyscallNumber.close, 3, "close"),
        (SyscallNumber.stat, 4, "stat"), (SyscallNumber.fstat, 5, "fstat"),
        (SyscallNumber.lstat, 6, "lstat"), (SyscallNumber.poll, 7, "poll"),
        (SyscallNumber.lseek, 8, "lseek"), (SyscallNumber.mmap, 9, "mmap"),
        (SyscallNumber.mprotect, 10, "mprotect"), (SyscallNumber.munmap, 11, "munmap"),
        (SyscallNumber.brk, 12, "brk"), (SyscallNumber.rt_sigaction, 13, "rt_sigaction"),
        (SyscallNumber.rt_sigprocmask, 14, "rt_sigprocmask"),
        (SyscallNumber.rt_sigreturn, 15, "rt_sigreturn"), (SyscallNumber.ioctl, 16, "ioctl"),
        (SyscallNumber.pread64, 17, "pread64"), (SyscallNumber.pwrite64, 18, "pwrite64"),
        (SyscallNumber.readv, 19, "readv"), (SyscallNumber.writev, 20, "writev"),
        (SyscallNumber.access, 21, "access"), (SyscallNumber.pipe, 22, "pipe"),
        (SyscallNumber.select, 23, "select"), (SyscallNumber.sched_yield, 24, "sched_yield"),
        (SyscallNumber.mremap, 25, "mremap"), (SyscallNumber.msync, 26, "msync"),
        (SyscallNumber.mincore, 27, "mincore"), (SyscallNumber.madvise, 28, "madvise"),
        (SyscallNumber.dup, 32, "dup"), (SyscallNumber.dup2, 33, "dup2"),
        (SyscallNumber.pause, 34, "pause"), (SyscallNumber.nanosleep, 35, "nanosleep"),
        (SyscallNumber.getitimer, 36, "getitimer"), (SyscallNumber.alarm, 37, "alarm"),
        (SyscallNumber.setitimer, 38, "setitimer"), (SyscallNumber.getpid, 39, "getpid"),
        (SyscallNumber.sendfile, 40, "sendfile"), (SyscallNumber.socket, 41, "socket"),
        (SyscallNumber.clone, 56, "clone"), (SyscallNumber.fork, 57, "fork"),
        (SyscallNumber.vfork, 58, "vfork"), (SyscallNumber.execve, 59, "execve"),
        (SyscallNumber.exit, 60, "exit"), (SyscallNumber.wait4, 61, "wait4"),
        (SyscallNumber.kill, 62, "kill"), (SyscallNumber.uname, 63, "uname"),
        (SyscallNumber.fcntl, 72, "fcntl"), (SyscallNumber.getcwd, 79, "getcwd"),
        (SyscallNumber.gettimeofday, 96, "gettimeofday"), (SyscallNumber.getrlimit, 97, "getrlimit"),
        (SyscallNumber.getrusage, 98, "getrusage"), (SyscallNumber.sysinfo, 99, "sysinfo"),
        (SyscallNumber.times, 100, "times"), (SyscallNumber.getuid, 102, "getuid"),
        (SyscallNumber.getgid, 104, "getgid"), (SyscallNumber.geteuid, 107, "geteuid"),
        (SyscallNumber.getegid, 108, "getegid"), (SyscallNumber.setpgid, 109, "setpgid"),
        (SyscallNumber.getppid, 110, "getppid"), (SyscallNumber.getpgrp, 111, "getpgrp"),
        (SyscallNumber.setsid, 112, "setsid"), (SyscallNumber.sigaltstack, 131, "sigaltstack"),
        (SyscallNumber.arch_prctl, 158, "arch_prctl"), (SyscallNumber.gettid, 186, "gettid"),
        (SyscallNumber.time, 201, "time"), (SyscallNumber.futex, 202, "futex"),
        (SyscallNumber.sched_setaffinity, 203, "sched_setaffinity"),
        (SyscallNumber.sched_getaffinity, 204, "sched_getaffinity"),
        (SyscallNumber.set_tid_address, 218, "set_tid_address"),
        (SyscallNumber.clock_gettime, 228, "clock_gettime"),
        (SyscallNumber.clock_getres, 229, "clock_getres"),
        (SyscallNumber.clock_nanosleep, 230, "clock_nanosleep"),
        (SyscallNumber.exit_group, 231, "exit_group"), (SyscallNumber.tgkill, 234, "tgkill"),
        (SyscallNumber.openat, 257, "openat"), (SyscallNumber.newfstatat, 262, "newfstatat"),
        (SyscallNumber.readlinkat, 267, "readlinkat"), (SyscallNumber.pselect6, 270, "pselect6"),
        (SyscallNumber.ppoll, 271, "ppoll"), (SyscallNumber.set_robust_list, 273, "set_robust_list"),
        (SyscallNumber.get_robust_list, 274, "get_robust_list"),
        (SyscallNumber.prlimit64, 302, "prlimit64"), (SyscallNumber.getrandom, 318, "getrandom"),
        (SyscallNumber.statx, 332, "statx"), (SyscallNumber.rseq, 334, "rseq"),
        (SyscallNumber.pidfd_send_signal, 424, "pidfd_send_signal"),
        (SyscallNumber.clone3, 435, "clone3"), (SyscallNumber.faccessat2, 439, "faccessat2"),
        (SyscallNumber.futex_waitv, 449, "futex_waitv"), (SyscallNumber.cachestat, 451, "cachestat"),
        (SyscallNumber.fchmodat2, 452, "fchmodat2"), (SyscallNumber.mseal, 462, "mseal"),
    ]

    func testNumbersAndNames() {
        for (constant, number, name) in known {
            XCTAssertEqual(constant, number, name)
            XCTAssertEqual(syscallName(number).map(String.init), name)
        }
    }

    func testNameTableCoversTheWholeRange() {
        // 0…336 contiguous (335 uretprobe, 336 uprobe), then the unified range from 424.
        for n in 0...336 { XCTAssertNotNil(syscallName(n), "\(n)") }
        for n in 337...423 { XCTAssertNil(syscallName(n), "\(n)") }
        for n in 424...SyscallNumber.highestKnown { XCTAssertNotNil(syscallName(n), "\(n)") }
        XCTAssertGreaterThanOrEqual(SyscallNumber.highestKnown, 461)
        XCTAssertNil(syscallName(-1))
        XCTAssertNil(syscallName(SyscallNumber.highestKnown + 1))
        XCTAssertNil(syscallName(512), "x32 numbers are not x86-64 syscalls")
        XCTAssertNil(syscallName(Int.max))
        XCTAssertNil(syscallName(Int.min))
    }

    func testNamesAreUnique() {
        var seen = Set<String>()
        for n in 0...SyscallNumber.highestKnown {
            guard let name = syscallName(n) else { continue }
            XCTAssertTrue(seen.insert(String(name)).inserted, "duplicate \(name)")
        }
        XCTAssertGreaterThan(seen.count, 380)
    }

    // MARK: - Arguments

    func testThirtyTwoBitArgumentsIgnoreTheUpperHalf() {
        let call = SyscallArguments(number: SyscallNumber.write,
                                    0xdead_beef_0000_0001, 0x1234, 0xffff_ffff_ffff_fff6,
                                    0xffff_ffff_ffff_ff9c, 0x0000_0001_ffff_ffff, 0x8000_0000)
        XCTAssertEqual(call.fd(0), 1, "garbage above a 32-bit fd is ignored")
        XCTAssertEqual(call.int32(2), -10)
        XCTAssertEqual(call.fd(3), AtFlags.AT_FDCWD, "AT_FDCWD sign-extended or not is the same fd")
        XCTAssertEqual(call.fd(4), -1)
        XCTAssertEqual(call.uint32(4), 0xffff_ffff)
        XCTAssertEqual(call.int32(5), Int32.min)
        XCTAssertEqual(call.uint32(5), 0x8000_0000)
    }

    func testSixtyFourBitArguments() {
        let call = SyscallArguments(number: SyscallNumber.lseek,
                                    args: (3, 0xffff_ffff_ffff_fffe, 2, 0x7fff_ffff_f000, UInt64.max, 0))
        XCTAssertEqual(call.int(1), -2, "off_t is signed")
        XCTAssertEqual(call.size(1), 0xffff_ffff_ffff_fffe, "size_t is unsigned")
        XCTAssertEqual(call.address(3), UserAddress(0x7fff_ffff_f000))
        XCTAssertFalse(call.address(3).isNull)
        XCTAssertTrue(call.address(5).isNull)
        XCTAssertEqual(call.int(4), -1)
        XCTAssertEqual(call[4], UInt64.max)
        XCTAssertEqual(call[0], 3)
        XCTAssertEqual(call.number, 8)
    }

    func testUserAddressArithmetic() {
        XCTAssertEqual(UserAddress(0x1000).adding(0x10), UserAddress(0x1010))
        XCTAssertNil(UserAddress(UInt64.max).adding(1))
        XCTAssertLessThan(UserAddress(1), UserAddress(2))
    }

    // MARK: - Results

    func testResultEncoding() {
        XCTAssertEqual(SyscallResult.encode(Result<UInt64, Errno>.success(42)), 42)
        XCTAssertEqual(SyscallResult.encode(Result<UInt64, Errno>.failure(.ENOENT)),
                       UInt64(bitPattern: -2))
        XCTAssertEqual(SyscallResult.encodeSigned(.success(-100)), UInt64(bitPattern: -100))
        XCTAssertEqual(SyscallResult.encodeSigned(.failure(.EBADF)), UInt64(bitPattern: -9))
        // High mmap addresses are successes, not errors.
        let high: UInt64 = 0xffff_ffff_ffff_e000
        XCTAssertEqual(SyscallResult.encode(.success(high)), high)
        XCTAssertEqual(try SyscallResult.decode(high).get(), high)
        XCTAssertEqual(SyscallResult.decode(UInt64(bitPattern: -22)), .failure(.EINVAL))
        XCTAssertEqual(SyscallResult.decode(0), .success(0))
        XCTAssertEqual(SyscallResult.maxReadWriteCount, 0x7fff_f000)
    }

    func testHandlerStyle() {
        // How the kernel is expected to use the pieces: a typed handler, then one encode.
        func handleClose(_ call: SyscallArguments) throws(Errno) -> UInt64 {
            guard call.fd(0) >= 0 else { throw .EBADF }
            return 0
        }
        func dispatch(_ call: SyscallArguments) -> UInt64 {
            do { return SyscallResult.encode(.success(try handleClose(call))) }
            catch { return SyscallResult.encode(.failure(error)) }
        }
        XCTAssertEqual(dispatch(SyscallArguments(number: SyscallNumber.close, 0xffff_ffff)),
                       Errno.EBADF.negatedReturn)
        XCTAssertEqual(dispatch(SyscallArguments(number: SyscallNumber.close, 0xffff_ffff_0000_0003)), 0)
    }
}
