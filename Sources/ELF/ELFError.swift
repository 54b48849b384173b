/// Why a byte buffer is not an x86-64 Linux program Apus can load. Every malformed input
/// maps to one of these values; none of them is produced by a trap.
public enum ELFError: Error, Equatable {
    /// The buffer ends before a structure the header promises (e.g. shorter than 64 bytes).
    case truncated
    /// The first four bytes are not 0x7f 'E' 'L' 'F'.
    case notELF
    /// EI_CLASS is not ELFCLASS64 (2); the payload is the class byte found.
    case not64Bit(UInt8)
    /// EI_DATA is not ELFDATA2LSB (1); the payload is the data byte found.
    case notLittleEndian(UInt8)
    /// EI_VERSION or e_version is not EV_CURRENT (1).
    case badVersion(UInt32)
    /// e_machine is not EM_X86_64 (62).
    case wrongMachine(UInt16)
    /// e_type is neither ET_EXEC (2) nor ET_DYN (3): a relocatable object, core dump, ….
    case notExecutableType(UInt16)
    /// e_phentsize is not 56, e_phnum is PN_XNUM, or the table reaches past the end.
    case badProgramHeaderTable
    /// A PT_LOAD or PT_TLS segment's file bytes reach past the end of the file.
    case segmentOutsideFile(index: Int)
    /// A segment's p_filesz is larger than its p_memsz.
    case fileSizeExceedsMemorySize(index: Int)
    /// p_align is not a power of two, or p_vaddr and p_offset differ modulo the page size.
    case misalignedSegment(index: Int)
    /// p_vaddr + p_memsz overflows or reaches past the lower canonical half (2^47).
    case segmentAddressOutOfRange(index: Int)
    /// A PT_LOAD starts below the previous one (they must be sorted by p_vaddr).
    case unsortedSegments(index: Int)
    /// A PT_LOAD starts before the previous one ends.
    case overlappingSegments(index: Int)
    /// There is no PT_LOAD segment.
    case noLoadableSegments
    /// e_entry is not inside an executable PT_LOAD.
    case entryOutsideSegments(entry: UInt64)
    /// PT_INTERP is repeated, outside the file, empty, too long, or not one NUL-terminated path.
    case badInterpreter
    /// PT_DYNAMIC is repeated, reaches past the end of the file, or has no DT_NULL.
    case badDynamicSection
    /// A dynamic string (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH) is referenced but
    /// DT_STRTAB is missing or not in a PT_LOAD's file bytes, or the string runs past the
    /// table (DT_STRSZ or the segment's end).
    case badDynamicStrings

    /// One human line describing the problem.
    public var message: String {
        switch self {
        case .truncated:
            return "ELF file is truncated"
        case .notELF:
            return "not an ELF file (bad magic)"
        case .not64Bit(let c):
            return c == 1 ? "32-bit ELF (ELFCLASS32), expected 64-bit" : "ELF class \(c), expected 64-bit (2)"
        case .notLittleEndian(let d):
            return d == 2 ? "big-endian ELF, expected little-endian" : "ELF data encoding \(d), expected little-endian (1)"
        case .badVersion(let v):
            return "ELF version \(v), expected 1"
        case .wrongMachine(let m):
            return "ELF for machine \(m)\(ELFError.machineName(m)), expected x86-64 (62)"
        case .notExecutableType(let t):
            return "ELF type \(t)\(ELFError.typeName(t)) is not an executable (expected EXEC or DYN)"
        case .badProgramHeaderTable:
            return "ELF program header table is malformed or outside the file"
        case .segmentOutsideFile(let i):
            return "ELF segment \(i) reaches past the end of the file"
        case .fileSizeExceedsMemorySize(let i):
            return "ELF segment \(i) has a file size larger than its memory size"
        case .misalignedSegment(let i):
            return "ELF segment \(i) is misaligned (address and offset must agree modulo 4096)"
        case .segmentAddressOutOfRange(let i):
            return "ELF segment \(i) lies outside the user address range"
        case .unsortedSegments(let i):
            return "ELF loadable segment \(i) is not sorted by address"
        case .overlappingSegments(let i):
            return "ELF loadable segment \(i) overlaps the previous one"
        case .noLoadableSegments:
            return "ELF has no loadable segments"
        case .entryOutsideSegments(let e):
            return "ELF entry point 0x\(String(e, radix: 16)) is not inside an executable segment"
        case .badInterpreter:
            return "ELF interpreter (PT_INTERP) is malformed"
        case .badDynamicSection:
            return "ELF dynamic section (PT_DYNAMIC) is malformed or outside the file"
        case .badDynamicStrings:
            return "ELF dynamic string table (DT_STRTAB) is malformed or a name lies outside it"
        }
    }

    private static func machineName(_ m: UInt16) -> String {
        switch m {
        case 2: return " (SPARC)"
        case 3: return " (i386)"
        case 8: return " (MIPS)"
        case 20: return " (PowerPC)"
        case 21: return " (PowerPC64)"
        case 22: return " (S390)"
        case 40: return " (ARM)"
        case 43: return " (SPARC V9)"
        case 183: return " (AArch64)"
        case 243: return " (RISC-V)"
        case 258: return " (LoongArch)"
        default: return ""
        }
    }

    private static func typeName(_ t: UInt16) -> String {
        switch t {
        case 0: return " (NONE)"
        case 1: return " (REL, an object file)"
        case 4: return " (CORE, a core dump)"
        default: return ""
        }
    }
}
