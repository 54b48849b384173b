import GuestABI
import VFS
import LinuxABI
import NetStack

/// A socket descriptor's object: an AF_INET or AF_INET6 socket of the network stack.
/// (AF_UNIX sockets are `UnixSocket`s.)
final class Socket {
    let id: SocketID
    let kind: SocketKind
    let ipv6: Bool
    /// A TCP connect is under way (the handshake runs; connect returns when it ends).
    var connecting = false
    var listening = false

    init(id: SocketID, kind: SocketKind, ipv6: Bool) {
        self.id = id
        self.kind = kind
        self.ipv6 = ipv6
    }

    var family: UInt16 { ipv6 ? SocketConstants.AF_INET6 : SocketConstants.AF_INET }

    /// An address from the program, for this socket's family (an AF_INET6 socket takes
    /// v4-mapped addresses; an AF_INET socket only AF_INET ones, or AF_UNSPEC to dissolve).
    func endpoint(_ address: SocketAddress) throws(Errno) -> Endpoint {
        switch address {
        case .inet(let a, let port) where !ipv6: return Endpoint(address: IPAddress(ipv4: a), port: port)
        case .inet6(let high, let low, let port, _) where ipv6:
            return Endpoint(address: IPAddress(high: high, low: low), port: port)
        default: throw .EAFNOSUPPORT
        }
    }

    /// An address for the program, as this socket's family writes it.
    func address(_ e: Endpoint) -> SocketAddress {
        if !ipv6 { return .inet(address: e.address.ipv4 ?? 0, port: e.port) }
        return .inet6(high: e.address.high, low: e.address.low, port: e.port, scope: 0)
    }

    // MARK: data (read/write and the send/recv calls)

    func receive(into buffer: UnsafeMutableRawBufferPointer, peek: Bool, nonblocking: Bool) throws(Errno) -> Int {
        Network.poll()
        let stack = Network.current
        do {
            let n = try stack.receive(id, into: buffer, peek: peek, now: Clock.monotonicNanos)
            if !peek { Network.flush() }  // a window update may go out
            return n
        } catch .EAGAIN where !nonblocking {
            Sockets.wait()
            return 0
        }
    }

    func send(_ bytes: UnsafeRawBufferPointer, nonblocking: Bool, signal: Bool) throws(Errno) -> Int {
        let stack = Network.current
        // What the stack buffers for sending is the app's memory: it leaves the kernel its
        // reserve (ENOBUFS, as Linux when it cannot allocate socket memory).
        guard PhysicalMemory.canGrantApp(bytes: bytes.count) else { throw .ENOBUFS }
        do {
            let n = try stack.send(id, bytes, now: Clock.monotonicNanos)
            Network.flush()
            return n
        } catch .EAGAIN where !nonblocking {
            Sockets.wait()
            return 0
        } catch .EPIPE {
            if signal { Scheduler.current.pending.add(13, SysSignal.sentByUser) }  // SIGPIPE
            throw .EPIPE
        }
    }

    /// poll/epoll bits: POLLIN 1, POLLOUT 4, POLLERR 8, POLLHUP 16, POLLRDHUP 0x2000.
    var pollEvents: UInt32 {
        let r = Network.current.readiness(id)
        var bits: UInt32 = 0
        if r.contains(.readable) || r.contains(.readHangup) { bits |= 1 }
        if r.contains(.writable) { bits |= 4 }
        if r.contains(.error) { bits |= 8 }
        if r.contains(.hangup) { bits |= 16 }
        if r.contains(.readHangup) { bits |= 0x2000 }
        return bits
    }
}

/// The socket syscalls. Addresses are decoded by LinuxABI.SocketAddress; the protocols are
/// NetStack's. A call that must wait parks the thread to run again when the network changes
/// (Network.flush wakes waiters when any socket's state moved), as pipes do.
enum Sockets {
    typealias C = SocketConstants

    /// Parks the calling thread until the network changes (its call then runs again).
    static func wait() {
        Network.transmit()
        Scheduler.blockCurrentRestarting(deadline: 0)
    }

    static func socket(_ fd: Int32) throws(Errno) -> Socket {
        guard let id = KernelObjects.id(of: fd) else {
            if SysIO.fs.isOpen(fd) { throw .ENOTSOCK }
            throw .EBADF
        }
        guard case .socket(let s) = KernelObjects.object(id) else { throw .ENOTSOCK }
        return s
    }

    private static func nonblocking(_ fd: Int32, _ flags: Int32 = 0) -> Bool {
        flags & C.MSG_DONTWAIT != 0 || ((try? SysIO.fs.statusFlags(fd))?.contains(.O_NONBLOCK) ?? false)
    }

    /// A new descriptor for a socket object, with socket()'s SOCK_NONBLOCK/SOCK_CLOEXEC.
    private static func install(_ object: KernelObject, typeFlags: Int32) throws(Errno) -> Int32 {
        var flags = OpenFlags.O_RDWR
        if typeFlags & C.SOCK_NONBLOCK != 0 { flags.insert(.O_NONBLOCK) }
        return try KernelObjects.install(object, flags: flags, cloexec: typeFlags & C.SOCK_CLOEXEC != 0)
    }

    private static func readAddress(_ address: UInt64, _ length: UInt64) throws(Errno) -> SocketAddress {
        guard length <= 128 else { throw .EINVAL }
        return try SocketAddress(decoding: UserMemory.readable(address, Int(length)))
    }

    /// Writes an address to (address, *lengthAddress) as accept/getsockname/recvfrom do.
    private static func writeAddress(_ a: SocketAddress, _ address: UInt64, _ lengthAddress: UInt64) throws(Errno) {
        guard address != 0, lengthAddress != 0 else { return }
        let capacity = try UserMemory.load(UInt32.self, lengthAddress)
        guard capacity <= 0x7fff_ffff else { throw .EINVAL }
        let out = try UserMemory.writable(address, Int(min(capacity, 128)))
        let full = a.encode(into: out)
        try UserMemory.store(UInt32(full), lengthAddress)
    }

    // MARK: calls

    /// socket(domain, type, protocol)
    static func socket(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let domain = UInt16(truncatingIfNeeded: a.int32(0)), type = a.int32(1), proto = a.int32(2)
        let base = type & C.SOCK_TYPE_MASK
        guard type & ~(C.SOCK_TYPE_MASK | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC) == 0 else { throw .EINVAL }
        switch domain {
        case C.AF_INET, C.AF_INET6:
            let kind: SocketKind
            switch base {
            case C.SOCK_STREAM:
                guard proto == 0 || proto == C.IPPROTO_TCP else { throw .EPROTONOSUPPORT }
                kind = .stream
            case C.SOCK_DGRAM:
                guard proto == 0 || proto == C.IPPROTO_UDP else { throw .EPROTONOSUPPORT }
                kind = .datagram
            default: throw .ESOCKTNOSUPPORT
            }
            let ipv6 = domain == C.AF_INET6
            let id = try Network.current.open(kind, ipv6: ipv6)
            return UInt64(try install(.socket(Socket(id: id, kind: kind, ipv6: ipv6)), typeFlags: type))
        case C.AF_UNIX:
            return UInt64(try install(.unixSocket(UnixSocket(type: base)), typeFlags: type))
        case C.AF_NETLINK:
            guard base == C.SOCK_RAW || base == C.SOCK_DGRAM else { throw .ESOCKTNOSUPPORT }
            guard proto == Netlink.NETLINK_ROUTE else { throw .EPROTONOSUPPORT }
            return UInt64(try install(.netlink(NetlinkSocket()), typeFlags: type))
        default:
            throw .EAFNOSUPPORT
        }
    }

    /// socketpair(domain, type, protocol, int sv[2]): AF_UNIX only.
    static func socketpair(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard UInt16(truncatingIfNeeded: a.int32(0)) == C.AF_UNIX else { throw .EOPNOTSUPP }
        let type = a.int32(1)
        let out = try UserMemory.writable(a[3], 8)
        let (first, second) = try UnixSocket.pair(type: type & C.SOCK_TYPE_MASK)
        let fd0 = try install(.unixSocket(first), typeFlags: type)
        let fd1: Int32
        do { fd1 = try install(.unixSocket(second), typeFlags: type) } catch {
            // Through close(), so the first end's object is released too.
            _ = try? SysIO.close(SyscallArguments(number: SyscallNumber.close, UInt64(fd0)))
            throw error
        }
        out.writeLE(UInt32(bitPattern: fd0), at: 0)
        out.writeLE(UInt32(bitPattern: fd1), at: 4)
        return 0
    }

    /// bind(fd, addr, addrlen)
    static func bind(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let address = try readAddress(a[1], a[2])
        if let n = netlink(a.fd(0)) {
            guard case .netlink(let port, _) = address else { throw .EINVAL }
            try n.bind(port)
            return 0
        }
        if let u = unix(a.fd(0)) { try u.bind(address); return 0 }
        let s = try socket(a.fd(0))
        try Network.current.bind(s.id, to: s.endpoint(address))
        return 0
    }

    /// listen(fd, backlog)
    static func listen(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let backlog = Int(max(1, min(a.int32(1), 4096)))
        if let u = unix(a.fd(0)) { try u.listen(backlog: backlog); return 0 }
        let s = try socket(a.fd(0))
        guard s.kind == .stream else { throw .EOPNOTSUPP }
        try Network.current.listen(s.id, backlog: backlog)
        s.listening = true
        return 0
    }

    /// accept(fd, addr, addrlen *)
    static func accept(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try accept(a.fd(0), a[1], a[2], flags: 0)
    }

    /// accept4(fd, addr, addrlen *, flags)
    static func accept4(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = a.int32(3)
        guard flags & ~(C.SOCK_NONBLOCK | C.SOCK_CLOEXEC) == 0 else { throw .EINVAL }
        return try accept(a.fd(0), a[1], a[2], flags: flags)
    }

    private static func accept(_ fd: Int32, _ address: UInt64, _ lengthAddress: UInt64, flags: Int32) throws(Errno) -> UInt64 {
        if let u = unix(fd) {
            guard let peer = try u.accept(nonblocking: nonblocking(fd)) else { return 0 }
            let newFD = try install(.unixSocket(peer), typeFlags: flags)
            try? writeAddress(.unix(path: []), address, lengthAddress)
            return UInt64(newFD)
        }
        let s = try socket(fd)
        guard s.kind == .stream, s.listening else { throw .EINVAL }
        Network.poll()
        let stack = Network.current
        let accepted: (SocketID, Endpoint)
        do { accepted = try stack.accept(s.id) } catch .EAGAIN where !nonblocking(fd) {
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
            wait()
            return 0
        }
        let peer = Socket(id: accepted.0, kind: .stream, ipv6: s.ipv6)
        let newFD: Int32
        do { newFD = try install(.socket(peer), typeFlags: flags) } catch {
            stack.abort(accepted.0, now: Clock.monotonicNanos)
            throw error
        }
        try writeAddress(s.address(accepted.1), address, lengthAddress)
        return UInt64(newFD)
    }

    /// connect(fd, addr, addrlen): TCP waits for the handshake unless non-blocking
    /// (EINPROGRESS; the outcome is SO_ERROR once the socket is writable).
    static func connect(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let fd = a.fd(0)
        let address = try readAddress(a[1], a[2])
        if let u = unix(fd) { try u.connect(address, nonblocking: nonblocking(fd)); return 0 }
        let s = try socket(fd)
        let stack = Network.current
        if s.connecting {
            // Running again after a wait (or a second connect while the first is under way).
            Network.poll()
            if let error = stack.takeError(s.id) { s.connecting = false; throw error }
            if stack.readiness(s.id).contains(.writable) { s.connecting = false; return 0 }
            if nonblocking(fd) { throw .EALREADY }
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
            wait()
            return 0
        }
        if case .unspecified = address, s.kind == .datagram { return 0 }
        do {
            try stack.connect(s.id, to: s.endpoint(address), now: Clock.monotonicNanos)
            Network.flush()
            return 0
        } catch .EINPROGRESS {
            s.connecting = true
            if nonblocking(fd) {
                Network.flush()
                throw .EINPROGRESS
            }
            // Over loopback the handshake (or the refusal) is already done.
            if let error = stack.takeError(s.id) { s.connecting = false; Network.flush(); throw error }
            if stack.readiness(s.id).contains(.writable) { s.connecting = false; Network.flush(); return 0 }
            wait()
            return 0
        }
    }

    /// shutdown(fd, how)
    static func shutdown(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let how = a.int32(1)
        guard how >= C.SHUT_RD && how <= C.SHUT_RDWR else { throw .EINVAL }
        if let u = unix(a.fd(0)) { try u.shutdown(read: how != C.SHUT_WR, write: how != C.SHUT_RD); return 0 }
        let s = try socket(a.fd(0))
        try Network.current.shutdown(s.id, read: how != C.SHUT_WR, write: how != C.SHUT_RD, now: Clock.monotonicNanos)
        Network.flush()
        return 0
    }

    /// getsockname(fd, addr, addrlen *)
    static func getsockname(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        if let u = unix(a.fd(0)) { try writeAddress(.unix(path: u.boundPath), a[1], a[2]); return 0 }
        if let n = netlink(a.fd(0)) {
            try n.bind(0)
            try writeAddress(.netlink(portID: n.portID, groups: 0), a[1], a[2])
            return 0
        }
        let s = try socket(a.fd(0))
        let local = Network.current.localEndpoint(s.id)
            ?? Endpoint(address: s.ipv6 ? IPAddress.any6 : IPAddress.any4, port: 0)
        try writeAddress(s.address(local), a[1], a[2])
        return 0
    }

    /// getpeername(fd, addr, addrlen *)
    static func getpeername(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        if let u = unix(a.fd(0)) {
            guard u.isConnected else { throw .ENOTCONN }
            try writeAddress(.unix(path: u.peerPath), a[1], a[2])
            return 0
        }
        let s = try socket(a.fd(0))
        guard let remote = Network.current.remoteEndpoint(s.id) else { throw .ENOTCONN }
        try writeAddress(s.address(remote), a[1], a[2])
        return 0
    }

    // MARK: sending and receiving

    /// sendto(fd, buf, len, flags, addr, addrlen)
    static func sendto(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let bytes = try UserMemory.readable(a[1], Int(min(a.size(2), SyscallResult.maxReadWriteCount)))
        let to: SocketAddress? = a[4] == 0 ? nil : try readAddress(a[4], a[5])
        return UInt64(try send(a.fd(0), bytes, flags: a.int32(3), to: to))
    }

    private static func send(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, flags: Int32, to: SocketAddress?) throws(Errno) -> Int {
        let block = !nonblocking(fd, flags), signal = flags & C.MSG_NOSIGNAL == 0
        // Streams: a blocking send returns once all of it is queued (BlockingWrites).
        if let u = unix(fd) {
            if !u.isStream || bytes.isEmpty { return try u.send(bytes, nonblocking: !block, signal: signal) }
            return try BlockingWrites.write(total: bytes.count, blocking: block) { (done) throws(Errno) in
                let rest = UnsafeRawBufferPointer(rebasing: bytes[done...])
                return (rest.count, try u.send(rest, nonblocking: !block, signal: signal))
            }
        }
        if let n = netlink(fd) { return try n.send(bytes, to: to) }
        let s = try socket(fd)
        if s.kind == .stream && !bytes.isEmpty {
            return try BlockingWrites.write(total: bytes.count, blocking: block) { (done) throws(Errno) in
                let rest = UnsafeRawBufferPointer(rebasing: bytes[done...])
                return (rest.count, try s.send(rest, nonblocking: !block, signal: signal))
            }
        }
        if s.kind == .datagram {
            let destination = try to.map { (a) throws(Errno) -> Endpoint in try s.endpoint(a) }
            guard PhysicalMemory.canGrantApp(bytes: bytes.count) else { throw .ENOBUFS }
            let n = try Network.current.sendTo(s.id, bytes, to: destination, from: nil, now: Clock.monotonicNanos)
            Network.flush()
            return n
        }
        return try s.send(bytes, nonblocking: !block, signal: signal)
    }

    /// recvfrom(fd, buf, len, flags, addr, addrlen *)
    static func recvfrom(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let out = try UserMemory.writable(a[1], Int(min(a.size(2), SyscallResult.maxReadWriteCount)))
        let (n, from, _) = try receive(a.fd(0), into: out, flags: a.int32(3))
        if let from { try writeAddress(from, a[4], a[5]) }
        return UInt64(n)
    }

    /// One receive: (bytes returned, the sender for datagrams, whether it was truncated).
    private static func receive(_ fd: Int32, into out: UnsafeMutableRawBufferPointer, flags: Int32) throws(Errno) -> (Int, SocketAddress?, Bool) {
        let block = !nonblocking(fd, flags), peek = flags & C.MSG_PEEK != 0
        if let u = unix(fd) { return (try u.receive(into: out, peek: peek, nonblocking: !block), nil, false) }
        if let n = netlink(fd) {
            // The sender is always the kernel (port 0).
            let (count, full) = try n.receive(into: out, peek: peek, nonblocking: !block)
            return (flags & C.MSG_TRUNC != 0 ? full : count, .netlink(portID: 0, groups: 0), full > count)
        }
        let s = try socket(fd)
        if s.kind == .datagram {
            Network.poll()
            do {
                let r = try Network.current.receiveFrom(s.id, into: out, peek: peek)
                let n = flags & C.MSG_TRUNC != 0 ? r.fullLength : r.count
                return (n, s.address(r.from), r.fullLength > r.count)
            } catch .EAGAIN where block {
                if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
                wait()
                return (0, nil, false)
            }
        }
        if block && SysSignal.hasDeliverable(Scheduler.current) && Network.current.availableBytes(s.id) == 0 { throw .EINTR }
        return (try s.receive(into: out, peek: peek, nonblocking: !block), nil, false)
    }

    /// sendmsg(fd, msghdr *, flags): the vectors gathered into one send. On AF_UNIX sockets
    /// SCM_RIGHTS passes descriptors and SCM_CREDENTIALS is accepted and not used; other
    /// sockets ignore msg_control (Linux's SO_TIMESTAMPING and SCM_TXTIME are not modelled).
    static func sendmsg(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(try sendMessage(a.fd(0), at: a[1], flags: a.int32(2)))
    }

    private static func sendMessage(_ fd: Int32, at address: UInt64, flags: Int32) throws(Errno) -> Int {
        let header = try MessageHeader(decoding: UserMemory.readable(address, MessageHeader.size))
        let to: SocketAddress? = header.name == 0 || header.nameLength == 0 ? nil : try readAddress(header.name, UInt64(header.nameLength))
        let data = try gather(header.vectors, header.vectorCount)
        // Control messages mean something on AF_UNIX sockets only (elsewhere they are ignored).
        if header.controlLength > 0, let u = unix(fd) {
            guard header.controlLength <= UInt64(ControlMessages.maxSendLength) else { throw .ENOBUFS }
            let descriptors = try ControlMessages.descriptorsToSend(UserMemory.readable(header.control, Int(header.controlLength)))
            if !descriptors.isEmpty { return try sendWithRights(u, fd, data, descriptors, flags: flags) }
        }
        var result: Result<Int, Errno> = .failure(.EINVAL)
        data.withUnsafeBytes { raw in result = Result { () throws(Errno) in try send(fd, raw, flags: flags, to: to) } }
        return try result.get()
    }

    /// An AF_UNIX send carrying descriptors: each one's description (and kernel object) is
    /// referenced before anything is queued (EBADF for a closed one, nothing sent); if the
    /// send queues nothing (it waits, or fails), the references are given back.
    private static func sendWithRights(_ u: UnixSocket, _ fd: Int32, _ data: [UInt8], _ descriptors: [Int32],
                                       flags: Int32) throws(Errno) -> Int {
        var passed: [PassedDescriptor] = []
        for d in descriptors {
            do { passed.append(try PassedDescriptor.take(d)) } catch {
                for p in passed { p.drop() }
                throw error
            }
        }
        let block = !nonblocking(fd, flags), signal = flags & C.MSG_NOSIGNAL == 0
        var result: Result<(count: Int, tookRights: Bool), Errno> = .failure(.EINVAL)
        data.withUnsafeBytes { raw in
            result = Result { () throws(Errno) in try u.send(raw, rights: passed, nonblocking: !block, signal: signal) }
        }
        guard case .success(let sent) = result, sent.tookRights else {
            for p in passed { p.drop() }
            return try result.get().count
        }
        return sent.count
    }

    /// recvmsg(fd, msghdr *, flags): one receive scattered over the vectors; msg_flags gets
    /// MSG_TRUNC for a cut datagram. Descriptors passed with the bytes (AF_UNIX) become the
    /// caller's lowest free descriptors, in one SCM_RIGHTS record (close-on-exec with
    /// MSG_CMSG_CLOEXEC); those msg_control has no room for are closed and MSG_CTRUNC set.
    static func recvmsg(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(try receiveMessage(a.fd(0), at: a[1], flags: a.int32(2)))
    }

    private static func receiveMessage(_ fd: Int32, at address: UInt64, flags: Int32) throws(Errno) -> Int {
        let raw = try UserMemory.writable(address, MessageHeader.size)
        var header = try MessageHeader(decoding: UnsafeRawBufferPointer(raw))
        let vectors = try iovecs(header.vectors, header.vectorCount)
        var total = 0
        for v in vectors { total += Int(min(v.length, SyscallResult.maxReadWriteCount)) }
        var buffer = [UInt8](repeating: 0, count: min(total, 1 << 20))
        // The control buffer is checked before anything is received, so descriptors are never
        // installed for a caller that cannot be told their numbers.
        let unixSocket = unix(fd)
        let controlCapacity = unixSocket == nil ? 0
            : Int(min(header.controlLength, UInt64(ControlMessages.space(4 * ControlMessages.maxDescriptors))))
        let control = controlCapacity > 0 ? try UserMemory.writable(header.control, controlCapacity) : nil
        var passed: [PassedDescriptor] = []
        let n: Int, from: SocketAddress?, truncated: Bool
        if let u = unixSocket {
            var result: Result<(count: Int, rights: [PassedDescriptor]), Errno> = .failure(.EINVAL)
            buffer.withUnsafeMutableBytes { out in
                result = Result { () throws(Errno) in
                    try u.receiveWithRights(into: out, peek: flags & C.MSG_PEEK != 0, nonblocking: nonblocking(fd, flags))
                }
            }
            let received = try result.get()
            (n, from, truncated, passed) = (received.count, nil, false, received.rights)
        } else {
            var result: Result<(Int, SocketAddress?, Bool), Errno> = .failure(.EINVAL)
            buffer.withUnsafeMutableBytes { out in result = Result { () throws(Errno) in try receive(fd, into: out, flags: flags) } }
            (n, from, truncated) = try result.get()
        }
        if Scheduler.switched {
            for d in passed { d.drop() }
            return 0
        }
        var installed: [Int32] = []
        var controlTruncated = false
        let room = ControlMessages.descriptorCapacity(controlCapacity)
        for d in passed {
            if installed.count < room, let newFD = try? d.install(closeOnExec: flags & C.MSG_CMSG_CLOEXEC != 0) {
                installed.append(newFD)
            } else {
                d.drop()
                controlTruncated = true
            }
        }
        var copied = 0
        for v in vectors where copied < min(n, buffer.count) {
            let chunk = Int(min(v.length, UInt64(min(n, buffer.count) - copied)))
            guard chunk > 0 else { continue }
            let dest = try UserMemory.writable(v.base.raw, chunk)
            buffer.withUnsafeBytes { dest.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[copied..<copied + chunk])) }
            copied += chunk
        }
        if let from, header.name != 0 {
            let out = try UserMemory.writable(header.name, Int(min(header.nameLength, 128)))
            header.nameLength = UInt32(from.encode(into: out))
        } else {
            header.nameLength = 0
        }
        header.controlLength = 0
        if let control, !installed.isEmpty {
            header.controlLength = UInt64(ControlMessages.encodeRights(installed, into: control))
        }
        header.flags = (truncated ? C.MSG_TRUNC : 0) | (controlTruncated ? C.MSG_CTRUNC : 0)
        try header.encode(into: raw)
        return n
    }

    /// sendmmsg(fd, mmsghdr *, vlen, flags): sends until one fails; the count sent (the first
    /// failure's error if none was).
    static func sendmmsg(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let count = min(a.uint32(2), 1024)
        var sent: UInt32 = 0
        while sent < count {
            let at = a[1] &+ UInt64(sent) * UInt64(MessageHeader.multipleSize)  // a wrapped address is EFAULT
            do {
                // Only the first message may wait: a wait runs the whole call again, which
                // would send the messages before it twice. (Linux waits for each; here the
                // call returns the count sent when a later one finds no room.)
                let n = try sendMessage(a.fd(0), at: at, flags: a.int32(3) | (sent > 0 ? C.MSG_DONTWAIT : 0))
                if Scheduler.switched { return 0 }
                try UserMemory.store(UInt32(n), at &+ UInt64(MessageHeader.lengthOffset))
            } catch {
                if sent == 0 { throw error }
                break
            }
            sent += 1
        }
        return UInt64(sent)
    }

    /// recvmmsg(fd, mmsghdr *, vlen, flags, timeout *): receives while messages are ready
    /// (waiting only for the first, unless MSG_DONTWAIT).
    static func recvmmsg(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let count = min(a.uint32(2), 1024)
        var received: UInt32 = 0
        var flags = a.int32(3)
        while received < count {
            let at = a[1] &+ UInt64(received) * UInt64(MessageHeader.multipleSize)  // a wrapped address is EFAULT
            do {
                let n = try receiveMessage(a.fd(0), at: at, flags: flags)
                if Scheduler.switched { return 0 }
                try UserMemory.store(UInt32(n), at &+ UInt64(MessageHeader.lengthOffset))
            } catch {
                if received == 0 { throw error }
                break
            }
            received += 1
            flags |= C.MSG_DONTWAIT
        }
        return UInt64(received)
    }

    private static func iovecs(_ address: UInt64, _ count: UInt64) throws(Errno) -> [Iovec] {
        guard count <= UInt64(Iovec.maxCount) else { throw .EMSGSIZE }
        let raw = try UserMemory.readable(address, Int(count) * Iovec.size)
        var out: [Iovec] = []
        for i in 0..<Int(count) {
            let v = try Iovec.decode(from: raw, index: i)
            guard v.length <= UInt64(Int.max) else { throw .EINVAL }  // a negative ssize_t, as Linux
            out.append(v)
        }
        return out
    }

    private static func gather(_ address: UInt64, _ count: UInt64) throws(Errno) -> [UInt8] {
        var data: [UInt8] = []
        for v in try iovecs(address, count) where v.length > 0 {
            guard v.length <= SyscallResult.maxReadWriteCount - UInt64(data.count) else { throw .EINVAL }
            data.append(contentsOf: try UserMemory.readable(v.base.raw, Int(v.length)))
        }
        return data
    }

    // MARK: options

    /// setsockopt(fd, level, name, value *, length)
    static func setsockopt(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let level = a.int32(1), name = a.int32(2)
        guard a[4] >= 4 else { throw .EINVAL }
        let value = Int(try UserMemory.load(Int32.self, a[3]))
        if unix(a.fd(0)) != nil || netlink(a.fd(0)) != nil { return 0 }  // buffer sizes and the like: accepted, no effect
        let s = try socket(a.fd(0))
        let stack = Network.current
        switch (level, name) {
        case (C.SOL_SOCKET, C.SO_REUSEADDR): try stack.setOption(s.id, .reuseAddress(value != 0))
        case (C.SOL_SOCKET, C.SO_REUSEPORT): try stack.setOption(s.id, .reusePort(value != 0))
        case (C.SOL_SOCKET, C.SO_KEEPALIVE): try stack.setOption(s.id, .keepAlive(value != 0))
        case (C.SOL_SOCKET, C.SO_SNDBUF): try stack.setOption(s.id, .sendBufferSize(max(value, 2048) * 2))
        case (C.SOL_SOCKET, C.SO_RCVBUF): try stack.setOption(s.id, .receiveBufferSize(max(value, 2048) * 2))
        case (C.SOL_SOCKET, C.SO_LINGER), (C.SOL_SOCKET, C.SO_BROADCAST), (C.SOL_SOCKET, C.SO_RCVLOWAT),
             (C.SOL_SOCKET, C.SO_RCVTIMEO), (C.SOL_SOCKET, C.SO_SNDTIMEO):
            break  // accepted; not modelled (SO_LINGER's abortive close, timeouts)
        case (C.IPPROTO_TCP, C.TCP_NODELAY): try stack.setOption(s.id, .noDelay(value != 0))
        case (C.IPPROTO_TCP, C.TCP_CORK): try stack.setOption(s.id, .cork(value != 0))
        case (C.IPPROTO_TCP, C.TCP_KEEPIDLE): try stack.setOption(s.id, .keepIdle(value))
        case (C.IPPROTO_TCP, C.TCP_KEEPINTVL): try stack.setOption(s.id, .keepInterval(value))
        case (C.IPPROTO_TCP, C.TCP_KEEPCNT): try stack.setOption(s.id, .keepCount(value))
        case (C.IPPROTO_IPV6, C.IPV6_V6ONLY): try stack.setOption(s.id, .v6Only(value != 0))
        case (C.IPPROTO_IP, _), (C.IPPROTO_IPV6, _), (C.IPPROTO_TCP, _): break  // TOS, TCP_QUICKACK, …: no effect here
        default: throw .ENOPROTOOPT
        }
        return 0
    }

    /// getsockopt(fd, level, name, value *, length *)
    static func getsockopt(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let level = a.int32(1), name = a.int32(2)
        let capacity = try UserMemory.load(UInt32.self, a[4])
        let value: Int
        if netlink(a.fd(0)) != nil {
            switch (level, name) {
            case (C.SOL_SOCKET, C.SO_TYPE): value = Int(C.SOCK_RAW)
            case (C.SOL_SOCKET, C.SO_DOMAIN): value = Int(C.AF_NETLINK)
            case (C.SOL_SOCKET, C.SO_PROTOCOL): value = Int(Netlink.NETLINK_ROUTE)
            case (C.SOL_SOCKET, C.SO_ERROR): value = 0
            case (C.SOL_SOCKET, C.SO_SNDBUF), (C.SOL_SOCKET, C.SO_RCVBUF): value = 212_992  // Linux's default
            default: throw .ENOPROTOOPT
            }
        } else if let u = unix(a.fd(0)) {
            switch (level, name) {
            case (C.SOL_SOCKET, C.SO_TYPE): value = Int(u.type)
            case (C.SOL_SOCKET, C.SO_DOMAIN): value = Int(C.AF_UNIX)
            case (C.SOL_SOCKET, C.SO_ERROR): value = 0
            case (C.SOL_SOCKET, C.SO_SNDBUF), (C.SOL_SOCKET, C.SO_RCVBUF): value = UnixSocket.capacity
            default: throw .ENOPROTOOPT
            }
        } else {
            let s = try socket(a.fd(0))
            let stack = Network.current
            func flag(_ o: SocketOption) -> Int {
                switch o {
                case .reuseAddress(let b), .reusePort(let b), .keepAlive(let b), .noDelay(let b), .cork(let b), .v6Only(let b):
                    return b ? 1 : 0
                case .sendBufferSize(let n), .receiveBufferSize(let n), .keepIdle(let n), .keepInterval(let n), .keepCount(let n): return n
                }
            }
            switch (level, name) {
            case (C.SOL_SOCKET, C.SO_TYPE): value = Int(s.kind == .stream ? C.SOCK_STREAM : C.SOCK_DGRAM)
            case (C.SOL_SOCKET, C.SO_DOMAIN): value = Int(s.family)
            case (C.SOL_SOCKET, C.SO_PROTOCOL): value = Int(s.kind == .stream ? C.IPPROTO_TCP : C.IPPROTO_UDP)
            case (C.SOL_SOCKET, C.SO_ERROR): value = Int(stack.takeError(s.id)?.rawValue ?? 0)
            case (C.SOL_SOCKET, C.SO_ACCEPTCONN): value = s.listening ? 1 : 0
            case (C.SOL_SOCKET, C.SO_REUSEADDR): value = flag(stack.option(s.id, .reuseAddress))
            case (C.SOL_SOCKET, C.SO_REUSEPORT): value = flag(stack.option(s.id, .reusePort))
            case (C.SOL_SOCKET, C.SO_KEEPALIVE): value = flag(stack.option(s.id, .keepAlive))
            case (C.SOL_SOCKET, C.SO_SNDBUF): value = flag(stack.option(s.id, .sendBufferSize))
            case (C.SOL_SOCKET, C.SO_RCVBUF): value = flag(stack.option(s.id, .receiveBufferSize))
            case (C.IPPROTO_TCP, C.TCP_NODELAY): value = flag(stack.option(s.id, .noDelay))
            case (C.IPPROTO_TCP, C.TCP_CORK): value = flag(stack.option(s.id, .cork))
            case (C.IPPROTO_TCP, C.TCP_KEEPIDLE): value = flag(stack.option(s.id, .keepIdle))
            case (C.IPPROTO_TCP, C.TCP_KEEPINTVL): value = flag(stack.option(s.id, .keepInterval))
            case (C.IPPROTO_TCP, C.TCP_KEEPCNT): value = flag(stack.option(s.id, .keepCount))
            case (C.IPPROTO_TCP, C.TCP_MAXSEG): value = 1460
            case (C.IPPROTO_IPV6, C.IPV6_V6ONLY): value = flag(stack.option(s.id, .v6Only))
            default: throw .ENOPROTOOPT
            }
        }
        let n = Int(min(capacity, 4))
        let out = try UserMemory.writable(a[3], n)
        var v = Int32(truncatingIfNeeded: value)
        withUnsafeBytes(of: &v) { for i in 0..<n { out[i] = $0[i] } }
        try UserMemory.store(UInt32(n), a[4])
        return 0
    }

    private static func netlink(_ fd: Int32) -> NetlinkSocket? {
        guard let id = KernelObjects.id(of: fd), case .netlink(let n) = KernelObjects.object(id) else { return nil }
        return n
    }

    private static func unix(_ fd: Int32) -> UnixSocket? {
        guard let id = KernelObjects.id(of: fd), case .unixSocket(let u) = KernelObjects.object(id) else { return nil }
        return u
    }
}
