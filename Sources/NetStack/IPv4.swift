// IPv4 (RFC 791): input checks, reassembly, routing, output with fragmentation for datagrams
// larger than the MTU (TCP never needs it: its segments follow the MSS).
//
// Header (20 bytes without options): version|IHL (1) | TOS (1) | total length (2) |
// identification (2) | flags|fragment offset (2: 0x4000 DF, 0x2000 MF, offset in 8-byte units) |
// TTL (1) | protocol (1) | header checksum (2) | source (4) | destination (4) | options.

let protocolICMP: UInt8 = 1
let protocolTCP: UInt8 = 6
let protocolUDP: UInt8 = 17

/// A datagram being reassembled from fragments, identified by (source, destination,
/// protocol, identification) (RFC 791 §3.2).
final class Reassembly {
    let addresses: UInt64          // source << 32 | destination
    let tag: UInt32                // identification << 8 | protocol
    let expiresAt: UInt64
    var payload = Packet(count: 0)
    /// The IP header of the first fragment (offset 0), for delivery.
    var header: Packet?
    /// The disjoint byte ranges present, packed as start << 32 | end.
    var received: [UInt64] = []
    var have = 0
    var totalLength = -1

    init(addresses: UInt64, tag: UInt32, expiresAt: UInt64) {
        self.addresses = addresses
        self.tag = tag
        self.expiresAt = expiresAt
    }
}

extension NetworkStack {
    static let maxReassemblies = 4
    static let maxFragmentsPerDatagram = 64
    static let reassemblyTimeout = 30 * second
    static let loopbackMTU = 65535

    var subnetBroadcast: UInt32 { config.ipv4 | ~config.netmask }

    func onSubnet(_ ip: UInt32) -> Bool { ip & config.netmask == config.ipv4 & config.netmask }

    /// Our own unicast addresses: the interface addresses and the loopback ones.
    func isLocal(_ a: IPAddress) -> Bool {
        a.isLoopback || a.ipv4 == config.ipv4 || isOwn6(a)
    }

    /// IPv4 broadcast or IPv6 multicast: never answered with a TCP reset, ICMP error or echo.
    func isBroadcast(_ a: IPAddress) -> Bool {
        a.ipv4 == 0xffff_ffff || a.ipv4 == subnetBroadcast || a.isMulticast
    }

    /// The source address to use towards `destination`.
    func sourceAddress(for destination: IPAddress) -> IPAddress {
        if destination.isLoopback { return destination.isIPv4 ? .loopback4 : .loopback6 }
        guard destination.isIPv4 else { return destination.isLinkLocal ? linkLocal : global6 }
        return IPAddress(ipv4: config.ipv4)
    }

    /// True when packets to `destination` can be sent (loopback, on-link, or a gateway).
    func routable(_ d: IPAddress) -> Bool {
        isLocal(d) || isBroadcast(d) || onLink(d) || !gateway(for: d).isUnspecified
    }

    /// The offset of the transport header in a packet built for `destination`.
    func transportOffset(_ destination: IPAddress) -> Int {
        ethernetHeaderLength + (destination.isIPv4 ? 20 : 40)
    }

    /// A zeroed packet with room for the link and network headers and `length` transport bytes.
    func makePacket(to destination: IPAddress, length: Int) -> Packet {
        Packet(count: transportOffset(destination) + length)
    }

    // MARK: Input

    func handleIPv4(_ p: UnsafeRawBufferPointer, fromLink: Bool) {
        guard p.count >= 20, p[0] >> 4 == 4 else { return }
        let headerLength = Int(p[0] & 0x0f) * 4
        let totalLength = Int(p.be16(2))
        guard headerLength >= 20, totalLength >= headerLength, totalLength <= p.count,
              checksumValid(onesComplementSum(p.slice(0, headerLength))) else { return }
        let source = IPAddress(ipv4: p.be32(12)), destination = IPAddress(ipv4: p.be32(16))
        if fromLink {
            // Loopback addresses never arrive from the wire; our own source means a loop.
            guard !source.isLoopback, !destination.isLoopback, source.ipv4 != config.ipv4 else { return }
            let ours = destination.ipv4 == config.ipv4 || isBroadcast(destination)
            let dst = p.be32(16)
            let anyUnicast = config.acceptsAnyDestination && dst & 0xf000_0000 < 0xe000_0000 && dst != 0
            guard ours || anyUnicast else { return }
        }
        let header = p.slice(0, headerLength)
        let payload = p.slice(headerLength, totalLength)
        let fragment = p.be16(6)
        if fragment & 0x3fff != 0 {
            reassemble(header, payload, offset: Int(fragment & 0x1fff) * 8, more: fragment & 0x2000 != 0)
            return
        }
        deliver(p[9], source, destination, header, payload)
    }

    func deliver(_ proto: UInt8, _ source: IPAddress, _ destination: IPAddress,
                 _ header: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer) {
        switch proto {
        case protocolTCP: tcpInput(source, destination, payload)
        case protocolUDP: udpInput(source, destination, header, payload)
        case source.isIPv4 ? protocolICMP : protocolICMPv6: icmpInput(source, destination, header, payload)
        default: break
        }
    }

    /// Adds one fragment. Overlapping fragments discard the whole datagram (as Linux and
    /// RFC 5722 do), except exact repeats of data already present, which are ignored.
    private func reassemble(_ header: UnsafeRawBufferPointer, _ data: UnsafeRawBufferPointer, offset: Int, more: Bool) {
        let end = offset + data.count
        guard !data.isEmpty, !more || data.count % 8 == 0, end <= 65535 - 20 else { return }
        let addresses = UInt64(header.be32(12)) << 32 | UInt64(header.be32(16))
        let tag = UInt32(header.be16(4)) << 8 | UInt32(header[9])
        var index = reassemblies.count
        for (i, r) in reassemblies.enumerated() where r.addresses == addresses && r.tag == tag { index = i }
        if index == reassemblies.count {
            guard index < NetworkStack.maxReassemblies else { return }
            reassemblies.append(Reassembly(addresses: addresses, tag: tag, expiresAt: now + NetworkStack.reassemblyTimeout))
        }
        let r = reassemblies[index]
        var consistent = r.received.count < NetworkStack.maxFragmentsPerDatagram
            && (more ? r.totalLength < 0 || end <= r.totalLength : r.totalLength < 0 || r.totalLength == end)
        for range in r.received {
            let lower = Int(range >> 32), upper = Int(range & 0xffff_ffff)
            if !more && upper > end { consistent = false }
            if offset < upper && lower < end {
                if lower <= offset && end <= upper { return }   // a repeat
                consistent = false
            }
        }
        guard consistent else {
            dropReassembly(index)
            return
        }
        if !more { r.totalLength = end }
        if r.payload.count < end {
            let grown = Packet(count: min(max(end, 2 * r.payload.count), 65535))
            grown.put(r.payload.bytes, at: 0)
            r.payload = grown
        }
        r.payload.put(data, at: offset)
        r.received.append(UInt64(offset) << 32 | UInt64(end))
        r.have += data.count
        if offset == 0 {
            let h = Packet(count: header.count)
            h.put(header, at: 0)
            r.header = h
        }
        if r.have == r.totalLength, let h = r.header {
            dropReassembly(index)
            deliver(header[9], IPAddress(ipv4: header.be32(12)), IPAddress(ipv4: header.be32(16)), h.bytes,
                    r.payload.bytes.slice(0, r.have))
        }
    }

    private func dropReassembly(_ i: Int) {
        reassemblies.swapAt(i, reassemblies.count - 1)
        reassemblies.removeLast()
    }

    func reassemblyTimers() {
        for i in reassemblies.indices.reversed() where reassemblies[i].expiresAt <= now { dropReassembly(i) }
    }

    // MARK: Output

    /// Fills in the checksum (at `checksumAt` in the transport header) of the transport message
    /// that fills `packet` after the IP header, over the pseudo-header except for ICMPv4, and
    /// sends it. A checksum of 0 is sent as 0xffff: the same in one's complement, and what UDP
    /// requires (0 = none).
    func sendTransport(_ packet: Packet, from source: IPAddress, to destination: IPAddress, proto: UInt8, checksumAt: Int) {
        let o = transportOffset(destination), length = packet.count - o
        let pseudo = proto == protocolICMP ? 0 : pseudoHeaderSum(source, destination, proto, length)
        let sum = checksumField(packet.sum(o, length) + pseudo)
        packet.put16(sum == 0 ? 0xffff : sum, at: o + checksumAt)
        sendIP(packet, from: source, to: destination, proto: proto)
    }

    /// Completes the network header of `packet` (built by makePacket, transport part filled)
    /// and sends it: loopback, on-link neighbour, or gateway. Datagrams above the MTU are
    /// fragmented; the others carry DF.
    func sendIP(_ packet: Packet, from source: IPAddress, to destination: IPAddress, proto: UInt8) {
        let loop = isLocal(destination)
        guard let dst = destination.ipv4, let src = source.ipv4 else {
            if !source.isIPv4 { sendIPv6(packet, source, destination, proto, loop) }
            return
        }
        let mtu = loop ? NetworkStack.loopbackMTU : config.mtu
        let length = packet.count - ethernetHeaderLength
        ipIdentification &+= 1
        if length <= mtu {
            writeIPv4Header(packet, src, dst, proto, fragment: 0x4000)
            route(packet, loop, destination)
            return
        }
        // Every fragment but the last carries a multiple of 8 payload bytes.
        let chunk = (mtu - 20) & ~7
        let payloadStart = ethernetHeaderLength + 20
        var offset = 0
        while offset < length - 20 {
            let n = min(chunk, length - 20 - offset)
            let p = Packet(count: payloadStart + n)
            p.put(packet.bytes.slice(payloadStart + offset, payloadStart + offset + n), at: payloadStart)
            let more: UInt16 = offset + n < length - 20 ? 0x2000 : 0
            writeIPv4Header(p, src, dst, proto, fragment: more | UInt16(offset / 8))
            route(p, loop, destination)
            offset += n
        }
    }

    private func writeIPv4Header(_ p: Packet, _ src: UInt32, _ dst: UInt32, _ proto: UInt8, fragment: UInt16) {
        let h = ethernetHeaderLength
        p.put32(0x4500_0000 | UInt32(p.count - h), at: h)
        p.put32(UInt32(ipIdentification) << 16 | UInt32(fragment), at: h + 4)
        p.put16(0x4000 | UInt16(proto), at: h + 8)   // TTL 64
        p.put32(src, at: h + 12)
        p.put32(dst, at: h + 16)
        p.put16(checksumField(p.sum(h, 20)), at: h + 10)
    }

    /// Sends a finished IPv4 or IPv6 packet: loopback, broadcast or multicast (RFC 2464 §7:
    /// 33:33 and the low 32 bits of the group), on-link neighbour, or the gateway.
    func route(_ p: Packet, _ loop: Bool, _ d: IPAddress) {
        if loop {
            loopback.push(p)
        } else if isBroadcast(d) {
            emitEthernet(p, to: d.isIPv4 ? MACAddress.broadcast.value : 0x3333_0000_0000 | d.low & 0xffff_ffff)
        } else if onLink(d) {
            sendToNeighbour(d, p)
        } else if !gateway(for: d).isUnspecified {
            sendToNeighbour(gateway(for: d), p)
        }
    }

    /// The default router of `d`'s family; unspecified when none.
    func gateway(for d: IPAddress) -> IPAddress { d.isIPv4 ? IPAddress(ipv4: config.ipv4Gateway) : gateway6 }

    func onLink(_ d: IPAddress) -> Bool {
        guard let ip = d.ipv4 else { return onLink6(d) }
        return onSubnet(ip)
    }
}
