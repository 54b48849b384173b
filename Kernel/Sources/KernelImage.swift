import GuestABI
import KernelArch

/// The kernel's own mapping, made exact once pages can be allocated. The boot page tables (the
/// VMM's, or the PVH entry's) map kernelVirtualBase + [0, 1 GiB) with writable, executable
/// 2 MiB pages: every low physical page (boot info, page tables, free RAM) would have an
/// executable alias there, and the kernel's code would be writable. `protect` keeps only the
/// kernel image, in 4 KiB pages, and drops the rest of that window:
///
///   [kernel_image_start, kernel_text_end)   read-only, executable   ELF headers, .text
///   [kernel_text_end, kernel_data_start)    read-only, never executable   .rodata, notes
///   [kernel_data_start, kernel_image_end)   writable, never executable   .data, .bss, stacks
///
/// (boundaries rounded to pages; linker.ld starts each segment on a page of its own). On pvm
/// the pages keep U, which every page needs there: the app can still read and write them
/// (PVM.md), but no kernel page is both writable and executable, and on pvm as on native the
/// hardware honours read-only and NX on them (docs/ARCHITECTURE.md, PVM facts).
enum KernelImage {
    static let pageMask: UInt64 = 0xfff
    static let largePage: UInt64 = 1 << 21
    static let window: UInt64 = 1 << 30

    static func protect(userAccessible: Bool) {
        let start = arch_kernel_image_start() & ~pageMask
        let textEnd = (arch_kernel_text_end() + pageMask) & ~pageMask
        let dataStart = arch_kernel_data_start() & ~pageMask
        let end = (arch_kernel_image_end() + pageMask) & ~pageMask
        let windowBase = start & ~(window - 1)
        guard start < textEnd, textEnd <= dataStart, dataStart < end, end - windowBase <= window,
              let directory = kernelDirectory(windowBase)
        else { panic("kernel mapping: unexpected layout or boot page tables") }

        let user: UInt64 = userAccessible ? PageTable.user : 0
        let firstChunk = Int((start - windowBase) / largePage)
        let lastChunk = Int((end - 1 - windowBase) / largePage)
        // Each 2 MiB entry the image touches becomes a table of the same frames with narrower
        // rights, so the kernel runs on through the switch; then the rest of the window goes.
        guard lastChunk - firstChunk < 4 else { panic("kernel mapping: the image spans more than 8 MiB") }
        for chunk in firstChunk...lastChunk {
            guard let page = PhysicalMemory.allocatePage() else { panic("no memory for the kernel's page tables") }
            let entries = directMap(page).assumingMemoryBound(to: UInt64.self)
            let chunkBase = windowBase + UInt64(chunk) * largePage
            for i in 0..<512 {
                let address = chunkBase + UInt64(i) << 12
                let frame = address &- GuestABI.kernelVirtualBase
                if address < start || address >= end {
                    entries[i] = 0
                } else if address < textEnd {
                    entries[i] = frame | PageTable.present | user
                } else if address < dataStart {
                    entries[i] = frame | PageTable.present | user | PageTable.noExecute
                } else {
                    entries[i] = frame | PageTable.present | PageTable.writable | user | PageTable.noExecute
                }
            }
            directory[chunk] = page.raw | PageTable.present | PageTable.writable | user
        }
        for index in 0..<512 where index < firstChunk || index > lastChunk { directory[index] = 0 }
        arch_write_cr3(arch_read_cr3())  // drop the 2 MiB translations from the TLB
    }

    /// The page directory that maps the kernel's 1 GiB window, as the boot page tables left it.
    private static func kernelDirectory(_ windowBase: UInt64) -> UnsafeMutablePointer<UInt64>? {
        let pml4 = directMap(PhysicalAddress(arch_read_cr3() & PageTable.frameMask)).assumingMemoryBound(to: UInt64.self)
        let l4 = pml4[Int((windowBase >> 39) & 0x1ff)]
        guard l4 & PageTable.present != 0 else { return nil }
        let pdpt = directMap(PhysicalAddress(l4 & PageTable.frameMask)).assumingMemoryBound(to: UInt64.self)
        let l3 = pdpt[Int((windowBase >> 30) & 0x1ff)]
        guard l3 & PageTable.present != 0, l3 & PageTable.huge == 0 else { return nil }
        return directMap(PhysicalAddress(l3 & PageTable.frameMask)).assumingMemoryBound(to: UInt64.self)
    }
}
