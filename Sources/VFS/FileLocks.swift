// Advisory file locks, as Linux keeps them per file (inode):
//  - record locks (fcntl F_SETLK/F_SETLKW/F_GETLK): byte ranges, shared (F_RDLCK) or
//    exclusive (F_WRLCK), owned by a process — every close by that process of any descriptor
//    of the file drops all its locks on it — or, for F_OFD_SETLK…, by an open file
//    description (dropped with its last reference). A new lock replaces its owner's own
//    locks over its range (splitting them) and merges with adjacent ones of the same kind.
//  - flock locks: the whole file, shared or exclusive, owned by an open file description.
// Locks of one owner never conflict with each other; record and flock locks ignore each
// other (as on Linux). Waiting (F_SETLKW, flock without LOCK_NB) is the kernel's: it asks
// again after any lock was released.

import LinuxABI

public struct FileLocks {
    public enum Kind: Equatable, Sendable { case shared, exclusive }

    public enum Owner: Equatable, Sendable {
        case process(Int32)
        case description(Int)
    }

    /// One record lock over bytes start..<end (end Int64.max: to the end of the file, however
    /// it grows). `pid` is what F_GETLK reports (-1 for a description's lock, as Linux).
    public struct RecordLock: Equatable, Sendable {
        public var owner: Owner
        public var kind: Kind
        public var start: Int64
        public var end: Int64
        public var pid: Int32
    }

    private struct NodeLocks {
        var node: Int
        var records: [RecordLock] = []
        var flocks: [(description: Int, kind: Kind)] = []
        var isEmpty: Bool { records.isEmpty && flocks.isEmpty }
    }

    /// Only files with locks have an entry (few: a linear search is the fast way).
    private var nodes: [NodeLocks] = []

    public init() {}

    private func entry(_ node: Int) -> Int? { nodes.firstIndex { $0.node == node } }

    private static func conflicts(_ a: Kind, _ b: Kind) -> Bool { a == .exclusive || b == .exclusive }

    // MARK: record locks

    /// The byte range a struct flock names: `start` relative to `base` (0, the offset, or the
    /// file's size, by l_whence), `length` 0 meaning to the end, negative meaning the bytes
    /// before it. EINVAL for a range starting before byte 0, EOVERFLOW past Int64.
    public static func range(start: Int64, length: Int64, base: Int64) throws(Errno) -> (start: Int64, end: Int64) {
        let (first, overflow) = base.addingReportingOverflow(start)
        guard !overflow else { throw .EOVERFLOW }
        if length == 0 {
            guard first >= 0 else { throw .EINVAL }
            return (first, Int64.max)
        }
        if length > 0 {
            guard first >= 0 else { throw .EINVAL }
            let (end, over) = first.addingReportingOverflow(length)
            guard !over else { throw .EOVERFLOW }
            return (first, end)
        }
        let (low, over) = first.addingReportingOverflow(length)
        guard !over, low >= 0 else { throw .EINVAL }
        return (low, first)
    }

    /// F_GETLK: the first lock of another owner that `kind` over start..<end would conflict
    /// with, or nil.
    public func conflictingRecord(node: Int, owner: Owner, kind: Kind, start: Int64, end: Int64) -> RecordLock? {
        guard let i = entry(node) else { return nil }
        return nodes[i].records.first {
            $0.owner != owner && $0.start < end && start < $0.end && Self.conflicts($0.kind, kind)
        }
    }

    /// F_SETLK: sets `kind` (nil: unlocks) over start..<end for `owner`. Returns the lock in
    /// the way (nothing changed), or nil when done.
    @discardableResult
    public mutating func setRecord(node: Int, owner: Owner, pid: Int32, kind: Kind?, start: Int64, end: Int64) -> RecordLock? {
        if let kind, let c = conflictingRecord(node: node, owner: owner, kind: kind, start: start, end: end) { return c }
        let index: Int
        if let i = entry(node) {
            index = i
        } else {
            guard kind != nil else { return nil }
            nodes.append(NodeLocks(node: node))
            index = nodes.count - 1
        }
        var kept: [RecordLock] = []
        for l in nodes[index].records {
            guard l.owner == owner, l.start < end, start < l.end else {
                kept.append(l)
                continue
            }
            // The owner's own lock over the range: what lies outside it stays.
            if l.start < start { kept.append(RecordLock(owner: l.owner, kind: l.kind, start: l.start, end: start, pid: l.pid)) }
            if l.end > end { kept.append(RecordLock(owner: l.owner, kind: l.kind, start: end, end: l.end, pid: l.pid)) }
        }
        if let kind {
            var new = RecordLock(owner: owner, kind: kind, start: start, end: end, pid: pid)
            // Adjacent locks of the same owner and kind become one (the owner's others are now
            // outside the range, so only its two neighbours can touch it).
            kept.removeAll { l in
                guard l.owner == owner, l.kind == kind, l.start <= new.end, new.start <= l.end else { return false }
                new.start = min(new.start, l.start)
                new.end = max(new.end, l.end)
                return true
            }
            kept.append(new)
            kept.sort { $0.start < $1.start }
        }
        nodes[index].records = kept
        if nodes[index].isEmpty { nodes.remove(at: index) }
        return nil
    }

    // MARK: flock

    /// flock(LOCK_SH/LOCK_EX) by description `description`, or LOCK_UN (kind nil). A
    /// description's own lock is replaced (not atomically, as Linux: a conversion that meets
    /// a conflict has dropped the old lock). False: another description's lock is in the way.
    public mutating func flock(node: Int, description: Int, kind: Kind?) -> Bool {
        let index: Int
        if let i = entry(node) {
            index = i
        } else {
            guard kind != nil else { return true }
            nodes.append(NodeLocks(node: node))
            index = nodes.count - 1
        }
        if let mine = nodes[index].flocks.firstIndex(where: { $0.description == description }) {
            if nodes[index].flocks[mine].kind == kind { return true }
            nodes[index].flocks.remove(at: mine)
        }
        var granted = true
        if let kind {
            if nodes[index].flocks.contains(where: { Self.conflicts($0.kind, kind) }) {
                granted = false
            } else {
                nodes[index].flocks.append((description, kind))
            }
        }
        if nodes[index].isEmpty { nodes.remove(at: index) }
        return granted
    }

    // MARK: releases

    /// A process closed a descriptor of `node`: its record locks there go.
    public mutating func processClosed(_ pid: Int32, node: Int) {
        guard let i = entry(node) else { return }
        nodes[i].records.removeAll { $0.owner == .process(pid) }
        if nodes[i].isEmpty { nodes.remove(at: i) }
    }

    /// Description `description` of `node` closed for good: its flock and OFD locks go.
    public mutating func descriptionClosed(_ description: Int, node: Int) {
        guard let i = entry(node) else { return }
        nodes[i].records.removeAll { $0.owner == .description(description) }
        nodes[i].flocks.removeAll { $0.description == description }
        if nodes[i].isEmpty { nodes.remove(at: i) }
    }

    /// Whether `node` has any lock (the kernel skips release work for files without).
    public func hasLocks(_ node: Int) -> Bool { entry(node) != nil }
}

/// What the lock calls need of a descriptor: its file, its description, and for l_whence
/// its offset and size; the access mode (a read lock needs a readable descriptor, a write
/// lock a writable one); and how many references the description has (1: closing this
/// descriptor closes it).
public struct LockTarget: Sendable {
    public let node: Int
    public let description: Int
    public let offset: Int64
    public let size: Int64
    public let readable: Bool
    public let writable: Bool
    public let references: Int
}

extension FileSystem {
    /// `fd`'s lock target. EBADF if it is not open or is O_PATH (as Linux's lock calls).
    public func lockTarget(_ fd: Int32) throws(Errno) -> LockTarget {
        let index = try ioFile(fd)
        guard let file = openFiles[index] else { throw .EBADF }
        return target(index, file)
    }

    /// A held description's lock target (nil if it is gone).
    public func lockTarget(_ held: HeldDescription) -> LockTarget? {
        guard let file = openFiles[held.index] else { return nil }
        return target(held.index, file)
    }

    private func target(_ index: Int, _ file: OpenFile) -> LockTarget {
        LockTarget(node: file.node, description: index, offset: file.offset, size: Int64(contentSize(file.node)),
                   readable: file.flags.isReadable, writable: file.flags.isWritable, references: file.references)
    }
}
