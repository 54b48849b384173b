// ELF64 file header (Elf64_Ehdr), 64 bytes, little-endian:
//
//   offset size field
//   0      4    EI_MAG      0x7f 'E' 'L' 'F'
//   4      1    EI_CLASS    ELFCLASS64 = 2
//   5      1    EI_DATA     ELFDATA2LSB = 1
//   6      1    EI_VERSION  EV_CURRENT = 1
//   7      9    EI_OSABI, EI_ABIVERSION, padding (ignored: Linux accepts SYSV and GNU)
//   16     2    e_type      ET_EXEC = 2, ET_DYN = 3
//   18     2    e_machine   EM_X86_64 = 62
//   20     4    e_version   EV_CURRENT = 1
//   24     8    e_entry
//   32     8    e_phoff     program header table offset
//   40     8    e_shoff     section header table offset (only for symbolization)
//   48     4    e_flags
//   52     2    e_ehsize
//   54     2    e_phentsize 56
//   56     2    e_phnum     (0xffff = PN_XNUM, not supported)
//   58     2    e_shentsize 64
//   60     2    e_shnum
//   62     2    e_shstrndx

public let ET_EXEC: UInt16 = 2
public let ET_DYN: UInt16 = 3
public let EM_X86_64: UInt16 = 62

/// What kind of program the file is.
public enum ELFType: Equatable {
    /// ET_EXEC: linked at fixed addresses.
    case executable
    /// ET_DYN: position independent (a PIE, a static PIE, or the dynamic linker itself);
    /// every address in the file is relative to a load base the loader chooses.
    case sharedObject
}

/// A validated view of an ELF64 x86-64 executable.
///
/// `init` checks the identification, the header and that the program header table and any
/// PT_INTERP lie inside the buffer; `validateForLoading()` checks the segments. The view
/// holds the caller's pointer: the caller keeps the memory alive and unchanged while the
/// view is in use.
public struct ELFFile {
    /// Page size the loader maps with; segment addresses and offsets must agree modulo it.
    public static let pageSize: UInt64 = 4096
    /// First address above the lower canonical half: no segment may reach past it.
    public static let userAddressLimit: UInt64 = 1 << 47
    static let headerSize = 64

    let view: ByteView

    public let type: ELFType
    public let entry: UInt64
    public let programHeaderOffset: UInt64
    public let programHeaderEntrySize: UInt16
    public let programHeaderCount: Int
    /// Byte range of the PT_INTERP path without its NUL; nil if there is no PT_INTERP.
    let interpreterRange: Range<Int>?

    /// The bytes this view reads.
    public var bytes: UnsafeRawBufferPointer { view.bytes }

    public init(bytes: UnsafeRawBufferPointer) throws(ELFError) {
        let view = ByteView(bytes: bytes)
        self.view = view

        // Identification, checked field by field so that a short file of another kind
        // (a 52-byte ELF32 header, say) is reported for what it is, not as "truncated".
        guard view.count >= 4 else { throw .truncated }
        guard view.u8(0) == 0x7f, view.u8(1) == 0x45, view.u8(2) == 0x4c, view.u8(3) == 0x46 else {
            throw .notELF
        }
        guard let elfClass = view.u8(4), let data = view.u8(5), let identVersion = view.u8(6) else {
            throw .truncated
        }
        guard elfClass == 2 else { throw .not64Bit(elfClass) }
        guard data == 1 else { throw .notLittleEndian(data) }
        guard identVersion == 1 else { throw .badVersion(UInt32(identVersion)) }
        guard view.count >= ELFFile.headerSize else { throw .truncated }

        let machine = view.u16(at: 18)
        guard machine == EM_X86_64 else { throw .wrongMachine(machine) }
        let version = view.u32(at: 20)
        guard version == 1 else { throw .badVersion(version) }
        switch view.u16(at: 16) {
        case ET_EXEC: type = .executable
        case ET_DYN: type = .sharedObject
        case let other: throw .notExecutableType(other)
        }
        entry = view.u64(at: 24)

        // Program header table: fixed record size, in bounds. An empty table is accepted
        // here and rejected by validateForLoading (no PT_LOAD).
        programHeaderOffset = view.u64(at: 32)
        programHeaderEntrySize = view.u16(at: 54)
        let phnum = view.u16(at: 56)
        guard programHeaderEntrySize == UInt16(ProgramHeader.size), phnum != 0xffff,
              view.range(offset: programHeaderOffset, count: UInt64(phnum),
                         size: UInt64(ProgramHeader.size)) != nil
        else { throw .badProgramHeaderTable }
        programHeaderCount = Int(phnum)

        // PT_INTERP: at most one; a path of 1...4095 bytes, followed by its only NUL.
        var interpreter: Range<Int>? = nil
        let tableStart = Int(programHeaderOffset)
        for index in 0..<programHeaderCount {
            let header = ProgramHeader(view, at: tableStart + index * ProgramHeader.size)
            guard header.type == PT_INTERP else { continue }
            guard interpreter == nil, header.fileSize >= 2, header.fileSize <= 4096,
                  let range = view.range(offset: header.offset, length: header.fileSize)
            else { throw .badInterpreter }
            let path = range.lowerBound..<(range.upperBound - 1)
            guard view.u8(range.upperBound - 1) == 0,
                  !view.slice(path).contains(0)
            else { throw .badInterpreter }
            interpreter = path
        }
        interpreterRange = interpreter
    }

    /// The program header at `index`; `index < programHeaderCount` (the table was checked
    /// to be in bounds by `init`).
    public func programHeader(at index: Int) -> ProgramHeader {
        precondition(index >= 0 && index < programHeaderCount, "program header index out of range")
        return ProgramHeader(view, at: Int(programHeaderOffset) + index * ProgramHeader.size)
    }

    public var programHeaders: ProgramHeaders { ProgramHeaders(file: self) }

    /// The PT_INTERP path (e.g. "/lib64/ld-linux-x86-64.so.2") without its trailing NUL,
    /// or nil for a program that needs no dynamic linker.
    public var interpreter: UnsafeRawBufferPointer? {
        interpreterRange.map { view.slice($0) }
    }

    /// Where the program header table appears in the loaded image, for the auxiliary
    /// vector's AT_PHDR: PT_PHDR's p_vaddr if present, else the address of e_phoff inside
    /// the PT_LOAD whose file bytes contain the table. Nil if neither applies. For ET_DYN
    /// it is relative to the load base.
    public var programHeaderAddress: UInt64? {
        var fromLoad: UInt64? = nil
        let tableSize = UInt64(programHeaderCount) * UInt64(ProgramHeader.size)
        for header in programHeaders {
            if header.type == PT_PHDR { return header.virtualAddress }
            guard fromLoad == nil, header.isLoad, programHeaderOffset >= header.offset else { continue }
            let delta = programHeaderOffset - header.offset
            let (end, overflow) = delta.addingReportingOverflow(tableSize)
            guard !overflow, end <= header.fileSize else { continue }
            let (address, addressOverflow) = header.virtualAddress.addingReportingOverflow(delta)
            if !addressOverflow { fromLoad = address }
        }
        return fromLoad
    }

    /// A position-independent program that relocates itself (ET_DYN without PT_INTERP).
    public var isStaticPIE: Bool { type == .sharedObject && interpreterRange == nil }

    /// The page-aligned span covering every PT_LOAD: the lowest p_vaddr rounded down and the
    /// highest p_vaddr + p_memsz rounded up to 4096. (0, 0) if there is no PT_LOAD. Values
    /// saturate rather than wrap; after `validateForLoading()` they are exact.
    public var loadRange: (low: UInt64, high: UInt64) {
        let mask = ELFFile.pageSize - 1
        var low = UInt64.max
        var high: UInt64 = 0
        for header in programHeaders where header.isLoad {
            low = min(low, header.virtualAddress & ~mask)
            let (end, overflow) = header.virtualAddress.addingReportingOverflow(header.memorySize)
            let (roundedEnd, roundOverflow) = end.addingReportingOverflow(mask)
            high = max(high, overflow || roundOverflow ? ~mask : roundedEnd & ~mask)
        }
        return low == UInt64.max ? (0, 0) : (low, high)
    }
}
