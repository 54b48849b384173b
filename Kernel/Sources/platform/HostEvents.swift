import GuestABI
import KernelArch
import LinuxABI

/// What the host tells the running kernel without an interrupt, and the preemption of app code
/// on pvm (`HostChannel` in GuestABI has the layout).
///
/// Host signals: the VMM ORs bits into the channel; the kernel takes them at every return to
/// app code, in its idle loop and at a preemption, and raises each on pid 1 (SI_USER from pid
/// 0, as a signal from outside the container). Under QEMU they arrive as serial frames
/// (`Serial.pollInput`) and are queued here the same way.
///
/// Preemption (pvm, apus VMM): app code on pvm cannot take an interrupt (the frame would land
/// on its stack), so the VMM stops the vCPU from outside, saves the app's registers into the
/// save area and points the vCPU at `preempt_entry` (arch/entry.S). The kernel asks for that
/// only when it needs it: on each return to app code it publishes the deadline of the first
/// thing that must interrupt the app (a timer, the end of a slice while another thread can
/// run, a sleeper's wake-up, output buffered for `Console.flushLatency`) and rings `Doorbell.deadline` (an ioeventfd, no exit to the VMM
/// process) only when that deadline is earlier than the one the VMM has armed. A program
/// that runs alone with no timer publishes 0 and is never stopped.
enum HostEvents {
    /// Set at boot when the VMM can preempt (apus VMM on pvm).
    nonisolated(unsafe) static var preemptionEnabled = false
    /// Host signals received over the serial line (QEMU), not yet raised.
    nonisolated(unsafe) static var serialSignals: UInt64 = 0
    /// The deadline last published (TSC; 0: none), to skip rewriting an unchanged one.
    nonisolated(unsafe) static var publishedDeadline: UInt64 = 0

    static var channel: UInt64 { Kernel.directMapBase &+ GuestABI.bootInfoAddress.raw &+ UInt64(HostChannel.offset) }

    /// Publishes the preemption entry, the save area and the kernel's text range (pvm with the
    /// apus VMM only; the other platforms leave the channel's entry at 0).
    static func initialize() {
        guard Console.backend == .doorbell else { return }
        let c = channel
        arch_store64(c &+ UInt64(HostChannel.deadline), 0)
        guard Platform.bootProtocol == .apusPVM, let page = PhysicalMemory.allocatePage() else { return }
        arch_set_preempt_save_area(UInt64(UInt(bitPattern: directMap(page))))
        arch_store64(c &+ UInt64(HostChannel.saveArea), page.raw)
        arch_store64(c &+ UInt64(HostChannel.kernelActive),
                     kernelPhysical(UnsafeRawPointer(bitPattern: UInt(arch_kernel_active_address()))!).raw)
        arch_store64(c &+ UInt64(HostChannel.kernelTextStart), arch_kernel_text_start())
        arch_store64(c &+ UInt64(HostChannel.kernelTextEnd), arch_kernel_text_end())
        arch_store64(c &+ UInt64(HostChannel.entry), arch_preempt_entry_address())
        preemptionEnabled = true
        // A terminal hears ^C even while no one reads it: the host reports input from the start.
        if Terminal.enabled { Console.armInputWatch() }
    }

    /// True when host signals wait to be raised (a sleeping kernel must wake for them).
    static var signalsPending: Bool {
        if serialSignals != 0 { return true }
        return Console.backend == .doorbell && arch_load64(channel &+ UInt64(HostChannel.pendingSignals)) != 0
    }

    /// True when the host reported something a sleeping kernel must look at: stdin input
    /// someone waits for (or the terminal takes), a new window size.
    static var inputArrived: Bool {
        guard Console.inputWaiters || Terminal.enabled else { return false }
        if Console.backend == .doorbell {
            return arch_load64(channel &+ UInt64(HostChannel.events)) != 0
        }
        return Serial.inputAvailable || Serial.windowPending
    }

    /// Raises the host signals that arrived on pid 1. Returns whether there were any.
    @discardableResult
    static func takeSignals() -> Bool {
        var bits = serialSignals
        serialSignals = 0
        if Console.backend == .doorbell {
            let word = channel &+ UInt64(HostChannel.pendingSignals)
            if arch_load64(word) != 0 { bits |= arch_exchange64(word, 0) }
        }
        guard bits != 0, let initProcess = Processes.all.first(where: { $0.pid == 1 }) else { return false }
        while bits != 0 {
            let signal = Int32(bits.trailingZeroBitCount + 1)
            bits &= bits &- 1
            SysSignal.raise(on: initProcess, signal, SignalInfo(code: SignalInfo.SI_USER, sender: 0))
        }
        return true
    }

    /// A fault the VMM saw in app code (`hlt` on pvm, which the hypervisor emulates instead of
    /// faulting): as Linux's #GP in user mode, SIGSEGV with SI_KERNEL; a handler runs if the
    /// thread has one and does not block it, else the process dies with a report.
    static func raiseAppFault(_ frame: SyscallFrame) {
        let word = arch_exchange64(channel &+ UInt64(HostChannel.appFault), 0)
        let overflow = word & HostChannel.appFaultStackOverflow != 0
        let fault = word & ~HostChannel.appFaultStackOverflow
        guard fault >= 1 && fault <= 64 else { return }
        let signal = Int32(fault)
        let me = Scheduler.current
        let act = SysSignal.action(signal)
        // A stack overflow's handler can only run on an alternate stack: the app's own has
        // no room for the signal frame.
        let onAlternateStack = act.flags.contains(.SA_ONSTACK) && me.altStack.flags & SignalStack.disable == 0
        if act.handler == SysSignal.SIG_DFL || act.handler == SysSignal.SIG_IGN || me.blocked & SysSignal.bit(signal) != 0
            || (overflow && !onAlternateStack) {
            var m = Message(overflow ? "apus: program killed by SIGSEGV: stack overflow (rsp "
                                     : "apus: program killed by SIGSEGV: privileged instruction (hlt) in app code at rip ")
            if overflow {
                m.hex(frame[.rsp])
                m.append(" below the stack) at rip ")
            }
            m.hex(frame[.rip])
            Console.kernelLine(m)
            SysSignal.terminate(signal)
        }
        // si_code: SEGV_MAPERR for the overflow (the page below the stack is not mapped),
        // SI_KERNEL for hlt, as Linux's #GP.
        SysSignal.raiseOnThread(me, signal, SignalInfo(code: overflow ? 1 : 0x80))
    }

    /// A host signal that came over the serial line (QEMU).
    static func queueSerialSignal(_ signal: UInt8) {
        guard signal >= 1 && signal <= 64 else { return }
        serialSignals |= SysSignal.bit(Int32(signal))
    }

    /// On the way back to app code: the deadline at which the app must be interrupted.
    static func publishDeadline() {
        guard preemptionEnabled else { return }
        let deadline = nextDeadlineTSC()
        guard deadline != publishedDeadline else { return }
        publishedDeadline = deadline
        let c = channel
        // The store must be visible before the armed deadline is read: the VMM's timer thread
        // writes `armed` and then reads `deadline` (the mirror order), so one of the two sees
        // the other's value.
        _ = arch_exchange64(c &+ UInt64(HostChannel.deadline), deadline)
        guard deadline != 0 else { return }
        let armed = arch_load64(c &+ UInt64(HostChannel.armed))
        if armed == 0 || deadline < armed { Console.ring(.deadline, 0) }
    }

    /// The earliest of: a monotonic timer, a CPU-time timer of the running thread's process
    /// (CPU time advances with wall time while the app runs), a waiting thread's deadline, and
    /// the end of the running thread's slice when another thread is runnable. 0: none.
    private static func nextDeadlineTSC() -> UInt64 {
        let threads = Scheduler.threads
        guard threads.count > 1 || Timers.anyArmed || Console.bufferedSince != 0 else { return 0 }
        let now = Clock.monotonicNanos
        var earliest = Console.bufferedSince != 0 ? Console.bufferedSince &+ Console.flushLatency : UInt64.max
        if Timers.anyArmed {
            for timer in Timers.all where timer.deadline != 0 {
                switch timer.base {
                case .monotonic:
                    earliest = min(earliest, timer.deadline)
                case .processCPU, .threadCPU:
                    let n = timer.now
                    earliest = min(earliest, timer.deadline > n ? now &+ (timer.deadline - n) : now)
                }
            }
        }
        let me = Scheduler.current
        for t in threads where t !== me {
            if t.state == .waiting {
                if t.deadline != 0 { earliest = min(earliest, t.deadline) }
            } else if !t.process.stopped {
                earliest = min(earliest, Scheduler.sliceEndNanos)
            }
        }
        guard earliest != UInt64.max else { return 0 }
        return max(Clock.monotonicBaseTSC &+ Clock.ticks(nanoseconds: earliest), 1)
    }
}

/// The kernel side of a preemption (arch/entry.S `preempt_entry`): the app's registers are the
/// frame at the top of the kernel stack, as for a syscall. Due timers fire, host signals are
/// raised, a thread that used its slice gives way, and pending signals are delivered; then
/// the frame (this thread's or another's) is resumed with every register as it was.
@_cdecl("preempt_dispatch")
func preemptDispatch(_ frameAddress: UInt64) {
    let frame = SyscallFrame(address: frameAddress)
    HostEvents.raiseAppFault(frame)
    Console.flushIfOld()
    Timers.check()
    HostEvents.takeSignals()
    Console.checkInput()
    let woke = Scheduler.wakeExpiredWaiters()
    Scheduler.preemptIfSliceUsed(evenIfNot: woke)
    SysSignal.deliverPending(frame)
    HostEvents.publishDeadline()
}
