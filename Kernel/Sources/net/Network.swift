import GuestABI
import LinuxABI
import NetStack

/// The guest's one network interface: the TCP/IP stack (NetStack) between the sockets and
/// the virtio-net driver. Without a device (`apus run --network none`) the stack still serves
/// loopback (127.0.0.1) so programs that talk to themselves work.
///
/// Everything is polled: `poll()` runs at network syscalls, when a thread would wait, and
/// when the kernel wakes from sleep; it feeds received frames to the stack, runs its timers,
/// sends what it produced and wakes waiting threads when any socket's state moved.
enum Network {
    nonisolated(unsafe) static var stack: NetworkStack? = nil
    nonisolated(unsafe) private static var seenGeneration: UInt64 = 0

    static func start(_ info: NetworkInfo) {
        VirtioNet.start(info)
        var config = InterfaceConfig(mac: MACAddress(VirtioNet.mac), ipv4: info.ipv4Address,
                                     ipv4PrefixLength: info.ipv4PrefixLength, ipv4Gateway: info.ipv4Gateway)
        if info.ipv6PrefixLength != 0 {
            config.ipv6Address = info.ipv6Address
            config.ipv6PrefixLength = UInt8(truncatingIfNeeded: info.ipv6PrefixLength)
            config.ipv6Gateway = info.ipv6Gateway
        }
        if !VirtioNet.present {
            config.ipv4 = 0x7f00_0001
            config.ipv4PrefixLength = 8
            config.ipv4Gateway = 0
        }
        stack = NetworkStack(interface: config, seed: Random.next())
    }

    /// The stack, created on first use (a program that never opens a socket pays nothing).
    static var current: NetworkStack {
        if let s = stack { return s }
        start(Kernel.boot.network)
        return stack!
    }

    /// One round: frames in, timers, frames out, waiters woken if anything changed.
    static func poll() {
        guard let s = stack else { return }
        let now = Clock.monotonicNanos
        VirtioNet.receive { s.input(frame: $0, now: now) }
        if let deadline = s.nextDeadline, deadline <= now { s.advance(now: now) }
        flush()
        VirtioNet.kick()
    }

    /// Sends what the stack has queued and wakes waiters if any socket changed.
    static func flush() {
        guard let s = stack else { return }
        transmit()
        if s.generation != seenGeneration {
            seenGeneration = s.generation
            Scheduler.wakeRestartingWaiters()
        }
    }

    /// Sends what the stack has queued, leaving the news for the next flush: a thread about
    /// to wait calls this, so that a change made during its own call still wakes it (it then
    /// looks again) instead of being consumed before it parks.
    static func transmit() {
        guard let s = stack else { return }
        if s.hasOutput {
            if VirtioNet.present {
                VirtioNet.transmit { s.nextOutputFrame(into: $0) }
            } else {
                // No device: loopback never produces frames for the link; drop the rest.
                var scratch = [UInt8](repeating: 0, count: 1536)
                while s.hasOutput { _ = scratch.withUnsafeMutableBytes { s.nextOutputFrame(into: $0) } }
            }
        }
    }

    /// The program is exiting: what it sent still reaches its peers. Linux keeps closed
    /// connections going after the process exits; here the VM stops with the program, so the
    /// stack gets up to 200 ms to have its bytes and FINs acknowledged (no longer: a peer
    /// that stopped reading must not hold the exit up).
    static func drainBeforeExit() {
        guard let s = stack, VirtioNet.present else { return }
        let deadline = Clock.monotonicNanos &+ 200_000_000
        poll()
        while s.hasUnsentData && Clock.monotonicNanos < deadline {
            Clock.sleep(untilMonotonic: min(deadline, s.nextDeadline ?? deadline))
            poll()
        }
    }

    /// The earliest moment the stack needs `poll()` again (UInt64.max: none).
    static var nextDeadline: UInt64 { stack?.nextDeadline ?? UInt64.max }

    /// Whether a sleep should end now: frames arrived.
    static var hasWork: Bool { VirtioNet.hasReceived }
}
