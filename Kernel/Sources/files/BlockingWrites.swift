import GuestABI
import LinuxABI

/// A blocking write to a pipe or a stream socket returns once all of it is written, as on
/// Linux (a non-blocking one writes what fits). The kernel never waits inside a call: a
/// write that finds no room parks its thread, and the thread runs the whole call again when
/// something changes (Scheduler.blockCurrentRestarting). What earlier runs of the call
/// already moved is remembered here, per thread and per call, so the next run goes on from
/// there instead of writing those bytes twice.
///
/// A call is known by the registers it was made with (syscall number, rip, rsp and its
/// first three arguments): a run again of the same call has all of them; a call made from a
/// signal handler meanwhile has another rsp (its frame is below the interrupted one, or on
/// the alternate stack), so it never takes the interrupted call's progress.
///
/// A signal that interrupts the wait ends the call with the count written so far (EINTR
/// only when nothing was): `interrupted(_:result:)`, from Scheduler.wake.
enum BlockingWrites {
    struct Call: Equatable {
        var tid: Int32
        var number: UInt64, rip: UInt64, rsp: UInt64
        var arguments: (UInt64, UInt64, UInt64)

        static func == (a: Call, b: Call) -> Bool {
            a.tid == b.tid && a.number == b.number && a.rip == b.rip && a.rsp == b.rsp
                && a.arguments == b.arguments
        }

        /// The running thread's call (read before anything can switch threads).
        static var current: Call {
            let frame = Scheduler.frame
            return Call(tid: Scheduler.current.tid, number: frame[.rax], rip: frame[.rip], rsp: frame[.rsp],
                        arguments: (frame[.rdi], frame[.rsi], frame[.rdx]))
        }

        /// A parked thread's call, from its saved registers (rip already wound back over the
        /// `syscall` instruction when it waits to run again: `restarting`).
        init(of thread: Thread) {
            func word(_ slot: SyscallFrame.Slot) -> UInt64 { thread.frame[slot.rawValue] }
            self.init(tid: thread.tid, number: word(.rax), rip: word(.rip) &+ (thread.restarting ? 2 : 0),
                      rsp: word(.rsp), arguments: (word(.rdi), word(.rsi), word(.rdx)))
        }

        init(tid: Int32, number: UInt64, rip: UInt64, rsp: UInt64, arguments: (UInt64, UInt64, UInt64)) {
            self.tid = tid
            self.number = number
            self.rip = rip
            self.rsp = rsp
            self.arguments = arguments
        }
    }

    /// Calls parked part-way, with the bytes they moved: one per thread in such a wait. A
    /// call a signal handler abandoned (a longjmp out of the handler that ran while it was
    /// woken but not yet run again) leaves its record until the thread is gone; only a later
    /// call from the same rip and rsp with the same arguments could take it.
    nonisolated(unsafe) private static var parked: [(call: Call, done: Int)] = []

    /// The bytes earlier runs of `call` moved (0 for a call's first run); forgets them: the
    /// call either finishes in this run or parks again with `park`.
    static func resume(_ call: Call) -> Int {
        guard let i = parked.firstIndex(where: { $0.call == call }) else { return 0 }
        return parked.remove(at: i).done
    }

    /// `call` may wait for room having moved `done` bytes (its thread parked to run it again).
    static func park(_ call: Call, done: Int) {
        guard done > 0 else { return }
        parked.removeAll { Scheduler.thread($0.call.tid) == nil }
        parked.append((call, done))
    }

    /// Scheduler.wake of a thread waiting to run its call again: a call that already moved
    /// bytes returns their count instead of an error (EINTR), as Linux's pipe and socket
    /// writes do.
    static func interrupted(_ thread: Thread, result: UInt64) -> UInt64 {
        guard thread.restarting, Int64(bitPattern: result) < 0, !parked.isEmpty else { return result }
        let done = resume(Call(of: thread))
        return done > 0 ? UInt64(done) : result
    }

    /// Writes `total` bytes as one call, a step at a time: `step(done)` offers some of what
    /// follows the first `done` bytes (a buffer of a vector, the rest of one buffer) and
    /// returns how many it offered and wrote; it may park the thread when there is no room
    /// (Scheduler.switched is then set) if the write waits (`blocking`).
    /// Blocking, steps repeat until all is written, a step fails (the count so far, or its
    /// error if nothing was written) or a signal is to be delivered (the count so far).
    /// Non-blocking, a short step ends the call too (what fitted).
    static func write(total: Int, blocking: Bool,
                      _ step: (Int) throws(Errno) -> (offered: Int, written: Int)) throws(Errno) -> Int {
        let call: Call? = blocking ? Call.current : nil
        let me = Scheduler.current
        var done = call.map { resume($0) } ?? 0
        while done < total {
            // Recorded before the step: a step that parks may be woken by a signal (and the
            // count returned) before it comes back here.
            if let call { park(call, done: done) }
            let r: (offered: Int, written: Int)
            do { r = try step(done) } catch {
                if let call { _ = resume(call) }
                if done > 0 { return done }
                throw error
            }
            if Scheduler.switched { return 0 }  // parked: the call runs again when there is room
            if let call { _ = resume(call) }
            done += r.written
            if r.written == 0 || (!blocking && r.written < r.offered) { break }
            if blocking {
                Timers.check()
                if SysSignal.hasDeliverable(me) { break }
            }
        }
        return done
    }
}
