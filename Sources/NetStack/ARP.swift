// Ethernet II framing and ARP (RFC 826): the neighbour cache, resolution with retries, and the
// packets waiting for it. The cache holds IPv6 neighbours too (resolved by NDP, IPv6.swift).
//
// Ethernet header: destination MAC (6) | source MAC (6) | EtherType (2).
// ARP for IPv4 over Ethernet (28 bytes): htype=1 (2) | ptype=0x0800 (2) | hlen=6 | plen=4 |
// op (2: 1 request, 2 reply) | sender MAC (6) | sender IP (4) | target MAC (6) | target IP (4).

let etherTypeIPv4: UInt16 = 0x0800
let etherTypeARP: UInt16 = 0x0806

/// A neighbour cache entry: resolved (mac set, deadline = expiry) or being resolved (mac nil,
/// deadline = next request, with the packets that wait for it).
struct Neighbour {
    var ip: IPAddress
    var mac: UInt64?
    var deadline: UInt64
    var requests = 0
    var waiting: [Packet] = []
}

extension NetworkStack {
    static let maxNeighbours = 32
    static let maxWaitingPackets = 16
    static let arpRequests = 3
    static let arpRetryInterval = second
    static let neighbourLifetime = 60 * second

    func handleFrame(_ f: UnsafeRawBufferPointer) {
        guard f.count >= ethernetHeaderLength else { return }
        let destination = UInt64(f.be16(0)) << 32 | UInt64(f.be32(2))
        // 33:33:xx:xx:xx:xx: IPv6 multicast (RFC 2464 §7); handleIPv6 keeps the groups we are in.
        guard destination == config.mac.value || destination == MACAddress.broadcast.value
            || destination >> 32 == 0x3333 else { return }
        let payload = f.slice(ethernetHeaderLength, f.count)
        switch f.be16(12) {
        case etherTypeIPv4: handleIPv4(payload, fromLink: true)
        case etherTypeIPv6: handleIPv6(payload, fromLink: true)
        case etherTypeARP: handleARP(payload)
        default: break
        }
    }

    /// Fills in the Ethernet header of `packet` and queues it for the link. Without `type`, the
    /// IP version of the packet chooses it.
    func emitEthernet(_ packet: Packet, to mac: UInt64, type: UInt16 = 0) {
        packet.put48(mac, at: 0)
        packet.put48(config.mac.value, at: 6)
        packet.put16(type != 0 ? type : packet[ethernetHeaderLength] >> 4 == 6 ? etherTypeIPv6 : etherTypeIPv4, at: 12)
        emitFrame(packet)
    }

    func handleARP(_ p: UnsafeRawBufferPointer) {
        guard p.count >= 28, p.be32(0) == 0x0001_0800, p.be16(4) == 0x0604 else { return }
        let op = p.be16(6)
        let senderMAC = UInt64(p.be16(8)) << 32 | UInt64(p.be32(10))
        let senderIP = p.be32(14), targetIP = p.be32(24)
        guard senderIP != 0, senderMAC & 0x0100_0000_0000 == 0 else { return }  // no multicast senders
        // RFC 826 merge: refresh a known sender; learn it when the packet is for us.
        heard(IPAddress(ipv4: senderIP), senderMAC, learn: targetIP == config.ipv4)
        let proxied = config.acceptsAnyDestination && onSubnet(targetIP) && targetIP != senderIP
            && targetIP != subnetBroadcast
        if op == 1 && (targetIP == config.ipv4 || proxied) {
            let reply = Packet(count: ethernetHeaderLength + 28)
            reply.put32(0x0001_0800, at: 14)
            reply.put32(0x0604_0002, at: 18)
            reply.put48(config.mac.value, at: 22)
            reply.put32(targetIP, at: 28)
            reply.put48(senderMAC, at: 32)
            reply.put32(senderIP, at: 38)
            emitEthernet(reply, to: senderMAC, type: etherTypeARP)
        }
    }

    /// `ip` is at `mac` (ARP, NDP): refreshes a known entry, adds one if `learn`.
    func heard(_ ip: IPAddress, _ mac: UInt64, learn: Bool) {
        if let i = neighbours.firstIndex(where: { $0.ip == ip }) {
            resolved(i, mac)
        } else if learn {
            makeRoomForNeighbour()
            neighbours.append(Neighbour(ip: ip, mac: mac, deadline: now + NetworkStack.neighbourLifetime))
        }
    }

    /// Marks entry `i` resolved and sends the packets that waited for it.
    private func resolved(_ i: Int, _ mac: UInt64) {
        neighbours[i].mac = mac
        neighbours[i].deadline = now + NetworkStack.neighbourLifetime
        let waiting = neighbours[i].waiting
        neighbours[i].waiting = []
        for packet in waiting { emitEthernet(packet, to: mac) }
    }

    private func makeRoomForNeighbour() {
        guard neighbours.count >= NetworkStack.maxNeighbours else { return }
        var oldest = 0
        for i in neighbours.indices where neighbours[i].deadline < neighbours[oldest].deadline { oldest = i }
        neighbours.remove(at: oldest)
    }

    /// Sends an IP packet to the on-link neighbour `ip`, resolving its address first if needed.
    func sendToNeighbour(_ ip: IPAddress, _ packet: Packet) {
        if let i = neighbours.firstIndex(where: { $0.ip == ip }) {
            if let mac = neighbours[i].mac, neighbours[i].deadline > now {
                emitEthernet(packet, to: mac)
                return
            }
            if neighbours[i].mac != nil {   // expired: resolve again
                neighbours[i] = Neighbour(ip: ip, mac: nil, deadline: now)
            }
            if neighbours[i].waiting.count < NetworkStack.maxWaitingPackets {
                neighbours[i].waiting.append(packet)
            }
            if neighbours[i].requests == 0 { neighbourTimers() }
            return
        }
        makeRoomForNeighbour()
        neighbours.append(Neighbour(ip: ip, mac: nil, deadline: now, waiting: [packet]))
        neighbourTimers()
    }

    /// Sends due ARP requests or neighbour solicitations; gives up (dropping the waiting packets) after the last one;
    /// forgets expired entries.
    func neighbourTimers() {
        var i = 0
        while i < neighbours.count {
            let n = neighbours[i]
            if n.deadline > now {
                i += 1
                continue
            }
            if n.mac != nil || n.requests >= NetworkStack.arpRequests {
                neighbours.remove(at: i)
                continue
            }
            neighbours[i].requests += 1
            neighbours[i].deadline = now + NetworkStack.arpRetryInterval
            i += 1
            guard let target = n.ip.ipv4 else {
                sendNeighbourMessage(135, target: n.ip, from: sourceAddress(for: n.ip), to: n.ip.solicitedNode)
                continue
            }
            let request = Packet(count: ethernetHeaderLength + 28)
            request.put32(0x0001_0800, at: 14)
            request.put32(0x0604_0001, at: 18)
            request.put48(config.mac.value, at: 22)
            request.put32(config.ipv4, at: 28)
            request.put32(target, at: 38)
            emitEthernet(request, to: MACAddress.broadcast.value, type: etherTypeARP)
        }
    }
}
