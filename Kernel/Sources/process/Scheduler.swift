import GuestABI
import KernelArch
import LinuxABI

/// One thread: its process, its user registers and FPU state while it is not running, its
/// TLS base, and what it waits for.
final class Thread {
    enum State { case runnable, waiting }

    let tid: Int32
    var process: Process
    /// A wait no signal ends (a vfork parent until its child execs or exits).
    var uninterruptible = false
    var frame = [UInt64](repeating: 0, count: SyscallFrame.wordCount)
    var fpu = [UInt8](repeating: 0, count: 512)      // fxsave image
    var fsBase: UInt64 = 0
    var gsBase: UInt64 = 0
    var state = State.runnable
    /// The futex it waits on (`FutexKey.none`: none; see `SysThread.key`) and the
    /// FUTEX_WAIT_BITSET mask.
    var futexKey = FutexKey.none
    var futexBitset: UInt32 = 0
    /// Monotonic deadline of a wait (0: none); passing it ends the wait with `timeoutResult`.
    var deadline: UInt64 = 0
    var timeoutResult: UInt64 = 0
    /// Waiting in a call that runs again when woken (its saved rip points at the syscall).
    var restarting = false
    var clearChildTid: UInt64 = 0
    var robustList: UInt64 = 0
    var rseqArea: UInt64 = 0
    /// prctl(PR_SET_NAME): at most 15 bytes; a new thread inherits its creator's.
    var name: [UInt8] = Array("app".utf8)
    /// Signal mask and signals sent to this thread (tkill/tgkill).
    var blocked: UInt64 = 0
    var pending = PendingSignals()
    /// CPU time used, in TSC ticks, up to the start of its current slice if it runs.
    var cpuTicks: UInt64 = 0
    /// Woken to run its restartable call again: that call's original deadline (0: none), so
    /// a timeout counts from the first call, not from each look.
    var resumeDeadline: UInt64? = nil
    /// nanosleep's `rem`: where the time left goes if a signal ends the sleep (0: nowhere).
    var remainderAddress: UInt64 = 0
    /// sigaltstack, per thread as on Linux (a new thread starts with none).
    var altStack = SignalStack(base: UserAddress(0), flags: SignalStack.disable, size: 0)
    /// rt_sigsuspend: the mask to go back to once a handler has run (or the wait ends).
    var suspendedMask: UInt64? = nil
    /// rt_sigtimedwait: the signals this thread waits for (0: none).
    var waitingSignals: UInt64 = 0
    /// select/pselect6 waiting: the caller's fd sets, which it cleared in the caller's memory
    /// for a timeout, for the call to look at when it runs again.
    var selectInputs: [[UInt8]]? = nil

    init(tid: Int32, process: Process) {
        self.tid = tid
        self.process = process
    }
}

/// Threads of every process on the one vCPU. Switches happen at syscalls (a blocking call,
/// sched_yield, a thread's exit, any syscall made after the thread used up its time slice
/// while another thread is runnable) and at preemptions of app code: the native platform's
/// LAPIC timer tick, and on pvm the VMM's redirect into `preempt_entry` at the deadline the
/// kernel publishes (`HostEvents`), since an interrupt there would land on the app's stack.
///
/// No thread ever blocks inside the kernel. The running thread's user state is the
/// SyscallFrame at the top of the one kernel stack plus the fxsave image below it (see
/// arch/entry.S); a switch copies that state out to the current Thread and the next thread's
/// state in, so the syscall return path resumes the other thread.
enum Scheduler {
    nonisolated(unsafe) static var threads: [Thread] = []
    nonisolated(unsafe) static var current = Thread(tid: 1, process: Process(pid: 1, memory: Memory.current, parent: nil))
    /// Address spaces no process uses any more, freed once another one is in CR3.
    nonisolated(unsafe) static var retired: [Memory] = []
    /// Set when the frame now holds another thread's state: the dispatcher must not overwrite
    /// its rax with the switched-away call's result.
    nonisolated(unsafe) static var switched = false
    /// When the running thread's slice began (TSC) and the idle ticks at that moment.
    nonisolated(unsafe) static var sliceStartTSC: UInt64 = 0
    nonisolated(unsafe) static var sliceStartIdle: UInt64 = 0
    /// The restartable call being run again, if the running thread was woken to run it: its
    /// first call's deadline (see `restartableDeadline`).
    nonisolated(unsafe) static var resumedDeadline: UInt64? = nil
    static let sliceNanos: UInt64 = 5_000_000
    /// This call sent a signal to another process: a thread after this one runs next.
    nonisolated(unsafe) static var runWokenNext = false
    /// Context switches so far (/proc/stat's ctxt).
    nonisolated(unsafe) static var switches: UInt64 = 0

    static func start(main: Thread) {
        current = main
        threads = [main]
        Processes.all = [main.process]
        sliceStartTSC = arch_rdtsc()
    }

    /// `memory` is no process's any more: freed now if it is not in CR3, else after the
    /// next switch to another address space.
    static func retire(_ memory: Memory) {
        if memory === Memory.current { retired.append(memory) } else { memory.free() }
    }

    // MARK: CPU time

    /// Charges the running thread for its slice so far (idle time excluded).
    private static func chargeCurrent() {
        let now = arch_rdtsc()
        current.cpuTicks &+= (now &- sliceStartTSC) &- (Clock.idleTicks &- sliceStartIdle)
        sliceStartTSC = now
        sliceStartIdle = Clock.idleTicks
    }

    static func cpuNanos(of t: Thread) -> UInt64 {
        var ticks = t.cpuTicks
        if t === current { ticks &+= (arch_rdtsc() &- sliceStartTSC) &- (Clock.idleTicks &- sliceStartIdle) }
        return Clock.nanoseconds(ticks: ticks)
    }

    /// At a syscall entry: whether the thread is running its restartable call again.
    static func beginSyscall() {
        // (A switch made after the last call's result was stored — a stop, a signal's
        // default action — leaves the flag set: it is about that call, not this one.)
        switched = false
        runWokenNext = false
        resumedDeadline = current.resumeDeadline
        current.resumeDeadline = nil
        if resumedDeadline == nil { current.selectInputs = nil }  // a new call
    }

    /// The deadline of a restartable wait with `timeout` nanoseconds (nil: none; result 0):
    /// the first call's deadline when the call is running again after a wake-up.
    static func restartableDeadline(_ timeout: UInt64?) -> UInt64 {
        if let resumed = resumedDeadline { return resumed }
        guard let timeout else { return 0 }
        return max(Clock.monotonicNanos &+ timeout, 1)
    }

    /// The interrupted app state of a trap becomes the frame (and FPU image) a syscall return
    /// would use, so the syscall paths (signal delivery, switching) apply to it.
    static func loadFrame(from trap: TrapFrame, fpuImage: UInt64) -> SyscallFrame {
        let frame = Scheduler.frame
        for (i, slot) in TrapFrame.slots.enumerated() { frame[slot] = trap.register(i) }
        frame[.rip] = trap.rip
        frame[.rflags] = trap.rflags
        frame[.rsp] = trap.rsp
        frame[.cs] = Platform.userCode
        frame[.ss] = Platform.userData
        fpuArea.copyMemory(from: UnsafeRawPointer(bitPattern: UInt(fpuImage))!, byteCount: 512)
        return frame
    }

    /// The native platform's timer tick while app code ran: timers fire, and a thread that
    /// used its slice gives way to another runnable one. Returns only if the interrupted
    /// thread simply continues (the trap path resumes it).
    static func timerTick(_ trap: TrapFrame, fpuImage: UInt64) {
        Timers.check()
        Serial.pollInput()
        HostEvents.takeSignals()
        Console.checkInput()
        Console.flushIfOld()
        let woke = wakeExpiredWaiters()
        let used = Clock.nanoseconds(ticks: (arch_rdtsc() &- sliceStartTSC) &- (Clock.idleTicks &- sliceStartIdle))
        let due = (used >= sliceNanos || woke) && threads.contains(where: { $0 !== current && $0.state == .runnable && !$0.process.stopped })
        let me = current
        guard due || SysSignal.hasDeliverable(me) else { return }
        let frame = loadFrame(from: trap, fpuImage: fpuImage)
        if due {
            saveCurrent()
            runNext()
            switched = false
        }
        SysSignal.deliverPending(frame)
        enter_user_with_fpu(frame.address)
    }

    /// Where the running thread's slice ends, on the monotonic clock.
    static var sliceEndNanos: UInt64 {
        Clock.nanoseconds(ticks: sliceStartTSC &- Clock.monotonicBaseTSC) &+ sliceNanos
    }

    /// Waiting threads whose deadline passed become runnable (their call returns its timeout
    /// result). Returns whether one did: a sleeper that wakes runs next, as Linux favours a
    /// thread that slept over one that computes.
    @discardableResult
    static func wakeExpiredWaiters() -> Bool {
        let now = Clock.monotonicNanos
        var woke = false
        for t in threads where t !== current && t.state == .waiting && t.deadline != 0 && t.deadline <= now {
            wake(t, result: t.timeoutResult)
            woke = true
        }
        return woke
    }

    /// Called after a syscall finished without switching: if the thread has run a whole
    /// slice and another one can run, the other one goes next (the result is in the frame).
    static func preemptIfSliceUsed(evenIfNot: Bool = false) {
        let evenIfNot = evenIfNot || runWokenNext
        runWokenNext = false
        guard threads.count > 1 else { return }
        let used = Clock.nanoseconds(ticks: (arch_rdtsc() &- sliceStartTSC) &- (Clock.idleTicks &- sliceStartIdle))
        guard used >= sliceNanos || evenIfNot, threads.contains(where: { $0 !== current && $0.state == .runnable && !$0.process.stopped }) else { return }
        saveCurrent()
        runNext()
        switched = false
    }

    static var frame: SyscallFrame { SyscallFrame.atTopOfKernelStack() }

    /// Where arch/entry.S keeps the fxsave image of the running thread during a syscall.
    static var fpuArea: UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt((frame.address - 512) & ~0xf))!
    }

    static func thread(_ tid: Int32) -> Thread? {
        for t in threads where t.tid == tid { return t }
        return nil
    }

    // MARK: state transfer

    private static func saveCurrent() {
        let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(frame.address))!
        for i in 0..<SyscallFrame.wordCount { current.frame[i] = words[i] }
        current.fpu.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(start: fpuArea, count: 512)) }
    }

    private static func restore(_ t: Thread) {
        let words = UnsafeMutablePointer<UInt64>(bitPattern: UInt(frame.address))!
        for i in 0..<SyscallFrame.wordCount { words[i] = t.frame[i] }
        t.fpu.withUnsafeBytes { fpuArea.copyMemory(from: $0.baseAddress!, byteCount: 512) }
        if t.fsBase != current.fsBase { arch_wrmsr(Platform.msrFSBase, t.fsBase) }
        if t.gsBase != current.gsBase { arch_wrmsr(Platform.msrGSBase, t.gsBase) }
        Processes.switchTo(t.process, from: current.process)
        if !retired.isEmpty && retired.allSatisfy({ $0 !== Memory.current }) {
            for memory in retired { memory.free() }
            retired = []
        }
        chargeCurrent()
        if t !== current { switches &+= 1 }
        current = t
        switched = true
    }

    /// A new thread of `process` (the caller's for a thread, a new one for fork) that
    /// resumes where the caller's syscall returns, with rax = 0.
    static func spawn(stack: UInt64, tls: UInt64?, process: Process? = nil, id: Int32? = nil) -> Thread {
        let t = Thread(tid: id ?? Processes.allocateID(), process: process ?? current.process)
        saveCurrent()
        t.frame = current.frame
        t.fpu = current.fpu
        t.frame[SyscallFrame.Slot.rax.rawValue] = 0
        if stack != 0 { t.frame[SyscallFrame.Slot.rsp.rawValue] = stack }
        t.fsBase = tls ?? current.fsBase
        t.gsBase = current.gsBase
        t.blocked = current.blocked
        t.name = current.name
        threads.append(t)
        return t
    }

    // MARK: blocking and waking

    /// Parks the running thread until `wake` (or its deadline) and runs another one. The
    /// parked thread's syscall result is set by whoever wakes it.
    static func blockCurrent(deadline: UInt64, timeoutResult: UInt64) {
        current.state = .waiting
        current.deadline = deadline
        current.timeoutResult = timeoutResult
        saveCurrent()
        runNext()
    }

    /// Parks the running thread so that its syscall runs again when it is woken (a read of
    /// an empty pipe, epoll_wait): the saved rip goes back over the 2-byte `syscall`, and
    /// rax still holds the syscall number. Passing the deadline instead returns 0.
    static func blockCurrentRestarting(deadline: UInt64, timeoutResult: UInt64 = 0) {
        current.state = .waiting
        current.deadline = deadline
        current.timeoutResult = timeoutResult
        current.restarting = true
        saveCurrent()
        current.frame[SyscallFrame.Slot.rip.rawValue] &-= 2
        current.frame[SyscallFrame.Slot.rcx.rawValue] &-= 2
        runNext()
    }

    /// Something a restarting waiter may wait for happened: all of them look again.
    static func wakeRestartingWaiters() {
        for t in threads where t.state == .waiting && t.restarting {
            t.state = .runnable
            t.restarting = false
            t.resumeDeadline = t.deadline
            t.deadline = 0
        }
    }

    /// Makes a waiting thread runnable with `result` as its syscall's return value.
    static func wake(_ t: Thread, result: UInt64) {
        let result = BlockingWrites.interrupted(t, result: result)  // a partial write: its count
        if t.restarting {  // returns instead of running again
            t.frame[SyscallFrame.Slot.rip.rawValue] &+= 2
            t.frame[SyscallFrame.Slot.rcx.rawValue] &+= 2
            t.restarting = false
        }
        if t.remainderAddress != 0 && result == Errno.EINTR.negatedReturn {
            let left = t.deadline > Clock.monotonicNanos ? t.deadline - Clock.monotonicNanos : 0
            if let out = try? UserMemory.writable(t.remainderAddress, Timespec.size) {
                try? Timespec(totalNanoseconds: Int64(clamping: left)).encode(into: out)
            }
        }
        t.remainderAddress = 0
        t.waitingSignals = 0  // an rt_sigtimedwait that ends here (timeout, EINTR) waits no more
        t.state = .runnable
        t.futexKey = .none
        t.deadline = 0
        t.frame[SyscallFrame.Slot.rax.rawValue] = result
    }

    /// sched_yield: the next runnable thread, round robin; the caller continues if none.
    static func yield(result: UInt64) {
        guard threads.count > 1 else { return }
        saveCurrent()
        current.frame[SyscallFrame.Slot.rax.rawValue] = result
        runNext()
    }

    /// The running thread's process was stopped: another thread runs; this one continues
    /// where it is (its registers as they are now) once the process is continued.
    static func parkCurrent() {
        saveCurrent()
        runNext()
    }

    /// The other threads of `process` end (exit_group, execve): their CPU time stays the
    /// process's.
    static func endOtherThreads(of process: Process) {
        for t in threads where t.process === process && t !== current { process.endedThreadsCPU &+= cpuNanos(of: t) }
        threads.removeAll { $0.process === process && $0 !== current }
    }

    /// Removes the running thread (it exited) and runs another one.
    static func exitCurrent() {
        current.process.endedThreadsCPU &+= cpuNanos(of: current)
        threads.removeAll { $0 === current }
        runNext()
    }

    /// Picks the thread after the current one that can run, waking sleepers whose deadline
    /// has passed; with none runnable, sleeps (on the host) until the earliest deadline.
    private static func runNext() {
        while true {
            Timers.check()
            Network.poll()
            Serial.pollInput()
            HostEvents.takeSignals()
            Console.checkInput()
            let now = Clock.monotonicNanos
            var earliest = min(Timers.earliestMonotonic, Network.nextDeadline)
            for t in threads where t.state == .waiting && t.deadline != 0 {
                if t.deadline <= now { wake(t, result: t.timeoutResult) } else { earliest = min(earliest, t.deadline) }
            }
            let start = threads.firstIndex { $0 === current }.map { $0 + 1 } ?? 0
            for k in 0..<threads.count {
                let t = threads[(start + k) % threads.count]
                if t.state == .runnable && !t.process.stopped {
                    restore(t)
                    return
                }
            }
            // Every thread may wait with no deadline (pause, sigsuspend, a read of an idle
            // socket): as on Linux that is waiting, not a deadlock. A host signal (Ctrl-C,
            // `kill` of apus, `--stop-timeout`), a network frame or input ends the sleep.
            Clock.sleep(untilMonotonic: earliest)
        }
    }
}
