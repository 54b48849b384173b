import LinuxABI
import VFS

/// AF_UNIX sockets inside the VM: stream (and seqpacket, treated as stream) and datagram,
/// from socketpair or by name (bind/listen/connect/accept). Names live in a kernel table, not
/// in the file system (no socket file appears; abstract names work the same way), so
/// connecting to a name nobody bound is ENOENT — what a program probing for a daemon (glibc's
/// nscd) expects. Descriptors pass between processes (SCM_RIGHTS, `PassedDescriptor`); with
/// O_ASYNC and F_SETOWN, data arriving raises SIGIO at the owner.
///
/// Each socket owns its receive queue; a writer appends to its peer's. Waiting works as for
/// pipes: the call parks and runs again after any socket or pipe changed.
///
/// Descriptors in flight ride with the bytes of the send that carried them (`rights`): a
/// receive that reaches the first of those bytes takes them and ends with that send's last
/// byte, so two sends' descriptors never arrive in one receive — Linux's rule for stream
/// sockets; a datagram carries its own. A receive without room for them (read, recv, or a
/// short msg_control) closes them (MSG_CTRUNC). Not done: Linux's collection of unreachable
/// sockets — a socket sent over itself and never received stays open until the VM ends.
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
    /// Descriptors in flight in `queue`, in queue order: each covers one send's bytes.
    var rights: [RightsInFlight] = []
    let signalDrivenIO = SignalDrivenIO()

    init(type: Int32) throws(Errno) {
        guard type == SocketConstants.SOCK_STREAM || type == SocketConstants.SOCK_DGRAM
            || type == SocketConstants.SOCK_SEQPACKET else { throw .ESOCKTNOSUPPORT }
        self.type = type
    }

    private var isDatagram: Bool { type == SocketConstants.SOCK_DGRAM }
    /// A byte stream (SOCK_STREAM): sends may be split, records are not kept.
    var isStream: Bool { type == SocketConstants.SOCK_STREAM }

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
        let (n, _) = try send(bytes, rights: [], nonblocking: nonblocking, signal: signal)
        return n
    }

    /// A send carrying `passed` descriptors: the bytes queued, and whether the descriptors
    /// went with them (else they are still the caller's: nothing was queued).
    func send(_ bytes: UnsafeRawBufferPointer, rights passed: [PassedDescriptor], nonblocking: Bool,
              signal: Bool) throws(Errno) -> (count: Int, tookRights: Bool) {
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
            return (0, false)
        }
        let n = isDatagram ? bytes.count : min(room, bytes.count)
        guard PhysicalMemory.canGrow(count: p.queue.count, capacity: p.queue.capacity, by: n + 4) else { throw .ENOBUFS }
        let start = p.queue.count
        if isDatagram {
            var length = UInt32(n)
            withUnsafeBytes(of: &length) { p.queue.append(contentsOf: $0) }
        }
        p.queue.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<n]))
        // A stream send of no bytes carries no descriptors (there is no byte to ride on).
        let took = !passed.isEmpty && p.queue.count > start
        if took { p.rights.append(RightsInFlight(start: start, end: p.queue.count, descriptors: passed)) }
        p.changed()
        p.signalDrivenIO.dataArrived()
        return (n, took)
    }

    /// A receive with no room for descriptors (read, recv): any that arrive are closed.
    func receive(into buffer: UnsafeMutableRawBufferPointer, peek: Bool, nonblocking: Bool) throws(Errno) -> Int {
        let (n, passed) = try receiveWithRights(into: buffer, peek: peek, nonblocking: nonblocking)
        for d in passed { d.drop() }
        return n
    }

    /// A receive and the descriptors that came with its bytes (the caller's to install or
    /// drop; with `peek`, copies: the originals stay in flight).
    func receiveWithRights(into buffer: UnsafeMutableRawBufferPointer, peek: Bool,
                           nonblocking: Bool) throws(Errno) -> (count: Int, rights: [PassedDescriptor]) {
        if queue.isEmpty {
            if readShut || peerGone { return (0, []) }
            if !isDatagram && peer == nil { throw .ENOTCONN }
            if nonblocking { throw .EAGAIN }
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
            wait()
            return (0, [])
        }
        var start = 0, available = queue.count, consumed = 0
        if isDatagram {
            available = Int(queue.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
            start = 4
            consumed = 4 + available  // the rest of a cut datagram is lost, as on Linux
        }
        var n = min(buffer.count, available)
        var passed: [PassedDescriptor] = []
        // The first send in flight whose bytes this receive reaches (a datagram: its own).
        if let first = rights.first, isDatagram ? first.start == 0 : first.start < n {
            if !isDatagram { n = min(n, first.end) }
            if peek {
                passed = first.descriptors.map { $0.copy() }
            } else {
                passed = first.descriptors
                rights.removeFirst()
            }
        }
        queue.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[start..<start + n])) }
        if !peek {
            let removed = isDatagram ? consumed : n
            queue.removeFirst(removed)
            for i in rights.indices {
                rights[i].start -= removed
                rights[i].end -= removed
            }
            changed()
        }
        return (n, passed)
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
        // Descriptors nobody received close with the queue (which may close other sockets).
        let undelivered = rights
        rights = []
        queue = []
        for record in undelivered {
            for d in record.descriptors { d.drop() }
        }
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

/// The descriptors one send put in flight, over bytes start..<end of the receiver's queue.
struct RightsInFlight {
    var start: Int
    var end: Int
    var descriptors: [PassedDescriptor]
}

/// A descriptor in flight (SCM_RIGHTS): a reference to its open file description (the VFS's)
/// and, when that is one of the kernel's objects (a pipe, a socket…), one of the object's
/// references, so the sender closing its descriptor closes neither. It must be installed or
/// dropped exactly once.
struct PassedDescriptor {
    let description: HeldDescription
    let object: UInt32?

    /// References on the running process's `fd`: EBADF if it is not open.
    static func take(_ fd: Int32) throws(Errno) -> PassedDescriptor {
        let object = KernelObjects.id(of: fd)
        let held = try SysIO.fs.holdDescription(fd)
        if let object { KernelObjects.retain(object) }
        return PassedDescriptor(description: held, object: object)
    }

    /// Another reference to the same description and object.
    func copy() -> PassedDescriptor {
        if let object { KernelObjects.retain(object) }
        return PassedDescriptor(description: SysIO.fs.holdAgain(description), object: object)
    }

    /// The lowest free descriptor of the running process; EMFILE leaves it the caller's.
    func install(closeOnExec: Bool) throws(Errno) -> Int32 {
        try SysIO.fs.installHeld(description, closeOnExec: closeOnExec)
    }

    /// Closes the references (the last one closes the file or the object's end).
    func drop() {
        SysLocks.dropping(description)
        SysIO.fs.dropHeld(description)
        if let object { KernelObjects.release(object) }
    }
}

/// O_ASYNC and F_SETOWN of a socket: whom SIGIO goes to when data arrives. Linux keeps both
/// in the open file description; here they are the socket's (one description per socket is
/// how programs use them: nginx sets them once on each channel end).
final class SignalDrivenIO {
    var enabled = false
    /// F_SETOWN's argument: a pid (> 0), a process group (< 0), or 0 for nobody.
    var owner: Int32 = 0

    func dataArrived() {
        guard enabled, owner != 0 else { return }
        if owner > 0 {
            if let p = Processes.find(owner) { SysSignal.raise(on: p, 29, SysSignal.sentByKernel) }  // SIGIO
            return
        }
        for p in Processes.all where !p.isZombie && p.processGroup == -owner {
            SysSignal.raise(on: p, 29, SysSignal.sentByKernel)
        }
    }
}
