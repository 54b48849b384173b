import GuestABI
import LinuxABI

/// A range of the app's address space with one protection. Regions are page aligned, sorted
/// by start and never overlap.
struct Region {
    enum Kind: UInt8 { case program, heap, stack, anonymous, vdso }
    var start: UInt64
    var end: UInt64
    var protection: MmapProtection
    var kind: Kind
}

/// The app's mappings. Memory is backed eagerly: every accessible page has a frame from the
/// moment it is mapped, because on pvm an exception while app code runs lands on the app's
/// stack, over its red zone (PVM.md) — so the app must never page-fault in normal operation.
/// PROT_NONE ranges (reservations) get frames only when they become accessible.
enum AddressSpace {
    static let pageSize: UInt64 = 4096

    nonisolated(unsafe) static var regions: [Region] = []
    /// Top-down mmap allocation starts below this (under the stack, randomized).
    nonisolated(unsafe) static var mmapTop: UInt64 = 0
    nonisolated(unsafe) static var brkStart: UInt64 = 0
    nonisolated(unsafe) static var brkCurrent: UInt64 = 0

    static func pageAlignUp(_ v: UInt64) -> UInt64? {
        let (s, o) = v.addingReportingOverflow(pageSize - 1)
        return o ? nil : s & ~(pageSize - 1)
    }

    /// True if no region intersects [start, end).
    static func isFree(_ start: UInt64, _ end: UInt64) -> Bool {
        guard start >= PageTable.userStart, end <= PageTable.userEnd, start < end else { return false }
        for r in regions where r.start < end && start < r.end { return false }
        return true
    }

    /// The highest free range of `length` bytes below `mmapTop`.
    static func findFree(length: UInt64) -> UInt64? {
        var candidateEnd = mmapTop
        for r in regions.reversed() {
            if r.start >= candidateEnd { continue }
            if r.end <= candidateEnd && candidateEnd - r.end >= length {
                return candidateEnd - length
            }
            candidateEnd = min(candidateEnd, r.start)
        }
        guard candidateEnd >= PageTable.userStart + length else { return nil }
        return candidateEnd - length
    }

    /// Maps [start, start+length) with fresh zeroed frames (none for PROT_NONE) and records the
    /// region. The range must be free.
    static func map(_ start: UInt64, _ length: UInt64, _ protection: MmapProtection, _ kind: Region.Kind) throws(Errno) {
        let end = start + length
        let pages = Int(length / pageSize)
        guard protection.isEmpty || pages <= PhysicalMemory.freePages else { throw .ENOMEM }
        if !protection.isEmpty {
            let flags = PageTable.flags(for: protection)
            var address = start
            while address < end {
                guard let frame = PhysicalMemory.allocatePage() else {
                    releaseFrames(start, address)
                    throw .ENOMEM
                }
                do { try PageTable.map(address, frame, flags) } catch {
                    PhysicalMemory.free(frame)
                    releaseFrames(start, address)
                    throw error
                }
                address += pageSize
            }
        }
        insert(Region(start: start, end: end, protection: protection, kind: kind))
    }

    /// Records a region, keeping the list ordered by start.
    static func insert(_ region: Region) {
        var i = 0
        while i < regions.count && regions[i].start < region.start { i += 1 }
        regions.insert(region, at: i)
    }

    private static func releaseFrames(_ start: UInt64, _ end: UInt64) {
        var address = start
        while address < end {
            if let frame = PageTable.unmap(address) { PhysicalMemory.free(frame) }
            address += pageSize
        }
        PageTable.flush(start, pages: Int((end - start) / pageSize))
    }

    /// Splits regions so that `address` is a region boundary.
    private static func split(at address: UInt64) {
        for i in regions.indices where regions[i].start < address && address < regions[i].end {
            var upper = regions[i]
            upper.start = address
            regions[i].end = address
            regions.insert(upper, at: i + 1)
            return
        }
    }

    /// munmap: frees every page in the range; unmapped holes are fine (Linux semantics).
    static func unmap(_ start: UInt64, _ length: UInt64) {
        let end = start + length
        split(at: start)
        split(at: end)
        releaseFrames(start, end)
        regions.removeAll { $0.start >= start && $0.end <= end }
    }

    /// mprotect: ENOMEM if any page of the range is not mapped.
    static func protect(_ start: UInt64, _ length: UInt64, _ protection: MmapProtection) throws(Errno) {
        let end = start + length
        var covered = start
        for r in regions where r.end > start && r.start < end {
            if r.start > covered { throw .ENOMEM }
            covered = r.end
        }
        guard covered >= end else { throw .ENOMEM }
        split(at: start)
        split(at: end)
        let flags = PageTable.flags(for: protection)
        for i in regions.indices where regions[i].start >= start && regions[i].end <= end {
            var address = regions[i].start
            while address < regions[i].end {
                if PageTable.frame(address) != nil {
                    PageTable.protect(address, flags)
                } else if !protection.isEmpty {
                    // A reservation becoming accessible: back it now.
                    guard let frame = PhysicalMemory.allocatePage() else { throw .ENOMEM }
                    try PageTable.map(address, frame, flags)
                }
                address += pageSize
            }
            regions[i].protection = protection
        }
        PageTable.flush(start, pages: Int(length / pageSize))
    }

    static func region(containing address: UInt64) -> Region? {
        for r in regions where r.start <= address && address < r.end { return r }
        return nil
    }

    /// mremap of one whole or partial region.
    static func remap(_ old: UInt64, _ oldLength: UInt64, _ newLength: UInt64, mayMove: Bool) throws(Errno) -> UInt64 {
        guard let r = region(containing: old), old + oldLength <= r.end else { throw .EFAULT }
        if newLength <= oldLength {
            if newLength < oldLength { unmap(old + newLength, oldLength - newLength) }
            return old
        }
        let growth = newLength - oldLength
        if old + oldLength == r.end && isFree(r.end, r.end + growth) {
            try map(r.end, growth, r.protection, r.kind)
            merge()
            return old
        }
        guard mayMove else { throw .ENOMEM }
        guard let destination = findFree(length: newLength) else { throw .ENOMEM }
        // Move the frames, then back the new tail.
        let flags = PageTable.flags(for: r.protection)
        var offset: UInt64 = 0
        while offset < oldLength {
            if let frame = PageTable.unmap(old + offset) {
                try PageTable.map(destination + offset, frame, flags)
            }
            offset += pageSize
        }
        PageTable.flush(old, pages: Int(oldLength / pageSize))
        split(at: old)
        split(at: old + oldLength)
        regions.removeAll { $0.start >= old && $0.end <= old + oldLength }
        insert(Region(start: destination, end: destination + oldLength, protection: r.protection, kind: r.kind))
        try map(destination + oldLength, growth, r.protection, r.kind)
        merge()
        return destination
    }

    /// Joins adjacent regions of the same kind and protection.
    private static func merge() {
        var i = 0
        while i + 1 < regions.count {
            if regions[i].end == regions[i + 1].start && regions[i].kind == regions[i + 1].kind
                && regions[i].protection == regions[i + 1].protection {
                regions[i].end = regions[i + 1].end
                regions.remove(at: i + 1)
            } else {
                i += 1
            }
        }
    }

    /// MADV_DONTNEED on private anonymous memory: the pages read as zero afterwards.
    static func discard(_ start: UInt64, _ length: UInt64) {
        var address = start
        while address < start + length {
            if let frame = PageTable.frame(address) {
                directMap(frame).initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
            }
            address += pageSize
        }
    }
}
