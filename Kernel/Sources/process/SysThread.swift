import GuestABI
import LinuxABI

/// Threads: clone/clone3 of a thread (a new process goes to SysFork), futex, exit of one
/// thread, gettid, sched_yield.
enum SysThread {
    // clone's flags (SysFork.swift names them all).
    static let CLONE_VM = SysFork.CLONE_VM, CLONE_SIGHAND = SysFork.CLONE_SIGHAND, CLONE_THREAD = SysFork.CLONE_THREAD
    static let CLONE_SETTLS = SysFork.CLONE_SETTLS, CLONE_PARENT_SETTID = SysFork.CLONE_PARENT_SETTID
    static let CLONE_CHILD_CLEARTID = SysFork.CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = SysFork.CLONE_CHILD_SETTID

    static func clone(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        // clone(flags, newsp, parent_tid, child_tid, tls) on x86-64
        try createThread(flags: a[0], stack: a[1], parentTid: a[2], childTid: a[3], tls: a[4])
    }

    /// clone3(struct clone_args *, size): flags@0 pidfd@8 child_tid@16 parent_tid@24
    /// exit_signal@32 stack@40 stack_size@48 tls@56.
    static func clone3(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[1] >= 64 else { throw .EINVAL }
        let args = try UserMemory.readable(a[0], 64)
        let stack = args.readLE(UInt64.self, at: 40), size = args.readLE(UInt64.self, at: 48)
        let flags = args.readLE(UInt64.self, at: 0), exitSignal = args.readLE(UInt64.self, at: 32)
        // Flags this kernel does not do (namespaces, pidfds, CLONE_FILES for a process…):
        // ENOSYS, on which glibc falls back to clone.
        if flags & CLONE_THREAD == 0 && flags & SysFork.unsupported != 0 { throw .ENOSYS }
        // Threads have no exit signal; a process's is a signal number (clone's low byte).
        guard exitSignal <= 64, flags & 0xff == 0, exitSignal == 0 || flags & CLONE_THREAD == 0 else { throw .EINVAL }
        // The stack grows down from its end; a range that wraps is no stack.
        let (stackEnd, wraps) = stack.addingReportingOverflow(size)
        guard !wraps else { throw .EINVAL }
        return try createThread(flags: flags | exitSignal, stack: stack == 0 ? 0 : stackEnd,
                                parentTid: args.readLE(UInt64.self, at: 24), childTid: args.readLE(UInt64.self, at: 16),
                                tls: args.readLE(UInt64.self, at: 56))
    }

    private static func createThread(flags: UInt64, stack: UInt64, parentTid: UInt64, childTid: UInt64,
                                     tls: UInt64) throws(Errno) -> UInt64 {
        // Without CLONE_THREAD: a new process (fork, vfork, posix_spawn).
        guard flags & CLONE_THREAD != 0 else {
            return try SysFork.newProcess(flags: flags, stack: stack, parentTid: parentTid, childTid: childTid, tls: tls)
        }
        // A thread shares the address space and the dispositions (Linux's rule: EINVAL).
        guard flags & CLONE_VM != 0, flags & CLONE_SIGHAND != 0 else { throw .EINVAL }
        if flags & CLONE_SETTLS != 0 && tls >= PageTable.userEnd { throw .EPERM }
        // A thread is kernel memory the app asks for (its state, FPU image): EAGAIN, as
        // Linux's clone when it cannot have one more.
        guard PhysicalMemory.canGrantAppObject else { throw .EAGAIN }
        if flags & CLONE_PARENT_SETTID != 0 { _ = try UserMemory.writable(parentTid, 4) }
        if flags & (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID) != 0 { _ = try UserMemory.writable(childTid, 4) }
        let thread = Scheduler.spawn(stack: stack, tls: flags & CLONE_SETTLS != 0 ? tls : nil)
        if flags & CLONE_PARENT_SETTID != 0 { try UserMemory.store(UInt32(bitPattern: thread.tid), parentTid) }
        if flags & CLONE_CHILD_SETTID != 0 { try UserMemory.store(UInt32(bitPattern: thread.tid), childTid) }
        if flags & CLONE_CHILD_CLEARTID != 0 { thread.clearChildTid = childTid }
        return UInt64(thread.tid)
    }

    static func gettid(_ a: SyscallArguments) throws(Errno) -> UInt64 { UInt64(Scheduler.current.tid) }

    static func setTidAddress(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        Scheduler.current.clearChildTid = a[0]
        return UInt64(Scheduler.current.tid)
    }

    static func setRobustList(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[1] == 24 else { throw .EINVAL }  // sizeof(struct robust_list_head)
        Scheduler.current.robustList = a[0]
        return 0
    }

    static func schedYield(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        Scheduler.yield(result: 0)
        return 0
    }

    /// exit: this thread ends; the last one ends the process. CLONE_CHILD_CLEARTID: the tid
    /// word is zeroed and one waiter woken (how pthread_join learns of the exit).
    static func exitThread(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let me = Scheduler.current
        guard Scheduler.threads.contains(where: { $0.process === me.process && $0 !== me }) else {
            Processes.exitCurrent(status: (a.uint32(0) & 0xff) << 8)
            return 0
        }
        if me.clearChildTid != 0, (try? UserMemory.store(UInt32(0), me.clearChildTid)) != nil {
            _ = wake(me.clearChildTid, count: 1, bitset: UInt32.max)
        }
        Scheduler.exitCurrent()
        return 0
    }

    // MARK: futex

    static let FUTEX_WAIT: Int32 = 0, FUTEX_WAKE: Int32 = 1, FUTEX_REQUEUE: Int32 = 3
    static let FUTEX_CMP_REQUEUE: Int32 = 4, FUTEX_WAKE_OP: Int32 = 5
    static let FUTEX_WAIT_BITSET: Int32 = 9, FUTEX_WAKE_BITSET: Int32 = 10
    static let FUTEX_CLOCK_REALTIME: Int32 = 256

    /// futex(uaddr, op, val, timeout | val2, uaddr2, val3).
    static func futex(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let address = a[0], op = a.int32(1), value = a.uint32(2)
        guard address & 3 == 0 else { throw .EINVAL }
        _ = try UserMemory.load(UInt32.self, address)
        switch op & 127 {
        case FUTEX_WAIT:
            return try wait(address, value, bitset: UInt32.max, timeout: a[3], absolute: false, realtime: false)
        case FUTEX_WAIT_BITSET:
            guard a.uint32(5) != 0 else { throw .EINVAL }
            return try wait(address, value, bitset: a.uint32(5), timeout: a[3], absolute: true,
                            realtime: op & FUTEX_CLOCK_REALTIME != 0)
        case FUTEX_WAKE:
            return UInt64(wake(address, count: Int(value), bitset: UInt32.max))
        case FUTEX_WAKE_BITSET:
            guard a.uint32(5) != 0 else { throw .EINVAL }
            return UInt64(wake(address, count: Int(value), bitset: a.uint32(5)))
        case FUTEX_REQUEUE, FUTEX_CMP_REQUEUE:
            if op & 127 == FUTEX_CMP_REQUEUE, try UserMemory.load(UInt32.self, address) != a.uint32(5) { throw .EAGAIN }
            let woken = wake(address, count: Int(value), bitset: UInt32.max)
            guard a[4] & 3 == 0 else { throw .EINVAL }
            _ = try UserMemory.load(UInt32.self, a[4])
                let from = key(address), to = key(a[4])
            var moved = 0
            for t in Scheduler.threads where t.state == .waiting && t.futexKey == from && moved < Int(a.uint32(3)) {
                t.futexKey = to
                moved += 1
            }
            return UInt64(woken + (op & 127 == FUTEX_CMP_REQUEUE ? moved : 0))
        case FUTEX_WAKE_OP:
            return try wakeOp(address, a[4], wakeCount: Int(value), wakeCount2: Int(a.uint32(3)), encoded: a.uint32(5))
        default:
            throw .ENOSYS  // PI futexes, FUTEX_WAIT_REQUEUE_PI, …
        }
    }

    private static func wait(_ address: UInt64, _ expected: UInt32, bitset: UInt32, timeout: UInt64,
                             absolute: Bool, realtime: Bool) throws(Errno) -> UInt64 {
        guard try UserMemory.load(UInt32.self, address) == expected else { throw .EAGAIN }
        var deadline: UInt64 = 0
        if let ns = try SysTime.timeout(timeout) {
            if absolute {
                let now = realtime ? Clock.realtimeNanos : Clock.monotonicNanos
                let remaining = ns > now ? ns - now : 0
                deadline = Clock.monotonicNanos &+ remaining  // remaining ≤ Int64.max: no wrap
            } else {
                deadline = Clock.monotonicNanos &+ ns
            }
            if deadline <= Clock.monotonicNanos { throw .ETIMEDOUT }
        }
        // With one thread nobody can wake it: only a timeout can end the wait.
        let me = Scheduler.current
        me.futexKey = key(address)
        me.futexBitset = bitset
        Scheduler.blockCurrent(deadline: deadline, timeoutResult: Errno.ETIMEDOUT.negatedReturn)
        return 0
    }

    /// What futex waiters are found by, as Linux keys them: a word in a MAP_SHARED mapping
    /// (file, anonymous, System V) by its physical address, the same in every process mapping
    /// it; any other word by its address space and address (a copy-on-write page's frame may
    /// still be another process's too). (`address` was checked readable: it has a frame.)
    static func key(_ address: UInt64) -> FutexKey {
        if let r = AddressSpace.region(containing: address), r.sharedFile >= 0 || r.sharedAnonymous {
            return FutexKey(space: 0, address: (PageTable.frame(address)?.raw ?? 0) &+ (address & 0xfff))
        }
        return FutexKey(space: Memory.current.serial, address: address)
    }

    /// Wakes up to `count` waiters on `address` (of the running process) whose bitset
    /// intersects; returns how many.
    static func wake(_ address: UInt64, count: Int, bitset: UInt32) -> Int {
        var woken = 0
        let wanted = key(address)
        for t in Scheduler.threads where woken < count && t.state == .waiting && t.futexKey == wanted
            && t.futexBitset & bitset != 0 {
            Scheduler.wake(t, result: 0)
            woken += 1
        }
        return woken
    }

    /// FUTEX_WAKE_OP: val3 = op(4 bits, bit 3 = oparg is a shift) | cmp(4) | oparg(12) | cmparg(12).
    private static func wakeOp(_ address: UInt64, _ address2: UInt64, wakeCount: Int, wakeCount2: Int,
                               encoded: UInt32) throws(Errno) -> UInt64 {
        let op = (encoded >> 28) & 7, shift = (encoded >> 31) & 1 != 0
        let cmp = (encoded >> 24) & 15
        var oparg = (encoded >> 12) & 0xfff, cmparg = encoded & 0xfff
        if oparg & 0x800 != 0 { oparg |= 0xffff_f000 }  // sign-extend 12 bits
        if cmparg & 0x800 != 0 { cmparg |= 0xffff_f000 }
        if shift { oparg = 1 << (oparg & 31) }
        let old = try UserMemory.load(UInt32.self, address2)
        let new: UInt32
        switch op {
        case 0: new = oparg                // FUTEX_OP_SET
        case 1: new = old &+ oparg         // ADD
        case 2: new = old | oparg          // OR
        case 3: new = old & ~oparg         // ANDN
        case 4: new = old ^ oparg          // XOR
        default: throw .ENOSYS
        }
        try UserMemory.store(new, address2)
        var woken = wake(address, count: wakeCount, bitset: UInt32.max)
        let o = Int32(bitPattern: old), c = Int32(bitPattern: cmparg)
        let condition: Bool
        switch cmp {
        case 0: condition = o == c
        case 1: condition = o != c
        case 2: condition = o < c
        case 3: condition = o <= c
        case 4: condition = o > c
        case 5: condition = o >= c
        default: throw .ENOSYS
        }
        if condition { woken += wake(address2, count: wakeCount2, bitset: UInt32.max) }
        return UInt64(woken)
    }
}

/// A futex's identity (`SysThread.key`): an address space's serial and a virtual address,
/// or space 0 and a physical address.
struct FutexKey: Equatable {
    var space: UInt64
    var address: UInt64
    static let none = FutexKey(space: 0, address: 0)
}
