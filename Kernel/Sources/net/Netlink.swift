import GuestABI
import LinuxABI
import NetStack

/// An AF_NETLINK socket of the NETLINK_ROUTE family: what the program sends is answered at
/// once (LinuxABI's `Netlink.respond`, from `interfaces()`), the answers queued as datagrams
/// for recv. Enough for getifaddrs and if_nameindex (glibc and musl); no multicast groups,
/// no changes to links or addresses (their requests get EOPNOTSUPP).
final class NetlinkSocket {
    /// The port id (nl_pid): 0 until bound (by bind, or at the first send or getsockname).
    var portID: UInt32 = 0
    var queue: [[UInt8]] = []
    /// Changes whenever a datagram is queued or taken (edge-triggered epoll).
    var changes: UInt64 = 0
    /// Port ids in use, so each socket has its own.
    nonisolated(unsafe) static var boundPorts: [UInt32] = []

    /// Linux's autobind: the process's pid for its first socket, then numbers from
    /// 0x8000_0000 down... here counted up from there; a requested id (bind) must be free.
    func bind(_ requested: UInt32) throws(Errno) {
        if portID != 0 {
            guard requested == 0 || requested == portID else { throw .EINVAL }
            return
        }
        if requested != 0 {
            guard !NetlinkSocket.boundPorts.contains(requested) else { throw .EADDRINUSE }
            portID = requested
        } else {
            var candidate = UInt32(bitPattern: Process.current.pid)
            if NetlinkSocket.boundPorts.contains(candidate) {
                candidate = 0x8000_0000
                while NetlinkSocket.boundPorts.contains(candidate) { candidate += 1 }
            }
            portID = candidate
        }
        NetlinkSocket.boundPorts.append(portID)
    }

    func close() {
        NetlinkSocket.boundPorts.removeAll { $0 == portID && portID != 0 }
        queue = []
    }

    /// A request datagram: answered at once. ECONNREFUSED for a destination other than the
    /// kernel (port 0): there are no other netlink users to talk to.
    func send(_ bytes: UnsafeRawBufferPointer, to destination: SocketAddress?) throws(Errno) -> Int {
        if let destination {
            guard case .netlink(let port, _) = destination else { throw .EINVAL }
            guard port == 0 else { throw .ECONNREFUSED }
        }
        try bind(0)
        let answers = Netlink.respond(to: bytes, portID: portID, interfaces: NetlinkSocket.interfaces())
        let size = answers.reduce(0) { $0 + $1.count }
        guard PhysicalMemory.canGrantApp(bytes: size + 256) else { throw .ENOBUFS }
        queue += answers
        if !answers.isEmpty {
            changes &+= 1
            Scheduler.wakeRestartingWaiters()
        }
        return bytes.count
    }

    /// One datagram (cut to the buffer: the count, the full length, whether it was cut).
    /// An empty queue waits (restartable) or is EAGAIN.
    func receive(into buffer: UnsafeMutableRawBufferPointer, peek: Bool, nonblocking: Bool) throws(Errno) -> (Int, Int) {
        guard let first = queue.first else {
            if nonblocking { throw .EAGAIN }
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
            Scheduler.blockCurrentRestarting(deadline: 0)
            return (0, 0)
        }
        let n = min(first.count, buffer.count)
        first.withUnsafeBytes { if n > 0 { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) } }
        if !peek {
            queue.removeFirst()
            changes &+= 1
        }
        return (n, first.count)
    }

    var pollEvents: UInt32 { (queue.isEmpty ? 0 : 1) | 4 }

    /// The VM's interfaces: lo (127.0.0.1/8, ::1/128), and eth0 when there is a network
    /// device, with its MAC, its IPv4 address, its link-local IPv6 address (EUI-64 of the
    /// MAC, as NetStack answers it) and its global IPv6 address if configured.
    static func interfaces() -> [NetlinkInterface] {
        typealias I = NetlinkInterface
        var lo = I(index: 1, name: Array("lo".utf8), flags: I.IFF_UP | I.IFF_LOOPBACK | I.IFF_RUNNING | I.IFF_LOWER_UP,
                   mtu: 65536, hardwareType: I.ARPHRD_LOOPBACK, hardwareAddress: [0, 0, 0, 0, 0, 0], addresses: [])
        lo.addresses = [I.Address(bytes: [127, 0, 0, 1], prefixLength: 8, scope: 254),
                        I.Address(bytes: [UInt8](repeating: 0, count: 15) + [1], prefixLength: 128, scope: 254)]
        _ = Network.current  // starts the device (and learns its MAC) on first use
        guard VirtioNet.present else { return [lo] }
        let info = Kernel.boot.network
        let m = VirtioNet.mac
        let mac = [m.0, m.1, m.2, m.3, m.4, m.5]
        var eth = I(index: 2, name: Array("eth0".utf8),
                    flags: I.IFF_UP | I.IFF_BROADCAST | I.IFF_RUNNING | I.IFF_MULTICAST | I.IFF_LOWER_UP,
                    mtu: 1500, hardwareType: I.ARPHRD_ETHER, hardwareAddress: mac, addresses: [])
        if info.ipv4Address != 0 {
            let a = info.ipv4Address
            eth.addresses.append(I.Address(bytes: [UInt8(a >> 24), UInt8(truncatingIfNeeded: a >> 16),
                                                   UInt8(truncatingIfNeeded: a >> 8), UInt8(truncatingIfNeeded: a)],
                                           prefixLength: info.ipv4PrefixLength, scope: 0))
        }
        if info.ipv6PrefixLength != 0 {
            eth.addresses.append(I.Address(bytes: bigEndianBytes(info.ipv6Address.0) + bigEndianBytes(info.ipv6Address.1),
                                           prefixLength: UInt8(truncatingIfNeeded: info.ipv6PrefixLength), scope: 0))
        }
        let linkLocal: [UInt8] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, mac[0] ^ 0x02, mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]]
        eth.addresses.append(I.Address(bytes: linkLocal, prefixLength: 64, scope: 253))
        return [lo, eth]
    }

    static let SIOCGIFNAME: UInt32 = 0x8910, SIOCGIFINDEX: UInt32 = 0x8933

    /// ioctl(SIOCGIFINDEX / SIOCGIFNAME) on a socket, as if_nametoindex and if_indextoname
    /// ask: struct ifreq (40 bytes) has ifr_name[16] @0 and ifr_ifindex (int) @16. ENODEV for
    /// no such interface, ENOTTY on a descriptor that is no socket.
    static func interfaceIoctl(_ fd: Int32, _ request: UInt32, _ address: UInt64) throws(Errno) -> UInt64 {
        guard let id = KernelObjects.id(of: fd) else { throw .ENOTTY }
        switch KernelObjects.object(id) {
        case .socket, .unixSocket, .netlink: break
        default: throw .ENOTTY
        }
        let ifreq = try UserMemory.writable(address, 40)
        let all = interfaces()
        if request == SIOCGIFINDEX {
            var name: [UInt8] = []
            var i = 0
            while i < 16 && ifreq[i] != 0 { name.append(ifreq[i]); i += 1 }
            guard let match = all.first(where: { $0.name == name }) else { throw .ENODEV }
            ifreq.writeLE(match.index, at: 16)
        } else {
            let index = ifreq.readLE(Int32.self, at: 16)
            guard let match = all.first(where: { $0.index == index }) else { throw .ENODEV }
            for i in 0..<16 { ifreq[i] = i < match.name.count ? match.name[i] : 0 }
        }
        return 0
    }

    private static func bigEndianBytes(_ v: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: v >> (56 - 8 * UInt64($0))) }
    }
}
