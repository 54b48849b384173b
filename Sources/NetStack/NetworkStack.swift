// The stack object: link-side entry points, the output and loopback queues, timers.
//
// Everything runs on the caller's thread inside these calls; time and randomness come in from
// outside (`now`, `seed`), so a test drives the stack deterministically. Packets to our own
// addresses (127.0.0.0/8, ::1, the interface addresses) go to the loopback queue and are processed
// before the public call that produced them returns (a loop, not recursion).
import LinuxABI

/// A FIFO of packets. Each packet is an Ethernet frame: 14 bytes of Ethernet header (filled in
/// when the next hop is known; unused on loopback) then the IP packet.
struct PacketQueue {
    private let empty = Packet(count: 0)
    private var items: [Packet] = []
    private var head = 0
    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    mutating func push(_ packet: Packet) { items.append(packet) }
    mutating func pop() -> Packet? {
        guard head < items.count else { return nil }
        let packet = items[head]
        items[head] = empty   // drop the reference now
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        return packet
    }
}

let ethernetHeaderLength = 14

public final class NetworkStack {
    let config: InterfaceConfig
    /// IPv6: the link-local address (fe80::/64, EUI-64 from the MAC), the global address with
    /// its prefix length (the link-local address and /64 when none is configured) and the
    /// default router (`.any6` = none).
    let linkLocal: IPAddress
    let global6: IPAddress
    let prefix6: UInt8
    let gateway6: IPAddress
    /// The latest time passed in; calls without a `now` parameter use it.
    var now: UInt64 = 0
    private var random: UInt64
    /// Increments whenever any socket's readiness may have changed.
    public private(set) var generation: UInt64 = 0
    var sockets: [Socket?] = []
    var output = PacketQueue()
    var loopback = PacketQueue()
    private var processingLoopback = false
    var neighbours: [Neighbour] = []
    var reassemblies: [Reassembly] = []
    var ipIdentification: UInt16 = 0
    var timestampOrigin: UInt32 = 1
    var acceptCounter: UInt64 = 0

    /// Bounds against floods and driver stalls.
    static let maxOutputFrames = 4096
    static let maxSockets = 4096
    static let defaultBufferSize = 256 * 1024

    public init(interface: InterfaceConfig, seed: UInt64) {
        config = interface
        let m = interface.mac.value
        linkLocal = IPAddress(high: 0xfe80 << 48, low: (m >> 24 ^ 0x02_0000) << 40 | 0xfffe << 24 | m & 0xff_ffff)
        let global = IPAddress(high: interface.ipv6Address.0, low: interface.ipv6Address.1)
        global6 = global.isUnspecified ? linkLocal : global
        prefix6 = global.isUnspecified ? 64 : interface.ipv6PrefixLength
        gateway6 = IPAddress(high: interface.ipv6Gateway.0, low: interface.ipv6Gateway.1)
        random = seed
        ipIdentification = UInt16(truncatingIfNeeded: nextRandom())
        timestampOrigin = UInt32(truncatingIfNeeded: nextRandom()) | 1
    }

    /// splitmix64: ISNs, ephemeral ports, IP identification.
    func nextRandom() -> UInt64 {
        random &+= 0x9e37_79b9_7f4a_7c15
        var z = random
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    func changed() { generation &+= 1 }

    func tick(_ time: UInt64) { if time > now { now = time } }

    // MARK: Link side

    /// Processes one received Ethernet frame (without FCS). Malformed frames are dropped.
    public func input(frame: UnsafeRawBufferPointer, now: UInt64) {
        tick(now)
        handleFrame(frame)
        drainLoopback()
    }

    public var hasOutput: Bool { !output.isEmpty }

    /// Whether some TCP connection still has bytes or a FIN its peer has not acknowledged
    /// (what a kernel waits for before its VM stops with the program).
    public var hasUnsentData: Bool {
        for case let s? in sockets where s.kind == .stream && s.state.rawValue >= TCPState.established.rawValue
            && s.state != .timeWait && !s.reset {
            if s.sendBuffer.count > 0 || s.sndUna != s.sndMax { return true }
        }
        return false
    }

    /// Copies the next frame to send into `buffer` and returns its length; nil when none is
    /// queued. A frame larger than `buffer` is dropped.
    public func nextOutputFrame(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        while let frame = output.pop() {
            guard frame.count <= buffer.count, let target = buffer.baseAddress else { continue }
            target.copyMemory(from: frame.base, byteCount: frame.count)
            return frame.count
        }
        return nil
    }

    /// Queues a finished frame for the link (dropped when the driver has fallen far behind).
    func emitFrame(_ frame: Packet) {
        if output.count < NetworkStack.maxOutputFrames { output.push(frame) }
    }

    /// Processes the loopback queue until it is empty; safe to call from anywhere.
    func drainLoopback() {
        guard !processingLoopback else { return }
        processingLoopback = true
        while let packet = loopback.pop() {
            let p = packet.bytes.slice(ethernetHeaderLength, packet.count)
            packet[ethernetHeaderLength] >> 4 == 6 ? handleIPv6(p, fromLink: false) : handleIPv4(p, fromLink: false)
        }
        processingLoopback = false
    }

    /// Runs every timer due at `now`.
    public func advance(now: UInt64) {
        tick(now)
        neighbourTimers()
        reassemblyTimers()
        for i in sockets.indices {
            if let s = sockets[i], s.kind == .stream { tcpTimers(s) }
        }
        drainLoopback()
    }

    /// The earliest pending timer, or nil when nothing is scheduled.
    public var nextDeadline: UInt64? {
        var earliest = UInt64.max
        func consider(_ t: UInt64) { if t != 0 && t < earliest { earliest = t } }
        for n in neighbours where n.mac == nil { consider(n.deadline) }
        for r in reassemblies { consider(r.expiresAt) }
        for case let s? in sockets where s.kind == .stream {
            consider(s.retransmitAt)
            consider(s.delayedAckAt)
            consider(s.persistAt)
            consider(s.stateTimerAt)
            consider(keepaliveDeadline(s))
        }
        return earliest == .max ? nil : earliest
    }

    // MARK: Socket table

    func allocate(_ s: Socket) -> Int? {
        if let i = sockets.firstIndex(where: { $0 == nil }) {
            sockets[i] = s
            return i
        }
        guard sockets.count < NetworkStack.maxSockets else { return nil }
        sockets.append(s)
        return sockets.count - 1
    }

    /// Frees the slot of a socket nobody can reach any more.
    func release(_ s: Socket) {
        if let i = sockets.firstIndex(where: { $0 === s }) {
            sockets[i] = nil
        }
        s.listener = nil
        changed()
    }

    func socket(_ id: SocketID) throws(Errno) -> Socket {
        let i = Int(id.index)
        guard i < sockets.count, let s = sockets[i], s.generation == id.generation, !s.orphan else {
            throw .EBADF
        }
        return s
    }

    func id(of s: Socket) -> SocketID {
        SocketID(index: sockets.firstIndex(where: { $0 === s }) ?? 0, generation: s.generation)
    }
}
