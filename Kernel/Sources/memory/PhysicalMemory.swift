import GuestABI

/// The VM ran out of memory where no errno can be returned (a page a fault needs, the
/// kernel's own allocation): the VM stops, and apus says so, naming `--memory`, with its own
/// exit status (`HostExitCode.outOfMemory`) instead of a crash or a panic report. (Linux would
/// pick a process to kill; with one program per VM, stopping it is the honest equivalent.)
enum OutOfMemory {
    static func stop(_ what: StaticString, bytes: UInt64? = nil) -> Never {
        var m = Message()
        m.append(HostExitCode.outOfMemoryPanicPrefix)
        m.append(what)
        if let bytes {
            m.append(" (")
            m.decimal(bytes)
            m.append(" bytes)")
        }
        panic(m)
    }
}

/// Physical page allocator over [kernelEnd, memorySize).
///
/// Pages come from two places: a free list of returned pages (linked through their first
/// word, zeroed again when handed out) and a bump pointer over never-used memory. The host
/// backs guest RAM with a lazy anonymous mapping, so never-used pages read as zero without the
/// guest touching them: handing them out costs nothing, and mapping a large region eagerly
/// (as pvm requires) costs page-table writes only, not host memory, until the app uses it.
enum PhysicalMemory {
    static let pageSize: UInt64 = 4096

    nonisolated(unsafe) static var bump: UInt64 = 0
    nonisolated(unsafe) static var end: UInt64 = 0
    nonisolated(unsafe) static var freeList: UInt64 = 0
    nonisolated(unsafe) static var freeListCount = 0
    /// Returned pages known to be all zeros: app pages nobody ever wrote (`PageTable.dirty`
    /// clear), by page number. Handed out before the others, without clearing; neither
    /// keeping nor handing one out touches the page (on a host that backs guest memory
    /// lazily, or shadows its page tables, every touch costs). Made at boot, one slot per page.
    nonisolated(unsafe) static var zeroPages: UnsafeMutablePointer<UInt32>? = nil
    nonisolated(unsafe) static var zeroListCount = 0
    nonisolated(unsafe) static var freshPagesAreZero = true
    nonisolated(unsafe) static var totalPages = 0

    /// Per frame: how many more page-table entries than one map it (a MAP_SHARED anonymous
    /// page in several processes, the vDSO). `free` of a shared frame drops one of those
    /// instead of freeing it. Indexed by physical page number; made at boot (2 bytes per page).
    nonisolated(unsafe) static var extraReferences: UnsafeMutablePointer<UInt16>? = nil

    static func initialize(boot: BootInfo, freshPagesAreZero zero: Bool) {
        bump = (boot.kernelEnd + pageSize - 1) & ~(pageSize - 1)
        end = boot.memorySize & ~(pageSize - 1)
        freshPagesAreZero = zero
        guard bump < end else { panic("no memory after the kernel image") }
        totalPages = Int(end / pageSize)
        let tablePages = (totalPages * 2 + Int(pageSize) - 1) / Int(pageSize)
        guard let table = allocateContiguous(pages: tablePages) else { panic("no memory for the frame table") }
        extraReferences = directMap(table).bindMemory(to: UInt16.self, capacity: totalPages)
        let zeroTablePages = (totalPages * 4 + Int(pageSize) - 1) / Int(pageSize)
        guard let zeroTable = allocateContiguous(pages: zeroTablePages) else { panic("no memory for the frame table") }
        zeroPages = directMap(zeroTable).bindMemory(to: UInt32.self, capacity: totalPages)
    }

    /// One more page-table entry maps `frame` (it is freed after the last one goes).
    static func share(_ frame: PhysicalAddress) {
        let i = Int(frame.raw / pageSize)
        guard let table = extraReferences, i < totalPages else { return }
        guard table[i] < UInt16.max else { panic("a frame is shared by more than 65535 mappings") }
        table[i] += 1
    }

    /// Whether another page-table entry maps `frame` too.
    static func isShared(_ frame: PhysicalAddress) -> Bool {
        let i = Int(frame.raw / pageSize)
        guard let table = extraReferences, i < totalPages else { return false }
        return table[i] > 0
    }

    static var freePages: Int { Int((end - bump) / pageSize) + freeListCount + zeroListCount }

    /// Pages the app's own memory (its mappings, tmpfs files and names) never takes: page
    /// tables and the kernel heap (objects, buffers) come from them, and the kernel running
    /// out is a panic, where the app running out is ENOMEM/ENOSPC as on Linux. 1/64 of
    /// memory, at least 512 KiB and at most 8 MiB (the kernel's needs beyond the objects
    /// the app asks for, which are charged to the app, do not grow with memory).
    static var kernelReservePages: Int { min(max(128, totalPages / 64), 2048) }

    /// Whether the app may have `pages` more pages and leave the kernel its reserve.
    static func canGrantApp(pages: Int) -> Bool {
        guard pages >= 0 else { return false }
        if pages <= freePages - kernelReservePages { return true }
        // Large blocks the heap keeps for reuse are free memory too.
        Heap.releaseKeptBlocks()
        return pages <= freePages - kernelReservePages
    }

    /// Whether the app may have `bytes` more bytes of kernel memory (a buffer, a list it
    /// asked for), counted in whole pages with one page of slack.
    static func canGrantApp(bytes: Int) -> Bool {
        bytes >= 0 && canGrantApp(pages: bytes / 4096 + 1)
    }

    /// Whether an array holding `count` elements of `stride` bytes in `capacity` may take
    /// `more`: true when it fits, else when its growth (Swift doubles the capacity) leaves
    /// the kernel its reserve. For kernel buffers whose size the app decides (pipes, socket
    /// queues): their caller fails with the errno Linux gives when memory is short.
    static func canGrow(count: Int, capacity: Int, by more: Int, stride: Int = 1) -> Bool {
        let needed = count + more
        if needed <= capacity { return true }
        let bytes = max(needed, 2 * capacity, 16) * stride
        return canGrantApp(bytes: bytes)
    }

    /// Whether the app may have one more kernel object (a pipe, socket, timer, thread…):
    /// objects the app asks for are its memory too, so they stop where its mappings stop,
    /// and the reserve stays the kernel's (ENOMEM/EAGAIN to the app, as Linux under
    /// memory pressure).
    static var canGrantAppObject: Bool { canGrantApp(pages: 1) }

    /// A zeroed page for the app's memory, or nil once only the kernel's reserve is left.
    static func allocateAppPage() -> PhysicalAddress? {
        canGrantApp(pages: 1) ? allocatePage() : nil
    }

    /// A zeroed page, or nil when memory is exhausted.
    static func allocatePage() -> PhysicalAddress? {
        if zeroListCount > 0, let zero = zeroPages {
            zeroListCount -= 1
            return PhysicalAddress(UInt64(zero[zeroListCount]) * pageSize)
        }
        if freeList != 0 {
            let page = PhysicalAddress(freeList)
            freeList = directMap(page).load(as: UInt64.self)
            freeListCount -= 1
            directMap(page).initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
            return page
        }
        return allocateContiguous(pages: 1)
    }

    /// `pages` physically contiguous zeroed pages from never-used memory.
    static func allocateContiguous(pages: Int) -> PhysicalAddress? {
        let bytes = UInt64(pages) * pageSize
        guard pages > 0, end - bump >= bytes else { return nil }
        let page = PhysicalAddress(bump)
        bump += bytes
        if !freshPagesAreZero {
            directMap(page).initializeMemory(as: UInt8.self, repeating: 0, count: Int(bytes))
        }
        return page
    }

    /// Returns a page (or drops one of its extra references). `zeroed`: nobody ever wrote
    /// it, so it is still all zeros (a private app page whose entry is not dirty).
    static func free(_ page: PhysicalAddress, zeroed: Bool = false) {
        let i = Int(page.raw / pageSize)
        if let table = extraReferences, i < totalPages, table[i] > 0 {
            table[i] -= 1
            return
        }
        if zeroed, let zero = zeroPages, zeroListCount < totalPages {
            zero[zeroListCount] = UInt32(page.raw / pageSize)
            zeroListCount += 1
            return
        }
        directMap(page).storeBytes(of: freeList, as: UInt64.self)
        freeList = page.raw
        freeListCount += 1
    }
}
