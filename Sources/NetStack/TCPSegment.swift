// TCP segment format (RFC 9293 §3.1) and building segments.
//
// Header: source port (2) | destination port (2) | sequence (4) | acknowledgment (4) |
// data offset (4 bits, in 32-bit words) + reserved (4) | flags (1) | window (2) | checksum (2) |
// urgent pointer (2) | options (up to 40 bytes) | data.
// Options used: MSS (kind 2, len 4), window scale (kind 3, len 3, only on SYNs),
// timestamps (kind 8, len 10: TSval, TSecr), NOP (kind 1) padding, end of list (kind 0).

let tcpFIN: UInt8 = 0x01
let tcpSYN: UInt8 = 0x02
let tcpRST: UInt8 = 0x04
let tcpPSH: UInt8 = 0x08
let tcpACK: UInt8 = 0x10

/// A received segment's header fields and options (validated by init).
struct TCPSegment {
    var sourcePort: UInt16, destinationPort: UInt16
    var seq: UInt32, ack: UInt32
    var flags: UInt8
    var window: UInt16
    var dataOffset: Int
    var mss = 0            // 0: no MSS option
    var windowScale = -1   // -1: no window scale option
    var hasTimestamp = false
    var tsVal: UInt32 = 0, tsEcr: UInt32 = 0

    /// Nil when the header or its option list is malformed.
    init?(_ p: UnsafeRawBufferPointer) {
        guard p.count >= 20 else { return nil }
        dataOffset = Int(p[12] >> 4) * 4
        guard dataOffset >= 20, dataOffset <= p.count else { return nil }
        sourcePort = p.be16(0)
        destinationPort = p.be16(2)
        seq = p.be32(4)
        ack = p.be32(8)
        flags = p[13]
        window = p.be16(14)
        var i = 20
        while i < dataOffset {
            let kind = p[i]
            if kind == 0 { break }
            if kind == 1 {
                i += 1
                continue
            }
            guard i + 1 < dataOffset else { return nil }
            let length = Int(p[i + 1])
            guard length >= 2, i + length <= dataOffset else { return nil }
            switch (kind, length) {
            case (2, 4): mss = Int(p.be16(i + 2))
            case (3, 3): windowScale = Int(p[i + 2])
            case (8, 10):
                hasTimestamp = true
                tsVal = p.be32(i + 2)
                tsEcr = p.be32(i + 6)
            default: break
            }
            i += length
        }
    }

    func has(_ flag: UInt8) -> Bool { flags & flag != 0 }
}

extension NetworkStack {
    /// TSval: a millisecond clock (RFC 7323 §5.4) from a random origin, so it is never 0 (the
    /// value that means "no echo").
    var timestamp: UInt32 { UInt32(truncatingIfNeeded: now / millisecond) &+ timestampOrigin }

    /// Our MSS towards `remote`: the path MTU (loopback or the link) less IP and TCP headers.
    func ourMSS(_ remote: IPAddress) -> Int {
        (isLocal(remote) ? NetworkStack.loopbackMTU : config.mtu) - (remote.isIPv4 ? 40 : 60)
    }

    /// Builds and sends one segment. With a socket `s`: its options (MSS and window scale on
    /// SYNs, timestamps when negotiated) and `length` data bytes from its send buffer at `seq`.
    func emitTCP(_ local: Endpoint, _ remote: Endpoint, seq: UInt32, ack: UInt32, flags: UInt8, window: UInt16,
                 socket s: Socket? = nil, length: Int = 0) {
        let syn = flags & tcpSYN != 0
        var headerLength = 20
        if let s { headerLength += (syn ? (s.windowScaling ? 8 : 4) : 0) + (s.timestamps ? 12 : 0) }
        let total = headerLength + length
        let packet = makePacket(to: remote.address, length: total)
        let o = transportOffset(remote.address)
        packet.put16(local.port, at: o)
        packet.put16(remote.port, at: o + 2)
        packet.put32(seq, at: o + 4)
        packet.put32(ack, at: o + 8)
        packet[o + 12] = UInt8(headerLength / 4) << 4
        packet[o + 13] = flags
        packet.put16(window, at: o + 14)
        if let s {
            var i = o + 20
            if syn {
                packet.put32(0x0204_0000 | UInt32(ourMSS(remote.address)), at: i)
                i += 4
                if s.windowScaling {
                    packet.put32(0x0103_0300 | UInt32(s.rcvScale), at: i)
                    i += 4
                }
            }
            if s.timestamps {
                packet.put32(0x0101_080a, at: i)
                packet.put32(timestamp, at: i + 4)
                packet.put32(s.tsRecent, at: i + 8)
            }
            if length > 0 {
                s.sendBuffer.copy(from: Int(seq &- s.sendBufferSeq),
                                  into: UnsafeMutableRawBufferPointer(start: packet.base + o + headerLength, count: length))
            }
        }
        sendTransport(packet, from: local.address, to: remote.address, proto: protocolTCP, checksumAt: 16)
    }

    /// Sends a segment of connection `s`: ACK field and window from its receive state.
    func tcpSend(_ s: Socket, seq: UInt32, flags: UInt8, length: Int = 0) {
        let window: UInt16
        if flags & tcpSYN != 0 {
            window = UInt16(min(s.receiveBuffer.free, 65535))   // never scaled (RFC 7323 §2.2)
            s.rcvAdvertised = s.rcvNxt &+ UInt32(window)
        } else {
            window = advertiseWindow(s)
        }
        if flags & tcpACK != 0 {
            s.lastAckSent = s.rcvNxt
            s.delayedAckAt = 0
        }
        emitTCP(s.local, s.remote, seq: seq, ack: flags & tcpACK != 0 ? s.rcvNxt : 0, flags: flags,
                window: window, socket: s, length: length)
    }

    /// An ACK for `s` (a SYN-ACK while the handshake is not complete).
    func sendAck(_ s: Socket) {
        if s.state == .synReceived {
            tcpSend(s, seq: s.iss, flags: tcpSYN | tcpACK)
        } else {
            tcpSend(s, seq: s.sndNxt, flags: tcpACK)
        }
    }

    /// The window field to send, moving the advertised right edge only by at least
    /// min(buffer/2, MSS) (receiver silly-window avoidance, RFC 9293 §3.8.6.2.2) and never
    /// moving it left unless the buffer shrank.
    func advertiseWindow(_ s: Socket) -> UInt16 {
        let largest = 65535 << Int(s.rcvScale)
        var edge = s.rcvNxt &+ UInt32(min(s.receiveBuffer.free, largest))
        let step = UInt32(min(s.receiveBuffer.limit / 2, s.mss))
        if seqLE(s.rcvAdvertised, edge) && seqLT(edge, s.rcvAdvertised &+ step) {
            edge = seqGT(s.rcvAdvertised, s.rcvNxt) ? s.rcvAdvertised : s.rcvNxt
        }
        let window = (edge &- s.rcvNxt) >> UInt32(s.rcvScale)
        s.rcvAdvertised = s.rcvNxt &+ (window << UInt32(s.rcvScale))
        return UInt16(truncatingIfNeeded: window)
    }

    /// After the application read: whether the window grew enough to tell the peer (it at
    /// least doubled and by at least min(buffer/2, MSS)).
    func windowUpdateNeeded(_ s: Socket) -> Bool {
        let current = Int(s.rcvAdvertised &- s.rcvNxt)
        let possible = min(s.receiveBuffer.free, 65535 << Int(s.rcvScale))
        return possible >= 2 * current && possible - current >= min(s.receiveBuffer.limit / 2, s.mss)
    }

    /// Answers a segment that no connection takes with a reset (RFC 9293 §3.10.7.1).
    func sendReset(for seg: TCPSegment, dataLength: Int, _ local: Endpoint, _ remote: Endpoint) {
        if seg.has(tcpRST) { return }
        if seg.has(tcpACK) {
            emitTCP(local, remote, seq: seg.ack, ack: 0, flags: tcpRST, window: 0)
        } else {
            let length = UInt32(dataLength) &+ (seg.has(tcpSYN) ? 1 : 0) &+ (seg.has(tcpFIN) ? 1 : 0)
            emitTCP(local, remote, seq: 0, ack: seg.seq &+ length, flags: tcpRST | tcpACK, window: 0)
        }
    }
}
