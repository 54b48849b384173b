import GuestABI
import KernelArch
import LinuxABI
import VFS

/// New processes and programs: fork, vfork, clone without CLONE_THREAD, execve/execveat,
/// exit_group, and the ids between processes (parent, process group, session).
enum SysFork {
    static let CLONE_VM: UInt64 = 0x100
    static let CLONE_FS: UInt64 = 0x200
    static let CLONE_FILES: UInt64 = 0x400
    static let CLONE_SIGHAND: UInt64 = 0x800
    static let CLONE_VFORK: UInt64 = 0x4000
    static let CLONE_PARENT: UInt64 = 0x8000
    static let CLONE_THREAD: UInt64 = 0x1_0000
    static let CLONE_SETTLS: UInt64 = 0x8_0000
    static let CLONE_PARENT_SETTID: UInt64 = 0x10_0000
    static let CLONE_CHILD_CLEARTID: UInt64 = 0x20_0000
    static let CLONE_CHILD_SETTID: UInt64 = 0x100_0000
    /// Namespaces, pidfds, ptrace, shared descriptor tables between processes: not supported.
    static let unsupported: UInt64 = 0x1000 | 0x2000 | 0x2_0000 | 0x80_0000 | 0x200_0000 | 0x400_0000
        | 0x800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000 | 0x1_0000_0000 | CLONE_FILES

    static func fork(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try newProcess(flags: UInt64(SysSignal.SIGCHLD), stack: 0, parentTid: 0, childTid: 0, tls: 0)
    }

    static func vfork(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try newProcess(flags: CLONE_VM | CLONE_VFORK | UInt64(SysSignal.SIGCHLD), stack: 0, parentTid: 0, childTid: 0, tls: 0)
    }

    /// clone/clone3 without CLONE_THREAD: a new process. Its memory is a copy of the
    /// caller's (CLONE_VM: the same; CLONE_VFORK: the caller waits until the child execs
    /// or ends), its descriptors share the caller's open file descriptions, and its parent
    /// gets `flags & 0xff` when it ends.
    static func newProcess(flags: UInt64, stack: UInt64, parentTid: UInt64, childTid: UInt64,
                           tls: UInt64) throws(Errno) -> UInt64 {
        if flags & unsupported != 0 {
            var m = Message("apus: clone of a process with flags it does not support (namespaces, pidfd, ptrace, CLONE_FILES): ")
            m.hex(flags & unsupported)
            Console.kernelLine(m)
            throw .EINVAL
        }
        guard flags & CLONE_SIGHAND == 0 || flags & CLONE_VM != 0 else { throw .EINVAL }
        guard flags & 0xff <= 64 else { throw .EINVAL }
        if flags & CLONE_SETTLS != 0 && tls >= PageTable.userEnd { throw .EPERM }
        // The per-VM process limit (zombies count: a fork bomb that reaps nothing stops here).
        guard Processes.all.count < Processes.limit, PhysicalMemory.canGrantAppObject else { throw .EAGAIN }
        if flags & CLONE_PARENT_SETTID != 0 { _ = try UserMemory.writable(parentTid, 4) }
        let parent = Process.current
        let memory: Memory
        if flags & CLONE_VM != 0 {
            memory = parent.memory
            memory.users += 1
        } else {
            memory = try AddressSpace.fork()
        }
        let pid = Processes.allocateID()
        let child = Process(pid: pid, memory: memory, parent: flags & CLONE_PARENT != 0 && parent.parent != nil ? parent.parent : parent)
        child.actions = parent.actions
        child.credentials = parent.credentials
        child.noNewPrivileges = parent.noNewPrivileges
        child.nice = parent.nice
        child.exitSignal = Int32(flags & 0xff)
        child.commandLine = parent.commandLine
        child.program = parent.program
        child.files = SysIO.fs.forkProcessFiles(identity: Int(pid))
        // The child's descriptors (the same as the caller's now) count on the kernel objects
        // they name (pipes, sockets…).
        var fd: Int32 = 0
        while Int(fd) < SysIO.fs.descriptorTableSize {
            if let id = KernelObjects.id(of: fd) { KernelObjects.retain(id) }
            fd += 1
        }
        child.parent?.children.append(child)
        Processes.all.append(child)
        Files.addProcessDirectory(pid, executable: parent.program?.executablePath ?? [])
        let me = Scheduler.current
        let thread = Scheduler.spawn(stack: stack, tls: flags & CLONE_SETTLS != 0 ? tls : nil, process: child, id: pid)
        thread.altStack = me.altStack
        thread.rseqArea = flags & CLONE_VM != 0 ? 0 : me.rseqArea
        thread.robustList = flags & CLONE_VM != 0 ? 0 : me.robustList
        if flags & CLONE_PARENT_SETTID != 0 { try? UserMemory.store(UInt32(bitPattern: pid), parentTid) }
        if flags & CLONE_CHILD_SETTID != 0 { try? AddressSpace.store(UInt32(bitPattern: pid), at: childTid, in: memory) }
        if flags & CLONE_CHILD_CLEARTID != 0 { thread.clearChildTid = childTid }
        if flags & CLONE_VFORK != 0 {
            child.vforkParent = me
            me.uninterruptible = true
            Scheduler.blockCurrent(deadline: 0, timeoutResult: 0)
        }
        return UInt64(pid)
    }

    // MARK: exit

    /// exit_group: every thread of the process ends.
    static func exitGroup(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        Processes.exitCurrent(status: (a.uint32(0) & 0xff) << 8)
        return 0
    }

    // MARK: ids

    static func getppid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(Process.current.parent?.pid ?? 0)
    }

    static func getpgid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(try target(a.int32(0)).processGroup)
    }

    static func getpgrp(_ a: SyscallArguments) throws(Errno) -> UInt64 { UInt64(Process.current.processGroup) }

    static func getsid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(try target(a.int32(0)).session)
    }

    /// The process `pid` names for the id calls (0: the caller); ESRCH if none.
    private static func target(_ pid: Int32) throws(Errno) -> Process {
        if pid == 0 { return Process.current }
        guard pid > 0, let p = Processes.find(pid) else { throw .ESRCH }
        return p
    }

    /// setpgid(pid, pgid): the caller or one of its children (EACCES once it exec'd; ESRCH
    /// for anyone else) joins group `pgid` (0: its own pid) of the same session (EPERM),
    /// or starts it. A session leader cannot move (EPERM).
    static func setpgid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let me = Process.current
        guard a.int32(1) >= 0 else { throw .EINVAL }
        let p = try target(a.int32(0))
        if p !== me {
            guard p.parent === me, !p.isZombie else { throw .ESRCH }
            guard p.session == me.session else { throw .EPERM }
            guard !p.didExec else { throw .EACCES }
        }
        guard p.session != p.pid else { throw .EPERM }
        let group = a.int32(1) == 0 ? p.pid : a.int32(1)
        if group != p.pid {
            guard Processes.all.contains(where: { !$0.isZombie && $0.processGroup == group && $0.session == p.session })
            else { throw .EPERM }
        }
        p.processGroup = group
        return 0
    }

    /// setsid: a new session and process group led by the caller; EPERM if it leads a
    /// process group already.
    static func setsid(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let me = Process.current
        guard !Processes.all.contains(where: { $0.processGroup == me.pid }) else { throw .EPERM }
        me.session = me.pid
        me.processGroup = me.pid
        return UInt64(me.pid)
    }
}
