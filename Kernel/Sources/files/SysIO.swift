import NetStack
import GuestABI
import LinuxABI
import VFS

/// Files and descriptors: thin adapters from syscall arguments to the VFS (Files.swift),
/// which owns the semantics (and is tested on the host). fds 0–2 start as the consoles: the
/// host's stdin, stdout and stderr. User buffers are validated here; paths are copied in.
enum SysIO {
    static let AT_FDCWD = AtFlags.AT_FDCWD

    /// The VFS. Mounted by the loader before the app's first instruction. Mutated in place
    /// (`_modify`): a get/set pair would copy the file system for every call, and the first
    /// change to a shared array inside (a file's bytes) would then copy all of it.
    static var fs: FileSystem<KernelHost> {
        get { Files.mounted! }
        _modify { yield &Files.mounted! }
    }

    static func path(_ address: UInt64) throws(Errno) -> UnsafeRawBufferPointer {
        try UserMemory.string(address, limit: 4095)
    }

    static func count(_ a: SyscallArguments, _ index: Int) -> Int {
        Int(min(a.size(index), SyscallResult.maxReadWriteCount))
    }

    // MARK: data

    static func read(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let out = try UserMemory.writable(a[1], count(a, 2))
        return UInt64(try fs.read(a.fd(0), into: out))
    }

    static func write(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let bytes = try UserMemory.readable(a[1], count(a, 2))
        let fd = a.fd(0)
        if bytes.isEmpty { return UInt64(try fs.write(fd, bytes)) }
        return UInt64(try BlockingWrites.write(total: bytes.count, blocking: waitsForRoom(fd)) { (done) throws(Errno) in
            let rest = UnsafeRawBufferPointer(rebasing: bytes[done...])
            return (rest.count, try fs.write(fd, rest))
        })
    }

    /// Whether a write to `fd` waits until all of it is written: a pipe or socket without
    /// O_NONBLOCK (files and the console take everything at once anyway).
    static func waitsForRoom(_ fd: Int32) -> Bool {
        guard KernelObjects.id(of: fd) != nil, let flags = try? fs.statusFlags(fd) else { return false }
        return !flags.contains(.O_NONBLOCK)
    }

    /// Linux's rw_verify_area for an explicit position: negative, or so close to 2^63 that
    /// the transfer would end past it, is EINVAL (before anything is read or written).
    static func checkPosition(_ offset: Int64, count: UInt64) throws(Errno) {
        guard offset >= 0, count <= UInt64(Int64.max - offset) else { throw .EINVAL }
    }

    static func pread64(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try checkPosition(Int64(bitPattern: a[3]), count: UInt64(count(a, 2)))
        let out = try UserMemory.writable(a[1], count(a, 2))
        return UInt64(try fs.pread(a.fd(0), into: out, offset: Int64(bitPattern: a[3])))
    }

    static func pwrite64(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try checkPosition(Int64(bitPattern: a[3]), count: UInt64(count(a, 2)))
        let bytes = try UserMemory.readable(a[1], count(a, 2))
        return UInt64(try fs.pwrite(a.fd(0), bytes, offset: Int64(bitPattern: a[3])))
    }

    static func readv(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try readVectored(a.fd(0), a[1], a.int(2), offset: nil)
    }

    static func writev(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try writeVectored(a.fd(0), a[1], a.int(2), offset: nil)
    }

    /// preadv/pwritev(fd, iov, count, offset): the same at a position, file offset untouched.
    static func preadv(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try readVectored(a.fd(0), a[1], a.int(2), offset: Int64(bitPattern: a[3]))
    }

    static func pwritev(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try writeVectored(a.fd(0), a[1], a.int(2), offset: Int64(bitPattern: a[3]))
    }

    /// Fills the vectors in order; a short read ends the call, as on Linux.
    private static func readVectored(_ fd: Int32, _ iov: UInt64, _ count: Int, offset: Int64?) throws(Errno) -> UInt64 {
        var position = offset
        var total: UInt64 = 0
        let vectors = try iovecs(iov, count)
        if let offset { try checkPosition(offset, count: totalLength(vectors)) }
        for v in vectors where v.length > 0 {
            let out = try UserMemory.writable(v.base.raw, Int(min(v.length, SyscallResult.maxReadWriteCount - total)))
            let n: Int
            if let p = position { n = try fs.pread(fd, into: out, offset: p) } else { n = try fs.read(fd, into: out) }
            total += UInt64(n)
            position = position.map { $0 &+ Int64(n) }  // checkPosition: cannot pass Int64.max
            if n < out.count { break }
        }
        return total
    }

    /// Writes the vectors in order. A bad first buffer is EFAULT; a bad later one ends the
    /// call with what was written (Linux semantics). A zero-length call still checks fd. To a
    /// pipe or socket that waits, all of it is written before the call returns
    /// (BlockingWrites).
    private static func writeVectored(_ fd: Int32, _ iov: UInt64, _ count: Int, offset: Int64?) throws(Errno) -> UInt64 {
        let vectors = try iovecs(iov, count)
        let total = Int(totalLength(vectors))
        if let offset {
            try checkPosition(offset, count: UInt64(total))
            var position = offset
            var written = 0
            for (i, v) in vectors.enumerated() where v.length > 0 && written < total {
                let bytes: UnsafeRawBufferPointer
                do { bytes = try UserMemory.readable(v.base.raw, Int(min(v.length, UInt64(total - written)))) } catch {
                    if i == 0 || written == 0 { throw error }
                    break
                }
                let n = try fs.pwrite(fd, bytes, offset: position)
                written += n
                position &+= Int64(n)  // checkPosition: cannot pass Int64.max
                if n < bytes.count { break }
            }
            return UInt64(written)
        }
        if total == 0 { return UInt64(try fs.write(fd, UnsafeRawBufferPointer(start: nil, count: 0))) }
        let written = try BlockingWrites.write(total: total, blocking: waitsForRoom(fd)) { (done) throws(Errno) in
            // The rest of the vector holding byte `done`.
            var start = 0
            for v in vectors where v.length > 0 {
                let length = Int(min(v.length, UInt64(total - start)))
                if done < start + length {
                    let bytes = try UserMemory.readable(v.base.raw &+ UInt64(done - start), start + length - done)
                    return (bytes.count, try fs.write(fd, bytes))
                }
                start += length
            }
            return (0, 0)
        }
        return UInt64(written)
    }

    /// What a vectored transfer moves at most: the lengths' sum, capped at MAX_RW_COUNT as
    /// Linux caps it (each length is below 2^63, so the sum of 1024 cannot wrap).
    private static func totalLength(_ vectors: [Iovec]) -> UInt64 {
        var sum: UInt64 = 0
        for v in vectors { sum &+= v.length }
        return min(sum, SyscallResult.maxReadWriteCount)
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

    /// sendfile(out, in, offset *, count) and copy_file_range(in, off_in *, out, off_out *,
    /// count, flags): copies through a kernel buffer, 64 KiB at a time. With an offset
    /// pointer the input is read there (and the pointer advanced) and its file offset kept.
    /// From a file to a blocking stream socket the whole count is sent, waiting for room as
    /// Linux does; to a pipe, what it takes (a wait only while it is full and nothing was
    /// sent yet), as Linux does too.
    static func sendfile(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try copy(from: a.fd(1), inOffset: a[2], to: a.fd(0), outOffset: 0, count: a.size(3))
    }

    /// splice(in, off_in *, out, off_out *, count, flags): one end must be a pipe; the bytes
    /// go through the same copy as sendfile (no page moving: the data is copied once).
    static func splice(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        func isPipe(_ fd: Int32) -> Bool {
            guard let id = KernelObjects.id(of: fd) else { return false }
            switch KernelObjects.object(id) {
            case .pipeRead, .pipeWrite: return true
            default: return false
            }
        }
        let input = a.fd(0), output = a.fd(2)
        guard fs.isOpen(input), fs.isOpen(output) else { throw .EBADF }
        guard isPipe(input) || isPipe(output) else { throw .EINVAL }
        if (isPipe(input) && a[1] != 0) || (isPipe(output) && a[3] != 0) { throw .ESPIPE }
        return try copy(from: input, inOffset: a[1], to: output, outOffset: a[3], count: a.size(4))
    }

    static func copyFileRange(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a[5] == 0 else { throw .EINVAL }
        return try copy(from: a.fd(0), inOffset: a[1], to: a.fd(2), outOffset: a[3], count: a.size(4))
    }

    private static func copy(from input: Int32, inOffset: UInt64, to output: Int32, outOffset: UInt64,
                             count: UInt64) throws(Errno) -> UInt64 {
        var position: Int64? = inOffset == 0 ? nil : Int64(bitPattern: try UserMemory.load(UInt64.self, inOffset))
        var outPosition: Int64? = outOffset == 0 ? nil : Int64(bitPattern: try UserMemory.load(UInt64.self, outOffset))
        // Positions from the app: negative, or too close to 2^63 for the count, is EINVAL
        // (rw_verify_area), so advancing them below cannot overflow.
        let most = min(count, SyscallResult.maxReadWriteCount)
        if let p = position { try checkPosition(p, count: most) }
        if let p = outPosition { try checkPosition(p, count: most) }
        // eventfd, timerfd, signalfd and epoll descriptors cannot be spliced (Linux: no
        // splice_read/splice_write, EINVAL); an eventfd copied to itself would also bounce
        // its 8 bytes back and forth for the whole count.
        for fd in [input, output] {
            guard let id = KernelObjects.id(of: fd) else { continue }
            switch KernelObjects.object(id) {
            case .eventfd?, .timer?, .signalfd?, .epoll?: throw .EINVAL
            default: break
            }
        }
        // Sized to the request: a small file (a web server's page) stays a small allocation;
        // 64 KiB blocks come from the kernel's page-mapped heap window, whose mapping and
        // unmapping cost more than the copy itself.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(max(1, min(count, 65536))), alignment: 16)
        defer { buffer.deallocate() }
        // From a file to a blocking stream socket everything is sent: a run that finds no
        // room parks the thread and the call runs again from where it was (BlockingWrites).
        let call = BlockingWrites.Call.current
        let sendsAll = outPosition == nil && KernelObjects.id(of: input) == nil && isStreamSocket(output) && waitsForRoom(output)
        // (The input's offset, the descriptor's or the pointer's, moved with what they sent.)
        var total: UInt64 = sendsAll ? UInt64(BlockingWrites.resume(call)) : 0
        while total < most {
            let want = Int(min(UInt64(buffer.count), most - total))
            let into = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want])
            var got = 0
            do {
                if let p = position {
                    got = try fs.pread(input, into: into, offset: p)
                } else if total > 0, let id = KernelObjects.id(of: input) {
                    // A pipe or socket after the first chunk: never wait either.
                    got = try KernelObjects.read(id, into: into, nonblocking: true)
                } else {
                    got = try fs.read(input, into: into)  // may wait: nothing was taken yet
                    if Scheduler.switched { return 0 }      // parked: the call runs again
                }
            } catch where total > 0 {
                break  // what was copied is the answer (Linux returns the partial count)
            }
            if got == 0 { break }
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[0..<got])
            // Until the output takes them the bytes read are the input's again: a write that
            // parks (or fails) leaves the input where this chunk started.
            if position == nil { _ = try? fs.lseek(input, Int64(-got), whence: 1) }
            var put = 0
            do {
                if let p = outPosition {
                    put = try fs.pwrite(output, bytes, offset: p)
                } else if total > 0 && !sendsAll, let id = KernelObjects.id(of: output) {
                    // A pipe (or a socket not sent to in full) after the first chunk: never
                    // wait (a wait would run the call again and send the first chunks twice).
                    put = try KernelObjects.write(id, bytes, nonblocking: true)
                } else {
                    // May park until there is room; then the call runs again, from the
                    // offset pointer as stored here (or the descriptor's offset) and with
                    // the count sent so far recorded (a signal then returns that count).
                    if sendsAll {
                        if let p = position { try UserMemory.store(UInt64(bitPattern: p), inOffset) }
                        BlockingWrites.park(call, done: Int(total))
                    }
                    put = try fs.write(output, bytes)
                    if Scheduler.switched { return 0 }
                }
            } catch where total > 0 {
                put = 0  // EAGAIN, ENOSPC…: the partial count
            }
            // Not parked: forget the record (an error thrown past here had none: total was 0).
            if sendsAll { _ = BlockingWrites.resume(call) }
            if position == nil && put > 0 { _ = try? fs.lseek(input, Int64(put), whence: 1) }
            total += UInt64(put)
            if let p = position { position = p &+ Int64(put) }        // checkPosition: no overflow
            if let p = outPosition { outPosition = p &+ Int64(put) }
            // A terminal's read is a line (or what VMIN asked for): the next one may wait, or
            // take an end of file the program must see on its own read.
            if put == 0 || (put < got && !sendsAll) || Terminal.owns(input) { break }
            // Up to 2 GiB in one call: a signal ends it early with what was copied, as
            // Linux's splice loop does (timers are due here too, not only at syscall entry).
            Timers.check()
            if SysSignal.hasDeliverable(Scheduler.current) { break }
        }
        if let p = position { try UserMemory.store(UInt64(bitPattern: p), inOffset) }
        if let p = outPosition { try UserMemory.store(UInt64(bitPattern: p), outOffset) }
        return total
    }

    private static func isStreamSocket(_ fd: Int32) -> Bool {
        guard let id = KernelObjects.id(of: fd) else { return false }
        switch KernelObjects.object(id) {
        case .socket(let s)?: return s.kind == .stream
        case .unixSocket(let u)?: return u.isStream
        default: return false
        }
    }

    static func lseek(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(bitPattern: try fs.lseek(a.fd(0), Int64(bitPattern: a[1]), whence: a.int32(2)))
    }

    static func ftruncate(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.ftruncate(a.fd(0), length: Int64(bitPattern: a[1]))
        return 0
    }

    /// fallocate(fd, mode, offset, len): mode 0 makes the file at least offset+len bytes
    /// (tmpfs files hold their bytes, so the space is there); FALLOC_FL_KEEP_SIZE (1) has
    /// nothing to reserve. Punching holes and the other modes: EOPNOTSUPP.
    static func fallocate(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let mode = a.int32(1), offset = Int64(bitPattern: a[2]), length = Int64(bitPattern: a[3])
        guard offset >= 0, length > 0 else { throw .EINVAL }
        guard case (let end, false) = offset.addingReportingOverflow(length) else { throw .EFBIG }
        let status = try fs.statusFlags(a.fd(0))
        guard status.isWritable else { throw .EBADF }
        guard case .regular = try fs.nodeType(a.fd(0)) else { throw .ENODEV }
        switch mode {
        case 0:
            if end > Int64(try fs.fileSize(a.fd(0))) { try fs.ftruncate(a.fd(0), length: end) }
            return 0
        case 1:
            return 0
        default:
            throw .EOPNOTSUPP
        }
    }

    /// sync_file_range(fd, offset, nbytes, flags): nothing lies below the VM's files to
    /// write to; the arguments are checked as Linux checks them.
    static func syncFileRange(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard Int64(bitPattern: a[1]) >= 0, Int64(bitPattern: a[2]) >= 0, a.uint32(3) & ~7 == 0 else { throw .EINVAL }
        _ = try fs.statusFlags(a.fd(0))
        return 0
    }

    static func truncate(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.truncate(path(a[0]), length: Int64(bitPattern: a[1]))
        return 0
    }

    /// fsync, fdatasync: the files live in memory; the descriptor must exist.
    static func fsync(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard fs.isOpen(a.fd(0)) else { throw .EBADF }
        return 0
    }

    /// fadvise64(fd, offset, len, advice): a hint the in-memory files have no use for; the
    /// checks are Linux's: EBADF, ESPIPE for a pipe, EINVAL for advice outside 0…5 or a
    /// negative length.
    static func fadvise64(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let fd = a.fd(0)
        guard fs.isOpen(fd) else { throw .EBADF }
        if case .device(.console(let id)) = try fs.nodeType(fd), id >= KernelObjects.firstID {
            switch KernelObjects.object(id) {
            case .pipeRead?, .pipeWrite?: throw .ESPIPE
            default: break
            }
        }
        guard a.int32(3) >= 0, a.int32(3) <= 5, Int64(bitPattern: a[2]) >= 0 else { throw .EINVAL }
        return 0
    }

    static func getdents64(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let out = try UserMemory.writable(a[1], Int(min(a.size(2), 1 << 20)))
        return UInt64(try fs.getdents64(a.fd(0), into: out))
    }

    /// getdents (legacy): the same listing as `struct linux_dirent` records.
    static func getdents(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let out = try UserMemory.writable(a[1], Int(min(a.size(2), 1 << 20)))
        return UInt64(try fs.getdents64(a.fd(0), into: out, legacy: true))
    }

    // MARK: descriptors

    static func openat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(try fs.openat(a.fd(0), path(a[1]), flags: OpenFlags(rawValue: a.uint32(2)), mode: a.uint32(3)))
    }

    /// creat(path, mode): open(path, O_CREAT | O_WRONLY | O_TRUNC, mode).
    static func creat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(try fs.openat(AT_FDCWD, path(a[0]), flags: [.O_CREAT, .O_WRONLY, .O_TRUNC], mode: a.uint32(1)))
    }

    static func open(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        UInt64(try fs.openat(AT_FDCWD, path(a[0]), flags: OpenFlags(rawValue: a.uint32(1)), mode: a.uint32(2)))
    }

    /// Closing or replacing a descriptor of a pipe, eventfd or epoll instance is counted by
    /// KernelObjects (the last one closes that end).
    static func close(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let object = KernelObjects.id(of: a.fd(0))
        SysLocks.closing(a.fd(0))
        try fs.close(a.fd(0))
        SysEvents.forget(a.fd(0))
        if let object { KernelObjects.release(object) }
        return 0
    }

    /// Closes each open descriptor of the running process that `shouldClose` picks, as close(2)
    /// does (kernel objects lose a reference; epoll forgets it): exit, execve's close-on-exec.
    static func closeDescriptors(_ shouldClose: (Int32) -> Bool) {
        var fd: Int32 = 0
        while Int(fd) < fs.descriptorTableSize {
            if fs.isOpen(fd) && shouldClose(fd) { _ = try? close(SyscallArguments(number: 3, args: (UInt64(fd), 0, 0, 0, 0, 0))) }
            fd += 1
        }
    }

    /// A new descriptor for `fd`'s open file: counted when it is a kernel object.
    private static func duplicated(_ fd: Int32, _ new: Int32) -> UInt64 {
        if let object = KernelObjects.id(of: fd) { KernelObjects.retain(object) }
        return UInt64(new)
    }

    /// dup2/dup3 replace `new`: its old kernel object (if any) loses a descriptor.
    private static func replacing(_ old: Int32, _ new: Int32, _ body: () throws(Errno) -> Int32) throws(Errno) -> UInt64 {
        let replaced = old == new ? nil : KernelObjects.id(of: new)
        let wasOpen = old != new && fs.isOpen(new)
        if wasOpen && fs.isOpen(old) { SysLocks.closing(new) }
        let fd = try body()
        if wasOpen { SysEvents.forget(new) }
        if let replaced { KernelObjects.release(replaced) }
        return old == new ? UInt64(fd) : duplicated(old, fd)
    }

    static func dup(_ a: SyscallArguments) throws(Errno) -> UInt64 { duplicated(a.fd(0), try fs.duplicate(a.fd(0))) }
    static func dup2(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try replacing(a.fd(0), a.fd(1)) { () throws(Errno) -> Int32 in try fs.duplicate2(a.fd(0), a.fd(1)) }
    }
    static func dup3(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try replacing(a.fd(0), a.fd(1)) { () throws(Errno) -> Int32 in
            try fs.duplicate3(a.fd(0), a.fd(1), flags: OpenFlags(rawValue: a.uint32(2)))
        }
    }

    /// fcntl: descriptor and status flags, F_DUPFD, owners for SIGIO, advisory record locks
    /// (SysLocks).
    static func fcntl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let fd = a.fd(0)
        switch a.int32(1) {
        case 0: return duplicated(fd, try fs.duplicate(fd, minimum: a.int32(2)))                     // F_DUPFD
        case 1030: return duplicated(fd, try fs.duplicate(fd, minimum: a.int32(2), closeOnExec: true))  // F_DUPFD_CLOEXEC
        case 1: return UInt64(try fs.descriptorFlags(fd))                                      // F_GETFD
        case 2: try fs.setDescriptorFlags(fd, a.int32(2)); return 0                            // F_SETFD
        case 3: return UInt64(try fs.statusFlags(fd).rawValue)                                 // F_GETFL
        case 4:                                                                                // F_SETFL
            try fs.setStatusFlags(fd, OpenFlags(rawValue: a.uint32(2)))
            signalDrivenIO(fd)?.enabled = OpenFlags(rawValue: a.uint32(2)).contains(.O_ASYNC)
            return 0
        case 8:                                                                                // F_SETOWN
            guard fs.isOpen(fd) else { throw .EBADF }
            signalDrivenIO(fd)?.owner = a.int32(2)
            return 0
        case 9:                                                                                // F_GETOWN
            guard fs.isOpen(fd) else { throw .EBADF }
            return UInt64(bitPattern: Int64(signalDrivenIO(fd)?.owner ?? 0))
        case 15:                                            // F_SETOWN_EX: struct f_owner_ex { int type; pid_t pid; }
            guard fs.isOpen(fd) else { throw .EBADF }
            let type = try UserMemory.load(Int32.self, a[2]), pid = try UserMemory.load(Int32.self, a[2] &+ 4)
            guard type >= 0 && type <= 2 else { throw .EINVAL }  // F_OWNER_TID, F_OWNER_PID, F_OWNER_PGRP
            signalDrivenIO(fd)?.owner = type == 2 ? -pid : pid
            return 0
        case 16:                                                                               // F_GETOWN_EX (glibc's F_GETOWN)
            guard fs.isOpen(fd) else { throw .EBADF }
            let owner = signalDrivenIO(fd)?.owner ?? 0
            try UserMemory.store(Int32(owner < 0 ? 2 : 1), a[2])
            try UserMemory.store(owner < 0 ? -owner : owner, a[2] &+ 4)
            return 0
        case 5, 6, 7, 36, 37, 38:                                                               // F_GETLK/SETLK/SETLKW, OFD
            return try SysLocks.fcntl(fd, a.int32(1), a[2])
        case SysMemfd.F_ADD_SEALS, SysMemfd.F_GET_SEALS: return try SysMemfd.fcntl(fd, a.int32(1), a[2])
        default: throw .EINVAL
        }
    }

    /// Signal-driven I/O (O_ASYNC and F_SETOWN) of the object behind `fd`: AF_UNIX sockets
    /// raise SIGIO at their owner when data arrives (nginx's master/worker channels ask for
    /// it). Other descriptors keep the O_ASYNC flag and the owner's value unused: nil.
    private static func signalDrivenIO(_ fd: Int32) -> SignalDrivenIO? {
        guard let id = KernelObjects.id(of: fd), case .unixSocket(let u) = KernelObjects.object(id) else { return nil }
        return u.signalDrivenIO
    }

    /// ioctl: the terminal's requests with `apus run -t` (Terminal.swift); otherwise nothing
    /// is a terminal (the console is a byte stream to the host, like a pipe). FIONBIO and
    /// FIOCLEX/FIONCLEX act on the descriptor.
    static func ioctl(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let fd = a.fd(0)
        guard fs.isOpen(fd) else { throw .EBADF }
        if Terminal.owns(fd), let answer = try Terminal.ioctl(fd, a.uint32(1), a[2]) { return answer }
        switch a.uint32(1) {
        case 0x5421:  // FIONBIO
            var flags = try fs.statusFlags(fd)
            if try UserMemory.load(UInt32.self, a[2]) != 0 { flags.insert(.O_NONBLOCK) } else { flags.remove(.O_NONBLOCK) }
            try fs.setStatusFlags(fd, flags)
            return 0
        case NetlinkSocket.SIOCGIFINDEX, NetlinkSocket.SIOCGIFNAME:  // if_nametoindex, if_indextoname
            return try NetlinkSocket.interfaceIoctl(fd, a.uint32(1), a[2])
        case 0x541b:  // FIONREAD: bytes ready to read on a socket
            guard let id = KernelObjects.id(of: fd) else { throw .ENOTTY }
            let count: Int
            switch KernelObjects.object(id) {
            case .socket(let s): Network.poll(); count = Network.current.availableBytes(s.id)
            case .unixSocket(let u): count = u.queue.count
            case .netlink(let n): count = n.queue.first?.count ?? 0
            case .pipeRead(let p): count = p.bytes.count
            default: throw .ENOTTY
            }
            try UserMemory.store(UInt32(count), a[2])
            return 0
        case 0x5452:  // FIOASYNC: O_ASYNC on the description
            var flags = try fs.statusFlags(fd)
            let on = try UserMemory.load(UInt32.self, a[2]) != 0
            if on { flags.insert(.O_ASYNC) } else { flags.remove(.O_ASYNC) }
            try fs.setStatusFlags(fd, flags)
            signalDrivenIO(fd)?.enabled = on
            return 0
        case 0x5451: try fs.setDescriptorFlags(fd, 1); return 0  // FIOCLEX
        case 0x5450: try fs.setDescriptorFlags(fd, 0); return 0  // FIONCLEX
        default: throw .ENOTTY
        }
    }

    /// poll(fds, nfds, timeout ms). Files and the console are always ready (reads of stdin
    /// block on the host until data or end of file); bad descriptors are POLLNVAL. With
    /// nothing ready the call sleeps for its timeout.
    static func poll(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let timeout = Int64(a.int32(2))
        return try poll(fds: a[0], count: a[1], timeoutNanos: timeout < 0 ? nil : UInt64(timeout) * 1_000_000)
    }

    /// ppoll(fds, nfds, timespec *, sigmask *, size): poll with a temporary signal mask.
    static func ppoll(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let timeout = try SysTime.timeout(a[2])
        try SysSignal.applyTemporaryMask(a[3], size: a[4])
        return try poll(fds: a[0], count: a[1], timeoutNanos: timeout)
    }

    private static func poll(fds: UInt64, count: UInt64, timeoutNanos: UInt64?) throws(Errno) -> UInt64 {
        guard count <= 1024 else { throw .EINVAL }  // RLIMIT_NOFILE
        Network.poll()
        let table = try UserMemory.writable(fds, Int(count) * Pollfd.size)
        var ready: UInt64 = 0
        for i in 0..<Int(count) {
            let p = try Pollfd.decode(from: UnsafeRawBufferPointer(table), index: i)
            var revents: Int16 = 0
            if p.fd >= 0 {
                if let ready = KernelObjects.readiness(p.fd, input: p.events & 1 != 0 && timeoutNanos == nil) {
                    // POLLERR and POLLHUP are reported whether asked for or not.
                    revents = Int16(truncatingIfNeeded: ready) & (p.events | 8 | 16)
                } else {
                    revents = PollEvents.POLLNVAL
                }
            }
            try Pollfd.encodeReturnedEvents(revents, into: table, index: i)
            if revents != 0 { ready += 1 }
        }
        if ready == 0 && timeoutNanos != 0 {
            // Nothing ready: wait for a change (or the timeout) and look again.
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
            Scheduler.blockCurrentRestarting(deadline: Scheduler.restartableDeadline(timeoutNanos))
        }
        return ready
    }

    // MARK: metadata

    /// fstat of a descriptor: what the VFS knows, except that the standard streams are what
    /// the host's are (BootInfo.streams; the terminal with -t), pipes are FIFOs (mode 0600)
    /// and sockets sockets (0777), as Linux shows them; eventfd, epoll, timerfd and signalfd
    /// are anonymous inodes (mode 0600, no file type).
    static func stat(of fd: Int32) throws(Errno) -> Stat {
        var st = try fs.fstat(fd)
        guard case .device(.console(let id)) = try fs.nodeType(fd) else { return st }
        let mode: UInt32
        if id <= ConsoleID.stderr && !Terminal.enabled {  // with -t: the terminal, a character device
            // What the host's stream is: a pipe (or unknown), /dev/null or a tty (a character
            // device, not a terminal here: TCGETS is ENOTTY), a file (its size), a socket.
            let boot = Kernel.boot.streams
            let kind = id == ConsoleID.stdin ? boot.0 : id == ConsoleID.stdout ? boot.1 : boot.2
            st.specialDevice = 0
            st.blockSize = 4096
            switch kind.mode {
            case FileMode.S_IFCHR:
                st.mode = FileMode.S_IFCHR | 0o666
                st.specialDevice = UInt64(kind.rdev)
            case FileMode.S_IFREG:
                st.mode = FileMode.S_IFREG | 0o644
                st.size = Int64(clamping: kind.size)
                st.blocks = (st.size + 511) / 512
            case FileMode.S_IFSOCK:
                st.mode = FileMode.S_IFSOCK | 0o777
            default:
                st.mode = FileMode.S_IFIFO | 0o600
            }
            return st
        } else {
            switch KernelObjects.object(id) {
            case .pipeRead, .pipeWrite: mode = FileMode.S_IFIFO | 0o600
            case .socket, .unixSocket, .netlink: mode = FileMode.S_IFSOCK | 0o777
            case .eventfd, .epoll, .timer, .signalfd: mode = 0o600
            case nil: return st
            }
        }
        st.mode = mode
        st.specialDevice = 0
        st.blockSize = 4096
        return st
    }

    static func fstat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try stat(of: a.fd(0)).encode(into: UserMemory.writable(a[1], Stat.size))
        return 0
    }

    static func newfstatat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let name = try path(a[1])
        let flags = AtFlags(rawValue: a.uint32(3))
        let st = name.isEmpty && flags.contains(.AT_EMPTY_PATH)
            ? try stat(of: a.fd(0)) : try fs.fstatat(a.fd(0), name, flags: flags)
        try st.encode(into: UserMemory.writable(a[2], Stat.size))
        return 0
    }

    /// statx(dirfd, path, flags, mask, struct statx *): the basic stats from the same stat.
    static func statx(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let name = try path(a[1])
        let flags = AtFlags(rawValue: a.uint32(2) & ~0x6000)  // AT_STATX_SYNC_TYPE: no remote cache
        guard a.uint32(3) & 0x8000_0000 == 0 else { throw .EINVAL }  // STATX__RESERVED
        let st = name.isEmpty && flags.contains(.AT_EMPTY_PATH)
            ? try stat(of: a.fd(0)) : try fs.fstatat(a.fd(0), name, flags: flags)
        var x = Statx()
        x.mode = UInt16(truncatingIfNeeded: st.mode)
        x.linkCount = UInt32(truncatingIfNeeded: st.linkCount)
        x.uid = st.uid
        x.gid = st.gid
        x.inode = st.inode
        x.size = UInt64(bitPattern: st.size)
        x.blocks = UInt64(bitPattern: st.blocks)
        x.blockSize = UInt32(truncatingIfNeeded: st.blockSize)
        x.accessTime = st.accessTime
        x.modificationTime = st.modificationTime
        x.changeTime = st.changeTime
        x.specialDeviceMajor = UInt32(truncatingIfNeeded: (st.specialDevice >> 8) & 0xfff)
        x.specialDeviceMinor = UInt32(truncatingIfNeeded: (st.specialDevice & 0xff) | ((st.specialDevice >> 12) & 0xfff00))
        x.deviceMajor = UInt32(truncatingIfNeeded: (st.device >> 8) & 0xfff)
        x.deviceMinor = UInt32(truncatingIfNeeded: st.device & 0xff)
        try x.encode(into: UserMemory.writable(a[4], Statx.size))
        return 0
    }

    /// statfs/fstatfs: one memory-backed file system (TMPFS_MAGIC), sized by guest memory.
    /// struct statfs: type@0 bsize@8 blocks@16 bfree@24 bavail@32 files@40 ffree@48
    /// fsid@56 namelen@64 frsize@72 flags@80 spare[4]@88 — 120 bytes.
    static func statfs(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        _ = try fs.fstatat(AT_FDCWD, path(a[0]), flags: [])
        try writeStatfs(a[1])
        return 0
    }

    static func fstatfs(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard fs.isOpen(a.fd(0)) else { throw .EBADF }
        try writeStatfs(a[1])
        return 0
    }

    private static func writeStatfs(_ address: UInt64) throws(Errno) {
        let out = try UserMemory.writable(address, 120)
        out.initializeMemory(as: UInt8.self, repeating: 0)
        let free = UInt64(PhysicalMemory.freePages)
        out.writeLE(UInt64(0x0102_1994), at: 0)   // TMPFS_MAGIC
        out.writeLE(UInt64(4096), at: 8)
        out.writeLE(Kernel.boot.memorySize / 4096, at: 16)
        out.writeLE(free, at: 24)
        out.writeLE(free, at: 32)
        out.writeLE(UInt64(1 << 20), at: 40)
        out.writeLE(UInt64(1 << 20), at: 48)
        out.writeLE(UInt64(255), at: 64)
        out.writeLE(UInt64(4096), at: 72)
        out.writeLE(UInt64(0x20), at: 80)          // ST_VALID… as Linux reports for tmpfs: relatime
    }

    static func stat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let st = try fs.fstatat(AT_FDCWD, path(a[0]), flags: [])
        try st.encode(into: UserMemory.writable(a[1], Stat.size))
        return 0
    }

    static func lstat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let st = try fs.fstatat(AT_FDCWD, path(a[0]), flags: .AT_SYMLINK_NOFOLLOW)
        try st.encode(into: UserMemory.writable(a[1], Stat.size))
        return 0
    }

    static func readlink(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(2) > 0 else { throw .EINVAL }  // int bufsiz
        let out = try UserMemory.writable(a[1], Int(min(a.int32(2), 4096)))
        return UInt64(try fs.readlinkat(AT_FDCWD, path(a[0]), into: out))
    }

    static func readlinkat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        guard a.int32(3) > 0 else { throw .EINVAL }  // int bufsiz
        let out = try UserMemory.writable(a[2], Int(min(a.int32(3), 4096)))
        return UInt64(try fs.readlinkat(a.fd(0), path(a[1]), into: out))
    }

    static func access(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.faccessat(AT_FDCWD, path(a[0]), mode: a.int32(1), flags: [])
        return 0
    }

    static func faccessat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.faccessat(a.fd(0), path(a[1]), mode: a.int32(2), flags: [])
        return 0
    }

    static func faccessat2(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.faccessat(a.fd(0), path(a[1]), mode: a.int32(2), flags: AtFlags(rawValue: a.uint32(3)))
        return 0
    }

    static func fchmod(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.fchmod(a.fd(0), mode: a.uint32(1))
        return 0
    }

    static func fchmodat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.fchmodat(a.fd(0), path(a[1]), mode: a.uint32(2), flags: [])
        return 0
    }

    static func chmod(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.fchmodat(AT_FDCWD, path(a[0]), mode: a.uint32(1), flags: [])
        return 0
    }

    static func fchown(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.fchown(a.fd(0), uid: a.uint32(1), gid: a.uint32(2))
        return 0
    }

    static func fchownat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.fchownat(a.fd(0), path(a[1]), uid: a.uint32(2), gid: a.uint32(3), flags: AtFlags(rawValue: a.uint32(4)))
        return 0
    }

    static func chown(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.fchownat(AT_FDCWD, path(a[0]), uid: a.uint32(1), gid: a.uint32(2), flags: [])
        return 0
    }

    static func lchown(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.fchownat(AT_FDCWD, path(a[0]), uid: a.uint32(1), gid: a.uint32(2), flags: .AT_SYMLINK_NOFOLLOW)
        return 0
    }

    static func utimensat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        var times: (Timespec, Timespec)? = nil
        if a[2] != 0 {
            let raw = try UserMemory.readable(a[2], 2 * Timespec.size)
            times = (try Timespec.decode(from: raw),
                     try Timespec.decode(from: UnsafeRawBufferPointer(rebasing: raw[Timespec.size...])))
        }
        let p: UnsafeRawBufferPointer? = a[1] == 0 ? nil : try path(a[1])
        try fs.utimensat(a.fd(0), p, times: times, flags: AtFlags(rawValue: a.uint32(3)))
        return 0
    }

    // MARK: names

    static func mkdirat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.mkdirat(a.fd(0), path(a[1]), mode: a.uint32(2))
        return 0
    }

    static func mkdir(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.mkdirat(AT_FDCWD, path(a[0]), mode: a.uint32(1))
        return 0
    }

    /// mknodat(dirfd, path, mode, dev) / mknod(path, mode, dev): regular files only (the
    /// VFS's `mknodat` says what else answers).
    static func mknodat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.mknodat(a.fd(0), path(a[1]), mode: a.uint32(2))
        return 0
    }

    static func mknod(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.mknodat(AT_FDCWD, path(a[0]), mode: a.uint32(1))
        return 0
    }

    static func unlinkat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.unlinkat(a.fd(0), path(a[1]), flags: AtFlags(rawValue: a.uint32(2)))
        return 0
    }

    static func unlink(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.unlinkat(AT_FDCWD, path(a[0]), flags: [])
        return 0
    }

    static func rmdir(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.unlinkat(AT_FDCWD, path(a[0]), flags: .AT_REMOVEDIR)
        return 0
    }

    static func renameat2(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.renameat2(a.fd(0), path(a[1]), a.fd(2), path(a[3]), flags: a.uint32(4))
        return 0
    }

    static func renameat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.renameat2(a.fd(0), path(a[1]), a.fd(2), path(a[3]))
        return 0
    }

    static func rename(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.renameat2(AT_FDCWD, path(a[0]), AT_FDCWD, path(a[1]))
        return 0
    }

    static func symlinkat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.symlinkat(path(a[0]), a.fd(1), path(a[2]))
        return 0
    }

    static func symlink(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.symlinkat(path(a[0]), AT_FDCWD, path(a[1]))
        return 0
    }

    static func linkat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.linkat(a.fd(0), path(a[1]), a.fd(2), path(a[3]), flags: AtFlags(rawValue: a.uint32(4)))
        return 0
    }

    static func link(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.linkat(AT_FDCWD, path(a[0]), AT_FDCWD, path(a[1]), flags: [])
        return 0
    }

    static func getcwd(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let out = try UserMemory.writable(a[0], Int(min(a.size(1), 4096)))  // size_t: huge is plenty
        return UInt64(try fs.getcwd(into: out))
    }

    static func chdir(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.chdir(path(a[0]))
        currentDirectoryChanged()
        return 0
    }

    static func fchdir(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try fs.fchdir(a.fd(0))
        currentDirectoryChanged()
        return 0
    }

    /// /proc/PID/cwd follows the process's current directory.
    private static func currentDirectoryChanged() {
        if let cwd = try? fs.currentDirectoryPath() { Files.setProcessLink(Process.current.pid, "cwd", cwd) }
    }

    /// close_range(first, last, flags): CLOSE_RANGE_CLOEXEC (4) marks instead of closing.
    static func closeRange(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let first = a.uint32(0), last = a.uint32(1), flags = a.uint32(2)
        guard first <= last, flags & ~UInt32(6) == 0 else { throw .EINVAL }
        var fd = first
        while fd <= min(last, 1023) {
            let n = Int32(fd)
            if fs.isOpen(n) {
                if flags & 4 != 0 {
                    try fs.setDescriptorFlags(n, 1)
                } else {
                    _ = try close(SyscallArguments(number: SyscallNumber.close, UInt64(fd)))
                }
            }
            fd += 1
        }
        return 0
    }

    /// select/pselect6 through poll: fd_set bitmaps in, the ready bitmaps out. Both write
    /// the time left into their timeout as Linux does (glibc's and musl's pselect, and musl's
    /// select, pass the kernel a copy, so only callers of the system calls see it): when
    /// something is ready, the deadline less now; when the wait times out, zero. (A signal
    /// ending the wait leaves the zero written before it parked: Linux writes the time left.)
    static func select(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        var timeout: UInt64? = nil
        if a[4] != 0 {
            let tv = try Timeval.decode(from: UserMemory.readable(a[4], Timeval.size))
            guard let ns = tv.selectTimeoutNanoseconds else { throw .EINVAL }
            timeout = ns
        }
        return try select(count: a.int32(0), sets: (a[1], a[2], a[3]), timeout: timeout) { (left) throws(Errno) in
            let micros = left / 1000
            let out = try UserMemory.writable(a[4], Timeval.size)
            out.writeLE(micros / 1_000_000, at: 0)
            out.writeLE(micros % 1_000_000, at: 8)
        }
    }

    /// pselect6(n, in, out, except, timespec *, {const sigset_t *mask; size_t size} *).
    static func pselect6(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let timeout = try SysTime.timeout(a[4])
        if a[5] != 0 {
            let maskArgument = try UserMemory.readable(a[5], 16)
            try SysSignal.applyTemporaryMask(maskArgument.readLE(UInt64.self, at: 0), size: maskArgument.readLE(UInt64.self, at: 8))
        }
        return try select(count: a.int32(0), sets: (a[1], a[2], a[3]), timeout: timeout) { (left) throws(Errno) in
            try Timespec(totalNanoseconds: Int64(clamping: left)).encode(into: UserMemory.writable(a[4], Timespec.size))
        }
    }

    /// `writeTimeLeft(nanoseconds)` stores the time left into the caller's timeout (called
    /// only when there is one).
    private static func select(count: Int32, sets: (UInt64, UInt64, UInt64), timeout: UInt64?,
                               writeTimeLeft: (UInt64) throws(Errno) -> Void) throws(Errno) -> UInt64 {
        guard count >= 0 && count <= 1024 else { throw .EINVAL }
        Network.poll()
        let bytes = (Int(count) + 63) / 64 * 8
        let addresses = [sets.0, sets.1, sets.2]
        var inputs: [[UInt8]] = []
        let me = Scheduler.current
        if Scheduler.resumedDeadline != nil, let saved = me.selectInputs, saved.count == 3, saved[0].count == bytes {
            inputs = saved  // running again: the caller's sets were cleared for a timeout
        } else {
            for address in addresses {
                inputs.append(address == 0 ? [UInt8](repeating: 0, count: bytes) : Array(try UserMemory.readable(address, bytes)))
            }
        }
        me.selectInputs = nil
        var outputs = [[UInt8]](repeating: [UInt8](repeating: 0, count: bytes), count: 3)
        var ready: UInt64 = 0
        for fd in 0..<Int(count) {
            let bit = UInt8(1 << (fd % 8))
            let wanted = (inputs[0][fd / 8] & bit != 0, inputs[1][fd / 8] & bit != 0, inputs[2][fd / 8] & bit != 0)
            guard wanted.0 || wanted.1 || wanted.2 else { continue }
            guard let state = KernelObjects.readiness(Int32(fd), input: wanted.0 && timeout == nil) else { throw .EBADF }
            if wanted.0 && state & (1 | 16) != 0 { outputs[0][fd / 8] |= bit; ready += 1 }
            if wanted.1 && state & (4 | 8) != 0 { outputs[1][fd / 8] |= bit; ready += 1 }
        }
        let deadline = Scheduler.restartableDeadline(timeout)
        // Running again after a wake-up, the first call's deadline rules: the timeout in the
        // caller's memory was zeroed before the wait (else the look again would return 0).
        let resumed = Scheduler.resumedDeadline != nil
        if ready == 0 && (resumed || timeout != 0) {
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }
            // What the timeout leaves if it passes: no time and empty sets, as Linux returns
            // them (a look again after a wake-up overwrites both, from the sets kept here).
            if timeout != nil { try writeTimeLeft(0) }
            for address in addresses where address != 0 {
                try UserMemory.writable(address, bytes).initializeMemory(as: UInt8.self, repeating: 0)
            }
            me.selectInputs = inputs
            Scheduler.blockCurrentRestarting(deadline: deadline)
            return 0
        }
        for (i, address) in addresses.enumerated() where address != 0 {
            let out = try UserMemory.writable(address, bytes)
            for j in 0..<bytes { out[j] = outputs[i][j] }
        }
        if timeout != nil {
            let now = Clock.monotonicNanos
            try writeTimeLeft(deadline > now ? deadline - now : 0)
        }
        return ready
    }

    static func umask(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        let old = fs.umask
        fs.umask = a.uint32(0) & 0o777
        return UInt64(old)
    }
}
