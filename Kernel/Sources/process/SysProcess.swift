import GuestABI
import KernelArch
import LinuxABI
import VFS

/// Process identity, limits and system information (processes are made and ended in
/// SysFork.swift, SysExec.swift and Process.swift; threads in SysThread.swift).
enum SysProcess {
    static func zero(_ a: SyscallArguments) throws(Errno) -> UInt64 { 0 }

    static func getpid(_ a: SyscallArguments) throws(Errno) -> UInt64 { UInt64(Process.current.pid) }

    /// Whether `pid` names the caller for calls about "this process" (0 or its own pid).
    static func isCaller(_ pid: UInt64) -> Bool { pid == 0 || pid == UInt64(Process.current.pid) }

    static func archPrctl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard let code = ArchPrctlCode(rawValue: a.int32(0)) else { throw .EINVAL }
        switch code {
        case .ARCH_SET_FS:
            guard a[1] < PageTable.userEnd else { throw .EPERM }
            Scheduler.current.fsBase = a[1]
            arch_wrmsr(Platform.msrFSBase, a[1])
        case .ARCH_SET_GS:
            guard a[1] < PageTable.userEnd else { throw .EPERM }
            Scheduler.current.gsBase = a[1]
            arch_wrmsr(Platform.msrGSBase, a[1])
        case .ARCH_GET_FS:
            try UserMemory.store(Scheduler.current.fsBase, a[1])
        case .ARCH_GET_GS:
            try UserMemory.store(Scheduler.current.gsBase, a[1])
        default:
            throw .EINVAL
        }
        return 0
    }

    /// rseq registration. With one CPU and no preemption of user code, a critical section is
    /// never interrupted, so registration only has to publish cpu_id = 0. One area per thread.
    /// struct rseq: cpu_id_start u32 @0, cpu_id u32 @4, rseq_cs u64 @8, flags u32 @16.
    static func rseq(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let address = a[0], length = a.uint32(1), flags = a.int32(2)
        if flags & 1 != 0 {  // RSEQ_FLAG_UNREGISTER
            guard address == Scheduler.current.rseqArea, Scheduler.current.rseqArea != 0 else { throw .EINVAL }
            Scheduler.current.rseqArea = 0
            return 0
        }
        guard flags == 0, length >= 32, address & 31 == 0 else { throw .EINVAL }
        guard Scheduler.current.rseqArea == 0 else { throw address == Scheduler.current.rseqArea ? .EBUSY : .EINVAL }
        let area = try UserMemory.writable(address, 8)
        area.writeLE(UInt32(0), at: 0)
        area.writeLE(UInt32(0), at: 4)
        Scheduler.current.rseqArea = address
        return 0
    }

    /// The host name: sethostname's, else the --hostname of the run, else "apus".
    nonisolated(unsafe) static var hostnameSet: [UInt8]? = nil
    static var hostname: [UInt8] {
        if let name = hostnameSet { return name }
        let boot = Kernel.boot.hostname
        return boot.isEmpty ? Array("apus".utf8) : boot
    }

    static func uname(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        var u = Utsname()
        u.release = "6.6.0-apus"
        u.version = "#1 SMP apus"
        let out = try UserMemory.writable(a[0], Utsname.size)
        try u.encode(into: out)
        // nodename @65, 65 bytes: NUL-terminated (the name is at most 64 bytes).
        let name = hostname
        for i in 0..<65 { out[65 + i] = i < name.count ? name[i] : 0 }
        return 0
    }

    /// sethostname(name, length): at most 64 bytes (EINVAL beyond, or for a negative length);
    /// root only (EPERM), as CAP_SYS_ADMIN. The name may hold any bytes, as on Linux.
    static func sethostname(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let length = Int64(bitPattern: a[1])
        guard length >= 0, length <= 64 else { throw .EINVAL }
        guard Process.current.credentials.effectiveUID == 0 else { throw .EPERM }
        hostnameSet = Array(try UserMemory.readable(a[0], Int(length)))
        return 0
    }

    /// prctl: PR_SET_NAME/PR_GET_NAME (16 bytes with the NUL), PR_SET_PDEATHSIG and
    /// PR_GET_PDEATHSIG, PR_SET_DUMPABLE/GET_DUMPABLE, PR_SET_CHILD_SUBREAPER and
    /// PR_GET_CHILD_SUBREAPER.
    static func prctl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let me = Scheduler.current
        switch a.int32(0) {
        case 15:  // PR_SET_NAME
            let name = try UserMemory.string(a[1], limit: 1 << 20)
            me.name = Array(name.prefix(15))
            return 0
        case 16:  // PR_GET_NAME
            let out = try UserMemory.writable(a[1], 16)
            let name = me.name
            for i in 0..<16 { out[i] = i < name.count ? name[i] : 0 }
            return 0
        case 1:                                                    // PR_SET_PDEATHSIG
            guard a[1] <= 64 else { throw .EINVAL }
            me.process.deathSignal = Int32(a[1])
            return 0
        case 2: try UserMemory.store(UInt32(bitPattern: me.process.deathSignal), a[1]); return 0  // PR_GET_PDEATHSIG
        case 36: me.process.isSubreaper = a[1] != 0; return 0      // PR_SET_CHILD_SUBREAPER
        case 38:                                                   // PR_SET_NO_NEW_PRIVS (once set, for good)
            guard a[1] == 1, a[2] == 0, a[3] == 0, a[4] == 0 else { throw .EINVAL }
            me.process.noNewPrivileges = true
            return 0
        case 39:                                                   // PR_GET_NO_NEW_PRIVS
            guard a[1] == 0, a[2] == 0, a[3] == 0, a[4] == 0 else { throw .EINVAL }
            return me.process.noNewPrivileges ? 1 : 0
        case 37: try UserMemory.store(UInt32(me.process.isSubreaper ? 1 : 0), a[1]); return 0
        case 3: return 1                                           // PR_GET_DUMPABLE
        case 4: guard a[1] <= 1 else { throw .EINVAL }; return 0   // PR_SET_DUMPABLE
        default: throw .EINVAL
        }
    }

    /// getrusage(RUSAGE_SELF 0 / THREAD 1 / CHILDREN -1): the CPU time of the process's
    /// threads (the calling thread's), or of its reaped children, as user time.
    static func getrusage(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let who = a.int32(0)
        guard who == 0 || who == 1 || who == -1 else { throw .EINVAL }
        var usage = Rusage()
        let me = Process.current
        let nanos: UInt64
        switch who {
        case 0: nanos = processCPUNanos(me)
        case 1: nanos = Scheduler.cpuNanos(of: Scheduler.current)
        default: nanos = me.childrenCPU
        }
        usage.userTime = Timeval(Timespec(totalNanoseconds: Int64(clamping: nanos)))
        if who != -1 {
            usage.maxResidentSetKiB = Int64((PhysicalMemory.totalPages - PhysicalMemory.freePages) * 4)
        }
        try usage.encode(into: UserMemory.writable(a[1], Rusage.size))
        return 0
    }

    /// The processes getpriority/setpriority(which, who) name: PRIO_PROCESS 0 (a pid, 0:
    /// the caller), PRIO_PGRP 1 (a group, 0: the caller's), PRIO_USER 2 (a real uid, 0… as
    /// given). EINVAL for another `which`.
    private static func priorityTargets(_ which: Int32, _ who: Int32) throws(Errno) -> [Process] {
        let me = Process.current
        let live = Processes.all.filter { !$0.isZombie }
        switch which {
        case 0: return who == 0 ? [me] : live.filter { $0.pid == who }
        case 1: return live.filter { $0.processGroup == (who == 0 ? me.processGroup : who) }
        case 2:
            let uid = who == 0 ? me.credentials.realUID : UInt32(bitPattern: who)
            return live.filter { $0.credentials.realUID == uid }
        default: throw .EINVAL
        }
    }

    /// getpriority: the highest priority (lowest nice) of the targets, as the syscall returns
    /// it (20 - nice, so never negative); ESRCH if none.
    static func getpriority(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let targets = try priorityTargets(a.int32(0), a.int32(1))
        guard let lowest = targets.map({ $0.nice }).min() else { throw .ESRCH }
        return UInt64(20 - lowest)
    }

    /// setpriority: nice clamped to -20…19 for every target; lowering it needs root (EACCES),
    /// another user's process too (EPERM).
    static func setpriority(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let targets = try priorityTargets(a.int32(0), a.int32(1))
        guard !targets.isEmpty else { throw .ESRCH }
        let nice = min(max(a.int32(2), -20), 19)
        let me = Process.current.credentials
        for p in targets {
            if me.effectiveUID != 0 && me.effectiveUID != p.credentials.realUID && me.effectiveUID != p.credentials.effectiveUID {
                throw .EPERM
            }
            if nice < p.nice && me.effectiveUID != 0 { throw .EACCES }
        }
        for p in targets { p.nice = nice }
        return 0
    }

    /// The CPU time of `process`'s threads, the ended ones included.
    static func processCPUNanos(_ process: Process) -> UInt64 {
        var nanos = process.endedThreadsCPU
        for t in Scheduler.threads where t.process === process { nanos &+= Scheduler.cpuNanos(of: t) }
        return nanos
    }

    /// times(): clock ticks (100 Hz) since boot; user time = the process's CPU time,
    /// children's user time = its reaped children's.
    static func times(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let ticks = Int64(Clock.monotonicNanos / 10_000_000)
        if a[0] != 0 {
            var tms = Tms(userTime: Int64(processCPUNanos(Process.current) / 10_000_000))
            tms.childrenUserTime = Int64(Process.current.childrenCPU / 10_000_000)
            try tms.encode(into: UserMemory.writable(a[0], Tms.size))
        }
        return UInt64(ticks)
    }

    /// getcpu(cpu *, node *, cache): one CPU, one node.
    static func getcpu(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        if a[0] != 0 { try UserMemory.store(UInt32(0), a[0]) }
        if a[1] != 0 { try UserMemory.store(UInt32(0), a[1]) }
        return 0
    }

    /// sched_setaffinity: any mask that includes CPU 0 is accepted (there is only CPU 0).
    static func schedSetaffinity(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[0] == 0 || Scheduler.thread(a.int32(0)) != nil else { throw .ESRCH }
        guard a.size(1) >= 1 else { throw .EINVAL }
        let first = try UserMemory.load(UInt8.self, a[2])
        guard first & 1 != 0 else { throw .EINVAL }
        return 0
    }

    /// capget (version 3 header, two 32-bit data words).
    static func capget(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let header = try UserMemory.writable(a[0], 8)
        let version = header.readLE(UInt32.self, at: 0)
        guard version == 0x2008_0522 || version == 0x2007_1026 || version == 0x1998_0330 else {
            header.writeLE(UInt32(0x2008_0522), at: 0)
            if a[1] == 0 { return 0 }
            throw .EINVAL
        }
        if a[1] != 0 {
            let words = version == 0x1998_0330 ? 1 : 2
            let data = try UserMemory.writable(a[1], words * 12)
            // Root (effective uid 0) holds every capability, anyone else none.
            let all: UInt32 = Process.current.credentials.effectiveUID == 0 ? UInt32.max : 0
            for i in 0..<words {
                data.writeLE(all, at: i * 12)      // effective
                data.writeLE(all, at: i * 12 + 4)  // permitted
                data.writeLE(UInt32(0), at: i * 12 + 8)   // inheritable
            }
        }
        return 0
    }

    /// The limits of `process` (the running one's descriptor table is the VFS's own).
    static func limit(_ resource: Int32, of process: Process) throws(Errno) -> Rlimit {
        guard let r = RlimitResource(rawValue: resource) else { throw .EINVAL }
        let infinity = Rlimit.infinity
        switch r {
        case .RLIMIT_STACK: return Rlimit(current: Loader.stackSize, maximum: infinity)
        case .RLIMIT_NOFILE:
            let files = descriptorLimit(of: process)
            return Rlimit(current: UInt64(files.soft), maximum: UInt64(files.hard))
        case .RLIMIT_NPROC: return Rlimit(current: UInt64(Processes.limit), maximum: UInt64(Processes.limit))
        case .RLIMIT_CORE, .RLIMIT_MEMLOCK, .RLIMIT_NICE, .RLIMIT_RTPRIO, .RLIMIT_MSGQUEUE:
            return Rlimit(current: 0, maximum: 0)
        case .RLIMIT_SIGPENDING: return Rlimit(current: 64, maximum: 64)
        default: return Rlimit(current: infinity, maximum: infinity)
        }
    }

    static func descriptorLimit(of process: Process) -> DescriptorLimit {
        process === Process.current ? SysIO.fs.descriptorLimit : process.files.descriptorLimit
    }

    /// Sets a limit of `process`. RLIMIT_NOFILE is kept and enforced (`DescriptorLimit`: the
    /// hard limit only goes down, as in a container); the other limits are fixed by the VM's
    /// shape: lowering them is accepted and has no effect yet, raising beyond them is EPERM.
    static func setLimit(_ resource: Int32, of process: Process, to new: Rlimit) throws(Errno) {
        let old = try limit(resource, of: process)
        guard new.isValid else { throw .EINVAL }
        if resource == RlimitResource.RLIMIT_NOFILE.rawValue {
            let changed = try descriptorLimit(of: process).changed(soft: new.current, hard: new.maximum)
            if process === Process.current { SysIO.fs.descriptorLimit = changed } else { process.files.descriptorLimit = changed }
            return
        }
        guard new.maximum <= old.maximum else { throw .EPERM }
    }

    /// prlimit64(pid, resource, new, old): `old` gets the limit before the change.
    static func prlimit64(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let target: Process
        if a[0] == 0 {
            target = Process.current
        } else {
            guard let p = Processes.find(a.int32(0)), !p.isZombie else { throw .ESRCH }
            target = p
        }
        let old = try limit(a.int32(1), of: target)
        if a[2] != 0 {
            try setLimit(a.int32(1), of: target, to: Rlimit.decode(from: UserMemory.readable(a[2], Rlimit.size)))
        }
        if a[3] != 0 { try old.encode(into: UserMemory.writable(a[3], Rlimit.size)) }
        return 0
    }

    static func getrlimit(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try limit(a.int32(0), of: Process.current).encode(into: UserMemory.writable(a[1], Rlimit.size))
        return 0
    }

    static func setrlimit(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try setLimit(a.int32(0), of: Process.current, to: Rlimit.decode(from: UserMemory.readable(a[1], Rlimit.size)))
        return 0
    }

    static func sysinfo(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        var s = Sysinfo()
        s.uptimeSeconds = Int64(Clock.monotonicNanos / 1_000_000_000)
        s.totalRAM = Kernel.boot.memorySize
        s.freeRAM = UInt64(PhysicalMemory.freePages) * 4096
                try s.encode(into: UserMemory.writable(a[0], Sysinfo.size))
        return 0
    }

    /// One CPU: the mask has bit 0; the return value is the bytes written (one long).
    static func schedGetaffinity(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[0] == 0 || Scheduler.thread(a.int32(0)) != nil else { throw .ESRCH }
        let size = a.size(1)
        guard size >= 8, size & 7 == 0 else { throw .EINVAL }
        try UserMemory.store(UInt64(1), a[2])
        return 8
    }

    static func getrandom(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let flags = a.uint32(2)
        guard flags & ~0x7 == 0 else { throw .EINVAL }  // GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE
        let count = Int(min(a.size(1), 33_554_431))
        let out = try UserMemory.writable(a[0], count)
        Random.fill(out)
        return UInt64(count)
    }
}
