import CKVM
import LinuxABI
import NetStack
@testable import VMM
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The user-mode network without a VM: a NetStack playing the guest (10.0.2.15) exchanges
/// frames with `UserNetwork` directly, and real host sockets on 127.0.0.1 are the outside
/// world. Each test runs the backend's poll/service cycle as the I/O thread does.
final class UserNetworkTests: XCTestCase {
    typealias IPv4Address = NetworkConfiguration.IPv4Address
    let loopback = IPv4Address(127, 0, 0, 1)
    var guest: NetworkStack!
    var net: UserNetwork!

    func makeNetwork(_ forwards: [NetworkConfiguration.PortForward] = []) throws {
        guest = NetworkStack(interface: InterfaceConfig(mac: MACAddress((0x52, 0x54, 0, 1, 2, 3)), ipv4: UserNetwork.guestAddress.value,
                                                        ipv4PrefixLength: 24, ipv4Gateway: UserNetwork.gatewayAddress.value), seed: 7)
        net = try UserNetwork(forwards: forwards, seed: 11)
    }

    override func tearDown() {
        net?.shutdown()
        net = nil
        guest = nil
    }

    /// Frames both ways, host descriptors polled (1 ms), timers run; until `done` or 3 s.
    @discardableResult
    func pump(until done: () -> Bool) -> Bool {
        let end = monotonicNanos() + 3_000_000_000
        var frame = [UInt8](repeating: 0, count: 65536)
        while monotonicNanos() < end {
            if done() { return true }
            let now = monotonicNanos()
            while let n = frame.withUnsafeMutableBytes({ guest.nextOutputFrame(into: $0) }) {
                frame.withUnsafeBytes { net.transmit(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            net.service([], now: now)
            while let n = frame.withUnsafeMutableBytes({ net.receive(into: $0) }) {
                frame.withUnsafeBytes { guest.input(frame: UnsafeRawBufferPointer(rebasing: $0[0..<n]), now: now) }
            }
            if let d = guest.nextDeadline, d <= now { guest.advance(now: now) }
            var fds = net.pollDescriptors()
            _ = fds.withUnsafeMutableBufferPointer { ckvm_poll_ns($0.baseAddress, UInt($0.count), 1_000_000) }
            net.service(fds, now: monotonicNanos())
        }
        return done()
    }

    func port(of fd: Int32) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return UInt16(bigEndian: address.sin_port)
    }

    /// What a guest socket has (nil: nothing yet or an error; []: end of file).
    func guestReceive(_ s: SocketID) -> [UInt8]? {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buffer.deallocate() }
        do {
            let n = try guest.receive(s, into: buffer, peek: false, now: monotonicNanos())
            return Array(buffer[0..<n])
        } catch {
            return nil
        }
    }

    func guestReceiveFails(_ s: SocketID) -> Bool {
        guestReceive(s) == nil
    }

    @discardableResult
    func guestSend(_ s: SocketID, _ bytes: ArraySlice<UInt8>) -> Int {
        let copy = Array(bytes)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(copy.count, 1), alignment: 8)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: copy)
        do { return try guest.send(s, UnsafeRawBufferPointer(rebasing: buffer[0..<copy.count]), now: monotonicNanos()) } catch { return 0 }
    }

    func guestSendTo(_ s: SocketID, _ bytes: [UInt8], to: Endpoint?) -> Int {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: bytes)
        do { return try guest.sendTo(s, UnsafeRawBufferPointer(rebasing: buffer[0..<bytes.count]), to: to, from: nil, now: monotonicNanos()) } catch { return -1 }
    }

    /// One datagram: its bytes and sender.
    func guestReceiveFrom(_ s: SocketID) -> ([UInt8], Endpoint)? {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 8)
        defer { buffer.deallocate() }
        do {
            let d = try guest.receiveFrom(s, into: buffer, peek: false)
            return (Array(buffer[0..<d.count]), d.from)
        } catch {
            return nil
        }
    }

    /// Starts a connect (EINPROGRESS is the normal answer).
    func guestConnect(_ s: SocketID, to: Endpoint) {
        do { try guest.connect(s, to: to, now: monotonicNanos()) } catch {
            XCTAssertEqual(error, .EINPROGRESS)
        }
    }

    func guestAccept(_ s: SocketID) -> (SocketID, Endpoint)? {
        do { return try guest.accept(s) } catch { return nil }
    }

    func hostRead(_ fd: Int32) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return n > 0 ? Array(buffer[0..<n]) : (n == 0 ? [] : nil)
    }

    /// A host client on a published port reaches a guest server, and both directions and the
    /// client's half-close arrive.
    func testPublishedTCPPort() throws {
        try makeNetwork([.init(.tcp, hostAddress: loopback, hostPort: 0, guestPort: 8080)])
        let hostPort = try XCTUnwrap(net.publishedPorts.first)
        XCTAssertNotEqual(hostPort, 0)
        let listener = try guest.open(.stream, ipv6: false)
        try guest.bind(listener, to: Endpoint(address: .any4, port: 8080))
        try guest.listen(listener, backlog: 4)

        let client = ckvm_ipv4_connect(Int32(SOCK_STREAM.rawValue), loopback.value, hostPort)
        XCTAssertGreaterThanOrEqual(client, 0)
        defer { close(client) }
        var accepted: (SocketID, Endpoint)?
        XCTAssertTrue(pump { accepted = guestAccept(listener); return accepted != nil }, "the guest never saw the connection")
        let (conn, peer) = try XCTUnwrap(accepted)
        XCTAssertEqual(peer.address.ipv4, UserNetwork.gatewayAddress.value, "published connections come from the gateway")
        XCTAssertEqual(send(client, "hello", 5, 0), 5)
        var got: [UInt8] = []
        XCTAssertTrue(pump { got += guestReceive(conn) ?? []; return got.count >= 5 })
        XCTAssertEqual(got, Array("hello".utf8))
        guestSend(conn, ArraySlice("world".utf8))
        var back: [UInt8] = []
        XCTAssertTrue(pump { back += hostRead(client) ?? []; return back.count >= 5 })
        XCTAssertEqual(back, Array("world".utf8))
        // The client's EOF reaches the guest as EOF.
        Glibc.shutdown(client, Int32(SHUT_WR))
        var eof = false
        XCTAssertTrue(pump { if let b = guestReceive(conn), b.isEmpty { eof = true }; return eof })
    }

    /// The guest connects to 10.0.2.2:port and reaches a server on the host's 127.0.0.1.
    func testOutboundTCPToTheHost() throws {
        try makeNetwork()
        let server = ckvm_ipv4_bind(Int32(SOCK_STREAM.rawValue), loopback.value, 0)
        XCTAssertGreaterThanOrEqual(server, 0)
        defer { close(server) }
        XCTAssertEqual(listen(server, 4), 0)
        let s = try guest.open(.stream, ipv6: false)
        guestConnect(s, to: Endpoint(address: IPAddress(ipv4: UserNetwork.gatewayAddress.value), port: port(of: server)))
        var host: Int32 = -1
        XCTAssertTrue(pump { if host < 0 { host = ckvm_accept(server) }; return host >= 0 && guest.readiness(s).contains(.writable) })
        defer { close(host) }
        let payload = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        var sent = 0
        var received: [UInt8] = []
        XCTAssertTrue(pump {
            if sent < payload.count { sent += guestSend(s, payload[sent...]) }
            received += hostRead(host) ?? []
            return received.count == payload.count
        })
        XCTAssertEqual(received, payload, "bytes changed on the way out")
    }

    /// A refused destination: the guest's connect is refused (the SYN is only answered once
    /// the host connect succeeded).
    func testOutboundToAClosedPortIsRefused() throws {
        try makeNetwork()
        let probe = ckvm_ipv4_bind(Int32(SOCK_STREAM.rawValue), loopback.value, 0)
        let closedPort = port(of: probe)
        close(probe)
        let s = try guest.open(.stream, ipv6: false)
        guestConnect(s, to: Endpoint(address: IPAddress(ipv4: UserNetwork.gatewayAddress.value), port: closedPort))
        XCTAssertTrue(pump { guest.readiness(s).contains(.error) })
        XCTAssertEqual(guest.takeError(s), .ECONNREFUSED)
    }

    /// UDP both ways: a published port, and the guest's datagrams to the host.
    func testUDP() throws {
        try makeNetwork([.init(.udp, hostAddress: loopback, hostPort: 0, guestPort: 5353)])
        let hostPort = try XCTUnwrap(net.publishedPorts.first)
        let g = try guest.open(.datagram, ipv6: false)
        try guest.bind(g, to: Endpoint(address: .any4, port: 5353))
        let peer = ckvm_ipv4_bind(Int32(SOCK_DGRAM.rawValue), loopback.value, 0)
        defer { close(peer) }
        var ping: [UInt8] = Array("ping".utf8)
        XCTAssertEqual(ckvm_udp_sendto(peer, &ping, 4, loopback.value, hostPort), 4)
        var buffer = [UInt8](repeating: 0, count: 64)
        var first: ([UInt8], Endpoint)?
        XCTAssertTrue(pump { first = guestReceiveFrom(g); return first != nil })
        XCTAssertEqual(first?.0, ping)
        XCTAssertEqual(guestSendTo(g, Array("pong".utf8), to: first?.1), 4)
        var reply: [UInt8]?
        XCTAssertTrue(pump { reply = hostRead(peer); return reply != nil })
        XCTAssertEqual(reply, Array("pong".utf8))

        // Outbound: the guest sends to 10.0.2.2:port, a host socket answers.
        let server = ckvm_ipv4_bind(Int32(SOCK_DGRAM.rawValue), loopback.value, 0)
        defer { close(server) }
        let out = try guest.open(.datagram, ipv6: false)
        let destination = Endpoint(address: IPAddress(ipv4: UserNetwork.gatewayAddress.value), port: port(of: server))
        XCTAssertEqual(guestSendTo(out, Array("question".utf8), to: destination), 8)
        var address: UInt32 = 0, sourcePort: UInt16 = 0, n = -1
        XCTAssertTrue(pump { n = ckvm_udp_recvfrom(server, &buffer, 64, &address, &sourcePort); return n >= 0 })
        XCTAssertEqual(Array(buffer[0..<n]), Array("question".utf8))
        var answer = Array("answer".utf8)
        XCTAssertEqual(ckvm_udp_sendto(server, &answer, answer.count, address, sourcePort), answer.count)
        var got: ([UInt8], Endpoint)?
        XCTAssertTrue(pump { got = guestReceiveFrom(out); return got != nil })
        XCTAssertEqual(got?.1, destination, "the reply comes from the address the guest sent to")
        XCTAssertEqual(got?.0, answer)
    }

    /// A guest spraying datagrams at new destinations holds at most `maxFlows` host sockets
    /// (the probe saw 12,600 descriptors in 5 s before the bound); the newest flow still works.
    func testUDPFlowsAreBounded() throws {
        try makeNetwork()
        let server = ckvm_ipv4_bind(Int32(SOCK_DGRAM.rawValue), loopback.value, 0)
        defer { close(server) }
        let descriptorsBefore = openDescriptorCount()
        let out = try guest.open(.datagram, ipv6: false)
        let gateway = IPAddress(ipv4: UserNetwork.gatewayAddress.value)
        // 3,000 destinations (closed loopback ports: nothing answers), a few at a time.
        var sent = 0
        XCTAssertTrue(pump {
            for _ in 0..<100 where sent < 3_000 {
                _ = guestSendTo(out, [1], to: Endpoint(address: gateway, port: UInt16(20_000 + sent)))
                sent += 1
            }
            return sent == 3_000 && !guest.hasOutput
        })
        XCTAssertLessThanOrEqual(net.flowCount, UserNetwork.maxFlows)
        XCTAssertLessThanOrEqual(openDescriptorCount() - descriptorsBefore, UserNetwork.maxFlows + 8)
        // The newest flow is the one that works.
        XCTAssertEqual(guestSendTo(out, Array("late".utf8), to: Endpoint(address: gateway, port: port(of: server))), 4)
        var buffer = [UInt8](repeating: 0, count: 64)
        var address: UInt32 = 0, sourcePort: UInt16 = 0, n = -1
        XCTAssertTrue(pump { n = ckvm_udp_recvfrom(server, &buffer, 64, &address, &sourcePort); return n >= 0 })
        XCTAssertEqual(Array(buffer[0..<max(n, 0)]), Array("late".utf8))
    }

    private func openDescriptorCount() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(dir) }
        var count = 0
        while readdir(dir) != nil { count += 1 }
        return count
    }

    /// host-loopback=off: 10.0.2.2 and 127.0.0.0/8 are refused (TCP reset, UDP dropped);
    /// outbound=off: nothing the guest starts leaves, published ports still work.
    func testPolicyRefusesHostLoopbackAndOutbound() throws {
        let server = ckvm_ipv4_bind(Int32(SOCK_STREAM.rawValue), loopback.value, 0)
        defer { close(server) }
        XCTAssertEqual(listen(server, 4), 0)
        for (policy, target) in [(UserNetwork.Policy(hostLoopback: false), UserNetwork.gatewayAddress.value),
                                 (UserNetwork.Policy(outbound: false), UserNetwork.gatewayAddress.value)] {
            guest = NetworkStack(interface: InterfaceConfig(mac: MACAddress((0x52, 0x54, 0, 1, 2, 3)), ipv4: UserNetwork.guestAddress.value,
                                                            ipv4PrefixLength: 24, ipv4Gateway: UserNetwork.gatewayAddress.value), seed: 7)
            net?.shutdown()
            net = try UserNetwork(forwards: [], seed: 11, policy: policy)
            let s = try guest.open(.stream, ipv6: false)
            guestConnect(s, to: Endpoint(address: IPAddress(ipv4: target), port: port(of: server)))
            XCTAssertTrue(pump { guest.readiness(s).contains(.error) }, "\(policy): the connect was not refused")
            XCTAssertEqual(guest.takeError(s), .ECONNREFUSED)
            XCTAssertEqual(ckvm_accept(server), -Int32(EAGAIN), "\(policy): the host server saw a connection")
        }
        // Both off: DNS and other outbound datagrams make no flow; a published port still answers.
        net?.shutdown()
        guest = NetworkStack(interface: InterfaceConfig(mac: MACAddress((0x52, 0x54, 0, 1, 2, 3)), ipv4: UserNetwork.guestAddress.value,
                                                        ipv4PrefixLength: 24, ipv4Gateway: UserNetwork.gatewayAddress.value), seed: 7)
        net = try UserNetwork(forwards: [.init(.tcp, hostAddress: loopback, hostPort: 0, guestPort: 80)], seed: 11,
                              policy: UserNetwork.Policy(hostLoopback: false, outbound: false))
        let out = try guest.open(.datagram, ipv6: false)
        _ = guestSendTo(out, [1, 2, 3], to: Endpoint(address: IPAddress(ipv4: UserNetwork.dnsAddress.value), port: 53))
        _ = guestSendTo(out, [1, 2, 3], to: Endpoint(address: IPAddress(ipv4: 0x0808_0808), port: 53))
        pump { !guest.hasOutput }
        XCTAssertEqual(net.flowCount, 0)
        let listener = try guest.open(.stream, ipv6: false)
        try guest.bind(listener, to: Endpoint(address: .any4, port: 80))
        try guest.listen(listener, backlog: 4)
        let client = ckvm_ipv4_connect(Int32(SOCK_STREAM.rawValue), loopback.value, try XCTUnwrap(net.publishedPorts.first))
        XCTAssertGreaterThanOrEqual(client, 0)
        defer { close(client) }
        XCTAssertTrue(pump { guestAccept(listener) != nil }, "a published port works with outbound=off")
    }

    func testPortInUseIsAClearError() throws {
        let taken = ckvm_ipv4_bind(Int32(SOCK_STREAM.rawValue), loopback.value, 0)
        defer { close(taken) }
        XCTAssertEqual(listen(taken, 1), 0)
        XCTAssertThrowsError(try UserNetwork(forwards: [.init(.tcp, hostAddress: loopback, hostPort: port(of: taken), guestPort: 80)], seed: 1)) { error in
            let message = (error as? PortForwarder.Error)?.message ?? ""
            XCTAssertTrue(message.contains("already in use"), message)
            XCTAssertTrue(message.contains("\(port(of: taken))"), message)
        }
    }
}
