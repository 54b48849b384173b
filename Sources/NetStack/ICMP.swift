// ICMP for IPv4 (RFC 792) and ICMPv6 (RFC 4443): echo replies, port-unreachable for closed UDP
// ports, and destination-unreachable errors reported to connected UDP sockets; NDP messages
// (RFC 4861) are ICMPv6 too and handled here.
//
// Header: type (1) | code (1) | checksum (2, ICMPv6: over the pseudo-header too) | rest (4:
// echo identifier+sequence, else unused) then, for errors, the offending IP header and at least
// the first 8 bytes of its payload.
// NDP neighbour solicitation (135) / advertisement (136): type | code | checksum | flags (4: NA
// R 0x80, S 0x40, O 0x20 in the first byte) | target address (16) | options (type, length in
// 8-byte units, ...): source (1) or target (2) link-layer address, 6 bytes.
import LinuxABI

extension NetworkStack {
    func icmpInput(_ source: IPAddress, _ destination: IPAddress, _ header: UnsafeRawBufferPointer,
                   _ p: UnsafeRawBufferPointer) {
        let v6 = !source.isIPv4
        guard p.count >= 8,
              checksumValid(onesComplementSum(p) + (v6 ? pseudoHeaderSum(source, destination, protocolICMPv6, p.count) : 0))
        else { return }
        // ICMPv4 types in ICMPv6 numbers: echo request 128, destination unreachable 1.
        let type = v6 ? p[0] : p[0] == 8 ? 128 : p[0] == 3 ? 1 : 0
        switch type {
        case 128 where !isBroadcast(destination):   // echo request → echo reply, same body
            let reply = makePacket(to: source, length: p.count)
            let o = transportOffset(source)
            reply.put(p, at: o)
            reply[o] = v6 ? 129 : 0
            reply.put16(0, at: o + 2)
            sendICMP(reply, from: destination, to: source)
        case 1 where p.count >= 8 + 28:   // destination unreachable about a UDP datagram we sent
            let inner = p.slice(8, p.count)
            let innerHeader = v6 ? 40 : Int(inner[0] & 0x0f) * 4
            guard inner[0] >> 4 == (v6 ? 6 : 4), innerHeader >= 20, inner.count >= innerHeader + 8,
                  inner[v6 ? 6 : 9] == protocolUDP else { return }
            let local = Endpoint(address: v6 ? inner.ipv6(8) : IPAddress(ipv4: inner.be32(12)), port: inner.be16(innerHeader))
            let remote = Endpoint(address: v6 ? inner.ipv6(24) : IPAddress(ipv4: inner.be32(16)), port: inner.be16(innerHeader + 2))
            let error: Errno = p[1] == (v6 ? 4 : 3) ? .ECONNREFUSED : p[1] == 0 ? .ENETUNREACH : .EHOSTUNREACH
            for case let s? in sockets where s.kind == .datagram && s.connected && s.remote == remote
                && s.local.port == local.port {
                s.pendingError = error
                changed()
            }
        case 135, 136:   // NDP: validity checks of RFC 4861 §7.1
            guard header[7] == 255, p[1] == 0, p.count >= 24 else { return }
            let target = p.ipv6(8)
            let solicitation = type == 135, ours = isOwn6(target)
            var mac: UInt64 = 0   // none
            var i = 24
            while i + 8 <= p.count {
                let length = Int(p[i + 1]) * 8
                guard length > 0 else { return }
                if p[i] == type - 134 && length == 8 { mac = UInt64(p.be16(i + 2)) << 32 | UInt64(p.be32(i + 4)) }
                i += length
            }
            // A solicitation for us teaches its sender; an advertisement resolves its target
            // (only when we asked: known entries are refreshed, none are added).
            if mac != 0 { heard(solicitation ? source : target, mac, learn: solicitation && ours) }
            if solicitation && ours { sendNeighbourMessage(136, target: target, from: target, to: source) }
        default:
            break
        }
    }

    /// Sends NDP neighbour solicitation (135: with our link-layer address as the source
    /// option) or a solicited advertisement (136: S and O flags, target link-layer option).
    func sendNeighbourMessage(_ type: UInt8, target: IPAddress, from source: IPAddress, to destination: IPAddress) {
        let packet = makePacket(to: destination, length: 32)
        let o = transportOffset(destination)
        packet[o] = type
        if type == 136 { packet[o + 4] = 0x60 }
        packet.put(target, at: o + 8)
        packet.put16(UInt16(type - 134) << 8 | 1, at: o + 24)
        packet.put48(config.mac.value, at: o + 26)
        sendICMP(packet, from: source, to: destination)
    }

    /// Sends the ICMP message that fills `packet` after the IP header (its checksum field is 0).
    func sendICMP(_ packet: Packet, from source: IPAddress, to destination: IPAddress) {
        sendTransport(packet, from: source, to: destination, proto: destination.isIPv4 ? protocolICMP : protocolICMPv6,
                      checksumAt: 2)
    }

    /// Sends ICMP destination unreachable, port unreachable (ICMPv4 3/3, ICMPv6 1/4) about the
    /// datagram whose IP header and payload are given, quoting the header and the first 8
    /// payload bytes.
    func sendUnreachable(_ header: UnsafeRawBufferPointer, _ payload: UnsafeRawBufferPointer,
                         from local: IPAddress, to remote: IPAddress) {
        let quoted = min(payload.count, 8)
        let length = 8 + header.count + quoted
        let packet = makePacket(to: remote, length: length)
        let o = transportOffset(remote)
        let v6 = !remote.isIPv4
        packet[o] = v6 ? 1 : 3
        packet[o + 1] = v6 ? 4 : 3
        packet.put(header, at: o + 8)
        packet.put(payload.slice(0, quoted), at: o + 8 + header.count)
        sendICMP(packet, from: local, to: remote)
    }
}
