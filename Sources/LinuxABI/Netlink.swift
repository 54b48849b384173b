// NETLINK_ROUTE as far as getifaddrs and if_nameindex (glibc and musl) need it: a request
// is parsed into messages, the RTM_GETLINK and RTM_GETADDR dumps are answered from a list of
// interfaces, anything else gets an NLMSG_ERROR. Pure values: the kernel supplies the
// interfaces and carries the datagrams. Layouts from <linux/netlink.h>, <linux/rtnetlink.h>,
// <linux/if_link.h> and <linux/if_addr.h>.

/// One interface as the dumps describe it.
public struct NetlinkInterface: Equatable, Sendable {
    /// An address of the interface: 4 bytes (IPv4) or 16 (IPv6), in wire order.
    public struct Address: Equatable, Sendable {
        public var bytes: [UInt8]
        public var prefixLength: UInt8
        /// RT_SCOPE_UNIVERSE 0, RT_SCOPE_LINK 253, RT_SCOPE_HOST 254.
        public var scope: UInt8

        public init(bytes: [UInt8], prefixLength: UInt8, scope: UInt8) {
            self.bytes = bytes
            self.prefixLength = prefixLength
            self.scope = scope
        }

        public var family: UInt8 { bytes.count == 4 ? UInt8(SocketConstants.AF_INET) : UInt8(SocketConstants.AF_INET6) }

        /// The IPv4 broadcast address of the subnet (nil for IPv6, /31 and /32).
        var broadcast: [UInt8]? {
            guard bytes.count == 4, prefixLength < 31 else { return nil }
            let value = UInt32(bytes[0]) << 24 | UInt32(bytes[1]) << 16 | UInt32(bytes[2]) << 8 | UInt32(bytes[3])
            let all = value | (UInt32.max >> UInt32(prefixLength))
            return [UInt8(all >> 24), UInt8(truncatingIfNeeded: all >> 16), UInt8(truncatingIfNeeded: all >> 8), UInt8(truncatingIfNeeded: all)]
        }
    }

    public var index: Int32
    public var name: [UInt8]
    /// IFF_* bits (IFF_UP 1, IFF_BROADCAST 2, IFF_LOOPBACK 8, IFF_RUNNING 0x40, IFF_MULTICAST 0x1000).
    public var flags: UInt32
    public var mtu: UInt32
    /// ARPHRD_ETHER 1, ARPHRD_LOOPBACK 772.
    public var hardwareType: UInt16
    /// The link-layer address (6 bytes; zeros for loopback).
    public var hardwareAddress: [UInt8]
    public var addresses: [Address]

    public init(index: Int32, name: [UInt8], flags: UInt32, mtu: UInt32, hardwareType: UInt16,
                hardwareAddress: [UInt8], addresses: [Address]) {
        self.index = index
        self.name = name
        self.flags = flags
        self.mtu = mtu
        self.hardwareType = hardwareType
        self.hardwareAddress = hardwareAddress
        self.addresses = addresses
    }

    public static let IFF_UP: UInt32 = 0x1, IFF_BROADCAST: UInt32 = 0x2, IFF_LOOPBACK: UInt32 = 0x8
    public static let IFF_RUNNING: UInt32 = 0x40, IFF_MULTICAST: UInt32 = 0x1000
    public static let IFF_LOWER_UP: UInt32 = 0x10000
    public static let ARPHRD_ETHER: UInt16 = 1, ARPHRD_LOOPBACK: UInt16 = 772
}

/// Netlink's framing and the route family's answers.
public enum Netlink {
    public static let NETLINK_ROUTE: Int32 = 0

    // struct nlmsghdr (16 bytes): nlmsg_len u32 @0, nlmsg_type u16 @4, nlmsg_flags u16 @6,
    // nlmsg_seq u32 @8, nlmsg_pid u32 @12; messages are padded to 4 bytes.
    public static let headerSize = 16
    public static let NLMSG_NOOP: UInt16 = 1, NLMSG_ERROR: UInt16 = 2, NLMSG_DONE: UInt16 = 3
    public static let NLM_F_REQUEST: UInt16 = 0x1, NLM_F_MULTI: UInt16 = 0x2, NLM_F_ACK: UInt16 = 0x4
    public static let NLM_F_ROOT: UInt16 = 0x100, NLM_F_MATCH: UInt16 = 0x200
    public static let NLM_F_DUMP: UInt16 = 0x300
    public static let RTM_NEWLINK: UInt16 = 16, RTM_GETLINK: UInt16 = 18
    public static let RTM_NEWADDR: UInt16 = 20, RTM_GETADDR: UInt16 = 22

    // Attributes (struct rtattr: rta_len u16, rta_type u16, then the value, padded to 4).
    static let IFLA_ADDRESS: UInt16 = 1, IFLA_BROADCAST: UInt16 = 2, IFLA_IFNAME: UInt16 = 3
    static let IFLA_MTU: UInt16 = 4, IFLA_OPERSTATE: UInt16 = 16
    static let IFA_ADDRESS: UInt16 = 1, IFA_LOCAL: UInt16 = 2, IFA_LABEL: UInt16 = 3, IFA_BROADCAST: UInt16 = 4
    static let IFA_F_PERMANENT: UInt8 = 0x80

    /// One message of a request.
    public struct Message: Equatable, Sendable {
        public var type: UInt16
        public var flags: UInt16
        public var sequence: UInt32
        public var portID: UInt32
        public var payload: [UInt8]

        public init(type: UInt16, flags: UInt16, sequence: UInt32, portID: UInt32, payload: [UInt8]) {
            self.type = type
            self.flags = flags
            self.sequence = sequence
            self.portID = portID
            self.payload = payload
        }
    }

    /// The messages of one datagram, in order. A header whose length is below 16 or runs
    /// past the datagram ends the parse (Linux drops the rest of such a datagram too).
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> [Message] {
        var out: [Message] = []
        var offset = 0
        while bytes.count - offset >= headerSize {
            let r = StructReader(UnsafeRawBufferPointer(rebasing: bytes[offset...]))
            let length = Int(r.get(UInt32.self, at: 0) ?? 0)
            guard length >= headerSize, length <= bytes.count - offset else { break }
            out.append(Message(type: r.get(UInt16.self, at: 4) ?? 0, flags: r.get(UInt16.self, at: 6) ?? 0,
                               sequence: r.get(UInt32.self, at: 8) ?? 0, portID: r.get(UInt32.self, at: 12) ?? 0,
                               payload: Array(bytes[(offset + headerSize)..<(offset + length)])))
            offset += (length + 3) & ~3
        }
        return out
    }

    /// The datagrams answering one request datagram sent by port `portID`: each
    /// RTM_GETLINK / RTM_GETADDR dump (NLM_F_DUMP) is one datagram of NLM_F_MULTI messages
    /// then one with NLMSG_DONE; RTM_GETADDR's family (the payload's first byte: AF_UNSPEC,
    /// AF_INET or AF_INET6) filters the addresses. Any other request that is one
    /// (NLM_F_REQUEST) gets an NLMSG_ERROR of EOPNOTSUPP; replies to NLM_F_ACK of a
    /// successful dump are not sent (the DONE ends it, as on Linux).
    public static func respond(to request: UnsafeRawBufferPointer, portID: UInt32,
                               interfaces: [NetlinkInterface]) -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        for message in parse(request) where message.flags & NLM_F_REQUEST != 0 {
            let isDump = message.flags & NLM_F_DUMP == NLM_F_DUMP
            switch message.type {
            case RTM_GETLINK where isDump:
                var batch: [UInt8] = []
                for i in interfaces { append(&batch, linkMessage(i), type: RTM_NEWLINK, flags: NLM_F_MULTI, message.sequence, portID) }
                if !batch.isEmpty { datagrams.append(batch) }
                datagrams.append(done(message.sequence, portID))
            case RTM_GETADDR where isDump:
                let family = message.payload.first ?? 0
                var batch: [UInt8] = []
                for i in interfaces {
                    for a in i.addresses where family == 0 || family == a.family {
                        append(&batch, addressMessage(i, a), type: RTM_NEWADDR, flags: NLM_F_MULTI, message.sequence, portID)
                    }
                }
                if !batch.isEmpty { datagrams.append(batch) }
                datagrams.append(done(message.sequence, portID))
            default:
                datagrams.append(error(Errno.EOPNOTSUPP, answering: message, portID))
            }
        }
        return datagrams
    }

    /// An NLMSG_ERROR carrying -`code` and the request's header and payload.
    static func error(_ code: Errno, answering m: Message, _ portID: UInt32) -> [UInt8] {
        var payload = le(UInt32(bitPattern: -code.rawValue))
        payload += le(UInt32(headerSize + m.payload.count)) + le(m.type) + le(m.flags) + le(m.sequence) + le(m.portID)
        payload += m.payload
        var out: [UInt8] = []
        append(&out, payload, type: NLMSG_ERROR, flags: 0, m.sequence, portID)
        return out
    }

    static func done(_ sequence: UInt32, _ portID: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        append(&out, le(UInt32(0)), type: NLMSG_DONE, flags: NLM_F_MULTI, sequence, portID)
        return out
    }

    /// RTM_NEWLINK's payload: struct ifinfomsg (16 bytes: family u8, pad, type u16, index
    /// i32, flags u32, change u32) and IFLA_IFNAME, IFLA_MTU, IFLA_OPERSTATE (lo UNKNOWN,
    /// others UP), IFLA_ADDRESS, IFLA_BROADCAST.
    static func linkMessage(_ i: NetlinkInterface) -> [UInt8] {
        var out: [UInt8] = [0, 0] + le(i.hardwareType) + le(UInt32(bitPattern: i.index)) + le(i.flags) + le(UInt32(0))
        attribute(&out, IFLA_IFNAME, i.name + [0])
        attribute(&out, IFLA_MTU, le(i.mtu))
        attribute(&out, IFLA_OPERSTATE, [i.flags & NetlinkInterface.IFF_LOOPBACK != 0 ? 0 : 6])  // UNKNOWN, UP
        attribute(&out, IFLA_ADDRESS, i.hardwareAddress)
        let broadcast: [UInt8] = i.hardwareType == NetlinkInterface.ARPHRD_ETHER
            ? [UInt8](repeating: 0xff, count: i.hardwareAddress.count) : [UInt8](repeating: 0, count: i.hardwareAddress.count)
        attribute(&out, IFLA_BROADCAST, broadcast)
        return out
    }

    /// RTM_NEWADDR's payload: struct ifaddrmsg (8 bytes: family, prefixlen, flags, scope u8,
    /// index u32) and IFA_ADDRESS, IFA_LOCAL (IPv4), IFA_BROADCAST (IPv4 with one),
    /// IFA_LABEL (IPv4).
    static func addressMessage(_ i: NetlinkInterface, _ a: NetlinkInterface.Address) -> [UInt8] {
        var out: [UInt8] = [a.family, a.prefixLength, IFA_F_PERMANENT, a.scope] + le(UInt32(bitPattern: i.index))
        attribute(&out, IFA_ADDRESS, a.bytes)
        if a.bytes.count == 4 {
            attribute(&out, IFA_LOCAL, a.bytes)
            if let b = a.broadcast { attribute(&out, IFA_BROADCAST, b) }
            attribute(&out, IFA_LABEL, i.name + [0])
        }
        return out
    }

    static func attribute(_ out: inout [UInt8], _ type: UInt16, _ value: [UInt8]) {
        out += le(UInt16(4 + value.count)) + le(type) + value
        while out.count % 4 != 0 { out.append(0) }
    }

    static func append(_ out: inout [UInt8], _ payload: [UInt8], type: UInt16, flags: UInt16, _ sequence: UInt32,
                       _ portID: UInt32) {
        out += le(UInt32(headerSize + payload.count)) + le(type) + le(flags) + le(sequence) + le(portID) + payload
        while out.count % 4 != 0 { out.append(0) }
    }

    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        var v = value.littleEndian
        return withUnsafeBytes(of: &v) { Array($0) }
    }
}
