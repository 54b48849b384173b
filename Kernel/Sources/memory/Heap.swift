import GuestABI

/// The kernel heap behind the C allocation symbols the Embedded Swift runtime calls
/// (posix_memalign, free, …). Memory is reached through the direct map.
///
/// Small blocks (≤ 2048 bytes) come from size classes 16…2048: a page is carved into blocks of
/// one class, blocks are naturally aligned to their size, and free blocks are kept in one list
/// per class. Larger blocks are whole contiguous pages. A side table, one UInt32 per physical
/// page, records what each page holds so `free` needs no header: the class index (1…8) for
/// small-block pages, or `largeFlag | pageCount` on the first page of a large block.
///
/// A freed large block of up to `reuseMaxPages` pages is kept for the next block of the same
/// size (at most `reuseLimitPages` pages in all), still tagged: the network's buffers and
/// sendfile's copy buffer come and go per request, and taking fresh memory each time would
/// touch new pages (a host page fault each) or, later, map window pages.
///
/// A large block is physically contiguous while never-used memory has a long enough run;
/// after that (memory the app freed is scattered single pages) it is made of pages from
/// anywhere, mapped contiguously in the heap window (`WindowBlocks`), so the kernel's large
/// arrays (tmpfs file bytes above all) can use all free memory.
enum Heap {
    static let classCount = 8
    static let largeFlag: UInt32 = 0x8000_0000

    nonisolated(unsafe) static var freeLists: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    nonisolated(unsafe) static var pageInfo: UnsafeMutablePointer<UInt32>? = nil
    nonisolated(unsafe) static var bytesInUse = 0
    static let reuseMaxPages = 64
    static let reuseLimitPages = 512
    /// Heads of the lists of kept large blocks, by page count (one page of heads; 0: empty).
    nonisolated(unsafe) static var reuseHeads: UnsafeMutablePointer<UInt64>? = nil
    nonisolated(unsafe) static var reusePages = 0

    private static func ensureReuseHeads() -> UnsafeMutablePointer<UInt64>? {
        if let heads = reuseHeads { return heads }
        guard let page = PhysicalMemory.allocatePage() else { return nil }
        let heads = directMap(page).bindMemory(to: UInt64.self, capacity: 512)
        reuseHeads = heads
        return heads
    }

    private static func ensurePageInfo() -> UnsafeMutablePointer<UInt32> {
        if let info = pageInfo { return info }
        let pages = (PhysicalMemory.totalPages * 4 + 4095) / 4096
        guard let base = PhysicalMemory.allocateContiguous(pages: pages) else { panic("no memory for the heap") }
        let info = directMap(base).bindMemory(to: UInt32.self, capacity: PhysicalMemory.totalPages)
        pageInfo = info
        return info
    }

    /// Size class index (0…7) for a request, or nil for a large block.
    private static func sizeClass(_ size: Int, alignment: Int) -> Int? {
        let need = max(size, alignment, 16)
        guard need <= 2048 else { return nil }
        var c = 0
        while (16 << c) < need { c += 1 }
        return c
    }

    private static func listHead(_ c: Int) -> UnsafeMutablePointer<UInt64> {
        withUnsafeMutablePointer(to: &freeLists) {
            UnsafeMutableRawPointer($0).assumingMemoryBound(to: UInt64.self) + c
        }
    }

    /// A block, or a panic that says the VM ran out of memory: the Swift runtime cannot
    /// carry on without it (it would trap), so the user gets the reason instead. File data,
    /// the one large thing the app makes the kernel hold, is bounded before this point
    /// (ENOSPC, `KernelHost.canAllocate`).
    static func allocate(size: Int, alignment: Int) -> UnsafeMutableRawPointer {
        if let block = tryAllocate(size: size, alignment: alignment) { return block }
        if exhausted { haltForever() }  // the report itself could not allocate
        exhausted = true
        OutOfMemory.stop("an allocation of the kernel failed", bytes: UInt64(size))
    }
    nonisolated(unsafe) static var exhausted = false

    static func tryAllocate(size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
        let info = ensurePageInfo()
        if let c = sizeClass(size, alignment: alignment) {
            let head = listHead(c)
            if head.pointee == 0 {
                guard let page = PhysicalMemory.allocatePage() else { return nil }
                info[Int(page.raw / 4096)] = UInt32(c + 1)
                let blockSize = 16 << c
                let base = directMap(page)
                // Thread the page's blocks into the list, first block at the head.
                var offset = 4096 - blockSize
                while offset >= 0 {
                    (base + offset).storeBytes(of: head.pointee, as: UInt64.self)
                    head.pointee = UInt64(UInt(bitPattern: base + offset))
                    offset -= blockSize
                }
            }
            let block = UnsafeMutableRawPointer(bitPattern: UInt(head.pointee))!
            head.pointee = block.load(as: UInt64.self)
            bytesInUse += 16 << c
            return block
        }
        guard alignment <= 4096 else { return nil }
        let pages = (size + 4095) / 4096
        if pages <= reuseMaxPages, let heads = reuseHeads, heads[pages] != 0 {
            let block = UnsafeMutableRawPointer(bitPattern: UInt(heads[pages]))!
            heads[pages] = block.load(as: UInt64.self)
            reusePages -= pages
            bytesInUse += pages * 4096
            return block
        }
        guard let first = PhysicalMemory.allocateContiguous(pages: pages) else {
            guard let block = WindowBlocks.allocate(pages: pages) else { return nil }
            bytesInUse += pages * 4096
            return block
        }
        info[Int(first.raw / 4096)] = largeFlag | UInt32(pages)
        bytesInUse += pages * 4096
        return directMap(first)
    }

    static func free(_ pointer: UnsafeMutableRawPointer) {
        if let pages = WindowBlocks.pages(of: pointer) {
            WindowBlocks.free(pointer, pages: pages)
            bytesInUse -= pages * 4096
            return
        }
        let info = ensurePageInfo()
        let physical = directMapPhysical(pointer)
        let page = Int(physical.raw / 4096)
        let tag = info[page]
        if tag & largeFlag != 0 {
            let pages = Int(tag & ~largeFlag)
            bytesInUse -= pages * 4096
            if pages <= reuseMaxPages && reusePages + pages <= reuseLimitPages, let heads = ensureReuseHeads() {
                pointer.storeBytes(of: heads[pages], as: UInt64.self)
                heads[pages] = UInt64(UInt(bitPattern: pointer))
                reusePages += pages
                return
            }
            info[page] = 0
            for i in 0..<pages { PhysicalMemory.free(PhysicalAddress(physical.raw + UInt64(i) * 4096)) }
        } else if tag >= 1 && tag <= UInt32(classCount) {
            let head = listHead(Int(tag) - 1)
            pointer.storeBytes(of: head.pointee, as: UInt64.self)
            head.pointee = UInt64(UInt(bitPattern: pointer))
            bytesInUse -= 16 << (Int(tag) - 1)
        } else {
            panic("free of a pointer the heap did not allocate")
        }
    }

    /// Gives the kept large blocks back to the page allocator (when the app needs the memory
    /// they hold: see PhysicalMemory.canGrantApp).
    static func releaseKeptBlocks() {
        guard let heads = reuseHeads, reusePages > 0, let info = pageInfo else { return }
        for pages in 1...reuseMaxPages {
            while heads[pages] != 0 {
                let block = UnsafeMutableRawPointer(bitPattern: UInt(heads[pages]))!
                heads[pages] = block.load(as: UInt64.self)
                let physical = directMapPhysical(block)
                info[Int(physical.raw / 4096)] = 0
                for i in 0..<pages { PhysicalMemory.free(PhysicalAddress(physical.raw + UInt64(i) * 4096)) }
                reusePages -= pages
            }
        }
    }

    /// The usable size of a block (for realloc).
    static func usableSize(_ pointer: UnsafeMutableRawPointer) -> Int {
        if let pages = WindowBlocks.pages(of: pointer) { return pages * 4096 }
        let tag = ensurePageInfo()[Int(directMapPhysical(pointer).raw / 4096)]
        return tag & largeFlag != 0 ? Int(tag & ~largeFlag) * 4096 : 16 << (Int(tag) - 1)
    }
}

/// Large heap blocks mapped page by page in [heapWindowStart, heapWindowEnd). Each block is
/// preceded by a guard page that is never mapped; its not-present page-table entry holds the
/// block's page count (`countTag | pages << 12`), which `free` reads back. Freed ranges (guard
/// included) go to a table of free ranges kept in one page, merged with their neighbours and
/// reused first fit; a range that finds the table full is dropped (address space only: its
/// frames are freed either way).
enum WindowBlocks {
    /// Software bit 10 of a not-present entry: the entry holds a block's page count.
    static let countTag: UInt64 = 1 << 10
    static let tableCapacity = 256

    nonisolated(unsafe) static var next = GuestABI.heapWindowStart
    /// Free ranges as (start, pages) pairs; `freeCount` used.
    nonisolated(unsafe) static var freeRanges: UnsafeMutablePointer<UInt64>? = nil
    nonisolated(unsafe) static var freeCount = 0

    /// Puts the first block at a random page of the window's lower half (once, at boot,
    /// before any block exists), so the kernel's large blocks have no fixed address either.
    static func placeStart(random: UInt64) {
        guard next == GuestABI.heapWindowStart, freeCount == 0 else { return }
        let halfPages = (GuestABI.heapWindowEnd - GuestABI.heapWindowStart) / 2 / 4096
        next = GuestABI.heapWindowStart + (random % halfPages) * 4096
    }

    static func allocate(pages: Int) -> UnsafeMutableRawPointer? {
        guard pages <= PhysicalMemory.freePages else { return nil }
        let span = UInt64(pages + 1) * 4096
        guard let guardPage = takeRange(span), let guardEntry = try? PageTable.leaf(guardPage, create: true) else { return nil }
        let start = guardPage + 4096
        let flags = PageTable.present | PageTable.writable | PageTable.noExecute | (Platform.kind == .pvm ? PageTable.user : 0)
        var mapped = 0
        while mapped < pages {
            let address = start + UInt64(mapped) * 4096
            guard let frame = PhysicalMemory.allocatePage() else { break }
            guard (try? PageTable.map(address, frame, flags)) != nil else {
                PhysicalMemory.free(frame)
                break
            }
            mapped += 1
        }
        guard mapped == pages else {
            release(start, pages: mapped)
            giveBack(guardPage, span)
            return nil
        }
        guardEntry.pointee = countTag | UInt64(pages) << 12
        return UnsafeMutableRawPointer(bitPattern: UInt(start))
    }

    /// The page count of a block `pointer` starts, or nil if it is not a window block.
    static func pages(of pointer: UnsafeMutableRawPointer) -> Int? {
        let address = UInt64(UInt(bitPattern: pointer))
        guard address > GuestABI.heapWindowStart, address < GuestABI.heapWindowEnd,
              let entry = try? PageTable.leaf(address - 4096, create: false),
              entry.pointee & (PageTable.present | countTag) == countTag else { return nil }
        return Int(entry.pointee >> 12)
    }

    static func free(_ pointer: UnsafeMutableRawPointer, pages: Int) {
        let start = UInt64(UInt(bitPattern: pointer))
        if let entry = try? PageTable.leaf(start - 4096, create: false) { entry.pointee = 0 }
        release(start, pages: pages)
        giveBack(start - 4096, UInt64(pages + 1) * 4096)
    }

    private static func release(_ start: UInt64, pages: Int) {
        for i in 0..<pages {
            if let frame = PageTable.unmap(start + UInt64(i) * 4096) { PhysicalMemory.free(frame) }
        }
        PageTable.flush(start, pages: pages)
    }

    private static func table() -> UnsafeMutablePointer<UInt64>? {
        if let t = freeRanges { return t }
        guard let page = PhysicalMemory.allocatePage() else { return nil }
        let t = directMap(page).bindMemory(to: UInt64.self, capacity: 2 * tableCapacity)
        freeRanges = t
        return t
    }

    /// `bytes` of address space: first fit from the free ranges, else from the untouched top.
    private static func takeRange(_ bytes: UInt64) -> UInt64? {
        if let t = freeRanges {
            for i in 0..<freeCount where t[2 * i + 1] * 4096 >= bytes {
                let start = t[2 * i]
                t[2 * i] += bytes
                t[2 * i + 1] -= bytes / 4096
                if t[2 * i + 1] == 0 { removeRange(i) }
                return start
            }
        }
        guard GuestABI.heapWindowEnd - next >= bytes else { return nil }
        defer { next += bytes }
        return next
    }

    private static func removeRange(_ i: Int) {
        guard let t = freeRanges else { return }
        freeCount -= 1
        t[2 * i] = t[2 * freeCount]
        t[2 * i + 1] = t[2 * freeCount + 1]
    }

    /// Returns [start, start+bytes) to the free ranges, merged with touching ones.
    private static func giveBack(_ start: UInt64, _ bytes: UInt64) {
        guard let t = table() else { return }
        var start = start, end = start + bytes
        var i = 0
        while i < freeCount {
            let s = t[2 * i], e = s + t[2 * i + 1] * 4096
            if e == start || s == end {
                start = min(start, s)
                end = max(end, e)
                removeRange(i)
                i = 0  // the grown range may now touch one passed over
            } else {
                i += 1
            }
        }
        if end == next {
            next = start
            return
        }
        guard freeCount < tableCapacity else { return }
        t[2 * freeCount] = start
        t[2 * freeCount + 1] = (end - start) / 4096
        freeCount += 1
    }
}

// MARK: - C allocation symbols for the Swift runtime

@_cdecl("posix_memalign")
func posix_memalign(_ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int) -> Int32 {
    out.pointee = Heap.allocate(size: size, alignment: alignment)
    return 0
}

@_cdecl("aligned_alloc")
func aligned_alloc(_ alignment: Int, _ size: Int) -> UnsafeMutableRawPointer? {
    Heap.allocate(size: size, alignment: alignment)
}

/// Exported as malloc by linker.ld (the name is reserved in Swift source).
@_cdecl("apus_malloc")
func apusMalloc(_ size: Int) -> UnsafeMutableRawPointer? {
    Heap.allocate(size: size, alignment: 16)
}

@_cdecl("calloc")
func calloc(_ count: Int, _ size: Int) -> UnsafeMutableRawPointer? {
    let (total, overflow) = count.multipliedReportingOverflow(by: size)
    guard !overflow else { return nil }
    let p = Heap.allocate(size: total, alignment: 16)
    p.initializeMemory(as: UInt8.self, repeating: 0, count: total)
    return p
}

@_cdecl("realloc")
func realloc(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
    guard let old = pointer else { return Heap.allocate(size: size, alignment: 16) }
    let oldSize = Heap.usableSize(old)
    if size <= oldSize { return old }
    let new = Heap.allocate(size: size, alignment: 16)
    new.copyMemory(from: old, byteCount: oldSize)
    Heap.free(old)
    return new
}

/// Exported as free by linker.ld (the name is reserved in Swift source).
@_cdecl("apus_free")
func apusFree(_ pointer: UnsafeMutableRawPointer?) {
    if let p = pointer { Heap.free(p) }
}

/// Embedded Swift's `print` writes through putchar: kernel diagnostics.
@_cdecl("putchar")
func putchar(_ c: Int32) -> Int32 {
    var byte = UInt8(truncatingIfNeeded: c)
    withUnsafeBytes(of: &byte) { Console.write(.kernel, $0) }
    return c
}

/// Hashing seeds for Set/Dictionary.
@_cdecl("arc4random_buf")
func arc4random_buf(_ buffer: UnsafeMutableRawPointer, _ count: Int) {
    Random.fill(UnsafeMutableRawBufferPointer(start: buffer, count: count))
}
