// ELF parser harness: what `apus run` / `apus build` (and the kernel's loader) do with an
// untrusted program file: ELFFile.init, validateForLoading, interpreter, dynamicSection
// (dependency discovery), programHeaderAddress and loadRange (the loader), and
// symbol(containing:) (crash reports). Checks that every view the parser hands out lies
// inside the file and that a file accepted for loading really has the properties the
// loader relies on without re-checking.
import ELF
import FuzzSupport

let pageSize: UInt64 = 4096

func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = inputBuffer(data, size)
    guard let elf = try? ELFFile(bytes: bytes) else { return 0 }

    // init: the header table is in bounds, PT_INTERP is one NUL-free path inside the file.
    let tableEnd = elf.programHeaderOffset.addingReportingOverflow(UInt64(elf.programHeaderCount) * 56)
    check(!tableEnd.overflow && tableEnd.partialValue <= UInt64(size), "program header table outside the file")
    check(elf.programHeaderEntrySize == 56, "accepted e_phentsize \(elf.programHeaderEntrySize)")
    check(elf.programHeaders.count == elf.programHeaderCount, "header collection count")
    if let path = elf.interpreter {
        check(lies(path, within: bytes), "interpreter path outside the file")
        check(!path.isEmpty && path.count < 4096 && !path.contains(0), "interpreter path malformed")
        check(!elf.isStaticPIE, "a program with PT_INTERP called a static PIE")
    }
    var hasPHDR = false
    for header in elf.programHeaders where header.type == PT_PHDR { hasPHDR = true }

    // Used before validation too (dependency discovery, crash reports): must not trap.
    if let dynamic = try? elf.dynamicSection() {
        for name in dynamic.needed + [dynamic.soname, dynamic.rpath, dynamic.runpath].compactMap({ $0 }) {
            check(lies(name, within: bytes), "dynamic string outside the file")
            check(!name.contains(0), "dynamic string with a NUL")
        }
    }
    var probe = FuzzInput(UnsafeRawBufferPointer(rebasing: bytes[max(size - 8, 0)...]))
    for address in [elf.entry, elf.entry &+ 1, probe.u64()] {
        if let symbol = elf.symbol(containing: address) {
            check(lies(symbol.name, within: bytes), "symbol name outside the file")
            check(!symbol.name.contains(0), "symbol name with a NUL")
            check(symbol.offset <= address, "symbol offset \(symbol.offset) past address \(address)")
        }
    }
    let phdrAddress = elf.programHeaderAddress
    let range = elf.loadRange
    check(range.low & (pageSize - 1) == 0 && range.high & (pageSize - 1) == 0, "load range not page aligned")

    guard (try? elf.validateForLoading()) != nil else { return 0 }

    // What the loader relies on after validateForLoading.
    var loads = 0
    var previousEnd: UInt64 = 0
    var entryFound = false
    for (index, header) in elf.programHeaders.enumerated() where header.type == PT_LOAD || header.type == PT_TLS {
        check(header.fileSize <= header.memorySize, "segment \(index): p_filesz > p_memsz")
        if header.fileSize > 0 {
            let end = header.offset.addingReportingOverflow(header.fileSize)
            check(!end.overflow && end.partialValue <= UInt64(size), "segment \(index) outside the file")
        }
        guard header.type == PT_LOAD else { continue }
        let end = header.virtualAddress.addingReportingOverflow(header.memorySize)
        check(!end.overflow && end.partialValue <= ELFFile.userAddressLimit, "segment \(index) above the user range")
        check((header.virtualAddress &- header.offset) & (pageSize - 1) == 0, "segment \(index) misaligned")
        check(loads == 0 || header.virtualAddress >= previousEnd, "segment \(index) overlaps or is unsorted")
        check(header.virtualAddress >= range.low && end.partialValue <= range.high, "segment \(index) outside loadRange")
        if header.executable && elf.entry >= header.virtualAddress && elf.entry < end.partialValue { entryFound = true }
        previousEnd = end.partialValue
        loads += 1
    }
    check(loads > 0, "no PT_LOAD accepted")
    check(entryFound, "entry 0x\(String(elf.entry, radix: 16)) outside executable segments accepted")
    check(range.low <= range.high && range.high <= ELFFile.userAddressLimit, "load range \(range)")
    if let phdrAddress, !hasPHDR {
        // Found through a PT_LOAD: the whole table is inside that segment's file bytes.
        let inside = elf.programHeaders.contains { header in
            header.isLoad && phdrAddress >= header.virtualAddress
                && phdrAddress - header.virtualAddress + UInt64(elf.programHeaderCount) * 56 <= header.fileSize
        }
        check(inside, "AT_PHDR 0x\(String(phdrAddress, radix: 16)) not inside a PT_LOAD")
    }
    return 0
}

// MARK: Seeds

/// A small but complete x86-64 program file: PT_PHDR, PT_INTERP, two PT_LOADs, PT_DYNAMIC
/// (DT_NEEDED, DT_SONAME, DT_RUNPATH, DT_STRTAB, DT_STRSZ, DT_FLAGS, DT_FLAGS_1) and PT_TLS,
/// and section headers with a symbol table. `dynamic` false turns PT_INTERP and PT_DYNAMIC
/// into PT_NOTEs (a static program); `pie` makes it ET_DYN.
func tinyProgram(dynamic: Bool, pie: Bool) -> [UInt8] {
    let base: UInt64 = pie ? 0 : 0x40_0000
    var file = [UInt8](repeating: 0, count: 0x3a8)
    // Ehdr.
    file.replaceSubrange(0..<8, with: [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0])
    file.storeLE(UInt16(pie ? 3 : 2), at: 16)
    file.storeLE(UInt16(62), at: 18)
    file.storeLE(UInt32(1), at: 20)
    file.storeLE(base + 0x1b0, at: 24)          // e_entry: the code at 0x1b0
    file.storeLE(UInt64(0x40), at: 32)          // e_phoff
    file.storeLE(UInt64(0x2e8), at: 40)         // e_shoff
    file.storeLE(UInt16(64), at: 52)
    file.storeLE(UInt16(56), at: 54)
    file.storeLE(UInt16(6), at: 56)
    file.storeLE(UInt16(64), at: 58)
    file.storeLE(UInt16(3), at: 60)
    // Program headers: type, flags, offset, vaddr, filesz, memsz, align.
    let headers: [(UInt32, UInt32, UInt64, UInt64, UInt64, UInt64, UInt64)] = [
        (PT_PHDR, PF_R, 0x40, base + 0x40, 0x150, 0x150, 8),
        (dynamic ? PT_INTERP : PT_NOTE, PF_R, 0x190, base + 0x190, 28, 28, 1),
        (PT_LOAD, PF_R | PF_X, 0, base, 0x200, 0x200, 0x1000),
        (PT_LOAD, PF_R | PF_W, 0x200, base + 0x1200, 0x1a8, 0x400, 0x1000),
        (dynamic ? PT_DYNAMIC : PT_NOTE, PF_R | PF_W, 0x200, base + 0x1200, 144, 144, 8),
        (PT_TLS, PF_R, 0x290, base + 0x1290, 0, 16, 8),
    ]
    for (i, h) in headers.enumerated() {
        let at = 0x40 + i * 56
        file.storeLE(h.0, at: at)
        file.storeLE(h.1, at: at + 4)
        file.storeLE(h.2, at: at + 8)
        file.storeLE(h.3, at: at + 16)
        file.storeLE(h.3, at: at + 24)
        file.storeLE(h.4, at: at + 32)
        file.storeLE(h.5, at: at + 40)
        file.storeLE(h.6, at: at + 48)
    }
    file.replaceSubrange(0x190..<0x1ac, with: Array("/lib64/ld-linux-x86-64.so.2\0".utf8))
    // Code: mov eax, 60; xor edi, edi; syscall.
    file.replaceSubrange(0x1b0..<0x1bb, with: [0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05, 0xeb, 0xfe])
    // Dynamic strings at 0x1c0.
    let dynstr = Array("\0libc.so.6\0libtiny.so\0$ORIGIN/lib\0".utf8)
    file.replaceSubrange(0x1c0..<(0x1c0 + dynstr.count), with: dynstr)
    let dynamicEntries: [(UInt64, UInt64)] = [
        (DT_NEEDED, 1), (DT_SONAME, 11), (DT_RUNPATH, 22), (DT_STRTAB, base + 0x1c0),
        (DT_STRSZ, UInt64(dynstr.count)), (DT_FLAGS, DF_ORIGIN), (DT_FLAGS_1, DF_1_NOW | (pie ? DF_1_PIE : 0)),
        (0x6fff_fef5, 0), (DT_NULL, 0),
    ]
    for (i, e) in dynamicEntries.enumerated() {
        file.storeLE(e.0, at: 0x200 + i * 16)
        file.storeLE(e.1, at: 0x200 + i * 16 + 8)
    }
    // Symbols at 0x290 (null, main: function at the entry, data: object), names at 0x2d8.
    file.storeLE(UInt32(1), at: 0x290 + 24)
    file[0x290 + 24 + 4] = 0x12                 // STB_GLOBAL, STT_FUNC
    file.storeLE(UInt16(1), at: 0x290 + 24 + 6)
    file.storeLE(base + 0x1b0, at: 0x290 + 24 + 8)
    file.storeLE(UInt64(11), at: 0x290 + 24 + 16)
    file.storeLE(UInt32(6), at: 0x290 + 48)
    file[0x290 + 48 + 4] = 0x11                 // STB_GLOBAL, STT_OBJECT
    file.storeLE(UInt16(2), at: 0x290 + 48 + 6)
    file.storeLE(base + 0x1400, at: 0x290 + 48 + 8)
    file.storeLE(UInt64(16), at: 0x290 + 48 + 16)
    file.replaceSubrange(0x2d8..<0x2e3, with: Array("\0main\0data\0".utf8))
    // Section headers at 0x2e8: null, .symtab (link 2), .strtab.
    file.storeLE(UInt32(2), at: 0x2e8 + 64 + 4)
    file.storeLE(UInt64(0x290), at: 0x2e8 + 64 + 24)
    file.storeLE(UInt64(72), at: 0x2e8 + 64 + 32)
    file.storeLE(UInt32(2), at: 0x2e8 + 64 + 40)
    file.storeLE(UInt64(24), at: 0x2e8 + 64 + 56)
    file.storeLE(UInt32(3), at: 0x2e8 + 128 + 4)
    file.storeLE(UInt64(0x2d8), at: 0x2e8 + 128 + 24)
    file.storeLE(UInt64(11), at: 0x2e8 + 128 + 32)
    return file
}

/// The seeds must be fully valid, or they would not lead the fuzzer past validation.
func checkedSeed(_ file: [UInt8], dynamic: Bool) -> [UInt8] {
    file.withUnsafeBytes { bytes in
        guard let elf = try? ELFFile(bytes: bytes), (try? elf.validateForLoading()) != nil,
              let symbol = elf.symbol(containing: elf.entry + 2), symbol.name.count == 4
        else { fatalError("seed program does not parse") }
        if dynamic {
            guard let d = try? elf.dynamicSection(), d.needed.count == 1, d.soname != nil, d.runpath != nil
            else { fatalError("seed program's dynamic section does not parse") }
        }
    }
    return file
}

runFuzzer(seeds: {
    [("tiny-dynamic.elf", checkedSeed(tinyProgram(dynamic: true, pie: false), dynamic: true)),
     ("tiny-dynamic-pie.elf", checkedSeed(tinyProgram(dynamic: true, pie: true), dynamic: true)),
     ("tiny-static.elf", checkedSeed(tinyProgram(dynamic: false, pie: false), dynamic: false)),
     ("tiny-static-pie.elf", checkedSeed(tinyProgram(dynamic: false, pie: true), dynamic: false))]
}, { testOneInput($0, $1) })
