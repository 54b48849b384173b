import ELF
import GuestABI
import ImageFormat
import KernelArch
import LinuxABI
import VFS

/// A program loaded into the running process's address space: where, and how to enter it.
struct LoadedProgram {
    var entry: UInt64
    var stackPointer: UInt64
    var loadBase: UInt64
    /// The stack's lowest address.
    var stackLow: UInt64
    var executablePath: [UInt8]
    /// The ELF's bytes when they are the image's (for symbols in crash reports).
    var elfBytes: UnsafeRawBufferPointer?

    /// The registers Linux starts a program with: everything zero but rip and rsp, rflags
    /// with IF set, and a fresh FPU state.
    func setInitialRegisters(_ frame: SyscallFrame) {
        frame.clear()
        frame[.rip] = entry
        frame[.cs] = Platform.userCode
        frame[.rflags] = 0x202
        frame[.rsp] = stackPointer
        frame[.ss] = Platform.userData
    }

    /// Jumps to user mode at the program's entry as `main`, pid 1's first thread.
    func enter(_ main: Thread) -> Never {
        main.name = Loader.commandName(executablePath)
        Scheduler.start(main: main)
        let frame = SyscallFrame.atTopOfKernelStack()
        setInitialRegisters(frame)
        enter_user(frame.address)
    }
}

/// Loads an ELF program into the running process's half of the address space (DESIGN.md
/// "Kernel memory model"): ET_EXEC at its addresses, ET_DYN static-pie at a random base, its
/// interpreter (PT_INTERP) in the mmap area, brk after the highest segment, a stack at a
/// random top with Linux's initial stack (argv, envp, auxv), the vDSO. Used at boot for the
/// image's entrypoint and by execve.
enum Loader {
    /// The stack: Linux's 8 MiB, or 1/32 of the VM's memory if that is less (at least
    /// 256 KiB). App memory is backed eagerly (pvm), so every process pays for its whole
    /// stack: a small VM holds more processes with smaller stacks.
    static var stackSize: UInt64 { max(min(8 << 20, (Kernel.boot.memorySize / 32) & ~0xfff), 256 << 10) }
    static let stackTopLimit: UInt64 = PageTable.userEnd - 0x1000
    static let dynamicBase: UInt64 = 0x5555_5555_4000
    /// Room for the initial stack's strings and vectors (argv, envp, auxv) at the stack's top.
    static let initialStackSpan: UInt64 = 128 * 1024

    /// The vDSO's frames, made once and mapped into every address space.
    nonisolated(unsafe) static var vdsoFrames: PhysicalAddress? = nil

    /// comm: an executable's file name, at most 15 bytes (TASK_COMM_LEN - 1).
    static func commandName(_ path: [UInt8]) -> [UInt8] {
        let name = path.split(separator: UInt8(ascii: "/")).last.map { Array($0.prefix(15)) } ?? []
        return name.isEmpty ? Array("app".utf8) : name
    }

    /// Boot: mounts the image, enters the working directory, loads the entrypoint with the
    /// boot info's argv and envp. A failure stops the VM with a message (exit 127).
    static func loadProgram(boot: BootInfo, process: Process) -> LoadedProgram {
        let imageBytes = UnsafeRawBufferPointer(start: directMap(boot.imageAddress), count: Int(boot.imageSize))
        let image: ImageReader
        // The host checked the image and the ELF with full messages before booting; the
        // kernel checks again (it trusts nothing) but keeps the String formatting out of
        // the kernel image: a failure here means the host and the kernel disagree.
        do { image = try ImageReader(bytes: imageBytes) } catch { fatalLoad("the image is corrupt", "") }
        let entry = image.entrypoint
        Files.mount(image: image, executablePath: entry.path)
        if boot.workingDirectoryLength > 0 {
            // The last string of the argument block (GuestABI `BootInfo`).
            let length = Int(boot.workingDirectoryLength)
            guard UInt64(length) + 1 <= boot.argumentsSize else { fatalLoad("the boot information is corrupt", "") }
            let path = UnsafeRawBufferPointer(start: directMap(boot.argumentsAddress + (boot.argumentsSize - UInt64(length) - 1)),
                                              count: length)
            do { try SysIO.fs.chdir(path) } catch {
                fatalLoad("the working directory is not a directory in the image", "")
            }
        }
        let strings = UnsafeRawBufferPointer(start: directMap(boot.argumentsAddress), count: Int(boot.argumentsSize))
        do {
            let program = try load(image.contents(of: entry), imageBacked: true, path: Array(entry.path),
                                   strings: strings, argc: Int(boot.argc), envc: Int(boot.envc))
            if Platform.bootProtocol != .pvh {
                Console.guestState.writeLE(program.stackLow, at: GuestState.appStackLowOffset - GuestState.offset)
            }
            return program
        } catch .ENOEXEC {
            fatalLoad("the program is not a loadable x86-64 ELF executable", "")
        } catch .ENOENT {
            fatalLoad("the program's interpreter (PT_INTERP) is missing from the image: ", "build the image with apus build")
        } catch .E2BIG {
            fatalLoad("arguments and environment do not fit the stack", "")
        } catch .ELIBBAD {
            fatalLoad("the program's interpreter is not a loadable x86-64 ELF shared object", "")
        } catch {
            fatalLoad("not enough memory for the program: ", "give the VM more memory with --memory")
        }
    }

    /// Loads `bytes` (an ELF executable; `imageBacked`: a slice of the image, whose pages
    /// read-only segments may map directly) into the running process's address space, which
    /// must be empty, with argv and envp from `strings` (argc then envc NUL-terminated
    /// strings). ENOEXEC: not a loadable x86-64 ELF; ENOENT: its interpreter is missing;
    /// ELIBBAD: the interpreter is not a shared object; ENOMEM; E2BIG: the arguments do not
    /// fit the initial stack.
    static func load(_ bytes: UnsafeRawBufferPointer, imageBacked: Bool, path: [UInt8],
                     strings: UnsafeRawBufferPointer, argc: Int, envc: Int, secure: Bool = false) throws(Errno) -> LoadedProgram {
        let elf: ELFFile
        do {
            elf = try ELFFile(bytes: bytes)
            try elf.validateForLoading()
        } catch {
            throw .ENOEXEC
        }
        let base: UInt64 = elf.type == .sharedObject ? dynamicBase + (Random.next() % (1 << 20)) * 4096 : 0
        var highest: UInt64 = 0
        for ph in elf.programHeaders where ph.isLoad {
            try loadSegment(ph, base: base, file: bytes, imageBacked: imageBacked, name: path)
            highest = max(highest, base + ph.virtualAddress + ph.memorySize)
        }

        // brk: a random gap after the program, like Linux's brk randomization.
        guard let brkBase = AddressSpace.pageAlignUp(highest) else { throw .ENOEXEC }
        let brk = brkBase + (Random.next() % 4096) * 4096
        AddressSpace.brkStart = brk
        AddressSpace.brkCurrent = brk

        // Stack: the top randomized over 256 MiB, mapped eagerly like all app memory.
        let stackTop = stackTopLimit - (Random.next() % 65536) * 4096
        let size = stackSize
        let stackBase = stackTop - size
        try AddressSpace.map(stackBase, size, [.PROT_READ, .PROT_WRITE], .stack)
        // mmap grows down from below a guard gap under the stack.
        AddressSpace.mmapTop = stackBase - (1 << 30) - (Random.next() % 65536) * 4096

        // A dynamic program: its interpreter (ld.so) at a random base in the mmap area; it
        // is entered first and finds the program through AT_PHDR/AT_ENTRY.
        var interpreterBase: UInt64 = 0
        var firstInstruction = base + elf.entry
        if let interpreterPath = elf.interpreter {
            let (loadedBase, interpreterEntry) = try loadInterpreter(path: interpreterPath)
            interpreterBase = loadedBase
            firstInstruction = interpreterEntry
        }

        let vdso = try mapVDSO()

        // The initial stack: argv, envp, auxv (System V ABI), built in its top pages through
        // the app's own addresses (this address space is the one in CR3).
        let buffer = try UserMemory.writable(stackTop - initialStackSpan, Int(initialStackSpan))
        let phdr = programHeaderAddress(elf, base: base)
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        arch_cpuid(1, 0, &a, &b, &c, &d)
        let ids = Process.current.credentials
        let auxv: [(UInt64, UInt64)] = [
            (AuxvKey.AT_PHDR.rawValue, phdr),
            (AuxvKey.AT_PHENT.rawValue, UInt64(elf.programHeaderEntrySize)),
            (AuxvKey.AT_PHNUM.rawValue, UInt64(elf.programHeaderCount)),
            (AuxvKey.AT_PAGESZ.rawValue, 4096),
            (AuxvKey.AT_BASE.rawValue, interpreterBase),
            (AuxvKey.AT_FLAGS.rawValue, 0),
            (AuxvKey.AT_ENTRY.rawValue, base + elf.entry),
            (AuxvKey.AT_UID.rawValue, UInt64(ids.realUID)), (AuxvKey.AT_EUID.rawValue, UInt64(ids.effectiveUID)),
            (AuxvKey.AT_GID.rawValue, UInt64(ids.realGID)), (AuxvKey.AT_EGID.rawValue, UInt64(ids.effectiveGID)),
            (AuxvKey.AT_SECURE.rawValue, secure ? 1 : 0),
            (AuxvKey.AT_CLKTCK.rawValue, 100),
            (AuxvKey.AT_HWCAP.rawValue, UInt64(d)),
            (AuxvKey.AT_HWCAP2.rawValue, 0),
            (AuxvKey.AT_SYSINFO_EHDR.rawValue, vdso),
        ]
        let rsp: UInt64
        do {
            rsp = try withBytes(path) { execfn throws(Errno) -> UInt64 in
                try InitialStack.build(
                    into: buffer, stackTop: stackTop, stringBlock: strings,
                    argc: argc, envc: envc, auxv: auxv,
                    random: (Random.next(), Random.next()), execfn: execfn)
            }
        } catch {
            throw .E2BIG
        }
        return LoadedProgram(entry: firstInstruction, stackPointer: rsp, loadBase: base, stackLow: stackBase,
                             executablePath: path, elfBytes: imageBacked ? bytes : nil)
    }

    /// Loads PT_INTERP's file (an ET_DYN shared object such as ld-linux-x86-64.so.2 or
    /// ld-musl-x86_64.so.1, found through the VFS, symlinks followed) below the mmap top
    /// at a page-aligned random offset. Returns its base (AT_BASE) and entry point.
    private static func loadInterpreter(path: UnsafeRawBufferPointer) throws(Errno) -> (base: UInt64, entry: UInt64) {
        let file: ExecutableFile
        do throws(Errno) { file = try SysIO.fs.executable(AtFlags.AT_FDCWD, path) } catch .ENOMEM { throw .ENOMEM } catch {
            throw .ENOENT
        }
        return try withBytes(file.copiedBytes) { copied throws(Errno) -> (base: UInt64, entry: UInt64) in
            let bytes = file.imageBytes ?? copied
            let interpreter: ELFFile
            do throws(ELFError) {
                interpreter = try ELFFile(bytes: bytes)
                try interpreter.validateForLoading()
            } catch {
                throw .ELIBBAD
            }
            guard interpreter.type == .sharedObject, interpreter.interpreter == nil else { throw .ELIBBAD }
            let (low, high) = interpreter.loadRange
            let span = high - low
            guard span > 0, let start = AddressSpace.findFree(length: span) else { throw .ENOMEM }
            let base = start - low
            for ph in interpreter.programHeaders where ph.isLoad {
                try loadSegment(ph, base: base, file: bytes, imageBacked: file.imageBytes != nil, name: Array(path))
            }
            return (base, base + interpreter.entry)
        }
    }

    /// Maps the vDSO (Kernel/vdso): page 0 headers and dynamic tables, page 1 the clock
    /// parameters it reads (read-only for the app), page 2 code. Its frames are made once
    /// and mapped as borrowed pages (never freed, shared by every address space). Returns
    /// its address for AT_SYSINFO_EHDR.
    private static func mapVDSO() throws(Errno) -> UInt64 {
        // The kernel carries page 0 then the code; page 1 (vvar) is made here.
        let blob = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(arch_vdso_start())),
                                          count: Int(arch_vdso_size()))
        let pages = 2 + (blob.count - 4096 + 4095) / 4096
        guard blob.count > 4096, let base = AddressSpace.findFree(length: UInt64(pages) * 4096) else { throw .ENOMEM }
        let frames: PhysicalAddress
        if let made = vdsoFrames {
            frames = made
        } else {
            guard let made = PhysicalMemory.allocateContiguous(pages: pages) else { throw .ENOMEM }
            directMap(made).copyMemory(from: blob.baseAddress!, byteCount: 4096)
            directMap(made + 8192).copyMemory(from: blob.baseAddress! + 4096, byteCount: blob.count - 4096)
            let vvar = UnsafeMutableRawBufferPointer(start: directMap(made + 4096), count: 32)
            vvar.writeLE(Clock.monotonicBaseTSC, at: 0)
            vvar.writeLE(Clock.scale, at: 8)
            vvar.writeLE(Clock.realtimeBaseTSC, at: 16)
            vvar.writeLE(Clock.realtimeBaseNanos, at: 24)
            vdsoFrames = made
            frames = made
        }
        for page in 0..<pages {
            let protection: MmapProtection = page == 2 ? [.PROT_READ, .PROT_EXEC] : [.PROT_READ]
            try PageTable.map(base + UInt64(page) * 4096, frames + UInt64(page) * 4096,
                              PageTable.flags(for: protection) | PageTable.borrowed)
        }
        AddressSpace.insert(Region(start: base, end: base + UInt64(pages) * 4096, protection: [.PROT_READ, .PROT_EXEC], kind: .vdso))
        return base
    }

    /// Maps one PT_LOAD. A segment of the image that is never written and has no
    /// zero-filled tail (memsz = filesz) maps the file's pages straight from the image, as
    /// Linux maps them from the page cache (the last page shows whatever follows in the
    /// file). Otherwise: fresh frames, file bytes copied in, the rest zero. A page shared
    /// with the previous segment keeps its frame (made the page's own first) and gets both
    /// permissions.
    private static func loadSegment(_ ph: ProgramHeader, base: UInt64, file: UnsafeRawBufferPointer,
                                    imageBacked: Bool, name: [UInt8]) throws(Errno) {
        var protection: MmapProtection = []
        if ph.readable { protection.insert(.PROT_READ) }
        if ph.writable { protection.insert(.PROT_WRITE) }
        if ph.executable { protection.insert(.PROT_EXEC) }
        let start = (base + ph.virtualAddress) & ~0xfff
        guard let end = AddressSpace.pageAlignUp(base + ph.virtualAddress + ph.memorySize), end <= PageTable.userEnd,
              start >= PageTable.userStart else { throw .ENOEXEC }
        let fileStart = base + ph.virtualAddress
        let fileEnd = fileStart + ph.fileSize
        let borrow = imageBacked && !ph.writable && ph.memorySize == ph.fileSize
            && UInt(bitPattern: file.baseAddress!) & 0xfff == 0
        guard PhysicalMemory.canGrantApp(pages: borrow ? 0 : Int((end - start) / 4096)) else { throw .ENOMEM }
        var page = start
        while page < end {
            var flags = PageTable.flags(for: protection)
            if borrow && PageTable.frame(page) == nil {
                let fileOffset = ph.offset &- fileStart &+ page  // page may start before fileStart
                try PageTable.map(page, directMapPhysical(file.baseAddress! + Int(fileOffset)), flags | PageTable.borrowed)
                page += 4096
                continue
            }
            try AddressSpace.privatize(page)
            let frame: PhysicalAddress
            if let existing = PageTable.frame(page) {
                frame = existing
                if let e = try? PageTable.leaf(page, create: false) {
                    let old = e.pointee
                    if old & PageTable.writable != 0 { flags |= PageTable.writable }
                    if old & PageTable.noExecute == 0 { flags &= ~PageTable.noExecute }
                }
            } else {
                guard let f = PhysicalMemory.allocatePage() else { throw .ENOMEM }
                frame = f
            }
            // Written through the direct map below: marked dirty for fork (`PageTable.dirty`).
            try PageTable.map(page, frame, flags | PageTable.dirty)
            // Copy the part of [fileStart, fileEnd) that falls in this page.
            let copyStart = max(page, fileStart)
            let copyEnd = min(page + 4096, fileEnd)
            if copyStart < copyEnd {
                let source = ph.offset + (copyStart - fileStart)
                directMap(frame + (copyStart - page)).copyMemory(
                    from: file.baseAddress! + Int(source), byteCount: Int(copyEnd - copyStart))
            }
            page += 4096
        }
        var region = Region(start: start, end: end, protection: protection, kind: .program)
        region.name = name
        region.filePage = Int((ph.offset &- (fileStart - start)) / 4096)
        AddressSpace.insert(region)
    }

    /// AT_PHDR: the program headers' address in memory (PT_PHDR, else inside a PT_LOAD).
    private static func programHeaderAddress(_ elf: ELFFile, base: UInt64) -> UInt64 {
        for ph in elf.programHeaders where ph.type == PT_PHDR { return base + ph.virtualAddress }
        for ph in elf.programHeaders where ph.isLoad {
            if elf.programHeaderOffset >= ph.offset && elf.programHeaderOffset < ph.offset + ph.fileSize {
                return base + ph.virtualAddress + (elf.programHeaderOffset - ph.offset)
            }
        }
        return 0
    }

    private static func fatalLoad(_ what: StaticString, _ detail: StaticString) -> Never {
        var m = Message("apus: ")
        m.append(what)
        m.append(detail)
        Console.kernelLine(m)
        Console.exit(.exited(127))
    }

}
