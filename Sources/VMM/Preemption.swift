import CKVM
import Glibc
import GuestABI

/// The VMM's half of `HostChannel` (GuestABI): host signals for pid 1, and the preemption of
/// app code on pvm, where the guest cannot take an interrupt while app code runs.
///
/// Two threads share it:
/// - the vCPU thread (`VirtualMachine.runLoop`) moves host signals into the channel and, when
///   the vCPU stopped in app code (the kernel's `kernelActive` byte clear, rip outside the
///   kernel's text), saves the app's registers in the kernel's save area and points rip at
///   the kernel's preemption entry (`redirect`): nothing is written to the app's stack;
/// - the clock thread (`GuestClock`) sleeps until the deadline the kernel published and then
///   stops the vCPU's KVM_RUN with the kick signal. The kernel tells it about an earlier
///   deadline through an ioeventfd (`Doorbell.deadline`), which costs no exit to this process.
///
/// Every value read from the channel is the guest's: addresses are checked against guest
/// memory, and a bad one only disables preemption.
struct HostChannelView {
    let base: UnsafeMutableRawPointer

    init?(memory: GuestMemory) {
        guard let raw = memory.bytes(at: GuestABI.bootInfoAddress + UInt64(HostChannel.offset),
                                     count: UInt64(HostChannel.size), writable: true) else { return nil }
        base = raw.baseAddress!
    }

    func load(_ offset: Int) -> UInt64 { ckvm_atomic_load64(base + offset) }
    func store(_ offset: Int, _ value: UInt64) { ckvm_atomic_store64(base + offset, value) }
    func or(_ offset: Int, _ value: UInt64) { _ = ckvm_atomic_or64(base + offset, value) }
}

/// Sleeps until the guest's published deadline (or a stop deadline) and kicks the vCPU.
final class GuestClock {
    let channel: HostChannelView
    /// Signalled by the kernel's deadline doorbell (ioeventfd) and by the vCPU thread.
    let wakeFD: Int32
    let timerFD: Int32
    let vcpuThread: pthread_t
    let tscKHz: UInt64
    /// Guest TSC minus host TSC: the kernel's deadlines are guest TSC values.
    let guestTSCOffset: UInt64
    private var thread: pthread_t? = nil
    /// Shared with the vCPU thread (atomic words): a TSC deadline for the whole VM after
    /// SIGTERM (0: none), whether it passed, whether a recheck of undelivered host signals is
    /// wanted, and the request to end.
    private let shared = UnsafeMutablePointer<UInt64>.allocate(capacity: 4)
    private static let stopDeadline = 0, stopExpired = 1, recheck = 2, quit = 3
    /// How long a kick waits for the vCPU to leave the kernel before it is tried again.
    static let retryNanos: UInt64 = 1_000_000

    init(channel: HostChannelView, wakeFD: Int32, timerFD: Int32, vcpuThread: pthread_t, tscKHz: UInt64, guestTSCOffset: UInt64) {
        self.guestTSCOffset = guestTSCOffset
        self.channel = channel
        self.wakeFD = wakeFD
        self.timerFD = timerFD
        self.vcpuThread = vcpuThread
        self.tscKHz = max(tscKHz, 1)
        shared.initialize(repeating: 0, count: 4)
    }

    deinit {
        shared.deallocate()
        close(wakeFD)
        close(timerFD)
    }

    func start() throws(VMMError) {
        let context = Unmanaged.passRetained(self).toOpaque()
        var all = sigset_t(), previous = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGSYS)
        pthread_sigmask(SIG_SETMASK, &all, &previous)  // host signals go to the vCPU thread
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        var tid = pthread_t()
        let r = pthread_create(&tid, nil, { raw in
            let clock = Unmanaged<GuestClock>.fromOpaque(raw!).takeRetainedValue()
            clock.loop()
            return nil
        }, context)
        guard r == 0 else {
            Unmanaged<GuestClock>.fromOpaque(context).release()
            throw .kvmCall("pthread_create (guest clock thread)", r)
        }
        thread = tid
    }

    func stop() {
        guard let thread else { return }
        ckvm_atomic_store64(shared + Self.quit, 1)
        signal()
        pthread_join(thread, nil)
        self.thread = nil
    }

    /// From the vCPU thread: the VM must end `nanoseconds` from now unless it ends itself.
    func setStopDeadline(afterNanoseconds nanoseconds: UInt64) {
        guard ckvm_atomic_load64(shared + Self.stopDeadline) == 0 else { return }
        ckvm_atomic_store64(shared + Self.stopDeadline, max(ckvm_rdtsc() &+ guestTSCOffset &+ ticks(nanoseconds), 1))
        signal()
    }

    var stopExpired: Bool { ckvm_atomic_load64(shared + Self.stopExpired) != 0 }

    /// From the vCPU thread: host signals are in the channel but the kernel was running; look
    /// again shortly (the kernel may have passed its last check before returning to the app).
    func recheckSignals() {
        ckvm_atomic_store64(shared + Self.recheck, 1)
        signal()
    }

    /// The kernel published an earlier deadline through an exit (no ioeventfd).
    func deadlineChanged() { signal() }

    private func signal() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func ticks(_ nanoseconds: UInt64) -> UInt64 {
        nanoseconds.multipliedFullWidth(by: tscKHz).high == 0 ? nanoseconds &* tscKHz / 1_000_000 : UInt64.max / 2
    }

    private func nanoseconds(ticks: UInt64) -> UInt64 {
        ticks.multipliedFullWidth(by: 1_000_000).high == 0 ? ticks &* 1_000_000 / tscKHz : UInt64.max / 2
    }

    private func loop() {
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: timerFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: 0, events: Int16(POLLIN), revents: 0)]
        var buffer: UInt64 = 0
        var recheckAt: UInt64 = 0
        while ckvm_atomic_load64(shared + Self.quit) == 0 {
            // A guest thread waits for stdin: watch it, and when it has input (or its end),
            // tell the kernel (an event bit) and stop the vCPU so that the reader runs.
            let watchInput = channel.load(HostChannel.inputWaiting) != 0
            fds[2].revents = 0
            _ = fds.withUnsafeMutableBufferPointer { ckvm_poll_ns($0.baseAddress, watchInput ? 3 : 2, -1) }
            _ = read(wakeFD, &buffer, 8)
            _ = read(timerFD, &buffer, 8)
            if ckvm_atomic_load64(shared + Self.quit) != 0 { break }
            var kick = false
            if watchInput && fds[2].revents != 0 {
                channel.store(HostChannel.inputWaiting, 0)
                channel.or(HostChannel.events, HostChannel.eventInputReady)
                kick = true
            }
            let now = ckvm_rdtsc() &+ guestTSCOffset  // on the guest's TSC
            if ckvm_atomic_load64(shared + Self.recheck) != 0 {
                ckvm_atomic_store64(shared + Self.recheck, 0)
                recheckAt = now &+ ticks(Self.retryNanos)
            }
            var stop = ckvm_atomic_load64(shared + Self.stopDeadline)
            if stop != 0 && stop <= now {
                if ckvm_atomic_load64(shared + Self.stopExpired) == 0 { kick = true }
                ckvm_atomic_store64(shared + Self.stopExpired, 1)
                stop = 0
            }
            if recheckAt != 0 && recheckAt <= now {
                let undelivered = channel.load(HostChannel.pendingSignals) != 0 || channel.load(HostChannel.events) != 0
                recheckAt = undelivered ? now &+ ticks(Self.retryNanos) : 0
                if recheckAt != 0 { kick = true }
            }
            // Arm for the guest's deadline; `armed` is published before the deadline is read
            // again (the kernel stores its deadline, then reads `armed`), so a deadline made
            // earlier meanwhile is either seen here or rung again by the kernel.
            var target: UInt64 = 0
            var deadline = channel.load(HostChannel.deadline)
            while true {
                if deadline != 0 && deadline <= now {
                    // Due: kick, and kick again after a while if it is still the deadline
                    // then (the vCPU was in the kernel, which publishes a new one on its way
                    // back to the app).
                    kick = true
                    target = now &+ ticks(Self.retryNanos)
                } else {
                    target = deadline
                }
                channel.store(HostChannel.armed, target)
                let again = channel.load(HostChannel.deadline)
                if again == deadline { break }
                deadline = again
            }
            for extra in [stop, recheckAt] where extra != 0 && (target == 0 || extra < target) { target = extra }
            if kick {
                _ = ckvm_kick(vcpuThread)
                // Taken by the kernel at its next entry; look again if it has not been.
                if recheckAt == 0 { recheckAt = now &+ ticks(Self.retryNanos) }
            }
            let wait = target == 0 ? 0 : (target > now ? max(nanoseconds(ticks: target - now), 1) : 1)
            _ = ckvm_timerfd_set_ns(timerFD, wait)
        }
    }
}
