import GuestABI
import ImageFormat
import LinuxABI
import VFS

/// The app's files: the VFS (Sources/VFS) mounted on the image, with the kernel as its host.
enum Files {
    nonisolated(unsafe) static var mounted: FileSystem<KernelHost>? = nil

    /// Generated files (ids for `SyntheticNode.generated`).
    enum Generated: UInt32 {
        case selfMaps = 1, meminfo, cpuinfo, cpuOnline, selfStatus, uptime
    }

    static func mount(image: ImageReader, executablePath: UnsafeRawBufferPointer) {
        var options = MountOptions()
        options.imageTime = Timespec(totalNanoseconds: Int64(Kernel.boot.realtimeNanosAtBoot))
        options.executablePath = Array(executablePath)
        var fs = FileSystem(image: image, host: KernelHost(), options: options)
        let synthetic: [(StaticString, Generated)] = [
            ("/proc/self/maps", .selfMaps), ("/proc/meminfo", .meminfo), ("/proc/cpuinfo", .cpuinfo),
            ("/sys/devices/system/cpu/online", .cpuOnline), ("/sys/devices/system/cpu/possible", .cpuOnline),
            ("/proc/self/status", .selfStatus), ("/proc/uptime", .uptime),
        ]
        for (path, id) in synthetic {
            path.withUTF8Buffer { p in
                try? fs.addSynthetic(path: UnsafeRawBufferPointer(p), .generated(id.rawValue))
            }
        }
        try? fs.installConsole(fd: 0, id: ConsoleID.stdin, flags: .O_RDONLY)
        try? fs.installConsole(fd: 1, id: ConsoleID.stdout, flags: .O_WRONLY)
        try? fs.installConsole(fd: 2, id: ConsoleID.stderr, flags: .O_WRONLY)
        mounted = fs
    }
}

/// What the VFS asks of the kernel: the clock, randomness, the console and /proc's contents.
struct KernelHost: FileSystemHost {
    mutating func now() -> Timespec { Timespec(totalNanoseconds: Int64(Clock.realtimeNanos)) }

    mutating func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) { Random.fill(buffer) }

    /// stdin reads the host's stdin; stdout, stderr, /dev/tty and /dev/console write to the
    /// host's stdout (stdout) or stderr (the others).
    mutating func consoleRead(_ id: UInt32, into buffer: UnsafeMutableRawBufferPointer,
                              nonblocking: Bool) throws(Errno) -> Int {
        if id >= KernelObjects.firstID { return try KernelObjects.read(id, into: buffer, nonblocking: nonblocking) }
        guard id == ConsoleID.stdin || id == ConsoleID.tty || id == ConsoleID.console else { throw .EBADF }
        return try Console.readStdin(into: buffer)
    }

    mutating func consoleWrite(_ id: UInt32, _ bytes: UnsafeRawBufferPointer, nonblocking: Bool) throws(Errno) -> Int {
        if id >= KernelObjects.firstID { return try KernelObjects.write(id, bytes, nonblocking: nonblocking) }
        guard id != ConsoleID.stdin else { throw .EBADF }
        Console.write(id == ConsoleID.stdout ? .stdout : .stderr, bytes)
        return bytes.count
    }

    mutating func generate(_ id: UInt32) throws(Errno) -> [UInt8] {
        var m = Message()
        switch Files.Generated(rawValue: id) {
        case .selfMaps: ProcFiles.maps(&m)
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
        case .selfStatus:
            m.append("Name:\tapp\nState:\tR (running)\nTgid:\t1\nPid:\t1\nPPid:\t0\nThreads:\t")
            m.decimal(Scheduler.threads.count)
            m.append("\nVmRSS:\t")
            m.decimal(UInt64(Heap.bytesInUse / 1024))
            m.append(" kB\n")
        case .uptime:
            let ms = Clock.monotonicNanos / 10_000_000
            m.decimal(ms / 100); m.append("."); if ms % 100 < 10 { m.append("0") }; m.decimal(ms % 100)
            m.append(" 0.00\n")
        case nil: throw .ENOENT
        }
        return m.bytes
    }
}

/// /proc/self/maps from the address space's regions ("start-end perms offset dev inode path").
enum ProcFiles {
    static func maps(_ m: inout Message) {
        for r in AddressSpace.regions {
            hex(r.start, &m); m.append("-"); hex(r.end, &m); m.append(" ")
            m.append(r.protection.contains(.PROT_READ) || !r.protection.isEmpty ? "r" : "-")
            m.append(r.protection.contains(.PROT_WRITE) ? "w" : "-")
            m.append(r.protection.contains(.PROT_EXEC) ? "x" : "-")
            m.append("p 00000000 00:00 0")
            switch r.kind {
            case .heap: m.append("                          [heap]")
            case .stack: m.append("                          [stack]")
            case .program:
                m.append("                          ")
                if let p = Loader.process { m.append(bytes: p.executablePath) }
            case .vdso: m.append("                          [vdso]")
            case .anonymous: break
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
