// ELF64 program header (Elf64_Phdr), 56 bytes, little-endian:
//
//   offset size field
//   0      4    p_type
//   4      4    p_flags    PF_X = 1, PF_W = 2, PF_R = 4
//   8      8    p_offset   file offset of the segment's bytes
//   16     8    p_vaddr    virtual address (ET_DYN: relative to the load base)
//   24     8    p_paddr    unused on Linux
//   32     8    p_filesz   bytes present in the file
//   40     8    p_memsz    bytes in memory; the tail past p_filesz is zero-filled
//   48     8    p_align    power of two (or 0/1); p_vaddr ≡ p_offset (mod p_align)

/// Segment types (p_type), named as in <elf.h>.
public let PT_NULL: UInt32 = 0
public let PT_LOAD: UInt32 = 1
public let PT_DYNAMIC: UInt32 = 2
public let PT_INTERP: UInt32 = 3
public let PT_NOTE: UInt32 = 4
public let PT_PHDR: UInt32 = 6
public let PT_TLS: UInt32 = 7
public let PT_GNU_EH_FRAME: UInt32 = 0x6474_e550
public let PT_GNU_STACK: UInt32 = 0x6474_e551
public let PT_GNU_RELRO: UInt32 = 0x6474_e552
public let PT_GNU_PROPERTY: UInt32 = 0x6474_e553

/// Segment permission bits (p_flags).
public let PF_X: UInt32 = 1
public let PF_W: UInt32 = 2
public let PF_R: UInt32 = 4

/// One decoded program header. Values are as found in the file: a `ProgramHeader` from an
/// `ELFFile` is in bounds of the header table, but its fields are only checked against the
/// file and each other by `ELFFile.validateForLoading()`.
public struct ProgramHeader: Equatable {
    /// Size of one Elf64_Phdr record.
    public static let size = 56

    public var type: UInt32
    public var flags: UInt32
    public var offset: UInt64
    public var virtualAddress: UInt64
    public var physicalAddress: UInt64
    public var fileSize: UInt64
    public var memorySize: UInt64
    public var alignment: UInt64

    public init(type: UInt32, flags: UInt32, offset: UInt64, virtualAddress: UInt64,
                physicalAddress: UInt64, fileSize: UInt64, memorySize: UInt64, alignment: UInt64) {
        self.type = type
        self.flags = flags
        self.offset = offset
        self.virtualAddress = virtualAddress
        self.physicalAddress = physicalAddress
        self.fileSize = fileSize
        self.memorySize = memorySize
        self.alignment = alignment
    }

    /// Decodes the record at `offset`, which the caller has proven to hold 56 bytes.
    init(_ view: ByteView, at offset: Int) {
        self.init(type: view.u32(at: offset),
                  flags: view.u32(at: offset + 4),
                  offset: view.u64(at: offset + 8),
                  virtualAddress: view.u64(at: offset + 16),
                  physicalAddress: view.u64(at: offset + 24),
                  fileSize: view.u64(at: offset + 32),
                  memorySize: view.u64(at: offset + 40),
                  alignment: view.u64(at: offset + 48))
    }

    public var isLoad: Bool { type == PT_LOAD }
    public var readable: Bool { flags & PF_R != 0 }
    public var writable: Bool { flags & PF_W != 0 }
    public var executable: Bool { flags & PF_X != 0 }
}

/// The program header table of an `ELFFile` as a collection; decodes on access, allocates
/// nothing.
public struct ProgramHeaders: RandomAccessCollection {
    let file: ELFFile

    public var startIndex: Int { 0 }
    public var endIndex: Int { file.programHeaderCount }

    public subscript(position: Int) -> ProgramHeader {
        file.programHeader(at: position)
    }
}
