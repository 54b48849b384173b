// IPv6: header and ICMPv6 checksums, NDP, TCP and UDP between two stacks and over loopback,
// ping6, and hostile IPv6 frames.
import LinuxABI
import XCTest
@testable import NetStack

/// 2001:db8::x (the documentation prefix).
func global(_ x: UInt64) -> IPAddress { IPAddress(high: 0x2001_0db8_0000_0000, low: x) }
/// The EUI-64 link-local address of the test MACs 02:00:00:00:00:0x: fe80::ff:fe00:x.
func linkLocal(_ x: UInt64) -> IPAddress { IPAddress(high: 0xfe80_0000_0000_0000, low: 0x0000_00ff_fe00_0000 | x) }
let stack6 = global(1), peer6 = global(2)
func ep6(_ a: IPAddress, _ port: UInt16) -> Endpoint { Endpoint(address: a, port: port) }

func makeStack6(gateway: IPAddress? = nil) -> NetworkStack {
    var c = InterfaceConfig(mac: MACAddress(stackMAC), ipv4: stackIP, ipv4PrefixLength: 24)
    c.ipv6Address = (stack6.high, stack6.low)
    if let gateway { c.ipv6Gateway = (gateway.high, gateway.low) }
    return NetworkStack(interface: c, seed: 42)
}

/// Both stacks of a link with global addresses 2001:db8::1 and ::2 (/64).
func dualStackLink(seed: UInt64 = 1) -> SimulatedLink {
    SimulatedLink(seed: seed) { config, i in
        config.ipv6Address = (global(1 + UInt64(i)).high, global(1 + UInt64(i)).low)
    }
}

extension Array where Element == UInt8 {
    mutating func put(_ a: IPAddress, at offset: Int) {
        for i in 0..<8 {
            self[offset + i] = UInt8(truncatingIfNeeded: a.high >> (56 - 8 * UInt64(i)))
            self[offset + 8 + i] = UInt8(truncatingIfNeeded: a.low >> (56 - 8 * UInt64(i)))
        }
    }
    func address(at offset: Int) -> IPAddress {
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<8 {
            high = high << 8 | UInt64(self[offset + i])
            low = low << 8 | UInt64(self[offset + 8 + i])
        }
        return IPAddress(high: high, low: low)
    }
    func be16(_ o: Int) -> UInt16 { UInt16(self[o]) << 8 | UInt16(self[o + 1]) }
}

/// The transport checksum over the IPv6 pseudo-header, computed byte-wise from its RFC 8200
/// §8.1 layout (independent of pseudoHeaderSum).
func referenceChecksum6(_ src: IPAddress, _ dst: IPAddress, _ next: UInt8, _ data: [UInt8]) -> UInt16 {
    var pseudo = [UInt8](repeating: 0, count: 40)
    pseudo.put(src, at: 0)
    pseudo.put(dst, at: 16)
    pseudo.put32(UInt32(data.count), at: 32)
    pseudo[39] = next
    let all = pseudo + data + (data.count % 2 == 1 ? [0] : [])
    var sum: UInt32 = 0
    for i in stride(from: 0, to: all.count, by: 2) { sum += UInt32(all[i]) << 8 | UInt32(all[i + 1]) }
    while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
    return ~UInt16(sum)
}

/// `payload` (whose checksum field is at `checksumAt`, or nil) with its checksum filled in.
func checksummed(_ src: IPAddress, _ dst: IPAddress, _ next: UInt8, _ payload: [UInt8], at checksumAt: Int?) -> [UInt8] {
    var p = payload
    if let at = checksumAt {
        p.put16(0, at: at)
        p.put16(referenceChecksum6(src, dst, next, p), at: at)
    }
    return p
}

/// An Ethernet frame from the peer holding an IPv6 packet (checksum filled in per `next`).
func ipv6Frame(from src: IPAddress = peer6, to dst: IPAddress = stack6, next: UInt8, _ payload: [UInt8],
               hopLimit: UInt8 = 64, destinationMAC: UInt64 = stackMAC, checksum: Bool = true) -> [UInt8] {
    let at: Int? = !checksum ? nil : next == 58 ? 2 : next == 17 ? 6 : next == 6 ? 16 : nil
    let body = checksummed(src, dst, next, payload, at: at)
    var f = [UInt8](repeating: 0, count: 54) + body
    f.put48(destinationMAC, at: 0)
    f.put48(peerMAC, at: 6)
    f.put16(0x86dd, at: 12)
    f[14] = 0x60
    f.put16(UInt16(body.count), at: 18)
    f[20] = next
    f[21] = hopLimit
    f.put(src, at: 22)
    f.put(dst, at: 38)
    return f
}

/// A neighbour solicitation for `target` from the peer (with its link-layer address).
func neighbourSolicitation(_ target: IPAddress, from src: IPAddress = peer6, hopLimit: UInt8 = 255) -> [UInt8] {
    var m = [UInt8](repeating: 0, count: 32)
    m[0] = 135
    m.put(target, at: 8)
    m[24] = 1
    m[25] = 1
    m.put48(peerMAC, at: 26)
    let group = IPAddress(high: 0xff02_0000_0000_0000, low: 0x1_ff00_0000 | target.low & 0xff_ffff)
    return ipv6Frame(from: src, to: group, next: 58, m, hopLimit: hopLimit,
                     destinationMAC: 0x3333_ff00_0000 | target.low & 0xff_ffff)
}

func udp6(_ sport: UInt16, _ dport: UInt16, _ data: [UInt8]) -> [UInt8] {
    var u = [UInt8](repeating: 0, count: 8) + data
    u.put16(sport, at: 0)
    u.put16(dport, at: 2)
    u.put16(UInt16(u.count), at: 4)
    return u
}

struct ParsedIPv6 {
    var etherType: UInt16, destinationMAC: UInt64
    var next: UInt8, hopLimit: UInt8, source: IPAddress, destination: IPAddress
    var payload: [UInt8]
    init?(_ f: [UInt8]) {
        guard f.count >= 54, f.be16(12) == 0x86dd else { return nil }
        etherType = 0x86dd
        destinationMAC = UInt64(f.be16(0)) << 32 | UInt64(f.be16(2)) << 16 | UInt64(f.be16(4))
        next = f[20]
        hopLimit = f[21]
        source = f.address(at: 22)
        destination = f.address(at: 38)
        payload = Array(f[54..<(54 + Int(f.be16(18)))])
    }
    var checksumValid: Bool { referenceChecksum6(source, destination, next, payload) == 0 }
}

final class IPv6ProtocolTests: XCTestCase {
    func testLinkLocalAddressIsEUI64() {
        let stack = makeStack()
        XCTAssertEqual(stack.linkLocal, linkLocal(1))
        let other = NetworkStack(interface: InterfaceConfig(mac: MACAddress((0x52, 0x54, 0x00, 0x12, 0x34, 0x56)),
                                                            ipv4: stackIP, ipv4PrefixLength: 24), seed: 1)
        XCTAssertEqual(other.linkLocal, IPAddress(high: 0xfe80_0000_0000_0000, low: 0x5054_00ff_fe12_3456))
        XCTAssertEqual(stack.global6, linkLocal(1))   // no global address: the link-local one stands in
        XCTAssertTrue(makeStack6().isLocal(stack6))
        XCTAssertFalse(stack.isLocal(.any6))
        XCTAssertEqual(stack6.solicitedNode, IPAddress(high: 0xff02_0000_0000_0000, low: 0x0000_0001_ff00_0001))
    }

    func testPseudoHeaderAndICMPv6ChecksumVectors() {
        // Echo request ::1 → ::1, id 0 seq 0, no data: 0x8000 + (1 + 1 + 8 + 58) = 0x8044.
        let echo: [UInt8] = [128, 0, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(pseudoHeaderSum(.loopback6, .loopback6, 58, 8), 68)
        XCTAssertEqual(checksumField(echo.sum(0, 8) + pseudoHeaderSum(.loopback6, .loopback6, 58, 8)), 0x7fbb)
        XCTAssertEqual(referenceChecksum6(.loopback6, .loopback6, 58, echo), 0x7fbb)
        // Random addresses and payloads agree with the byte-wise reference.
        var random = TestRandom(state: 3)
        for length in [0, 1, 7, 8, 33, 1000, 70_000] {
            let src = IPAddress(high: random.next(), low: random.next()), dst = IPAddress(high: random.next(), low: random.next())
            let data = random.bytes(length)
            let field = checksumField(data.sum(0, length) + pseudoHeaderSum(src, dst, 17, length))
            XCTAssertEqual(field, referenceChecksum6(src, dst, 17, data), "length \(length)")
        }
    }

    func testPing6RepliesWithValidHeaderAndChecksum() throws {
        let stack = makeStack6()
        stack.feed(neighbourSolicitation(stack6))
        // The advertisement: solicited + override, our MAC as target link-layer option.
        let na = try XCTUnwrap(stack.drain().compactMap(ParsedIPv6.init).first)
        XCTAssertEqual(na.destinationMAC, peerMAC)
        XCTAssertEqual(na.hopLimit, 255)
        XCTAssertEqual(na.source, stack6)
        XCTAssertEqual(na.destination, peer6)
        XCTAssertEqual(Array(na.payload[0..<2]), [136, 0])
        XCTAssertEqual(na.payload[4], 0x60)
        XCTAssertEqual(na.payload.address(at: 8), stack6)
        XCTAssertEqual(Array(na.payload[24..<32]), [2, 1, 2, 0, 0, 0, 0, 1])
        XCTAssertTrue(na.checksumValid)
        // Echo request → reply with the same body.
        let request: [UInt8] = [128, 0, 0, 0, 0x12, 0x34, 0, 1, 9, 8, 7]
        for destination in [stack6, linkLocal(1)] {
            stack.feed(ipv6Frame(to: destination, next: 58, request))
            let frames = stack.drain()
            XCTAssertEqual(frames.count, 1)
            let reply = try XCTUnwrap(ParsedIPv6(frames[0]))
            XCTAssertEqual(Array(frames[0][0..<6]), [2, 0, 0, 0, 0, 2])
            XCTAssertEqual(frames[0][14], 0x60)
            XCTAssertEqual(reply.next, 58)
            XCTAssertEqual(reply.hopLimit, 64)
            XCTAssertEqual(reply.source, destination)
            XCTAssertEqual(reply.destination, peer6)
            XCTAssertEqual(reply.payload[0], 129)
            XCTAssertEqual(Array(reply.payload[4...]), Array(request[4...]))
            XCTAssertTrue(reply.checksumValid)
        }
        // Not answered: a bad checksum, all-nodes multicast, another host's address, v4-mapped.
        var bad = ipv6Frame(next: 58, request)
        bad[bad.count - 1] ^= 1
        stack.feed(bad)
        let allNodes = IPAddress(high: 0xff02_0000_0000_0000, low: 1)
        stack.feed(ipv6Frame(to: allNodes, next: 58, request, destinationMAC: 0x3333_0000_0001))
        stack.feed(ipv6Frame(to: global(3), next: 58, request))
        stack.feed(ipv6Frame(from: IPAddress(ipv4: peerIP), next: 58, request))
        XCTAssertTrue(stack.drain().isEmpty)
    }

    func testNeighbourSolicitationValidity() {
        let stack = makeStack6()
        stack.feed(neighbourSolicitation(stack6, hopLimit: 64))      // forwarded: not from the link
        stack.feed(neighbourSolicitation(global(7)))                  // not our address
        var wrongGroup = neighbourSolicitation(stack6)
        wrongGroup[14 + 24 + 15] ^= 0x10                              // another solicited-node group
        stack.feed(wrongGroup)
        XCTAssertTrue(stack.drain().isEmpty)
        stack.feed(neighbourSolicitation(linkLocal(1), from: linkLocal(2)))
        XCTAssertEqual(stack.drain().count, 1)
    }

    func testUnreachablePortGetsICMPv6PortUnreachable() throws {
        let stack = makeStack6()
        stack.feed(neighbourSolicitation(stack6))
        _ = stack.drain()
        let datagram = udp6(1000, 9, [1, 2, 3])
        stack.feed(ipv6Frame(next: 17, datagram))
        let error = try XCTUnwrap(stack.drain().compactMap(ParsedIPv6.init).first)
        XCTAssertEqual(Array(error.payload[0..<2]), [1, 4])
        XCTAssertTrue(error.checksumValid)
        XCTAssertEqual(error.payload[8], 0x60)                        // the quoted IPv6 header
        XCTAssertEqual(error.payload.address(at: 8 + 8), peer6)
        XCTAssertEqual(Array(error.payload[48...]), Array(checksummed(peer6, stack6, 17, datagram, at: 6)[0..<8]))
        // A zero UDP checksum is invalid over IPv6: dropped silently.
        stack.feed(ipv6Frame(next: 17, datagram, checksum: false))
        XCTAssertTrue(stack.drain().isEmpty)
    }

    func testExtensionHeadersAreSkipped() throws {
        let stack = makeStack6()
        let u = try stack.open(.datagram, ipv6: true)
        try stack.bind(u, to: ep6(.any6, 9))
        // Hop-by-hop (8 bytes of padding) then destination options (16 bytes), then UDP.
        let datagram = checksummed(peer6, stack6, 17, udp6(1000, 9, [5, 6]), at: 6)
        var options = [UInt8](repeating: 0, count: 24)
        options[0] = 60
        options[2] = 1; options[3] = 4                                // PadN
        options[8] = 17
        options[9] = 1
        options[10] = 1; options[11] = 12
        stack.feed(ipv6Frame(next: 0, options + datagram))
        let (data, from, to) = try stack.datagram(u)
        XCTAssertEqual(data, [5, 6])
        XCTAssertEqual(from, ep6(peer6, 1000))
        XCTAssertEqual(to, ep6(stack6, 9))
        // A fragment header is not reassembled: dropped.
        stack.feed(ipv6Frame(next: 44, [17, 0, 0, 0, 0, 0, 0, 1] + datagram))
        expectErrno(.EAGAIN) { _ = try stack.datagram(u) }
    }
}

final class IPv6LinkTests: XCTestCase {
    func testNeighbourDiscoveryResolvesAndQueues() throws {
        let link = dualStackLink()
        let r = try link.b.open(.datagram, ipv6: true)
        try link.b.bind(r, to: ep6(.any6, 53))
        let s = try link.a.open(.datagram, ipv6: true)
        for i in 0..<3 { try link.a.sendDatagram(s, [UInt8(i)], to: ep6(peer6, 53)) }
        // Nothing resolved yet: one solicitation to B's solicited-node group, the datagrams wait.
        link.collect()
        XCTAssertEqual(link.seen.count, 1)
        let ns = try XCTUnwrap(ParsedIPv6(link.seen[0].bytes))
        XCTAssertEqual(ns.destinationMAC, 0x3333_ff00_0002)
        XCTAssertEqual(ns.destination, IPAddress(high: 0xff02_0000_0000_0000, low: 0x1_ff00_0002))
        XCTAssertEqual(ns.source, stack6)
        XCTAssertEqual(ns.hopLimit, 255)
        XCTAssertEqual(ns.payload[0], 135)
        XCTAssertEqual(ns.payload.address(at: 8), peer6)
        XCTAssertTrue(ns.checksumValid)
        XCTAssertTrue(link.run { link.b.availableBytes(r) > 0 && link.b.receiveBuffered(r) == 3 })
        for i in 0..<3 { XCTAssertEqual(try link.b.datagram(r).0, [UInt8(i)]) }
        XCTAssertEqual(link.a.neighbours.first { $0.ip == peer6 }?.mac, 0x0200_0000_0002)
        XCTAssertEqual(link.b.neighbours.first { $0.ip == stack6 }?.mac, 0x0200_0000_0001)   // learned from the NS
        // Answers go straight back (B learned A from the solicitation's option).
        link.seen.removeAll()
        try link.b.sendDatagram(r, [9], to: ep6(stack6, link.a.localEndpoint(s)!.port))
        XCTAssertTrue(link.run { link.a.availableBytes(s) > 0 })
        XCTAssertEqual(link.seen.count, 1)
        // Link-local addresses work the same way.
        let t = try link.a.open(.datagram, ipv6: true)
        try link.a.sendDatagram(t, [7], to: ep6(linkLocal(2), 53))
        XCTAssertTrue(link.run { link.b.availableBytes(r) > 0 })
        let (data, from, to) = try link.b.datagram(r)
        XCTAssertEqual(data, [7])
        XCTAssertEqual(from.address, linkLocal(1))
        XCTAssertEqual(to, ep6(linkLocal(2), 53))
    }

    func testUnresolvedNeighbourGivesUp() throws {
        let link = dualStackLink()
        link.pass = { i, _ in i == 0 }    // B is mute
        let s = try link.a.open(.datagram, ipv6: true)
        try link.a.sendDatagram(s, [1], to: ep6(peer6, 53))
        link.run(for: 10 * sec)
        XCTAssertEqual(link.seen.filter { $0.from == 0 }.count, 3)   // three solicitations
        XCTAssertTrue(link.a.neighbours.isEmpty)
        // Off-link without a gateway: unreachable.
        expectErrno(.ENETUNREACH) { try link.a.sendDatagram(s, [1], to: ep6(IPAddress(high: 0x2001_0db9_0000_0000, low: 1), 53)) }
    }

    func testOffLinkGoesToTheGateway() throws {
        let link = SimulatedLink { config, i in
            config.ipv6Address = (global(1 + UInt64(i)).high, global(1 + UInt64(i)).low)
            if i == 0 { config.ipv6Gateway = (linkLocal(2).high, linkLocal(2).low) }
        }
        let s = try link.a.open(.datagram, ipv6: true)
        let far = IPAddress(high: 0x2001_0db9_0000_0000, low: 5)
        try link.a.sendDatagram(s, [1], to: ep6(far, 53))
        link.run(for: sec)
        let frames = link.seen.compactMap { ParsedIPv6($0.bytes) }.filter { $0.next == 17 }
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(frames.first?.destinationMAC, 0x0200_0000_0002)
        XCTAssertEqual(frames.first?.destination, far)
    }

    func testTCPOverIPv6BetweenStacks() throws {
        let link = dualStackLink(seed: 4)
        let l = try link.b.open(.stream, ipv6: true)
        try link.b.bind(l, to: ep6(.any6, 80))
        try link.b.listen(l, backlog: 4)
        let c = try link.a.open(.stream, ipv6: true)
        expectErrno(.EINPROGRESS) { try link.a.connect(c, to: ep6(peer6, 80), now: link.now) }
        var server: SocketID?, peer: Endpoint?
        XCTAssertTrue(link.run {
            if server == nil, let (s, p) = try? link.b.accept(l) { server = s; peer = p }
            return server != nil && link.a.state(c) == .established
        })
        let s = try XCTUnwrap(server)
        XCTAssertEqual(peer, link.a.localEndpoint(c))
        XCTAssertEqual(link.a.localEndpoint(c)?.address, stack6)
        XCTAssertEqual(link.b.localEndpoint(s), ep6(peer6, 80))
        XCTAssertEqual(link.a.rawSocket(c).mss, 1440)
        // Every TCP frame is IPv6 with a valid checksum.
        let segments = link.seen.compactMap { ParsedIPv6($0.bytes) }.filter { $0.next == 6 }
        XCTAssertGreaterThanOrEqual(segments.count, 3)
        XCTAssertTrue(segments.allSatisfy(\.checksumValid))
        XCTAssertFalse(link.seen.contains { $0.bytes[12] == 8 })       // no IPv4, no ARP
        // 300 KB each way under loss, then close.
        link.keepLog = false
        link.loss = 0.02
        var random = TestRandom(state: 8)
        transferAndClose(link, c, s, random.bytes(300_000), random.bytes(300_000), within: 300 * sec)
    }

    func testConnectToClosedPortIsRefused() throws {
        let link = dualStackLink()
        let c = try link.a.open(.stream, ipv6: true)
        expectErrno(.EINPROGRESS) { try link.a.connect(c, to: ep6(peer6, 81), now: link.now) }
        XCTAssertTrue(link.run { link.a.readiness(c).contains(.error) })
        XCTAssertEqual(link.a.takeError(c), .ECONNREFUSED)
    }

    func testUDPPortUnreachableReachesConnectedSocket() throws {
        let link = dualStackLink()
        let c = try link.a.open(.datagram, ipv6: true)
        try link.a.connect(c, to: ep6(peer6, 99), now: link.now)
        try link.a.sendDatagram(c, [1], to: nil)
        XCTAssertTrue(link.run { link.a.readiness(c).contains(.error) })
        XCTAssertEqual(link.a.takeError(c), .ECONNREFUSED)
    }
}

final class IPv6LoopbackTests: XCTestCase {
    func testTCPOverLoopbackAndOwnAddresses() throws {
        let stack = makeStack6()
        let l = try stack.open(.stream, ipv6: true)
        try stack.bind(l, to: ep6(.any6, 8080))
        try stack.listen(l, backlog: 4)
        for target in [IPAddress.loopback6, stack6, linkLocal(1), .any6] {
            let c = try stack.open(.stream, ipv6: true)
            expectErrno(.EINPROGRESS) { try stack.connect(c, to: ep6(target, 8080), now: 0) }
            XCTAssertEqual(stack.state(c), .established)
            let (s, peer) = try stack.accept(l)
            let expected = target == .any6 ? IPAddress.loopback6 : target
            XCTAssertEqual(peer, stack.localEndpoint(c))
            XCTAssertEqual(stack.localEndpoint(c)?.address, expected)
            XCTAssertEqual(stack.localEndpoint(s), ep6(expected, 8080))
            XCTAssertEqual(stack.rawSocket(c).mss, 65475)
            let data = randomBytes(7, 200_000)
            var sent = 0, received: [UInt8] = []
            var now: UInt64 = 0
            while received.count < data.count {
                sent += stack.sendSome(c, data[sent...], now: now)
                while let chunk = try? stack.receiveAll(s, now: now, max: 70_000), !chunk.isEmpty { received += chunk }
                now += ms
                stack.advance(now: now)
            }
            assertSameBytes(received, data)
            stack.close(c, now: now)
            XCTAssertEqual(try stack.receiveAll(s, now: now), [])
            stack.close(s, now: now)
            XCTAssertTrue(stack.drain().isEmpty)
        }
    }

    func testUDPOverLoopback6AndPortUnreachable() throws {
        let stack = makeStack()
        let s = try stack.open(.datagram, ipv6: true)
        try stack.bind(s, to: ep6(.loopback6, 53))
        let c = try stack.open(.datagram, ipv6: true)
        try stack.sendDatagram(c, [1, 2], to: ep6(.loopback6, 53))
        let (data, from, to) = try stack.datagram(s)
        XCTAssertEqual(data, [1, 2])
        XCTAssertEqual(from.address, .loopback6)
        XCTAssertEqual(to, ep6(.loopback6, 53))
        // Without fragmentation: at most 65535 - 48 bytes on loopback, MTU - 48 on the link.
        let big = [UInt8](repeating: 1, count: 65487)
        try stack.sendDatagram(c, big, to: ep6(.loopback6, 53))
        XCTAssertEqual(try stack.datagram(s).0.count, 65487)
        expectErrno(.EMSGSIZE) { try stack.sendDatagram(c, big + [1], to: ep6(.loopback6, 53)) }
        try stack.sendDatagram(c, big + [1], to: Endpoint(address: .loopback4, port: 53))   // IPv4 fragments
        try stack.connect(c, to: ep6(.loopback6, 54), now: 0)
        try stack.sendDatagram(c, [1], to: nil)
        XCTAssertEqual(stack.takeError(c), .ECONNREFUSED)
        XCTAssertTrue(stack.drain().isEmpty)
        let u = try stack.open(.datagram, ipv6: true)
        expectErrno(.EMSGSIZE) { try stack.sendDatagram(u, Array(big[0..<1453]), to: ep6(linkLocal(2), 53)) }
        try stack.sendDatagram(u, Array(big[0..<1452]), to: ep6(linkLocal(2), 53))
        XCTAssertEqual(stack.drain().count, 1)   // the solicitation; the datagram waits for it
    }
}

final class IPv6RobustnessTests: XCTestCase {
    func corpus() -> [[UInt8]] {
        var frames = [neighbourSolicitation(stack6), neighbourSolicitation(linkLocal(1), from: linkLocal(2))]
        var na = [UInt8](repeating: 0, count: 32)
        na[0] = 136
        na[4] = 0x60
        na.put(peer6, at: 8)
        na[24] = 2; na[25] = 1
        na.put48(peerMAC, at: 26)
        frames.append(ipv6Frame(next: 58, na, hopLimit: 255))
        frames.append(ipv6Frame(next: 58, [128, 0, 0, 0, 1, 2, 3, 4, 5]))
        frames.append(ipv6Frame(next: 17, udp6(1000, 9, [1, 2, 3, 4])))
        frames.append(ipv6Frame(next: 17, udp6(1000, 10, [1])))
        var quoted = [UInt8](repeating: 0, count: 40) + checksummed(stack6, peer6, 17, udp6(9, 1000, [1]), at: 6)
        quoted[0] = 0x60
        quoted[6] = 17
        quoted.put(stack6, at: 8)
        quoted.put(peer6, at: 24)
        frames.append(ipv6Frame(next: 58, [1, 4, 0, 0, 0, 0, 0, 0] + quoted))
        var options = [UInt8](repeating: 0, count: 16)
        options[0] = 43
        options[8] = 17
        frames.append(ipv6Frame(next: 0, options + checksummed(peer6, stack6, 17, udp6(1000, 9, [1]), at: 6)))
        for (flags, opts) in [(UInt8(0x02), [2, 4, 5, 0xa0, 1, 3, 3, 7, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0] as [UInt8]),
                              (0x18, [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1] + [1, 2, 3]), (0x10, []), (0x04, []), (0x11, [])] {
            var t = [UInt8](repeating: 0, count: 20) + opts
            t.put16(40000, at: 0)
            t.put16(80, at: 2)
            t.put32(1000, at: 4)
            t.put32(5000, at: 8)
            t[12] = UInt8((20 + min(opts.count, 20)) / 4) << 4
            t[13] = flags
            t.put16(65535, at: 14)
            frames.append(ipv6Frame(next: 6, t))
        }
        return frames
    }

    func busyStack() throws -> NetworkStack {
        let stack = makeStack6(gateway: linkLocal(2))
        let l = try stack.open(.stream, ipv6: true)
        try stack.bind(l, to: ep6(.any6, 80))
        try stack.listen(l, backlog: 16)
        let u = try stack.open(.datagram, ipv6: true)
        try stack.bind(u, to: ep6(.any6, 9))
        return stack
    }

    func checkStillWorks(_ stack: NetworkStack, now: UInt64) throws {
        let l = try stack.open(.stream, ipv6: true)
        try stack.bind(l, to: ep6(.any6, 7777))
        try stack.listen(l, backlog: 1)
        let c = try stack.open(.stream, ipv6: true)
        expectErrno(.EINPROGRESS) { try stack.connect(c, to: ep6(.loopback6, 7777), now: now) }
        let (s, _) = try stack.accept(l)
        XCTAssertEqual(stack.sendSome(c, [1, 2, 3][...], now: now), 3)
        XCTAssertEqual(try stack.receiveAll(s, now: now), [1, 2, 3])
        stack.feed(ipv6Frame(next: 58, [128, 0, 0, 0, 1, 2, 3, 4]), now: now)
        XCTAssertFalse(stack.drain().isEmpty)
    }

    func testRandomIPv6Frames() throws {
        let stack = try busyStack()
        let now = feedRandomFrames(stack, seed: 21, count: 5000) { frame, i in
            if frame.count >= 54 {   // make it reach the IPv6 parser
                frame.put48(i % 3 == 0 ? 0x3333_ff00_0001 : stackMAC, at: 0)
                frame.put16(0x86dd, at: 12)
                frame[14] = 0x60
                if i % 2 == 0 { frame.put(i % 4 == 0 ? stack6 : linkLocal(1), at: 38) }
                if i % 5 == 0 { frame.put16(UInt16(frame.count - 54), at: 18) }
            }
        }
        try checkStillWorks(stack, now: now)
    }

    func testMutatedValidIPv6Frames() throws {
        let stack = try busyStack()
        let now = feedMutatedFrames(stack, corpus(), seed: 22, count: 20000) { frame, random in
            // Valid again after changing a transport byte: rebuilt with its checksum.
            guard let p = ParsedIPv6(frame), p.payload.count > 14 else { return }
            var body = p.payload
            body[Int(random.next() % UInt64(body.count))] = UInt8(truncatingIfNeeded: random.next())
            frame = ipv6Frame(from: p.source, to: p.destination, next: p.next, body, hopLimit: p.hopLimit,
                              destinationMAC: p.destinationMAC)
        }
        XCTAssertLessThan(stack.sockets.compactMap { $0 }.count, 20)
        XCTAssertLessThanOrEqual(stack.neighbours.count, NetworkStack.maxNeighbours)
        try checkStillWorks(stack, now: now)
    }
}

extension NetworkStack {
    /// The number of queued datagrams of a UDP socket.
    func receiveBuffered(_ s: SocketID) -> Int {
        let socket = rawSocket(s)
        var n = 0, offset = 0
        let headerSize = MemoryLayout<DatagramHeader>.size
        while offset < socket.receiveBuffer.count {
            var header = DatagramHeader(from: socket.local, to: socket.local, length: 0)
            withUnsafeMutableBytes(of: &header) { socket.receiveBuffer.copy(from: offset, into: $0) }
            offset += headerSize + header.length
            n += 1
        }
        return n
    }
}
