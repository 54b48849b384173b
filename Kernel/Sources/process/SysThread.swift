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

    /// A thread in a restartable wait runs its call again (with its first call's deadline),
    /// as `Scheduler.wakeRestartingWaiters` does for all of them: for waits keyed by what
    /// they wait on (PI futexes, System V queues and semaphores).
    static func rerun(_ t: Thread) {
        t.state = .runnable
        t.restarting = false
        t.uninterruptible = false
        t.resumeDeadline = t.deadline
        t.deadline = 0
        t.futexKey = .none
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

    /// get_robust_list(tid, head *, length *): the head of thread `tid` (0: the caller);
    /// ESRCH for no such thread.
    static func getRobustList(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let thread: Thread
        if a.int32(0) == 0 {
            thread = Scheduler.current
        } else {
            guard let t = Scheduler.thread(a.int32(0)) else { throw .ESRCH }
            thread = t
        }
        try UserMemory.store(thread.robustList, a[1])
        try UserMemory.store(UInt64(24), a[2])
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
        releaseRobustList(of: me)
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
    static let FUTEX_LOCK_PI: Int32 = 6, FUTEX_UNLOCK_PI: Int32 = 7, FUTEX_TRYLOCK_PI: Int32 = 8
    static let FUTEX_LOCK_PI2: Int32 = 13

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
        case FUTEX_LOCK_PI, FUTEX_LOCK_PI2:
            // LOCK_PI's timeout is absolute on CLOCK_REALTIME, LOCK_PI2's on CLOCK_MONOTONIC
            // unless FUTEX_CLOCK_REALTIME.
            let realtime = op & 127 == FUTEX_LOCK_PI || op & FUTEX_CLOCK_REALTIME != 0
            return try PIFutex.lock(address, timeout: a[3], realtime: realtime, trying: false)
        case FUTEX_TRYLOCK_PI:
            return try PIFutex.lock(address, timeout: 0, realtime: false, trying: true)
        case FUTEX_UNLOCK_PI:
            return try PIFutex.unlock(address)
        default:
            throw .ENOSYS  // FUTEX_WAIT_REQUEUE_PI, FUTEX_CMP_REQUEUE_PI, FUTEX_WAITV…
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

/// The futex word of a PI or robust lock: the owner's tid in its low 30 bits, and two flags.
enum FutexWord {
    static let waiters: UInt32 = 0x8000_0000      // FUTEX_WAITERS: someone waits in the kernel
    static let ownerDied: UInt32 = 0x4000_0000    // FUTEX_OWNER_DIED
    static let tidMask: UInt32 = 0x3fff_ffff      // FUTEX_TID_MASK
}

/// Priority-inheritance futexes (FUTEX_LOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_UNLOCK_PI), as
/// glibc's PTHREAD_PRIO_INHERIT mutexes use them. The word holds the owner's tid; a
/// waiter sets FUTEX_WAITERS and waits (a restartable wait: woken, it runs LOCK_PI again
/// and takes the lock if it is free, or waits again). There is one CPU and no priorities
/// between threads here, so inheritance itself (boosting the owner) has nothing to do.
///
/// Partial, and said so: a signal does not interrupt a LOCK_PI wait without a timeout
/// (Linux runs the handler and restarts the wait, which glibc relies on: it takes any
/// other answer than ESRCH/EDEADLK for success; here the handler runs once the lock is
/// taken); one with a timeout ends with EINTR. A PI lock whose owner ends without it on a
/// robust list keeps its waiters waiting (Linux hands it to one with FUTEX_OWNER_DIED).
/// The FUTEX_*_REQUEUE_PI operations (not used by glibc's condition variables since 2.25)
/// are ENOSYS.
enum PIFutex {
    /// LOCK_PI / TRYLOCK_PI: takes a free lock (word 0, or only FUTEX_OWNER_DIED left by a
    /// dead owner, which it keeps for glibc to report EOWNERDEAD); EDEADLK if the caller
    /// owns it; ESRCH if its owner is no thread; TRYLOCK: EAGAIN if held; LOCK: waits
    /// (ETIMEDOUT past the absolute `timeout`).
    static func lock(_ address: UInt64, timeout: UInt64, realtime: Bool, trying: Bool) throws(Errno) -> UInt64 {
        let me = Scheduler.current
        let word = try UserMemory.load(UInt32.self, address)
        let owner = Int32(bitPattern: word & FutexWord.tidMask)
        let key = SysThread.key(address)
        if owner == 0 {
            let others = waiters(key).contains { $0 !== me }
            try UserMemory.store(UInt32(bitPattern: me.tid) | (word & FutexWord.ownerDied) | (others ? FutexWord.waiters : 0),
                                 address)
            return 0
        }
        if owner == me.tid { throw .EDEADLK }
        guard Scheduler.thread(owner) != nil else { throw .ESRCH }
        if trying { throw .EAGAIN }
        var remaining: UInt64? = nil
        if let ns = try SysTime.timeout(timeout) {
            let now = realtime ? Clock.realtimeNanos : Clock.monotonicNanos
            guard ns > now || Scheduler.resumedDeadline != nil else { throw .ETIMEDOUT }
            remaining = ns > now ? ns - now : 0
        }
        let deadline = Scheduler.restartableDeadline(remaining)
        if deadline != 0 && deadline <= Clock.monotonicNanos { throw .ETIMEDOUT }
        if word & FutexWord.waiters == 0 { try UserMemory.store(word | FutexWord.waiters, address) }
        me.futexKey = key
        me.futexBitset = 0  // FUTEX_WAKE does not end this wait; an unlock does
        // Without a deadline only `retry` ends the wait, and it clears the flag again.
        me.uninterruptible = deadline == 0
        Scheduler.blockCurrentRestarting(deadline: deadline, timeoutResult: Errno.ETIMEDOUT.negatedReturn)
        return 0
    }

    /// UNLOCK_PI: EPERM unless the caller owns the lock; the word becomes 0 and the waiters
    /// run LOCK_PI again (the first takes it and sets FUTEX_WAITERS for the others).
    static func unlock(_ address: UInt64) throws(Errno) -> UInt64 {
        let word = try UserMemory.load(UInt32.self, address)
        guard Int32(bitPattern: word & FutexWord.tidMask) == Scheduler.current.tid else { throw .EPERM }
        try UserMemory.store(UInt32(0), address)
        retry(SysThread.key(address))
        return 0
    }

    /// The threads waiting in LOCK_PI on `key`.
    static func waiters(_ key: FutexKey) -> [Thread] {
        Scheduler.threads.filter { $0.state == .waiting && $0.restarting && $0.futexKey == key && $0.futexBitset == 0 }
    }

    /// The LOCK_PI waiters of `key` run their call again.
    static func retry(_ key: FutexKey) {
        for t in waiters(key) { SysThread.rerun(t) }
    }
}

/// Robust futex lists (set_robust_list): when a thread ends — exit, exit_group, a fatal
/// signal, execve — every lock still on its list is marked FUTEX_OWNER_DIED with the tid
/// cleared and one waiter woken (a PI lock's waiters retry), so a pthread_mutex_lock of a
/// robust mutex elsewhere returns EOWNERDEAD.
///
/// Layout (struct robust_list_head, 24 bytes): list.next @0 (a circular list of entries,
/// each starting with its next pointer; bit 0 of a pointer marks a PI lock), futex_offset
/// @8 (from an entry to its futex word), list_op_pending @16 (an entry being added or
/// removed, handled too).
extension SysThread {
    /// Linux's ROBUST_LIST_LIMIT: a cycle in the list cannot keep the kernel walking.
    static let robustListLimit = 2048

    /// Walks `thread`'s robust list, in the running address space (its process's): the
    /// thread is the running one, or another thread of the running process.
    static func releaseRobustList(of thread: Thread) {
        let head = thread.robustList
        thread.robustList = 0
        guard head != 0, let next = try? UserMemory.load(UInt64.self, head),
              let offset = try? UserMemory.load(Int64.self, head &+ 8),
              let pending = try? UserMemory.load(UInt64.self, head &+ 16) else { return }
        var entry = next
        var walked = 0
        while entry & ~1 != head && walked < robustListLimit {
            let address = entry & ~1
            guard address != 0, let following = try? UserMemory.load(UInt64.self, address) else { break }
            // The pending entry is handled after the walk (it may be on the list too).
            if address != pending & ~1 { ownerDied(address &+ UInt64(bitPattern: offset), thread.tid, pi: entry & 1 != 0) }
            entry = following
            walked += 1
        }
        if pending & ~1 != 0 { ownerDied((pending & ~1) &+ UInt64(bitPattern: offset), thread.tid, pi: pending & 1 != 0) }
    }

    /// One lock of a dead owner: if `tid` still owns the word at `address`, it keeps only
    /// FUTEX_WAITERS and gains FUTEX_OWNER_DIED; a waiter is woken.
    private static func ownerDied(_ address: UInt64, _ tid: Int32, pi: Bool) {
        guard address & 3 == 0, let word = try? UserMemory.load(UInt32.self, address),
              word & FutexWord.tidMask == UInt32(bitPattern: tid),
              (try? UserMemory.store((word & FutexWord.waiters) | FutexWord.ownerDied, address)) != nil else { return }
        guard word & FutexWord.waiters != 0 else { return }
        let key = key(address)
        if pi || !PIFutex.waiters(key).isEmpty { PIFutex.retry(key) } else { _ = wake(address, count: 1, bitset: UInt32.max) }
    }

    /// The running process is ending or replacing its program: the robust lists of all its
    /// threads are released (while its address space is still the running one).
    static func releaseRobustLists(of process: Process) {
        for t in Scheduler.threads where t.process === process { releaseRobustList(of: t) }
    }
}

/// A futex's identity (`SysThread.key`): an address space's serial and a virtual address,
/// or space 0 and a physical address.
struct FutexKey: Equatable {
    var space: UInt64
    var address: UInt64
    static let none = FutexKey(space: 0, address: 0)
}
