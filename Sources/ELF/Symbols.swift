// Address → symbol lookup for crash reports and tracing, from the section headers.
//
// Section headers are not needed to run a program and are often stripped or damaged, so
// every step here is checked and any inconsistency yields nil, never an error or a trap.
//
// Elf64_Shdr, 64 bytes:             Elf64_Sym, 24 bytes:
//   0  4 sh_name                      0  4 st_name   offset into the linked string table
//   4  4 sh_type                      4  1 st_info   type in the low nibble
//   8  8 sh_flags                     5  1 st_other
//   16 8 sh_addr                      6  2 st_shndx  0 = SHN_UNDEF
//   24 8 sh_offset                    8  8 st_value  address (ET_DYN: relative to the base)
//   32 8 sh_size                      16 8 st_size
//   40 4 sh_link   (symbol table → its string table)
//   44 4 sh_info
//   48 8 sh_addralign
//   56 8 sh_entsize

let SHT_SYMTAB: UInt32 = 2
let SHT_STRTAB: UInt32 = 3
let SHT_DYNSYM: UInt32 = 11
let STT_NOTYPE: UInt8 = 0
let STT_OBJECT: UInt8 = 1
let STT_FUNC: UInt8 = 2

extension ELFFile {
    static let sectionHeaderSize = 64
    static let symbolSize = 24

    /// The symbol whose [st_value, st_value + st_size) contains `address`, and the offset
    /// of `address` from its start. Searches SHT_SYMTAB, then SHT_DYNSYM; considers
    /// defined STT_FUNC, STT_OBJECT and STT_NOTYPE symbols with a non-zero size, preferring
    /// a function. For ET_DYN, `address` is relative to the load base. The name is a view
    /// into the file without its NUL. Nil when stripped or when the tables are malformed.
    public func symbol(containing address: UInt64) -> (name: UnsafeRawBufferPointer, offset: UInt64)? {
        search(tableType: SHT_SYMTAB, address: address)
            ?? search(tableType: SHT_DYNSYM, address: address)
    }

    private struct Section {
        var type: UInt32
        var range: Range<Int>
        var link: UInt32
        var entrySize: UInt64
    }

    /// Section `index`, if the section header table and the section's bytes are in bounds.
    /// SHT_NOBITS and other sections without file bytes come back with an empty range or nil.
    /// Out of line: `search` reads both the symbol table and its string table through it.
    @inline(never)
    private func section(_ index: Int) -> Section? {
        guard let table = sectionHeaderTable, index >= 0, index < table.count else { return nil }
        let base = table.offset + index * ELFFile.sectionHeaderSize
        guard let type = view.u32(base + 4), let offset = view.u64(base + 24),
              let size = view.u64(base + 32), let link = view.u32(base + 40),
              let entrySize = view.u64(base + 56),
              let range = view.range(offset: offset, length: size)
        else { return nil }
        return Section(type: type, range: range, link: link, entrySize: entrySize)
    }

    /// Offset and count of the section header table, if present and in bounds.
    private var sectionHeaderTable: (offset: Int, count: Int)? {
        let offset = view.u64(at: 40)
        let entrySize = view.u16(at: 58)
        let count = view.u16(at: 60)
        guard offset != 0, count != 0, entrySize == UInt16(ELFFile.sectionHeaderSize),
              let range = view.range(offset: offset, count: UInt64(count),
                                     size: UInt64(ELFFile.sectionHeaderSize))
        else { return nil }
        return (range.lowerBound, Int(count))
    }

    private func search(tableType: UInt32, address: UInt64)
        -> (name: UnsafeRawBufferPointer, offset: UInt64)? {
        guard let table = sectionHeaderTable else { return nil }
        for index in 0..<table.count {
            guard let symbols = section(index), symbols.type == tableType,
                  symbols.entrySize == UInt64(ELFFile.symbolSize),
                  let strings = section(Int(symbols.link)), strings.type == SHT_STRTAB
            else { continue }

            var best: (nameOffset: UInt32, offset: UInt64, isFunction: Bool)? = nil
            var position = symbols.range.lowerBound
            while position + ELFFile.symbolSize <= symbols.range.upperBound {
                defer { position += ELFFile.symbolSize }
                let info = view.u8(position + 4) ?? 0
                let kind = info & 0xf
                guard kind == STT_FUNC || kind == STT_OBJECT || kind == STT_NOTYPE,
                      let name = view.u32(position), let sectionIndex = view.u16(position + 6),
                      let value = view.u64(position + 8), let size = view.u64(position + 16),
                      sectionIndex != 0, size != 0, address >= value
                else { continue }
                let (end, overflow) = value.addingReportingOverflow(size)
                guard overflow || address < end else { continue }
                if best == nil || (kind == STT_FUNC && best?.isFunction == false) {
                    best = (name, address - value, kind == STT_FUNC)
                }
            }

            if let best, let name = string(at: best.nameOffset, in: strings.range) {
                return (name, best.offset)
            }
        }
        return nil
    }

    /// The NUL-terminated string at `offset` in the string table `table`, without its NUL.
    private func string(at offset: UInt32, in table: Range<Int>) -> UnsafeRawBufferPointer? {
        guard UInt64(offset) < UInt64(table.count) else { return nil }
        let start = table.lowerBound + Int(offset)
        let rest = view.slice(start..<table.upperBound)
        guard let nul = rest.firstIndex(of: 0) else { return nil }
        return UnsafeRawBufferPointer(rebasing: rest[0..<nul])
    }
}
