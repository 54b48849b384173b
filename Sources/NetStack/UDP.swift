// UDP (RFC 768): demultiplexing to sockets, checksums, per-socket receive queues.
//
// Header (8 bytes): source port (2) | destination port (2) | length (2, header included) |
// checksum (2, over the pseudo-header too; 0 = none, sent as 0xffff when it computes to 0).
import LinuxABI

extension NetworkStack {
    func udpInput(_ source: IPAddress, _ destination: IPAddress, _ header: UnsafeRawBufferPointer,
                  _ p: UnsafeRawBufferPointer) {
        guard p.count >= 8 else { return }
        let length = Int(p.be16(4))
        guard length >= 8, length <= p.count else { return }
        if p.be16(6) != 0 || !source.isIPv4 {   // mandatory over IPv6 (RFC 8200 §8.1)
            guard checksumValid(onesComplementSum(p.slice(0, length)) + pseudoHeaderSum(source, destination, protocolUDP, length)) else { return }
        }
        let from = Endpoint(address: source, port: p.be16(0))
        let to = Endpoint(address: destination, port: p.be16(2))
        guard let s = bestMatch(.datagram, to, from) else {
            if isLocal(destination) && !isBroadcast(destination) {
                sendUnreachable(header, p, from: destination, to: source)
            }
            return
        }
        var header = DatagramHeader(from: from, to: to, length: length - 8)
        let headerSize = MemoryLayout<DatagramHeader>.size
        guard s.receiveBuffer.free >= headerSize + header.length else { return }
        withUnsafeBytes(of: &header) { s.receiveBuffer.write($0, at: 0) }
        s.receiveBuffer.write(p.slice(8, length), at: headerSize)
        s.receiveBuffer.commit(headerSize + header.length)
        changed()
    }

    /// How well socket `s` (bound locally) takes traffic to `to`: 0 no, 1 an "any" socket,
    /// 2 bound to the unspecified address, 3 bound to exactly `to.address`.
    func localMatch(_ s: Socket, _ to: Endpoint) -> Int {
        if s.isAny { return 1 }
        guard s.bound, s.local.port == to.port else { return 0 }
        if s.local.address == to.address { return 3 }
        guard isLocal(to.address) || isBroadcast(to.address) else { return 0 }
        switch s.local.address {
        case .any4: return to.address.isIPv4 ? 2 : 0
        case .any6: return !to.address.isIPv4 || !s.v6Only ? 2 : 0
        default: return 0
        }
    }

    /// The socket of `kind` that takes a packet from `from` to `to`: connected sockets over
    /// unconnected ones, specific local addresses over unspecified, "any" sockets last. For
    /// TCP this finds listeners only (connections are matched exactly before).
    func bestMatch(_ kind: SocketKind, _ to: Endpoint, _ from: Endpoint) -> Socket? {
        var best: Socket?
        var bestScore = 0
        for case let s? in sockets where s.kind == kind && !(s.orphan && kind == .datagram) {
            var score = localMatch(s, to)
            if kind == .stream {
                if s.state != .listen { score = 0 }
            } else if s.connected && score > 1 {
                score = s.remote == from ? score + 2 : 0
            }
            if score > bestScore {
                best = s
                bestScore = score
            }
        }
        return best
    }

    /// Sends one UDP datagram.
    func udpOutput(_ bytes: UnsafeRawBufferPointer, from source: Endpoint, to destination: Endpoint) {
        let length = 8 + bytes.count
        let packet = makePacket(to: destination.address, length: length)
        let o = transportOffset(destination.address)
        packet.put16(source.port, at: o)
        packet.put16(destination.port, at: o + 2)
        packet.put16(UInt16(truncatingIfNeeded: length), at: o + 4)
        packet.put(bytes, at: o + 8)
        sendTransport(packet, from: source.address, to: destination.address, proto: protocolUDP, checksumAt: 6)
    }
}

extension Socket {
    /// The header of the first queued datagram (the receive buffer is not empty).
    var nextDatagram: DatagramHeader {
        var header = DatagramHeader(from: local, to: local, length: 0)
        withUnsafeMutableBytes(of: &header) { receiveBuffer.copy(from: 0, into: $0) }
        return header
    }
}
