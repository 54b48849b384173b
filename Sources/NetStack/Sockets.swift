// The socket API: what the kernel's socket syscalls and the VMM's user-mode network call.
// Semantics follow Linux for non-blocking sockets: calls never wait; EAGAIN / EINPROGRESS
// tell the caller to wait for a readiness change (watch `generation`).
import LinuxABI

extension NetworkStack {
    static let ephemeralPorts: ClosedRange<UInt16> = 32768...60999   // Linux ip_local_port_range
    static let maxDatagram = 65507

    public func open(_ kind: SocketKind, ipv6: Bool) throws(Errno) -> SocketID {
        let s = Socket(kind: kind, ipv6: ipv6, bufferSize: NetworkStack.defaultBufferSize)
        guard let i = allocate(s) else { throw .ENFILE }
        return SocketID(index: i, generation: s.generation)
    }

    public func bind(_ id: SocketID, to endpoint: Endpoint) throws(Errno) {
        let s = try socket(id)
        guard !s.bound, s.state == .closed else { throw .EINVAL }
        guard endpoint.address.isIPv4 ? !s.v6Only : s.ipv6 else { throw .EINVAL }   // v6Only: IPv6 sockets only
        guard endpoint.address.isUnspecified || isLocal(endpoint.address) else { throw .EADDRNOTAVAIL }
        var port = endpoint.port
        if port == 0 {
            port = try ephemeralPort(s.kind)
        } else {
            // Two bindings of a port conflict when the addresses they take overlap: equal, or
            // one is a wildcard of a family the other's address is in (Linux inet_bind_conflict).
            let mine = families(endpoint.address, s.v6Only)
            for case let o? in sockets where o !== s && o.kind == s.kind && o.bound && o.local.port == port
                && families(o.local.address, o.v6Only) & mine != 0
                && (o.local.address == endpoint.address || o.local.address.isUnspecified || endpoint.address.isUnspecified) {
                let reusable = s.reuseAddress && (o.reuseAddress || o.state == .timeWait) && o.state != .listen
                guard reusable || s.reusePort && o.reusePort else { throw .EADDRINUSE }
            }
        }
        s.local = Endpoint(address: endpoint.address, port: port)
        s.bound = true
    }

    /// The address families a binding to `a` takes: 1 = IPv4, 2 = IPv6. `::` takes both
    /// unless the socket is IPV6_V6ONLY (it then leaves IPv4 to IPv4 sockets).
    private func families(_ a: IPAddress, _ v6Only: Bool) -> Int {
        a == .any6 ? v6Only ? 2 : 3 : a.isIPv4 ? 1 : 2
    }

    /// The destination to use for `e` from `s`: the unspecified address means loopback;
    /// IPv4 destinations (v4-mapped on an IPv6 socket) go over IPv4 unless the socket is
    /// v6Only; a socket bound to an address of one family cannot reach the other.
    private func checkedDestination(_ s: Socket, _ e: Endpoint) throws(Errno) -> Endpoint {
        var d = e
        if d.address.isUnspecified { d.address = d.address.isIPv4 ? .loopback4 : .loopback6 }
        guard d.address.isIPv4 || s.ipv6, s.local.address.isUnspecified || s.local.address.isIPv4 == d.address.isIPv4
        else { throw .EINVAL }
        guard !(s.v6Only && d.address.isIPv4), routable(d.address) else { throw .ENETUNREACH }
        return d
    }

    /// A free port of the ephemeral range, from a random starting point.
    private func ephemeralPort(_ kind: SocketKind) throws(Errno) -> UInt16 {
        let range = NetworkStack.ephemeralPorts
        let span = UInt64(range.upperBound - range.lowerBound) + 1
        var candidate = nextRandom() % span
        for _ in 0..<span {
            let port = range.lowerBound + UInt16(candidate)
            if !sockets.contains(where: { $0 != nil && $0!.kind == kind && $0!.bound && $0!.local.port == port }) {
                return port
            }
            candidate = (candidate + 1) % span
        }
        throw .EADDRINUSE
    }

    private func autobind(_ s: Socket) throws(Errno) {
        if !s.bound {
            s.local.port = try ephemeralPort(s.kind)
            s.bound = true
        }
    }

    public func listen(_ id: SocketID, backlog: Int) throws(Errno) {
        let s = try socket(id)
        guard s.kind == .stream else { throw .EOPNOTSUPP }
        guard s.state == .closed || s.state == .listen, !s.connected else { throw .EINVAL }
        try autobind(s)
        s.state = .listen
        s.backlog = min(max(backlog, 1), 4096)
    }

    /// TCP: accept SYNs to any address/port that no other socket takes (user-mode network).
    /// With `deferHandshake`, accept returns a connection as soon as its SYN arrives, before
    /// anything is answered: the caller first finds out whether the real destination takes
    /// it, then calls completeHandshake, or abort to refuse it (the peer sees ECONNREFUSED).
    public func listenAny(_ id: SocketID, deferHandshake: Bool = false) throws(Errno) {
        let s = try socket(id)
        guard s.kind == .stream, config.acceptsAnyDestination, s.state == .closed else { throw .EINVAL }
        s.isAny = true
        s.defersHandshake = deferHandshake
        s.state = .listen
        s.backlog = 128
    }

    /// UDP: receive datagrams to any destination that no other socket takes.
    public func bindAny(_ id: SocketID) throws(Errno) {
        let s = try socket(id)
        guard s.kind == .datagram, config.acceptsAnyDestination, !s.bound else { throw .EINVAL }
        s.isAny = true
        s.bound = true
    }

    /// The oldest established connection of listener `l` not yet accepted.
    func nextAccepted(_ l: Socket) -> Socket? {
        var first: Socket?
        for case let c? in sockets where c.listener === l && (c.synchronized || c.handshakeDeferred)
            && c.acceptOrder < first?.acceptOrder ?? .max {
            first = c
        }
        return first
    }

    /// The next established connection (EAGAIN if none) and its peer.
    public func accept(_ id: SocketID) throws(Errno) -> (SocketID, Endpoint) {
        let l = try socket(id)
        guard l.state == .listen else { throw .EINVAL }
        guard let c = nextAccepted(l) else { throw .EAGAIN }
        c.listener = nil
        c.orphan = false
        changed()
        return (self.id(of: c), c.remote)
    }

    public func connect(_ id: SocketID, to endpoint: Endpoint, now: UInt64) throws(Errno) {
        tick(now)
        defer { drainLoopback() }
        let s = try socket(id)
        let remote = try checkedDestination(s, endpoint)
        if s.kind == .datagram {
            if let e = s.pendingError {
                s.pendingError = nil
                throw e
            }
            try autobind(s)
            s.remote = remote
            s.connected = true
            if s.local.address.isUnspecified { s.local.address = sourceAddress(for: remote.address) }
            return
        }
        if let e = s.pendingError {
            s.pendingError = nil
            throw e
        }
        switch s.state {
        case .closed: break
        case .synSent, .synReceived: throw .EALREADY
        default: throw .EISCONN
        }
        guard !s.connected else { throw .EISCONN }
        try autobind(s)
        let local = Endpoint(address: s.local.address.isUnspecified ? sourceAddress(for: remote.address) : s.local.address,
                             port: s.local.port)
        guard connection(local, remote) == nil else { throw .EADDRNOTAVAIL }
        s.local = local
        s.remote = remote
        s.reset = false
        startConnection(s)
        s.state = .synSent
        tcpSend(s, seq: s.iss, flags: tcpSYN)
        s.retransmitAt = self.now + s.rto
        changed()
        throw .EINPROGRESS
    }

    /// TCP: queues what fits of `bytes` and sends what the windows allow.
    public func send(_ id: SocketID, _ bytes: UnsafeRawBufferPointer, now: UInt64) throws(Errno) -> Int {
        tick(now)
        defer { drainLoopback() }
        let s = try socket(id)
        if s.kind == .datagram { return try sendTo(id, bytes, to: nil, from: nil, now: now) }
        if let e = s.pendingError {
            s.pendingError = nil
            throw e
        }
        if s.finQueued || s.reset { throw .EPIPE }
        switch s.state {
        case .established, .closeWait: break
        case .synSent, .synReceived: throw .EAGAIN
        default: throw .ENOTCONN
        }
        if bytes.isEmpty { return 0 }
        let n = s.sendBuffer.append(bytes)
        guard n > 0 else { throw .EAGAIN }
        tcpOutput(s)
        return n
    }

    /// TCP: reads queued bytes (0 at end of stream). UDP: one datagram (see receiveFrom).
    public func receive(_ id: SocketID, into buffer: UnsafeMutableRawBufferPointer, peek: Bool, now: UInt64) throws(Errno) -> Int {
        tick(now)
        defer { drainLoopback() }
        let s = try socket(id)
        if s.kind == .datagram { return try receiveFrom(id, into: buffer, peek: peek).count }
        let n = min(buffer.count, s.receiveBuffer.count)
        if n > 0 {
            s.receiveBuffer.copy(from: 0, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
            if !peek {
                s.receiveBuffer.discard(n)
                if s.synchronized && !s.finReceived && windowUpdateNeeded(s) { sendAck(s) }
                changed()
            }
            return n
        }
        if buffer.isEmpty && s.synchronized { return 0 }
        if let e = s.pendingError {
            s.pendingError = nil
            throw e
        }
        if s.finReceived || s.readShut || s.reset { return 0 }
        if s.state == .closed || s.state == .listen { throw .ENOTCONN }
        throw .EAGAIN
    }

    /// UDP: sends one datagram to `to` (or the connected peer). `from` is for an "any" socket
    /// answering as the original destination. TCP: the same as send.
    public func sendTo(_ id: SocketID, _ bytes: UnsafeRawBufferPointer, to: Endpoint?, from: Endpoint?,
                       now: UInt64) throws(Errno) -> Int {
        tick(now)
        defer { drainLoopback() }
        let s = try socket(id)
        if s.kind == .stream { return try send(id, bytes, now: now) }
        if let e = s.pendingError {
            s.pendingError = nil
            throw e
        }
        guard let target = to ?? (s.connected ? s.remote : nil) else { throw .EDESTADDRREQ }
        guard bytes.count <= NetworkStack.maxDatagram else { throw .EMSGSIZE }
        guard target.port != 0 else { throw .EINVAL }
        let destination = try checkedDestination(s, target)
        // IPv6 datagrams are not fragmented: they must fit the path (IPv6.swift).
        guard destination.address.isIPv4 || bytes.count + 48 <= (isLocal(destination.address) ? NetworkStack.loopbackMTU : config.mtu)
        else { throw .EMSGSIZE }
        var source: Endpoint
        if let from, s.isAny {
            source = from
        } else {
            try autobind(s)
            source = s.local
            if source.address.isUnspecified { source.address = sourceAddress(for: destination.address) }
        }
        udpOutput(bytes, from: source, to: destination)
        return bytes.count
    }

    /// UDP: the next datagram (truncated to the buffer; fullLength is its real size), its
    /// source and its destination.
    public func receiveFrom(_ id: SocketID, into buffer: UnsafeMutableRawBufferPointer, peek: Bool) throws(Errno)
        -> (count: Int, fullLength: Int, from: Endpoint, to: Endpoint) {
        let s = try socket(id)
        if s.kind == .stream {
            let n = try receive(id, into: buffer, peek: peek, now: now)
            return (n, n, s.remote, s.local)
        }
        guard s.receiveBuffer.count > 0 else {
            if let e = s.pendingError {
                s.pendingError = nil
                throw e
            }
            throw .EAGAIN
        }
        let d = s.nextDatagram
        let headerSize = MemoryLayout<DatagramHeader>.size
        let n = min(buffer.count, d.length)
        s.receiveBuffer.copy(from: headerSize, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
        if !peek {
            s.receiveBuffer.discard(headerSize + d.length)
            changed()
        }
        return (n, d.length, d.from, d.to)
    }

    public func shutdown(_ id: SocketID, read: Bool, write: Bool, now: UInt64) throws(Errno) {
        tick(now)
        defer { drainLoopback() }
        let s = try socket(id)
        let connected = s.kind == .datagram ? s.connected : s.state.rawValue >= TCPState.synSent.rawValue
        guard connected else { throw .ENOTCONN }
        if read { s.readShut = true }
        if write && s.kind == .stream && !s.finQueued {
            s.finQueued = true
            tcpOutput(s)
        }
        changed()
    }

    /// Closes the handle. TCP finishes gracefully in the background (FIN, then FIN-WAIT /
    /// TIME-WAIT); unread received data makes it a reset instead, as in Linux.
    public func close(_ id: SocketID, now: UInt64) {
        tick(now)
        defer { drainLoopback() }
        guard let s = try? socket(id) else { return }
        s.generation &+= 1
        s.orphan = true
        guard s.kind == .stream else {
            release(s)
            return
        }
        switch s.state {
        case .listen:
            for case let c? in sockets where c.listener === s { abortConnection(c) }
            closeConnection(s)
        case .closed, .synSent:
            closeConnection(s)
        case .finWait2:
            s.stateTimerAt = self.now + NetworkStack.finWait2Timeout
        default:
            if s.receiveBuffer.count > 0 {
                abortConnection(s)
            } else if !s.finQueued {
                s.finQueued = true
                tcpOutput(s)
            }
        }
        changed()
    }

    /// Closes the handle with a reset (SO_LINGER with a zero timeout).
    public func abort(_ id: SocketID, now: UInt64) {
        tick(now)
        defer { drainLoopback() }
        guard let s = try? socket(id) else { return }
        if s.kind == .stream && s.state != .listen { abortConnection(s) }
        close(id, now: now)
    }

    public func readiness(_ id: SocketID) -> Readiness {
        guard let s = try? socket(id) else { return [.error, .hangup] }
        var r: Readiness = s.pendingError == nil ? [] : .error
        if s.kind == .datagram {
            r.insert(.writable)
            if s.receiveBuffer.count > 0 { r.insert(.readable) }
            return r
        }
        switch s.state {
        case .listen:
            if nextAccepted(s) != nil { r.insert(.readable) }
        case .closed:
            r.formUnion([.writable, .hangup])
            if s.connected || s.reset { r.formUnion([.readable, .readHangup]) }
        case .synSent, .synReceived:
            break
        default:
            if s.receiveBuffer.count > 0 { r.insert(.readable) }
            if s.finReceived || s.readShut { r.formUnion([.readable, .readHangup]) }
            if s.finQueued || s.sendBuffer.free >= s.sendBuffer.limit / 3 { r.insert(.writable) }
            if s.finReceived && s.finQueued { r.insert(.hangup) }
        }
        return r
    }

    /// SO_ERROR: the pending error, cleared.
    public func takeError(_ id: SocketID) -> Errno? {
        guard let s = try? socket(id) else { return nil }
        defer { s.pendingError = nil }
        return s.pendingError
    }

    /// The local address (unspecified address and port 0 before bind); nil for a bad handle.
    public func localEndpoint(_ id: SocketID) -> Endpoint? {
        (try? socket(id))?.local
    }

    /// The peer; nil when not connected.
    public func remoteEndpoint(_ id: SocketID) -> Endpoint? {
        guard let s = try? socket(id) else { return nil }
        let connected = s.kind == .datagram ? s.connected : s.connected || s.state.rawValue >= TCPState.synSent.rawValue
        return connected ? s.remote : nil
    }

    /// FIONREAD: bytes ready to read (UDP: the size of the next datagram).
    public func availableBytes(_ id: SocketID) -> Int {
        guard let s = try? socket(id) else { return 0 }
        return s.kind == .stream || s.receiveBuffer.count == 0 ? s.receiveBuffer.count : s.nextDatagram.length
    }

    public func setOption(_ id: SocketID, _ option: SocketOption) throws(Errno) {
        let s = try socket(id)
        switch option {
        case .noDelay(let on):
            s.noDelay = on
            if on && s.kind == .stream { tcpOutput(s) }
        case .cork(let on):
            let wasCorked = s.corked
            s.corked = on
            if wasCorked && !on && s.kind == .stream { tcpOutput(s, push: true) }
        case .keepAlive(let on): s.keepAlive = on
        case .keepIdle(let t), .keepInterval(let t), .keepCount(let t):
            guard t >= 1 && t <= 32767 else { throw .EINVAL }
            if case .keepIdle = option { s.keepIdle = t }
            if case .keepInterval = option { s.keepInterval = t }
            if case .keepCount = option { s.keepCount = t }
        case .reuseAddress(let on): s.reuseAddress = on
        case .reusePort(let on): s.reusePort = on
        case .v6Only(let on):
            guard s.ipv6 else { throw .ENOPROTOOPT }
            guard !s.bound else { throw .EINVAL }   // as Linux: fixed once bound
            s.v6Only = on
        case .receiveBufferSize(let n):
            let size = min(max(n, 2048), 16 << 20)
            if size < s.receiveBuffer.limit { s.outOfOrder = [] }   // out-of-order data may not fit
            s.receiveBuffer.limit = max(size, s.receiveBuffer.count)
        case .sendBufferSize(let n):
            s.sendBuffer.limit = max(min(max(n, 2048), 16 << 20), s.sendBuffer.count)
        }
    }

    public func option(_ id: SocketID, _ which: SocketOptionName) -> SocketOption {
        let s = try? socket(id)
        switch which {
        case .noDelay: return .noDelay(s?.noDelay ?? false)
        case .cork: return .cork(s?.corked ?? false)
        case .keepAlive: return .keepAlive(s?.keepAlive ?? false)
        case .keepIdle: return .keepIdle(s?.keepIdle ?? 0)
        case .keepInterval: return .keepInterval(s?.keepInterval ?? 0)
        case .keepCount: return .keepCount(s?.keepCount ?? 0)
        case .reuseAddress: return .reuseAddress(s?.reuseAddress ?? false)
        case .reusePort: return .reusePort(s?.reusePort ?? false)
        case .receiveBufferSize: return .receiveBufferSize(s?.receiveBuffer.limit ?? 0)
        case .sendBufferSize: return .sendBufferSize(s?.sendBuffer.limit ?? 0)
        case .v6Only: return .v6Only(s?.v6Only ?? false)
        }
    }
}
