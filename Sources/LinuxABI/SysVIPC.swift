// System V message queues and semaphore sets: the rules of msgsnd/msgrcv and semop as
// values, with no ids, permissions, processes or waiting (the kernel adds those). Linux's
// limits and flags (<linux/msg.h>, <linux/sem.h>, ipc/msg.c, ipc/sem.c).

/// The flags and limits of msgget/msgsnd/msgrcv and semget/semop.
public enum SysVIPC {
    public static let IPC_PRIVATE: Int32 = 0
    public static let IPC_CREAT: Int32 = 0o1000
    public static let IPC_EXCL: Int32 = 0o2000
    public static let IPC_NOWAIT: Int32 = 0o4000
    /// The layout bit glibc may add to a ctl command (every layout here is the 64-bit one).
    public static let IPC_64: Int32 = 0x100

    public static let IPC_RMID: Int32 = 0, IPC_SET: Int32 = 1, IPC_STAT: Int32 = 2, IPC_INFO: Int32 = 3
    public static let MSG_STAT: Int32 = 11, MSG_INFO: Int32 = 12, MSG_STAT_ANY: Int32 = 13
    public static let GETPID: Int32 = 11, GETVAL: Int32 = 12, GETALL: Int32 = 13, GETNCNT: Int32 = 14
    public static let GETZCNT: Int32 = 15, SETVAL: Int32 = 16, SETALL: Int32 = 17
    public static let SEM_STAT: Int32 = 18, SEM_INFO: Int32 = 19, SEM_STAT_ANY: Int32 = 20

    public static let MSG_NOERROR: Int32 = 0o10000
    public static let MSG_EXCEPT: Int32 = 0o20000
    public static let MSG_COPY: Int32 = 0o40000
    public static let SEM_UNDO: Int16 = 0x1000

    /// MSGMAX: the largest message; MSGMNB: a queue's default byte limit; MSGMNI: queues.
    public static let maxMessageSize = 8192
    public static let defaultQueueBytes = 16384
    public static let maxQueues = 32000
    /// SEMMSL: semaphores per set; SEMOPM: operations per semop; SEMVMX: largest value;
    /// SEMMNI: sets.
    public static let maxSemaphoresPerSet = 32000
    public static let maxOperations = 500
    public static let maxSemaphoreValue = 32767
    public static let maxSemaphoreSets = 32000
}

/// The messages of one queue, oldest first.
public struct MessageQueue: Sendable {
    public struct Message: Equatable, Sendable {
        public var type: Int64
        public var text: [UInt8]

        public init(type: Int64, text: [UInt8]) {
            self.type = type
            self.text = text
        }
    }

    public private(set) var messages: [Message] = []
    /// msg_cbytes: the bytes of text queued.
    public private(set) var byteCount = 0
    /// msg_qbytes: the most bytes (and, as on Linux, the most messages) the queue holds.
    public var byteLimit = SysVIPC.defaultQueueBytes

    public init() {}

    /// Whether a message of `size` bytes fits now (msgsnd waits or fails with EAGAIN if not).
    public func hasRoom(for size: Int) -> Bool {
        byteCount + size <= byteLimit && messages.count + 1 <= byteLimit
    }

    public mutating func append(_ message: Message) {
        messages.append(message)
        byteCount += message.text.count
    }

    /// The message msgrcv(msgtyp, flags) takes: msgtyp 0 the oldest; > 0 the oldest of that
    /// type (with MSG_EXCEPT the oldest of any other type); < 0 the oldest of the lowest
    /// type at most |msgtyp|. Nil if none.
    public func select(type: Int64, except: Bool) -> Int? {
        if type == 0 { return messages.isEmpty ? nil : 0 }
        if type > 0 {
            return messages.firstIndex { except ? $0.type != type : $0.type == type }
        }
        let bound = type == Int64.min ? Int64.max : -type
        var best: Int? = nil
        for (i, m) in messages.enumerated() where m.type <= bound {
            if best == nil || m.type < messages[best!].type { best = i }
        }
        return best
    }

    /// msgrcv's take: removes and returns message `index` (its text cut to `capacity` with
    /// MSG_NOERROR); E2BIG, leaving it queued, if longer than `capacity` without it.
    public mutating func take(_ index: Int, capacity: Int, noError: Bool) throws(Errno) -> Message {
        var message = messages[index]
        if message.text.count > capacity {
            guard noError else { throw .E2BIG }
            message.text.removeSubrange(capacity...)
        }
        byteCount -= messages[index].text.count
        messages.remove(at: index)
        return message
    }
}

/// One struct sembuf (6 bytes): sem_num u16 @0, sem_op i16 @2, sem_flg i16 @4.
public struct SemaphoreOperation: Equatable, Sendable {
    public static let size = 6
    public var number: UInt16
    public var operation: Int16
    public var flags: Int16

    public init(number: UInt16, operation: Int16, flags: Int16) {
        self.number = number
        self.operation = operation
        self.flags = flags
    }

    public var undo: Bool { flags & SysVIPC.SEM_UNDO != 0 }
    public var noWait: Bool { Int32(flags) & SysVIPC.IPC_NOWAIT != 0 }

    /// Reads `count` records from `buffer`.
    public static func decode(_ buffer: UnsafeRawBufferPointer, count: Int) throws(Errno) -> [SemaphoreOperation] {
        try checkFits(buffer, count * size)
        let r = StructReader(buffer)
        var out: [SemaphoreOperation] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            out.append(SemaphoreOperation(number: r.get(UInt16.self, at: i * size) ?? 0,
                                          operation: r.get(Int16.self, at: i * size + 2) ?? 0,
                                          flags: r.get(Int16.self, at: i * size + 4) ?? 0))
        }
        return out
    }
}

/// The values of one semaphore set and semop's all-or-nothing rule.
public struct SemaphoreSet: Sendable {
    public var values: [Int32]
    /// sempid: who last changed each semaphore.
    public var lastPids: [Int32]

    public init(count: Int) {
        values = [Int32](repeating: 0, count: count)
        lastPids = [Int32](repeating: 0, count: count)
    }

    /// What semop must do.
    public enum Outcome: Equatable, Sendable {
        /// Every operation was applied.
        case done
        /// An operation cannot proceed now: semaphore `number` must grow (`forZero`
        /// false) or reach 0. Nothing was applied.
        case wait(number: Int, forZero: Bool)
    }

    /// Applies `operations` in order as one: all of them, or none. EFBIG for a semaphore
    /// number beyond the set, ERANGE for a value past SEMVMX, EAGAIN where one would wait
    /// and has IPC_NOWAIT. `adjustments` (the caller's semadj of this set) takes -op of
    /// every SEM_UNDO operation applied; ERANGE if one leaves the adjustment's range.
    public mutating func apply(_ operations: [SemaphoreOperation], pid: Int32,
                               adjustments: inout [Int32]) throws(Errno) -> Outcome {
        for op in operations where Int(op.number) >= values.count { throw .EFBIG }
        var trial = values
        var trialAdjustments = adjustments
        if trialAdjustments.count < values.count {
            trialAdjustments += [Int32](repeating: 0, count: values.count - trialAdjustments.count)
        }
        for op in operations {
            let n = Int(op.number)
            let change = Int32(op.operation)
            if change == 0 {
                if trial[n] != 0 {
                    if op.noWait { throw .EAGAIN }
                    return .wait(number: n, forZero: true)
                }
                continue
            }
            let result = trial[n] + change
            if result < 0 {
                if op.noWait { throw .EAGAIN }
                return .wait(number: n, forZero: false)
            }
            guard result <= Int32(SysVIPC.maxSemaphoreValue) else { throw .ERANGE }
            if op.undo {
                let adjusted = trialAdjustments[n] - change
                guard adjusted >= -Int32(SysVIPC.maxSemaphoreValue) - 1, adjusted <= Int32(SysVIPC.maxSemaphoreValue) else { throw .ERANGE }
                trialAdjustments[n] = adjusted
            }
            trial[n] = result
        }
        values = trial
        adjustments = trialAdjustments
        // sempid: every semaphore a successful call named, waits for zero included (Linux).
        for op in operations { lastPids[Int(op.number)] = pid }
        return .done
    }

    /// A process that made SEM_UNDO operations ends: its adjustments are added back, each
    /// value kept within 0…SEMVMX as Linux clamps it.
    public mutating func undo(_ adjustments: [Int32], pid: Int32) {
        for (n, adjustment) in adjustments.enumerated() where n < values.count && adjustment != 0 {
            values[n] = min(max(values[n] + adjustment, 0), Int32(SysVIPC.maxSemaphoreValue))
            lastPids[n] = pid
        }
    }
}
