import GuestABI
import KernelArch
import LinuxABI

/// Process identity, limits, system information and exit. One process (pid 1, its main
/// thread tid 1), running as root in its own VM; threads are in SysThread.swift.
enum SysProcess {

    static let pid: UInt64 = 1

    static func exit(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        Console.exit(.exited(UInt8(truncatingIfNeeded: a[0])))
    }

    static func zero(_ a: SyscallArguments) throws(Errno) -> UInt64 { 0 }

    static func getpid(_ a: SyscallArguments) throws(Errno) -> UInt64 { pid }

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

    static func uname(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        var u = Utsname()
        u.nodename = "apus"
        u.release = "6.6.0-apus"
        u.version = "#1 SMP apus"
        try u.encode(into: UserMemory.writable(a[0], Utsname.size))
        return 0
    }

    static func limit(_ resource: Int32) throws(Errno) -> Rlimit {
        guard let r = RlimitResource(rawValue: resource) else { throw .EINVAL }
        let infinity = Rlimit.infinity
        switch r {
        case .RLIMIT_STACK: return Rlimit(current: Loader.stackSize, maximum: infinity)
        case .RLIMIT_NOFILE: return Rlimit(current: 1024, maximum: 1024)
        case .RLIMIT_NPROC: return Rlimit(current: 1, maximum: 1)
        case .RLIMIT_CORE, .RLIMIT_MEMLOCK, .RLIMIT_NICE, .RLIMIT_RTPRIO, .RLIMIT_MSGQUEUE:
            return Rlimit(current: 0, maximum: 0)
        case .RLIMIT_SIGPENDING: return Rlimit(current: 64, maximum: 64)
        default: return Rlimit(current: infinity, maximum: infinity)
        }
    }

    static func prlimit64(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[0] == 0 || a[0] == pid else { throw .ESRCH }
        let old = try limit(a.int32(1))
        if a[2] != 0 {
            // Limits are fixed by the VM's shape; lowering is accepted and has no effect yet.
            let new = try Rlimit.decode(from: UserMemory.readable(a[2], Rlimit.size))
            guard new.current <= new.maximum else { throw .EINVAL }
            guard new.maximum <= old.maximum else { throw .EPERM }
        }
        if a[3] != 0 { try old.encode(into: UserMemory.writable(a[3], Rlimit.size)) }
        return 0
    }

    static func getrlimit(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try limit(a.int32(0)).encode(into: UserMemory.writable(a[1], Rlimit.size))
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
        guard a[0] == 0 || a[0] == pid else { throw .ESRCH }
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
