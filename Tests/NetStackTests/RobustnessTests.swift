// Hostile input: random frames and mutated valid frames must never trap, and the stack must
// still work afterwards.
import LinuxABI
import XCTest
@testable import NetStack

final class RobustnessTests: XCTestCase {
    /// Valid frames of every kind the stack parses, to mutate.
    func corpus() -> [[UInt8]] {
        var frames: [[UInt8]] = [arpReply(), arpReply(op: 1)]
        frames.append(ipv4Frame(proto: 17, udpSegment(1000, 9, [1, 2, 3, 4])))
        var echo: [UInt8] = [8, 0, 0, 0, 1, 2, 3, 4, 5]
        echo.put16(checksumField(echo.sum(0, echo.count)), at: 2)
        frames.append(ipv4Frame(proto: 1, echo))
        let udp = udpSegment(1000, 9, randomBytes(8, 100))
        frames.append(ipv4Frame(proto: 17, Array(udp[0..<64]), id: 5, fragment: 0x2000))
        frames.append(ipv4Frame(proto: 17, Array(udp[64...]), id: 5, fragment: 8))
        var unreachable: [UInt8] = [3, 3, 0, 0, 0, 0, 0, 0] + Array(ipv4Frame(from: stackIP, to: peerIP, proto: 17, udpSegment(9, 1000, [1]))[14...])
        unreachable.put16(checksumField(unreachable.sum(0, unreachable.count)), at: 2)
        frames.append(ipv4Frame(proto: 1, unreachable))
        // TCP: SYN with every option, a data segment, an ACK, a RST, a FIN.
        for (flags, options, data) in [(UInt8(0x02), [2, 4, 5, 0xb4, 1, 3, 3, 7, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0] as [UInt8], [UInt8]()),
                                        (0x18, [1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 1], [1, 2, 3]),
                                        (0x10, [], []), (0x04, [], []), (0x11, [], [])] {
            var t = [UInt8](repeating: 0, count: 20) + options + data
            t.put16(40000, at: 0)
            t.put16(80, at: 2)
            t.put32(1000, at: 4)
            t.put32(5000, at: 8)
            t[12] = UInt8((20 + options.count) / 4) << 4
            t[13] = flags
            t.put16(65535, at: 14)
            t.put16(checksumField(t.sum(0, t.count) + pseudoHeaderSum(IPAddress(ipv4: peerIP), IPAddress(ipv4: stackIP), 6, t.count)), at: 16)
            frames.append(ipv4Frame(proto: 6, t))
        }
        return frames
    }

    /// A stack with a listener, a UDP socket and an established loopback connection, to check
    /// that it still works after the storm.
    func busyStack() throws -> NetworkStack {
        let stack = makeStack(anyDestination: true)
        let l = try stack.open(.stream, ipv6: false)
        try stack.bind(l, to: ep(0, 80))
        try stack.listen(l, backlog: 16)
        let u = try stack.open(.datagram, ipv6: false)
        try stack.bind(u, to: ep(0, 9))
        let any = try stack.open(.datagram, ipv6: false)
        try stack.bindAny(any)
        return stack
    }

    func checkStillWorks(_ stack: NetworkStack, now: UInt64) throws {
        let l = try stack.open(.stream, ipv6: false)
        try stack.bind(l, to: ep(0, 7777))
        try stack.listen(l, backlog: 1)
        let c = try stack.open(.stream, ipv6: false)
        expectErrno(.EINPROGRESS) { try stack.connect(c, to: Endpoint(address: .loopback4, port: 7777), now: now) }
        let (s, _) = try stack.accept(l)
        XCTAssertEqual(stack.sendSome(c, [1, 2, 3][...], now: now), 3)
        XCTAssertEqual(try stack.receiveAll(s, now: now), [1, 2, 3])
    }

    func testRandomFrames() throws {
        let stack = try busyStack()
        let now = feedRandomFrames(stack, seed: 11, count: 5000) { frame, i in
            if i % 2 == 0 && frame.count >= 34 {   // make it reach the IPv4 parser
                frame.put48(stackMAC, at: 0)
                frame.put16(0x0800, at: 12)
                frame[14] = 0x45
            }
        }
        try checkStillWorks(stack, now: now)
    }

    func testMutatedValidFrames() throws {
        let stack = try busyStack()
        let now = feedMutatedFrames(stack, corpus(), seed: 12, count: 20000) { frame, random in
            // The valid frame, fixing TCP checksums after changing the flags.
            if frame.count > 47, frame[23] == 6 {
                frame[47] = UInt8(truncatingIfNeeded: random.next())
                fixTCPChecksum(&frame)
            }
        }
        XCTAssertLessThan(stack.sockets.compactMap { $0 }.count, 20)
        try checkStillWorks(stack, now: now)
    }
}

/// Feeds `count` random frames of up to 200 bytes, `aim` adjusting frame i so that it gets
/// past the first checks; returns the virtual time reached.
func feedRandomFrames(_ stack: NetworkStack, seed: UInt64, count: Int, aim: (inout [UInt8], Int) -> Void) -> UInt64 {
    var random = TestRandom(state: seed)
    var now: UInt64 = 0
    for i in 0..<count {
        var frame = random.bytes(Int(random.next() % 200))
        aim(&frame, i)
        stack.feed(frame, now: now)
        now += ms
        if i % 100 == 0 { stack.advance(now: now); _ = stack.drain() }
    }
    return now
}

/// Feeds `count` frames made from valid `frames`: truncated, bit-flipped, with random header
/// bytes (bogus lengths, offsets, options), extended with garbage, or made valid again after a
/// change by `revalidate`; then lets everything the storm created time out. Returns the
/// virtual time reached.
func feedMutatedFrames(_ stack: NetworkStack, _ frames: [[UInt8]], seed: UInt64, count: Int,
                       revalidate: (inout [UInt8], inout TestRandom) -> Void) -> UInt64 {
    var random = TestRandom(state: seed)
    var now: UInt64 = 0
    for i in 0..<count {
        var frame = frames[Int(random.next() % UInt64(frames.count))]
        switch random.next() % 5 {
        case 0:
            frame.removeLast(Int(random.next() % UInt64(frame.count)))
        case 1:
            for _ in 0...(random.next() % 4) {
                let at = Int(random.next() % UInt64(frame.count))
                frame[at] ^= UInt8(1 << (random.next() % 8))
            }
        case 2:
            for _ in 0...(random.next() % 3) {
                let at = 14 + Int(random.next() % UInt64(max(frame.count - 14, 1)))
                if at < frame.count { frame[at] = UInt8(truncatingIfNeeded: random.next()) }
            }
        case 3:
            frame += random.bytes(Int(random.next() % 100))
        default:
            revalidate(&frame, &random)
        }
        stack.feed(frame, now: now)
        now += 10 * ms
        if i % 50 == 0 {
            stack.advance(now: now)
            _ = stack.drain()
        }
    }
    for _ in 0..<100 {
        now += 10 * sec
        stack.advance(now: now)
        _ = stack.drain()
    }
    return now
}
