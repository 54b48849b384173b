import GuestABI
import LinuxABI

/// The standard streams: fd 0 reads the host's stdin, fds 1 and 2 are the host's stdout and
/// stderr. There is no file system in this version: other fds are EBADF.
enum SysIO {
    /// The standard streams as the app sees them: pipes, never terminals (the console is a
    /// byte stream to the host), so isatty() is false and stdio buffers fully, as it does
    /// when the same program's output is piped on the host.
    static func stream(_ fd: Int32) throws(Errno) -> ConsoleStream? {
        switch fd {
        case 0: return nil
        case 1: return .stdout
        case 2: return .stderr
        default: throw .EBADF
        }
    }

    static func read(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let fd = a.fd(0)
        guard try stream(fd) == nil else { throw .EBADF }  // stdout/stderr are write-only
        let out = try UserMemory.writable(a[1], Int(min(a.size(2), SyscallResult.maxReadWriteCount)))
        return UInt64(try Console.readStdin(into: out))
    }

    static func write(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard let s = try stream(a.fd(0)) else { throw .EBADF }
        let count = Int(min(a.size(2), SyscallResult.maxReadWriteCount))
        let bytes = try UserMemory.readable(a[1], count)
        Console.write(s, bytes)
        return UInt64(count)
    }

    static func readv(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard try stream(a.fd(0)) == nil else { throw .EBADF }
        // One host read into the first non-empty vector, as a pipe read returns what is there.
        for v in try iovecs(a[1], a.int(2)) where v.length > 0 {
            let out = try UserMemory.writable(v.base.raw, Int(min(v.length, SyscallResult.maxReadWriteCount)))
            return UInt64(try Console.readStdin(into: out))
        }
        return 0
    }

    static func writev(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard let s = try stream(a.fd(0)) else { throw .EBADF }
        let vectors = try iovecs(a[1], a.int(2))
        // Validate every buffer before writing any (Linux returns EFAULT without partial
        // output for a bad first vector; later bad vectors give a short write).
        var total: UInt64 = 0
        for (i, v) in vectors.enumerated() {
            let length = min(v.length, SyscallResult.maxReadWriteCount - total)
            let bytes: UnsafeRawBufferPointer
            do { bytes = try UserMemory.readable(v.base.raw, Int(length)) } catch {
                if i == 0 { throw error }
                break
            }
            Console.write(s, bytes)
            total += length
        }
        return total
    }

    private static func iovecs(_ address: UInt64, _ count: Int) throws(Errno) -> [Iovec] {
        guard count >= 0 && count <= 1024 else { throw .EINVAL }
        let raw = try UserMemory.readable(address, count * 16)
        var out: [Iovec] = []
        out.reserveCapacity(count)
        for i in 0..<count {
            let v = try Iovec.decode(from: raw, index: i)
            guard v.length <= UInt64(Int.max) else { throw .EINVAL }
            out.append(v)
        }
        return out
    }

    /// poll(fds, nfds, timeout ms). The streams have no readiness to wait for in this version:
    /// stdout and stderr are always writable, stdin is reported readable (a read blocks on the
    /// host until data or end of file), any other descriptor is POLLNVAL. With nothing ready
    /// the call sleeps for its timeout (a negative timeout with nothing ready would wait
    /// forever: that is reported as a deadlock like any wait nobody can end).
    static func poll(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let timeout = Int64(a.int32(2))
        return try poll(fds: a[0], count: a[1], timeoutNanos: timeout < 0 ? nil : UInt64(timeout) * 1_000_000)
    }

    /// ppoll(fds, nfds, timespec *, sigmask *, size): the mask is not applied yet (no signal
    /// is delivered to handlers in this version).
    static func ppoll(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        var timeout: UInt64? = nil
        if a[2] != 0 {
            let ts = try Timespec.decode(from: UserMemory.readable(a[2], Timespec.size))
            guard ts.isValid, let ns = ts.totalNanoseconds else { throw .EINVAL }
            timeout = UInt64(ns)
        }
        return try poll(fds: a[0], count: a[1], timeoutNanos: timeout)
    }

    private static func poll(fds: UInt64, count: UInt64, timeoutNanos: UInt64?) throws(Errno) -> UInt64 {
        guard count <= 1024 else { throw .EINVAL }  // RLIMIT_NOFILE
        let table = try UserMemory.writable(fds, Int(count) * Pollfd.size)
        var ready: UInt64 = 0
        for i in 0..<Int(count) {
            let p = try Pollfd.decode(from: UnsafeRawBufferPointer(table), index: i)
            var revents: Int16 = 0
            switch p.fd {
            case ..<0: revents = 0                                   // ignored entry
            case 0: revents = p.events & PollEvents.POLLIN
            case 1, 2: revents = p.events & PollEvents.POLLOUT
            default: revents = PollEvents.POLLNVAL
            }
            try Pollfd.encodeReturnedEvents(revents, into: table, index: i)
            if revents != 0 { ready += 1 }
        }
        if ready == 0, let timeout = timeoutNanos, timeout > 0 {
            SysTime.sleep(until: Clock.monotonicNanos &+ timeout)
        } else if ready == 0 && timeoutNanos == nil {
            Scheduler.blockCurrent(deadline: 0, timeoutResult: 0)
        }
        return ready
    }

    static func ioctl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        _ = try stream(a.fd(0))
        throw .ENOTTY  // TCGETS, TIOCGWINSZ, …: the streams are not terminals
    }

    static func fcntl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        _ = try stream(a.fd(0))
        switch a.int32(1) {
        case 1: return 0                // F_GETFD
        case 2: return 0                // F_SETFD
        case 3: return a.fd(0) == 0 ? 0 : 1  // F_GETFL: O_RDONLY / O_WRONLY
        default: throw .EINVAL
        }
    }

    static func close(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        _ = try stream(a.fd(0))
        return 0
    }

    /// A FIFO (pipe), owner read/write, as the host shows a piped stream.
    private static func streamStat(_ fd: Int32) -> Stat {
        var st = Stat()
        st.mode = 0o010000 | 0o600
        st.linkCount = 1
        st.blockSize = 4096
        st.inode = UInt64(fd) + 1
        st.device = 0xc
        return st
    }

    static func fstat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let fd = a.fd(0)
        _ = try stream(fd)
        try streamStat(fd).encode(into: UserMemory.writable(a[1], Stat.size))
        return 0
    }

    /// newfstatat: fstat of a stream through AT_EMPTY_PATH; paths do not exist yet.
    static func newfstatat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let path = try UserMemory.string(a[1])
        let flags = a.int32(3)
        if path.isEmpty && AtFlags(rawValue: UInt32(bitPattern: flags)).contains(.AT_EMPTY_PATH) {
            let fd = a.fd(0)
            _ = try stream(fd)
            try streamStat(fd).encode(into: UserMemory.writable(a[2], Stat.size))
            return 0
        }
        throw .ENOENT
    }

    static func readlink(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try readlink(path: a[0], buffer: a[1], size: a.int(2))
    }

    static func readlinkat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try readlink(path: a[1], buffer: a[2], size: a.int(3))
    }

    /// /proc/self/exe names the program's path in the image; nothing else exists yet.
    private static func readlink(path: UInt64, buffer: UInt64, size: Int) throws(Errno) -> UInt64 {
        let name = try UserMemory.string(path)
        guard size > 0 else { throw .EINVAL }
        let procSelfExe: StaticString = "/proc/self/exe"
        let matches = procSelfExe.withUTF8Buffer { $0.elementsEqual(name) }
        guard matches, let process = Loader.process else { throw .ENOENT }
        let n = min(size, process.executablePath.count)
        let out = try UserMemory.writable(buffer, n)
        out.copyMemory(from: UnsafeRawBufferPointer(rebasing: process.executablePath[0..<n]))
        return UInt64(n)
    }
}
