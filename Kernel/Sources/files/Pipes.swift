import NetStack
import GuestABI
import LinuxABI
import VFS

/// Kernel objects behind descriptors: pipes, eventfds and epoll instances. The VFS holds each
/// descriptor as a `.console(id)` device with id ≥ `firstID`, so descriptor numbers, dup and
/// close-on-exec stay in one place (the VFS's table); reads and writes come back here
/// through KernelHost. Descriptors referring to one object are counted here, since closing a
/// pipe end must be noticed when its last descriptor goes.
///
/// A call that has to wait (a read of an empty pipe, epoll_wait with nothing ready) parks the
/// thread with its syscall set to run again when it wakes, as Linux restarts syscalls; every
/// write or close wakes all such waiters to look again (few threads, so simple beats precise).
final class Pipe {
    static let capacity = 65536
    /// PIPE_BUF: writes up to this size are atomic.
    static let atomicLimit = 4096
    var bytes: [UInt8] = []
    var readers = 1
    var writers = 1
    /// Bytes ever written, and reads that made room in a pipe without room for PIPE_BUF
    /// bytes: when an edge-triggered reader or writer has news (as Linux wakes them).
    var written: UInt64 = 0
    var roomMade: UInt64 = 0

    /// Writable for poll: PIPE_BUF bytes fit (pipe(7): POLLOUT promises an atomic write).
    var hasRoomForAtomicWrite: Bool { Pipe.capacity - bytes.count >= Pipe.atomicLimit }
}

final class EventCounter {
    var value: UInt64
    /// Writes and reads so far (edge-triggered epoll's news).
    var changes: UInt64 = 0
    let semaphore: Bool
    init(value: UInt64, semaphore: Bool) {
        self.value = value
        self.semaphore = semaphore
    }
}

/// A descriptor an epoll instance watches. The descriptor is the process's that added it
/// (`owner`): after fork, a shared instance reports and forgets a process's own interests.
struct EpollInterest {
    var fd: Int32
    var owner: Int32 = Process.current.pid
    var events: UInt32
    var data: UInt64
    var disabled = false  // EPOLLONESHOT after it fired
    /// EPOLLET: the descriptor's edge stamp when it was last reported.
    var reportedStamp: UInt64? = nil

    static let EPOLLET: UInt32 = 1 << 31
    static let EPOLLONESHOT: UInt32 = 1 << 30
}

final class EpollInstance {
    var interests: [EpollInterest] = []
}

/// A signalfd: the signals its reads take.
final class SignalfdState {
    var mask: UInt64
    init(mask: UInt64) { self.mask = mask }
}

enum KernelObject {
    case pipeRead(Pipe)
    case pipeWrite(Pipe)
    case eventfd(EventCounter)
    case epoll(EpollInstance)
    case timer(KernelTimer)
    case signalfd(SignalfdState)
    case socket(Socket)
    case unixSocket(UnixSocket)
    case netlink(NetlinkSocket)
}

enum KernelObjects {
    static let firstID: UInt32 = 16
    nonisolated(unsafe) static var table: [KernelObject?] = []
    nonisolated(unsafe) static var references: [Int] = []

    static func object(_ id: UInt32) -> KernelObject? {
        guard id >= firstID, Int(id - firstID) < table.count else { return nil }
        return table[Int(id - firstID)]
    }

    /// The object behind a descriptor, if it is one.
    static func id(of fd: Int32) -> UInt32? {
        guard let type = try? SysIO.fs.nodeType(fd), case .device(.console(let id)) = type, id >= firstID else { return nil }
        return id
    }

    /// A new descriptor (lowest free) for a new object.
    static func install(_ object: KernelObject, flags: OpenFlags, cloexec: Bool) throws(Errno) -> Int32 {
        guard PhysicalMemory.canGrantAppObject else { throw .ENOMEM }
        let slot = table.firstIndex { $0 == nil } ?? table.count
        if slot == table.count {
            table.append(nil)
            references.append(0)
        }
        let id = firstID + UInt32(slot)
        var fd: Int32 = 0
        while SysIO.fs.isOpen(fd) {
            fd += 1
            guard Int(fd) < SysIO.fs.descriptorLimit.soft else { throw .EMFILE }
        }
        try SysIO.fs.installConsole(fd: fd, id: id, flags: flags)
        if cloexec { try SysIO.fs.setDescriptorFlags(fd, 1) }
        table[slot] = object
        references[slot] = 1
        return fd
    }

    static func retain(_ id: UInt32) { references[Int(id - firstID)] += 1 }

    /// One descriptor of the object went away; the last one closes that end.
    static func release(_ id: UInt32) {
        let slot = Int(id - firstID)
        references[slot] -= 1
        guard references[slot] == 0, let object = table[slot] else { return }
        switch object {
        case .pipeRead(let p): p.readers -= 1
        case .pipeWrite(let p): p.writers -= 1
        case .timer(let t): Timers.remove(t)
        case .socket(let s):
            Network.current.close(s.id, now: Clock.monotonicNanos)
            Network.flush()
        case .unixSocket(let u): u.close()
        case .netlink(let n): n.close()
        case .eventfd, .epoll, .signalfd: break
        }
        table[slot] = nil
        Scheduler.wakeRestartingWaiters()
    }

    // MARK: data through the VFS (KernelHost.consoleRead/Write)

    static func read(_ id: UInt32, into buffer: UnsafeMutableRawBufferPointer, nonblocking: Bool) throws(Errno) -> Int {
        switch object(id) {
        case .pipeRead(let p):
            if p.bytes.isEmpty {
                if p.writers == 0 { return 0 }
                if nonblocking { throw .EAGAIN }
                Scheduler.blockCurrentRestarting(deadline: 0)
                return 0
            }
            let n = min(buffer.count, p.bytes.count)
            if !p.hasRoomForAtomicWrite { p.roomMade &+= 1 }
            p.bytes.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            p.bytes.removeFirst(n)
            Scheduler.wakeRestartingWaiters()
            return n
        case .eventfd(let e):
            guard buffer.count >= 8 else { throw .EINVAL }
            if e.value == 0 {
                if nonblocking { throw .EAGAIN }
                Scheduler.blockCurrentRestarting(deadline: 0)
                return 0
            }
            let value = e.semaphore ? 1 : e.value
            e.value -= value
            e.changes &+= 1
            buffer.writeLE(value, at: 0)
            Scheduler.wakeRestartingWaiters()
            return 8
        case .timer(let t):
            guard buffer.count >= 8 else { throw .EINVAL }
            if t.expirations == 0 {
                if nonblocking { throw .EAGAIN }
                Scheduler.blockCurrentRestarting(deadline: 0)
                return 0
            }
            buffer.writeLE(t.expirations, at: 0)
            t.expirations = 0
            return 8
        case .signalfd(let state):
            // As many signals as whole signalfd_siginfo records fit.
            guard buffer.count >= SignalInfo.signalfdSize else { throw .EINVAL }
            var count = 0
            while count + SignalInfo.signalfdSize <= buffer.count,
                  let next = SysSignal.dequeue(Scheduler.current, from: state.mask) {
                let record = UnsafeMutableRawBufferPointer(rebasing: buffer[count..<count + SignalInfo.signalfdSize])
                try next.info.encodeSignalfd(signal: next.signal, into: record)
                count += SignalInfo.signalfdSize
            }
            if count == 0 {
                if nonblocking { throw .EAGAIN }
                Scheduler.blockCurrentRestarting(deadline: 0)
            }
            return count
        case .socket(let s):
            return try s.receive(into: buffer, peek: false, nonblocking: nonblocking)
        case .unixSocket(let u):
            return try u.receive(into: buffer, peek: false, nonblocking: nonblocking)
        case .netlink(let n):
            return try n.receive(into: buffer, peek: false, nonblocking: nonblocking).0
        case .pipeWrite, .epoll, nil:
            throw .EBADF
        }
    }

    static func write(_ id: UInt32, _ bytes: UnsafeRawBufferPointer, nonblocking: Bool) throws(Errno) -> Int {
        switch object(id) {
        case .pipeWrite(let p):
            if p.readers == 0 {
                Scheduler.current.pending.add(13, SysSignal.sentByUser)  // SIGPIPE
                throw .EPIPE
            }
            let room = Pipe.capacity - p.bytes.count
            // A write of at most PIPE_BUF bytes goes in whole or not at all (POSIX).
            if room == 0 || (bytes.count <= Pipe.atomicLimit && room < bytes.count) {
                if nonblocking { throw .EAGAIN }
                Scheduler.blockCurrentRestarting(deadline: 0)
                return 0
            }
            // Up to the room there is; a blocking write(2) goes on with the rest once there
            // is room again (BlockingWrites), as Linux's does.
            let n = min(room, bytes.count)
            guard PhysicalMemory.canGrow(count: p.bytes.count, capacity: p.bytes.capacity, by: n) else { throw .ENOMEM }
            p.bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<n]))
            p.written &+= UInt64(n)
            Scheduler.wakeRestartingWaiters()
            return n
        case .eventfd(let e):
            guard bytes.count >= 8 else { throw .EINVAL }
            let add = bytes.readLE(UInt64.self, at: 0)
            guard add != UInt64.max else { throw .EINVAL }
            if e.value > UInt64.max - 1 - add {
                if nonblocking { throw .EAGAIN }
                Scheduler.blockCurrentRestarting(deadline: 0)
                return 0
            }
            e.value += add
            e.changes &+= 1
            Scheduler.wakeRestartingWaiters()
            return 8
        case .socket(let s):
            return try s.send(bytes, nonblocking: nonblocking, signal: true)
        case .unixSocket(let u):
            return try u.send(bytes, nonblocking: nonblocking, signal: true)
        case .netlink(let n):
            return try n.send(bytes, to: nil)
        case .timer, .signalfd:
            throw .EINVAL
        case .pipeRead, .epoll, nil:
            throw .EBADF
        }
    }

    /// What edge-triggered epoll compares: a number that changes whenever the descriptor's
    /// state may have news (data written or read, an end closed, a timer fired, a signal
    /// sent). Files and the console never change readiness, so theirs is constant.
    static func edgeStamp(_ fd: Int32) -> UInt64 {
        if Terminal.owns(fd) { return Terminal.inputStamp }
        if Console.HostStdin.owns(fd) { return Console.HostStdin.stamp }
        guard let id = id(of: fd) else { return 0 }
        switch object(id) {
        case .pipeRead(let p): return p.written &+ (p.writers == 0 ? 1 << 62 : 0)
        case .pipeWrite(let p): return p.roomMade &+ (p.readers == 0 ? 1 << 62 : 0)
        case .eventfd(let e): return e.changes
        case .timer(let t): return t.fired
        case .signalfd: return SysSignal.sent
        case .socket: return Network.current.generation
        case .unixSocket(let u): return u.changes
        case .netlink(let n): return n.changes
        case .epoll, nil: return 0
        }
    }

    /// Readiness of a descriptor as poll/epoll report it (POLLIN 1, POLLOUT 4, POLLERR 8,
    /// POLLHUP 16; the EPOLL bits are the same numbers). `input`: whether the caller asks
    /// for POLLIN and would wait for it without a time limit: only then may the terminal wait
    /// for host input here (Terminal.readiness).
    static func readiness(_ fd: Int32, depth: Int = 0, input: Bool = true) -> UInt32? {
        guard let flags = try? SysIO.fs.statusFlags(fd) else { return nil }
        if Terminal.owns(fd) { return Terminal.readiness(input: input) & ((flags.isReadable ? 1 : 0) | (flags.isWritable ? 4 : 0)) }
        guard let id = id(of: fd) else {
            if flags.isReadable && Console.HostStdin.owns(fd) {
                return Console.HostStdin.readiness() | (flags.isWritable ? 4 : 0)
            }
            return (flags.isReadable ? 1 : 0) | (flags.isWritable ? 4 : 0)
        }
        switch object(id) {
        case .pipeRead(let p): return (p.bytes.isEmpty ? 0 : 1) | (p.writers == 0 ? 16 : 0)
        case .pipeWrite(let p): return (p.hasRoomForAtomicWrite ? 4 : 0) | (p.readers == 0 ? 8 : 0)
        case .eventfd(let e): return (e.value > 0 ? 1 : 0) | 4
        case .epoll(let ep):
            // epoll_ctl refuses loops and nesting deeper than Linux's EP_MAX_NESTS; the depth
            // bound here keeps even a bug there from recursing without end.
            guard depth < SysEvents.maxNesting + 1 else { return 0 }
            let me = Process.current.pid
            return ep.interests.contains { !$0.disabled && $0.owner == me && (readiness($0.fd, depth: depth + 1) ?? 0) & $0.events != 0 } ? 1 : 0
        case .timer(let t): return t.expirations > 0 ? 1 : 0
        case .signalfd(let state):
            let me = Scheduler.current
            return (me.pending.bits | SysSignal.processPending.bits) & state.mask != 0 ? 1 : 0
        case .socket(let s): return s.pollEvents
        case .unixSocket(let u): return u.pollEvents
        case .netlink(let n): return n.pollEvents
        case nil: return nil
        }
    }
}

/// pipe2, eventfd2 and the epoll calls.
enum SysEvents {
    static let O_NONBLOCK: UInt32 = 0o4000
    static let O_CLOEXEC: UInt32 = 0o2000000

    static func pipe2(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = a.uint32(1)
        guard flags & ~(O_NONBLOCK | O_CLOEXEC) == 0 else { throw .EINVAL }
        _ = try UserMemory.writable(a[0], 8)
        let pipe = Pipe()
        let nonblocking: OpenFlags = flags & O_NONBLOCK != 0 ? .O_NONBLOCK : []
        let r = try KernelObjects.install(.pipeRead(pipe), flags: OpenFlags.O_RDONLY.union(nonblocking), cloexec: flags & O_CLOEXEC != 0)
        let w = try KernelObjects.install(.pipeWrite(pipe), flags: OpenFlags.O_WRONLY.union(nonblocking), cloexec: flags & O_CLOEXEC != 0)
        try UserMemory.store(UInt32(bitPattern: r), a[0])
        try UserMemory.store(UInt32(bitPattern: w), a[0] + 4)
        return 0
    }

    static func pipe(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try pipe2(SyscallArguments(number: a.number, a[0], 0))
    }

    /// eventfd2(initval, flags): EFD_SEMAPHORE 1, EFD_NONBLOCK = O_NONBLOCK, EFD_CLOEXEC = O_CLOEXEC.
    static func eventfd2(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = a.uint32(1)
        guard flags & ~(1 | O_NONBLOCK | O_CLOEXEC) == 0 else { throw .EINVAL }
        let counter = EventCounter(value: UInt64(a.uint32(0)), semaphore: flags & 1 != 0)
        let nonblocking: OpenFlags = flags & O_NONBLOCK != 0 ? .O_NONBLOCK : []
        return UInt64(try KernelObjects.install(.eventfd(counter), flags: OpenFlags.O_RDWR.union(nonblocking), cloexec: flags & O_CLOEXEC != 0))
    }

    static func eventfd(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try eventfd2(SyscallArguments(number: a.number, a[0], 0))
    }

    static func epollCreate1(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.uint32(0) & ~O_CLOEXEC == 0 else { throw .EINVAL }
        return UInt64(try KernelObjects.install(.epoll(EpollInstance()), flags: .O_RDONLY, cloexec: a.uint32(0) != 0))
    }

    static func epollCreate(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(0) > 0 else { throw .EINVAL }
        return UInt64(try KernelObjects.install(.epoll(EpollInstance()), flags: .O_RDONLY, cloexec: false))
    }

    /// Descriptor `fd` was closed (or replaced by dup2/dup3): no epoll instance watches it any
    /// more, so the number can be added again once reused. (Linux drops an interest when the
    /// last descriptor of its open file closes; descriptors here are counted per number, so a
    /// dup of a watched descriptor does not keep the interest alive.)
    static func forget(_ fd: Int32) {
        let me = Process.current.pid
        for case .epoll(let ep)? in KernelObjects.table where ep.interests.contains(where: { $0.fd == fd && $0.owner == me }) {
            ep.interests.removeAll { $0.fd == fd && $0.owner == me }
        }
    }

    /// Linux's EP_MAX_NESTS: epoll instances watching epoll instances, at most this deep.
    static let maxNesting = 4

    /// The epoll instance behind `fd`, if it is one.
    private static func epoll(_ fd: Int32) -> EpollInstance? {
        guard let id = KernelObjects.id(of: fd), case .epoll(let ep) = KernelObjects.object(id) else { return nil }
        return ep
    }

    /// Whether watching epoll `target` from `ep` would make a loop (`ep` reachable from
    /// `target`) or a chain deeper than `maxNesting`: ELOOP, as on Linux.
    private static func wouldLoop(watching target: EpollInstance, from ep: EpollInstance, depth: Int = 1) -> Bool {
        if target === ep || depth > maxNesting { return true }
        for interest in target.interests {
            if let inner = epoll(interest.fd), wouldLoop(watching: inner, from: ep, depth: depth + 1) { return true }
        }
        return false
    }

    private static func instance(_ fd: Int32) throws(Errno) -> EpollInstance {
        guard let ep = epoll(fd) else { throw SysIO.fs.isOpen(fd) ? .EINVAL : .EBADF }
        return ep
    }

    /// epoll_ctl(epfd, op, fd, struct epoll_event *): ADD 1, DEL 2, MOD 3. struct epoll_event
    /// is packed on x86-64: events u32 @0, data u64 @4.
    static func epollCtl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let ep = try instance(a.fd(0))
        let fd = a.fd(2)
        guard SysIO.fs.isOpen(fd) else { throw .EBADF }
        guard fd != a.fd(0) else { throw .EINVAL }
        // Regular files and directories cannot be polled that way (Linux: EPERM).
        switch try SysIO.fs.nodeType(fd) {
        case .regular, .directory, .generated: throw .EPERM
        default: break
        }
        let me = Process.current.pid
        let index = ep.interests.firstIndex { $0.fd == fd && $0.owner == me }
        switch a.int32(1) {
        case 1, 3:
            let event = try UserMemory.readable(a[3], 12)
            let interest = EpollInterest(fd: fd, events: event.readLE(UInt32.self, at: 0) | 8 | 16,
                                         data: event.readLE(UInt64.self, at: 4))
            if a.int32(1) == 1 {
                guard index == nil else { throw .EEXIST }
                if let target = epoll(fd), wouldLoop(watching: target, from: ep) { throw .ELOOP }
                guard PhysicalMemory.canGrow(count: ep.interests.count, capacity: ep.interests.capacity, by: 1,
                                             stride: MemoryLayout<EpollInterest>.stride) else { throw .ENOMEM }
                ep.interests.append(interest)
            } else {
                guard let i = index else { throw .ENOENT }
                ep.interests[i] = interest
            }
        case 2:
            guard let i = index else { throw .ENOENT }
            ep.interests.remove(at: i)
        default:
            throw .EINVAL
        }
        return 0
    }

    static func epollWait(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let ms = Int64(a.int32(3))
        return try wait(a.fd(0), events: a[1], max: a.int32(2), timeout: ms < 0 ? nil : UInt64(ms) * 1_000_000)
    }

    /// epoll_pwait: epoll_wait with a temporary signal mask.
    static func epollPwait(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try SysSignal.applyTemporaryMask(a[4], size: a[5])
        return try epollWait(a)
    }

    /// epoll_pwait2: the timeout is a timespec.
    static func epollPwait2(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let timeout = try SysTime.timeout(a[3])
        try SysSignal.applyTemporaryMask(a[4], size: a[5])
        return try wait(a.fd(0), events: a[1], max: a.int32(2), timeout: timeout)
    }

    /// Level-triggered interests are reported while ready; edge-triggered ones (EPOLLET) when
    /// ready and something happened since they were last reported; EPOLLONESHOT disables an
    /// interest after it fires (EPOLL_CTL_MOD arms it again).
    private static func wait(_ epfd: Int32, events: UInt64, max: Int32, timeout: UInt64?) throws(Errno) -> UInt64 {
        let ep = try instance(epfd)
        guard max > 0 && max <= 65536 else { throw .EINVAL }
        Network.poll()
        let out = try UserMemory.writable(events, Int(max) * 12)
        var count = 0
        let me = Process.current.pid
        for i in ep.interests.indices where count < Int(max) && !ep.interests[i].disabled && ep.interests[i].owner == me {
            let interest = ep.interests[i]
            guard let ready = KernelObjects.readiness(interest.fd, input: interest.events & 1 != 0 && timeout == nil) else { continue }
            let fired = ready & (interest.events | 8 | 16)  // EPOLLERR, EPOLLHUP: always
            guard fired != 0 else { continue }
            if interest.events & EpollInterest.EPOLLET != 0 {
                let stamp = KernelObjects.edgeStamp(interest.fd)
                guard interest.reportedStamp != stamp else { continue }
                ep.interests[i].reportedStamp = stamp
            }
            out.writeLE(fired, at: count * 12)
            out.writeLE(interest.data, at: count * 12 + 4)
            count += 1
            if interest.events & EpollInterest.EPOLLONESHOT != 0 { ep.interests[i].disabled = true }
        }
        if count == 0 && timeout != 0 {
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
            Scheduler.blockCurrentRestarting(deadline: Scheduler.restartableDeadline(timeout))
        }
        return UInt64(count)
    }
}

/// signalfd and signalfd4: a descriptor whose reads take pending signals of its mask (which the
/// program normally blocks) as signalfd_siginfo records; poll/epoll see it readable while one
/// is pending for the polling thread.
enum SysSignalfd {
    static func signalfd4(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = a.uint32(3)
        guard a[2] == 8, flags & ~(SysEvents.O_NONBLOCK | SysEvents.O_CLOEXEC) == 0 else { throw .EINVAL }
        let mask = try UserMemory.load(UInt64.self, a[1]) & ~(SysSignal.bit(SysSignal.SIGKILL) | SysSignal.bit(SysSignal.SIGSTOP))
        let fd = a.fd(0)
        if fd != -1 {
            guard let id = KernelObjects.id(of: fd), case .signalfd(let state) = KernelObjects.object(id) else {
                throw SysIO.fs.isOpen(fd) ? .EINVAL : .EBADF
            }
            state.mask = mask
            return UInt64(fd)
        }
        let nonblocking: OpenFlags = flags & SysEvents.O_NONBLOCK != 0 ? .O_NONBLOCK : []
        return UInt64(try KernelObjects.install(.signalfd(SignalfdState(mask: mask)), flags: OpenFlags.O_RDWR.union(nonblocking),
                                                cloexec: flags & SysEvents.O_CLOEXEC != 0))
    }

    static func signalfd(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try signalfd4(SyscallArguments(number: a.number, a[0], a[1], a[2], 0))
    }
}
