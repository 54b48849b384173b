import GuestABI
import KernelArch

/// The kernel's own mapping, made exact once pages can be allocated. The boot page tables (the
/// VMM's, or the PVH entry's) map kernelVirtualBase + [0, kernelSpan) with writable,
/// executable 2 MiB pages: every low physical page (boot info, page tables, free RAM) would
/// have an executable alias there, and the kernel's code would be writable. `protect` keeps
/// only the kernel image, in 4 KiB pages, and drops the rest of that GiB:
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
        let firstChunk = Int((start - windowBase) / largePage)
        let lastChunk = Int((end - 1 - windowBase) / largePage)
        guard start < textEnd, textEnd <= dataStart, dataStart < end, end - windowBase <= window,
              lastChunk - firstChunk < 4, let directoryEntry = kernelDirectoryEntry(windowBase)
        else { panic("kernel mapping: unexpected layout or boot page tables") }

        // A new directory and its tables are built while no CPU walks them, then one write of
        // the PDPT entry switches over: on pvm every write to a live page table is trapped and
        // emulated (tens of µs each; clearing a live directory entry by entry cost ~25 ms).
        // The new tables map the same frames with narrower rights, so the kernel runs on
        // through the switch.
        let user: UInt64 = userAccessible ? PageTable.user : 0
        let tableFlags = PageTable.present | PageTable.writable | user
        guard let directoryPage = PhysicalMemory.allocatePage() else { panic("no memory for the kernel's page tables") }
        let directory = directMap(directoryPage).assumingMemoryBound(to: UInt64.self)
        directory.initialize(repeating: 0, count: 512)
        for chunk in firstChunk...lastChunk {
            guard let page = PhysicalMemory.allocatePage() else { panic("no memory for the kernel's page tables") }
            let entries = directMap(page).assumingMemoryBound(to: UInt64.self)
            let chunkBase = windowBase + UInt64(chunk) * largePage
            for i in 0..<512 {
                let address = chunkBase + UInt64(i) << 12
                let frame = address &- Kernel.virtualBase
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
            directory[chunk] = page.raw | tableFlags
        }
        directoryEntry.pointee = directoryPage.raw | tableFlags
        // Drop the old 2 MiB translations: one invlpg per large page of the boot mapping
        // (reloading CR3 would make pvm rebuild every shadow page).
        var large = windowBase + UInt64(firstChunk) * largePage
        let spanEnd = arch_kernel_image_start() - GuestABI.kernelPhysicalBase.raw + GuestABI.kernelSpan
        while large < spanEnd {
            arch_invlpg(large)
            large += largePage
        }
    }

    /// The PDPT entry for the kernel's 1 GiB window, as the boot page tables left it (pointing
    /// to a directory).
    private static func kernelDirectoryEntry(_ windowBase: UInt64) -> UnsafeMutablePointer<UInt64>? {
        let pml4 = directMap(PhysicalAddress(arch_read_cr3() & PageTable.frameMask)).assumingMemoryBound(to: UInt64.self)
        let l4 = pml4[Int((windowBase >> 39) & 0x1ff)]
        guard l4 & PageTable.present != 0 else { return nil }
        let pdpt = directMap(PhysicalAddress(l4 & PageTable.frameMask)).assumingMemoryBound(to: UInt64.self)
        let entry = pdpt + Int((windowBase >> 30) & 0x1ff)
        guard entry.pointee & PageTable.present != 0, entry.pointee & PageTable.huge == 0 else { return nil }
        return entry
    }
}
