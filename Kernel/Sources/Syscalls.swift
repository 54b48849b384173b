import GuestABI
import KernelArch
import LinuxABI

/// The registers arch/entry.S saves on syscall entry (layout in entry.S).
struct SyscallFrame {
    enum Slot: Int {
        case r15 = 0, r14, r13, r12, rbp, rbx, r9, r8, r10, rdx, rsi, rdi, rax, rcx, r11, rip, cs, rflags, rsp, ss
    }
    static let wordCount = 20
    static let size = wordCount * 8

    let address: UInt64

    static func atTopOfKernelStack() -> SyscallFrame {
        SyscallFrame(address: arch_kernel_stack_top() - UInt64(size))
    }

    private var words: UnsafeMutablePointer<UInt64> {
        UnsafeMutablePointer(bitPattern: UInt(address))!
    }

    subscript(slot: Slot) -> UInt64 {
        get { words[slot.rawValue] }
        nonmutating set { words[slot.rawValue] = newValue }
    }

    func clear() { for i in 0..<SyscallFrame.wordCount { words[i] = 0 } }

    var arguments: SyscallArguments {
        SyscallArguments(number: Int(truncatingIfNeeded: self[.rax]),
                         args: (self[.rdi], self[.rsi], self[.rdx], self[.r10], self[.r8], self[.r9]))
    }
}

/// Called by syscall_entry with the saved registers; the result goes back in rax.
@_cdecl("syscall_dispatch")
func syscallDispatch(_ frameAddress: UInt64) {
    let frame = SyscallFrame(address: frameAddress)
    let call = frame.arguments
    Timers.check()
    Scheduler.beginSyscall()
    let caller = Scheduler.current
    // Calls that leave the caller's memory behind are traced as they start: exit, and
    // execve (its strings are in the old program's memory; a failure is traced again).
    let ends = call.number == SyscallNumber.exit || call.number == SyscallNumber.exit_group
        || call.number == SyscallNumber.execve || call.number == SyscallNumber.execveat
    if Syscalls.tracing && ends { Syscalls.trace(call, result: nil, by: caller) }
    let result: UInt64
    do {
        result = try Syscalls.handle(call)
    } catch {
        result = error.negatedReturn
    }
    if Scheduler.switched {
        // The frame now holds another thread's registers (or, after rt_sigreturn, the
        // interrupted ones), rax already set.
        Scheduler.switched = false
        if Syscalls.tracing && !ends { Syscalls.trace(call, result: nil, by: caller) }
    } else {
        frame[.rax] = result
        if Syscalls.tracing { Syscalls.trace(call, result: result, by: caller) }
        Scheduler.preemptIfSliceUsed()
    }
    HostEvents.takeSignals()
    SysSignal.deliverPending(frame)
    Console.flushIfOld()
    HostEvents.publishDeadline()
}

/// Table-driven dispatch by number to one handler per syscall, grouped by family in the
/// Sys*.swift files. Each handler takes decoded arguments and throws a Linux errno.
enum Syscalls {
    typealias Handler = (SyscallArguments) throws(Errno) -> UInt64

    static func handle(_ call: SyscallArguments) throws(Errno) -> UInt64 {
        guard let handler = handler(call.number) else {
            reportUnimplemented(call.number)
            throw .ENOSYS
        }
        return try handler(call)
    }

    static func handler(_ n: Int) -> Handler? {
        switch n {
        // Files and descriptors (SysIO.swift over the VFS)
        case SyscallNumber.read: return SysIO.read
        case SyscallNumber.write: return SysIO.write
        case SyscallNumber.pread64: return SysIO.pread64
        case SyscallNumber.pwrite64: return SysIO.pwrite64
        case SyscallNumber.readv: return SysIO.readv
        case SyscallNumber.writev: return SysIO.writev
        case SyscallNumber.lseek: return SysIO.lseek
        case SyscallNumber.sendfile: return SysIO.sendfile
        case SyscallNumber.copy_file_range: return SysIO.copyFileRange
        case SyscallNumber.splice: return SysIO.splice
        case SyscallNumber.preadv: return SysIO.preadv
        case SyscallNumber.pwritev: return SysIO.pwritev
        case SyscallNumber.ftruncate: return SysIO.ftruncate
        case SyscallNumber.truncate: return SysIO.truncate
        case SyscallNumber.fallocate: return SysIO.fallocate
        case SyscallNumber.sync_file_range: return SysIO.syncFileRange
        case SyscallNumber.fsync, SyscallNumber.fdatasync: return SysIO.fsync
        case SyscallNumber.fadvise64: return SysIO.fadvise64
        case SyscallNumber.sync: return SysProcess.zero
        case SyscallNumber.getdents64: return SysIO.getdents64
        case SyscallNumber.getdents: return SysIO.getdents
        case SyscallNumber.openat: return SysIO.openat
        case SyscallNumber.open: return SysIO.open
        case SyscallNumber.creat: return SysIO.creat
        case SyscallNumber.memfd_create: return SysMemfd.memfdCreate
        case SyscallNumber.syncfs: return SysIO.fsync
        case SyscallNumber.getxattr: return SysXattr.getxattr
        case SyscallNumber.lgetxattr: return SysXattr.lgetxattr
        case SyscallNumber.fgetxattr: return SysXattr.fgetxattr
        case SyscallNumber.listxattr: return SysXattr.listxattr
        case SyscallNumber.llistxattr: return SysXattr.llistxattr
        case SyscallNumber.flistxattr: return SysXattr.flistxattr
        case SyscallNumber.close: return SysIO.close
        case SyscallNumber.dup: return SysIO.dup
        case SyscallNumber.dup2: return SysIO.dup2
        case SyscallNumber.dup3: return SysIO.dup3
        case SyscallNumber.fcntl: return SysIO.fcntl
        case SyscallNumber.flock: return SysLocks.flock
        case SyscallNumber.ioctl: return SysIO.ioctl
        case SyscallNumber.poll: return SysIO.poll
        case SyscallNumber.ppoll: return SysIO.ppoll
        case SyscallNumber.fstat: return SysIO.fstat
        case SyscallNumber.newfstatat: return SysIO.newfstatat
        case SyscallNumber.stat: return SysIO.stat
        case SyscallNumber.statx: return SysIO.statx
        case SyscallNumber.statfs: return SysIO.statfs
        case SyscallNumber.fstatfs: return SysIO.fstatfs
        case SyscallNumber.lstat: return SysIO.lstat
        case SyscallNumber.readlink: return SysIO.readlink
        case SyscallNumber.readlinkat: return SysIO.readlinkat
        case SyscallNumber.access: return SysIO.access
        case SyscallNumber.faccessat: return SysIO.faccessat
        case SyscallNumber.faccessat2: return SysIO.faccessat2
        case SyscallNumber.fchmod: return SysIO.fchmod
        case SyscallNumber.fchmodat: return SysIO.fchmodat
        case SyscallNumber.chmod: return SysIO.chmod
        case SyscallNumber.fchown: return SysIO.fchown
        case SyscallNumber.fchownat: return SysIO.fchownat
        case SyscallNumber.chown: return SysIO.chown
        case SyscallNumber.lchown: return SysIO.lchown
        case SyscallNumber.utimensat: return SysIO.utimensat
        case SyscallNumber.mkdirat: return SysIO.mkdirat
        case SyscallNumber.mkdir: return SysIO.mkdir
        case SyscallNumber.mknodat: return SysIO.mknodat
        case SyscallNumber.mknod: return SysIO.mknod
        case SyscallNumber.unlinkat: return SysIO.unlinkat
        case SyscallNumber.unlink: return SysIO.unlink
        case SyscallNumber.rmdir: return SysIO.rmdir
        case SyscallNumber.renameat2: return SysIO.renameat2
        case SyscallNumber.renameat: return SysIO.renameat
        case SyscallNumber.rename: return SysIO.rename
        case SyscallNumber.symlinkat: return SysIO.symlinkat
        case SyscallNumber.symlink: return SysIO.symlink
        case SyscallNumber.linkat: return SysIO.linkat
        case SyscallNumber.link: return SysIO.link
        case SyscallNumber.getcwd: return SysIO.getcwd
        case SyscallNumber.chdir: return SysIO.chdir
        case SyscallNumber.fchdir: return SysIO.fchdir
        case SyscallNumber.umask: return SysIO.umask
        case SyscallNumber.close_range: return SysIO.closeRange
        case SyscallNumber.select: return SysIO.select
        case SyscallNumber.pselect6: return SysIO.pselect6
        // Pipes, eventfd, epoll (Pipes.swift)
        case SyscallNumber.pipe: return SysEvents.pipe
        case SyscallNumber.pipe2: return SysEvents.pipe2
        case SyscallNumber.eventfd: return SysEvents.eventfd
        case SyscallNumber.eventfd2: return SysEvents.eventfd2
        case SyscallNumber.epoll_create: return SysEvents.epollCreate
        case SyscallNumber.epoll_create1: return SysEvents.epollCreate1
        case SyscallNumber.epoll_ctl: return SysEvents.epollCtl
        case SyscallNumber.epoll_wait: return SysEvents.epollWait
        case SyscallNumber.epoll_pwait: return SysEvents.epollPwait
        case SyscallNumber.epoll_pwait2: return SysEvents.epollPwait2
        // Sockets (SysSocket.swift over NetStack; AF_UNIX in UnixSockets.swift)
        case SyscallNumber.socket: return Sockets.socket
        case SyscallNumber.socketpair: return Sockets.socketpair
        case SyscallNumber.bind: return Sockets.bind
        case SyscallNumber.listen: return Sockets.listen
        case SyscallNumber.accept: return Sockets.accept
        case SyscallNumber.accept4: return Sockets.accept4
        case SyscallNumber.connect: return Sockets.connect
        case SyscallNumber.shutdown: return Sockets.shutdown
        case SyscallNumber.getsockname: return Sockets.getsockname
        case SyscallNumber.getpeername: return Sockets.getpeername
        case SyscallNumber.sendto: return Sockets.sendto
        case SyscallNumber.recvfrom: return Sockets.recvfrom
        case SyscallNumber.sendmsg: return Sockets.sendmsg
        case SyscallNumber.recvmsg: return Sockets.recvmsg
        case SyscallNumber.sendmmsg: return Sockets.sendmmsg
        case SyscallNumber.recvmmsg: return Sockets.recvmmsg
        case SyscallNumber.setsockopt: return Sockets.setsockopt
        case SyscallNumber.getsockopt: return Sockets.getsockopt
        // Memory (SysMemory.swift)
        case SyscallNumber.brk: return SysMemory.brk
        case SyscallNumber.mmap: return SysMemory.mmap
        case SyscallNumber.munmap: return SysMemory.munmap
        case SyscallNumber.mprotect: return SysMemory.mprotect
        case SyscallNumber.mremap: return SysMemory.mremap
        case SyscallNumber.madvise: return SysMemory.madvise
        case SyscallNumber.msync: return SysMemory.msync
        case SyscallNumber.pkey_alloc: return SysMemory.pkeyAlloc
        case SyscallNumber.pkey_free: return SysMemory.pkeyFree
        case SyscallNumber.pkey_mprotect: return SysMemory.pkeyMprotect
        // Process and thread state (SysProcess.swift)
        case SyscallNumber.exit_group: return SysFork.exitGroup
        case SyscallNumber.arch_prctl: return SysProcess.archPrctl
        case SyscallNumber.rseq: return SysProcess.rseq
        case SyscallNumber.getpid: return SysProcess.getpid
        // Threads (SysThread.swift, Scheduler.swift)
        case SyscallNumber.exit: return SysThread.exitThread
        case SyscallNumber.clone: return SysThread.clone
        case SyscallNumber.clone3: return SysThread.clone3
        case SyscallNumber.futex: return SysThread.futex
        case SyscallNumber.gettid: return SysThread.gettid
        case SyscallNumber.set_tid_address: return SysThread.setTidAddress
        case SyscallNumber.set_robust_list: return SysThread.setRobustList
        case SyscallNumber.get_robust_list: return SysThread.getRobustList
        case SyscallNumber.sched_yield: return SysThread.schedYield
        // Processes (SysFork.swift, SysExec.swift, SysWait.swift)
        case SyscallNumber.fork: return SysFork.fork
        case SyscallNumber.vfork: return SysFork.vfork
        case SyscallNumber.execve: return SysExec.execve
        case SyscallNumber.execveat: return SysExec.execveat
        case SyscallNumber.wait4: return SysWait.wait4
        case SyscallNumber.waitid: return SysWait.waitid
        case SyscallNumber.getppid: return SysFork.getppid
        case SyscallNumber.getpriority: return SysProcess.getpriority
        case SyscallNumber.setpriority: return SysProcess.setpriority
        case SyscallNumber.shmget: return SysShm.shmget
        case SyscallNumber.shmat: return SysShm.shmat
        case SyscallNumber.shmdt: return SysShm.shmdt
        case SyscallNumber.shmctl: return SysShm.shmctl
        case SyscallNumber.msgget: return SysIPC.msgget
        case SyscallNumber.msgsnd: return SysIPC.msgsnd
        case SyscallNumber.msgrcv: return SysIPC.msgrcv
        case SyscallNumber.msgctl: return SysIPC.msgctl
        case SyscallNumber.semget: return SysIPC.semget
        case SyscallNumber.semop: return SysIPC.semop
        case SyscallNumber.semtimedop: return SysIPC.semtimedop
        case SyscallNumber.semctl: return SysIPC.semctl
        case SyscallNumber.getpgid: return SysFork.getpgid
        case SyscallNumber.getpgrp: return SysFork.getpgrp
        case SyscallNumber.setpgid: return SysFork.setpgid
        case SyscallNumber.getsid: return SysFork.getsid
        case SyscallNumber.setsid: return SysFork.setsid
        // User and group ids (SysCredentials.swift)
        case SyscallNumber.getuid: return SysCredentials.getuid
        case SyscallNumber.geteuid: return SysCredentials.geteuid
        case SyscallNumber.getgid: return SysCredentials.getgid
        case SyscallNumber.getegid: return SysCredentials.getegid
        case SyscallNumber.getresuid: return SysCredentials.getresuid
        case SyscallNumber.getresgid: return SysCredentials.getresgid
        case SyscallNumber.setuid: return SysCredentials.setuid
        case SyscallNumber.setgid: return SysCredentials.setgid
        case SyscallNumber.setreuid: return SysCredentials.setreuid
        case SyscallNumber.setregid: return SysCredentials.setregid
        case SyscallNumber.setresuid: return SysCredentials.setresuid
        case SyscallNumber.setresgid: return SysCredentials.setresgid
        case SyscallNumber.setfsuid: return SysCredentials.setfsuid
        case SyscallNumber.setfsgid: return SysCredentials.setfsgid
        case SyscallNumber.setgroups: return SysCredentials.setgroups
        case SyscallNumber.uname: return SysProcess.uname
        case SyscallNumber.sethostname: return SysProcess.sethostname
        case SyscallNumber.prlimit64: return SysProcess.prlimit64
        case SyscallNumber.getrlimit: return SysProcess.getrlimit
        case SyscallNumber.setrlimit: return SysProcess.setrlimit
        case SyscallNumber.sysinfo: return SysProcess.sysinfo
        case SyscallNumber.sched_getaffinity: return SysProcess.schedGetaffinity
        case SyscallNumber.getrandom: return SysProcess.getrandom
        case SyscallNumber.prctl: return SysProcess.prctl
        case SyscallNumber.getrusage: return SysProcess.getrusage
        case SyscallNumber.times: return SysProcess.times
        case SyscallNumber.getcpu: return SysProcess.getcpu
        case SyscallNumber.sched_setaffinity: return SysProcess.schedSetaffinity
        case SyscallNumber.getgroups: return SysCredentials.getgroups
        case SyscallNumber.capget: return SysProcess.capget
        // Time (SysTime.swift)
        case SyscallNumber.clock_gettime: return SysTime.clockGettime
        case SyscallNumber.clock_getres: return SysTime.clockGetres
        case SyscallNumber.gettimeofday: return SysTime.gettimeofday
        case SyscallNumber.time: return SysTime.time
        case SyscallNumber.nanosleep: return SysTime.nanosleep
        case SyscallNumber.clock_nanosleep: return SysTime.clockNanosleep
        // Signals (SysSignal.swift)
        case SyscallNumber.rt_sigaction: return SysSignal.rtSigaction
        case SyscallNumber.rt_sigprocmask: return SysSignal.rtSigprocmask
        case SyscallNumber.sigaltstack: return SysSignal.sigaltstack
        case SyscallNumber.rt_sigreturn: return SysSignal.rtSigreturn
        case SyscallNumber.rt_sigpending: return SysSignal.rtSigpending
        case SyscallNumber.rt_sigsuspend: return SysSignal.rtSigsuspend
        case SyscallNumber.rt_sigtimedwait: return SysSignal.rtSigtimedwait
        case SyscallNumber.pause: return SysSignal.pause
        case SyscallNumber.alarm: return SysItimers.alarm
        case SyscallNumber.setitimer: return SysItimers.setitimer
        case SyscallNumber.getitimer: return SysItimers.getitimer
        case SyscallNumber.timer_create: return SysPosixTimers.create
        case SyscallNumber.timer_settime: return SysPosixTimers.settime
        case SyscallNumber.timer_gettime: return SysPosixTimers.gettime
        case SyscallNumber.timer_getoverrun: return SysPosixTimers.getoverrun
        case SyscallNumber.timer_delete: return SysPosixTimers.delete
        case SyscallNumber.timerfd_create: return SysTimerfd.create
        case SyscallNumber.timerfd_settime: return SysTimerfd.settime
        case SyscallNumber.timerfd_gettime: return SysTimerfd.gettime
        case SyscallNumber.signalfd: return SysSignalfd.signalfd
        case SyscallNumber.signalfd4: return SysSignalfd.signalfd4
        case SyscallNumber.kill: return SysSignal.kill
        case SyscallNumber.tkill: return SysSignal.tkill
        case SyscallNumber.tgkill: return SysSignal.tgkill
        default: return nil
        }
    }

    /// `apus run --trace`: one strace-like line per syscall on the host's stderr, starting
    /// with the caller's pid ("[pid 7] ", as strace -f) .
    static var tracing: Bool { Kernel.boot.flags & BootInfo.flagTraceSyscalls != 0 }

    /// The line of `call` made by `caller`. Its memory is read only while its address space
    /// is the one in use (a call that blocked shows pointers as addresses).
    static func trace(_ call: SyscallArguments, result: UInt64?, by caller: Thread) {
        let readable = caller.process.memory === Memory.current
        let line = SyscallTrace.format(call, result: result,
            readMemory: { address, count in
                guard readable, let bytes = try? UserMemory.readable(address, count) else { return nil }
                return Array(bytes)
            },
            readString: { address in
                guard readable, let bytes = try? UserMemory.string(address) else { return nil }
                return Array(bytes)
            })
        var m = Message("[pid ")
        m.decimal(UInt64(caller.process.pid))
        m.append("] ")
        m.append(bytes: line)
        Console.kernelLine(m)
    }

    nonisolated(unsafe) static var reported: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)

    nonisolated(unsafe) static var reportedOutOfTable = false

    /// "apus: unimplemented syscall NAME (N)", once per syscall number; of the numbers
    /// outside 0..<512 (never a real syscall) only the first, so a program looping over
    /// random numbers cannot flood the host's stderr.
    static func reportUnimplemented(_ n: Int) {
        if n >= 0 && n < 512 {
            let seen = withUnsafeMutablePointer(to: &reported) {
                UnsafeMutableRawPointer($0).assumingMemoryBound(to: UInt64.self)
            }
            let bit: UInt64 = 1 << UInt64(n % 64)
            if seen[n / 64] & bit != 0 { return }
            seen[n / 64] |= bit
        } else {
            if reportedOutOfTable { return }
            reportedOutOfTable = true
        }
        var m = Message("apus: unimplemented syscall ")
        if let name = syscallName(n) { m.append(name) } else { m.append("unknown") }
        m.append(" (")
        m.decimal(n)
        m.append(")")
        Console.kernelLine(m)
    }
}
