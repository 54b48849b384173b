import GuestABI

/// The kernel heap behind the C allocation symbols the Embedded Swift runtime calls
/// (posix_memalign, free, …). Memory is reached through the direct map.
///
/// Small blocks (≤ 2048 bytes) come from size classes 16…2048: a page is carved into blocks of
/// one class, blocks are naturally aligned to their size, and free blocks are kept in one list
/// per class. Larger blocks are whole contiguous pages. A side table, one UInt32 per physical
/// page, records what each page holds so `free` needs no header: the class index (1…8) for
/// small-block pages, or `largeFlag | pageCount` on the first page of a large block.
enum Heap {
    static let classCount = 8
    static let largeFlag: UInt32 = 0x8000_0000

    nonisolated(unsafe) static var freeLists: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    nonisolated(unsafe) static var pageInfo: UnsafeMutablePointer<UInt32>? = nil
    nonisolated(unsafe) static var bytesInUse = 0

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

    static func allocate(size: Int, alignment: Int) -> UnsafeMutableRawPointer? {
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
        guard let first = PhysicalMemory.allocateContiguous(pages: pages) else { return nil }
        info[Int(first.raw / 4096)] = largeFlag | UInt32(pages)
        bytesInUse += pages * 4096
        return directMap(first)
    }

    static func free(_ pointer: UnsafeMutableRawPointer) {
        let info = ensurePageInfo()
        let physical = directMapPhysical(pointer)
        let page = Int(physical.raw / 4096)
        let tag = info[page]
        if tag & largeFlag != 0 {
            let pages = Int(tag & ~largeFlag)
            info[page] = 0
            for i in 0..<pages { PhysicalMemory.free(PhysicalAddress(physical.raw + UInt64(i) * 4096)) }
            bytesInUse -= pages * 4096
        } else if tag >= 1 && tag <= UInt32(classCount) {
            let head = listHead(Int(tag) - 1)
            pointer.storeBytes(of: head.pointee, as: UInt64.self)
            head.pointee = UInt64(UInt(bitPattern: pointer))
            bytesInUse -= 16 << (Int(tag) - 1)
        } else {
            panic("free of a pointer the heap did not allocate")
        }
    }

    /// The usable size of a block (for realloc).
    static func usableSize(_ pointer: UnsafeMutableRawPointer) -> Int {
        let tag = ensurePageInfo()[Int(directMapPhysical(pointer).raw / 4096)]
        return tag & largeFlag != 0 ? Int(tag & ~largeFlag) * 4096 : 16 << (Int(tag) - 1)
    }
}

// MARK: - C allocation symbols for the Swift runtime

@_cdecl("posix_memalign")
func posix_memalign(_ out: UnsafeMutablePointer<UnsafeMutableRawPointer?>, _ alignment: Int, _ size: Int) -> Int32 {
    guard let p = Heap.allocate(size: size, alignment: alignment) else { return 12 }  // ENOMEM
    out.pointee = p
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
    guard !overflow, let p = Heap.allocate(size: total, alignment: 16) else { return nil }
    p.initializeMemory(as: UInt8.self, repeating: 0, count: total)
    return p
}

@_cdecl("realloc")
func realloc(_ pointer: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
    guard let old = pointer else { return Heap.allocate(size: size, alignment: 16) }
    let oldSize = Heap.usableSize(old)
    if size <= oldSize { return old }
    guard let new = Heap.allocate(size: size, alignment: 16) else { return nil }
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
