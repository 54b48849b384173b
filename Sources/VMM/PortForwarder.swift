import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// Publishes one guest port on the host through the host kernel, for the tap network: the
/// host routes the guest's address to the tap device, so a plain host socket connected to
/// guestAddress:guestPort reaches the guest.
///
/// TCP: listens on hostAddress:hostPort; each accepted connection gets a non-blocking
/// connect to the guest, then bytes are spliced both ways through two bounded buffers
/// (64 KiB each way: a side is not read while its buffer is full, so a slow reader slows
/// the writer down instead of growing memory). A read of 0 (EOF) on one side becomes
/// shutdown(SHUT_WR) on the other once its buffer is flushed (half-close); an error on
/// either side (or a failed connect) closes both. At most 256 connections: more are
/// accepted and closed at once.
///
/// UDP: binds hostAddress:hostPort; each host peer (address, port) gets its own socket
/// connected to the guest port, and replies from the guest go back to that peer; a peer
/// idle for 60 s is forgotten. At most 256 peers.
///
/// The socket is bound in `init` so that a port in use or a privileged port fails before
/// the guest starts. All other calls happen on the VM's I/O thread.
public final class PortForwarder {
    public enum Error: Swift.Error, Equatable {
        case bind(NetworkConfiguration.PortForward, Int32)

        public var message: String {
            switch self {
            case .bind(let f, let e):
                let what = "cannot publish \(f.proto == .tcp ? "tcp" : "udp") port \(f.hostAddress):\(f.hostPort)"
                switch e {
                case EADDRINUSE: return "\(what): the port is already in use on the host"
                case EACCES: return "\(what): permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
                case EADDRNOTAVAIL: return "\(what): \(f.hostAddress) is not an address of this host"
                default: return "\(what): \(String(cString: strerror(e)))"
                }
            }
        }
    }

    public let forward: NetworkConfiguration.PortForward
    public let guest: NetworkConfiguration.IPv4Address
    let listener: Int32
    static let maxConnections = 256
    static let udpIdleNanos: UInt64 = 60_000_000_000

    final class Connection {
        let client: Int32
        let server: Int32
        var connecting = true
        var toServer = RelayBuffer()
        var toClient = RelayBuffer()
        var clientEOF = false
        var serverEOF = false
        var serverShut = false
        var clientShut = false
        var closed = false

        init(client: Int32, server: Int32) {
            self.client = client
            self.server = server
        }

        func close() {
            guard !closed else { return }
            closed = true
            Glibc.close(client)
            Glibc.close(server)
            toServer.free()
            toClient.free()
        }

        var finished: Bool { clientShut && serverShut && toServer.isEmpty && toClient.isEmpty }
    }

    /// A UDP peer of the published port and its socket to the guest.
    final class UDPSession {
        let address: UInt32
        let port: UInt16
        let socket: Int32
        var lastActive: UInt64
        init(address: UInt32, port: UInt16, socket: Int32, now: UInt64) {
            self.address = address
            self.port = port
            self.socket = socket
            lastActive = now
        }
    }

    private var connections: [Connection] = []
    private var sessions: [UDPSession] = []
    /// What each entry of the last `pollDescriptors()` answer was, to read `service`'s revents.
    private enum Slot { case listener, client(Connection), server(Connection), udp(UDPSession) }
    private var slots: [Slot] = []
    private var datagram: UnsafeMutableRawBufferPointer? = nil
    private var isShutDown = false

    /// Binds the host side now (throws with a message naming the port on failure).
    public init(_ forward: NetworkConfiguration.PortForward, guest: NetworkConfiguration.IPv4Address) throws(Error) {
        self.forward = forward
        self.guest = guest
        let fd = ckvm_ipv4_bind(forward.proto == .tcp ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue),
                                forward.hostAddress.value, forward.hostPort)
        guard fd >= 0 else { throw .bind(forward, -fd) }
        listener = fd
        if forward.proto == .udp { datagram = .allocate(byteCount: 65536, alignment: 16) }
    }

    deinit { shutdown() }

    /// The port actually bound (differs from `forward.hostPort` when that was 0).
    public var boundPort: UInt16 {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let r = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        return r == 0 ? UInt16(bigEndian: address.sin_port) : 0
    }

    public var connectionCount: Int { forward.proto == .tcp ? connections.count : sessions.count }

    /// The descriptors to poll now.
    public func pollDescriptors() -> [pollfd] {
        slots.removeAll(keepingCapacity: true)
        guard !isShutDown else { return [] }
        var fds: [pollfd] = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
        slots.append(.listener)
        for c in connections {
            var clientEvents: Int16 = 0
            if !c.clientEOF && c.toServer.hasRoom { clientEvents |= Int16(POLLIN) }
            if !c.toClient.isEmpty { clientEvents |= Int16(POLLOUT) }
            var serverEvents: Int16 = 0
            if c.connecting {
                serverEvents = Int16(POLLOUT)
            } else {
                if !c.serverEOF && c.toClient.hasRoom { serverEvents |= Int16(POLLIN) }
                if !c.toServer.isEmpty { serverEvents |= Int16(POLLOUT) }
            }
            // A side with nothing to wait for is left out (poll would still report HUP on
            // it and spin); its peer's progress brings it back.
            if clientEvents != 0 { fds.append(pollfd(fd: c.client, events: clientEvents, revents: 0)); slots.append(.client(c)) }
            if serverEvents != 0 { fds.append(pollfd(fd: c.server, events: serverEvents, revents: 0)); slots.append(.server(c)) }
        }
        for s in sessions {
            fds.append(pollfd(fd: s.socket, events: Int16(POLLIN), revents: 0))
            slots.append(.udp(s))
        }
        return fds
    }

    /// When idle UDP peers must be forgotten.
    public var nextDeadline: UInt64? {
        sessions.map { $0.lastActive + Self.udpIdleNanos }.min()
    }

    /// Handles what poll reported for the entries of the last `pollDescriptors()`.
    public func service(_ ready: [pollfd], now: UInt64) {
        guard !isShutDown else { return }
        var touched: [Connection] = []
        for (p, slot) in zip(ready, slots) where p.revents != 0 {
            let error = p.revents & Int16(POLLERR | POLLNVAL) != 0
            switch slot {
            case .listener:
                forward.proto == .tcp ? acceptAll() : receiveFromPeers(now: now)
            case .client(let c):
                if error { c.close(); continue }
                if p.revents & Int16(POLLIN | POLLHUP) != 0 && !c.clientEOF && c.toServer.hasRoom {
                    let n = c.toServer.fill(from: c.client)
                    if n == 0 { c.clientEOF = true } else if n < 0 && n != -Int(EAGAIN) { c.close(); continue }
                }
                touched.append(c)
            case .server(let c):
                if error { c.close(); continue }
                if c.connecting {
                    if ckvm_socket_error(c.server) != 0 { c.close(); continue }
                    c.connecting = false
                } else if p.revents & Int16(POLLIN | POLLHUP) != 0 && !c.serverEOF && c.toClient.hasRoom {
                    let n = c.toClient.fill(from: c.server)
                    if n == 0 { c.serverEOF = true } else if n < 0 && n != -Int(EAGAIN) { c.close(); continue }
                }
                touched.append(c)
            case .udp(let s):
                relayFromGuest(s, now: now)
            }
        }
        for c in touched where !c.closed { flush(c) }
        connections.removeAll { c in
            if c.finished { c.close() }
            return c.closed
        }
        sessions.removeAll { s in
            let idle = now >= s.lastActive + Self.udpIdleNanos
            if idle { close(s.socket) }
            return idle
        }
    }

    private func flush(_ c: Connection) {
        if !c.connecting {
            if c.toServer.drain(to: c.server) < 0 { c.close(); return }
            if c.clientEOF && c.toServer.isEmpty && !c.serverShut {
                Glibc.shutdown(c.server, Int32(SHUT_WR))
                c.serverShut = true
            }
        }
        if c.toClient.drain(to: c.client) < 0 { c.close(); return }
        if c.serverEOF && c.toClient.isEmpty && !c.clientShut {
            Glibc.shutdown(c.client, Int32(SHUT_WR))
            c.clientShut = true
        }
    }

    private func acceptAll() {
        while true {
            let client = ckvm_accept(listener)
            if client < 0 { return }  // EAGAIN, or a transient error (ECONNABORTED, EMFILE)
            guard connections.count < Self.maxConnections else { close(client); continue }
            let server = ckvm_ipv4_connect(Int32(SOCK_STREAM.rawValue), guest.value, forward.guestPort)
            guard server >= 0 else { close(client); continue }
            connections.append(Connection(client: client, server: server))
        }
    }

    private func receiveFromPeers(now: UInt64) {
        guard let buffer = datagram else { return }
        while true {
            var address: UInt32 = 0
            var port: UInt16 = 0
            let n = ckvm_udp_recvfrom(listener, buffer.baseAddress, buffer.count, &address, &port)
            if n < 0 { return }
            var session = sessions.first { $0.address == address && $0.port == port }
            if session == nil {
                guard sessions.count < Self.maxConnections else { continue }
                let fd = ckvm_ipv4_connect(Int32(SOCK_DGRAM.rawValue), guest.value, forward.guestPort)
                guard fd >= 0 else { continue }
                session = UDPSession(address: address, port: port, socket: fd, now: now)
                sessions.append(session!)
            }
            session!.lastActive = now
            _ = send(session!.socket, buffer.baseAddress, n, Int32(MSG_NOSIGNAL))
        }
    }

    private func relayFromGuest(_ s: UDPSession, now: UInt64) {
        guard let buffer = datagram else { return }
        while true {
            let n = recv(s.socket, buffer.baseAddress, buffer.count, 0)
            if n < 0 { return }
            s.lastActive = now
            _ = ckvm_udp_sendto(listener, buffer.baseAddress, n, s.address, s.port)
        }
    }

    /// Closes the listener and every connection. Idempotent.
    public func shutdown() {
        guard !isShutDown else { return }
        isShutDown = true
        close(listener)
        connections.forEach { $0.close() }
        connections.removeAll()
        sessions.forEach { close($0.socket) }
        sessions.removeAll()
        datagram?.deallocate()
        datagram = nil
    }
}
