// TCP over the simulated link: setup, teardown, state transitions, errors.
import LinuxABI
import XCTest
@testable import NetStack

final class TCPConnectionTests: XCTestCase {
    func testHandshakeDataAndClientCloseFirst() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link)
        XCTAssertEqual(link.b.state(s), .established)
        XCTAssertEqual(link.a.remoteEndpoint(c), ep(SimulatedLink.addressB, 80))
        XCTAssertEqual(link.b.localEndpoint(s), ep(SimulatedLink.addressB, 80))
        XCTAssertEqual(link.b.remoteEndpoint(s), link.a.localEndpoint(c))
        // The handshake: SYN, SYN-ACK, ACK, with options on the SYNs.
        let tcp = link.tcpFrames
        XCTAssertEqual(tcp[0].tcpFlags, 0x02)
        XCTAssertEqual(tcp[1].tcpFlags, 0x12)
        XCTAssertEqual(tcp[1].tcpAck, tcp[0].tcpSeq &+ 1)
        XCTAssertEqual(tcp[2].tcpFlags, 0x10)
        XCTAssertEqual(tcp[0].tcpOptions[0...3], [2, 4, 0x05, 0xb4])   // MSS 1460

        XCTAssertEqual(link.a.sendSome(c, [1, 2, 3, 4, 5][...], now: link.now), 5)
        XCTAssertTrue(link.run { link.b.availableBytes(s) == 5 })
        XCTAssertTrue(link.b.readiness(s).contains(.readable))
        XCTAssertEqual(try link.b.receiveAll(s, now: link.now), [1, 2, 3, 4, 5])
        expectErrno(.EAGAIN) { _ = try link.b.receiveAll(s, now: link.now) }

        link.a.close(c, now: link.now)
        XCTAssertTrue(link.run { link.b.state(s) == .closeWait })
        XCTAssertEqual(try link.b.receiveAll(s, now: link.now), [])   // EOF
        XCTAssertTrue(link.b.readiness(s).contains(.readHangup))
        link.b.close(s, now: link.now)
        XCTAssertTrue(link.run { link.b.sockets.allSatisfy { $0 == nil } })
        // A is in TIME_WAIT for 60 s, then the slot is freed.
        let tw = link.a.sockets.compactMap { $0 }
        XCTAssertEqual(tw.count, 1)
        XCTAssertEqual(tw.first?.state, .timeWait)
        let entered = link.now
        XCTAssertTrue(link.run(for: 61 * sec) { link.a.sockets.allSatisfy { $0 == nil } })
        XCTAssertGreaterThanOrEqual(link.now - entered, 59 * sec)
        expectErrno(.EBADF) { _ = try link.a.receiveAll(c, now: link.now) }
    }

    func testServerClosesFirst() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link)
        link.b.close(s, now: link.now)
        XCTAssertTrue(link.run { link.a.state(c) == .closeWait })
        link.run(for: 10 * ms)
        XCTAssertEqual(link.b.sockets.compactMap { $0 }.first?.state, .finWait2)
        expectErrno(.EPIPE) { _ = try link.a.shutdown(c, read: false, write: true, now: link.now); _ = try link.a.sendBytes(c, [1, 2, 3], now: link.now) }
        XCTAssertTrue(link.run { link.a.state(c) == .closed })
        XCTAssertTrue(link.a.readiness(c).contains(.hangup))
        XCTAssertEqual(link.b.sockets.compactMap { $0 }.first?.state, .timeWait)
        link.a.close(c, now: link.now)
        XCTAssertTrue(link.a.sockets.allSatisfy { $0 == nil })
    }

    func testSimultaneousClose() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link)
        link.a.close(c, now: link.now)
        link.b.close(s, now: link.now)
        let fins = link.a.sockets.compactMap { $0 }.first!
        XCTAssertEqual(fins.state, .finWait1)
        XCTAssertTrue(link.run(for: sec) {
            link.a.sockets.compactMap { $0 }.first?.state == .timeWait && link.b.sockets.compactMap { $0 }.first?.state == .timeWait
        })
        XCTAssertTrue(link.run(for: 70 * sec) { link.a.sockets.allSatisfy { $0 == nil } && link.b.sockets.allSatisfy { $0 == nil } })
    }

    func testSimultaneousOpen() throws {
        let link = SimulatedLink()
        let x = try link.a.open(.stream, ipv6: false), y = try link.b.open(.stream, ipv6: false)
        try link.a.bind(x, to: ep(0, 1000))
        try link.b.bind(y, to: ep(0, 2000))
        // Resolve ARP first so that both SYNs cross on the wire.
        let u = try link.a.open(.datagram, ipv6: false)
        _ = try [UInt8]().withUnsafeBytes { try link.a.sendTo(u, $0, to: ep(SimulatedLink.addressB, 9), from: nil, now: 0) }
        link.run(for: 100 * ms)
        expectErrno(.EINPROGRESS) { try link.a.connect(x, to: ep(SimulatedLink.addressB, 2000), now: link.now) }
        expectErrno(.EINPROGRESS) { try link.b.connect(y, to: ep(SimulatedLink.addressA, 1000), now: link.now) }
        XCTAssertTrue(link.run { link.a.state(x) == .established && link.b.state(y) == .established })
        XCTAssertEqual(link.a.sendSome(x, [9, 8][...], now: link.now), 2)
        XCTAssertTrue(link.run { link.b.availableBytes(y) == 2 })
    }

    func testConnectToClosedPortIsRefused() throws {
        let link = SimulatedLink()
        let c = try link.a.open(.stream, ipv6: false)
        expectErrno(.EINPROGRESS) { try link.a.connect(c, to: ep(SimulatedLink.addressB, 81), now: 0) }
        XCTAssertEqual(link.a.readiness(c), [])
        XCTAssertTrue(link.run { link.a.state(c) == .closed })
        XCTAssertEqual(link.a.readiness(c), [.readable, .writable, .readHangup, .hangup, .error])
        XCTAssertEqual(link.a.takeError(c), .ECONNREFUSED)
        XCTAssertNil(link.a.takeError(c))
        let rst = link.tcpFrames.last!
        XCTAssertEqual(rst.tcpFlags, 0x14)   // RST+ACK
        expectErrno(.EPIPE) { _ = try link.a.sendBytes(c, [1, 2, 3], now: link.now) }
    }

    func testConnectErrors() throws {
        let link = SimulatedLink()
        let c = try link.a.open(.stream, ipv6: false)
        expectErrno(.ENETUNREACH) { try link.a.connect(c, to: ep(ip(8, 8, 8, 8), 80), now: 0) }
        expectErrno(.EINPROGRESS) { try link.a.connect(c, to: ep(SimulatedLink.addressB, 81), now: 0) }
        expectErrno(.EALREADY) { try link.a.connect(c, to: ep(SimulatedLink.addressB, 81), now: 0) }
        let l = try link.a.open(.stream, ipv6: false)
        expectErrno(.ENOTCONN) { _ = try link.a.receiveAll(l, now: 0) }
        expectErrno(.EADDRNOTAVAIL) { try link.a.bind(l, to: ep(ip(10, 0, 0, 9), 80)) }
        try link.a.bind(l, to: ep(0, 80))
        let l2 = try link.a.open(.stream, ipv6: false)
        expectErrno(.EADDRINUSE) { try link.a.bind(l2, to: ep(SimulatedLink.addressA, 80)) }
        expectErrno(.EINVAL) { _ = try link.a.accept(try link.a.open(.stream, ipv6: false)) }
        try link.a.listen(l, backlog: 1)
        expectErrno(.EAGAIN) { _ = try link.a.accept(l) }
        link.a.close(l, now: 0)
        expectErrno(.EBADF) { try link.a.listen(l, backlog: 1) }
        // The port is free again.
        try link.a.bind(l2, to: ep(SimulatedLink.addressA, 80))
    }

    func testPortReuseAfterTimeWait() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link)
        link.b.close(s, now: link.now)   // the server closes first: its side goes to TIME_WAIT
        XCTAssertTrue(link.run { link.a.state(c) == .closeWait })
        link.a.close(c, now: link.now)
        XCTAssertTrue(link.run { link.b.sockets.compactMap { $0 }.first?.state == .timeWait })
        link.run(for: 10 * ms)
        let l = try link.b.open(.stream, ipv6: false)
        expectErrno(.EADDRINUSE) { try link.b.bind(l, to: ep(0, 80)) }
        try link.b.setOption(l, .reuseAddress(true))
        try link.b.bind(l, to: ep(0, 80))
        try link.b.listen(l, backlog: 4)
        // A new connection from the same client port while the old tuple is in TIME_WAIT.
        let old = link.a.sockets.compactMap { $0 }.first
        XCTAssertNil(old)
        let c2 = try link.a.open(.stream, ipv6: false)
        try link.a.setOption(c2, .reuseAddress(true))
        let port = link.tcpFrames[0].bytes[34...35]
        try link.a.bind(c2, to: ep(0, UInt16(port.first!) << 8 | UInt16(port.last!)))
        expectErrno(.EINPROGRESS) { try link.a.connect(c2, to: ep(SimulatedLink.addressB, 80), now: link.now) }
        XCTAssertTrue(link.run { link.a.state(c2) == .established })
        link.run(for: 10 * ms)
        XCTAssertEqual(try link.b.accept(l).1, link.a.localEndpoint(c2))
    }

    func testResetByAbortAndClosingWithUnreadData() throws {
        let link = SimulatedLink()
        var (c, s) = establish(link)
        link.a.abort(c, now: link.now)
        XCTAssertTrue(link.run { link.b.state(s) == .closed })
        XCTAssertEqual(link.b.takeError(s), .ECONNRESET)
        XCTAssertEqual(try link.b.receiveAll(s, now: link.now), [])
        expectErrno(.EPIPE) { _ = try link.b.sendBytes(s, [1, 2, 3], now: link.now) }
        link.b.close(s, now: link.now)

        (c, s) = establish(link, port: 81)
        XCTAssertEqual(link.a.sendSome(c, [1, 2, 3][...], now: link.now), 3)
        XCTAssertTrue(link.run { link.b.availableBytes(s) == 3 })
        link.b.close(s, now: link.now)   // unread data: RST instead of FIN
        link.collect()
        XCTAssertEqual(link.tcpFrames.last!.tcpFlags & 0x04, 0x04)
        XCTAssertTrue(link.run { link.a.state(c) == .closed })
        XCTAssertEqual(link.a.takeError(c), .ECONNRESET)
    }

    func testResetOutsideWindowGetsChallengeAck() throws {
        let link = SimulatedLink()
        let (c, s) = establish(link)
        let sock = link.b.rawSocket(s)
        // Forge a RST from A with a sequence number inside the window but not RCV.NXT.
        var frame = link.tcpFrames.last(where: { $0.from == 0 })!.bytes
        let o = 34
        let seq = sock.rcvNxt &+ 100
        frame[o + 4] = UInt8(seq >> 24); frame[o + 5] = UInt8(truncatingIfNeeded: seq >> 16)
        frame[o + 6] = UInt8(truncatingIfNeeded: seq >> 8); frame[o + 7] = UInt8(truncatingIfNeeded: seq)
        frame[o + 13] = 0x04
        fixTCPChecksum(&frame)
        let before = link.seen.count
        frame.withUnsafeBytes { link.b.input(frame: $0, now: link.now) }
        link.collect()
        XCTAssertEqual(link.b.state(s), .established)
        XCTAssertEqual(link.seen[before...].last?.tcpFlags, 0x10)   // challenge ACK
        // The exact sequence number resets.
        let exact = sock.rcvNxt
        frame[o + 4] = UInt8(exact >> 24); frame[o + 5] = UInt8(truncatingIfNeeded: exact >> 16)
        frame[o + 6] = UInt8(truncatingIfNeeded: exact >> 8); frame[o + 7] = UInt8(truncatingIfNeeded: exact)
        fixTCPChecksum(&frame)
        frame.withUnsafeBytes { link.b.input(frame: $0, now: link.now) }
        XCTAssertEqual(link.b.state(s), .closed)
        XCTAssertEqual(link.b.takeError(s), .ECONNRESET)
        _ = c
    }

    func testListenBacklogOverflowDropsSyns() throws {
        let link = SimulatedLink()
        let l = try link.b.open(.stream, ipv6: false)
        try link.b.bind(l, to: ep(0, 80))
        try link.b.listen(l, backlog: 2)
        var clients: [SocketID] = []
        for _ in 0..<3 {
            let c = try link.a.open(.stream, ipv6: false)
            expectErrno(.EINPROGRESS) { try link.a.connect(c, to: ep(SimulatedLink.addressB, 80), now: link.now) }
            clients.append(c)
        }
        link.run(for: 500 * ms)
        XCTAssertEqual(clients.filter { link.a.state($0) == .established }.count, 2)
        XCTAssertEqual(link.a.state(clients[2]), .synSent)
        XCTAssertNotNil(try? link.b.accept(l))
        // Room again: the third SYN's retransmission (at 1 s) gets in.
        XCTAssertTrue(link.run(for: 2 * sec) { link.a.state(clients[2]) == .established })
        XCTAssertNotNil(try? link.b.accept(l))
        expectErrno(.EAGAIN) { _ = try link.b.accept(l) }
    }

    func testClosingListenerResetsPendingConnections() throws {
        let link = SimulatedLink()
        let l = try link.b.open(.stream, ipv6: false)
        try link.b.bind(l, to: ep(0, 80))
        try link.b.listen(l, backlog: 2)
        let c = try link.a.open(.stream, ipv6: false)
        expectErrno(.EINPROGRESS) { try link.a.connect(c, to: ep(SimulatedLink.addressB, 80), now: link.now) }
        XCTAssertTrue(link.run { link.a.state(c) == .established })
        link.b.close(l, now: link.now)
        XCTAssertTrue(link.run { link.a.state(c) == .closed })
        XCTAssertEqual(link.a.takeError(c), .ECONNRESET)
        XCTAssertTrue(link.b.sockets.allSatisfy { $0 == nil })
    }
}

/// Recomputes the TCP checksum of an IPv4 frame.
func fixTCPChecksum(_ frame: inout [UInt8]) {
    let ihl = Int(frame[14] & 0x0f) * 4
    let total = Int(frame[16]) << 8 | Int(frame[17])
    let o = 14 + ihl, length = total - ihl
    frame[o + 16] = 0
    frame[o + 17] = 0
    let src = IPAddress(ipv4: UInt32(frame[26]) << 24 | UInt32(frame[27]) << 16 | UInt32(frame[28]) << 8 | UInt32(frame[29]))
    let dst = IPAddress(ipv4: UInt32(frame[30]) << 24 | UInt32(frame[31]) << 16 | UInt32(frame[32]) << 8 | UInt32(frame[33]))
    let sum = checksumField(frame.sum(o, length) + pseudoHeaderSum(src, dst, 6, length))
    frame[o + 16] = UInt8(sum >> 8)
    frame[o + 17] = UInt8(truncatingIfNeeded: sum)
}
