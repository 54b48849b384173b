// IPv6 (RFC 8200) over Ethernet (RFC 2464): input checks, output, routing; our addresses.
//
// Header (40 bytes): version|traffic class|flow label (4) | payload length (2) | next header (1) |
// hop limit (1) | source (16) | destination (16), then extension headers and the payload.
//
// Addresses: the link-local fe80::/64 address from the MAC (EUI-64), an optional configured
// global address with its on-link prefix, ::1. Off-link destinations go to the configured
// gateway (router advertisements are ignored). Neighbours are resolved by NDP (ICMP.swift)
// in the ARP cache. Not implemented: duplicate address detection (our addresses are used at
// once, and DAD probes from others, with the unspecified source, are not answered), fragments
// (received ones are dropped; UDP datagrams above the MTU fail with EMSGSIZE, TCP follows the
// MSS), MLD, answers to echo requests sent to multicast groups, extension headers other than
// skipped hop-by-hop, destination options and exhausted routing headers.

let etherTypeIPv6: UInt16 = 0x86dd
let protocolICMPv6: UInt8 = 58

extension IPAddress {
    var isMulticast: Bool { high >> 56 == 0xff }
    /// fe80::/10.
    var isLinkLocal: Bool { high >> 54 == 0x3fa }
    /// The solicited-node multicast group of this address, ff02::1:ffXX:XXXX (RFC 4291 §2.7.1).
    var solicitedNode: IPAddress { IPAddress(high: 0xff02 << 48, low: 0x1_ff00_0000 | low & 0xff_ffff) }
}

extension NetworkStack {
    /// Our IPv6 unicast addresses on the interface (::1 is not one).
    func isOwn6(_ a: IPAddress) -> Bool { a == linkLocal || a == global6 }

    /// Link-local addresses and the global address's prefix are on the link.
    func onLink6(_ a: IPAddress) -> Bool {
        let n = Int(min(prefix6, 128))
        let highMask: UInt64 = .max << (64 - min(n, 64)), lowMask: UInt64 = .max << (128 - n)
        return a.isLinkLocal || (a.high ^ global6.high) & highMask | (a.low ^ global6.low) & lowMask == 0
    }

    func handleIPv6(_ p: UnsafeRawBufferPointer, fromLink: Bool) {
        guard p.count >= 40, p[0] >> 4 == 6 else { return }
        let end = 40 + Int(p.be16(4))
        guard end <= p.count else { return }
        let source = p.ipv6(8), destination = p.ipv6(24)
        // v4-mapped addresses never travel in IPv6 packets (RFC 4291 §2.5.5.2): in the stack
        // they mean IPv4. Unspecified or multicast sources get no answers.
        guard !source.isIPv4, !destination.isIPv4, !source.isUnspecified, !source.isMulticast else { return }
        if fromLink {
            // Ours: our unicast addresses, all-nodes ff02::1 and our solicited-node groups.
            let group = destination.high == 0xff02 << 48 && (destination.low == 1
                || destination.low == linkLocal.solicitedNode.low || destination.low == global6.solicitedNode.low)
            guard !source.isLoopback, !isOwn6(source), isOwn6(destination) || group else { return }
        }
        // Skip hop-by-hop options (0), destination options (60) and routing headers with no
        // segments left (43): next header (1) | length in 8 bytes, not counting the first 8 (1).
        var next = p[6], offset = 40
        while next == 0 || next == 60 || next == 43 {
            guard offset + 8 <= end, next != 43 || p[offset + 3] == 0 else { return }
            next = p[offset]
            offset += (Int(p[offset + 1]) + 1) * 8
        }
        guard offset <= end else { return }
        deliver(next, source, destination, p.slice(0, offset), p.slice(offset, end))
    }

    /// Writes the IPv6 header of `packet` and sends it.
    func sendIPv6(_ packet: Packet, _ source: IPAddress, _ destination: IPAddress, _ proto: UInt8, _ loop: Bool) {
        let h = ethernetHeaderLength
        let length = packet.count - h - 40
        guard length <= (loop ? NetworkStack.loopbackMTU : config.mtu) - 40 else { return }
        packet[h] = 0x60
        packet.put16(UInt16(truncatingIfNeeded: length), at: h + 4)
        packet[h + 6] = proto
        packet[h + 7] = proto == protocolICMPv6 && packet[h + 40] >= 133 ? 255 : 64   // NDP: 255 (RFC 4861)
        packet.put(source, at: h + 8)
        packet.put(destination, at: h + 24)
        route(packet, loop, destination)
    }
}
