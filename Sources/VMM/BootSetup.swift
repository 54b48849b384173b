import ELF
import GuestABI

/// What the VMM writes into guest memory before the first instruction: the kernel's PT_LOAD
/// segments, the boot page tables, the boot info page and the argument block.
public enum BootSetup {
    public enum Error: Swift.Error, Equatable {
        case kernelNotELF(String)
        case kernelSegmentOutsideMemory(index: Int)
        case kernelTooLarge
        case imageTooLarge(UInt64)
        /// The network could not be set up (a port to publish is taken, no irqchip, …).
        case network(String)

        public var message: String {
            switch self {
            case .kernelNotELF(let m): return "the kernel file is not a loadable ELF: \(m)"
            case .kernelSegmentOutsideMemory(let i): return "kernel segment \(i) does not fit in guest memory"
            case .kernelTooLarge: return "the kernel image does not fit below \(GuestABI.kernelSpan >> 20) MiB"
            case .imageTooLarge(let s): return "the image is \(s) bytes; at most \(GuestABI.maxImageSize) are supported"
            case .network(let m): return m
            }
        }
    }

    public struct LoadedKernel {
        /// The entry point at the kernel's link address (`GuestABI.kernelLinkBase`).
        public var entry: UInt64
        /// First free physical byte after the kernel (page aligned).
        public var end: UInt64
    }

    /// Copies the kernel's PT_LOAD segments to their p_paddr (the bss is already zero in fresh
    /// guest RAM). The kernel is trusted code but its file is still checked like any input.
    public static func loadKernel(_ bytes: UnsafeRawBufferPointer, into memory: GuestMemory) throws(Error) -> LoadedKernel {
        let elf: ELFFile
        do { elf = try ELFFile(bytes: bytes) } catch { throw .kernelNotELF(error.message) }
        var end: UInt64 = 0
        for (index, ph) in elf.programHeaders.enumerated() where ph.isLoad {
            let (fileEnd, o1) = ph.offset.addingReportingOverflow(ph.fileSize)
            guard !o1, fileEnd <= UInt64(bytes.count), ph.fileSize <= ph.memorySize,
                  ph.physicalAddress >= GuestABI.kernelPhysicalBase.raw,
                  let target = memory.bytes(at: PhysicalAddress(ph.physicalAddress), count: ph.memorySize, writable: true)
            else { throw .kernelSegmentOutsideMemory(index: index) }
            target.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[Int(ph.offset)..<Int(fileEnd)]))
            end = max(end, ph.physicalAddress + ph.memorySize)
        }
        guard end <= GuestABI.kernelSpan, elf.entry >= GuestABI.kernelLinkBase + GuestABI.kernelPhysicalBase.raw,
              elf.entry < GuestABI.kernelLinkBase + end
        else { throw .kernelTooLarge }
        return LoadedKernel(entry: elf.entry, end: (end + 0xfff) & ~0xfff)
    }

    /// Where the vCPU starts: the entry point moved from the link address to `layout`'s.
    public static func entryAddress(_ kernel: LoadedKernel, layout: KernelLayout) -> UInt64 {
        kernel.entry - GuestABI.kernelLinkBase + layout.kernelVirtualBase
    }

    /// Boot page tables at `GuestABI.bootPageTablesAddress`, 2 MiB pages, all in PML4 slot 255:
    ///   PDPT[d + i] → PD_i for i < span/1 GiB: directMapBase + [0, span) → [0, span), NX
    ///   PDPT[k]     → PD_k: kernelVirtualBase + [0, kernelSpan) → [0, kernelSpan), executable
    ///                 (the kernel narrows it to its image with W^X once it runs)
    /// where d is the direct map's 1 GiB slot in `layout` and span covers RAM, the doorbell
    /// page and the image (up to 8 GiB). The direct map is never executable, so no data page
    /// has an executable alias. On pvm every entry carries U (PVM.md: kernel pages without U
    /// fault after the switch to native mode).
    public static func writePageTables(into memory: GuestMemory, directMapSpan: UInt64, layout: KernelLayout,
                                       userAccessible: Bool) throws(Error) {
        let base = GuestABI.bootPageTablesAddress
        guard let area = memory.bytes(at: base, count: GuestABI.bootPageTablesSize, writable: true) else { throw .kernelTooLarge }
        area.initializeMemory(as: UInt8.self, repeating: 0)
        let flags: UInt64 = 0x3 | (userAccessible ? 0x4 : 0)  // present, writable, (user)
        let hugePage: UInt64 = 0x80
        let noExecute: UInt64 = 1 << 63
        let gib: UInt64 = 1 << 30
        let directGiB = Int((directMapSpan + gib - 1) / gib)
        guard directMapSpan <= GuestABI.maxDirectMapSpan else { throw .imageTooLarge(directMapSpan) }

        // Page layout inside the area: 0 PML4, 1 PDPT, 2 the kernel's PD, 3… PD_i. The last
        // page of the area holds the GDT and TSS (VirtualMachine.gdtAddress).
        func page(_ n: Int) -> UInt64 { base.raw + UInt64(n) * 4096 }
        func set(_ table: Int, _ index: Int, _ value: UInt64) {
            area.writeLE(value, at: table * 4096 + index * 8)
        }
        func slot(_ address: UInt64, level: Int) -> Int { Int((address >> UInt64(12 + 9 * level)) & 0x1ff) }
        set(0, slot(layout.directMapBase, level: 3), page(1) | flags)
        for g in 0..<directGiB {
            set(1, slot(layout.directMapBase, level: 2) + g, page(3 + g) | flags)
            for i in 0..<512 { set(3 + g, i, (UInt64(g) * gib + UInt64(i) << 21) | flags | hugePage | noExecute) }
        }
        set(1, slot(layout.kernelVirtualBase, level: 2), page(2) | flags)
        let firstKernelEntry = slot(layout.kernelVirtualBase, level: 1)
        for i in 0..<Int(GuestABI.kernelSpan >> 21) {
            set(2, firstKernelEntry + i, (UInt64(i) << 21) | flags | hugePage)
        }
    }

    /// The boot info page and the argument block.
    public static func writeBootInfo(_ info: BootInfo, arguments: [UInt8], into memory: GuestMemory) throws(Error) {
        guard let page = memory.bytes(at: GuestABI.bootInfoAddress, count: GuestABI.bootInfoSize, writable: true),
              let block = memory.bytes(at: GuestABI.argumentsAddress, count: UInt64(arguments.count), writable: true)
        else { throw .kernelTooLarge }
        info.encode(into: page)
        arguments.withUnsafeBytes { block.copyMemory(from: $0) }
    }
}
