// The socket API's structures and constants as Linux x86-64 lays them out in user memory:
// socket addresses (sockaddr_in, sockaddr_in6, sockaddr_un), struct msghdr and mmsghdr, and
// the numbers of the socket calls' flags and options.

public enum SocketConstants {
    public static let AF_UNSPEC: UInt16 = 0
    public static let AF_UNIX: UInt16 = 1
    public static let AF_INET: UInt16 = 2
    public static let AF_INET6: UInt16 = 10
    public static let AF_NETLINK: UInt16 = 16

    public static let SOCK_STREAM: Int32 = 1
    public static let SOCK_DGRAM: Int32 = 2
    public static let SOCK_RAW: Int32 = 3
    public static let SOCK_SEQPACKET: Int32 = 5
    public static let SOCK_TYPE_MASK: Int32 = 0xf
    public static let SOCK_NONBLOCK: Int32 = 0o4000
    public static let SOCK_CLOEXEC: Int32 = 0o2000000

    public static let SOL_SOCKET: Int32 = 1
    public static let SO_REUSEADDR: Int32 = 2
    public static let SO_TYPE: Int32 = 3
    public static let SO_ERROR: Int32 = 4
    public static let SO_BROADCAST: Int32 = 6
    public static let SO_SNDBUF: Int32 = 7
    public static let SO_RCVBUF: Int32 = 8
    public static let SO_KEEPALIVE: Int32 = 9
    public static let SO_LINGER: Int32 = 13
    public static let SO_REUSEPORT: Int32 = 15
    public static let SO_RCVLOWAT: Int32 = 18
    public static let SO_RCVTIMEO: Int32 = 20
    public static let SO_SNDTIMEO: Int32 = 21
    public static let SO_ACCEPTCONN: Int32 = 30
    public static let SO_PROTOCOL: Int32 = 38
    public static let SO_DOMAIN: Int32 = 39

    public static let IPPROTO_IP: Int32 = 0
    public static let IPPROTO_TCP: Int32 = 6
    public static let IPPROTO_UDP: Int32 = 17
    public static let IPPROTO_IPV6: Int32 = 41
    public static let TCP_NODELAY: Int32 = 1
    public static let TCP_MAXSEG: Int32 = 2
    public static let TCP_CORK: Int32 = 3
    public static let TCP_KEEPIDLE: Int32 = 4
    public static let TCP_KEEPINTVL: Int32 = 5
    public static let TCP_KEEPCNT: Int32 = 6
    public static let IPV6_V6ONLY: Int32 = 26

    public static let MSG_OOB: Int32 = 1
    public static let MSG_PEEK: Int32 = 2
    public static let MSG_CTRUNC: Int32 = 8
    public static let MSG_TRUNC: Int32 = 0x20
    public static let MSG_DONTWAIT: Int32 = 0x40
    public static let MSG_WAITALL: Int32 = 0x100
    public static let MSG_NOSIGNAL: Int32 = 0x4000
    public static let MSG_CMSG_CLOEXEC: Int32 = 0x4000_0000

    public static let SHUT_RD: Int32 = 0
    public static let SHUT_WR: Int32 = 1
    public static let SHUT_RDWR: Int32 = 2
}

/// A socket address as the calls pass it (a `struct sockaddr_*` of `length` bytes).
///   sockaddr_in  (16): family u16 @0, port u16 big-endian @2, address [4] @4, zero [8] @8
///   sockaddr_in6 (28): family u16 @0, port u16 big-endian @2, flowinfo u32 @4, address [16] @8,
///                      scope_id u32 @24
///   sockaddr_un (110): family u16 @0, path [108] @2 (NUL-terminated, or abstract: a leading
///                      NUL and exactly length - 2 bytes)
public enum SocketAddress: Equatable, Sendable {
    /// IPv4; the address's first wire octet is the most significant byte.
    case inet(address: UInt32, port: UInt16)
    /// IPv6; the address in two halves, the first wire octets most significant.
    case inet6(high: UInt64, low: UInt64, port: UInt16, scope: UInt32)
    /// AF_UNIX; `path` without the terminating NUL; abstract names keep their leading NUL;
    /// empty: unnamed (autobind).
    case unix(path: [UInt8])
    /// AF_NETLINK (struct sockaddr_nl, 12 bytes): nl_pid @4 (a port id; 0 is the kernel),
    /// nl_groups @8 (multicast groups).
    case netlink(portID: UInt32, groups: UInt32)
    case unspecified

    public static let inetSize = 16
    public static let inet6Size = 28
    public static let unixPathCapacity = 108
    public static let unixSize = 2 + unixPathCapacity
    public static let netlinkSize = 12

    public var family: UInt16 {
        switch self {
        case .inet: return SocketConstants.AF_INET
        case .inet6: return SocketConstants.AF_INET6
        case .unix: return SocketConstants.AF_UNIX
        case .netlink: return SocketConstants.AF_NETLINK
        case .unspecified: return SocketConstants.AF_UNSPEC
        }
    }

    /// Decodes `bytes` (the caller's `addrlen` bytes). Too short for its family: EINVAL;
    /// unknown family: EAFNOSUPPORT.
    public init(decoding bytes: UnsafeRawBufferPointer) throws(Errno) {
        let r = StructReader(bytes)
        guard let family = r.get(UInt16.self, at: 0) else { throw Errno.EINVAL }
        switch family {
        case SocketConstants.AF_INET:
            guard bytes.count >= Self.inetSize, let port = r.get(UInt16.self, at: 2),
                  let address = r.get(UInt32.self, at: 4) else { throw Errno.EINVAL }
            self = .inet(address: address.byteSwapped, port: port.byteSwapped)
        case SocketConstants.AF_INET6:
            guard bytes.count >= 24, let port = r.get(UInt16.self, at: 2),
                  let high = r.get(UInt64.self, at: 8), let low = r.get(UInt64.self, at: 16) else { throw Errno.EINVAL }
            self = .inet6(high: high.byteSwapped, low: low.byteSwapped, port: port.byteSwapped,
                          scope: r.get(UInt32.self, at: 24) ?? 0)
        case SocketConstants.AF_UNIX:
            let field = bytes.count > Self.unixSize ? Self.unixPathCapacity : bytes.count - 2
            var path: [UInt8] = []
            if field > 0 {
                if bytes[2] == 0 {
                    path = Array(bytes[2..<2 + field])  // abstract: every byte counts
                } else {
                    var i = 2
                    while i < 2 + field && bytes[i] != 0 { path.append(bytes[i]); i += 1 }
                }
            }
            self = .unix(path: path)
        case SocketConstants.AF_NETLINK:
            guard bytes.count >= Self.netlinkSize, let port = r.get(UInt32.self, at: 4),
                  let groups = r.get(UInt32.self, at: 8) else { throw Errno.EINVAL }
            self = .netlink(portID: port, groups: groups)
        case SocketConstants.AF_UNSPEC:
            self = .unspecified
        default:
            throw Errno.EAFNOSUPPORT
        }
    }

    /// The structure's full length (what the calls report in *addrlen).
    public var encodedLength: Int {
        switch self {
        case .inet: return Self.inetSize
        case .inet6: return Self.inet6Size
        case .unix(let path):
            if path.isEmpty { return 2 }
            return 2 + path.count + (path[0] == 0 ? 0 : 1)
        case .netlink: return Self.netlinkSize
        case .unspecified: return 2
        }
    }

    /// Writes as much of the structure as fits in `buffer` (the caller's buffer may be shorter:
    /// Linux truncates and reports the full length). Returns the full length.
    @discardableResult
    public func encode(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var full = [UInt8](repeating: 0, count: encodedLength)
        full.withUnsafeMutableBytes { raw in
            var w = StructWriter(raw)
            w.put(family, at: 0)
            switch self {
            case .inet(let address, let port):
                w.put(port.byteSwapped, at: 2)
                w.put(address.byteSwapped, at: 4)
            case .inet6(let high, let low, let port, let scope):
                w.put(port.byteSwapped, at: 2)
                w.put(high.byteSwapped, at: 8)
                w.put(low.byteSwapped, at: 16)
                w.put(scope, at: 24)
            case .unix(let path):
                for (i, b) in path.enumerated() { raw[2 + i] = b }
            case .netlink(let port, let groups):
                w.put(port, at: 4)
                w.put(groups, at: 8)
            case .unspecified:
                break
            }
        }
        let n = min(buffer.count, full.count)
        for i in 0..<n { buffer[i] = full[i] }
        return full.count
    }
}

/// `struct msghdr` (56 bytes): msg_name u64 @0, msg_namelen u32 @8, msg_iov u64 @16,
/// msg_iovlen u64 @24, msg_control u64 @32, msg_controllen u64 @40, msg_flags i32 @48.
/// `struct mmsghdr` is a msghdr then msg_len u32 @56 (64 bytes with padding).
public struct MessageHeader: Equatable, Sendable {
    public static let size = 56
    public static let multipleSize = 64
    public static let lengthOffset = 56
    public static let flagsOffset = 48
    public static let nameLengthOffset = 8
    public static let controlLengthOffset = 40

    public var name: UInt64
    public var nameLength: UInt32
    public var vectors: UInt64
    public var vectorCount: UInt64
    public var control: UInt64
    public var controlLength: UInt64
    public var flags: Int32

    public init(name: UInt64 = 0, nameLength: UInt32 = 0, vectors: UInt64 = 0, vectorCount: UInt64 = 0,
                control: UInt64 = 0, controlLength: UInt64 = 0, flags: Int32 = 0) {
        self.name = name
        self.nameLength = nameLength
        self.vectors = vectors
        self.vectorCount = vectorCount
        self.control = control
        self.controlLength = controlLength
        self.flags = flags
    }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(Errno) {
        try checkFits(bytes, Self.size)
        let r = StructReader(bytes)
        name = r.get(UInt64.self, at: 0) ?? 0
        nameLength = r.get(UInt32.self, at: 8) ?? 0
        vectors = r.get(UInt64.self, at: 16) ?? 0
        vectorCount = r.get(UInt64.self, at: 24) ?? 0
        control = r.get(UInt64.self, at: 32) ?? 0
        controlLength = r.get(UInt64.self, at: 40) ?? 0
        flags = r.get(Int32.self, at: 48) ?? 0
    }

    public func encode(into bytes: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(bytes, Self.size)
        var w = StructWriter(bytes)
        w.zero(count: Self.size)
        w.put(name, at: 0)
        w.put(nameLength, at: 8)
        w.put(vectors, at: 16)
        w.put(vectorCount, at: 24)
        w.put(control, at: 32)
        w.put(controlLength, at: 40)
        w.put(flags, at: 48)
    }
}
