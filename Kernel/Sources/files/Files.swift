import GuestABI
import ImageFormat
import LinuxABI
import VFS

/// The app's files: the VFS (Sources/VFS) mounted on the image, with the kernel as its host.
enum Files {
    nonisolated(unsafe) static var mounted: FileSystem<KernelHost>? = nil

    /// Generated files (ids for `SyntheticNode.generated`).
    enum Generated: UInt32 {
        case selfMaps = 1, meminfo, cpuinfo, cpuOnline, selfStatus, uptime, selfStat, stat, resolvConf, hosts, selfCmdline, mounts, mountinfo, hostname
    }

    /// /proc/PID's files: the id carries the pid (`processFileTag | pid << 4 | kind`).
    enum ProcessFile: UInt32 { case stat = 1, status, cmdline, maps }
    static let processFileTag: UInt32 = 0x8000_0000

    /// Adds /proc/PID (stat, status, cmdline, maps, exe naming `executable`, and cwd naming
    /// the running process's current directory, which a new process shares) for a new process.
    static func addProcessDirectory(_ pid: Int32, executable: [UInt8]) {
        setProcessLink(pid, "exe", executable)
        if let cwd = try? SysIO.fs.currentDirectoryPath() { setProcessLink(pid, "cwd", cwd) }
        for (name, kind) in [("stat", ProcessFile.stat), ("status", .status), ("cmdline", .cmdline), ("maps", .maps)]
            as [(StaticString, ProcessFile)] {
            var path = Message("/proc/")
            path.decimal(UInt64(pid))
            path.append("/")
            path.append(name)
            let id = processFileTag | UInt32(pid) << 4 | kind.rawValue
            path.bytes.withUnsafeBytes { try? SysIO.fs.addSynthetic(path: $0, .generated(id)) }
        }
    }

    /// /proc/PID/exe and /proc/PID/cwd: links to the program the process runs (made again at
    /// execve) and to its current directory (made again at chdir and fchdir).
    static func setProcessLink(_ pid: Int32, _ name: StaticString, _ target: [UInt8]) {
        guard !target.isEmpty else { return }
        var path = Message("/proc/")
        path.decimal(UInt64(pid))
        path.append("/")
        path.append(name)
        path.bytes.withUnsafeBytes { try? SysIO.fs.addSynthetic(path: $0, .symlink(target: target)) }
    }

    /// Removes /proc/PID once its process was reaped.
    static func removeProcessDirectory(_ pid: Int32) {
        var path = Message("/proc/")
        path.decimal(UInt64(pid))
        path.bytes.withUnsafeBytes { SysIO.fs.removeSynthetic(path: $0) }
    }

    static func mount(image: ImageReader, executablePath: UnsafeRawBufferPointer) {
        var options = MountOptions()
        options.imageTime = Timespec(totalNanoseconds: Int64(Kernel.boot.realtimeNanosAtBoot))
        options.executablePath = Array(executablePath)
        var fs = FileSystem(image: image, host: KernelHost(), options: options)
        let synthetic: [(StaticString, Generated)] = [
            ("/proc/self/maps", .selfMaps), ("/proc/meminfo", .meminfo), ("/proc/cpuinfo", .cpuinfo),
            ("/sys/devices/system/cpu/online", .cpuOnline), ("/sys/devices/system/cpu/possible", .cpuOnline),
            ("/proc/self/status", .selfStatus), ("/proc/uptime", .uptime), ("/proc/self/stat", .selfStat),
            ("/proc/stat", .stat), ("/proc/self/cmdline", .selfCmdline),
            ("/proc/mounts", .mounts), ("/proc/self/mounts", .mounts), ("/proc/self/mountinfo", .mountinfo),
            ("/proc/sys/kernel/hostname", .hostname),
        ]
        for (path, id) in synthetic {
            path.withUTF8Buffer { p in
                try? fs.addSynthetic(path: UnsafeRawBufferPointer(p), .generated(id.rawValue))
            }
        }
        ("/proc/self/fd" as StaticString).withUTF8Buffer { p in try? fs.addSynthetic(path: UnsafeRawBufferPointer(p), .descriptorDirectory) }
        // The network's name service: the VM's DNS server always (the image's copy is the
        // build host's, whose servers may be unreachable from here, e.g. 127.0.0.53), and a
        // /etc/hosts with localhost and the hostname when the image brings none.
        if Kernel.boot.network.ipv4DNS != 0 {
            ("/etc/resolv.conf" as StaticString).withUTF8Buffer { p in
                try? fs.addSynthetic(path: UnsafeRawBufferPointer(p), .generated(Generated.resolvConf.rawValue))
            }
        }
        ("/etc/hosts" as StaticString).withUTF8Buffer { p in
            let path = UnsafeRawBufferPointer(p)
            if (try? fs.imageContents(path: path)) == nil { try? fs.addSynthetic(path: path, .generated(Generated.hosts.rawValue)) }
        }
        if Kernel.boot.flags & BootInfo.flagTerminal != 0 {
            Terminal.install(&fs)  // apus run -t: 0, 1, 2 are /dev/pts/0
        } else {
            try? fs.installConsole(fd: 0, id: ConsoleID.stdin, flags: .O_RDONLY)
            try? fs.installConsole(fd: 1, id: ConsoleID.stdout, flags: .O_WRONLY)
            try? fs.installConsole(fd: 2, id: ConsoleID.stderr, flags: .O_WRONLY)
        }
        mounted = fs
    }
}

/// What the VFS asks of the kernel: the clock, randomness, the console and /proc's contents.
struct KernelHost: FileSystemHost {
    mutating func now() -> Timespec { Timespec(totalNanoseconds: Int64(Clock.realtimeNanos)) }

    mutating func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) { Random.fill(buffer) }

    /// stdin reads the host's stdin; stdout, stderr, /dev/tty and /dev/console write to the
    /// host's stdout (stdout) or stderr (the others). With `apus run -t` all of them are the
    /// terminal (Terminal.swift).
    mutating func consoleRead(_ id: UInt32, into buffer: UnsafeMutableRawBufferPointer,
                              nonblocking: Bool) throws(Errno) -> Int {
        if id >= KernelObjects.firstID { return try KernelObjects.read(id, into: buffer, nonblocking: nonblocking) }
        if Terminal.isTerminal(id) { return try Terminal.read(into: buffer, nonblocking: nonblocking) }
        guard id == ConsoleID.stdin || id == ConsoleID.tty || id == ConsoleID.console else { throw .EBADF }
        // The host's stdin without blocking the VM: a reader with nothing to read waits like
        // a pipe reader (other threads and processes run), and runs its read again when the
        // host says input arrived.
        if let n = try Console.HostStdin.read(into: buffer) { return n }
        if nonblocking { throw .EAGAIN }
        Console.waitForInput()
        Scheduler.blockCurrentRestarting(deadline: 0)
        return 0
    }

    mutating func consoleWrite(_ id: UInt32, _ bytes: UnsafeRawBufferPointer, nonblocking: Bool) throws(Errno) -> Int {
        if id >= KernelObjects.firstID { return try KernelObjects.write(id, bytes, nonblocking: nonblocking) }
        if Terminal.isTerminal(id) { return try Terminal.write(bytes) }
        guard id != ConsoleID.stdin else { throw .EBADF }
        Console.write(id == ConsoleID.stdout ? .stdout : .stderr, bytes)
        return bytes.count
    }

    /// The standard streams are pipes to the host; kernel objects are named as Linux names
    /// its pipes and anonymous inodes.
    mutating func consoleName(_ id: UInt32) -> [UInt8] {
        var m = Message()
        switch KernelObjects.object(id) {
        case .pipeRead, .pipeWrite, nil: m.append("pipe:["); m.decimal(UInt64(id)); m.append("]")
        case .eventfd: m.append("anon_inode:[eventfd]")
        case .epoll: m.append("anon_inode:[eventpoll]")
        case .timer: m.append("anon_inode:[timerfd]")
        case .signalfd: m.append("anon_inode:[signalfd]")
        case .socket, .unixSocket, .netlink: m.append("socket:["); m.decimal(UInt64(id)); m.append("]")
        }
        return m.bytes
    }

    /// tmpfs bytes (file data, nodes, names) are the app's memory: they leave the kernel
    /// its reserve (PhysicalMemory.kernelReservePages).
    mutating func canAllocate(_ bytes: Int) -> Bool {
        PhysicalMemory.canGrantApp(bytes: bytes)
    }

    mutating func collectMappedBytes(_ node: Int, into contents: UnsafeMutableRawBufferPointer, _ range: Range<Int>) {
        SharedFiles.collect(node, into: contents, range)
    }

    mutating func mappedBytesChanged(_ node: Int, _ contents: UnsafeRawBufferPointer, from: Int, to: Int) {
        SharedFiles.changed(node, contents, from: from, to: to)
    }

    mutating func generate(_ id: UInt32) throws(Errno) -> [UInt8] {
        // The snapshot is kernel memory the app asks for, as large as its mappings are many
        // (up to max_map_count lines of /proc/self/maps): ENOMEM unless it fits beside the
        // kernel's reserve, with room for the doubling while it is built.
        var estimate = Files.Generated(rawValue: id) == .selfMaps ? AddressSpace.regions.count * 2 * 160 : 4096
        if id & Files.processFileTag != 0, id & 0xf == Files.ProcessFile.maps.rawValue,
           let p = Processes.find(Int32((id & ~Files.processFileTag) >> 4)) {
            estimate = p.memory.regions.count * 2 * 160
        }
        guard PhysicalMemory.canGrantApp(bytes: estimate) else { throw .ENOMEM }
        var m = Message()
        if id & Files.processFileTag != 0 {
            guard let process = Processes.find(Int32((id & ~Files.processFileTag) >> 4)) else { throw .ENOENT }
            switch Files.ProcessFile(rawValue: id & 0xf) {
            case .stat: ProcFiles.stat(&m, process)
            case .status: ProcFiles.status(&m, process)
            case .cmdline: m.bytes = process.commandLine
            case .maps: if !process.isZombie { ProcFiles.maps(&m, process.memory.regions) }
            case nil: throw .ENOENT
            }
            return m.bytes
        }
        switch Files.Generated(rawValue: id) {
        case .selfMaps: ProcFiles.maps(&m, AddressSpace.regions)
        case .selfCmdline: m.bytes = Process.current.commandLine
        case .meminfo:
            let total = Kernel.boot.memorySize / 1024, free = UInt64(PhysicalMemory.freePages) * 4
            m.append("MemTotal:       "); m.decimal(total); m.append(" kB\n")
            m.append("MemFree:        "); m.decimal(free); m.append(" kB\n")
            m.append("MemAvailable:   "); m.decimal(free); m.append(" kB\n")
            m.append("Buffers:               0 kB\nCached:                0 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n")
        case .cpuinfo:
            m.append("processor\t: 0\nvendor_id\t: ApusVirtualCPU\nmodel name\t: Apus vCPU\ncpu MHz\t\t: ")
            m.decimal(Clock.tscPerSecond / 1_000_000)
            m.append("\ncpu cores\t: 1\nflags\t\t: fpu tsc sse sse2\n\n")
        case .cpuOnline: m.append("0\n")
        case .selfStat: ProcFiles.stat(&m, Process.current)
        case .stat: ProcFiles.systemStat(&m)
        case .selfStatus: ProcFiles.status(&m, Process.current)
        case .mounts:
            // One memory file system (statfs says tmpfs; st_dev 0:42) and /proc, as df and
            // language runtimes read them.
            m.append("tmpfs / tmpfs rw,relatime 0 0\nproc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n")
        case .mountinfo:
            m.append("1 0 0:42 / / rw,relatime - tmpfs tmpfs rw\n2 1 0:42 /proc /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n")
        case .uptime:
            let ms = Clock.monotonicNanos / 10_000_000
            m.decimal(ms / 100); m.append("."); if ms % 100 < 10 { m.append("0") }; m.decimal(ms % 100)
            m.append(" 0.00\n")
        case .resolvConf:
            m.append("nameserver ")
            let dns = Kernel.boot.network.ipv4DNS
            for shift in [24, 16, 8, 0] as [UInt32] {
                m.decimal(UInt64((dns >> shift) & 0xff))
                if shift != 0 { m.append(".") }
            }
            m.append("\n")
        case .hosts:
            m.append("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t")
            let name = Kernel.boot.hostname
            if name.isEmpty { m.append("apus") } else { m.append(bytes: name) }
            m.append("\n")
        case .hostname:
            m.append(bytes: SysProcess.hostname)
            m.append("\n")
        case nil: throw .ENOENT
        }
        return m.bytes
    }
}

/// /proc/self/maps from the address space's regions ("start-end perms offset dev inode path").
enum ProcFiles {
    /// Clock ticks (USER_HZ = 100) of `nanos`.
    private static func ticks(_ nanos: UInt64) -> UInt64 { nanos / 10_000_000 }

    /// A process's state letter as ps shows it: Z zombie, T stopped, R running (the
    /// caller), S sleeping.
    private static func state(_ p: Process) -> StaticString {
        if p.isZombie { return "Z" }
        if p.stopped { return "T" }
        if p === Process.current { return "R" }
        return p.threads.contains { $0.state == .runnable } ? "R" : "S"
    }

    /// The name of a process's first thread (a zombie's is gone: its program's).
    private static func name(_ p: Process) -> [UInt8] {
        p.threads.first?.name ?? Loader.commandName(p.program?.executablePath ?? [])
    }

    /// /proc/PID/stat: Linux's 52 fields (proc(5)); what the VM does not have is 0.
    static func stat(_ m: inout Message, _ p: Process) {
        m.decimal(UInt64(p.pid)); m.append(" ("); m.append(bytes: name(p)); m.append(") ")
        m.append(state(p)); m.append(" ")
        m.decimal(UInt64(p.parent?.pid ?? 0)); m.append(" ")
        m.decimal(UInt64(p.processGroup)); m.append(" ")
        m.decimal(UInt64(p.session)); m.append(" 0 -1 4194560 0 0 0 0 ")
        m.decimal(ticks(SysProcess.processCPUNanos(p))); m.append(" 0 ")
        m.decimal(ticks(p.childrenCPU)); m.append(" 0 20 0 ")
        m.decimal(p.threads.count); m.append(" 0 0 ")
        var virtualSize: UInt64 = 0
        if !p.isZombie { for r in p.memory.regions { virtualSize += r.end - r.start } }
        m.decimal(virtualSize); m.append(" ")
        m.decimal(virtualSize / 4096)  // memory is backed eagerly: resident = mapped
        m.append(" 18446744073709551615 0 0 0 0 0 0 ")
        m.decimal(p.threads.first?.blocked ?? 0)
        m.append(" 0 0 0 0 0 ")
        m.decimal(UInt64(p.exitSignal))
        m.append(" 0 0 0 0 0 0 0 0 0 0 0 0 0 ")
        m.decimal(UInt64((p.waitStatus ?? 0) & 0xffff))
        m.append("\n")
    }

    /// /proc/PID/status: the lines programs read (name, state, ids, threads, memory).
    static func status(_ m: inout Message, _ p: Process) {
        let c = p.credentials
        m.append("Name:\t"); m.append(bytes: name(p))
        m.append("\nState:\t"); m.append(state(p))
        m.append("\nTgid:\t"); m.decimal(UInt64(p.pid))
        m.append("\nPid:\t"); m.decimal(UInt64(p.pid))
        m.append("\nPPid:\t"); m.decimal(UInt64(p.parent?.pid ?? 0))
        m.append("\nUid:\t"); m.decimal(UInt64(c.realUID)); m.append("\t"); m.decimal(UInt64(c.effectiveUID))
        m.append("\t"); m.decimal(UInt64(c.savedUID)); m.append("\t"); m.decimal(UInt64(c.filesystemUID))
        m.append("\nGid:\t"); m.decimal(UInt64(c.realGID)); m.append("\t"); m.decimal(UInt64(c.effectiveGID))
        m.append("\t"); m.decimal(UInt64(c.savedGID)); m.append("\t"); m.decimal(UInt64(c.filesystemGID))
        m.append("\nThreads:\t"); m.decimal(p.threads.count)
        var virtualSize: UInt64 = 0
        if !p.isZombie { for r in p.memory.regions { virtualSize += r.end - r.start } }
        m.append("\nVmSize:\t"); m.decimal(virtualSize / 1024)
        m.append(" kB\nVmRSS:\t"); m.decimal(virtualSize / 1024)
        m.append(" kB\n")
    }

    /// /proc/stat: the one CPU's time split into user (the app's CPU time) and idle.
    static func systemStat(_ m: inout Message) {
        let user = ticks(Clock.processCPUNanos), idle = ticks(Clock.nanoseconds(ticks: Clock.idleTicks))
        for label in ["cpu  ", "cpu0 "] as [StaticString] {
            m.append(label); m.decimal(user); m.append(" 0 0 "); m.decimal(idle); m.append(" 0 0 0 0 0 0\n")
        }
        m.append("intr 0\nctxt "); m.decimal(Scheduler.switches)
        m.append("\nbtime "); m.decimal(Kernel.boot.realtimeNanosAtBoot / 1_000_000_000)
        m.append("\nprocesses 1\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 0\n")
    }

    static func maps(_ m: inout Message, _ regions: [Region]) {
        for r in regions {
            let lineStart = m.bytes.count
            hex(r.start, &m); m.append("-"); hex(r.end, &m); m.append(" ")
            m.append(r.protection.contains(.PROT_READ) || !r.protection.isEmpty ? "r" : "-")
            m.append(r.protection.contains(.PROT_WRITE) ? "w" : "-")
            m.append(r.protection.contains(.PROT_EXEC) ? "x" : "-")
            m.append(r.sharedFile >= 0 || r.sharedAnonymous ? "s" : "p"); m.append(" ")
            // Linux: offset, device, inode, then the name from column 74.
            hex(UInt64(r.filePage) * 4096, &m); m.append(r.name.isEmpty ? " 00:00 " : " 00:2a "); m.decimal(r.inode)
            m.append(" ")
            if !r.name.isEmpty || r.kind == .heap || r.kind == .stack || r.kind == .vdso {
                while m.bytes.count - lineStart < 73 { m.append(" ") }
            }
            switch r.kind {
            case .heap: m.append("[heap]")
            case .stack: m.append("[stack]")
            case .vdso: m.append("[vdso]")
            case .program, .anonymous: m.append(bytes: r.name)
            }
            m.append("\n")
        }
    }

    /// Lower-case hex without 0x, at least 8 digits, as Linux prints addresses there.
    private static func hex(_ value: UInt64, _ m: inout Message) {
        var digits: [UInt8] = []
        var v = value
        repeat {
            let n = UInt8(v & 0xf)
            digits.append(n < 10 ? UInt8(ascii: "0") + n : UInt8(ascii: "a") + n - 10)
            v >>= 4
        } while v != 0
        while digits.count < 8 { digits.append(UInt8(ascii: "0")) }
        m.bytes.append(contentsOf: digits.reversed())
    }
}
