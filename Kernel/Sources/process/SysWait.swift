import GuestABI
import LinuxABI

/// wait4 and waitid, and the stop/continue state changes they report.
///
/// Wait statuses as Linux encodes them: exited `code << 8`; killed `signal` (| 0x80 with a
/// core dump); stopped `signal << 8 | 0x7f`; continued `0xffff`.
enum SysWait {
    static let WNOHANG: Int32 = 1
    static let WUNTRACED: Int32 = 2      // WSTOPPED for waitid
    static let WEXITED: Int32 = 4
    static let WCONTINUED: Int32 = 8
    static let WNOWAIT: Int32 = 0x0100_0000
    static let WNOTHREAD: Int32 = 0x2000_0000
    static let WALL: Int32 = 0x4000_0000
    static let WCLONE: Int32 = Int32(bitPattern: 0x8000_0000)

    static let continuedStatus: UInt32 = 0xffff

    /// The siginfo of `child`'s state change with wait status `status` (SIGCHLD, waitid).
    static func childInfo(_ child: Process, status: UInt32) -> SignalInfo {
        let code: Int32, value: Int32
        if status == continuedStatus {
            (code, value) = (6, SysSignal.SIGCONT)                               // CLD_CONTINUED
        } else if status & 0xff == 0x7f {
            (code, value) = (5, Int32((status >> 8) & 0xff))                     // CLD_STOPPED
        } else if status & 0x7f != 0 {
            (code, value) = (status & 0x80 != 0 ? 3 : 2, Int32(status & 0x7f))  // CLD_DUMPED / CLD_KILLED
        } else {
            (code, value) = (1, Int32((status >> 8) & 0xff))                     // CLD_EXITED
        }
        return SignalInfo.child(code: code, pid: child.pid, uid: 0, status: value)
    }

    /// What a wait selects: one pid, a process group, or any child.
    enum Selector {
        case pid(Int32)
        case group(Int32)
        case any

        func matches(_ p: Process) -> Bool {
            switch self {
            case .pid(let pid): return p.pid == pid
            case .group(let group): return p.processGroup == group
            case .any: return true
            }
        }
    }

    /// A child's change a wait may report, and whether it is an exit (which reaping removes).
    private static func reportable(_ child: Process, options: Int32) -> UInt32? {
        if let status = child.waitStatus { return options & WEXITED != 0 ? status : nil }
        guard let change = child.unreportedStateChange else { return nil }
        if change == continuedStatus { return options & WCONTINUED != 0 ? change : nil }
        return options & WUNTRACED != 0 ? change : nil
    }

    /// The common part of wait4 and waitid: the child reported (nil with WNOHANG and none
    /// ready), or ECHILD, or the caller waits (restarting) until a child changes.
    private static func find(_ selector: Selector, options: Int32) throws(Errno) -> (Process, UInt32)? {
        let me = Process.current
        let candidates = me.children.filter { selector.matches($0) }
        guard !candidates.isEmpty else { throw .ECHILD }
        for child in candidates {
            guard let status = reportable(child, options: options) else { continue }
            if options & WNOWAIT == 0 {
                if child.isZombie { Processes.reap(child) } else { child.unreportedStateChange = nil }
            }
            return (child, status)
        }
        if options & WNOHANG != 0 { return nil }
        Scheduler.blockCurrentRestarting(deadline: 0)
        return nil
    }

    /// wait4(pid, wstatus *, options, rusage *).
    static func wait4(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let pid = a.int32(0), options = a.int32(2)
        guard options & ~(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WALL | WCLONE) == 0 else { throw .EINVAL }
        let selector: Selector
        if pid > 0 { selector = .pid(pid) }
        else if pid == 0 { selector = .group(Process.current.processGroup) }
        else if pid == -1 { selector = .any }
        else if pid == Int32.min { throw .ESRCH }
        else { selector = .group(-pid) }
        if a[1] != 0 { _ = try UserMemory.writable(a[1], 4) }
        if a[3] != 0 { _ = try UserMemory.writable(a[3], Rusage.size) }
        guard let (child, status) = try find(selector, options: options | WEXITED) else { return 0 }
        if a[1] != 0 { try UserMemory.store(status, a[1]) }
        if a[3] != 0 { try rusage(of: child).encode(into: UserMemory.writable(a[3], Rusage.size)) }
        return UInt64(child.pid)
    }

    /// waitid(idtype, id, siginfo *, options, rusage *): P_ALL 0, P_PID 1, P_PGID 2
    /// (P_PIDFD 3 is not supported: EINVAL).
    static func waitid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let type = a.int32(0), id = a.int32(1), options = a.int32(3)
        guard options & ~(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WALL | WCLONE) == 0,
              options & (WUNTRACED | WEXITED | WCONTINUED) != 0 else { throw .EINVAL }
        let selector: Selector
        switch type {
        case 0: selector = .any
        case 1: guard id > 0 else { throw .EINVAL }; selector = .pid(id)
        case 2: guard id >= 0 else { throw .EINVAL }; selector = .group(id == 0 ? Process.current.processGroup : id)
        default: throw .EINVAL
        }
        if a[2] != 0 { _ = try UserMemory.writable(a[2], SignalInfo.siginfoSize) }
        if a[4] != 0 { _ = try UserMemory.writable(a[4], Rusage.size) }
        guard let (child, status) = try find(selector, options: options) else {
            // WNOHANG and nothing ready: si_pid 0 (Linux zeroes the siginfo).
            if a[2] != 0, Scheduler.switched == false {
                try UserMemory.writable(a[2], SignalInfo.siginfoSize).initializeMemory(as: UInt8.self, repeating: 0)
            }
            return 0
        }
        if a[2] != 0 {
            try childInfo(child, status: status).encodeSiginfo(signal: SysSignal.SIGCHLD,
                                                              into: UserMemory.writable(a[2], SignalInfo.siginfoSize))
        }
        if a[4] != 0 { try rusage(of: child).encode(into: UserMemory.writable(a[4], Rusage.size)) }
        return 0
    }

    /// A reaped child's CPU time (its threads' and its own reaped children's).
    private static func rusage(of child: Process) -> Rusage {
        var usage = Rusage()
        usage.userTime = Timeval(Timespec(totalNanoseconds: Int64(clamping: child.endedThreadsCPU &+ child.childrenCPU)))
        return usage
    }

    // MARK: stop and continue

    /// The default action of a stop signal: the process's threads stop running (the
    /// scheduler skips them) until SIGCONT or SIGKILL; the parent hears of it.
    static func stop(_ process: Process, _ signal: Int32) {
        guard !process.stopped else { return }
        process.stopped = true
        process.unreportedStateChange = UInt32(signal) << 8 | 0x7f
        notifyParent(process, stopOrContinue: process.unreportedStateChange!)
        if Scheduler.current.process === process { Scheduler.parkCurrent() }
    }

    /// SIGCONT or SIGKILL for a stopped process: it runs again.
    static func resume(_ process: Process) {
        guard process.stopped else { return }
        process.stopped = false
        process.unreportedStateChange = continuedStatus
        notifyParent(process, stopOrContinue: continuedStatus)
    }

    /// SIGCHLD for a stop or a continue, unless the parent asked for none (SA_NOCLDSTOP).
    private static func notifyParent(_ process: Process, stopOrContinue status: UInt32) {
        guard let parent = process.parent else { return }
        if !SysSignal.action(SysSignal.SIGCHLD, of: parent).flags.contains(.SA_NOCLDSTOP) {
            SysSignal.raise(on: parent, SysSignal.SIGCHLD, childInfo(process, status: status))
        }
        Scheduler.wakeRestartingWaiters()
    }
}
