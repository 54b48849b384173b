import ELF
import GuestABI
import ImageFormat
import KernelArch
import LinuxABI
import VFS

/// The running program: where it was loaded and how to enter it.
struct Process {
    var entry: UInt64
    var stackPointer: UInt64
    var loadBase: UInt64
    var executablePath: UnsafeRawBufferPointer
    var elfBytes: UnsafeRawBufferPointer

    /// Jumps to user mode at the program's entry with Linux's initial register state
    /// (everything zero but rsp; rflags IF set).
    func enter() -> Never {
        let main = Thread(tid: 1)
        // comm: the executable's file name, at most 15 bytes (TASK_COMM_LEN - 1).
        let name = executablePath.split(separator: UInt8(ascii: "/")).last.map { Array($0.prefix(15)) } ?? []
        if !name.isEmpty { main.name = name }
        Scheduler.start(main: main)
        let frame = SyscallFrame.atTopOfKernelStack()
        frame.clear()
        frame[.rip] = entry
        frame[.cs] = Platform.userCode
        frame[.rflags] = 0x202
        frame[.rsp] = stackPointer
        frame[.ss] = Platform.userData
        enter_user(frame.address)
    }
}

/// Loads the image's entrypoint ELF into the app's half of the address space (DESIGN.md
/// "Kernel memory model"): ET_EXEC at its addresses, ET_DYN static-pie at a random base, brk
/// after the highest segment, an 8 MiB stack at a random top, and Linux's initial stack.
enum Loader {
    static let stackSize: UInt64 = 8 << 20
    static let stackTopLimit: UInt64 = PageTable.userEnd - 0x1000
    static let dynamicBase: UInt64 = 0x5555_5555_4000

    nonisolated(unsafe) static var process: Process? = nil

    static func loadProgram(boot: BootInfo) -> Process {
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
        let elfBytes = image.contents(of: entry)
        let elf: ELFFile
        do {
            elf = try ELFFile(bytes: elfBytes)
            try elf.validateForLoading()
        } catch {
            fatalLoad("the program is not a loadable x86-64 ELF executable", "")
        }
        let base: UInt64 = elf.type == .sharedObject ? dynamicBase + (Random.next() % (1 << 20)) * 4096 : 0
        var highest: UInt64 = 0
        for ph in elf.programHeaders where ph.isLoad {
            loadSegment(ph, base: base, file: elfBytes, name: entry.path)
            highest = max(highest, base + ph.virtualAddress + ph.memorySize)
        }

        // brk: a random gap after the program, like Linux's brk randomization.
        let brk = AddressSpace.pageAlignUp(highest)! + (Random.next() % 4096) * 4096
        AddressSpace.brkStart = brk
        AddressSpace.brkCurrent = brk

        // Stack: the top randomized over 256 MiB; its frames physically contiguous so the
        // initial stack can be written through the direct map in one piece.
        let stackTop = stackTopLimit - (Random.next() % 65536) * 4096
        let size = min(stackSize, (boot.memorySize / 8) & ~0xfff)
        let stackBase = stackTop - size
        guard let frames = PhysicalMemory.allocateContiguous(pages: Int(size / 4096)) else {
            fatalLoad("not enough memory for the stack: ", "give the VM more memory with --memory")
        }
        let stackFlags = PageTable.flags(for: [.PROT_READ, .PROT_WRITE])
        var offset: UInt64 = 0
        while offset < size {
            do { try PageTable.map(stackBase + offset, frames + offset, stackFlags) } catch {
                fatalLoad("not enough memory for page tables: ", "give the VM more memory with --memory")
            }
            offset += 4096
        }
        AddressSpace.insert(Region(start: stackBase, end: stackTop, protection: [.PROT_READ, .PROT_WRITE], kind: .stack))
        if Platform.bootProtocol != .pvh {
            Console.guestState.writeLE(stackBase, at: GuestState.appStackLowOffset - GuestState.offset)
        }
        // mmap grows down from below a guard gap under the stack.
        AddressSpace.mmapTop = stackBase - (1 << 30) - (Random.next() % 65536) * 4096

        // A dynamic program: its interpreter (ld.so) at a random base in the mmap area; it
        // is entered first and finds the program through AT_PHDR/AT_ENTRY.
        var interpreterBase: UInt64 = 0
        var firstInstruction = base + elf.entry
        if let interpreterPath = elf.interpreter {
            let (loadedBase, interpreterEntry) = loadInterpreter(path: interpreterPath)
            interpreterBase = loadedBase
            firstInstruction = interpreterEntry
        }

        let vdso = mapVDSO()

        // The initial stack: argv, envp, auxv (System V ABI), built in the top 64 KiB.
        let topSpan = min(size, 128 * 1024)
        let buffer = UnsafeMutableRawBufferPointer(start: directMap(frames + (size - topSpan)), count: Int(topSpan))
        let strings = UnsafeRawBufferPointer(start: directMap(boot.argumentsAddress), count: Int(boot.argumentsSize))
        let phdr = programHeaderAddress(elf, base: base)
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        arch_cpuid(1, 0, &a, &b, &c, &d)
        let auxv: [(UInt64, UInt64)] = [
            (AuxvKey.AT_PHDR.rawValue, phdr),
            (AuxvKey.AT_PHENT.rawValue, UInt64(elf.programHeaderEntrySize)),
            (AuxvKey.AT_PHNUM.rawValue, UInt64(elf.programHeaderCount)),
            (AuxvKey.AT_PAGESZ.rawValue, 4096),
            (AuxvKey.AT_BASE.rawValue, interpreterBase),
            (AuxvKey.AT_FLAGS.rawValue, 0),
            (AuxvKey.AT_ENTRY.rawValue, base + elf.entry),
            (AuxvKey.AT_UID.rawValue, 0), (AuxvKey.AT_EUID.rawValue, 0),
            (AuxvKey.AT_GID.rawValue, 0), (AuxvKey.AT_EGID.rawValue, 0),
            (AuxvKey.AT_SECURE.rawValue, 0),
            (AuxvKey.AT_CLKTCK.rawValue, 100),
            (AuxvKey.AT_HWCAP.rawValue, UInt64(d)),
            (AuxvKey.AT_HWCAP2.rawValue, 0),
            (AuxvKey.AT_SYSINFO_EHDR.rawValue, vdso),
        ]
        let rsp: UInt64
        do {
            rsp = try InitialStack.build(
                into: buffer, stackTop: stackTop, stringBlock: strings,
                argc: Int(boot.argc), envc: Int(boot.envc), auxv: auxv,
                random: (Random.next(), Random.next()), execfn: entry.path)
        } catch {
            fatalLoad("arguments and environment do not fit the stack: ", error.name)
        }
        let p = Process(entry: firstInstruction, stackPointer: rsp, loadBase: base,
                        executablePath: entry.path, elfBytes: elfBytes)
        process = p
        return p
    }

    /// Loads PT_INTERP's file (an ET_DYN shared object such as ld-linux-x86-64.so.2 or
    /// ld-musl-x86_64.so.1, found through the VFS, symlinks followed) below the mmap top
    /// at a page-aligned random offset. Returns its base (AT_BASE) and entry point.
    private static func loadInterpreter(path: UnsafeRawBufferPointer) -> (base: UInt64, entry: UInt64) {
        let bytes: UnsafeRawBufferPointer
        do {
            guard let found = try SysIO.fs.imageContents(path: path) else {
                fatalLoad("the program's interpreter is not a file of the image", "")
            }
            bytes = found
        } catch {
            fatalLoad("the program's interpreter (PT_INTERP) is missing from the image: ", "build the image with apus build")
        }
        let interpreter: ELFFile
        do {
            interpreter = try ELFFile(bytes: bytes)
            try interpreter.validateForLoading()
        } catch {
            fatalLoad("the program's interpreter is not a loadable x86-64 ELF file", "")
        }
        guard interpreter.type == .sharedObject, interpreter.interpreter == nil else {
            fatalLoad("the program's interpreter is not a shared object", "")
        }
        let (low, high) = interpreter.loadRange
        let span = high - low
        guard span > 0, let start = AddressSpace.findFree(length: span) else {
            fatalLoad("no room for the program's interpreter: ", "give the VM more memory with --memory")
        }
        let base = start - low
        for ph in interpreter.programHeaders where ph.isLoad { loadSegment(ph, base: base, file: bytes, name: path) }
        return (base, base + interpreter.entry)
    }

    /// Maps the vDSO (Kernel/vdso): page 0 headers and dynamic tables, page 1 the clock
    /// parameters it reads (written here, read-only for the app), page 2 code. Returns its
    /// address for AT_SYSINFO_EHDR.
    private static func mapVDSO() -> UInt64 {
        // The kernel carries page 0 then the code; page 1 (vvar) is made here.
        let blob = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(arch_vdso_start())),
                                          count: Int(arch_vdso_size()))
        let pages = 2 + (blob.count - 4096 + 4095) / 4096
        guard blob.count > 4096, let base = AddressSpace.findFree(length: UInt64(pages) * 4096),
              let frames = PhysicalMemory.allocateContiguous(pages: pages) else {
            fatalLoad("cannot map the vDSO: ", "give the VM more memory with --memory")
        }
        directMap(frames).copyMemory(from: blob.baseAddress!, byteCount: 4096)
        directMap(frames + 8192).copyMemory(from: blob.baseAddress! + 4096, byteCount: blob.count - 4096)
        let vvar = UnsafeMutableRawBufferPointer(start: directMap(frames + 4096), count: 32)
        vvar.writeLE(Clock.monotonicBaseTSC, at: 0)
        vvar.writeLE(Clock.scale, at: 8)
        vvar.writeLE(Clock.realtimeBaseTSC, at: 16)
        vvar.writeLE(Clock.realtimeBaseNanos, at: 24)
        for page in 0..<pages {
            let protection: MmapProtection = page == 2 ? [.PROT_READ, .PROT_EXEC] : [.PROT_READ]
            do {
                try PageTable.map(base + UInt64(page) * 4096, frames + UInt64(page) * 4096, PageTable.flags(for: protection))
            } catch {
                fatalLoad("cannot map the vDSO: ", "give the VM more memory with --memory")
            }
        }
        AddressSpace.insert(Region(start: base, end: base + UInt64(pages) * 4096, protection: [.PROT_READ, .PROT_EXEC], kind: .vdso))
        return base
    }

    /// Maps one PT_LOAD. A segment that is never written and has no zero-filled tail
    /// (memsz = filesz) maps the file's pages straight from the image, as Linux maps them
    /// from the page cache (the last page shows whatever follows in the file). Otherwise:
    /// fresh frames, file bytes copied in, the rest zero. A page shared with the previous
    /// segment keeps its frame (made the page's own first) and gets both permissions.
    private static func loadSegment(_ ph: ProgramHeader, base: UInt64, file: UnsafeRawBufferPointer,
                                    name: UnsafeRawBufferPointer) {
        var protection: MmapProtection = []
        if ph.readable { protection.insert(.PROT_READ) }
        if ph.writable { protection.insert(.PROT_WRITE) }
        if ph.executable { protection.insert(.PROT_EXEC) }
        let start = (base + ph.virtualAddress) & ~0xfff
        let end = AddressSpace.pageAlignUp(base + ph.virtualAddress + ph.memorySize)!
        let fileStart = base + ph.virtualAddress
        let fileEnd = fileStart + ph.fileSize
        let borrow = !ph.writable && ph.memorySize == ph.fileSize
            && UInt(bitPattern: file.baseAddress!) & 0xfff == 0
        var page = start
        while page < end {
            var flags = PageTable.flags(for: protection)
            if borrow && PageTable.frame(page) == nil {
                let fileOffset = ph.offset &- fileStart &+ page  // page may start before fileStart
                do {
                    try PageTable.map(page, directMapPhysical(file.baseAddress! + Int(fileOffset)), flags | PageTable.borrowed)
                } catch {
                    fatalLoad("not enough memory for page tables: ", "give the VM more memory with --memory")
                }
                page += 4096
                continue
            }
            do { try AddressSpace.privatize(page) } catch {
                fatalLoad("not enough memory for the program: ", "give the VM more memory with --memory")
            }
            let frame: PhysicalAddress
            if let existing = PageTable.frame(page) {
                frame = existing
                if let e = try? PageTable.leaf(page, create: false) {
                    let old = e.pointee
                    if old & PageTable.writable != 0 { flags |= PageTable.writable }
                    if old & PageTable.noExecute == 0 { flags &= ~PageTable.noExecute }
                }
            } else {
                guard let f = PhysicalMemory.allocatePage() else {
                    fatalLoad("not enough memory for the program: ", "give the VM more memory with --memory")
                }
                frame = f
            }
            do { try PageTable.map(page, frame, flags) } catch {
                fatalLoad("not enough memory for page tables: ", "give the VM more memory with --memory")
            }
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
        region.name = Array(name)
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
