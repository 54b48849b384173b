// Unit tests per protocol: checksums, the ring buffer, ARP, IPv4 reassembly, ICMP, UDP.
import LinuxABI
import XCTest
@testable import NetStack

let stackMAC: UInt64 = 0x0200_0000_0001, peerMAC: UInt64 = 0x0200_0000_0002
let stackIP = ip(10, 0, 0, 1), peerIP = ip(10, 0, 0, 2)

func makeStack(anyDestination: Bool = false, gateway: UInt32 = 0) -> NetworkStack {
    NetworkStack(interface: InterfaceConfig(mac: MACAddress(stackMAC), ipv4: stackIP, ipv4PrefixLength: 24,
                                            ipv4Gateway: gateway, acceptsAnyDestination: anyDestination), seed: 42)
}

/// An Ethernet frame from the peer holding an IPv4 packet.
func ipv4Frame(from src: UInt32 = peerIP, to dst: UInt32 = stackIP, proto: UInt8, _ payload: [UInt8],
               id: UInt16 = 1, fragment: UInt16 = 0, totalLength: Int? = nil) -> [UInt8] {
    var f = [UInt8](repeating: 0, count: 34) + payload
    f.put48(stackMAC, at: 0)
    f.put48(peerMAC, at: 6)
    f.put16(0x0800, at: 12)
    f[14] = 0x45
    f.put16(UInt16(totalLength ?? 20 + payload.count), at: 16)
    f.put16(id, at: 18)
    f.put16(fragment, at: 20)
    f[22] = 64
    f[23] = proto
    f.put32(src, at: 26)
    f.put32(dst, at: 30)
    f.put16(checksumField(f.sum(14, 20)), at: 24)
    return f
}

/// A UDP header and payload with a correct checksum.
func udpSegment(from src: UInt32 = peerIP, to dst: UInt32 = stackIP, _ sport: UInt16, _ dport: UInt16, _ data: [UInt8]) -> [UInt8] {
    var u = [UInt8](repeating: 0, count: 8) + data
    u.put16(sport, at: 0)
    u.put16(dport, at: 2)
    u.put16(UInt16(u.count), at: 4)
    u.put16(checksumField(u.sum(0, u.count) + pseudoHeaderSum(IPAddress(ipv4: src), IPAddress(ipv4: dst), 17, u.count)), at: 6)
    return u
}

extension NetworkStack {
    func feed(_ frame: [UInt8], now: UInt64 = 0) { frame.withUnsafeBytes { input(frame: $0, now: now) } }
    func drain() -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 70_000)
        while let n = buffer.withUnsafeMutableBytes({ nextOutputFrame(into: $0) }) { frames.append(Array(buffer[0..<n])) }
        return frames
    }
    func datagram(_ s: SocketID) throws -> ([UInt8], Endpoint, Endpoint) {
        var buffer = [UInt8](repeating: 0, count: 70_000)
        let r = try buffer.withUnsafeMutableBytes { try receiveFrom(s, into: $0, peek: false) }
        return (Array(buffer[0..<r.count]), r.from, r.to)
    }
    func sendDatagram(_ s: SocketID, _ bytes: [UInt8], to: Endpoint?, from: Endpoint? = nil) throws {
        _ = try bytes.withUnsafeBytes { try sendTo(s, $0, to: to, from: from, now: now) }
    }
}

/// An ARP reply from the peer, so the stack knows its MAC.
func arpReply(senderIP: UInt32 = peerIP, senderMAC: UInt64 = peerMAC, op: UInt16 = 2, targetIP: UInt32 = stackIP) -> [UInt8] {
    var f = [UInt8](repeating: 0, count: 42)
    f.put48(op == 1 ? 0xffff_ffff_ffff : stackMAC, at: 0)
    f.put48(senderMAC, at: 6)
    f.put16(0x0806, at: 12)
    f.put32(0x0001_0800, at: 14)
    f.put32(0x0604_0000 | UInt32(op), at: 18)
    f.put48(senderMAC, at: 22)
    f.put32(senderIP, at: 28)
    f.put48(op == 1 ? 0 : stackMAC, at: 32)
    f.put32(targetIP, at: 38)
    return f
}

final class ChecksumTests: XCTestCase {
    func testRFC1071Example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (complement 220d).
        let bytes: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        XCTAssertEqual(bytes.sum(0, 8), 0xddf2)
        XCTAssertEqual(checksumField(bytes.sum(0, 8)), 0x220d)
    }

    func testKnownIPv4Header() {
        // A well-known example header (checksum 0xb861).
        var h: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
                          0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7]
        XCTAssertEqual(checksumField(h.sum(0, 20)), 0xb861)
        h[10] = 0xb8
        h[11] = 0x61
        XCTAssertTrue(checksumValid(h.sum(0, 20)))
    }

    func testMatchesByteWiseReferenceForEveryLengthAndAlignment() {
        var random = TestRandom(state: 9)
        let data = random.bytes(300)
        for start in 0..<9 {
            for length in 0..<(300 - start) where length % 7 == 0 || length < 20 {
                var reference: UInt32 = 0
                var i = start
                while i < start + length {
                    reference += UInt32(data[i]) << 8 | (i + 1 < start + length ? UInt32(data[i + 1]) : 0)
                    i += 2
                }
                while reference > 0xffff { reference = (reference & 0xffff) + (reference >> 16) }
                XCTAssertEqual(data.sum(start, length), reference, "start \(start) length \(length)")
            }
        }
    }

    func testPseudoHeader() {
        // 10.0.0.1 → 10.0.0.2, UDP, 12 bytes: 0x0a00+0x0001+0x0a00+0x0002+17+12.
        XCTAssertEqual(pseudoHeaderSum(IPAddress(ipv4: stackIP), IPAddress(ipv4: peerIP), 17, 12), 0x1400 + 3 + 29)
    }
}

final class AddressTests: XCTestCase {
    func testIPv4Mapping() {
        let a = IPAddress(ipv4: 0x0a00_020f)
        XCTAssertEqual(a.high, 0)
        XCTAssertEqual(a.low, 0x0000_ffff_0a00_020f)
        XCTAssertEqual(a.ipv4, 0x0a00_020f)
        XCTAssertTrue(a.isIPv4)
        XCTAssertNil(IPAddress.loopback6.ipv4)
        XCTAssertTrue(IPAddress(ipv4: 0x7f00_0005).isLoopback)
        XCTAssertEqual(MACAddress((1, 2, 3, 4, 5, 6)).value, 0x0102_0304_0506)
        XCTAssertEqual(SocketID(rawValue: SocketID(index: 5, generation: 9).rawValue), SocketID(index: 5, generation: 9))
    }
}

final class RingBufferTests: XCTestCase {
    func testWrapGrowthAndOutOfOrderWrites() {
        let ring = RingBuffer(limit: 10_000)
        var model: [UInt8] = []
        var random = TestRandom(state: 4)
        for round in 0..<500 {
            let chunk = random.bytes(Int(random.next() % 3000))
            let n = chunk.withUnsafeBytes { ring.append($0) }
            model += chunk[0..<n]
            XCTAssertEqual(ring.count, model.count)
            let take = Int(random.next() % UInt64(ring.count + 1))
            var out = [UInt8](repeating: 0, count: take)
            out.withUnsafeMutableBytes { ring.copy(from: 0, into: $0) }
            XCTAssertEqual(out, Array(model[0..<take]), "round \(round)")
            ring.discard(take)
            model.removeFirst(take)
        }
        // Bytes written beyond the queue join it on commit, across growth.
        let tail: [UInt8] = [7, 8, 9]
        tail.withUnsafeBytes { ring.write($0, at: 5) }
        let gap: [UInt8] = [1, 2, 3, 4, 5]
        gap.withUnsafeBytes { ring.write($0, at: 0) }
        ring.commit(8)
        var out = [UInt8](repeating: 0, count: 8)
        out.withUnsafeMutableBytes { ring.copy(from: ring.count - 8, into: $0) }
        XCTAssertEqual(out, [1, 2, 3, 4, 5, 7, 8, 9])
        XCTAssertEqual(ring.free, 10_000 - ring.count)
    }
}

final class ARPTests: XCTestCase {
    func testResolutionQueuesPacketsAndRetries() throws {
        let stack = makeStack()
        let u = try stack.open(.datagram, ipv6: false)
        try stack.sendDatagram(u, [1], to: ep(peerIP, 7))
        try stack.sendDatagram(u, [2], to: ep(peerIP, 7))
        var out = stack.drain()
        XCTAssertEqual(out.count, 1)   // one ARP request; the datagrams wait
        XCTAssertEqual(Array(out[0][0..<6]), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
        XCTAssertEqual(Array(out[0][12..<14]), [0x08, 0x06])
        XCTAssertEqual(Array(out[0][20..<22]), [0, 1])
        XCTAssertEqual(Array(out[0][38..<42]), [10, 0, 0, 2])
        XCTAssertEqual(stack.nextDeadline, sec)
        stack.advance(now: sec)
        XCTAssertEqual(stack.drain().count, 1)   // retry
        stack.feed(arpReply(), now: sec + 1)
        out = stack.drain()
        XCTAssertEqual(out.count, 2)
        XCTAssertEqual(out.map { $0[42] }, [1, 2])
        XCTAssertEqual(Array(out[0][0..<6]), [2, 0, 0, 0, 0, 2])
        XCTAssertNil(stack.nextDeadline)
        // Cached now: sent at once.
        try stack.sendDatagram(u, [3], to: ep(peerIP, 7))
        XCTAssertEqual(stack.drain().count, 1)
    }

    func testGivesUpAfterThreeRequests() throws {
        let stack = makeStack()
        let u = try stack.open(.datagram, ipv6: false)
        try stack.sendDatagram(u, [1], to: ep(ip(10, 0, 0, 3), 7))
        for t in 1...3 { stack.advance(now: UInt64(t) * sec) }
        XCTAssertEqual(stack.drain().count, 3)
        XCTAssertNil(stack.nextDeadline)
        XCTAssertTrue(stack.neighbours.isEmpty)
    }

    func testOffSubnetGoesToGatewayAndNoGatewayIsUnreachable() throws {
        let stack = makeStack(gateway: ip(10, 0, 0, 254))
        let u = try stack.open(.datagram, ipv6: false)
        try stack.sendDatagram(u, [1], to: ep(ip(8, 8, 8, 8), 53))
        XCTAssertEqual(Array(stack.drain()[0][38..<42]), [10, 0, 0, 254])
        let plain = makeStack()
        let v = try plain.open(.datagram, ipv6: false)
        expectErrno(.ENETUNREACH) { try plain.sendDatagram(v, [1], to: ep(ip(8, 8, 8, 8), 53)) }
    }

    func testAnswersRequestsAndProxyARP() {
        let stack = makeStack()
        stack.feed(arpReply(op: 1))
        let reply = stack.drain()
        XCTAssertEqual(reply.count, 1)
        XCTAssertEqual(Array(reply[0][20..<22]), [0, 2])
        XCTAssertEqual(Array(reply[0][22..<28]), [2, 0, 0, 0, 0, 1])
        XCTAssertEqual(Array(reply[0][28..<32]), [10, 0, 0, 1])
        XCTAssertEqual(stack.neighbours.first?.mac, peerMAC)   // learnt from the request
        stack.feed(arpReply(op: 1, targetIP: ip(10, 0, 0, 3)))
        XCTAssertTrue(stack.drain().isEmpty)   // not ours

        let proxy = makeStack(anyDestination: true)
        proxy.feed(arpReply(op: 1, targetIP: ip(10, 0, 0, 3)))
        let proxied = proxy.drain()
        XCTAssertEqual(proxied.count, 1)
        XCTAssertEqual(Array(proxied[0][28..<32]), [10, 0, 0, 3])
        proxy.feed(arpReply(op: 1, targetIP: peerIP))   // the asker's own address: silence
        XCTAssertTrue(proxy.drain().isEmpty)
        proxy.feed(arpReply(op: 1, targetIP: ip(10, 0, 1, 3)))   // off-subnet: silence
        XCTAssertTrue(proxy.drain().isEmpty)
    }
}

final class IPv4Tests: XCTestCase {
    /// A stack with a UDP socket on port 9 and the datagram `payload` split into fragments.
    func fragments(_ payload: [UInt8], sizes: [Int], id: UInt16 = 7) -> [[UInt8]] {
        let udp = udpSegment(1000, 9, payload)
        var frames: [[UInt8]] = []
        var offset = 0
        for (i, size) in sizes.enumerated() {
            let end = min(offset + size, udp.count)
            let more: UInt16 = i < sizes.count - 1 ? 0x2000 : 0
            frames.append(ipv4Frame(proto: 17, Array(udp[offset..<end]), id: id, fragment: more | UInt16(offset / 8)))
            offset = end
        }
        return frames
    }

    func receiver() throws -> (NetworkStack, SocketID) {
        let stack = makeStack()
        let u = try stack.open(.datagram, ipv6: false)
        try stack.bind(u, to: ep(0, 9))
        return (stack, u)
    }

    func testReassemblyInOrderAndOutOfOrder() throws {
        let payload = randomBytes(1, 3000)
        for order in [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 0, 1]] {
            let (stack, u) = try receiver()
            let parts = fragments(payload, sizes: [800, 800, 800, 608])
            for i in order { stack.feed(parts[i]) }
            let (data, from, to) = try stack.datagram(u)
            XCTAssertEqual(data, payload)
            XCTAssertEqual(from, ep(peerIP, 1000))
            XCTAssertEqual(to, ep(stackIP, 9))
            XCTAssertTrue(stack.reassemblies.isEmpty)
        }
    }

    func testDuplicateFragmentsAreIgnoredAndOverlapsDiscardTheDatagram() throws {
        let payload = randomBytes(2, 2000)
        var (stack, u) = try receiver()
        var parts = fragments(payload, sizes: [800, 800, 408])
        stack.feed(parts[0]); stack.feed(parts[0]); stack.feed(parts[2]); stack.feed(parts[1])
        XCTAssertEqual(try stack.datagram(u).0, payload)

        (stack, u) = try receiver()
        parts = fragments(payload, sizes: [800, 800, 408])
        let overlapping = ipv4Frame(proto: 17, Array(repeating: 0xee, count: 16), id: 7, fragment: 0x2000 | 99)
        stack.feed(parts[0]); stack.feed(overlapping); stack.feed(parts[1]); stack.feed(parts[2])
        expectErrno(.EAGAIN) { _ = try stack.datagram(u) }
    }

    func testReassemblyTimeoutAndLimits() throws {
        let (stack, u) = try receiver()
        let parts = fragments(randomBytes(3, 2000), sizes: [800, 800, 408])
        stack.feed(parts[0], now: 0)
        XCTAssertEqual(stack.nextDeadline, 30 * sec)
        stack.advance(now: 30 * sec)
        XCTAssertTrue(stack.reassemblies.isEmpty)
        stack.feed(parts[1], now: 30 * sec)
        stack.feed(parts[2], now: 30 * sec)
        expectErrno(.EAGAIN) { _ = try stack.datagram(u) }
        // At most 4 datagrams in reassembly at once.
        for id in 10..<20 { stack.feed(fragments(randomBytes(4, 100), sizes: [64, 44], id: UInt16(id))[0], now: 31 * sec) }
        XCTAssertEqual(stack.reassemblies.count, 4)
        // Bogus fragments: unaligned middle piece, beyond 64 KiB.
        stack.feed(ipv4Frame(proto: 17, [1, 2, 3], id: 99, fragment: 0x2000))
        stack.feed(ipv4Frame(proto: 17, [1, 2, 3, 4, 5, 6, 7, 8], id: 98, fragment: 0x1fff))
        XCTAssertEqual(stack.reassemblies.count, 4)
    }

    func testHeaderChecksLengthsAndDestination() throws {
        let (stack, u) = try receiver()
        let good = ipv4Frame(proto: 17, udpSegment(1, 9, [5]))
        var bad = good
        bad[24] ^= 1   // header checksum
        stack.feed(bad)
        stack.feed(ipv4Frame(proto: 17, udpSegment(1, 9, [5]), totalLength: 200))   // longer than the frame
        stack.feed(ipv4Frame(to: ip(10, 0, 0, 9), proto: 17, udpSegment(to: ip(10, 0, 0, 9), 1, 9, [5])))   // not ours
        expectErrno(.EAGAIN) { _ = try stack.datagram(u) }
        stack.feed(good + [0, 0, 0, 0])   // Ethernet padding is fine
        XCTAssertEqual(try stack.datagram(u).0, [5])
    }

    func testLargeDatagramIsFragmentedOnSend() throws {
        let link = SimulatedLink()
        let s = try link.b.open(.datagram, ipv6: false)
        try link.b.bind(s, to: ep(0, 9))
        let c = try link.a.open(.datagram, ipv6: false)
        let payload = randomBytes(5, 4000)
        try link.a.sendDatagram(c, payload, to: ep(SimulatedLink.addressB, 9))
        link.run(for: sec)
        let ipFrames = link.seen.filter { $0.from == 0 && $0.bytes[23] == 17 }
        XCTAssertEqual(ipFrames.count, 3)
        XCTAssertEqual(ipFrames.map { $0.bytes.count }, [1514, 1514, 14 + 20 + 4008 - 2 * 1480])
        XCTAssertEqual(try link.b.datagram(s).0, payload)
        expectErrno(.EMSGSIZE) { try link.a.sendDatagram(c, [UInt8](repeating: 0, count: 65508), to: ep(SimulatedLink.addressB, 9)) }
    }
}

final class ICMPTests: XCTestCase {
    func testEchoReply() {
        let stack = makeStack()
        stack.feed(arpReply())
        var echo: [UInt8] = [8, 0, 0, 0, 0x12, 0x34, 0, 1] + Array("hello".utf8)
        echo.put16(checksumField(echo.sum(0, echo.count)), at: 2)
        stack.feed(ipv4Frame(proto: 1, echo))
        let out = stack.drain()
        XCTAssertEqual(out.count, 1)
        let reply = out[0]
        XCTAssertEqual(Array(reply[26..<34]), [10, 0, 0, 1, 10, 0, 0, 2])
        XCTAssertEqual(reply[34], 0)
        XCTAssertEqual(Array(reply[38...]), [0x12, 0x34, 0, 1] + Array("hello".utf8))
        XCTAssertTrue(checksumValid(reply.sum(34, reply.count - 34)))
        XCTAssertTrue(checksumValid(reply.sum(14, 20)))
        echo[9] ^= 0xff   // bad checksum: no reply
        stack.feed(ipv4Frame(proto: 1, echo))
        XCTAssertTrue(stack.drain().isEmpty)
    }
}

final class UDPTests: XCTestCase {
    func testBindSendReceiveBetweenStacks() throws {
        let link = SimulatedLink()
        let s = try link.b.open(.datagram, ipv6: false)
        try link.b.bind(s, to: ep(0, 5353))
        let c = try link.a.open(.datagram, ipv6: false)
        try link.a.sendDatagram(c, [1, 2, 3], to: ep(SimulatedLink.addressB, 5353))
        link.run(for: sec)
        XCTAssertEqual(link.b.availableBytes(s), 3)
        XCTAssertTrue(link.b.readiness(s).contains(.readable))
        var small = [UInt8](repeating: 0, count: 2)
        let r = try small.withUnsafeMutableBytes { try link.b.receiveFrom(s, into: $0, peek: true) }
        XCTAssertEqual(r.count, 2)
        XCTAssertEqual(r.fullLength, 3)
        let (data, from, to) = try link.b.datagram(s)
        XCTAssertEqual(data, [1, 2, 3])
        XCTAssertEqual(from, link.a.localEndpoint(c).map { ep(SimulatedLink.addressA, $0.port) })
        XCTAssertEqual(to, ep(SimulatedLink.addressB, 5353))
        try link.b.sendDatagram(s, [4], to: from)
        link.run(for: sec)
        XCTAssertEqual(try link.a.datagram(c).0, [4])
        expectErrno(.EAGAIN) { _ = try link.a.datagram(c) }
        let other = try link.b.open(.datagram, ipv6: false)
        expectErrno(.EADDRINUSE) { try link.b.bind(other, to: ep(SimulatedLink.addressB, 5353)) }
    }

    func testPortUnreachableRefusesConnectedSocket() throws {
        let link = SimulatedLink()
        let c = try link.a.open(.datagram, ipv6: false)
        try link.a.connect(c, to: ep(SimulatedLink.addressB, 9999), now: 0)
        XCTAssertEqual(link.a.remoteEndpoint(c), ep(SimulatedLink.addressB, 9999))
        try link.a.sendDatagram(c, [1], to: nil)
        link.run(for: sec)
        let icmp = link.seen.filter { $0.from == 1 && $0.bytes[23] == 1 }
        XCTAssertEqual(icmp.count, 1)
        XCTAssertEqual(Array(icmp[0].bytes[34..<36]), [3, 3])
        XCTAssertTrue(link.a.readiness(c).contains(.error))
        expectErrno(.ECONNREFUSED) { try link.a.sendDatagram(c, [1], to: nil) }
        try link.a.sendDatagram(c, [1], to: nil)   // reported once
    }

    func testBadChecksumDroppedZeroChecksumAccepted() throws {
        let stack = makeStack()
        let u = try stack.open(.datagram, ipv6: false)
        try stack.bind(u, to: ep(0, 9))
        var seg = udpSegment(1, 9, [1, 2])
        seg[9] ^= 1
        stack.feed(ipv4Frame(proto: 17, seg))
        expectErrno(.EAGAIN) { _ = try stack.datagram(u) }
        seg[6] = 0
        seg[7] = 0
        stack.feed(ipv4Frame(proto: 17, seg))
        XCTAssertEqual(try stack.datagram(u).0, [1, 3])
    }

    func testReceiveQueueIsBounded() throws {
        let stack = makeStack()
        let u = try stack.open(.datagram, ipv6: false)
        try stack.bind(u, to: ep(0, 9))
        try stack.setOption(u, .receiveBufferSize(4096))
        for _ in 0..<10 { stack.feed(ipv4Frame(proto: 17, udpSegment(1, 9, randomBytes(1, 1000)))) }
        var n = 0
        while (try? stack.datagram(u)) != nil { n += 1 }
        XCTAssertEqual(n, 3)   // 1000 bytes plus the queue's per-datagram header each, in 4096
    }
}
