// ICMP for IPv4 (RFC 792): echo replies, port-unreachable for closed UDP ports, and
// destination-unreachable errors reported to connected UDP sockets.
//
// Header: type (1) | code (1) | checksum (2) | rest (4: echo identifier+sequence, else unused)
// then, for errors, the offending IP header and at least the first 8 bytes of its payload.
import LinuxABI

extension NetworkStack {
    func icmpInput(_ source: IPAddress, _ destination: IPAddress, _ p: UnsafeRawBufferPointer) {
        guard p.count >= 8, checksumValid(onesComplementSum(p)) else { return }
        switch p[0] {
        case 8 where !isBroadcast(destination):   // echo request → echo reply, same body
            let reply = makePacket(to: source, length: p.count)
            let o = transportOffset(source)
            reply.put(p, at: o)
            reply[o] = 0
            reply.put16(0, at: o + 2)
            reply.put16(checksumField(reply.sum(o, p.count)), at: o + 2)
            sendIP(reply, from: destination, to: source, proto: protocolICMP)
        case 3 where p.count >= 8 + 20 + 8:   // destination unreachable about a UDP datagram we sent
            let inner = p.slice(8, p.count)
            let innerHeader = Int(inner[0] & 0x0f) * 4
            guard inner[0] >> 4 == 4, innerHeader >= 20, inner.count >= innerHeader + 8, inner[9] == protocolUDP else { return }
            let local = Endpoint(address: IPAddress(ipv4: inner.be32(12)), port: inner.be16(innerHeader))
            let remote = Endpoint(address: IPAddress(ipv4: inner.be32(16)), port: inner.be16(innerHeader + 2))
            let error: Errno = p[1] == 3 ? .ECONNREFUSED : p[1] == 0 ? .ENETUNREACH : .EHOSTUNREACH
            for case let s? in sockets where s.kind == .datagram && s.connected && s.remote == remote
                && s.local.port == local.port {
                s.pendingError = error
                changed()
            }
        default:
            break
        }
    }

    /// Sends ICMP destination unreachable (`code` 3 = port) about the datagram whose IP header
    /// and payload are given, quoting the header and the first 8 payload bytes.
    func sendUnreachable(code: UInt8, _ header: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer,
                         from local: IPAddress, to remote: IPAddress) {
        let quoted = min(payload.count, 8)
        let length = 8 + header.count + quoted
        let packet = makePacket(to: remote, length: length)
        let o = transportOffset(remote)
        packet[o] = 3
        packet[o + 1] = code
        packet.put(header, at: o + 8)
        packet.put(payload.slice(0, quoted), at: o + 8 + header.count)
        packet.put16(checksumField(packet.sum(o, length)), at: o + 2)
        sendIP(packet, from: local, to: remote, proto: protocolICMP)
    }
}
