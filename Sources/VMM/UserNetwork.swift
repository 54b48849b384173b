import CKVM
import NetStack
#if canImport(Glibc)
import Glibc
#endif

/// The user-mode network: the other end of the guest's Ethernet link is a NetStack instance
/// inside the VMM, and every connection the guest makes or receives is relayed through an
/// ordinary host socket. No privileges, no tap device, no host configuration.
///
/// Addresses (as QEMU's user networking): the guest is 10.0.2.15/24, the VMM's stack is the
/// gateway 10.0.2.2 and answers ARP for the whole subnet; 10.0.2.3 is the DNS server (UDP and
/// TCP port 53 go to the first IPv4 nameserver of the host's /etc/resolv.conf); connections
/// to 10.0.2.2 reach the host's loopback (127.0.0.1).
///
/// - Outbound TCP: the stack takes every SYN (`listenAny`) without answering it, a
///   non-blocking host connect() goes to the original destination, and only when that
///   succeeds does the guest get its SYN-ACK; a refused or failed host connect becomes a
///   reset, so the guest's connect fails with ECONNREFUSED as it would against the host.
/// - Outbound UDP: one host socket per (guest endpoint, destination) flow, forgotten after
///   60 s idle; replies come back with the original destination as their source. At most
///   `maxFlows` flows: a new one beyond that replaces the least recently used, so a guest that
///   sprays datagrams at new destinations holds a bounded number of host descriptors.
/// - Policy (`--network user,host-loopback=off,outbound=off`): without host loopback the guest
///   cannot reach the host's 127.0.0.0/8 (through 10.0.2.2 or directly); without outbound it
///   reaches nothing but the peers of its published ports (no connects, no datagrams, no DNS).
///   Destinations that are never a host peer (0.0.0.0/8, multicast, broadcast) are dropped.
/// - Published ports (`-p`): a host socket listens on hostAddress:hostPort; each accepted
///   connection opens a stack connection from 10.0.2.2 to the guest's port. UDP: each host
///   peer gets its own stack socket connected to the guest port.
///
/// Bytes are relayed through two bounded buffers per connection (64 KiB each way); a full
/// buffer stops reading that side, so a slow reader slows the writer instead of growing
/// memory. EOF becomes a half-close on the other side once the buffer is flushed; an error
/// or reset on either side closes both.
public final class UserNetwork: NetworkBackend {
    public static let guestAddress = NetworkConfiguration.IPv4Address(10, 0, 2, 15)
    public static let gatewayAddress = NetworkConfiguration.IPv4Address(10, 0, 2, 2)
    public static let dnsAddress = NetworkConfiguration.IPv4Address(10, 0, 2, 3)
    public static let prefixLength: UInt8 = 24
    static let maxLinks = 1024
    static let maxFlows = 256
    static let udpIdleNanos: UInt64 = 60_000_000_000

    /// What the guest may reach through the user network.
    public struct Policy: Equatable, Sendable {
        /// The host's loopback (services listening only on 127.0.0.1) through 10.0.2.2.
        public var hostLoopback = true
        /// Connections and datagrams the guest starts (DNS included); published ports work without.
        public var outbound = true
        public init(hostLoopback: Bool = true, outbound: Bool = true) {
            self.hostLoopback = hostLoopback
            self.outbound = outbound
        }
    }

    /// A flow's identity: the guest's endpoint and the destination it sends to.
    struct FlowKey: Hashable {
        let guestHigh: UInt64, guestLow: UInt64, guestPort: UInt16
        let destinationHigh: UInt64, destinationLow: UInt64, destinationPort: UInt16
        init(guest: Endpoint, destination: Endpoint) {
            guestHigh = guest.address.high; guestLow = guest.address.low; guestPort = guest.port
            destinationHigh = destination.address.high; destinationLow = destination.address.low
            destinationPort = destination.port
        }
    }

    /// The guest's IPv4 configuration for the boot info.
    public static var guestConfiguration: NetworkConfiguration.IPv4 {
        .init(address: guestAddress, prefixLength: prefixLength, gateway: gatewayAddress, dns: dnsAddress)
    }

    /// One TCP connection relayed between a host socket and a stack socket.
    final class Link {
        let host: Int32
        let guest: SocketID
        var hostConnecting: Bool
        var guestConnecting: Bool
        var toHost = RelayBuffer(), toGuest = RelayBuffer()
        var hostEOF = false, guestEOF = false
        var hostShut = false, guestShut = false
        var closed = false
        init(host: Int32, guest: SocketID, hostConnecting: Bool, guestConnecting: Bool) {
            self.host = host
            self.guest = guest
            self.hostConnecting = hostConnecting
            self.guestConnecting = guestConnecting
        }
    }

    /// A UDP flow: the guest's datagrams to one destination, through one host socket.
    final class Flow {
        let host: Int32
        let guest: Endpoint
        let destination: Endpoint
        var lastActive: UInt64
        var key: FlowKey { FlowKey(guest: guest, destination: destination) }
        init(host: Int32, guest: Endpoint, destination: Endpoint, now: UInt64) {
            self.host = host
            self.guest = guest
            self.destination = destination
            lastActive = now
        }
    }

    /// A host peer of a published UDP port and the stack socket that talks to the guest for it.
    final class Peer {
        let listener: Int32
        let address: UInt32
        let port: UInt16
        let guest: SocketID
        var lastActive: UInt64
        init(listener: Int32, address: UInt32, port: UInt16, guest: SocketID, now: UInt64) {
            self.listener = listener
            self.address = address
            self.port = port
            self.guest = guest
            lastActive = now
        }
    }

    let stack: NetworkStack
    private let anyTCP: SocketID
    private let anyUDP: SocketID
    private var published: [(forward: NetworkConfiguration.PortForward, fd: Int32)] = []
    private var links: [Link] = []
    private var flows: [FlowKey: Flow] = [:]
    private var peers: [Peer] = []
    private let resolver: UInt32
    private var datagram = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
    private enum Slot { case listener(Int), link(Link), flow(Flow), peerListener(Int) }
    /// What each descriptor of the last `pollDescriptors()` answer stands for.
    private var slots: [Int32: Slot] = [:]
    public let policy: Policy
    private var isShutDown = false

    /// Binds the published ports now, so a port in use fails before the guest starts.
    public init(forwards: [NetworkConfiguration.PortForward], seed: UInt64, policy: Policy = Policy()) throws(PortForwarder.Error) {
        self.policy = policy
        var config = InterfaceConfig(mac: MACAddress((0x52, 0x55, 0x0a, 0x00, 0x02, 0x02)),
                                     ipv4: Self.gatewayAddress.value, ipv4PrefixLength: Self.prefixLength,
                                     ipv4Gateway: 0)
        config.acceptsAnyDestination = true
        stack = NetworkStack(interface: config, seed: seed)
        do {
            anyTCP = try stack.open(.stream, ipv6: false)
            try stack.listenAny(anyTCP, deferHandshake: true)
            anyUDP = try stack.open(.datagram, ipv6: false)
            try stack.bindAny(anyUDP)
        } catch {
            fatalError("user-mode network: the stack refused its own sockets (\(error))")
        }
        resolver = Self.hostResolver()
        for f in forwards {
            let fd = ckvm_ipv4_bind(f.proto == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue),
                                    f.hostAddress.value, f.hostPort)
            guard fd >= 0 else {
                for p in published { close(p.fd) }
                throw .bind(f, -fd)
            }
            published.append((f, fd))
        }
    }

    /// The host ports of the published forwards, in order (what port 0 became).
    public var publishedPorts: [UInt16] {
        published.map { p in
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(p.fd, $0, &length) }
            }
            return UInt16(bigEndian: address.sin_port)
        }
    }

    /// The number of outbound UDP flows (each holds one host socket).
    public var flowCount: Int { flows.count }

    /// The first IPv4 `nameserver` of /etc/resolv.conf (127.0.0.1 if there is none).
    static func hostResolver() -> UInt32 {
        guard let file = fopen("/etc/resolv.conf", "r") else { return 0x7f00_0001 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 512)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(cString: line).trimmingSpaces
            guard text.hasPrefix("nameserver") else { continue }
            let value = String(text.dropFirst("nameserver".count)).trimmingSpaces
            if let a = NetworkConfiguration.IPv4Address(value) { return a.value }
        }
        return 0x7f00_0001
    }

    /// Where a guest destination goes on the host: the gateway is the host's loopback, the
    /// DNS address is the host's resolver.
    /// nil: the policy or the address forbids it (the guest's connect is reset, its datagram
    /// dropped).
    func hostDestination(_ e: Endpoint) -> UInt32? {
        guard policy.outbound, let a = e.address.ipv4 else { return nil }
        if a == Self.dnsAddress.value { return e.port == 53 ? resolver : nil }
        let isLoopback = a == Self.gatewayAddress.value || a >> 24 == 127
        if isLoopback { return policy.hostLoopback ? (a == Self.gatewayAddress.value ? 0x7f00_0001 : a) : nil }
        // "This network" (0.0.0.0/8: connect() there reaches the host itself), multicast and
        // broadcast are never a peer of the guest's.
        if a >> 24 == 0 || a >> 28 == 0xe || a == 0xffff_ffff { return nil }
        return a
    }

    private var guestIP: IPAddress { IPAddress(ipv4: Self.guestAddress.value) }

    // MARK: NetworkBackend

    public func transmit(_ frame: UnsafeRawBufferPointer) {
        stack.input(frame: frame, now: monotonicNanos())
    }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        stack.nextOutputFrame(into: buffer)
    }

    public var hasPendingFrames: Bool { stack.hasOutput }

    public var nextDeadline: UInt64? {
        var d = stack.nextDeadline
        if !flows.isEmpty || !peers.isEmpty {
            let expiry = monotonicNanos() + Self.udpIdleNanos
            d = min(d ?? expiry, expiry)
        }
        return d
    }

    public func pollDescriptors() -> [pollfd] {
        var fds: [pollfd] = []
        slots.removeAll(keepingCapacity: true)
        for (i, p) in published.enumerated() {
            fds.append(pollfd(fd: p.fd, events: Int16(POLLIN), revents: 0))
            slots[p.fd] = p.forward.proto == .tcp ? .listener(i) : .peerListener(i)
        }
        for link in links {
            var events: Int16 = 0
            if link.hostConnecting || !link.toHost.isEmpty { events |= Int16(POLLOUT) }
            if !link.hostConnecting && !link.hostEOF && link.toGuest.isEmpty { events |= Int16(POLLIN) }
            fds.append(pollfd(fd: link.host, events: events, revents: 0))
            slots[link.host] = .link(link)
        }
        for flow in flows.values {
            fds.append(pollfd(fd: flow.host, events: Int16(POLLIN), revents: 0))
            slots[flow.host] = .flow(flow)
        }
        return fds
    }

    public func service(_ ready: [pollfd], now: UInt64) {
        guard !isShutDown else { return }
        if let d = stack.nextDeadline, d <= now { stack.advance(now: now) }
        for p in ready where p.revents != 0 {
            guard let slot = slots[p.fd] else { continue }
            switch slot {
            case .listener(let k): acceptHost(published[k], now: now)
            case .peerListener(let k): receivePublishedUDP(published[k], now: now)
            case .link(let link): hostEvent(link, p.revents)
            case .flow(let flow): flowReply(flow, now: now)
            }
        }
        acceptGuest(now: now)
        relayGuestUDP(now: now)
        for link in links { pump(link, now: now) }
        links.removeAll { $0.closed }
        expireUDP(now: now)
    }

    public func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        // The guest is gone, but what it sent before it stopped still reaches the host side
        // (it was acknowledged to the guest once it reached this stack): up to 1 s.
        let deadline = monotonicNanos() + 1_000_000_000
        while monotonicNanos() < deadline {
            var waiting: [pollfd] = []
            for link in links where !link.closed && !link.hostConnecting {
                guard moveToHost(link, now: monotonicNanos()) else { continue }
                if !link.toHost.isEmpty { waiting.append(pollfd(fd: link.host, events: Int16(POLLOUT), revents: 0)) }
            }
            if waiting.isEmpty { break }
            _ = waiting.withUnsafeMutableBufferPointer { ckvm_poll_ns($0.baseAddress, UInt($0.count), 10_000_000) }
        }
        for link in links {
            if link.toHost.isEmpty { Glibc.shutdown(link.host, Int32(SHUT_WR)) }
            finish(link, now: monotonicNanos(), reset: !link.toHost.isEmpty)
        }
        links = []
        for f in flows.values { close(f.host) }
        flows = [:]
        for p in published { close(p.fd) }
        published = []
        datagram.deallocate()
    }


    // MARK: TCP

    /// A host client connected to a published port: connect to the guest through the stack.
    private func acceptHost(_ p: (forward: NetworkConfiguration.PortForward, fd: Int32), now: UInt64) {
        while true {
            let fd = ckvm_accept(p.fd)
            guard fd >= 0 else { return }
            guard links.count < Self.maxLinks, let s = try? stack.open(.stream, ipv6: false) else { close(fd); continue }
            var noDelay: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, 4)
            try? stack.setOption(s, .noDelay(true))
            do {
                try stack.connect(s, to: Endpoint(address: guestIP, port: p.forward.guestPort), now: now)
            } catch .EINPROGRESS {
            } catch {
                stack.close(s, now: now)
                close(fd)
                continue
            }
            links.append(Link(host: fd, guest: s, hostConnecting: false, guestConnecting: true))
        }
    }

    /// The guest connected somewhere: connect a host socket to the same place.
    private func acceptGuest(now: UInt64) {
        while let (s, _) = try? stack.accept(anyTCP) {
            guard links.count < Self.maxLinks, let destination = stack.localEndpoint(s),
                  let address = hostDestination(destination) else {
                stack.abort(s, now: now)
                continue
            }
            let fd = ckvm_ipv4_connect(Int32(SOCK_STREAM.rawValue), address, destination.port)
            guard fd >= 0 else { stack.abort(s, now: now); continue }
            var noDelay: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &noDelay, 4)
            try? stack.setOption(s, .noDelay(true))
            // The guest's SYN is answered once the host connect succeeds (refused: a reset,
            // which the guest's connect reports as ECONNREFUSED, as with a real host).
            links.append(Link(host: fd, guest: s, hostConnecting: true, guestConnecting: true))
        }
    }

    private func hostEvent(_ link: Link, _ revents: Int16) {
        if link.hostConnecting {
            if ckvm_socket_error(link.host) != 0 { link.closed = true; return }
            if revents & Int16(POLLOUT) != 0 {
                link.hostConnecting = false
                stack.completeHandshake(link.guest, now: monotonicNanos())
            }
        }
        if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 && !link.hostConnecting && !link.hostEOF {
            let n = link.toGuest.fill(from: link.host)
            if n == 0 { link.hostEOF = true } else if n < 0 && n != -Int(EAGAIN) { link.closed = true }
        }
    }

    /// Moves what can move on one link; closes it when both directions are done.
    private func pump(_ link: Link, now: UInt64) {
        if link.closed { finish(link, now: now, reset: true); return }
        let readiness = stack.readiness(link.guest)
        if link.guestConnecting {
            if stack.takeError(link.guest) != nil { finish(link, now: now, reset: true); return }
            guard readiness.contains(.writable) else { return }
            link.guestConnecting = false
        }
        guard moveToHost(link, now: now) else { return }
        // host → guest
        while !link.toGuest.isEmpty {
            do {
                let n = try stack.send(link.guest, link.toGuest.queued, now: now)
                link.toGuest.consumed(n)
                if n == 0 { break }
            } catch .EAGAIN {
                break
            } catch {
                finish(link, now: now, reset: true)
                return
            }
        }
        if link.hostEOF && link.toGuest.isEmpty && !link.guestShut {
            try? stack.shutdown(link.guest, read: false, write: true, now: now)
            link.guestShut = true
        }
        if readiness.contains(.hangup) && link.toHost.isEmpty && link.toGuest.isEmpty || link.hostShut && link.guestShut {
            finish(link, now: now, reset: false)
        }
    }


    /// Guest → host, until the host stops taking bytes or the stack has none: the stack may
    /// hold more than one buffer's worth, and nothing else would come to move the rest once
    /// the guest has sent everything. False when the link had to be closed.
    private func moveToHost(_ link: Link, now: UInt64) -> Bool {
        var moving = true
        while moving {
            moving = false
            while !link.guestEOF && link.toHost.hasRoom {
                do {
                    let n = try stack.receive(link.guest, into: link.toHost.room, peek: false, now: now)
                    if n == 0 { link.guestEOF = true } else { link.toHost.added(n) }
                } catch .EAGAIN {
                    break
                } catch {
                    finish(link, now: now, reset: true)
                    return false
                }
            }
            guard !link.hostConnecting else { break }
            if link.toHost.drain(to: link.host) < 0 {
                finish(link, now: now, reset: true)
                return false
            }
            if link.guestEOF && link.toHost.isEmpty && !link.hostShut {
                Glibc.shutdown(link.host, Int32(SHUT_WR))
                link.hostShut = true
            }
            // Emptied a full buffer: there may be more in the stack.
            moving = link.toHost.isEmpty && !link.guestEOF && stack.availableBytes(link.guest) > 0
        }
        return true
    }

    private func finish(_ link: Link, now: UInt64, reset: Bool) {
        if reset { stack.abort(link.guest, now: now) } else { stack.close(link.guest, now: now) }
        close(link.host)
        link.toHost.free()
        link.toGuest.free()
        link.closed = true
        links.removeAll { $0 === link }
    }

    // MARK: UDP

    /// The guest's datagrams to anywhere: through a host socket per flow.
    private func relayGuestUDP(now: UInt64) {
        while let r = try? stack.receiveFrom(anyUDP, into: datagram, peek: false) {
            guard let address = hostDestination(r.to) else { continue }
            let key = FlowKey(guest: r.from, destination: r.to)
            let flow: Flow
            if let f = flows[key] {
                flow = f
            } else {
                if flows.count >= Self.maxFlows, let oldest = flows.values.min(by: { $0.lastActive < $1.lastActive }) {
                    close(oldest.host)
                    flows[oldest.key] = nil
                }
                let fd = ckvm_ipv4_connect(Int32(SOCK_DGRAM.rawValue), address, r.to.port)
                guard fd >= 0 else { continue }
                flow = Flow(host: fd, guest: r.from, destination: r.to, now: now)
                flows[key] = flow
            }
            flow.lastActive = now
            _ = send(flow.host, datagram.baseAddress, r.count, Int32(MSG_NOSIGNAL))
        }
        // Replies of the guest to published UDP ports' peers.
        for peer in peers {
            while let r = try? stack.receiveFrom(peer.guest, into: datagram, peek: false) {
                _ = ckvm_udp_sendto(peer.listener, datagram.baseAddress, r.count, peer.address, peer.port)
                peer.lastActive = now
            }
        }
    }

    private func flowReply(_ flow: Flow, now: UInt64) {
        while true {
            let n = recv(flow.host, datagram.baseAddress, datagram.count, Int32(MSG_DONTWAIT))
            guard n >= 0 else { return }
            flow.lastActive = now
            _ = try? stack.sendTo(anyUDP, UnsafeRawBufferPointer(rebasing: datagram[0..<n]), to: flow.guest,
                                  from: flow.destination, now: now)
        }
    }

    /// A datagram from a host peer to a published UDP port.
    private func receivePublishedUDP(_ p: (forward: NetworkConfiguration.PortForward, fd: Int32), now: UInt64) {
        while true {
            var address: UInt32 = 0, port: UInt16 = 0
            let n = ckvm_udp_recvfrom(p.fd, datagram.baseAddress, datagram.count, &address, &port)
            guard n >= 0 else { return }
            let peer: Peer
            if let existing = peers.first(where: { $0.listener == p.fd && $0.address == address && $0.port == port }) {
                peer = existing
            } else {
                guard peers.count < Self.maxLinks, let s = try? stack.open(.datagram, ipv6: false) else { continue }
                do { try stack.connect(s, to: Endpoint(address: guestIP, port: p.forward.guestPort), now: now) } catch {
                    stack.close(s, now: now)
                    continue
                }
                peer = Peer(listener: p.fd, address: address, port: port, guest: s, now: now)
                peers.append(peer)
            }
            peer.lastActive = now
            _ = try? stack.sendTo(peer.guest, UnsafeRawBufferPointer(rebasing: datagram[0..<Int(n)]), to: nil, from: nil, now: now)
        }
    }

    private func expireUDP(now: UInt64) {
        for f in flows.values where now &- f.lastActive > Self.udpIdleNanos {
            close(f.host)
            flows[f.key] = nil
        }
        for p in peers where now &- p.lastActive > Self.udpIdleNanos { stack.close(p.guest, now: now) }
        peers.removeAll { now &- $0.lastActive > Self.udpIdleNanos }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs and line ends.
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
