import CKVM
@testable import VMM
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The tap backend and the port forwarder against the host kernel (no VM): the forwarder
/// relays to a local echo server standing in for the guest; the tap test needs root.
final class VirtioBackendTests: XCTestCase {
    typealias IPv4Address = NetworkConfiguration.IPv4Address
    let loopback = IPv4Address(127, 0, 0, 1)

    /// Runs the forwarder's poll/service cycle (as the I/O thread does) until `done`.
    func pump(_ forwarder: PortForwarder, extra: [Int32] = [], until done: () -> Bool, step: () -> Void = {}) -> Bool {
        let end = monotonicNanos() + 3_000_000_000
        while monotonicNanos() < end {
            step()
            if done() { return true }
            var fds = forwarder.pollDescriptors()
            let n = fds.count
            for fd in extra { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            _ = fds.withUnsafeMutableBufferPointer { ckvm_poll_ns($0.baseAddress, UInt($0.count), 1_000_000) }
            forwarder.service(Array(fds[0..<n]), now: monotonicNanos())
        }
        return done()
    }

    func port(of fd: Int32) -> UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return UInt16(bigEndian: address.sin_port)
    }

    /// host client → forwarder → "guest" echo server (which upper-cases, then closes after
    /// the client's EOF): bytes both ways and the half-close in both directions.
    func testTCPForwardingSplicesAndPropagatesHalfClose() throws {
        let server = ckvm_ipv4_bind(Int32(SOCK_STREAM.rawValue), loopback.value, 0)
        XCTAssertGreaterThanOrEqual(server, 0)
        defer { close(server) }
        let guestPort = port(of: server)
        let forwarder = try PortForwarder(.init(.tcp, hostAddress: loopback, hostPort: 0, guestPort: guestPort), guest: loopback)
        defer { forwarder.shutdown() }
        let hostPort = forwarder.boundPort
        XCTAssertNotEqual(hostPort, 0)

        let client = ckvm_ipv4_connect(Int32(SOCK_STREAM.rawValue), loopback.value, hostPort)
        XCTAssertGreaterThanOrEqual(client, 0)
        defer { close(client) }
        var accepted: Int32 = -1
        var serverGot: [UInt8] = []
        var serverEOF = false
        var clientGot: [UInt8] = []
        var clientEOF = false
        let payload = [UInt8]((0..<200_000).map { UInt8(truncatingIfNeeded: $0 % 26 + 97) })  // larger than a buffer
        var sent = 0
        var reply: [UInt8] = []
        var replied = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        let ok = pump(forwarder, until: { clientEOF }, step: {
            if accepted == -1 { let a = ckvm_accept(server); if a >= 0 { accepted = a; _ = fcntl(a, F_SETFL, O_NONBLOCK) } }
            if sent < payload.count {
                let n = payload[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n > 0 { sent += n }
                if sent == payload.count { Glibc.shutdown(client, Int32(SHUT_WR)) }
            }
            if accepted >= 0 && !serverEOF {
                while true {
                    let n = read(accepted, &buffer, buffer.count)
                    if n > 0 { serverGot += buffer[0..<n]; continue }
                    if n == 0 {
                        // The client's half-close arrived: echo back upper-cased, then close.
                        serverEOF = true
                        reply = serverGot.map { $0 - 32 }
                    }
                    break
                }
            }
            if serverEOF && accepted >= 0 {
                if replied < reply.count {
                    let m = reply[replied...].withUnsafeBytes { send(accepted, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    if m > 0 { replied += m }
                }
                if replied == reply.count { close(accepted); accepted = -2 }
            }
            self.drain(client, into: &clientGot, eof: &clientEOF)
        })
        XCTAssertTrue(ok, "no EOF at the client: sent \(sent), server got \(serverGot.count), client got \(clientGot.count)")
        XCTAssertEqual(serverGot, payload)
        XCTAssertEqual(clientGot, payload.map { $0 - 32 })
        XCTAssertTrue(pump(forwarder, until: { forwarder.connectionCount == 0 }), "connection not reaped")
    }

    func drain(_ fd: Int32, into got: inout [UInt8], eof: inout Bool) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !eof {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 { got += buffer[0..<n] } else if n == 0 { eof = true } else { return }
        }
    }

    /// Nobody listens at the guest port: the accepted connection is closed (no hang).
    func testTCPForwardingClosesWhenGuestRefuses() throws {
        let probe = ckvm_ipv4_bind(Int32(SOCK_STREAM.rawValue), loopback.value, 0)
        let deadPort = port(of: probe)
        close(probe)
        let forwarder = try PortForwarder(.init(.tcp, hostAddress: loopback, hostPort: 0, guestPort: deadPort), guest: loopback)
        defer { forwarder.shutdown() }
        let client = ckvm_ipv4_connect(Int32(SOCK_STREAM.rawValue), loopback.value, forwarder.boundPort)
        defer { close(client) }
        var got: [UInt8] = []
        var eof = false
        XCTAssertTrue(pump(forwarder, until: { eof }, step: {
            var b = [UInt8](repeating: 0, count: 16)
            let n = read(client, &b, 16)
            if n == 0 || (n < 0 && errno == ECONNRESET) { eof = true } else if n > 0 { got += b[0..<n] }
        }))
        XCTAssertTrue(got.isEmpty)
        XCTAssertEqual(forwarder.connectionCount, 0)
    }

    func testUDPForwarding() throws {
        let guest = ckvm_ipv4_bind(Int32(SOCK_DGRAM.rawValue), loopback.value, 0)
        defer { close(guest) }
        let forwarder = try PortForwarder(.init(.udp, hostAddress: loopback, hostPort: 0, guestPort: port(of: guest)), guest: loopback)
        defer { forwarder.shutdown() }
        let peer = ckvm_ipv4_bind(Int32(SOCK_DGRAM.rawValue), loopback.value, 0)
        defer { close(peer) }
        var ping: [UInt8] = Array("ping".utf8)
        XCTAssertEqual(ckvm_udp_sendto(peer, &ping, 4, loopback.value, forwarder.boundPort), 4)
        var buffer = [UInt8](repeating: 0, count: 64)
        var from: (UInt32, UInt16) = (0, 0)
        var got = -1
        XCTAssertTrue(pump(forwarder, until: { got > 0 }, step: {
            got = ckvm_udp_recvfrom(guest, &buffer, 64, &from.0, &from.1)
        }))
        XCTAssertEqual(Array(buffer[0..<4]), ping)
        var pong: [UInt8] = Array("pong".utf8)
        XCTAssertEqual(ckvm_udp_sendto(guest, &pong, 4, from.0, from.1), 4)
        var back = -1
        XCTAssertTrue(pump(forwarder, until: { back > 0 }, step: {
            var a: UInt32 = 0, p: UInt16 = 0
            back = ckvm_udp_recvfrom(peer, &buffer, 64, &a, &p)
            if back > 0 { XCTAssertEqual(p, forwarder.boundPort, "reply comes from the published port") }
        }))
        XCTAssertEqual(Array(buffer[0..<4]), pong)
        XCTAssertEqual(forwarder.connectionCount, 1)
        XCTAssertNotNil(forwarder.nextDeadline)
    }

    func testBindErrorsAreClear() throws {
        let taken = ckvm_ipv4_bind(Int32(SOCK_STREAM.rawValue), loopback.value, 0)
        defer { close(taken) }
        let f = NetworkConfiguration.PortForward(.tcp, hostAddress: loopback, hostPort: port(of: taken), guestPort: 80)
        do {
            _ = try PortForwarder(f, guest: IPv4Address(10, 0, 3, 2))
            XCTFail("bound a port in use")
        } catch {
            XCTAssertTrue(error.message.contains("already in use"), error.message)
            XCTAssertTrue(error.message.contains("127.0.0.1:\(port(of: taken))"), error.message)
        }
        do {
            _ = try PortForwarder(.init(.tcp, hostAddress: IPv4Address(192, 0, 2, 77), hostPort: 8080, guestPort: 80), guest: loopback)
            XCTFail("bound an address the host does not have")
        } catch {
            XCTAssertTrue(error.message.contains("not an address of this host"), error.message)
        }
    }

    /// A VM whose forward cannot be bound does not boot, and says why.
    func testTakenPortFailsTheBoot() throws {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else { throw XCTSkip("no /dev/kvm") }
        let taken = ckvm_ipv4_bind(Int32(SOCK_STREAM.rawValue), loopback.value, 0)
        defer { close(taken) }
        let backend = FakeBackend()
        let kernel = VirtioKVMTests.guestKernel(notifies: 0)
        try kernel.withUnsafeBytes { bytes in
            let vm = try VirtualMachine()
            var config = VMConfiguration(memorySize: 16 << 20, kernel: bytes, image: UnsafeRawBufferPointer(start: nil, count: 0),
                                         arguments: [], environment: [], seed: (1, 2, 3, 4))
            config.network = NetworkConfiguration(backend: backend, mac: .derived(from: 3),
                                                  ipv4: .init(address: .init(10, 0, 3, 2), prefixLength: 24),
                                                  forwards: [.init(hostAddress: loopback, hostPort: port(of: taken), guestPort: 80)])
            var console = RecordingConsole()
            do throws(VMMError) {
                _ = try vm.boot(config, sink: &console)
                XCTFail("booted with a taken port")
            } catch {
                guard case .boot(.network(let m)) = error else { return XCTFail("\(error.message)") }
                XCTAssertTrue(m.contains("already in use"), m)
            }
        }
        XCTAssertEqual(backend.shutdownCount, 1)
    }

    /// The host kernel's ARP request for the guest's address comes out of the tap; a frame
    /// written to it goes in. Needs CAP_NET_ADMIN.
    func testTapDeviceCarriesHostFrames() throws {
        let host = TapBackend.HostSide(address: IPv4Address(10, 213, 77, 1), prefixLength: 30)
        let tap: TapBackend
        do { tap = try TapBackend(name: "apustest%d", host: host) } catch {
            XCTAssertTrue(error.message.contains("user-mode network") || !error.message.contains("CAP_NET_ADMIN"), error.message)
            throw XCTSkip("no tap device here: \(error.message)")
        }
        defer { tap.shutdown() }
        XCTAssertTrue(tap.interfaceName.hasPrefix("apustest"), tap.interfaceName)
        XCTAssertEqual(host.guestConfiguration.address, IPv4Address(10, 213, 77, 2))
        XCTAssertEqual(host.guestConfiguration.gateway, host.address)

        // Make the host talk to the guest's address: it ARPs on the tap first.
        let udp = ckvm_ipv4_connect(Int32(SOCK_DGRAM.rawValue), IPv4Address(10, 213, 77, 2).value, 9)
        XCTAssertGreaterThanOrEqual(udp, 0)
        defer { close(udp) }
        var x: UInt8 = 1
        _ = send(udp, &x, 1, 0)
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { frame.deallocate() }
        var arp: [UInt8]? = nil
        let end = monotonicNanos() + 3_000_000_000
        while arp == nil && monotonicNanos() < end {
            var fds = tap.pollDescriptors()
            _ = fds.withUnsafeMutableBufferPointer { ckvm_poll_ns($0.baseAddress, UInt($0.count), 10_000_000) }
            while let n = tap.receive(into: frame) {
                let bytes = Array(frame[0..<n])
                if n >= 42 && bytes[12] == 0x08 && bytes[13] == 0x06 { arp = bytes }
            }
        }
        let request = try XCTUnwrap(arp, "no ARP request from the host on \(tap.interfaceName)")
        XCTAssertEqual(Array(request[38..<42]), [10, 213, 77, 2], "ARP target: the guest's address")
        XCTAssertEqual(Array(request[28..<32]), [10, 213, 77, 1], "ARP sender: the host side")

        // Answer it as the guest would: the host then sends the datagram to our MAC.
        let mac: [UInt8] = NetworkConfiguration.MACAddress.derived(from: 77).array
        var reply = Array(request[6..<12]) + mac + [0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]
        reply += mac + [10, 213, 77, 2] + Array(request[22..<28]) + [10, 213, 77, 1]
        reply.withUnsafeBytes { tap.transmit($0) }
        XCTAssertEqual(tap.droppedTransmits, 0)
        _ = send(udp, &x, 1, 0)
        var ipv4: [UInt8]? = nil
        let end2 = monotonicNanos() + 3_000_000_000
        while ipv4 == nil && monotonicNanos() < end2 {
            var fds = tap.pollDescriptors()
            _ = fds.withUnsafeMutableBufferPointer { ckvm_poll_ns($0.baseAddress, UInt($0.count), 10_000_000) }
            while let n = tap.receive(into: frame) {
                let bytes = Array(frame[0..<n])
                if n >= 34 && bytes[12] == 0x08 && bytes[13] == 0x00 && Array(bytes[0..<6]) == mac { ipv4 = bytes }
            }
        }
        XCTAssertNotNil(ipv4, "the host did not use the ARP answer")
    }
}
