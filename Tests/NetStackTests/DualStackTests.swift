// Dual-stack socket semantics (Linux): IPV6_V6ONLY, bind conflicts between the families,
// IPv4 traffic on IPv6 sockets as v4-mapped addresses.
import LinuxABI
import XCTest
@testable import NetStack

final class DualStackTests: XCTestCase {
    func listener(_ stack: NetworkStack, ipv6: Bool, v6Only: Bool = false, _ address: IPAddress, _ port: UInt16) throws -> SocketID {
        let l = try stack.open(.stream, ipv6: ipv6)
        if v6Only { try stack.setOption(l, .v6Only(true)) }
        try stack.bind(l, to: Endpoint(address: address, port: port))
        try stack.listen(l, backlog: 8)
        return l
    }

    /// Connects from stack A to `target` and returns the connection accepted by `l` on B (nil if
    /// none) and the client's outcome.
    func connect(_ link: SimulatedLink, ipv6: Bool, to target: Endpoint, _ l: SocketID) throws -> (SocketID?, Endpoint?, SocketID) {
        let c = try link.a.open(.stream, ipv6: ipv6)
        expectErrno(.EINPROGRESS) { try link.a.connect(c, to: target, now: link.now) }
        var accepted: (SocketID, Endpoint)?
        link.run { accepted = accepted ?? (try? link.b.accept(l)); return accepted != nil || link.a.readiness(c).contains(.error) }
        return (accepted?.0, accepted?.1, c)
    }

    /// redis: 0.0.0.0:6379 (IPv4), then [::]:6379 with IPV6_V6ONLY; each family reaches its own.
    func testRedisBindsIPv4ThenV6OnlyIPv6() throws {
        let link = dualStackLink()
        let l4 = try listener(link.b, ipv6: false, .any4, 6379)
        let l6 = try link.b.open(.stream, ipv6: true)
        try link.b.setOption(l6, .reuseAddress(true))
        try link.b.setOption(l6, .v6Only(true))
        XCTAssertEqual(link.b.option(l6, .v6Only), .v6Only(true))
        try link.b.bind(l6, to: ep6(.any6, 6379))
        try link.b.listen(l6, backlog: 8)
        // IPv4 to the IPv4 socket, IPv6 to the IPv6 socket.
        let (s4, peer4, _) = try connect(link, ipv6: false, to: ep(SimulatedLink.addressB, 6379), l4)
        XCTAssertNotNil(s4)
        XCTAssertEqual(peer4?.address, IPAddress(ipv4: SimulatedLink.addressA))
        expectErrno(.EAGAIN) { _ = try link.b.accept(l6) }
        let (s6, peer6, _) = try connect(link, ipv6: true, to: ep6(global(2), 6379), l6)
        XCTAssertNotNil(s6)
        XCTAssertEqual(peer6?.address, global(1))
        expectErrno(.EAGAIN) { _ = try link.b.accept(l4) }
        // The v6-only socket takes no IPv4: with only it left, IPv4 is refused.
        link.b.close(l4, now: link.now)
        let (none, _, c) = try connect(link, ipv6: false, to: ep(SimulatedLink.addressB, 6379), l6)
        XCTAssertNil(none)
        XCTAssertEqual(link.a.takeError(c), .ECONNREFUSED)
    }

    func testBindConflictsAcrossFamilies() throws {
        let stack = makeStack6()
        func bind(_ ipv6: Bool, v6Only: Bool = false, _ address: IPAddress, _ port: UInt16, kind: SocketKind = .stream) throws {
            let s = try stack.open(kind, ipv6: ipv6)
            if v6Only { try stack.setOption(s, .v6Only(true)) }
            try stack.bind(s, to: Endpoint(address: address, port: port))
        }
        // IPv4 first: a dual-stack [::] conflicts, a v6-only one does not.
        try bind(false, .any4, 1)
        expectErrno(.EADDRINUSE) { try bind(true, .any6, 1) }
        try bind(true, v6Only: true, .any6, 1)
        expectErrno(.EADDRINUSE) { try bind(true, v6Only: true, .any6, 1) }     // v6 vs v6
        expectErrno(.EADDRINUSE) { try bind(true, .loopback6, 1) }
        // Dual-stack [::] first: it holds the IPv4 side too.
        try bind(true, .any6, 2)
        expectErrno(.EADDRINUSE) { try bind(false, .any4, 2) }
        expectErrno(.EADDRINUSE) { try bind(false, .loopback4, 2) }
        expectErrno(.EADDRINUSE) { try bind(true, IPAddress(ipv4: 0x7f00_0001), 2) }   // ::ffff:127.0.0.1
        expectErrno(.EADDRINUSE) { try bind(true, stack6, 2) }
        // v6-only [::] first: IPv4 binds are free.
        try bind(true, v6Only: true, .any6, 3)
        try bind(false, .any4, 3)
        expectErrno(.EADDRINUSE) { try bind(true, .any6, 3) }
        // Specific addresses of different families never conflict.
        try bind(false, .loopback4, 4)
        try bind(true, .loopback6, 4)
        try bind(true, stack6, 4)
        expectErrno(.EADDRINUSE) { try bind(true, IPAddress(ipv4: 0x7f00_0001), 4) }
        // The same rules for UDP, which has its own ports.
        try bind(false, .any4, 1, kind: .datagram)
        try bind(true, v6Only: true, .any6, 1, kind: .datagram)
        expectErrno(.EADDRINUSE) { try bind(true, .any6, 1, kind: .datagram) }
        // Address family checks.
        expectErrno(.EINVAL) { try bind(false, .loopback6, 5) }
        expectErrno(.EINVAL) { try bind(true, v6Only: true, IPAddress(ipv4: 0x7f00_0001), 5) }
        expectErrno(.EADDRNOTAVAIL) { try bind(true, global(9), 5) }
    }

    func testV6OnlyOptionRules() throws {
        let stack = makeStack6()
        let s4 = try stack.open(.stream, ipv6: false)
        expectErrno(.ENOPROTOOPT) { try stack.setOption(s4, .v6Only(true)) }
        let s6 = try stack.open(.stream, ipv6: true)
        XCTAssertEqual(stack.option(s6, .v6Only), .v6Only(false))   // Linux's default bindv6only=0
        try stack.setOption(s6, .v6Only(true))
        try stack.setOption(s6, .v6Only(false))
        try stack.bind(s6, to: ep6(.any6, 10))
        expectErrno(.EINVAL) { try stack.setOption(s6, .v6Only(true)) }
        // A v6-only socket cannot reach IPv4.
        let u = try stack.open(.datagram, ipv6: true)
        try stack.setOption(u, .v6Only(true))
        expectErrno(.ENETUNREACH) { try stack.sendDatagram(u, [1], to: Endpoint(address: .loopback4, port: 9)) }
        let t = try stack.open(.stream, ipv6: true)
        try stack.setOption(t, .v6Only(true))
        expectErrno(.ENETUNREACH) { try stack.connect(t, to: Endpoint(address: .loopback4, port: 9), now: 0) }
        // An IPv4 socket cannot reach IPv6.
        let v4 = try stack.open(.datagram, ipv6: false)
        expectErrno(.EINVAL) { try stack.sendDatagram(v4, [1], to: ep6(.loopback6, 9)) }
    }

    /// A dual-stack listener accepts IPv4 connections and reports v4-mapped addresses; the
    /// packets on the wire are IPv4.
    func testDualStackListenerAcceptsIPv4WithMappedAddresses() throws {
        let link = dualStackLink()
        let l = try listener(link.b, ipv6: true, .any6, 80)
        let (s, peer, c) = try connect(link, ipv6: false, to: ep(SimulatedLink.addressB, 80), l)
        let server = try XCTUnwrap(s)
        let mapped = IPAddress(high: 0, low: 0x0000_ffff_0a00_0001)   // ::ffff:10.0.0.1
        XCTAssertEqual(peer, Endpoint(address: mapped, port: link.a.localEndpoint(c)!.port))
        XCTAssertEqual(link.b.localEndpoint(server)?.address, IPAddress(high: 0, low: 0x0000_ffff_0a00_0002))
        XCTAssertEqual(link.b.remoteEndpoint(server)?.address, mapped)
        XCTAssertTrue(link.seen.filter(\.isTCP).count >= 3)   // IPv4 TCP frames
        XCTAssertFalse(link.seen.contains { $0.bytes[12] == 0x86 })
        // IPv6 reaches it too.
        let (s6, peer6, _) = try connect(link, ipv6: true, to: ep6(global(2), 80), l)
        XCTAssertNotNil(s6)
        XCTAssertEqual(peer6?.address, global(1))
        // Data flows on the IPv4 connection.
        XCTAssertEqual(link.a.sendSome(c, [1, 2, 3][...], now: link.now), 3)
        XCTAssertTrue(link.run { link.b.availableBytes(server) == 3 })
    }

    /// Connecting an IPv6 socket to a v4-mapped address uses IPv4.
    func testIPv6SocketConnectsToMappedAddressOverIPv4() throws {
        let link = dualStackLink()
        let l = try listener(link.b, ipv6: false, .any4, 80)
        let target = Endpoint(address: IPAddress(high: 0, low: 0x0000_ffff_0a00_0002), port: 80)
        let (s, peer, c) = try connect(link, ipv6: true, to: target, l)
        XCTAssertNotNil(s)
        XCTAssertEqual(peer?.address, IPAddress(ipv4: SimulatedLink.addressA))
        XCTAssertEqual(link.a.localEndpoint(c)?.address, IPAddress(ipv4: SimulatedLink.addressA))
        XCTAssertEqual(link.a.remoteEndpoint(c), target)
        XCTAssertFalse(link.seen.contains { $0.bytes[12] == 0x86 })
        // UDP the same way.
        let r = try link.b.open(.datagram, ipv6: false)
        try link.b.bind(r, to: ep(0, 53))
        let u = try link.a.open(.datagram, ipv6: true)
        try link.a.sendDatagram(u, [4], to: Endpoint(address: target.address, port: 53))
        XCTAssertTrue(link.run { link.b.availableBytes(r) > 0 })
        XCTAssertEqual(try link.b.datagram(r).1.address, IPAddress(ipv4: SimulatedLink.addressA))
    }

    func testUDPDualStackDelivery() throws {
        let stack = makeStack6()
        let dual = try stack.open(.datagram, ipv6: true)
        try stack.bind(dual, to: ep6(.any6, 53))
        let only6 = try stack.open(.datagram, ipv6: true)
        try stack.setOption(only6, .v6Only(true))
        try stack.bind(only6, to: ep6(.any6, 54))
        let v4 = try stack.open(.datagram, ipv6: false)
        try stack.bind(v4, to: ep(0, 55))
        let sender4 = try stack.open(.datagram, ipv6: false)
        let sender6 = try stack.open(.datagram, ipv6: true)
        // IPv4 to the dual-stack socket: received, from a v4-mapped address.
        try stack.sendDatagram(sender4, [1], to: Endpoint(address: .loopback4, port: 53))
        let (data, from, to) = try stack.datagram(dual)
        XCTAssertEqual(data, [1])
        XCTAssertEqual(from.address, IPAddress(high: 0, low: 0x0000_ffff_7f00_0001))
        XCTAssertEqual(to, Endpoint(address: .loopback4, port: 53))
        // From the wire too.
        stack.feed(ipv4Frame(proto: 17, udpSegment(1000, 53, [2])))
        XCTAssertEqual(try stack.datagram(dual).1, ep(peerIP, 1000))
        // IPv4 to the v6-only socket: not received (port unreachable instead).
        try stack.connect(sender4, to: Endpoint(address: .loopback4, port: 54), now: 0)
        try stack.sendDatagram(sender4, [3], to: nil)
        expectErrno(.EAGAIN) { _ = try stack.datagram(only6) }
        XCTAssertEqual(stack.takeError(sender4), .ECONNREFUSED)
        try stack.sendDatagram(sender6, [4], to: ep6(.loopback6, 54))
        XCTAssertEqual(try stack.datagram(only6).0, [4])
        // IPv6 to the IPv4 socket: never.
        try stack.sendDatagram(sender6, [5], to: ep6(.loopback6, 55))
        expectErrno(.EAGAIN) { _ = try stack.datagram(v4) }
        stack.feed(neighbourSolicitation(stack6))
        _ = stack.drain()
        stack.feed(ipv6Frame(next: 17, udp6(1000, 55, [6])))
        expectErrno(.EAGAIN) { _ = try stack.datagram(v4) }
    }
}
