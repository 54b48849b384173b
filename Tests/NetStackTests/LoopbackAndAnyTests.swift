// The loopback path (both ends on one stack) and the user-mode network's "any" sockets.
import LinuxABI
import XCTest
@testable import NetStack

final class LoopbackTests: XCTestCase {
    func testTCPOverLoopbackNeverReachesTheLink() throws {
        let stack = makeStack()
        let l = try stack.open(.stream, ipv6: false)
        try stack.bind(l, to: ep(0, 8080))
        try stack.listen(l, backlog: 4)
        for target in [IPAddress.loopback4, IPAddress(ipv4: stackIP)] {
            let c = try stack.open(.stream, ipv6: false)
            // Loopback packets are processed before connect returns.
            expectErrno(.EINPROGRESS) { try stack.connect(c, to: Endpoint(address: target, port: 8080), now: 0) }
            XCTAssertEqual(stack.state(c), .established)
            XCTAssertTrue(stack.readiness(c).contains(.writable))
            let (s, peer) = try stack.accept(l)
            XCTAssertEqual(peer, stack.localEndpoint(c))
            XCTAssertEqual(stack.localEndpoint(s), Endpoint(address: target, port: 8080))
            XCTAssertEqual(stack.localEndpoint(c)?.address, target)
            XCTAssertEqual(stack.rawSocket(c).mss, 65495)
            // 1 MiB through, in both directions.
            let data = randomBytes(6, 1 << 20)
            var sent = 0, received: [UInt8] = [], back: [UInt8] = []
            var now: UInt64 = 0
            while received.count < data.count {
                sent += stack.sendSome(c, data[sent...], now: now)
                while let chunk = try? stack.receiveAll(s, now: now, max: 70_000), !chunk.isEmpty {
                    received += chunk
                    _ = stack.sendSome(s, chunk[...], now: now)
                }
                while let chunk = try? stack.receiveAll(c, now: now, max: 300_000), !chunk.isEmpty { back += chunk }
                now += ms
                stack.advance(now: now)
            }
            assertSameBytes(received, data)
            assertSameBytes(back, data)
            stack.close(c, now: now)
            XCTAssertEqual(try stack.receiveAll(s, now: now), [])   // end of stream
            stack.close(s, now: now)
            XCTAssertTrue(stack.drain().isEmpty)
        }
    }

    func testUDPAndPingOnLoopback() throws {
        let stack = makeStack()
        let s = try stack.open(.datagram, ipv6: false)
        try stack.bind(s, to: ep(0, 53))
        let c = try stack.open(.datagram, ipv6: false)
        try stack.sendDatagram(c, [1, 2], to: Endpoint(address: .loopback4, port: 53))
        let (data, from, to) = try stack.datagram(s)
        XCTAssertEqual(data, [1, 2])
        XCTAssertEqual(from.address, .loopback4)
        XCTAssertEqual(to, Endpoint(address: .loopback4, port: 53))
        // A closed loopback port: ICMP port unreachable, reported to the connected socket.
        try stack.connect(c, to: Endpoint(address: .loopback4, port: 54), now: 0)
        try stack.sendDatagram(c, [1], to: nil)
        XCTAssertEqual(stack.takeError(c), .ECONNREFUSED)
        XCTAssertTrue(stack.drain().isEmpty)
    }

    func testConnectToClosedLoopbackPortIsRefusedAtOnce() throws {
        let stack = makeStack()
        let c = try stack.open(.stream, ipv6: false)
        expectErrno(.EINPROGRESS) { try stack.connect(c, to: Endpoint(address: .loopback4, port: 1), now: 0) }
        XCTAssertEqual(stack.takeError(c), .ECONNREFUSED)
    }
}

final class AnySocketTests: XCTestCase {
    /// A: the guest (10.0.0.1, gateway 10.0.0.2). B: the user-mode network (10.0.0.2, accepts anything).
    func userModeLink() -> SimulatedLink {
        SimulatedLink { config, i in
            if i == 0 { config.ipv4Gateway = SimulatedLink.addressB } else { config.acceptsAnyDestination = true }
        }
    }

    func testListenAnyAcceptsConnectionsToAnyAddress() throws {
        let link = userModeLink()
        let any = try link.b.open(.stream, ipv6: false)
        try link.b.listenAny(any)
        let c = try link.a.open(.stream, ipv6: false)
        let remote = ep(ip(93, 184, 216, 34), 80)
        expectErrno(.EINPROGRESS) { try link.a.connect(c, to: remote, now: 0) }
        var accepted: (SocketID, Endpoint)?
        XCTAssertTrue(link.run { accepted = accepted ?? (try? link.b.accept(any)); return accepted != nil })
        let (s, peer) = accepted!
        XCTAssertEqual(link.b.localEndpoint(s), remote)
        XCTAssertEqual(peer, link.a.localEndpoint(c))
        XCTAssertEqual(link.a.localEndpoint(c)?.address, IPAddress(ipv4: SimulatedLink.addressA))
        XCTAssertEqual(link.a.sendSome(c, [1, 2][...], now: link.now), 2)
        XCTAssertTrue(link.run { link.b.availableBytes(s) == 2 })
        XCTAssertEqual(link.b.sendSome(s, [3][...], now: link.now), 1)
        XCTAssertTrue(link.run { link.a.availableBytes(c) == 1 })
        // A specific listener still wins for its own address and port.
        let web = try link.b.open(.stream, ipv6: false)
        try link.b.bind(web, to: ep(0, 8080))
        try link.b.listen(web, backlog: 1)
        let c2 = try link.a.open(.stream, ipv6: false)
        expectErrno(.EINPROGRESS) { try link.a.connect(c2, to: ep(SimulatedLink.addressB, 8080), now: link.now) }
        XCTAssertTrue(link.run { (try? link.b.accept(web)) != nil })
        // Without acceptsAnyDestination, listenAny is refused.
        expectErrno(.EINVAL) { try link.a.listenAny(try link.a.open(.stream, ipv6: false)) }
    }

    func testBindAnyReceivesAndRepliesAsTheOriginalDestination() throws {
        let link = userModeLink()
        let any = try link.b.open(.datagram, ipv6: false)
        try link.b.bindAny(any)
        let c = try link.a.open(.datagram, ipv6: false)
        let dns = ep(ip(8, 8, 8, 8), 53)
        try link.a.sendDatagram(c, [0xab], to: dns)
        link.run(for: sec)
        let (data, from, to) = try link.b.datagram(any)
        XCTAssertEqual(data, [0xab])
        XCTAssertEqual(to, dns)
        try link.b.sendDatagram(any, [0xcd], to: from, from: to)
        link.run(for: sec)
        let (reply, replyFrom, _) = try link.a.datagram(c)
        XCTAssertEqual(reply, [0xcd])
        XCTAssertEqual(replyFrom, dns)
    }
}
