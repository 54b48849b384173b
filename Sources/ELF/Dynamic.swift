// The dynamic section (PT_DYNAMIC): what a dynamically linked object asks of the loader.
//
// Elf64_Dyn, 16 bytes:                 the table ends at the first DT_NULL.
//   0  8 d_tag   (Elf64_Sxword)
//   8  8 d_val / d_ptr
//
// DT_NEEDED, DT_SONAME, DT_RPATH and DT_RUNPATH hold offsets into the string table, whose
// location DT_STRTAB gives as a virtual address (unrelocated for ET_DYN). The file has no
// section headers to rely on (they may be stripped), so the address is translated to a file
// offset through the PT_LOAD that maps it, and every string must end, NUL included, inside
// that segment's file bytes (and inside DT_STRSZ when present).

/// Dynamic section tags (d_tag), named as in <elf.h>.
public let DT_NULL: UInt64 = 0
public let DT_NEEDED: UInt64 = 1
public let DT_STRTAB: UInt64 = 5
public let DT_STRSZ: UInt64 = 10
public let DT_SONAME: UInt64 = 14
public let DT_RPATH: UInt64 = 15
public let DT_RUNPATH: UInt64 = 29
public let DT_FLAGS: UInt64 = 30
public let DT_FLAGS_1: UInt64 = 0x6fff_fffb

/// DT_FLAGS bits.
public let DF_ORIGIN: UInt64 = 0x1
/// DT_FLAGS_1 bits.
public let DF_1_NOW: UInt64 = 0x1
public let DF_1_NODEFLIB: UInt64 = 0x800
public let DF_1_PIE: UInt64 = 0x0800_0000

/// The loader-relevant entries of a dynamic section. Strings are views into the file
/// without their NUL, valid while the `ELFFile`'s bytes are.
public struct DynamicSection {
    /// Every DT_NEEDED, in the order of the table (the loader's search order).
    public var needed: [UnsafeRawBufferPointer]
    /// DT_SONAME, the name other objects' DT_NEEDED match.
    public var soname: UnsafeRawBufferPointer?
    /// DT_RPATH, a ':'-separated list. glibc ignores it when DT_RUNPATH is present; it is
    /// reported here as found.
    public var rpath: UnsafeRawBufferPointer?
    /// DT_RUNPATH, a ':'-separated list.
    public var runpath: UnsafeRawBufferPointer?
    /// DT_FLAGS, 0 when absent.
    public var flags: UInt64
    /// DT_FLAGS_1, 0 when absent.
    public var flags1: UInt64
}

extension ELFFile {
    static let dynamicEntrySize = 16

    /// Parses PT_DYNAMIC. Nil when the file has none (a static program) or when its
    /// PT_DYNAMIC has no file bytes (a debug-info-only file, which glibc also ignores).
    /// A repeated tag keeps its last value (as glibc's loader does), except DT_NEEDED,
    /// which accumulates.
    ///
    /// Throws `.badDynamicSection` when PT_DYNAMIC is repeated, reaches past the file or has
    /// no DT_NULL; `.badDynamicStrings` when a string is referenced but DT_STRTAB is missing,
    /// not inside a PT_LOAD's file bytes, or a string runs past the table.
    public func dynamicSection() throws(ELFError) -> DynamicSection? {
        var segment: ProgramHeader? = nil
        for header in programHeaders where header.type == PT_DYNAMIC {
            guard segment == nil else { throw .badDynamicSection }
            segment = header
        }
        guard let segment, segment.fileSize != 0 else { return nil }
        guard let table = view.range(offset: segment.offset, length: segment.fileSize) else {
            throw .badDynamicSection
        }

        // First pass: collect the values; strings are resolved once DT_STRTAB is known,
        // since it may come after the entries that refer to it.
        var neededOffsets: [UInt64] = []
        var soname: UInt64? = nil, rpath: UInt64? = nil, runpath: UInt64? = nil
        var stringTable: UInt64? = nil, stringTableSize: UInt64? = nil
        var flags: UInt64 = 0, flags1: UInt64 = 0
        var terminated = false
        var position = table.lowerBound
        while position + ELFFile.dynamicEntrySize <= table.upperBound {
            let tag = view.u64(at: position)
            let value = view.u64(at: position + 8)
            position += ELFFile.dynamicEntrySize
            switch tag {
            case DT_NULL: terminated = true
            case DT_NEEDED: neededOffsets.append(value)
            case DT_SONAME: soname = value
            case DT_RPATH: rpath = value
            case DT_RUNPATH: runpath = value
            case DT_STRTAB: stringTable = value
            case DT_STRSZ: stringTableSize = value
            case DT_FLAGS: flags = value
            case DT_FLAGS_1: flags1 = value
            default: break
            }
            if terminated { break }
        }
        guard terminated else { throw .badDynamicSection }

        var result = DynamicSection(needed: [], soname: nil, rpath: nil, runpath: nil,
                                    flags: flags, flags1: flags1)
        guard !neededOffsets.isEmpty || soname != nil || rpath != nil || runpath != nil else {
            return result
        }
        guard let stringTable, var strings = fileRange(virtualAddress: stringTable) else {
            throw .badDynamicStrings
        }
        if let stringTableSize {
            guard stringTableSize <= UInt64(strings.count) else { throw .badDynamicStrings }
            strings = strings.lowerBound..<(strings.lowerBound + Int(stringTableSize))
        }

        result.needed.reserveCapacity(neededOffsets.count)
        for offset in neededOffsets {
            result.needed.append(try dynamicString(at: offset, in: strings))
        }
        if let soname { result.soname = try dynamicString(at: soname, in: strings) }
        if let rpath { result.rpath = try dynamicString(at: rpath, in: strings) }
        if let runpath { result.runpath = try dynamicString(at: runpath, in: strings) }
        return result
    }

    /// The file bytes behind `address`: from its offset to the end of the file bytes of the
    /// PT_LOAD whose [p_vaddr, p_vaddr + p_filesz) contains it. Nil when no PT_LOAD maps it
    /// from the file (it is in a zero-filled tail or in no segment) or the segment's file
    /// bytes are not inside the file.
    func fileRange(virtualAddress address: UInt64) -> Range<Int>? {
        for header in programHeaders where header.isLoad {
            guard address >= header.virtualAddress else { continue }
            let delta = address - header.virtualAddress
            guard delta < header.fileSize,
                  let segment = view.range(offset: header.offset, length: header.fileSize)
            else { continue }
            // delta < p_filesz and the segment is in bounds, so this cannot overflow.
            return (segment.lowerBound + Int(delta))..<segment.upperBound
        }
        return nil
    }

    /// The NUL-terminated string at `offset` in the string table `table`, without its NUL.
    private func dynamicString(at offset: UInt64, in table: Range<Int>) throws(ELFError) -> UnsafeRawBufferPointer {
        guard offset < UInt64(table.count) else { throw .badDynamicStrings }
        let rest = view.slice((table.lowerBound + Int(offset))..<table.upperBound)
        guard let nul = rest.firstIndex(of: 0) else { throw .badDynamicStrings }
        return UnsafeRawBufferPointer(rebasing: rest[0..<nul])
    }
}
