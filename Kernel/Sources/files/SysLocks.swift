import LinuxABI
import VFS

/// Advisory file locks between processes: fcntl's record locks (F_GETLK/F_SETLK/F_SETLKW,
/// owned by the calling process; F_OFD_* owned by the open file description) and flock(2)
/// (owned by the description). The table and its rules are the VFS's `FileLocks` (host
/// tested); here: the syscalls, waiting, and the releases — a process's record locks on a
/// file when it closes any descriptor of it (exit and exec close through SysIO.close too),
/// a description's locks when its last reference goes (a close, dup2 over it, or a
/// descriptor in flight dropped). A wait parks the thread until any lock is released, then
/// the call runs again; a signal ends it with EINTR. Not done: F_SETLKW's deadlock
/// detection (EDEADLK): two processes waiting on each other wait until a signal.
enum SysLocks {
    typealias R = FileLockRequest
    nonisolated(unsafe) static var table = FileLocks()

    /// fcntl's lock commands (the caller checked `command` is one of them).
    static func fcntl(_ fd: Int32, _ command: Int32, _ address: UInt64) throws(Errno) -> UInt64 {
        let target = try SysIO.fs.lockTarget(fd)
        let raw = try UserMemory.writable(address, R.size)
        var request = try R(decoding: UnsafeRawBufferPointer(raw))
        let ofd = command == R.F_OFD_GETLK || command == R.F_OFD_SETLK || command == R.F_OFD_SETLKW
        // OFD locks take l_pid 0 and report -1 (Linux: EINVAL for a non-zero l_pid).
        if ofd && request.pid != 0 { throw .EINVAL }
        let base: Int64
        switch request.whence {
        case 0: base = 0
        case 1: base = target.offset
        case 2: base = target.size
        default: throw .EINVAL
        }
        let (start, end) = try FileLocks.range(start: request.start, length: request.length, base: base)
        let pid = Process.current.pid
        let owner: FileLocks.Owner = ofd ? .description(target.description) : .process(pid)
        let kind: FileLocks.Kind?
        switch request.type {
        case R.F_RDLCK: kind = .shared
        case R.F_WRLCK: kind = .exclusive
        case R.F_UNLCK: kind = nil
        default: throw .EINVAL
        }

        if command == R.F_GETLK || command == R.F_OFD_GETLK {
            guard let kind else { throw .EINVAL }
            if let c = table.conflictingRecord(node: target.node, owner: owner, kind: kind, start: start, end: end) {
                request = R(type: c.kind == .shared ? R.F_RDLCK : R.F_WRLCK, whence: 0, start: c.start,
                            length: c.end == Int64.max ? 0 : c.end - c.start, pid: c.pid)
            } else {
                request.type = R.F_UNLCK
            }
            try request.encode(into: raw)
            return 0
        }
        if kind == .shared && !target.readable { throw .EBADF }
        if kind == .exclusive && !target.writable { throw .EBADF }
        guard table.setRecord(node: target.node, owner: owner, pid: ofd ? -1 : pid, kind: kind, start: start, end: end) != nil else {
            if kind == nil { Scheduler.wakeRestartingWaiters() }
            return 0
        }
        if command == R.F_SETLK || command == R.F_OFD_SETLK { throw .EAGAIN }
        return try wait()
    }

    /// flock(fd, operation)
    static func flock(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let operation = a.int32(1)
        let target = try SysIO.fs.lockTarget(a.fd(0))
        let kind: FileLocks.Kind?
        switch operation & ~R.LOCK_NB {
        case R.LOCK_SH: kind = .shared
        case R.LOCK_EX: kind = .exclusive
        case R.LOCK_UN: kind = nil
        default: throw .EINVAL
        }
        if table.flock(node: target.node, description: target.description, kind: kind) {
            if kind != .exclusive { Scheduler.wakeRestartingWaiters() }  // an unlock or a downgrade
            return 0
        }
        if operation & R.LOCK_NB != 0 { throw .EAGAIN }  // EWOULDBLOCK
        return try wait()
    }

    /// Parks the caller until a lock is released (the call then runs again).
    private static func wait() throws(Errno) -> UInt64 {
        if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
        Scheduler.blockCurrentRestarting(deadline: 0)
        return 0
    }

    // MARK: releases

    /// Before `fd` of the running process closes (or is replaced): what it held goes.
    static func closing(_ fd: Int32) {
        guard let target = try? SysIO.fs.lockTarget(fd), table.hasLocks(target.node) else { return }
        table.processClosed(Process.current.pid, node: target.node)
        if target.references == 1 { table.descriptionClosed(target.description, node: target.node) }
        Scheduler.wakeRestartingWaiters()
    }

    /// Before a held description (a descriptor in flight) is dropped.
    static func dropping(_ held: HeldDescription) {
        guard let target = SysIO.fs.lockTarget(held), target.references == 1, table.hasLocks(target.node) else { return }
        table.descriptionClosed(target.description, node: target.node)
        Scheduler.wakeRestartingWaiters()
    }
}
