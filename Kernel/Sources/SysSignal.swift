import GuestABI
import LinuxABI

/// Signal dispositions and masks are recorded with Linux's validation. This version delivers
/// no signal to a handler: a signal sent to the process takes its default action when the
/// disposition is SIG_DFL, is dropped when SIG_IGN, and stays pending when blocked or handled
/// (delivery to handlers arrives with the compatibility core).
enum SysSignal {
    static let SIG_DFL: UInt64 = 0
    static let SIG_IGN: UInt64 = 1
    static let SIGKILL: Int32 = 9
    static let SIGSTOP: Int32 = 19

    nonisolated(unsafe) static var actions: [KernelSigaction] = []
    nonisolated(unsafe) static var blocked: UInt64 = 0
    nonisolated(unsafe) static var pending: UInt64 = 0
    nonisolated(unsafe) static var altStack = SignalStack(base: UserAddress(0), flags: 2, size: 0)  // SS_DISABLE

    static func action(_ signal: Int32) -> KernelSigaction {
        if actions.isEmpty { actions = Array(repeating: KernelSigaction(), count: 65) }
        return actions[Int(signal)]
    }

    static func rtSigaction(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let signal = a.int32(0)
        guard signal >= 1 && signal <= 64, a[3] == 8 else { throw .EINVAL }
        let old = action(signal)
        if a[1] != 0 {
            guard signal != SIGKILL && signal != SIGSTOP else { throw .EINVAL }
            actions[Int(signal)] = try KernelSigaction.decode(from: UserMemory.readable(a[1], KernelSigaction.size))
        }
        if a[2] != 0 { try old.encode(into: UserMemory.writable(a[2], KernelSigaction.size)) }
        return 0
    }

    static func rtSigprocmask(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[3] == 8 else { throw .EINVAL }
        let old = blocked
        if a[1] != 0 {
            let set = try UserMemory.load(UInt64.self, a[1])
            let unblockable: UInt64 = (1 << UInt64(SIGKILL - 1)) | (1 << UInt64(SIGSTOP - 1))
            switch a.int32(0) {
            case 0: blocked |= set         // SIG_BLOCK
            case 1: blocked &= ~set        // SIG_UNBLOCK
            case 2: blocked = set          // SIG_SETMASK
            default: throw .EINVAL
            }
            blocked &= ~unblockable
        }
        if a[2] != 0 { try UserMemory.store(old, a[2]) }
        deliverPending()
        return 0
    }

    static func sigaltstack(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let old = altStack
        if a[0] != 0 {
            let new = try SignalStack.decode(from: UserMemory.readable(a[0], SignalStack.size))
            guard new.flags & ~(2 | Int32(bitPattern: 0x8000_0000)) == 0 else { throw .EINVAL }
            if new.flags & 2 == 0 && new.size < 2048 { throw .ENOMEM }  // MINSIGSTKSZ
            altStack = new
        }
        if a[1] != 0 { try old.encode(into: UserMemory.writable(a[1], SignalStack.size)) }
        return 0
    }

    static func kill(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let target = Int64(truncatingIfNeeded: a[0])
        guard target == 1 || target == 0 || target == -1 else { throw .ESRCH }
        return try send(a.int32(1))
    }

    static func tkill(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(0) > 0 else { throw .EINVAL }
        guard Scheduler.thread(a.int32(0)) != nil else { throw .ESRCH }
        return try send(a.int32(1))
    }

    static func tgkill(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(0) > 0, a.int32(1) > 0 else { throw .EINVAL }
        guard a.int32(0) == 1, Scheduler.thread(a.int32(1)) != nil else { throw .ESRCH }
        return try send(a.int32(2))
    }

    private static func send(_ signal: Int32) throws(Errno) -> UInt64 {
        guard signal >= 0 && signal <= 64 else { throw .EINVAL }
        if signal == 0 { return 0 }  // existence check
        pending |= 1 << UInt64(signal - 1)
        deliverPending()
        return 0
    }

    /// Applies default actions of pending, unblocked signals.
    static func deliverPending() {
        var deliverable = pending & ~blocked
        if deliverable & (1 << UInt64(SIGKILL - 1)) != 0 { terminate(SIGKILL) }
        while deliverable != 0 {
            let signal = Int32(deliverable.trailingZeroBitCount + 1)
            let bit: UInt64 = 1 << UInt64(signal - 1)
            deliverable &= ~bit
            let handler = action(signal).handler
            if handler == SIG_IGN || (handler == SIG_DFL && ignoredByDefault(signal)) {
                pending &= ~bit
            } else if handler == SIG_DFL {
                terminate(signal)
            }
            // A handled signal stays pending until handlers can run.
        }
    }

    /// SIGCHLD, SIGURG, SIGWINCH and SIGCONT are ignored by default.
    static func ignoredByDefault(_ s: Int32) -> Bool { s == 17 || s == 23 || s == 28 || s == 18 }

    static func terminate(_ signal: Int32) -> Never {
        Console.exit(.signaled(UInt8(signal)))
    }
}
