import GuestABI
#if canImport(Glibc)
import Glibc
#endif

/// Where the guest's Ethernet frames go and where its incoming frames come from: the tap
/// device (`TapBackend`) or the user-mode network stack (another file).
///
/// Threading: every call happens on the VM's network I/O thread, never concurrently, and
/// never after `shutdown()` (which is called exactly once, on that thread when the VM stops,
/// or on the VMM's thread if the VM stopped before the I/O thread started).
///
/// The I/O thread's loop, each wake-up:
///   1. `poll()` on the device's eventfds and `pollDescriptors()` (POLLIN is masked off the
///      backend's descriptors while the guest has no receive buffers posted: frames could
///      not be delivered, so the backend is not asked to read any), with a timeout from
///      `nextDeadline`;
///   2. `service(ready, now:)` with the backend's entries that have revents (an empty array
///      on a timeout);
///   3. every frame the guest queued → `transmit`, then `service([], now:)` again;
///   4. while the guest has receive buffers and (a backend descriptor was ready or
///      `hasPendingFrames`): `receive(into:)` until it returns nil;
///   5. one interrupt for the batch if the driver wants one.
public protocol NetworkBackend: AnyObject {
    /// A frame the guest sent (Ethernet, without the virtio header).
    /// The bytes are only valid during the call (they may be guest memory).
    func transmit(_ frame: UnsafeRawBufferPointer)
    /// Copies the next frame for the guest into `buffer` and returns its length; nil if none is ready now.
    /// `buffer` holds at least 65,536 bytes. A frame longer than the guest's receive buffer
    /// is dropped by the device (no offloads are negotiated: frames are at most MTU + 14).
    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int?
    /// Descriptors (and poll events) the I/O thread must watch for this backend.
    /// Asked again at every wake-up, so the set may change.
    func pollDescriptors() -> [pollfd]
    /// Called on the I/O thread after poll() returned with these revents (possibly none: a timeout), and after transmit batches.
    func service(_ ready: [pollfd], now: UInt64)
    /// When service(_:now:) must run next even without descriptor activity (monotonic ns), nil = no deadline.
    var nextDeadline: UInt64? { get }
    /// Whether receive(into:) has frames waiting (so the I/O thread keeps filling the RX queue without a poll).
    var hasPendingFrames: Bool { get }
    /// Called once when the VM stops (close sockets and descriptors).
    func shutdown()
}

/// A VM's network interface: one virtio-net device in virtio-mmio slot 0.
public struct NetworkConfiguration {
    /// Where frames go. Its methods run on the VM's I/O thread only (see `NetworkBackend`).
    public var backend: any NetworkBackend
    public var mac: MACAddress
    /// The guest's addresses, written to `BootInfo.network` for the kernel.
    public var ipv4: IPv4
    /// Ports the VMM publishes through the host kernel (`PortForwarder`): this only reaches
    /// the guest when the host routes `ipv4.address` to it, i.e. with `TapBackend`. A
    /// user-mode backend publishes ports itself. Bound before the guest starts; a bind error
    /// stops the boot with a message naming the port.
    public var forwards: [PortForward] = []
    /// Use KVM_IOEVENTFD / KVM_IRQFD where KVM has them (default). False forces the
    /// fallbacks (QueueNotify through a userspace MMIO exit, KVM_IRQ_LINE pulses): for
    /// measurements and tests.
    public var kernelAcceleration = true
    /// Whether the guest takes the device's interrupt (I/O APIC pin, in-kernel irqchip,
    /// irqfd). The apus kernel does not: it polls the rings and sleeps on the sleep doorbell,
    /// which the device ends early (see `NetworkDevice.sleep`). Without interrupts no irqchip
    /// is created, which saves ~3 ms of VM setup and teardown on this host.
    public var guestInterrupts = false
    /// Start the I/O thread only when the guest's driver first touches the device (a program
    /// that never opens a socket then pays nothing for the network). Only when nothing from
    /// the host side can arrive before that: no published ports.
    public var startsOnDemand = false

    /// `mac` nil: a locally administered 52:54:00:xx:xx:xx address derived from the process
    /// id (`MACAddress.derived(from:)`; pass one derived from the boot seed for more spread).
    public init(backend: any NetworkBackend, mac: MACAddress? = nil, ipv4: IPv4, forwards: [PortForward] = []) {
        self.backend = backend
        self.mac = mac ?? .derived(from: UInt64(UInt32(bitPattern: getpid())))
        self.ipv4 = ipv4
        self.forwards = forwards
    }

    /// The boot info block for a device in slot 0.
    public var bootInfo: NetworkInfo {
        var info = NetworkInfo()
        info.virtioBase = GuestABI.virtioBase.raw
        info.virtioStride = UInt32(GuestABI.virtioStride)
        info.virtioSlotCount = 1
        info.virtioFirstIRQ = GuestABI.virtioFirstIRQ
        info.ipv4Address = ipv4.address.value
        info.ipv4PrefixLength = ipv4.prefixLength
        info.ipv4Gateway = ipv4.gateway?.value ?? 0
        info.ipv4DNS = ipv4.dns?.value ?? 0
        return info
    }
}

// The value types of a network configuration, nested so that they cannot clash with
// NetStack's own address types in modules that import both.
extension NetworkConfiguration {
    /// A 48-bit Ethernet address.
    public struct MACAddress: Equatable, Sendable, CustomStringConvertible {
        public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

        public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
            bytes = (b0, b1, b2, b3, b4, b5)
        }

        /// A locally administered unicast address 52:54:00:xx:xx:xx, the low 24 bits from `seed`
        /// (e.g. the boot seed or the process id), so concurrent VMs get different addresses.
        public static func derived(from seed: UInt64) -> MACAddress {
            // A 64-bit mix so that nearby seeds (consecutive PIDs) differ in every byte.
            var x = seed &+ 0x9e37_79b9_7f4a_7c15
            x = (x ^ (x >> 30)) &* 0xbf58_476d_1ce4_e5b9
            x = (x ^ (x >> 27)) &* 0x94d0_49bb_1331_11eb
            x ^= x >> 31
            return MACAddress(0x52, 0x54, 0x00, UInt8(truncatingIfNeeded: x >> 16), UInt8(truncatingIfNeeded: x >> 8), UInt8(truncatingIfNeeded: x))
        }

        public var array: [UInt8] { [bytes.0, bytes.1, bytes.2, bytes.3, bytes.4, bytes.5] }

        public var description: String {
            array.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
        }

        public static func == (a: MACAddress, b: MACAddress) -> Bool { a.array == b.array }
    }

    /// An IPv4 address as a 32-bit value whose most significant byte is the first on the wire
    /// (10.0.3.2 = 0x0a00_0302), the convention of `NetworkInfo`.
    public struct IPv4Address: Equatable, Hashable, Sendable, CustomStringConvertible {
        public var value: UInt32
        public init(_ value: UInt32) { self.value = value }
        public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
            value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
        }

        /// Parses dotted quad notation ("10.0.3.2"); nil for anything else.
        public init?(_ text: String) {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var v: UInt32 = 0
            for p in parts {
                guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(p), n <= 255 else { return nil }
                v = v << 8 | n
            }
            value = v
        }

        public static let any = IPv4Address(0)

        public var description: String {
            "\(value >> 24).\((value >> 16) & 0xff).\((value >> 8) & 0xff).\(value & 0xff)"
        }

        /// The netmask of a prefix length (0…32).
        public static func netmask(prefix: UInt8) -> UInt32 {
            prefix == 0 ? 0 : ~UInt32(0) << UInt32(32 - min(prefix, 32))
        }
    }

    /// The guest interface's IPv4 configuration, passed to the kernel in `BootInfo.network`.
    public struct IPv4: Equatable, Sendable {
        public var address: IPv4Address
        public var prefixLength: UInt8
        public var gateway: IPv4Address?
        public var dns: IPv4Address?

        public init(address: IPv4Address, prefixLength: UInt8, gateway: IPv4Address? = nil, dns: IPv4Address? = nil) {
            self.address = address
            self.prefixLength = prefixLength
            self.gateway = gateway
            self.dns = dns
        }
    }

    /// One published port: connections to hostAddress:hostPort on the host are relayed to
    /// guestPort of the guest's address (see `PortForwarder`).
    public struct PortForward: Equatable, Sendable {
        public enum Proto: Sendable { case tcp, udp }
        public var proto: Proto
        public var hostAddress: IPv4Address
        public var hostPort: UInt16
        public var guestPort: UInt16

        public init(_ proto: Proto = .tcp, hostAddress: IPv4Address = .any, hostPort: UInt16, guestPort: UInt16) {
            self.proto = proto
            self.hostAddress = hostAddress
            self.hostPort = hostPort
            self.guestPort = guestPort
        }
    }
}
