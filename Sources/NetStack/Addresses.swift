// NetStack: a TCP/IP stack in portable Swift (no Foundation, no hardware), used by the kernel
// (Embedded Swift) for the guest's network and by the VMM for its user-mode network.
//
// Addresses and the small value types of the public API.
import LinuxABI

/// An IP address of either family in 128 bits, so that sockets and TCP handle both with one
/// code path. IPv4 is stored v4-mapped (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2): `high` is 0 and
/// `low` is `0x0000_ffff_xxxx_xxxx`. Bytes are in wire order, most significant first.
public struct IPAddress: Equatable, Sendable {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// `ipv4` has the first wire octet most significant: 10.0.2.15 is 0x0a00020f.
    public init(ipv4: UInt32) {
        self.init(high: 0, low: 0xffff_0000_0000 | UInt64(ipv4))
    }

    public var isIPv4: Bool { high == 0 && low >> 32 == 0xffff }
    public var ipv4: UInt32? { isIPv4 ? UInt32(truncatingIfNeeded: low) : nil }

    public static let any4 = IPAddress(ipv4: 0)
    public static let any6 = IPAddress(high: 0, low: 0)
    public static let loopback4 = IPAddress(ipv4: 0x7f00_0001)
    public static let loopback6 = IPAddress(high: 0, low: 1)

    /// 0.0.0.0 or `::`: "any local address" in bind, "this host" in connect.
    var isUnspecified: Bool { self == .any4 || self == .any6 }
    /// 127.0.0.0/8 or ::1.
    var isLoopback: Bool { isIPv4 ? low & 0xff00_0000 == 0x7f00_0000 : self == .loopback6 }
}

public struct Endpoint: Equatable, Sendable {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }
}

/// A 48-bit Ethernet address; `value` holds it in the low 48 bits, first wire octet most
/// significant (the broadcast address is 0xffff_ffff_ffff).
public struct MACAddress: Equatable, Sendable {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value & 0xffff_ffff_ffff }

    public init(_ b: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        let high: UInt64 = UInt64(b.0) << 40 | UInt64(b.1) << 32 | UInt64(b.2) << 24
        let low: UInt64 = UInt64(b.3) << 16 | UInt64(b.4) << 8 | UInt64(b.5)
        self.init(high | low)
    }

    public static let broadcast = MACAddress(0xffff_ffff_ffff)
}

public struct InterfaceConfig: Sendable {
    public var mac: MACAddress
    public var ipv4: UInt32
    public var ipv4PrefixLength: UInt8
    /// 0 = no gateway: off-subnet destinations are unreachable (ENETUNREACH).
    public var ipv4Gateway: UInt32
    public var mtu: Int
    /// User-mode network (the VMM side of the link): accept IPv4 packets to ANY unicast
    /// destination, answer ARP for any address in the subnet except the asker's own (proxy
    /// ARP), and route TCP SYNs / UDP datagrams with no matching socket to the "any" sockets
    /// (`listenAny`, `bindAny`).
    /// IPv4 only: IPv6 packets are accepted for our own addresses only.
    public var acceptsAnyDestination: Bool
    /// IPv6: a global address as (high, low) 64-bit halves in wire order, (0, 0) = none, and
    /// its on-link prefix. The link-local address fe80::/64 always exists (EUI-64 from `mac`).
    public var ipv6Address: (UInt64, UInt64)
    public var ipv6PrefixLength: UInt8
    /// The IPv6 default router, (0, 0) = none: off-link IPv6 destinations are unreachable.
    public var ipv6Gateway: (UInt64, UInt64)

    public init(mac: MACAddress, ipv4: UInt32, ipv4PrefixLength: UInt8, ipv4Gateway: UInt32 = 0,
                mtu: Int = 1500, acceptsAnyDestination: Bool = false,
                ipv6Address: (UInt64, UInt64) = (0, 0), ipv6PrefixLength: UInt8 = 64,
                ipv6Gateway: (UInt64, UInt64) = (0, 0)) {
        self.mac = mac
        self.ipv4 = ipv4
        self.ipv4PrefixLength = ipv4PrefixLength
        self.ipv4Gateway = ipv4Gateway
        self.mtu = mtu
        self.acceptsAnyDestination = acceptsAnyDestination
        self.ipv6Address = ipv6Address
        self.ipv6PrefixLength = ipv6PrefixLength
        self.ipv6Gateway = ipv6Gateway
    }

    /// The subnet mask of `ipv4PrefixLength` (a prefix above 32 counts as 32).
    var netmask: UInt32 {
        ipv4PrefixLength == 0 ? 0 : UInt32.max << UInt32(32 - min(ipv4PrefixLength, 32))
    }
}

/// A socket handle: a slot index and the slot's generation when the handle was issued, so a
/// handle kept after `close` is detected (EBADF) even when the slot has been reused.
public struct SocketID: Equatable, Sendable {
    var index: UInt32
    var generation: UInt32

    /// index in the low 32 bits, generation in the high 32 bits (for a kernel's fd table).
    public var rawValue: UInt64 { UInt64(generation) << 32 | UInt64(index) }
    public init(rawValue: UInt64) {
        index = UInt32(truncatingIfNeeded: rawValue)
        generation = UInt32(truncatingIfNeeded: rawValue >> 32)
    }
    init(index: Int, generation: UInt32) {
        self.index = UInt32(truncatingIfNeeded: index)
        self.generation = generation
    }
}

public enum SocketKind: Sendable {
    case stream
    case datagram
}

/// poll(2)-style readiness. `hangup` = both directions finished or the connection reset;
/// `readHangup` = the peer's FIN arrived or the read side was shut down; `error` = a pending
/// error for `takeError`.
public struct Readiness: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = Readiness(rawValue: 1)
    public static let writable = Readiness(rawValue: 2)
    public static let readHangup = Readiness(rawValue: 4)
    public static let hangup = Readiness(rawValue: 8)
    public static let error = Readiness(rawValue: 16)
}

/// Socket options, by name (for `option(_:_:)`).
public enum SocketOptionName: Sendable {
    case noDelay, cork, keepAlive, keepIdle, keepInterval, keepCount
    case reuseAddress, reusePort, receiveBufferSize, sendBufferSize, v6Only
}

/// A socket option with its value. Times are in seconds; buffer sizes in bytes (the value is
/// used as given, not doubled as Linux's setsockopt does: the syscall layer decides that).
public enum SocketOption: Equatable, Sendable {
    case noDelay(Bool)
    /// TCP_CORK: while on, only full segments go out (and the FIN with what is left); turning
    /// it off sends what is held at once, Nagle or not. (Linux's 200 ms ceiling on corked
    /// data is not modelled: a program that never uncorks sends its partial tail at close.)
    case cork(Bool)
    case keepAlive(Bool)
    case keepIdle(Int)
    case keepInterval(Int)
    case keepCount(Int)
    case reuseAddress(Bool)
    case reusePort(Bool)
    case receiveBufferSize(Int)
    case sendBufferSize(Int)
    case v6Only(Bool)
}
