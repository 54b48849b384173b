// TCP data transfer over the simulated link: bulk under loss, retransmission timing, fast
// retransmit, flow control, Nagle, delayed ACK, keep-alive.
import LinuxABI
import XCTest
@testable import NetStack

/// One direction of a transfer: pushes `data` from (stack, socket) and collects it on the other side.
final class Pump {
    let sender: NetworkStack, receiver: NetworkStack
    let from: SocketID, to: SocketID
    let data: [UInt8]
    var sent = 0
    var received: [UInt8] = []
    var closeWhenDone: Bool

    init(_ sender: NetworkStack, _ from: SocketID, _ receiver: NetworkStack, _ to: SocketID, _ data: [UInt8], close: Bool = false) {
        self.sender = sender; self.from = from; self.receiver = receiver; self.to = to; self.data = data
        closeWhenDone = close
    }

    func run(_ now: UInt64) {
        while sent < data.count {
            let n = sender.sendSome(from, data[sent...], now: now)
            if n == 0 { break }
            sent += n
        }
        if sent == data.count && closeWhenDone {
            try? sender.shutdown(from, read: false, write: true, now: now)
            closeWhenDone = false
        }
        while let chunk = try? receiver.receiveAll(to, now: now, max: 100_000), !chunk.isEmpty { received += chunk }
    }
    var done: Bool { received.count == data.count }
}

/// Sends `forward` from `c` (on link.a) to `s` (on link.b) and `backward` the other way at
/// once, each side closing after its bytes; checks that every byte arrived, that both sides
/// saw the end of the stream, and that the close finished (one side in TIME_WAIT).
func transferAndClose(_ link: SimulatedLink, _ c: SocketID, _ s: SocketID, _ forward: [UInt8], _ backward: [UInt8],
                      within: UInt64, file: StaticString = #filePath, line: UInt = #line) {
    let there = Pump(link.a, c, link.b, s, forward, close: true)
    let back = Pump(link.b, s, link.a, c, backward, close: true)
    XCTAssertTrue(link.run(for: within) {
        there.run(link.now)
        back.run(link.now)
        return there.done && back.done
    }, file: file, line: line)
    assertSameBytes(there.received, there.data)
    assertSameBytes(back.received, back.data)
    XCTAssertTrue(link.run { link.a.state(c) == .timeWait || link.b.state(s) == .timeWait }, file: file, line: line)
    XCTAssertEqual(try link.b.receiveAll(s, now: link.now), [], file: file, line: line)
    XCTAssertEqual(try link.a.receiveAll(c, now: link.now), [], file: file, line: line)
}

final class TCPTransferTests: XCTestCase {
    func bulk(seed: UInt64, loss: Double, both: Bool, size: Int = 1 << 20) {
        let link = SimulatedLink(seed: seed)
        link.keepLog = false
        let (c, s) = establish(link)
        link.loss = loss
        link.duplication = loss / 2
        link.reordering = loss
        var random = TestRandom(state: seed)
        transferAndClose(link, c, s, random.bytes(size), both ? random.bytes(size) : [], within: 600 * sec)
    }

    func testBulkTransferCleanLink() { bulk(seed: 3, loss: 0, both: false) }
    func testBulkTransferUnderLossReorderingDuplication() { bulk(seed: 5, loss: 0.05, both: false) }
    func testBulkTransferBothDirectionsUnderLoss() { bulk(seed: 7, loss: 0.05, both: true) }

    func testWindowScalingAndTimestampsNegotiated() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link)
        let syn = link.tcpFrames[0].tcpOptions
        // MSS 1460, NOP, window scale 3 (256 KiB buffer), NOP, NOP, timestamps.
        XCTAssertEqual(Array(syn[0..<8]), [2, 4, 0x05, 0xb4, 1, 3, 3, 3])
        XCTAssertEqual(Array(syn[8..<12]), [1, 1, 8, 10])
        for (stack, sock) in [(link.a, c), (link.b, s)] {
            let x = stack.rawSocket(sock)
            XCTAssertTrue(x.timestamps)
            XCTAssertTrue(x.windowScaling)
            XCTAssertEqual(x.sndScale, 3)
            XCTAssertEqual(x.rcvScale, 3)
            XCTAssertEqual(x.mss, 1460)
            XCTAssertEqual(x.segmentSize, 1448)
        }
        // B learnt A's scaled window from the final ACK; A has only B's (unscaled) SYN-ACK window.
        XCTAssertEqual(link.b.rawSocket(s).sndWnd, 262_144)
        XCTAssertEqual(link.a.rawSocket(c).sndWnd, 65535)
        // Later segments carry only the timestamp option and a scaled window.
        let ack = link.tcpFrames[2]
        XCTAssertEqual(ack.tcpOptions.count, 12)
        XCTAssertEqual(ack.tcpWindow, UInt16(262_144 >> 3))
    }

    func testWithoutScalingWhenBufferIsSmall() throws {
        let link = SimulatedLink()
        let (c, _) = establish(link) { stack, c in try! stack.setOption(c, .receiveBufferSize(60_000)) }
        XCTAssertEqual(link.a.rawSocket(c).rcvScale, 0)
        XCTAssertEqual(link.tcpFrames[0].tcpWindow, 60_000)
    }

    func testSynRetransmissionDoublesFromOneSecondThenTimesOut() throws {
        let link = SimulatedLink()
        link.pass = { from, f in !(from == 0 && f.isTCP) }   // A's segments are lost
        let c = try link.a.open(.stream, ipv6: false)
        expectErrno(.EINPROGRESS) { try link.a.connect(c, to: ep(SimulatedLink.addressB, 80), now: 0) }
        XCTAssertTrue(link.run(for: 200 * sec) { link.a.state(c) == .closed })
        // (Rounded: ARP resolution adds a few milliseconds to the first and, after the cache
        // entry expired at 60 s, the last transmission.)
        let times = link.tcpFrames.filter { $0.from == 0 }.map { ($0.time + 5 * ms) / sec }
        XCTAssertEqual(times, [0, 1, 3, 7, 15, 31, 63])
        XCTAssertEqual(link.now / ms, 127_000)
        XCTAssertEqual(link.a.takeError(c), .ETIMEDOUT)
    }

    func testRTOConvergesToSmoothedRTT() throws {
        let link = SimulatedLink()
        link.latency = 150 * ms   // RTT 300 ms, above the 200 ms floor
        link.resolveNeighbours()
        let (c, s) = establish(link)
        let x = link.a.rawSocket(c)
        XCTAssertEqual(x.srtt, 300 * ms)   // the SYN's sample
        XCTAssertEqual(x.rttvar, 150 * ms)
        XCTAssertEqual(x.rto, 900 * ms)
        let pump = Pump(link.a, c, link.b, s, randomBytes(1, 300_000))
        XCTAssertTrue(link.run(for: 60 * sec) { pump.run(link.now); return pump.done })
        XCTAssertEqual(x.rto, x.srtt + 4 * x.rttvar)
        XCTAssertLessThan(x.rto, 450 * ms)
        XCTAssertGreaterThanOrEqual(x.srtt, 300 * ms)
        // A lost segment is retransmitted after the RTO, then after twice the RTO.
        link.run(for: sec)
        link.pass = { from, f in !(from == 0 && f.isTCP) }
        let rto = x.rto
        let start = link.now
        XCTAssertEqual(link.a.sendSome(c, [1][...], now: start), 1)
        link.run(for: rto * 4)
        let times = link.tcpFrames.filter { $0.from == 0 && $0.time >= start }.map { $0.time - start }
        XCTAssertEqual(Array(times.prefix(3)), [0, rto, rto + 2 * rto])
    }

    func testFastRetransmitAfterThreeDuplicateAcks() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link)
        var dropped: UInt32?
        link.pass = { from, f in
            // Drop the first data segment once.
            if from == 0 && f.isTCP && f.tcpPayloadLength > 0 && dropped == nil { dropped = f.tcpSeq; return false }
            return true
        }
        let data = randomBytes(2, 10 * 1448)
        XCTAssertEqual(link.a.sendSome(c, data[...], now: link.now), data.count)
        let start = link.now
        var received: [UInt8] = []
        XCTAssertTrue(link.run(for: 5 * sec) {
            if let chunk = try? link.b.receiveAll(s, now: link.now) { received += chunk }
            return received.count == data.count
        })
        assertSameBytes(received, data)
        link.run(for: 10 * ms)
        // The resend came after the duplicate ACKs, well before the 1 s RTO.
        let resend = link.tcpFrames.first { $0.from == 0 && $0.tcpSeq == dropped && $0.time > start }!
        XCTAssertLessThan(resend.time - start, 10 * ms)
        let duplicates = link.tcpFrames.filter { $0.from == 1 && $0.tcpAck == dropped && $0.time < resend.time }
        XCTAssertGreaterThanOrEqual(duplicates.count, 3)
        XCTAssertFalse(link.a.rawSocket(c).inRecovery)
    }

    func testReceiverThatDoesNotReadStopsSenderThenProbesThenResumes() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link) { stack, c in try! stack.setOption(c, .sendBufferSize(1 << 20)) }
        let data = randomBytes(3, 600_000)
        var sent = link.a.sendSome(c, data[...], now: link.now)
        link.run(for: 2 * sec)
        // The receiver's 256 KiB buffer is full; the sender stopped exactly there.
        XCTAssertEqual(link.b.availableBytes(s), 262_144)
        let x = link.a.rawSocket(c)
        XCTAssertEqual(x.sndWnd, 0)
        XCTAssertEqual(x.sndNxt &- x.sndUna, 0)
        XCTAssertNotEqual(x.persistAt, 0)
        // Zero-window probes go out, each answered with a zero window.
        let before = link.tcpFrames.count
        link.run(for: 20 * sec)
        let probes = link.tcpFrames[before...].filter { $0.from == 0 && $0.tcpPayloadLength == 1 }
        XCTAssertGreaterThanOrEqual(probes.count, 3)
        XCTAssertTrue(link.tcpFrames[before...].filter { $0.from == 1 }.allSatisfy { $0.tcpWindow == 0 })
        XCTAssertEqual(link.a.state(c), .established)
        // Reading opens the window: a window update, and the transfer completes.
        var received: [UInt8] = []
        XCTAssertTrue(link.run(for: 30 * sec) {
            if sent < data.count { sent += link.a.sendSome(c, data[sent...], now: link.now) }
            if let chunk = try? link.b.receiveAll(s, now: link.now, max: 50_000) { received += chunk }
            return received.count == data.count
        })
        assertSameBytes(received, data)
    }

    func testNagleCoalescesSmallWritesUnlessNoDelay() throws {
        for noDelay in [false, true] {
            let link = SimulatedLink()
            let (c, s) = establish(link) { stack, c in try! stack.setOption(c, .noDelay(noDelay)) }
            let before = link.tcpFrames.count
            for i in 0..<10 { XCTAssertEqual(link.a.sendSome(c, [UInt8(i)][...], now: link.now), 1) }
            var received: [UInt8] = []
            XCTAssertTrue(link.run { received += (try? link.b.receiveAll(s, now: link.now)) ?? []; return received.count == 10 })
            XCTAssertEqual(received, Array(0..<10))
            let segments = link.tcpFrames[before...].filter { $0.from == 0 && $0.tcpPayloadLength > 0 }
            // Nagle: the first byte alone, the other nine together after its ACK.
            XCTAssertEqual(segments.map(\.tcpPayloadLength), noDelay ? Array(repeating: 1, count: 10) : [1, 9])
        }
    }

    /// nginx's `tcp_nopush`: cork, a header write, a small body, uncork. Corked, nothing
    /// partial leaves (not even the first write, which Nagle alone would send); the uncork
    /// sends header and body at once, without waiting 40 ms for the peer's delayed ACK.
    func testCorkHoldsPartialSegmentsUntilUncorked() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link)
        try link.a.setOption(c, .cork(true))
        XCTAssertEqual(link.a.option(c, .cork), .cork(true))
        let before = link.tcpFrames.count
        XCTAssertEqual(link.a.sendSome(c, Array(repeating: 7, count: 249)[...], now: link.now), 249)
        XCTAssertEqual(link.a.sendSome(c, Array(repeating: 8, count: 42)[...], now: link.now), 42)
        link.run(for: 100 * ms)
        XCTAssertTrue(link.tcpFrames[before...].filter { $0.from == 0 && $0.tcpPayloadLength > 0 }.isEmpty,
                      "corked: partial segments are held")
        let uncorked = link.now
        try link.a.setOption(c, .cork(false))
        var received: [UInt8] = []
        XCTAssertTrue(link.run { received += (try? link.b.receiveAll(s, now: link.now)) ?? []; return received.count == 291 })
        XCTAssertEqual(received, Array(repeating: 7, count: 249) + Array(repeating: 8, count: 42))
        let segments = link.tcpFrames[before...].filter { $0.from == 0 && $0.tcpPayloadLength > 0 }
        XCTAssertEqual(segments.map(\.tcpPayloadLength), [291])
        XCTAssertLessThan(segments[0].time - uncorked, 5 * ms, "sent at the uncork, not after a delayed ACK")
        // Full segments are not held by the cork.
        try link.a.setOption(c, .cork(true))
        let full = link.tcpFrames.count
        XCTAssertEqual(link.a.sendSome(c, randomBytes(9, 3000)[...], now: link.now), 3000)
        link.run(for: 10 * ms)
        XCTAssertEqual(link.tcpFrames[full...].filter { $0.from == 0 && $0.tcpPayloadLength > 0 }.map(\.tcpPayloadLength), [1448, 1448])
    }

    func testDelayedAckAfter40msOrEverySecondFullSegment() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link)
        let start = link.now
        XCTAssertEqual(link.a.sendSome(c, [1, 2, 3][...], now: link.now), 3)
        link.run(for: 100 * ms)
        let acks = link.tcpFrames.filter { $0.from == 1 && $0.time > start }
        XCTAssertEqual(acks.count, 1)
        XCTAssertEqual(acks[0].time - start, 1 * ms + 40 * ms)   // arrival + 40 ms
        // Two full segments: ACKed at once.
        let start2 = link.now
        XCTAssertEqual(link.a.sendSome(c, randomBytes(4, 2 * 1448)[...], now: link.now), 2 * 1448)
        link.run(for: 100 * ms)
        let acks2 = link.tcpFrames.filter { $0.from == 1 && $0.time > start2 }
        XCTAssertEqual(acks2.count, 1)
        XCTAssertEqual(acks2[0].time - start2, 1 * ms)
        _ = s
    }

    func testKeepaliveDetectsDeadPeer() throws {
        let link = SimulatedLink()
        let (c, _) = establish(link) { stack, c in
            try! stack.setOption(c, .keepAlive(true))
            try! stack.setOption(c, .keepIdle(10))
            try! stack.setOption(c, .keepInterval(2))
            try! stack.setOption(c, .keepCount(3))
        }
        let start = link.now
        // A live peer answers the probes.
        link.run(for: 25 * sec)
        XCTAssertEqual(link.a.state(c), .established)
        let probes = link.tcpFrames.filter { $0.from == 0 && $0.time > start }
        XCTAssertEqual(probes.count, 2)   // at 10 s and 20 s
        XCTAssertEqual(probes.first.map { ($0.time - start + 5 * ms) / sec }, 10)
        // A dead peer: 3 unanswered probes 2 s apart, then ETIMEDOUT.
        link.pass = { from, _ in from == 0 }
        XCTAssertTrue(link.run(for: 30 * sec) { link.a.state(c) == .closed })
        XCTAssertEqual(link.a.takeError(c), .ETIMEDOUT)
        // The last answered probe at 20 s; unanswered ones at 30, 32 and 34 s; dead at 36 s.
        XCTAssertEqual((link.now - start + 5 * ms) / sec, 36)
        XCTAssertEqual(link.tcpFrames.filter { $0.from == 0 && $0.time > start + 25 * sec }.count, 3)
    }
}
