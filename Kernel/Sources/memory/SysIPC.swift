import GuestABI
import LinuxABI
import VFS

/// What a System V object's ipc64_perm holds: the key, owner, creator and mode.
struct IPCPermissions {
    let key: Int32
    var uid: UInt32, gid: UInt32
    let creatorUID: UInt32, creatorGID: UInt32
    var mode: UInt32

    init(key: Int32, mode: UInt32) {
        let c = Process.current.credentials
        self.key = key
        uid = c.effectiveUID
        gid = c.effectiveGID
        creatorUID = c.effectiveUID
        creatorGID = c.effectiveGID
        self.mode = mode & 0o777
    }

    /// Whether the caller may read (`0o4`) or write (`0o2`): root always; else the owner's,
    /// creator's, group's or others' bits, as Linux's ipcperms.
    func allows(_ access: UInt32) -> Bool {
        let c = Process.current.credentials
        if c.effectiveUID == 0 { return true }
        let bits: UInt32
        if c.effectiveUID == uid || c.effectiveUID == creatorUID { bits = mode >> 6 }
        else if c.effectiveGID == gid || c.effectiveGID == creatorGID || c.supplementaryGroups.contains(gid) { bits = mode >> 3 }
        else { bits = mode }
        return bits & access == access
    }

    /// IPC_SET and IPC_RMID: the owner, the creator or root (EPERM).
    func checkOwner() throws(Errno) {
        let uid = Process.current.credentials.effectiveUID
        guard uid == 0 || uid == self.uid || uid == creatorUID else { throw .EPERM }
    }

    /// struct ipc64_perm (48 bytes): key @0, uid @4, gid @8, cuid @12, cgid @16, mode @20,
    /// seq u16 @24.
    func encode(_ out: UnsafeMutableRawBufferPointer, id: Int32) {
        out.writeLE(key, at: 0)
        out.writeLE(uid, at: 4)
        out.writeLE(gid, at: 8)
        out.writeLE(creatorUID, at: 12)
        out.writeLE(creatorGID, at: 16)
        out.writeLE(mode, at: 20)
        out.writeLE(UInt16(truncatingIfNeeded: id / 32768), at: 24)
    }

    /// IPC_SET's uid, gid and permission bits from a struct ipc64_perm.
    mutating func set(from buffer: UnsafeRawBufferPointer) {
        uid = buffer.readLE(UInt32.self, at: 4)
        gid = buffer.readLE(UInt32.self, at: 8)
        mode = buffer.readLE(UInt32.self, at: 20) & 0o777
    }
}

final class SysVMessageQueue {
    let id: Int32
    var permissions: IPCPermissions
    var queue = MessageQueue()
    var sendTime: Int64 = 0, receiveTime: Int64 = 0, changeTime: Int64
    var lastSender: Int32 = 0, lastReceiver: Int32 = 0

    init(id: Int32, permissions: IPCPermissions, time: Int64) {
        self.id = id
        self.permissions = permissions
        changeTime = time
    }
}

final class SysVSemaphoreSet {
    let id: Int32
    var permissions: IPCPermissions
    var set: SemaphoreSet
    var operationTime: Int64 = 0, changeTime: Int64

    init(id: Int32, permissions: IPCPermissions, count: Int, time: Int64) {
        self.id = id
        self.permissions = permissions
        set = SemaphoreSet(count: count)
        changeTime = time
    }
}

/// System V message queues and semaphore sets (msgget/msgsnd/msgrcv/msgctl,
/// semget/semop/semtimedop/semctl), one namespace per VM shared by every process, as
/// SysShm's segments. The rules of the queue and of semop are LinuxABI's (SysVIPC.swift);
/// here are ids, permissions, the user structures and waiting.
///
/// A blocked msgsnd, msgrcv or semop is a restartable wait keyed by its object
/// (`waitKey`): a change to that object makes its waiters run the call again; a signal
/// ends the wait with EINTR; IPC_RMID ends it with EIDRM. SEM_UNDO adjustments belong to
/// a process (not inherited by fork, kept by execve, as on Linux) and are applied when it
/// exits.
enum SysIPC {
    nonisolated(unsafe) static var queues: [SysVMessageQueue] = []
    nonisolated(unsafe) static var semaphoreSets: [SysVSemaphoreSet] = []
    nonisolated(unsafe) static var sequence: Int32 = 0
    /// SEM_UNDO adjustments: per process and set, the value each semaphore gets back.
    nonisolated(unsafe) static var undo: [(pid: Int32, set: Int32, adjustments: [Int32])] = []

    private static var now: Int64 { Int64(Clock.realtimeNanos / 1_000_000_000) }

    /// Linux's ids: an index and a sequence number (index + 32768 * sequence).
    private static func newID(taken: (Int32) -> Bool) -> Int32 {
        sequence = (sequence &+ 1) & 0x7fff
        var index: Int32 = 0
        while taken(index) { index += 1 }
        return index + 32768 * sequence
    }

    /// The key a thread waiting on object `id` has (space UInt64.max: no address space has
    /// that serial, so no futex has this key). `kind` 0: a queue, 1: a semaphore set;
    /// semaphore waits carry the semaphore number and whether they wait for zero, for
    /// GETNCNT/GETZCNT.
    static func waitKey(_ kind: UInt64, _ id: Int32, number: Int = 0, forZero: Bool = false) -> FutexKey {
        FutexKey(space: UInt64.max, address: kind << 62 | (forZero ? 1 << 61 : 0) | UInt64(number) << 32 | UInt64(UInt32(bitPattern: id)))
    }

    private static func isWaitKey(_ key: FutexKey, kind: UInt64, id: Int32) -> Bool {
        key.space == UInt64.max && key.address >> 62 == kind && UInt32(truncatingIfNeeded: key.address) == UInt32(bitPattern: id)
    }

    /// The threads waiting on object `id` of `kind`.
    private static func waiters(kind: UInt64, id: Int32) -> [Thread] {
        Scheduler.threads.filter { $0.state == .waiting && $0.restarting && isWaitKey($0.futexKey, kind: kind, id: id) }
    }

    /// Object `id` changed: its waiters run their call again.
    private static func rerunWaiters(kind: UInt64, id: Int32) {
        for t in waiters(kind: kind, id: id) { SysThread.rerun(t) }
    }

    /// Object `id` was removed: its waiters' calls fail with EIDRM.
    private static func failWaiters(kind: UInt64, id: Int32) {
        for t in waiters(kind: kind, id: id) { Scheduler.wake(t, result: Errno.EIDRM.negatedReturn) }
    }

    /// Waits (restartable) for object `id` to change; `timeout` nanoseconds at most (nil:
    /// none), then `timeoutResult`.
    private static func wait(_ key: FutexKey, timeout: UInt64?, timeoutResult: Errno) throws(Errno) {
        let deadline = Scheduler.restartableDeadline(timeout)
        if deadline != 0 && deadline <= Clock.monotonicNanos { throw timeoutResult }
        Scheduler.current.futexKey = key
        Scheduler.current.futexBitset = 0  // no FUTEX_WAKE ends it
        Scheduler.blockCurrentRestarting(deadline: deadline, timeoutResult: timeoutResult.negatedReturn)
    }

    // MARK: message queues

    static func queue(_ id: Int32) -> SysVMessageQueue? {
        for q in queues where q.id == id { return q }
        return nil
    }

    /// msgget(key, flags): the queue of `key` (IPC_PRIVATE: a new one), made with
    /// IPC_CREAT; ENOENT without, EEXIST with IPC_EXCL, EACCES if its mode denies what the
    /// flags' permission bits ask, ENOSPC beyond MSGMNI queues.
    static func msgget(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let key = a.int32(0), flags = a.int32(1)
        if key != SysVIPC.IPC_PRIVATE, let existing = queues.first(where: { $0.permissions.key == key }) {
            if flags & SysVIPC.IPC_CREAT != 0 && flags & SysVIPC.IPC_EXCL != 0 { throw .EEXIST }
            guard existing.permissions.allows(requested(flags)) else { throw .EACCES }
            return UInt64(existing.id)
        }
        guard key == SysVIPC.IPC_PRIVATE || flags & SysVIPC.IPC_CREAT != 0 else { throw .ENOENT }
        guard queues.count < SysVIPC.maxQueues else { throw .ENOSPC }
        guard PhysicalMemory.canGrantAppObject else { throw .ENOMEM }
        let id = newID { index in queues.contains { $0.id & 0x7fff == index } }
        queues.append(SysVMessageQueue(id: id, permissions: IPCPermissions(key: key, mode: UInt32(flags & 0o777)), time: now))
        return UInt64(id)
    }

    /// The access an msgget/semget of an existing object asks for: any class's bits of the
    /// flags' mode, as Linux's ipcperms folds them.
    private static func requested(_ flags: Int32) -> UInt32 {
        UInt32(((flags >> 6) | (flags >> 3) | flags) & 7)
    }

    /// msgsnd(id, msgp, size, flags): msgp holds a long mtype (> 0, else EINVAL) then the
    /// text. EINVAL for a size beyond MSGMAX; waits for room (EAGAIN with IPC_NOWAIT).
    static func msgsnd(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(0) >= 0, let q = queue(a.int32(0)) else { throw .EINVAL }
        let size = Int64(bitPattern: a[2]), flags = a.int32(3)
        guard size >= 0, size <= Int64(SysVIPC.maxMessageSize) else { throw .EINVAL }
        let type = try UserMemory.load(Int64.self, a[1])
        guard type > 0 else { throw .EINVAL }
        guard q.permissions.allows(2) else { throw .EACCES }
        let text = Array(try UserMemory.readable(a[1] &+ 8, Int(size)))
        Scheduler.current.futexKey = .none
        guard q.queue.hasRoom(for: text.count) else {
            if flags & SysVIPC.IPC_NOWAIT != 0 { throw .EAGAIN }
            try wait(waitKey(0, q.id), timeout: nil, timeoutResult: .EAGAIN)
            return 0
        }
        guard PhysicalMemory.canGrantApp(bytes: text.count + 64) else { throw .ENOMEM }
        q.queue.append(MessageQueue.Message(type: type, text: text))
        q.sendTime = now
        q.lastSender = Process.current.pid
        rerunWaiters(kind: 0, id: q.id)
        return 0
    }

    /// msgrcv(id, msgp, size, msgtyp, flags): the message `msgtyp` selects (see
    /// `MessageQueue.select`) into msgp (mtype, then at most `size` bytes of text); returns
    /// the text's length. E2BIG for a longer one without MSG_NOERROR; waits for one
    /// (ENOMSG with IPC_NOWAIT). MSG_COPY (a checkpointing interface) is not supported: ENOSYS.
    static func msgrcv(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(0) >= 0, let q = queue(a.int32(0)) else { throw .EINVAL }
        let size = Int64(bitPattern: a[2]), type = Int64(bitPattern: a[3]), flags = a.int32(4)
        guard size >= 0 else { throw .EINVAL }
        if flags & SysVIPC.MSG_COPY != 0 { throw .ENOSYS }
        guard q.permissions.allows(4) else { throw .EACCES }
        let capacity = Int(min(size, Int64(SysVIPC.maxMessageSize)))
        Scheduler.current.futexKey = .none
        guard let index = q.queue.select(type: type, except: flags & SysVIPC.MSG_EXCEPT != 0) else {
            if flags & SysVIPC.IPC_NOWAIT != 0 { throw .ENOMSG }
            try wait(waitKey(0, q.id), timeout: nil, timeoutResult: .ENOMSG)
            return 0
        }
        // Only what is copied must be writable (the buffer may be shorter than `size`).
        let length = q.queue.messages[index].text.count
        if length > capacity && flags & SysVIPC.MSG_NOERROR == 0 { throw .E2BIG }
        let out = try UserMemory.writable(a[1], 8 + min(length, capacity))
        let message = try q.queue.take(index, capacity: capacity, noError: flags & SysVIPC.MSG_NOERROR != 0)
        out.writeLE(message.type, at: 0)
        for (i, byte) in message.text.enumerated() { out[8 + i] = byte }
        q.receiveTime = now
        q.lastReceiver = Process.current.pid
        rerunWaiters(kind: 0, id: q.id)
        return UInt64(message.text.count)
    }

    /// msgctl(id, cmd, buf): IPC_STAT/MSG_STAT (struct msqid64_ds, 120 bytes), IPC_SET
    /// (owner, mode, msg_qbytes: raising it beyond MSGMNB needs root), IPC_RMID (waiters get
    /// EIDRM), IPC_INFO/MSG_INFO (struct msginfo).
    static func msgctl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let command = a.int32(1) & ~SysVIPC.IPC_64
        if command == SysVIPC.IPC_INFO || command == SysVIPC.MSG_INFO {
            // struct msginfo: msgpool msgmap msgmax msgmnb msgmni msgssz msgtql (int), msgseg (u16).
            let out = try UserMemory.writable(a[2], 32)
            out.initializeMemory(as: UInt8.self, repeating: 0)
            let info = command == SysVIPC.MSG_INFO
            out.writeLE(Int32(info ? queues.count : SysVIPC.maxQueues * SysVIPC.defaultQueueBytes / 1024), at: 0)
            out.writeLE(Int32(info ? queues.reduce(0) { $0 + $1.queue.messages.count } : SysVIPC.defaultQueueBytes), at: 4)
            out.writeLE(Int32(SysVIPC.maxMessageSize), at: 8)
            out.writeLE(Int32(SysVIPC.defaultQueueBytes), at: 12)
            out.writeLE(Int32(SysVIPC.maxQueues), at: 16)
            out.writeLE(Int32(16), at: 20)
            out.writeLE(Int32(info ? queues.reduce(0) { $0 + $1.queue.byteCount } : SysVIPC.defaultQueueBytes), at: 24)
            out.writeLE(UInt16(0xffff), at: 28)
            return UInt64(max(queues.count - 1, 0))
        }
        let byIndex = command == SysVIPC.MSG_STAT || command == SysVIPC.MSG_STAT_ANY
        guard a.int32(0) >= 0, let q = byIndex ? (Int(a.int32(0)) < queues.count ? queues[Int(a.int32(0))] : nil) : queue(a.int32(0))
        else { throw .EINVAL }
        switch command {
        case SysVIPC.IPC_STAT, SysVIPC.MSG_STAT, SysVIPC.MSG_STAT_ANY:
            guard command == SysVIPC.MSG_STAT_ANY || q.permissions.allows(4) else { throw .EACCES }
            let out = try UserMemory.writable(a[2], 120)
            out.initializeMemory(as: UInt8.self, repeating: 0)
            q.permissions.encode(out, id: q.id)
            out.writeLE(q.sendTime, at: 48)
            out.writeLE(q.receiveTime, at: 56)
            out.writeLE(q.changeTime, at: 64)
            out.writeLE(UInt64(q.queue.byteCount), at: 72)
            out.writeLE(UInt64(q.queue.messages.count), at: 80)
            out.writeLE(UInt64(q.queue.byteLimit), at: 88)
            out.writeLE(q.lastSender, at: 96)
            out.writeLE(q.lastReceiver, at: 100)
            return byIndex ? UInt64(q.id) : 0
        case SysVIPC.IPC_SET:
            let buffer = try UserMemory.readable(a[2], 120)
            try q.permissions.checkOwner()
            let limit = buffer.readLE(UInt64.self, at: 88)
            guard limit <= UInt64(Int32.max) else { throw .EINVAL }
            if limit > UInt64(SysVIPC.defaultQueueBytes) && Process.current.credentials.effectiveUID != 0 { throw .EPERM }
            q.permissions.set(from: buffer)
            q.queue.byteLimit = Int(limit)
            q.changeTime = now
            rerunWaiters(kind: 0, id: q.id)  // more room, perhaps
            return 0
        case SysVIPC.IPC_RMID:
            try q.permissions.checkOwner()
            queues.removeAll { $0 === q }
            failWaiters(kind: 0, id: q.id)
            return 0
        default:
            throw .EINVAL
        }
    }

    // MARK: semaphores

    static func semaphoreSet(_ id: Int32) -> SysVSemaphoreSet? {
        for s in semaphoreSets where s.id == id { return s }
        return nil
    }

    /// semget(key, count, flags): as msgget; `count` semaphores (1…SEMMSL) for a new set,
    /// at most the set's for an existing one (EINVAL).
    static func semget(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let key = a.int32(0), count = a.int32(1), flags = a.int32(2)
        guard count >= 0, Int(count) <= SysVIPC.maxSemaphoresPerSet else { throw .EINVAL }
        if key != SysVIPC.IPC_PRIVATE, let existing = semaphoreSets.first(where: { $0.permissions.key == key }) {
            if flags & SysVIPC.IPC_CREAT != 0 && flags & SysVIPC.IPC_EXCL != 0 { throw .EEXIST }
            guard Int(count) <= existing.set.values.count else { throw .EINVAL }
            guard existing.permissions.allows(requested(flags)) else { throw .EACCES }
            return UInt64(existing.id)
        }
        guard key == SysVIPC.IPC_PRIVATE || flags & SysVIPC.IPC_CREAT != 0 else { throw .ENOENT }
        guard count > 0 else { throw .EINVAL }
        guard semaphoreSets.count < SysVIPC.maxSemaphoreSets else { throw .ENOSPC }
        guard PhysicalMemory.canGrantApp(bytes: Int(count) * 8 + 256) else { throw .ENOMEM }
        let id = newID { index in semaphoreSets.contains { $0.id & 0x7fff == index } }
        semaphoreSets.append(SysVSemaphoreSet(id: id, permissions: IPCPermissions(key: key, mode: UInt32(flags & 0o777)),
                                              count: Int(count), time: now))
        return UInt64(id)
    }

    static func semop(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try semaphoreOperations(a[0], a[1], a[2], timeout: nil)
    }

    /// semtimedop: as semop, waiting at most the relative `timeout` (EAGAIN after it).
    static func semtimedop(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try semaphoreOperations(a[0], a[1], a[2], timeout: SysTime.timeout(a[3]))
    }

    /// semop(id, sops, nsops): all operations at once or none (`SemaphoreSet.apply`);
    /// E2BIG beyond SEMOPM operations, EINVAL for none; EACCES without write permission (read
    /// for waits for zero alone); waits until the set changes when one cannot proceed.
    private static func semaphoreOperations(_ idArgument: UInt64, _ address: UInt64, _ count: UInt64,
                                            timeout: UInt64?) throws(Errno) -> UInt64 {
        let id = Int32(truncatingIfNeeded: idArgument)
        guard count >= 1 else { throw .EINVAL }
        guard count <= UInt64(SysVIPC.maxOperations) else { throw .E2BIG }
        guard id >= 0, let s = semaphoreSet(id) else { throw .EINVAL }
        let operations = try SemaphoreOperation.decode(UserMemory.readable(address, Int(count) * SemaphoreOperation.size),
                                                       count: Int(count))
        let alters = operations.contains { $0.operation != 0 }
        guard s.permissions.allows(alters ? 2 : 4) else { throw .EACCES }
        let pid = Process.current.pid
        Scheduler.current.futexKey = .none
        let undoIndex = undo.firstIndex { $0.pid == pid && $0.set == id }
        var adjustments = undoIndex.map { undo[$0].adjustments } ?? []
        switch try s.set.apply(operations, pid: pid, adjustments: &adjustments) {
        case .done:
            s.operationTime = now
            if operations.contains(where: { $0.undo }) {
                if let undoIndex { undo[undoIndex].adjustments = adjustments } else { undo.append((pid, id, adjustments)) }
            }
            if alters { rerunWaiters(kind: 1, id: id) }
            return 0
        case .wait(let number, let forZero):
            try wait(waitKey(1, id, number: number, forZero: forZero), timeout: timeout, timeoutResult: .EAGAIN)
            return 0
        }
    }

    /// How many threads wait for semaphore `number` of set `id` to grow (or reach zero).
    private static func waitingCount(_ id: Int32, _ number: Int, forZero: Bool) -> Int {
        let key = waitKey(1, id, number: number, forZero: forZero)
        return Scheduler.threads.filter { $0.state == .waiting && $0.restarting && $0.futexKey == key }.count
    }

    /// A value was set by SETVAL/SETALL: every process's adjustment of it is dropped.
    private static func dropAdjustments(_ id: Int32, _ number: Int?) {
        for i in undo.indices where undo[i].set == id {
            for n in undo[i].adjustments.indices where number == nil || number == n { undo[i].adjustments[n] = 0 }
        }
    }

    /// semctl(id, number, cmd, arg): GETVAL, SETVAL (arg's low 32 bits; ERANGE past
    /// SEMVMX), GETALL/SETALL (arg: an array of unsigned short), GETPID, GETNCNT, GETZCNT,
    /// IPC_STAT/SEM_STAT (struct semid64_ds, 104 bytes), IPC_SET, IPC_RMID (waiters get
    /// EIDRM), IPC_INFO/SEM_INFO (struct seminfo).
    static func semctl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let number = a.int32(1), command = a.int32(2) & ~SysVIPC.IPC_64, argument = a[3]
        if command == SysVIPC.IPC_INFO || command == SysVIPC.SEM_INFO {
            // struct seminfo: semmap semmni semmns semmnu semmsl semopm semume semusz semvmx semaem (int).
            let out = try UserMemory.writable(argument, 40)
            let info = command == SysVIPC.SEM_INFO
            let fields: [Int] = [SysVIPC.maxSemaphoreSets, SysVIPC.maxSemaphoreSets,
                                 info ? semaphoreSets.reduce(0) { $0 + $1.set.values.count } : SysVIPC.maxSemaphoreSets * SysVIPC.maxSemaphoresPerSet,
                                 SysVIPC.maxSemaphoreSets, SysVIPC.maxSemaphoresPerSet, SysVIPC.maxOperations,
                                 SysVIPC.maxOperations, info ? semaphoreSets.count : 16, SysVIPC.maxSemaphoreValue,
                                 SysVIPC.maxSemaphoreValue]
            for (i, value) in fields.enumerated() { out.writeLE(Int32(value), at: i * 4) }
            return UInt64(max(semaphoreSets.count - 1, 0))
        }
        let byIndex = command == SysVIPC.SEM_STAT || command == SysVIPC.SEM_STAT_ANY
        let id = a.int32(0)
        guard id >= 0, let s = byIndex ? (Int(id) < semaphoreSets.count ? semaphoreSets[Int(id)] : nil) : semaphoreSet(id)
        else { throw .EINVAL }
        let count = s.set.values.count
        func checkedNumber() throws(Errno) -> Int {
            guard number >= 0, Int(number) < count else { throw .EINVAL }
            return Int(number)
        }
        switch command {
        case SysVIPC.GETVAL, SysVIPC.GETPID, SysVIPC.GETNCNT, SysVIPC.GETZCNT:
            guard s.permissions.allows(4) else { throw .EACCES }
            let n = try checkedNumber()
            switch command {
            case SysVIPC.GETVAL: return UInt64(s.set.values[n])
            case SysVIPC.GETPID: return UInt64(s.set.lastPids[n])
            default: return UInt64(waitingCount(s.id, n, forZero: command == SysVIPC.GETZCNT))
            }
        case SysVIPC.GETALL:
            guard s.permissions.allows(4) else { throw .EACCES }
            let out = try UserMemory.writable(argument, count * 2)
            for (i, value) in s.set.values.enumerated() { out.writeLE(UInt16(value), at: i * 2) }
            return 0
        case SysVIPC.SETVAL:
            let n = try checkedNumber()
            let value = Int32(truncatingIfNeeded: argument)
            guard value >= 0, value <= Int32(SysVIPC.maxSemaphoreValue) else { throw .ERANGE }
            guard s.permissions.allows(2) else { throw .EACCES }
            s.set.values[n] = value
            s.set.lastPids[n] = Process.current.pid
            s.changeTime = now
            dropAdjustments(s.id, n)
            rerunWaiters(kind: 1, id: s.id)
            return 0
        case SysVIPC.SETALL:
            guard s.permissions.allows(2) else { throw .EACCES }
            let values = try UserMemory.readable(argument, count * 2)
            var new: [Int32] = []
            for i in 0..<count {
                let v = Int32(values.readLE(UInt16.self, at: i * 2))
                guard v <= Int32(SysVIPC.maxSemaphoreValue) else { throw .ERANGE }
                new.append(v)
            }
            s.set.values = new
            for i in 0..<count { s.set.lastPids[i] = Process.current.pid }
            s.changeTime = now
            dropAdjustments(s.id, nil)
            rerunWaiters(kind: 1, id: s.id)
            return 0
        case SysVIPC.IPC_STAT, SysVIPC.SEM_STAT, SysVIPC.SEM_STAT_ANY:
            guard command == SysVIPC.SEM_STAT_ANY || s.permissions.allows(4) else { throw .EACCES }
            let out = try UserMemory.writable(argument, 104)
            out.initializeMemory(as: UInt8.self, repeating: 0)
            s.permissions.encode(out, id: s.id)
            out.writeLE(s.operationTime, at: 48)
            out.writeLE(s.changeTime, at: 64)
            out.writeLE(UInt64(count), at: 80)
            return byIndex ? UInt64(s.id) : 0
        case SysVIPC.IPC_SET:
            let buffer = try UserMemory.readable(argument, 104)
            try s.permissions.checkOwner()
            s.permissions.set(from: buffer)
            s.changeTime = now
            return 0
        case SysVIPC.IPC_RMID:
            try s.permissions.checkOwner()
            semaphoreSets.removeAll { $0 === s }
            undo.removeAll { $0.set == s.id }
            failWaiters(kind: 1, id: s.id)
            return 0
        default:
            throw .EINVAL
        }
    }

    /// Process `pid` ends: its SEM_UNDO adjustments are applied, and the waiters of the sets
    /// they change run again.
    static func processExiting(_ pid: Int32) {
        guard undo.contains(where: { $0.pid == pid }) else { return }
        for entry in undo where entry.pid == pid {
            guard let s = semaphoreSet(entry.set) else { continue }
            s.set.undo(entry.adjustments, pid: pid)
            s.operationTime = now
            rerunWaiters(kind: 1, id: s.id)
        }
        undo.removeAll { $0.pid == pid }
    }
}
