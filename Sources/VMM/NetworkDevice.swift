import CKVM
import GuestABI
#if canImport(Glibc)
import Glibc
#endif

// A virtio-net device wired into a VM: the transport and device models, the KVM plumbing
// for notifications and interrupts, and the VM's network I/O thread.
//
// Threads:
//   - the vCPU thread calls `mmioRead` / `mmioWrite` for exits in the device's register
//     window (setup, Status, InterruptStatus/ACK, and QueueNotify when no ioeventfd);
//   - the I/O thread (one per VM, started by `start`, joined by `stop`) polls the queue
//     notify eventfds, a control eventfd, the backend's and the port forwarders'
//     descriptors, and moves frames.
// `mutex` guards the transport and device models (queues included): the I/O thread holds
// it while it walks the rings, so a reset from the vCPU thread waits until the device no
// longer touches guest memory. Backend calls happen on the I/O thread only.
//
// Notifications (guest → host), per queue one eventfd the I/O thread polls:
//   - KVM_IOEVENTFD (when KVM_CAP_IOEVENTFD): a 4-byte write of the queue index to
//     QueueNotify signals the eventfd inside the host kernel; the vCPU does not leave KVM_RUN.
//   - fallback: the write exits to the VMM as MMIO, and `mmioWrite` signals the eventfd.
// Interrupts (host → guest), I/O APIC pin virtioFirstIRQ + slot, edge triggered:
//   - KVM_IRQFD (when KVM_CAP_IRQFD): the I/O thread writes the irqfd; KVM pulses the GSI.
//   - fallback: KVM_IRQ_LINE 1 then 0 (a VM ioctl, fine from the I/O thread).
// One interrupt at most per I/O-thread pass (both queues share the line); InterruptStatus
// bit 0 is set before it. The device never waits for InterruptACK: a driver may skip
// reading InterruptStatus (an MMIO exit) and just look at both used rings.

public final class NetworkDevice: @unchecked Sendable {
    /// How the device raises its interrupt.
    public enum InterruptLine: @unchecked Sendable {
        case irqfd(Int32)
        case irqLine(vm: Int32, gsi: UInt32)
        /// Tests: a function called on whichever thread raises it.
        case callback(@Sendable () -> Void)
        /// The guest polls: a used buffer only ends its sleep doorbell (`wakeFD`).
        case wakeOnly
    }

    public let slot: Int
    public let base: UInt64
    public let gsi: UInt32
    let transport: VirtioMMIOTransport
    let net: VirtioNetDevice
    let backend: any NetworkBackend
    let forwarders: [PortForwarder]
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    /// One per queue (receiveq, transmitq); KVM or `mmioWrite` signals them.
    let notifyFDs: [Int32]
    /// Wakes the I/O thread for state changes and stop.
    let controlFD: Int32
    /// Signalled with every interrupt: ends a sleep doorbell early (`sleep(nanoseconds:)`),
    /// since a vCPU sleeping in the VMM cannot take the interrupt.
    let wakeFD: Int32
    private var interruptLine: InterruptLine
    private var vm: Int32 = -1
    /// Which KVM accelerations are in use (for diagnostics and the measurements).
    public private(set) var usesIOEventFD = false
    public private(set) var usesIRQFD = false
    private var irqFD: Int32 = -1
    private var thread: pthread_t? = nil
    private var stopping = false   // under mutex
    private var finished = false

    /// A device for slot `slot` over `memory`. `interrupt` nil: decided by `attach(vm:)`.
    /// Creates its eventfds; `stop()` (or deinit) closes them.
    init(configuration: NetworkConfiguration, slot: Int, memory: GuestMemory, forwarders: [PortForwarder],
         interrupt: InterruptLine? = nil) throws(VMMError) {
        self.slot = slot
        base = GuestABI.virtioBase.raw + UInt64(slot) * GuestABI.virtioStride
        gsi = GuestABI.virtioFirstIRQ + UInt32(slot)
        net = VirtioNetDevice(mac: configuration.mac)
        transport = VirtioMMIOTransport(device: net, memory: memory)
        backend = configuration.backend
        self.forwarders = forwarders
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var fds: [Int32] = []
        for _ in 0..<4 {
            let fd = ckvm_eventfd()
            guard fd >= 0 else {
                let e = -fd
                fds.forEach { close($0) }
                pthread_mutex_destroy(mutex)
                mutex.deallocate()
                throw .kvmCall("eventfd", e)
            }
            fds.append(fd)
        }
        controlFD = fds[0]
        notifyFDs = [fds[1], fds[2]]
        wakeFD = fds[3]
        interruptLine = interrupt ?? .callback({})
    }

    deinit {
        if thread != nil { stop() }
        closeDescriptors()
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    private var descriptorsClosed = false
    private func closeDescriptors() {
        guard !descriptorsClosed else { return }
        descriptorsClosed = true
        // The ioeventfds and the irqfd stay registered: KVM holds its own references to the
        // eventfds and drops them with the VM, and unregistering costs ~5 ms here (KVM waits
        // for an SRCU grace period per call) — longer than the rest of a short run. A stopped
        // device's VM never runs again.

        close(controlFD)
        close(wakeFD)
        notifyFDs.forEach { close($0) }
        if irqFD >= 0 { close(irqFD) }
        irqFD = -1
    }

    /// Connects the device to a VM with an in-kernel irqchip: ioeventfds on QueueNotify and
    /// an irqfd on the GSI where KVM has them (and `accelerate`), else the fallbacks.
    func attach(vm: Int32, accelerate: Bool, interrupts: Bool = true) {
        self.vm = vm
        interruptLine = interrupts ? .irqLine(vm: vm, gsi: gsi) : .wakeOnly
        guard accelerate else { return }
        // ioeventfds are registered once the guest has notified a few times through MMIO
        // exits (`mmioWrite`): a VM with ioeventfds takes ~10 ms longer to tear down here, which
        // a short run that barely uses the network should not pay; a server pays it once.
        ioeventfdPending = ckvm_ioctl_int(vm, CKVM_CHECK_EXTENSION, UInt(CKVM_CAP_IOEVENTFD)) > 0
        if interrupts && ckvm_ioctl_int(vm, CKVM_CHECK_EXTENSION, UInt(CKVM_CAP_IRQFD)) > 0 {
            let fd = ckvm_eventfd()
            if fd >= 0 && ckvm_irqfd(vm, fd, gsi, 1) == 0 {
                irqFD = fd
                usesIRQFD = true
                interruptLine = .irqfd(fd)
            } else if fd >= 0 {
                close(fd)
            }
        }
    }

    // MARK: the vCPU side

    /// Whether `address` is in this device's register window.
    func contains(_ address: UInt64) -> Bool { address >= base && address < base + GuestABI.virtioStride }

    /// A guest read of `size` bytes at `offset` in the register window.
    public func mmioRead(offset: UInt64, size: Int) -> UInt32 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return transport.read(offset: offset, size: size)
    }

    /// Notifies through MMIO exits before the ioeventfds are registered.
    static let exitNotifiesBeforeIOEventFD = 16
    private var ioeventfdPending = false
    private var exitNotifies = 0

    /// Moves QueueNotify into the host kernel (vCPU thread, between two KVM_RUNs).
    private func registerIOEventFDs() {
        ioeventfdPending = false
        var ok = true
        for (q, fd) in notifyFDs.enumerated() where ok {
            if ckvm_ioeventfd(vm, base + VirtioMMIORegister.queueNotify, 4, UInt64(q), fd, 1) != 0 {
                ok = false
                for undo in 0..<q {
                    _ = ckvm_ioeventfd(vm, base + VirtioMMIORegister.queueNotify, 4, UInt64(undo), notifyFDs[undo], 0)
                }
            }
        }
        usesIOEventFD = ok
    }

    /// A guest write (an MMIO exit: with ioeventfd, QueueNotify never gets here).
    public func mmioWrite(offset: UInt64, size: Int, value: UInt32) {
        pthread_mutex_lock(mutex)
        let effects = transport.write(offset: offset, size: size, value: value)
        pthread_mutex_unlock(mutex)
        if ioeventfdPending && effects.notifiedQueues != 0 {
            exitNotifies += 1
            if exitNotifies >= Self.exitNotifiesBeforeIOEventFD { registerIOEventFDs() }
        }
        for q in 0..<notifyFDs.count where effects.notifiedQueues & (1 << q) != 0 {
            signal(notifyFDs[q])
        }
        if effects.stateChanged { signal(controlFD) }
        if effects.interrupt { raiseInterrupt() }
    }

    private func signal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    private func drain(_ fd: Int32) {
        var value: UInt64 = 0
        _ = read(fd, &value, 8)
    }

    private func raiseInterrupt() {
        signal(wakeFD)
        switch interruptLine {
        case .irqfd(let fd): signal(fd)
        case .irqLine(let vm, let gsi):
            _ = ckvm_irq_line(vm, gsi, 1)
            _ = ckvm_irq_line(vm, gsi, 0)
        case .callback(let f): f()
        case .wakeOnly: break
        }
    }

    /// The sleep doorbell with a network: sleeps on the host like the console sink would,
    /// but returns as soon as the device raises an interrupt (also one raised just before:
    /// the guest then finds it pending), so that a frame arriving while the guest idles is
    /// not held up until the sleep ends. A signal (the watchdog) also ends it.
    func sleep(nanoseconds: UInt64) {
        var p = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
        let r = ckvm_poll_ns(&p, 1, Int64(min(nanoseconds, UInt64(Int64.max))))
        if r > 0 { drain(wakeFD) }
    }

    // MARK: the I/O thread

    /// Starts the I/O thread.
    /// Whether the I/O thread runs (or ran).
    var isStarted: Bool { thread != nil || finished }

    func start() throws(VMMError) {
        guard thread == nil, !finished else { return }
        let context = Unmanaged.passRetained(self).toOpaque()
        var tid = pthread_t()
        // The thread blocks every signal (it inherits this mask): process-directed signals
        // such as the watchdog's SIGALRM must reach the vCPU thread, whose KVM_RUN they stop.
        // Except SIGSYS: the sandbox's report of a forbidden call (a blocked SIGSYS from
        // seccomp kills the thread's process silently instead).
        var all = sigset_t()
        var previous = sigset_t()
        sigfillset(&all)
        sigdelset(&all, SIGSYS)
        pthread_sigmask(SIG_SETMASK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        let r = pthread_create(&tid, nil, { raw in
            let device = Unmanaged<NetworkDevice>.fromOpaque(raw!).takeRetainedValue()
            device.ioLoop()
            return nil
        }, context)
        guard r == 0 else {
            Unmanaged<NetworkDevice>.fromOpaque(context).release()
            throw .kvmCall("pthread_create (network I/O thread)", r)
        }
        thread = tid
    }

    /// Stops the I/O thread (which shuts the backend and forwarders down on its way out) and
    /// closes every descriptor. Idempotent. Without a started thread, shuts the backend down
    /// on the calling thread.
    func stop() {
        if let tid = thread {
            pthread_mutex_lock(mutex)
            stopping = true
            pthread_mutex_unlock(mutex)
            signal(controlFD)
            pthread_join(tid, nil)
            thread = nil
        } else if !finished {
            finished = true
            backend.shutdown()
            forwarders.forEach { $0.shutdown() }
        }
        closeDescriptors()
    }

    private func ioLoop() {
        var fds: [pollfd] = []
        var readyBackend: [pollfd] = []
        // Whether the receiveq may hold buffers; false stops reading the backend (POLLIN is
        // masked) until the driver notifies the receiveq or the device state changes.
        var rxBuffers = false
        var backendStalled = false
        while true {
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: controlFD, events: Int16(POLLIN), revents: 0))
            for fd in notifyFDs { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            var forwarderRanges: [Range<Int>] = []
            for f in forwarders {
                let start = fds.count
                fds.append(contentsOf: f.pollDescriptors())
                forwarderRanges.append(start..<fds.count)
            }
            let backendStart = fds.count
            for var p in backend.pollDescriptors() {
                if !rxBuffers { p.events &= ~Int16(POLLIN) }
                fds.append(p)
            }

            // Timeout: none while frames wait for buffers we have; else the backend's deadline.
            var timeout: Int64 = -1
            if rxBuffers && !backendStalled && backend.hasPendingFrames {
                timeout = 0
            } else {
                let deadlines = [backend.nextDeadline] + forwarders.map { $0.nextDeadline }
                if let deadline = deadlines.compactMap({ $0 }).min() {
                    let now = monotonicNanos()
                    timeout = deadline > now ? Int64(min(deadline - now, UInt64(Int64.max))) : 0
                }
            }
            let n = fds.withUnsafeMutableBufferPointer { p in ckvm_poll_ns(p.baseAddress, UInt(p.count), timeout) }
            if n < 0 && n != -EINTR {
                // Nothing sensible to do but not spin: a short pause.
                usleep(1000)
            }
            let now = monotonicNanos()
            let control = fds[0].revents != 0
            if control { drain(controlFD) }
            let rxNotified = fds[1].revents != 0
            if rxNotified { drain(notifyFDs[0]) }
            if fds[2].revents != 0 { drain(notifyFDs[1]) }

            pthread_mutex_lock(mutex)
            let stop = stopping
            pthread_mutex_unlock(mutex)
            if stop { break }

            for (f, range) in zip(forwarders, forwarderRanges) {
                f.service(Array(fds[range]), now: now)
            }
            readyBackend.removeAll(keepingCapacity: true)
            for p in fds[backendStart...] where p.revents != 0 { readyBackend.append(p) }
            backend.service(readyBackend, now: now)

            // Transmit first (a backend may answer a frame at once: ARP, a TCP ACK), then
            // let the backend work outside the device lock, then receive.
            var usedInterrupt = false
            var configInterrupt = false
            pthread_mutex_lock(mutex)
            var transmitted = false
            if transport.isLive, let tx = transport.queues[VirtioNetDevice.transmitQueue] {
                let o = net.transmitAll(queue: tx, backend: backend)
                transmitted = o.completed > 0
                usedInterrupt = o.interrupt
                if let why = o.broken { configInterrupt = transport.markBroken("transmitq: \(why)").interrupt }
            }
            pthread_mutex_unlock(mutex)
            if transmitted { backend.service([], now: now) }

            pthread_mutex_lock(mutex)
            if transport.isLive, let rx = transport.queues[VirtioNetDevice.receiveQueue] {
                if rxNotified || control { rxBuffers = true }
                let pending = backend.hasPendingFrames
                if rxBuffers && (rxNotified || control || !readyBackend.isEmpty || pending || transmitted) {
                    let (o, left) = net.receiveAll(queue: rx, backend: backend)
                    rxBuffers = left
                    usedInterrupt = usedInterrupt || o.interrupt
                    if let why = o.broken {
                        rxBuffers = false
                        configInterrupt = transport.markBroken("receiveq: \(why)").interrupt || configInterrupt
                    }
                    // A backend that claims pending frames but hands none out must not make
                    // the loop spin with a zero timeout.
                    backendStalled = pending && o.completed == 0 && left && backend.hasPendingFrames
                }
            } else {
                rxBuffers = false
            }
            if usedInterrupt { transport.interruptStatus |= VirtioMMIORegister.interruptUsedBuffer }
            pthread_mutex_unlock(mutex)
            if usedInterrupt || configInterrupt { raiseInterrupt() }
        }
        finished = true
        backend.shutdown()
        forwarders.forEach { $0.shutdown() }
    }

    // MARK: diagnostics

    /// The transport's status register and why it needs a reset, if it does.
    public var state: (status: UInt32, broken: String?) {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return (transport.status, transport.brokenReason)
    }
}
