import GuestABI
import KernelArch
import LinuxABI
import VFS

/// Signals. Dispositions are per process, masks and pending sets per thread (kill pends on
/// the process). Pending, unblocked signals are acted on when a syscall returns: a handler
/// runs on a Linux rt_sigframe (on the alternate stack with SA_ONSTACK) and returns through
/// sa_restorer's rt_sigreturn; SIG_DFL takes the default action; SIG_IGN drops the signal.
/// Faults of the app (SIGSEGV from a bad access…) go to its handler the same way
/// (deliverFault), else take the default action with a crash report.
/// Signals waiting to be taken, each with what its siginfo says. A signal sent while the same
/// one is pending is merged into it, keeping the first one's information (as Linux does for
/// the standard signals; real-time signals 32–64 do not queue here either).
struct PendingSignals {
    private(set) var bits: UInt64 = 0
    private var infos: [SignalInfo] = []

    func contains(_ signal: Int32) -> Bool { bits & SysSignal.bit(signal) != 0 }

    mutating func add(_ signal: Int32, _ info: SignalInfo) {
        guard !contains(signal) else { return }
        if infos.isEmpty { infos = Array(repeating: SignalInfo(code: 0), count: 64) }
        infos[Int(signal - 1)] = info
        bits |= SysSignal.bit(signal)
    }

    /// Forgets the pending signals of `mask`.
    mutating func remove(_ mask: UInt64) { bits &= ~mask }

    mutating func take(_ signal: Int32) -> SignalInfo {
        bits &= ~SysSignal.bit(signal)
        return infos[Int(signal - 1)]
    }
}

enum SysSignal {
    static let SIG_DFL: UInt64 = 0
    static let SIG_IGN: UInt64 = 1
    static let SIGKILL: Int32 = 9
    static let SIGSEGV: Int32 = 11
    static let SIGCHLD: Int32 = 17
    static let SIGCONT: Int32 = 18
    static let SIGSTOP: Int32 = 19

    /// The running process's dispositions.
    static var actions: [KernelSigaction] {
        _read { yield Process.current.actions }
        _modify { yield &Process.current.actions }
    }
    /// Signals sent to the running process (kill), taken by the first of its threads that
    /// does not block them.
    static var processPending: PendingSignals {
        _read { yield Process.current.pending }
        _modify { yield &Process.current.pending }
    }
    /// Signals sent so far (edge-triggered epoll's news for a signalfd).
    nonisolated(unsafe) static var sent: UInt64 = 0

    static func bit(_ signal: Int32) -> UInt64 { 1 << UInt64(signal - 1) }

    static func action(_ signal: Int32) -> KernelSigaction { action(signal, of: Process.current) }

    static func action(_ signal: Int32, of process: Process) -> KernelSigaction {
        if process.actions.isEmpty { process.actions = Array(repeating: KernelSigaction(), count: 65) }
        return process.actions[Int(signal)]
    }

    /// Whether `process` throws `signal` away on arrival: SIG_IGN, or SIG_DFL for a signal
    /// ignored by default, while none of its threads blocks it (a blocked one stays pending).
    static func discards(_ signal: Int32, in process: Process) -> Bool {
        let handler = action(signal, of: process).handler
        guard handler == SIG_IGN || (handler == SIG_DFL && ignoredByDefault(signal)) else { return false }
        return !Scheduler.threads.contains { $0.process === process && $0.blocked & bit(signal) != 0 }
    }

    static func rtSigaction(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let signal = a.int32(0)
        guard signal >= 1 && signal <= 64, a[3] == 8 else { throw .EINVAL }
        let old = action(signal)
        if a[1] != 0 {
            guard signal != SIGKILL && signal != SIGSTOP else { throw .EINVAL }
            let new = try KernelSigaction.decode(from: UserMemory.readable(a[1], KernelSigaction.size))
            actions[Int(signal)] = new
            // A signal now ignored is discarded where it is pending (POSIX), blocked or not.
            if new.handler == SIG_IGN || (new.handler == SIG_DFL && ignoredByDefault(signal)) {
                let me = Process.current
                me.pending.remove(bit(signal))
                for t in Scheduler.threads where t.process === me { t.pending.remove(bit(signal)) }
            }
        }
        if a[2] != 0 { try old.encode(into: UserMemory.writable(a[2], KernelSigaction.size)) }
        return 0
    }

    static func rtSigprocmask(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[3] == 8 else { throw .EINVAL }
        let me = Scheduler.current
        let old = me.blocked
        if a[1] != 0 {
            let set = try UserMemory.load(UInt64.self, a[1])
            switch a.int32(0) {
            case 0: me.blocked |= set         // SIG_BLOCK
            case 1: me.blocked &= ~set        // SIG_UNBLOCK
            case 2: me.blocked = set          // SIG_SETMASK
            default: throw .EINVAL
            }
            me.blocked &= ~(bit(SIGKILL) | bit(SIGSTOP))
        }
        if a[2] != 0 { try UserMemory.store(old, a[2]) }
        return 0
    }

    static func rtSigpending(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[1] == 8 else { throw .EINVAL }
        let me = Scheduler.current
        try UserMemory.store((me.pending.bits | processPending.bits) & me.blocked, a[0])
        return 0
    }

    /// sigaltstack: the old stack reads SS_ONSTACK while the caller runs on it (its rsp inside,
    /// as Linux's on_sig_stack), and it cannot be changed from there (EPERM).
    static func sigaltstack(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        var old = Scheduler.current.altStack
        let sp = Scheduler.frame[.rsp]
        let onIt = old.flags & SignalStack.disable == 0 && sp > old.base.raw && sp <= old.base.raw &+ old.size
        if onIt { old.flags |= SignalStack.onStack }
        if a[0] != 0 {
            if onIt { throw .EPERM }
            let new = try SignalStack.decode(from: UserMemory.readable(a[0], SignalStack.size))
            guard new.flags & ~(2 | Int32(bitPattern: 0x8000_0000)) == 0 else { throw .EINVAL }
            if new.flags & 2 == 0 && new.size < 2048 { throw .ENOMEM }  // MINSIGSTKSZ
            Scheduler.current.altStack = new
        }
        if a[1] != 0 { try old.encode(into: UserMemory.writable(a[1], SignalStack.size)) }
        return 0
    }

    /// kill(pid, sig): pid > 0 that process; 0 the caller's process group; -1 every process
    /// but pid 1 and the caller; < -1 the process group -pid. Signal 0 only checks that the
    /// target exists. A zombie exists but takes nothing.
    static func kill(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let target = Int32(truncatingIfNeeded: Int64(bitPattern: a[0]))
        let signal = a.int32(1)
        try checkSignal(signal)
        let me = Process.current
        let info = sentByUser
        if target > 0 {
            guard let p = Processes.find(target) else { throw .ESRCH }
            guard SysCredentials.maySignal(p) else { throw .EPERM }
            if signal != 0 && !p.isZombie { raise(on: p, signal, info) }
            return 0
        }
        guard target != Int32.min else { throw .ESRCH }
        let group = target == 0 ? me.processGroup : -target
        var found = false, permitted = false
        for p in Processes.all where !p.isZombie {
            if target == -1 ? (p.pid == 1 || p === me) : p.processGroup != group { continue }
            found = true
            guard SysCredentials.maySignal(p) else { continue }
            permitted = true
            if signal != 0 { raise(on: p, signal, info) }
        }
        // kill(-1) in a VM where the caller is alone finds no one: ESRCH, as on Linux; a
        // group none of whose members the caller may signal is EPERM.
        guard found else { throw .ESRCH }
        guard permitted else { throw .EPERM }
        return 0
    }

    /// siginfo of kill: SI_USER from the running process.
    static var sentByUser: SignalInfo { SignalInfo(code: SignalInfo.SI_USER, sender: Process.current.pid) }
    /// siginfo of the kernel's own sends (a parent's death signal…).
    static var sentByKernel: SignalInfo { SignalInfo(code: SignalInfo.SI_KERNEL) }

    /// A signal for the running process (a timer, raise).
    static func raiseOnProcess(_ signal: Int32, _ info: SignalInfo) { raise(on: Process.current, signal, info) }

    /// A signal for `process` (kill, a timer): pending for whichever of its threads takes it
    /// first; a thread waiting for it in rt_sigtimedwait looks again, else one waiting in any
    /// other call that does not block it is interrupted (EINTR) to take it. Other
    /// restartable waiters look again too (a signalfd reader may want it). SIGCONT (and
    /// SIGKILL) resumes a stopped process; a discarded signal (ignored, not blocked) leaves
    /// no trace.
    static func raise(on process: Process, _ signal: Int32, _ info: SignalInfo) {
        guard !process.isZombie else { return }
        if signal == SIGCONT || signal == SIGKILL { SysWait.resume(process) }
        if signal == SIGCONT { process.pending.remove(stopSignals) }
        if stopSignals & bit(signal) != 0 { process.pending.remove(bit(SIGCONT)) }
        if discards(signal, in: process) { return }
        process.pending.add(signal, info)
        sent &+= 1
        // As on Linux with a CPU free for it: the signalled process acts on the signal before
        // the sender goes on (a killed child dies before its killer waits for it).
        if process !== Scheduler.current.process { Scheduler.runWokenNext = true }
        defer { Scheduler.wakeRestartingWaiters() }
        let threads = Scheduler.threads.filter { $0.process === process }
        if threads.contains(where: { $0.state == .waiting && $0.waitingSignals & bit(signal) != 0 }) { return }
        // (The running thread is never .waiting, but in the scheduler's idle loop `current`
        // is the thread that waits, and it must be woken too.)
        for t in threads where t.state == .waiting && !t.uninterruptible && !process.stopped
            && (t.blocked & bit(signal) == 0 || signal == SIGKILL) {
            Scheduler.wake(t, result: Errno.EINTR.negatedReturn)
            return
        }
    }

    /// SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU.
    static let stopSignals: UInt64 = bit(19) | bit(20) | bit(21) | bit(22)

    /// A signal for one thread (tkill, a SIGEV_THREAD_ID timer): a wait of that thread that
    /// does not block it ends with EINTR.
    static func raiseOnThread(_ thread: Thread, _ signal: Int32, _ info: SignalInfo) {
        if signal == SIGCONT || signal == SIGKILL { SysWait.resume(thread.process) }
        if discards(signal, in: thread.process) { return }
        thread.pending.add(signal, info)
        sent &+= 1
        if thread.state == .waiting && thread.waitingSignals & bit(signal) == 0 && !thread.uninterruptible && !thread.process.stopped
            && (thread.blocked & bit(signal) == 0 || signal == SIGKILL) {
            Scheduler.wake(thread, result: Errno.EINTR.negatedReturn)
        }
        Scheduler.wakeRestartingWaiters()
    }

    /// Takes a pending signal of `set` for `me`, as Linux orders them: the lowest of the
    /// thread's own, else the lowest of the process's. A timer's signal reports the
    /// expirations merged into it so far (si_overrun).
    static func dequeue(_ me: Thread, from set: UInt64) -> (signal: Int32, info: SignalInfo)? {
        let own = me.pending.bits & set
        let ready = own != 0 ? own : processPending.bits & set
        guard ready != 0 else { return nil }
        let signal = Int32(ready.trailingZeroBitCount + 1)
        var info = own != 0 ? me.pending.take(signal) : processPending.take(signal)
        if info.code == SignalInfo.SI_TIMER, let timer = SysPosixTimers.timer(id: info.sender) { info.detail = timer.overrun }
        return (signal, info)
    }

    /// A signal `me` would act on now (pending and not blocked).
    static func hasDeliverable(_ me: Thread) -> Bool { (me.pending.bits | processPending.bits) & ~me.blocked != 0 }

    /// Installs the temporary mask of ppoll/pselect6/epoll_pwait (as rt_sigsuspend does): the
    /// thread's own mask comes back when the call returns, or when a handler it runs returns.
    static func applyTemporaryMask(_ address: UInt64, size: UInt64) throws(Errno) {
        guard address != 0 else { return }
        guard size == 8 else { throw .EINVAL }
        let mask = try UserMemory.load(UInt64.self, address) & ~(bit(SIGKILL) | bit(SIGSTOP))
        let me = Scheduler.current
        if me.suspendedMask == nil { me.suspendedMask = me.blocked }
        me.blocked = mask
    }

    /// pause(): waits for a signal (EINTR once a signal is taken).
    static func pause(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        Scheduler.blockCurrent(deadline: 0, timeoutResult: 0)
        return 0
    }

    /// rt_sigsuspend(mask, size): waits with `mask` in place; the old mask comes back when the
    /// handler returns (it is the ucontext's mask) or when the wait ends without one.
    static func rtSigsuspend(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[1] == 8 else { throw .EINVAL }
        let mask = try UserMemory.load(UInt64.self, a[0]) & ~(bit(SIGKILL) | bit(SIGSTOP))
        let me = Scheduler.current
        me.suspendedMask = me.blocked
        me.blocked = mask
        if hasDeliverable(me) { throw .EINTR }  // one is there already
        Scheduler.blockCurrent(deadline: 0, timeoutResult: 0)
        return 0
    }

    /// rt_sigtimedwait(set, siginfo *, timeout *, size): takes a pending signal of `set` (which
    /// the caller normally blocks) and returns its number, waiting up to the timeout (EAGAIN).
    static func rtSigtimedwait(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[3] == 8 else { throw .EINVAL }
        let set = try UserMemory.load(UInt64.self, a[0]) & ~(bit(SIGKILL) | bit(SIGSTOP))
        let me = Scheduler.current
        if a[1] != 0 { _ = try UserMemory.writable(a[1], SignalInfo.siginfoSize) }
        if let taken = dequeue(me, from: set) {
            me.waitingSignals = 0
            let (signal, info) = taken
            if a[1] != 0 { try info.encodeSiginfo(signal: signal, into: UserMemory.writable(a[1], SignalInfo.siginfoSize)) }
            return UInt64(signal)
        }
        let timeout = try SysTime.timeout(a[2])
        if timeout == 0 { throw .EAGAIN }
        me.waitingSignals = set
        Scheduler.blockCurrentRestarting(deadline: Scheduler.restartableDeadline(timeout), timeoutResult: Errno.EAGAIN.negatedReturn)
        return 0
    }

    static func tkill(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(0) > 0 else { throw .EINVAL }
        return try send(a.int32(1), to: a.int32(0))
    }

    static func tgkill(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(0) > 0, a.int32(1) > 0 else { throw .EINVAL }
        guard let t = Scheduler.thread(a.int32(1)), t.process.pid == a.int32(0) else { throw .ESRCH }
        return try send(a.int32(2), to: a.int32(1))
    }

    private static func checkSignal(_ signal: Int32) throws(Errno) {
        guard signal >= 0 && signal <= 64 else { throw .EINVAL }
    }

    private static func send(_ signal: Int32, to tid: Int32) throws(Errno) -> UInt64 {
        try checkSignal(signal)
        guard let thread = Scheduler.thread(tid) else { throw .ESRCH }
        if signal == 0 { return 0 }  // existence check
        raiseOnThread(thread, signal, SignalInfo(code: SignalInfo.SI_TKILL, sender: Process.current.pid))
        return 0
    }

    /// On the way back to user mode: acts on the running thread's first pending, unblocked
    /// signal. `frame` holds the registers the thread returns with.
    static func deliverPending(_ frame: SyscallFrame) {
        let me = Scheduler.current
        defer {
            // rt_sigsuspend ended without a handler taking the signal: its mask goes.
            if let saved = me.suspendedMask, me.state == .runnable {
                me.blocked = saved
                me.suspendedMask = nil
            }
        }
        // A thread woken to run its rt_sigtimedwait again takes the signals it waits for
        // there, not through a handler: Linux dequeues them before the wait returns. (Else
        // the handler would run, the call start over and wait again: for ever, with an
        // interval timer's signal.)
        let awaited = me.resumeDeadline != nil ? me.waitingSignals : 0
        while let next = dequeue(me, from: ~me.blocked & ~awaited) {
            let (signal, info) = next
            let act = action(signal)
            if act.handler == SIG_IGN || (act.handler == SIG_DFL && ignoredByDefault(signal)) { continue }
            if act.handler == SIG_DFL && stopSignals & bit(signal) != 0 {
                SysWait.stop(me.process, signal)
                return
            }
            if act.handler == SIG_DFL { terminate(signal) }
            do {
                try runHandler(signal, info: info, act, frame: frame)
            } catch {
                // No room for the signal frame: Linux kills the thread's process with SIGSEGV.
                terminate(11)
            }
            return
        }
    }

    /// A fault of the app (from trap_dispatch) with a handler installed and not blocked: the
    /// handler runs with the faulting context in its ucontext (returning re-executes the
    /// faulting instruction, as on Linux). Returns when the default action applies instead.
    static func deliverFault(_ signal: Int32, frame trap: TrapFrame, fpuImage: UInt64) {
        let me = Scheduler.current
        let act = action(signal)
        guard act.handler != SIG_DFL, act.handler != SIG_IGN, me.blocked & bit(signal) == 0 else { return }
        let frame = Scheduler.loadFrame(from: trap, fpuImage: fpuImage)
        // si_code: SEGV_MAPERR 1 / SEGV_ACCERR 2 for page faults (si_addr = the address),
        // BUS_ADRALN 1, FPE_INTDIV 1, ILL_ILLOPN 2, TRAP_BRKPT 1.
        var code: Int32 = 1
        var address: UInt64 = trap.rip
        if trap.vector == 14 {
            code = trap.errorCode & 1 != 0 ? 2 : 1
            address = arch_read_cr2()
        } else if trap.vector == 13 {
            code = 0x80  // SI_KERNEL: a general protection fault has no address
            address = 0
        } else if signal == 4 {
            code = 2
        }
        do {
            try runHandler(signal, info: SignalInfo(code: code), act, frame: frame, faultAddress: address)
        } catch {
            return  // no room for the frame: the default action (with its report) applies
        }
        enter_user_with_fpu(frame.address)
    }

    // rt_sigframe, as Linux lays it out on x86-64 (arch/x86/include/asm/sigframe.h):
    //   0 pretcode (return address: sa_restorer)
    //   8 ucontext: uc_flags 0, uc_link 8, uc_stack 16 (sp, flags, size), uc_mcontext 40,
    //     uc_sigmask 296                                   (304 bytes)
    //   312 siginfo (128 bytes)
    // and the fxsave image, 64-byte aligned, above it, pointed to by mcontext.fpstate.
    // sigcontext (uc_mcontext): r8 r9 r10 r11 r12 r13 r14 r15 rdi rsi rbp rbx rdx rax rcx rsp
    // rip eflags (8 bytes each), cs gs fs ss (2 each), err, trapno, oldmask, cr2, fpstate.
    static let frameSize = 440
    static let ucontextOffset = 8
    static let mcontextOffset = 8 + 40
    static let sigmaskOffset = 8 + 296
    static let siginfoOffset = 312
    static let mcontextOrder: [SyscallFrame.Slot] = [.r8, .r9, .r10, .r11, .r12, .r13, .r14, .r15, .rdi, .rsi,
                                                     .rbp, .rbx, .rdx, .rax, .rcx, .rsp, .rip, .rflags]

    private static func runHandler(_ signal: Int32, info: SignalInfo, _ act: KernelSigaction, frame: SyscallFrame,
                                   faultAddress: UInt64? = nil) throws(Errno) {
        let me = Scheduler.current
        me.resumeDeadline = nil  // a call the handler interrupted starts afresh
        let userSP = frame[.rsp]
        var sp = userSP &- 128  // the red zone of the interrupted code
        let onAltStack = Scheduler.current.altStack.flags & SignalStack.disable == 0 && userSP > Scheduler.current.altStack.base.raw
            && userSP <= Scheduler.current.altStack.base.raw &+ Scheduler.current.altStack.size
        if act.flags.contains(.SA_ONSTACK) && Scheduler.current.altStack.flags & SignalStack.disable == 0 && !onAltStack {
            sp = Scheduler.current.altStack.base.raw &+ Scheduler.current.altStack.size
        }
        let fpstate = (sp &- 512) & ~63
        let base = ((fpstate &- UInt64(frameSize)) & ~15) &- 8
        let out = try UserMemory.writable(base, Int(sp &- base))
        out.initializeMemory(as: UInt8.self, repeating: 0)

        out.writeLE(act.restorer, at: 0)
        out.writeLE(UInt64(0x6), at: ucontextOffset)  // UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
        out.writeLE(Scheduler.current.altStack.base.raw, at: ucontextOffset + 16)
        out.writeLE(Scheduler.current.altStack.flags | (onAltStack ? SignalStack.onStack : 0), at: ucontextOffset + 24)
        out.writeLE(Scheduler.current.altStack.size, at: ucontextOffset + 32)
        for (i, slot) in mcontextOrder.enumerated() { out.writeLE(frame[slot], at: mcontextOffset + i * 8) }
        out.writeLE(UInt16(frame[.cs]), at: mcontextOffset + 144)
        out.writeLE(UInt16(frame[.ss]), at: mcontextOffset + 150)
        // The mask to restore on rt_sigreturn: the one before rt_sigsuspend, if that is where
        // the thread waited.
        let restoreMask = me.suspendedMask ?? me.blocked
        me.suspendedMask = nil
        out.writeLE(restoreMask, at: mcontextOffset + 176)     // oldmask
        out.writeLE(fpstate, at: mcontextOffset + 192)
        out.writeLE(restoreMask, at: sigmaskOffset)
        try info.encodeSiginfo(signal: signal, into: UnsafeMutableRawBufferPointer(rebasing: out[siginfoOffset..<siginfoOffset + SignalInfo.siginfoSize]))
        if let faultAddress {
            out.writeLE(faultAddress, at: siginfoOffset + 16)           // si_addr
            out.writeLE(UInt64(14), at: mcontextOffset + 168)           // trapno (page fault)
            out.writeLE(faultAddress, at: mcontextOffset + 184)         // cr2
        }
        UnsafeMutableRawPointer(bitPattern: UInt(fpstate))!.copyMemory(from: Scheduler.fpuArea, byteCount: 512)

        me.blocked |= act.mask.rawValue
        if !act.flags.contains(.SA_NODEFER) { me.blocked |= bit(signal) }
        me.blocked &= ~(bit(SIGKILL) | bit(SIGSTOP))
        if act.flags.contains(.SA_RESETHAND) { Process.current.actions[Int(signal)] = KernelSigaction() }

        frame[.rip] = act.handler
        frame[.rsp] = base
        frame[.rdi] = UInt64(signal)
        frame[.rsi] = base + UInt64(siginfoOffset)
        frame[.rdx] = base + UInt64(ucontextOffset)
        frame[.rax] = 0
        frame[.rflags] &= ~(UInt64(1) << 10)  // DF clear on handler entry
    }

    /// rt_sigreturn: the restorer runs it with rsp at the ucontext (the handler's `ret`
    /// popped pretcode). Registers, mask and FPU state come back from the frame.
    static func rtSigreturn(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let frame = Scheduler.frame
        let uc = frame[.rsp]
        guard let context = try? UserMemory.readable(uc, 304) else { terminate(11) }
        let m = 40
        // A context whose rip is not an app address (the kernel's range, non-canonical, the
        // upper half) cannot be returned to: the return itself would fault in the kernel.
        // Linux's return faults there too and the process gets SIGSEGV.
        guard context.readLE(UInt64.self, at: m + 16 * 8) < PageTable.userEnd else { terminate(11) }
        for (i, slot) in mcontextOrder.enumerated() { frame[slot] = context.readLE(UInt64.self, at: m + i * 8) }
        // Only the arithmetic and direction flags are the app's to change; IF stays set.
        frame[.rflags] = (frame[.rflags] & 0x0dd5) | 0x202
        frame[.cs] = Platform.userCode
        frame[.ss] = Platform.userData
        let me = Scheduler.current
        me.blocked = context.readLE(UInt64.self, at: 296) & ~(bit(SIGKILL) | bit(SIGSTOP))
        let fpstate = context.readLE(UInt64.self, at: m + 192)
        if fpstate != 0, let fpu = try? UserMemory.readable(fpstate, 512) {
            var image = [UInt8](fpu)
            // MXCSR reserved bits set would fault fxrstor: keep only the architectural ones.
            image.withUnsafeMutableBytes { $0.writeLE($0.readLE(UInt32.self, at: 24) & 0xffff, at: 24) }
            image.withUnsafeBytes { Scheduler.fpuArea.copyMemory(from: $0.baseAddress!, byteCount: 512) }
        }
        Scheduler.switched = true  // the frame holds the restored registers, rax included
        return 0
    }

    /// SIGCHLD, SIGURG, SIGWINCH and SIGCONT are ignored by default.
    static func ignoredByDefault(_ s: Int32) -> Bool { s == 17 || s == 23 || s == 28 || s == 18 }

    /// The running process ends by `signal` (its default action, a fault): pid 1 ending
    /// stops the VM with 128+signal; another process becomes a zombie and another thread
    /// runs (entered here: there is nothing to return to).
    static func terminate(_ signal: Int32) -> Never {
        // SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGXCPU, SIGXFSZ,
        // SIGSYS dump core by default: the wait status says so (0x80).
        let coreDumping: UInt64 = bit(3) | bit(4) | bit(5) | bit(6) | bit(7) | bit(8) | bit(11) | bit(24) | bit(25) | bit(31)
        Processes.exitCurrent(status: UInt32(signal) | (coreDumping & bit(signal) != 0 ? 0x80 : 0))
        Scheduler.switched = false
        let frame = Scheduler.frame
        deliverPending(frame)
        enter_user_with_fpu(frame.address)
    }
}
