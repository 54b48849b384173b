import GuestABI
import LinuxABI
import VFS

/// One timer of any kind: an interval timer (setitimer/alarm), a POSIX timer (timer_create)
/// or the timer behind a timerfd. Deadlines are kept on the timer's clock in nanoseconds;
/// realtime deadlines are converted to monotonic ones when set (the guest cannot set the
/// realtime clock, so the two never drift apart).
final class KernelTimer {
    enum TimeBase {
        case monotonic
        case processCPU
        case threadCPU(Thread)
    }

    enum Notify {
        case none
        /// The signal to the process that made the timer.
        case signalProcess(Int32, Process)
        case signalThread(tid: Int32, signal: Int32)
        /// A timerfd: expirations are counted for read().
        case counter
    }

    let base: TimeBase
    /// The clock id it was created with (realtime ones take absolute times differently).
    var clockID = ClockID.CLOCK_MONOTONIC.rawValue
    var notify: Notify
    /// On `clock`; 0: disarmed.
    var deadline: UInt64 = 0
    var interval: UInt64 = 0
    /// timerfd: expirations not read yet. POSIX timer: timer_getoverrun's answer.
    var expirations: UInt64 = 0
    /// Expirations ever (edge-triggered epoll's news for a timerfd).
    var fired: UInt64 = 0
    var overrun: Int32 = 0
    /// POSIX timer id (si_timerid) and sigev_value; the kernel's own timers have code.
    var id: Int32 = 0
    var value: UInt64 = 0
    var signalCode = SignalInfo.SI_KERNEL

    init(base: TimeBase, notify: Notify) {
        self.base = base
        self.notify = notify
    }

    var now: UInt64 {
        switch base {
        case .monotonic: return Clock.monotonicNanos
        case .processCPU: return Clock.processCPUNanos
        case .threadCPU(let t): return Scheduler.cpuNanos(of: t)
        }
    }

    /// Arms (value > 0) or disarms the timer; `absolute` values are on the timer's clock.
    func set(value: UInt64, interval: UInt64, absolute: Bool) {
        self.interval = interval
        if value == 0 {
            deadline = 0
        } else {
            deadline = absolute ? max(value, 1) : now &+ value
        }
        expirations = 0
        Timers.rearm()
    }

    /// it_value and it_interval as timer_gettime/timerfd_gettime/getitimer report them.
    var current: (left: UInt64, interval: UInt64) {
        guard deadline != 0 else { return (0, interval) }
        let n = now
        return (deadline > n ? deadline - n : 1, interval)
    }

    /// timer_gettime / timerfd_gettime: the time left and the interval as an itimerspec.
    func gettime(_ address: UInt64) throws(Errno) {
        let (left, interval) = current
        try Itimerspec(intervalNanos: interval, valueNanos: left).encode(into: UserMemory.writable(address, Itimerspec.size))
    }

    /// timer_settime / timerfd_settime: the new itimerspec at `newAddress` (absolute if
    /// `absolute`, on the clock the timer was made with), the old one to `oldAddress` (0: not).
    func settime(absolute: Bool, _ newAddress: UInt64, _ oldAddress: UInt64) throws(Errno) {
        let new = try Itimerspec.decode(from: UserMemory.readable(newAddress, Itimerspec.size))
        guard new.isValid else { throw .EINVAL }
        if oldAddress != 0 { try gettime(oldAddress) }
        var value = Timers.nanos(new.value)
        if absolute && value != 0 { value = Timers.absoluteDeadline(value, clockID: clockID) }
        set(value: value, interval: Timers.nanos(new.interval), absolute: absolute)
    }

    /// Runs the expirations due at `n` on this timer's clock.
    func fire(at n: UInt64) {
        var count: UInt64 = 1
        if interval > 0 {
            count += (n - deadline) / interval
            deadline += count * interval
        } else {
            deadline = 0
        }
        let missed = Int32(truncatingIfNeeded: min(count - 1, UInt64(Int32.max)))
        fired &+= count
        switch notify {
        case .none:
            break
        case .counter:
            expirations &+= count
            Scheduler.wakeRestartingWaiters()
        case .signalProcess(let signal, let process):
            overrun = process.pending.contains(signal) ? overrun &+ Int32(truncatingIfNeeded: count) : missed
            SysSignal.raise(on: process, signal, info)
        case .signalThread(let tid, let signal):
            guard let t = Scheduler.thread(tid) else { return }
            overrun = t.pending.contains(signal) ? overrun &+ Int32(truncatingIfNeeded: count) : missed
            SysSignal.raiseOnThread(t, signal, info)
        }
    }

    private var info: SignalInfo {
        signalCode == SignalInfo.SI_TIMER
            ? SignalInfo(code: signalCode, sender: id, detail: overrun, value: value)
            : SignalInfo(code: signalCode)
    }
}

/// Every armed timer, checked at each syscall entry and in the scheduler's idle loop; the
/// monotonic ones also bound how long the idle vCPU sleeps. CPU-time timers advance only
/// while the vCPU runs, and since app code cannot be interrupted on pvm they fire at the
/// next syscall after their deadline.
enum Timers {
    nonisolated(unsafe) static var all: [KernelTimer] = []
    /// True while any timer is armed (the per-syscall check is one load otherwise).
    nonisolated(unsafe) static var anyArmed = false

    static func add(_ timer: KernelTimer) { all.append(timer) }
    static func remove(_ timer: KernelTimer) {
        all.removeAll { $0 === timer }
        rearm()
    }

    static func rearm() { anyArmed = all.contains { $0.deadline != 0 } }

    /// Fires every timer that is due.
    static func check() {
        guard anyArmed else { return }
        for timer in all where timer.deadline != 0 {
            let n = timer.now
            if n >= timer.deadline { timer.fire(at: n) }
        }
        rearm()
    }

    /// The earliest monotonic deadline (UInt64.max: none) — when an idle vCPU must wake.
    static var earliestMonotonic: UInt64 {
        var earliest = UInt64.max
        for timer in all where timer.deadline != 0 {
            if case .monotonic = timer.base { earliest = min(earliest, timer.deadline) }
        }
        return earliest
    }

    /// A clock id of timer_create/timerfd_create as a timer clock, or EINVAL.
    static func base(_ id: Int32, allowCPU: Bool) throws(Errno) -> KernelTimer.TimeBase {
        guard let clock = ClockID(rawValue: id) else { throw .EINVAL }
        switch clock {
        case .CLOCK_REALTIME, .CLOCK_MONOTONIC, .CLOCK_BOOTTIME, .CLOCK_REALTIME_ALARM,
             .CLOCK_BOOTTIME_ALARM, .CLOCK_TAI:
            return .monotonic
        case .CLOCK_PROCESS_CPUTIME_ID where allowCPU:
            return .processCPU
        case .CLOCK_THREAD_CPUTIME_ID where allowCPU:
            return .threadCPU(Scheduler.current)
        default:
            throw .EINVAL
        }
    }

    /// An absolute time on clock `id` as a deadline on the timer's clock.
    static func absoluteDeadline(_ value: UInt64, clockID: Int32) -> UInt64 {
        guard clockID == ClockID.CLOCK_REALTIME.rawValue || clockID == ClockID.CLOCK_REALTIME_ALARM.rawValue
            || clockID == ClockID.CLOCK_TAI.rawValue else { return value }
        let offset = Clock.realtimeNanos &- Clock.monotonicNanos
        return value > offset ? value - offset : 1
    }

    /// A validated (non-negative) timer value in nanoseconds, saturating at Int64.max.
    static func nanos(_ ts: Timespec) -> UInt64 { ts.durationNanoseconds ?? UInt64(Int64.max) }
}

/// setitimer, getitimer and alarm. ITIMER_REAL counts monotonic time and sends SIGALRM;
/// ITIMER_VIRTUAL (SIGVTALRM) and ITIMER_PROF (SIGPROF) count the process's CPU time (user
/// and system time are not told apart, so both count the same time).
enum SysItimers {
    /// The running process's three timers (made at first use).
    static var timers: [KernelTimer] {
        _read { yield Process.current.intervalTimers }
        _modify { yield &Process.current.intervalTimers }
    }

    static func timer(_ which: Int32) throws(Errno) -> KernelTimer {
        guard which >= 0 && which <= 2 else { throw .EINVAL }
        if timers.isEmpty {
            let me = Process.current
            timers = [KernelTimer(base: .monotonic, notify: .signalProcess(14, me)),
                      KernelTimer(base: .processCPU, notify: .signalProcess(26, me)),
                      KernelTimer(base: .processCPU, notify: .signalProcess(27, me))]
            for t in timers { Timers.add(t) }
        }
        return timers[Int(which)]
    }


    private static func timeval(_ ns: UInt64) -> Timeval {
        Timeval(seconds: Int64(ns / 1_000_000_000), microseconds: Int64(ns % 1_000_000_000 / 1000))
    }

    private static func itimerval(_ t: KernelTimer) -> Itimerval {
        let (left, interval) = t.current
        // A timer about to fire reports at least one microsecond left, as Linux does.
        return Itimerval(interval: timeval(interval), value: timeval(left == 0 ? 0 : max(left, 1000)))
    }

    static func getitimer(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try itimerval(timer(a.int32(0))).encode(into: UserMemory.writable(a[1], Itimerval.size))
        return 0
    }

    static func setitimer(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let t = try timer(a.int32(0))
        let old = itimerval(t)
        if a[1] != 0 {
            let new = try Itimerval.decode(from: UserMemory.readable(a[1], Itimerval.size))
            // Huge values saturate (Linux clamps them to KTIME_MAX) rather than overflow.
            guard let value = new.value.durationNanoseconds, let interval = new.interval.durationNanoseconds else { throw .EINVAL }
            t.set(value: value, interval: interval, absolute: false)
        }
        if a[2] != 0 { try old.encode(into: UserMemory.writable(a[2], Itimerval.size)) }
        return 0
    }

    /// alarm(seconds): ITIMER_REAL without interval; returns the seconds left of the old one
    /// (rounded up, as Linux does).
    static func alarm(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let t = try timer(0)
        let left = t.current.left
        t.set(value: UInt64(a.uint32(0)) * 1_000_000_000, interval: 0, absolute: false)
        return (left + 999_999_999) / 1_000_000_000
    }
}

/// timer_create and friends: POSIX per-process timers notifying by signal to the process
/// (SIGEV_SIGNAL), to one thread (SIGEV_THREAD_ID, which glibc's and musl's SIGEV_THREAD
/// build on) or not at all (SIGEV_NONE). Signals carry SI_TIMER, the timer id, the overrun and
/// sigev_value.
enum SysPosixTimers {
    /// The running process's timers, by id.
    static var timers: [KernelTimer?] {
        _read { yield Process.current.posixTimers }
        _modify { yield &Process.current.posixTimers }
    }
    static let maxTimers = 4096

    static func timer(id: Int32) -> KernelTimer? {
        guard id >= 0, Int(id) < timers.count else { return nil }
        return timers[Int(id)]
    }

    private static func timer(_ id: Int32) throws(Errno) -> KernelTimer {
        guard let t = timer(id: id) else { throw .EINVAL }
        return t
    }

    static func create(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let clockID = a.int32(0)
        let base = try Timers.base(clockID, allowCPU: true)
        let slot = timers.firstIndex { $0 == nil } ?? timers.count
        // Each timer is kernel memory the app asks for: bounded, EAGAIN as Linux's
        // sigqueue limit answers.
        guard slot < maxTimers, PhysicalMemory.canGrantAppObject else { throw .EAGAIN }
        let event = a[1] == 0
            ? Sigevent(value: UInt64(slot), signal: 14, notify: Sigevent.SIGEV_SIGNAL)
            : try Sigevent.decode(from: UserMemory.readable(a[1], Sigevent.size))
        let notify: KernelTimer.Notify
        switch event.notify {
        case Sigevent.SIGEV_NONE:
            notify = .none
        case Sigevent.SIGEV_SIGNAL, Sigevent.SIGEV_THREAD_ID:
            guard event.signal >= 1 && event.signal <= 64 else { throw .EINVAL }
            if event.notify == Sigevent.SIGEV_THREAD_ID {
                guard Scheduler.thread(event.threadID) != nil else { throw .EINVAL }
                notify = .signalThread(tid: event.threadID, signal: event.signal)
            } else {
                notify = .signalProcess(event.signal, Process.current)
            }
        default:
            throw .EINVAL
        }
        try UserMemory.store(UInt32(slot), a[2])
        let t = KernelTimer(base: base, notify: notify)
        t.clockID = clockID
        t.id = Int32(slot)
        t.value = event.value
        t.signalCode = SignalInfo.SI_TIMER
        if slot == timers.count { timers.append(t) } else { timers[slot] = t }
        Timers.add(t)
        return 0
    }

    static func settime(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let t = try timer(a.int32(0))
        guard a.int32(1) & ~1 == 0 else { throw .EINVAL }
        try t.settime(absolute: a.int32(1) & 1 != 0, a[2], a[3])  // TIMER_ABSTIME
        return 0
    }

    static func gettime(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try timer(a.int32(0)).gettime(a[1])
        return 0
    }

    static func getoverrun(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(UInt32(bitPattern: try timer(a.int32(0)).overrun))
    }

    static func delete(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let t = try timer(a.int32(0))
        Timers.remove(t)
        timers[Int(a.int32(0))] = nil
        return 0
    }
}

/// timerfd_create/settime/gettime; reads of the descriptor (KernelObjects) return and reset
/// the expiration count. TFD_TIMER_CANCEL_ON_SET is accepted and never cancels: the realtime
/// clock cannot be set inside the VM.
enum SysTimerfd {
    static func create(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = a.uint32(1)
        guard flags & ~(SysEvents.O_NONBLOCK | SysEvents.O_CLOEXEC) == 0 else { throw .EINVAL }
        let t = KernelTimer(base: try Timers.base(a.int32(0), allowCPU: false), notify: .counter)
        t.clockID = a.int32(0)
        let nonblocking: OpenFlags = flags & SysEvents.O_NONBLOCK != 0 ? .O_NONBLOCK : []
        let fd = try KernelObjects.install(.timer(t), flags: OpenFlags.O_RDWR.union(nonblocking), cloexec: flags & SysEvents.O_CLOEXEC != 0)
        Timers.add(t)
        return UInt64(fd)
    }

    private static func timer(_ fd: Int32) throws(Errno) -> KernelTimer {
        guard let id = KernelObjects.id(of: fd), case .timer(let t) = KernelObjects.object(id) else {
            throw SysIO.fs.isOpen(fd) ? .EINVAL : .EBADF
        }
        return t
    }

    static func settime(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let t = try timer(a.fd(0))
        guard a.int32(1) & ~3 == 0 else { throw .EINVAL }
        try t.settime(absolute: a.int32(1) & 1 != 0, a[2], a[3])  // TFD_TIMER_ABSTIME
        return 0
    }

    static func gettime(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try timer(a.fd(0)).gettime(a[1])
        return 0
    }
}
