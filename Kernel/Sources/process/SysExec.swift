import ELF
import GuestABI
import KernelArch
import LinuxABI
import VFS

/// execve and execveat: the running process replaces its program with a file of the VM's
/// file system — a static, static-pie or dynamic ELF (its interpreter from the file system)
/// or a `#!` script — as Linux does: every check that can fail is made before the old
/// program is given up; after that point a failure kills the process (SIGSEGV).
enum SysExec {
    static let AT_SYMLINK_NOFOLLOW: Int32 = 0x100
    static let AT_EMPTY_PATH: Int32 = 0x1000
    /// Bytes of argv and envp strings (Linux allows a quarter of the stack limit: 2 MiB).
    static let argumentLimit = 2 << 20
    /// Nested `#!` interpreters (Linux: 4, then ELOOP).
    static let maxInterpreterDepth = 4

    static func execve(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try exec(dirfd: AtFlags.AT_FDCWD, path: a[0], argv: a[1], envp: a[2], flags: 0)
    }

    static func execveat(_ a: SyscallArguments) throws(Errno) -> UInt64 {
        try exec(dirfd: a.int32(0), path: a[1], argv: a[2], envp: a[3], flags: a.int32(4))
    }

    /// The NUL-terminated strings of a NULL-terminated pointer array (NULL: none), appended
    /// to `block`; returns their count. E2BIG past `argumentLimit`.
    private static func collect(_ array: UInt64, into block: inout [UInt8]) throws(Errno) -> Int {
        guard array != 0 else { return 0 }
        var count = 0
        while true {
            let pointer = try UserMemory.load(UInt64.self, array &+ UInt64(count) * 8)
            if pointer == 0 { return count }
            let string = try UserMemory.string(pointer, limit: argumentLimit)
            guard block.count + string.count + 1 <= argumentLimit else { throw .E2BIG }
            guard PhysicalMemory.canGrow(count: block.count, capacity: block.capacity, by: string.count + 1) else { throw .ENOMEM }
            block.append(contentsOf: string)
            block.append(0)
            count += 1
        }
    }

    /// The interpreter line of a `#!` script: the interpreter and its one optional argument
    /// (the rest of the line, blanks trimmed), from the first 256 bytes as Linux reads them.
    /// Nil if `bytes` is no script; ENOEXEC if the line names nothing or does not end there.
    static func interpreterLine(_ bytes: UnsafeRawBufferPointer) throws(Errno) -> (path: [UInt8], argument: [UInt8]?)? {
        guard bytes.count >= 2, bytes[0] == UInt8(ascii: "#"), bytes[1] == UInt8(ascii: "!") else { return nil }
        let head = bytes.prefix(256)
        func blank(_ c: UInt8) -> Bool { c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") }
        var end = 2
        while end < head.count && head[end] != UInt8(ascii: "\n") { end += 1 }
        var i = 2
        while i < end && blank(head[i]) { i += 1 }
        let pathStart = i
        while i < end && !blank(head[i]) { i += 1 }
        guard i > pathStart else { throw .ENOEXEC }
        // A path cut off by the 256-byte limit would run the wrong program.
        guard i < head.count else { throw .ENOEXEC }
        let path = Array(head[pathStart..<i])
        while i < end && blank(head[i]) { i += 1 }
        var argumentEnd = end
        while argumentEnd > i && blank(head[argumentEnd - 1]) { argumentEnd -= 1 }
        return (path, argumentEnd > i ? Array(head[i..<argumentEnd]) : nil)
    }

    private static func exec(dirfd: Int32, path: UInt64, argv: UInt64, envp: UInt64, flags: Int32) throws(Errno) -> UInt64 {
        guard flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) == 0 else { throw .EINVAL }
        var pathBytes = Array(try UserMemory.string(path))
        var arguments: [UInt8] = []
        var argc = try collect(argv, into: &arguments)
        var environment: [UInt8] = []
        let envc = try collect(envp, into: &environment)
        if pathBytes.isEmpty && flags & AT_EMPTY_PATH == 0 { throw .ENOENT }
        // comm: the file name as the caller gave it (Linux: "exe" for /proc/self/exe).
        let givenPath = pathBytes

        // The program, through any #! interpreters.
        var file = try withBytes(pathBytes) { p throws(Errno) in
            try SysIO.fs.executable(dirfd, p, follow: flags & AT_SYMLINK_NOFOLLOW == 0, emptyPath: flags & AT_EMPTY_PATH != 0)
        }
        var programPath = pathBytes.withUnsafeBytes { SysIO.fs.canonicalPath(dirfd, $0) ?? SysIO.fs.normalizedPath(dirfd, $0) }
        var depth = 0
        while true {
            let line = try withBytes(file.copiedBytes) { copied throws(Errno) in
                try interpreterLine(file.imageBytes ?? copied)
            }
            guard let (interpreter, argument) = line else { break }
            depth += 1
            guard depth <= maxInterpreterDepth else { throw .ELOOP }
            // argv becomes: interpreter, [argument], the script's path, argv[1...].
            var rewritten = interpreter + [0]
            if let argument { rewritten += argument + [0] }
            rewritten += (pathBytes.isEmpty ? programPath : pathBytes) + [0]
            var skip = 0
            if argc > 0 { while arguments[skip] != 0 { skip += 1 }; skip += 1 }
            rewritten.append(contentsOf: arguments[skip..<arguments.count])
            guard rewritten.count <= argumentLimit else { throw .E2BIG }
            argc += (argument == nil ? 2 : 3) - (argc > 0 ? 1 : 0)
            arguments = rewritten
            pathBytes = interpreter
            file = try withBytes(interpreter) { p throws(Errno) in try SysIO.fs.executable(AtFlags.AT_FDCWD, p) }
            programPath = interpreter.withUnsafeBytes {
                SysIO.fs.canonicalPath(AtFlags.AT_FDCWD, $0) ?? SysIO.fs.normalizedPath(AtFlags.AT_FDCWD, $0)
            }
        }
        // What can be checked before the old program is given up: the ELF itself, and that
        // its interpreter is there.
        let valid = file.copiedBytes.withUnsafeBytes { copied -> ELFFile? in
            guard let elf = try? ELFFile(bytes: file.imageBytes ?? copied), (try? elf.validateForLoading()) != nil else { return nil }
            return elf
        }
        guard let elf = valid else { throw .ENOEXEC }
        if let interpreter = elf.interpreter {
            do throws(Errno) { _ = try SysIO.fs.executable(AtFlags.AT_FDCWD, interpreter) } catch .ENOMEM { throw .ENOMEM } catch {
                throw .ENOENT
            }
        }
        let memory = try Memory.make()
        let strings = arguments + environment

        // The point of no return: the process's other threads end, its address space goes.
        let me = Scheduler.current
        let process = me.process
        SysThread.releaseRobustLists(of: process)
        Scheduler.endOtherThreads(of: process)
        memory.activate()
        Processes.releaseMemory(of: process)
        process.memory = memory

        SysIO.closeDescriptors { fd in (try? SysIO.fs.descriptorFlags(fd)) == FcntlCommand.FD_CLOEXEC }
        // A set-user-ID or set-group-ID program runs with its owner's ids (AT_SECURE then).
        var credentials = process.credentials
        let secure = credentials.execute(file, honourSetID: !process.noNewPrivileges)
        process.credentials = credentials
        SysIO.fs.credentials = credentials
        let program: LoadedProgram
        do {
            program = try withBytes(file.copiedBytes) { copied throws(Errno) in
                try withBytes(strings) { block throws(Errno) in
                    try Loader.load(file.imageBytes ?? copied, imageBacked: file.imageBytes != nil, path: programPath,
                                    strings: block, argc: argc, envc: envc, secure: secure)
                }
            }
        } catch {
            var m = Message("apus: execve of ")
            m.append(bytes: programPath)
            m.append(" failed after the old program was given up (")
            m.append(error.name)
            m.append("): the process is killed")
            Console.kernelLine(m)
            SysSignal.terminate(SysSignal.SIGSEGV)
        }

        // Caught signals go back to their default; ignored ones stay ignored; the mask and
        // pending signals stay. POSIX timers go; interval timers (alarm) stay.
        for i in process.actions.indices where process.actions[i].handler > SysSignal.SIG_IGN {
            process.actions[i] = KernelSigaction()
        }
        for case let t? in process.posixTimers { Timers.remove(t) }
        process.posixTimers = []
        process.didExec = true
        process.program = program
        process.commandLine = strings.withUnsafeBytes { Process.argumentBytes($0, count: argc) }
        SysIO.fs.setExecutablePath(programPath)
        Files.setProcessLink(process.pid, "exe", programPath)
        me.altStack = SignalStack(base: UserAddress(0), flags: SignalStack.disable, size: 0)
        me.clearChildTid = 0
        me.robustList = 0
        me.rseqArea = 0
        me.name = Loader.commandName(givenPath.isEmpty ? programPath : givenPath)
        me.fsBase = 0
        me.gsBase = 0
        arch_wrmsr(Platform.msrFSBase, 0)
        arch_wrmsr(Platform.msrGSBase, 0)
        program.setInitialRegisters(Scheduler.frame)
        resetFPU(Scheduler.fpuArea)
        Scheduler.switched = true
        return 0
    }

    /// The FPU state a new program starts with (fxsave image): x87 control word 0x37f,
    /// MXCSR 0x1f80 (all exceptions masked), everything else zero.
    static func resetFPU(_ area: UnsafeMutableRawPointer) {
        area.initializeMemory(as: UInt8.self, repeating: 0, count: 512)
        area.storeBytes(of: UInt16(0x37f), as: UInt16.self)
        area.storeBytes(of: UInt32(0x1f80), toByteOffset: 24, as: UInt32.self)
    }
}
