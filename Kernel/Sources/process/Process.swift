import GuestABI
import LinuxABI
import VFS

/// A process: an address space, a descriptor table and current directory, signal
/// dispositions and pending signals, timers, ids, and the threads that run in it (each
/// `Thread` names its process). A process that ended is a zombie (`waitStatus` set, no
/// threads, memory and files released) until its parent reaps it with wait4/waitid.
final class Process {
    let pid: Int32
    var parent: Process?
    var children: [Process] = []
    var processGroup: Int32
    var session: Int32
    var memory: Memory
    /// Its descriptor table while another process runs (the running one's is in the VFS).
    var files = ProcessFiles()
    /// Its user and group ids (the VFS holds a copy of the running process's).
    var credentials = Credentials.root
    /// Signal dispositions (65 entries once one is set) and signals sent to the process.
    var actions: [KernelSigaction] = []
    var pending = PendingSignals()
    /// setitimer's three timers and the POSIX timers (timer_create), by id.
    var intervalTimers: [KernelTimer] = []
    var posixTimers: [KernelTimer?] = []
    /// The signal its parent gets when it ends (SIGCHLD, or clone's exit signal; 0: none).
    var exitSignal: Int32 = SysSignal.SIGCHLD
    /// prctl(PR_SET_PDEATHSIG): sent to it when its parent ends.
    var deathSignal: Int32 = 0
    /// prctl(PR_SET_CHILD_SUBREAPER): orphans below it are re-parented to it.
    var isSubreaper = false
    /// prctl(PR_SET_NO_NEW_PRIVS): kept through fork and execve; execve then ignores set-ID bits.
    var noNewPrivileges = false
    /// setpriority's nice value (-20…19), kept through fork. One vCPU runs every thread in
    /// turn: the value is reported, not yet weighed by the scheduler.
    var nice: Int32 = 0
    /// Whether it ran execve since fork (setpgid on such a child is EACCES).
    var didExec = false
    /// A vfork child: the parent's thread that waits until this process execs or ends.
    var vforkParent: Thread? = nil
    /// The wait status once it ended (exit code << 8, or the signal | 0x80 with a core).
    var waitStatus: UInt32? = nil
    /// Stopped by SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU; a stop or continue wait4 has not
    /// reported yet (WUNTRACED / WCONTINUED): the signal, or 0xffff for a continue.
    var stopped = false
    var unreportedStateChange: UInt32? = nil
    /// argv as /proc/[pid]/cmdline shows it (NUL-separated).
    var commandLine: [UInt8] = []
    /// The program it runs (for crash reports' symbols).
    var program: LoadedProgram? = nil
    /// CPU time of its threads that ended, and of its reaped children (RUSAGE_CHILDREN).
    var endedThreadsCPU: UInt64 = 0
    var childrenCPU: UInt64 = 0

    init(pid: Int32, memory: Memory, parent: Process?) {
        self.pid = pid
        self.memory = memory
        self.parent = parent
        processGroup = parent?.processGroup ?? pid
        session = parent?.session ?? pid
    }

    var isZombie: Bool { waitStatus != nil }

    /// The first `count` NUL-terminated strings of `block`, NULs included (cmdline).
    static func argumentBytes(_ block: UnsafeRawBufferPointer, count: Int) -> [UInt8] {
        var end = 0, found = 0
        while found < count && end < block.count {
            if block[end] == 0 { found += 1 }
            end += 1
        }
        return Array(block[0..<end])
    }

    /// Its live threads.
    var threads: [Thread] { Scheduler.threads.filter { $0.process === self } }

    /// The running thread's process.
    static var current: Process { Scheduler.current.process }
}

/// Every process of the VM, live or zombie, and the pid allocator.
enum Processes {
    nonisolated(unsafe) static var all: [Process] = []
    /// Linux's pid_max default: pids count up to it, then wrap, skipping ids in use.
    static let maxPid: Int32 = 4_194_304
    nonisolated(unsafe) static var lastID: Int32 = 1

    /// Processes (live and zombie) a VM may hold: fork beyond it is EAGAIN (RLIMIT_NPROC).
    /// As many as the VM's memory holds with their stacks (eagerly backed) and 256 KiB more
    /// each, at least 16 and at most 4096: a fork bomb meets this limit before memory runs
    /// out, and the VM keeps working.
    static var limit: Int {
        let perProcess = Loader.stackSize + (256 << 10)
        return max(16, min(Int(Kernel.boot.memorySize / perProcess), 4096))
    }

    static func find(_ pid: Int32) -> Process? {
        for p in all where p.pid == pid { return p }
        return nil
    }

    /// A pid/tid no process, thread, process group or session uses (pids are reused only
    /// after their process was reaped).
    static func allocateID() -> Int32 {
        while true {
            lastID = lastID >= maxPid ? 2 : lastID + 1
            let id = lastID
            if Scheduler.thread(id) != nil { continue }
            if all.contains(where: { $0.pid == id || $0.processGroup == id || $0.session == id }) { continue }
            return id
        }
    }

    /// The process orphans of `process` go to: the nearest subreaper above it, else pid 1.
    static func reaper(for process: Process) -> Process? {
        var p = process.parent
        while let candidate = p {
            if candidate.isSubreaper && !candidate.isZombie { return candidate }
            p = candidate.parent
        }
        return find(1)
    }

    /// Makes `next` the running process: its descriptor table goes into the VFS (the
    /// previous one's back to it) and its address space into CR3 if it is another.
    static func switchTo(_ next: Process, from previous: Process) {
        guard next !== previous else { return }
        SysIO.fs.exchangeProcessFiles(&previous.files)
        SysIO.fs.exchangeProcessFiles(&next.files)
        if next.credentials != previous.credentials { SysIO.fs.credentials = next.credentials }
        if next.memory !== Memory.current { next.memory.activate() }
    }

    // MARK: ending

    /// The running process ends with wait status `status`: its other threads stop, its
    /// descriptors close, its memory goes (once no vfork parent shares it), its children
    /// go to the reaper, and its parent gets its exit signal. Pid 1 ending stops the VM with
    /// its status (every other process dies with it, as in a container). Runs another
    /// thread; never returns to the caller's user code.
    static func exitCurrent(status: UInt32) {
        let me = Process.current
        if me.pid == 1 {
            if status & 0x7f == 0 {
                Console.exit(.exited(UInt8(truncatingIfNeeded: status >> 8)))
            }
            Console.exit(.signaled(UInt8(status & 0x7f)))
        }
        SysThread.releaseRobustLists(of: me)
        SysIPC.processExiting(me.pid)
        Scheduler.endOtherThreads(of: me)
        SysIO.closeDescriptors { _ in true }
        SysIO.fs.releaseProcessFiles()
        for t in me.intervalTimers { Timers.remove(t) }
        for case let t? in me.posixTimers { Timers.remove(t) }
        me.intervalTimers = []
        me.posixTimers = []
        releaseMemory(of: me)
        me.waitStatus = status
        orphanChildren(of: me)
        notifyParent(of: me)
        Scheduler.exitCurrent()
    }

    /// The running process stops using its address space (exit, exec): a vfork parent
    /// sharing it gets it back and runs again.
    static func releaseMemory(of me: Process) {
        if let parent = me.vforkParent {
            me.vforkParent = nil
            parent.uninterruptible = false
            Scheduler.wake(parent, result: UInt64(me.pid))
        }
        let memory = me.memory
        memory.users -= 1
        if memory.users == 0 { Scheduler.retire(memory) }
    }

    private static func orphanChildren(of me: Process) {
        guard !me.children.isEmpty else { return }
        let reaper = reaper(for: me)
        for child in me.children {
            child.parent = reaper
            reaper?.children.append(child)
            if child.deathSignal != 0 && !child.isZombie {
                SysSignal.raise(on: child, child.deathSignal, SysSignal.sentByKernel)
            }
            if child.isZombie, let reaper { notifyParent(of: child, to: reaper) }
        }
        me.children = []
    }

    /// Sends `child`'s exit signal to its parent and wakes a wait there; a parent that
    /// ignores SIGCHLD (SIG_IGN or SA_NOCLDWAIT) does not keep zombies: reaped at once.
    static func notifyParent(of child: Process, to parentOverride: Process? = nil) {
        guard let parent = parentOverride ?? child.parent else { return }
        let action = SysSignal.action(SysSignal.SIGCHLD, of: parent)
        if action.handler == SysSignal.SIG_IGN || action.flags.contains(.SA_NOCLDWAIT) {
            reap(child)
        }
        if child.exitSignal != 0 {
            SysSignal.raise(on: parent, child.exitSignal, SysWait.childInfo(child, status: child.waitStatus ?? 0))
        }
        Scheduler.wakeRestartingWaiters()
    }

    /// Removes a zombie for good: its pid becomes free.
    static func reap(_ child: Process) {
        child.parent?.childrenCPU &+= child.endedThreadsCPU &+ child.childrenCPU
        child.parent?.children.removeAll { $0 === child }
        child.parent = nil
        all.removeAll { $0 === child }
        Files.removeProcessDirectory(child.pid)
    }
}
