import LinuxABI

/// AF_UNIX sockets inside the VM: stream (and seqpacket, treated as stream) and datagram,
/// from socketpair or by name (bind/listen/connect/accept). Names live in a kernel table, not
/// in the file system (no socket file appears; abstract names work the same way), so
/// connecting to a name nobody bound is ENOENT — what a program probing for a daemon (glibc's
/// nscd) expects. No descriptor passing (SCM_RIGHTS).
///
/// Each socket owns its receive queue; a writer appends to its peer's. Waiting works as for
/// pipes: the call parks and runs again after any socket or pipe changed.
final class UnixSocket {
    static let capacity = 212_992  // Linux's default socket buffer
    nonisolated(unsafe) static var named: [UnixSocket] = []

    let type: Int32
    var boundPath: [UInt8] = []
    var peerPath: [UInt8] = []
    var peer: UnixSocket? = nil
    var isConnected: Bool { peer != nil || peerGone }
    /// The peer closed (stream: end of file after the queue; writes fail with EPIPE).
    var peerGone = false
    var readShut = false
    var writeShut = false
    var listening = false
    var backlogLimit = 0
    var backlog: [UnixSocket] = []
    /// Stream bytes, or datagrams one after another, each prefixed by its 4-byte length.
    var queue: [UInt8] = []
    /// Changes so far (edge-triggered epoll's news).
    var changes: UInt64 = 0

    init(type: Int32) throws(Errno) {
        guard type == SocketConstants.SOCK_STREAM || type == SocketConstants.SOCK_DGRAM
            || type == SocketConstants.SOCK_SEQPACKET else { throw .ESOCKTNOSUPPORT }
        self.type = type
    }

    private var isDatagram: Bool { type == SocketConstants.SOCK_DGRAM }

    static func pair(type: Int32) throws(Errno) -> (UnixSocket, UnixSocket) {
        let a = try UnixSocket(type: type), b = try UnixSocket(type: type)
        a.peer = b
        b.peer = a
        return (a, b)
    }

    private static func find(_ path: [UInt8]) -> UnixSocket? { named.first { $0.boundPath == path } }

    private func changed() {
        changes &+= 1
        Scheduler.wakeRestartingWaiters()
    }

    private func wait() {
        Scheduler.blockCurrentRestarting(deadline: 0)
    }

    func bind(_ address: SocketAddress) throws(Errno) {
        guard case .unix(let path) = address else { throw .EINVAL }
        guard boundPath.isEmpty, !path.isEmpty else { throw .EINVAL }
        guard UnixSocket.find(path) == nil else { throw .EADDRINUSE }
        boundPath = path
        UnixSocket.named.append(self)
    }

    func listen(backlog: Int) throws(Errno) {
        guard !isDatagram else { throw .EOPNOTSUPP }
        guard !boundPath.isEmpty, peer == nil else { throw .EINVAL }
        listening = true
        backlogLimit = backlog
    }

    func connect(_ address: SocketAddress, nonblocking: Bool) throws(Errno) {
        guard case .unix(let path) = address else { throw .EINVAL }
        if peer != nil && !isDatagram { throw .EISCONN }
        guard let target = UnixSocket.find(path) else { throw .ENOENT }
        guard target.type == type else { throw .EPROTOTYPE }
        if isDatagram {
            peer = target
            peerPath = path
            return
        }
        guard target.listening else { throw .ECONNREFUSED }
        if target.backlog.count >= target.backlogLimit {
            if nonblocking { throw .EAGAIN }
            wait()
            return
        }
        guard PhysicalMemory.canGrantAppObject else { throw .ENOMEM }
        let server = try UnixSocket(type: type)
        server.peer = self
        server.boundPath = path
        peer = server
        peerPath = path
        target.backlog.append(server)
        target.changed()
    }

    /// The next connection, or nil after parking the caller (it runs again on a change).
    func accept(nonblocking: Bool) throws(Errno) -> UnixSocket? {
        guard listening else { throw .EINVAL }
        if backlog.isEmpty {
            if nonblocking { throw .EAGAIN }
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
            wait()
            return nil
        }
        changed()
        return backlog.removeFirst()
    }

    func send(_ bytes: UnsafeRawBufferPointer, nonblocking: Bool, signal: Bool) throws(Errno) -> Int {
        guard let p = peer else {
            if peerGone || writeShut {
                if signal { Scheduler.current.pending.add(13, SysSignal.sentByUser) }  // SIGPIPE
                throw .EPIPE
            }
            throw isDatagram ? .EDESTADDRREQ : .ENOTCONN
        }
        if writeShut || p.readShut {
            if signal { Scheduler.current.pending.add(13, SysSignal.sentByUser) }
            throw .EPIPE
        }
        let room = UnixSocket.capacity - p.queue.count
        let needed = isDatagram ? bytes.count + 4 : 1
        if isDatagram && bytes.count + 4 > UnixSocket.capacity { throw .EMSGSIZE }
        if room < needed {
            if nonblocking { throw .EAGAIN }
            wait()
            return 0
        }
        let n = isDatagram ? bytes.count : min(room, bytes.count)
        guard PhysicalMemory.canGrow(count: p.queue.count, capacity: p.queue.capacity, by: n + 4) else { throw .ENOBUFS }
        if isDatagram {
            var length = UInt32(n)
            withUnsafeBytes(of: &length) { p.queue.append(contentsOf: $0) }
        }
        p.queue.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<n]))
        p.changed()
        return n
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer, peek: Bool, nonblocking: Bool) throws(Errno) -> Int {
        if queue.isEmpty {
            if readShut || peerGone { return 0 }
            if !isDatagram && peer == nil { throw .ENOTCONN }
            if nonblocking { throw .EAGAIN }
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
            wait()
            return 0
        }
        var start = 0, available = queue.count, consumed = 0
        if isDatagram {
            available = Int(queue.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
            start = 4
            consumed = 4 + available  // the rest of a cut datagram is lost, as on Linux
        }
        let n = min(buffer.count, available)
        queue.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<start + n])) }
        if !peek {
            queue.removeFirst(isDatagram ? consumed : n)
            changed()
        }
        return n
    }

    func shutdown(read: Bool, write: Bool) throws(Errno) {
        guard isConnected else { throw .ENOTCONN }
        if read { readShut = true }
        if write {
            writeShut = true
            peer?.peerGone = true
        }
        peer?.changed()
        changed()
    }

    /// The last descriptor closed.
    func close() {
        if let p = peer {
            p.peerGone = true
            p.peer = nil
            p.changed()
        }
        peer = nil
        for pending in backlog { pending.close() }
        backlog = []
        UnixSocket.named.removeAll { $0 === self }
        changed()
    }

    /// poll bits: POLLIN 1, POLLOUT 4, POLLHUP 16, POLLRDHUP 0x2000.
    var pollEvents: UInt32 {
        var bits: UInt32 = 0
        if !queue.isEmpty || !backlog.isEmpty || peerGone || readShut { bits |= 1 }
        if let p = peer, !writeShut, p.queue.count < UnixSocket.capacity { bits |= 4 }
        if peerGone { bits |= 0x2000 }
        if peerGone && (writeShut || peer == nil) { bits |= 16 }
        return bits
    }
}
