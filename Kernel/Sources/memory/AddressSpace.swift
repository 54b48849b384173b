import GuestABI
import KernelArch
import LinuxABI

/// A range of the app's address space with one protection. Regions are page aligned, sorted
/// by start and never overlap.
struct Region {
    enum Kind: UInt8 { case program, heap, stack, anonymous, vdso }
    var start: UInt64
    var end: UInt64
    var protection: MmapProtection
    var kind: Kind
    /// A MAP_SHARED file mapping: the `SharedFiles` slot whose frames back it (-1: the
    /// region owns its frames), and whether the descriptor it was made through allowed
    /// writing (else mprotect(PROT_WRITE) is EACCES).
    var sharedFile = -1
    var mayWrite = true
    /// MAP_SHARED|MAP_ANONYMOUS: fork maps the same frames in the child (counted in
    /// `PhysicalMemory.share`) instead of copying them.
    var sharedAnonymous = false
    /// A System V shared memory attachment: the segment's id (-1: none); `filePage` is the
    /// page of the segment at `start`.
    var sysvSegment: Int32 = -1
    /// A file mapping (shared or private, and the program's segments): the file's path and
    /// inode as /proc/self/maps shows them, and the file page at `start`. Empty: anonymous.
    var name: [UInt8] = []
    var inode: UInt64 = 0
    var filePage = 0

    /// This region's fields for a range starting at `address` inside or right after it.
    func continued(at address: UInt64, to end: UInt64) -> Region {
        var r = self
        r.start = address
        r.end = end
        if sharedFile >= 0 || !name.isEmpty || sysvSegment >= 0 { r.filePage = filePage + Int((address - start) / AddressSpace.pageSize) }
        return r
    }

    /// The same range of the same thing, moved to start at `address` (mremap).
    func relocated(to address: UInt64) -> Region {
        var r = self
        r.end = address + (end - start)
        r.start = address
        return r
    }

    /// True if `next`, starting at this region's end, can join it.
    func joins(_ next: Region) -> Bool {
        end == next.start && kind == next.kind && protection == next.protection && sharedFile == next.sharedFile
            && mayWrite == next.mayWrite && sharedAnonymous == next.sharedAnonymous
            && sysvSegment == next.sysvSegment && name == next.name
            && (sharedFile < 0 && name.isEmpty && sysvSegment < 0 || continued(at: end, to: next.end).filePage == next.filePage)
    }
}

/// One address space: its page tables' root and its mappings. A process has one; a vfork
/// child shares its parent's until it execs or exits.
final class Memory {
    let root: PhysicalAddress
    /// Tells address spaces apart for private futexes (never reused).
    let serial: UInt64
    nonisolated(unsafe) static var lastSerial: UInt64 = 0
    var regions: [Region] = []
    /// Top-down mmap allocation starts below this (under the stack, randomized).
    var mmapTop: UInt64 = 0
    var brkStart: UInt64 = 0
    var brkCurrent: UInt64 = 0
    /// Processes using it (a vfork child and its parent: 2).
    var users = 1

    init(root: PhysicalAddress) {
        self.root = root
        Memory.lastSerial &+= 1
        serial = Memory.lastSerial
    }

    /// The address space in CR3: the running thread's process's.
    nonisolated(unsafe) static var current = Memory(root: PageTable.root)

    /// An empty address space with the kernel's mappings.
    static func make() throws(Errno) -> Memory {
        guard PhysicalMemory.canGrantAppObject, let root = PageTable.makeRoot() else { throw .ENOMEM }
        return Memory(root: root)
    }

    /// Makes this the address space the CPU uses.
    func activate() {
        Memory.current = self
        PageTable.activate(root)
    }

    /// Frees its frames and page tables once no process uses it (`users` is 0). It must not
    /// be in CR3 (`Scheduler.retire` waits for a switch).
    func free() {
        // The entries are read, not cleared: the tables go as a whole, and on pvm every
        // write to a table the hypervisor shadows is a trap.
        for r in regions {
            try? PageTable.forEachEntry(from: r.start, to: r.end, in: root) { _, e throws(Errno) in
                let entry = e.pointee
                if entry & (PageTable.present | PageTable.retained) != 0 && entry & PageTable.borrowed == 0 {
                    AddressSpace.release(r, PhysicalAddress(entry & PageTable.frameMask), dirty: entry & PageTable.dirty != 0)
                }
            }
        }
        regions = []
        PageTable.freeTables(root)
    }
}

/// The running process's mappings (`Memory.current`). Memory is backed eagerly: every
/// accessible page has a frame from the moment it is mapped, because on pvm an exception
/// while app code runs lands on the app's stack, over its red zone (PVM.md) — so the app
/// must never page-fault in normal operation. PROT_NONE ranges (reservations) get frames
/// only when they become accessible.
enum AddressSpace {
    static let pageSize: UInt64 = 4096

    static var regions: [Region] {
        _read { yield Memory.current.regions }
        _modify { yield &Memory.current.regions }
    }
    static var mmapTop: UInt64 {
        get { Memory.current.mmapTop }
        set { Memory.current.mmapTop = newValue }
    }
    static var brkStart: UInt64 {
        get { Memory.current.brkStart }
        set { Memory.current.brkStart = newValue }
    }
    static var brkCurrent: UInt64 {
        get { Memory.current.brkCurrent }
        set { Memory.current.brkCurrent = newValue }
    }

    /// Linux's default vm.max_map_count: mappings the app may have.
    static let maxRegions = 65530

    /// ENOMEM before a call that adds `added` regions once the app would have more than
    /// Linux's max_map_count, or when the list would have to grow (doubling) beyond what
    /// memory leaves the kernel: the list is kernel memory the app asks for. A call that
    /// adds none (munmap of whole regions) always has room: freeing memory never needs more.
    static func checkRoomForRegions(adding added: Int) throws(Errno) {
        guard added > 0 else { return }
        guard regions.count + added <= maxRegions,
              PhysicalMemory.canGrow(count: regions.count, capacity: regions.capacity, by: added,
                                     stride: MemoryLayout<Region>.stride) else { throw .ENOMEM }
    }

    /// How many regions cutting at `start` and `end` would add: one per cut strictly inside
    /// a region.
    static func splits(_ start: UInt64, _ end: UInt64) -> Int {
        (cutsRegion(at: start) ? 1 : 0) + (end != start && cutsRegion(at: end) ? 1 : 0)
    }

    /// Whether `address` lies strictly inside a region (binary search: regions are sorted
    /// and disjoint).
    private static func cutsRegion(at address: UInt64) -> Bool {
        var low = 0, high = regions.count
        while low < high {
            let middle = low + (high - low) / 2
            if regions[middle].start < address { low = middle + 1 } else { high = middle }
        }
        // regions[low - 1] is the last one starting below `address`.
        return low > 0 && address < regions[low - 1].end
    }

    /// A list far larger than its regions (after many were unmapped) gives memory back,
    /// when the smaller copy fits beside the kernel's reserve (else the next unmap tries).
    static func shrinkRegionListIfSparse() {
        guard regions.capacity > 256, regions.count < regions.capacity / 4 else { return }
        let bytes = regions.count * 2 * MemoryLayout<Region>.stride
        guard PhysicalMemory.canGrantApp(bytes: bytes) else { return }
        var compact: [Region] = []
        compact.reserveCapacity(regions.count * 2)
        compact.append(contentsOf: regions)
        regions = compact
    }

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
        // (Subtracting: `userStart + length` would wrap for a length near 2^64.)
        guard candidateEnd >= PageTable.userStart, candidateEnd - PageTable.userStart >= length else { return nil }
        return candidateEnd - length
    }

    /// Maps [start, start+length) with fresh zeroed frames (none for PROT_NONE) and records the
    /// region. The range must be free.
    static func map(_ start: UInt64, _ length: UInt64, _ protection: MmapProtection, _ kind: Region.Kind) throws(Errno) {
        try map(Region(start: start, end: start + length, protection: protection, kind: kind))
    }

    /// Backs `region` (its shared file's frames, or fresh zeroed ones; none for PROT_NONE)
    /// and records it. The range must be free.
    static func map(_ region: Region) throws(Errno) {
        let pages = Int((region.end - region.start) / pageSize)
        guard region.protection.isEmpty || region.sharedFile >= 0 || PhysicalMemory.canGrantApp(pages: pages) else { throw .ENOMEM }
        if !region.protection.isEmpty {
            do { try back(region, region.start, region.end) } catch {
                releaseFrames(region, region.start, region.end)
                throw error
            }
        }
        insert(region)
    }

    /// Maps shared region `r` over `frames` (one per page, each counted once more in
    /// `PhysicalMemory.share`) and records it. The range must be free.
    static func map(_ r: Region, sharing frames: [PhysicalAddress]) throws(Errno) {
        let flags = PageTable.flags(for: r.protection) | PageTable.dirty
        var address = r.start
        for frame in frames where address < r.end {
            do { try PageTable.map(address, frame, flags) } catch {
                releaseFrames(r, r.start, address)
                throw error
            }
            PhysicalMemory.share(frame)
            address += pageSize
        }
        insert(r)
    }

    /// Maps private file region `r` with its first `pages` pages borrowed straight from the
    /// image at `physical` (page aligned), the rest fresh zero frames, and records it. The
    /// region must not allow writing; the range must be free.
    static func map(_ r: Region, borrowing pages: Int, at physical: PhysicalAddress) throws(Errno) {
        let flags = PageTable.flags(for: r.protection) | PageTable.borrowed
        let borrowedEnd = min(r.end, r.start + UInt64(pages) * pageSize)
        var address = r.start
        do throws(Errno) {
            while address < borrowedEnd {
                try PageTable.map(address, physical + (address - r.start), flags)
                address += pageSize
            }
            if !r.protection.isEmpty { try back(r, borrowedEnd, r.end) }
        } catch {
            releaseFrames(r, r.start, r.end)
            throw error
        }
        insert(r)
    }

    /// Gives a borrowed page a frame of its own with the same bytes, before it may be written.
    static func privatize(_ address: UInt64) throws(Errno) {
        guard PageTable.isBorrowed(address), let source = PageTable.frame(address),
              let e = try PageTable.leaf(address, create: false) else { return }
        guard let frame = PhysicalMemory.allocateAppPage() else { throw .ENOMEM }
        directMap(frame).copyMemory(from: directMap(source), byteCount: Int(pageSize))
        e.pointee = frame.raw | (e.pointee & ~(PageTable.frameMask | PageTable.borrowed)) | PageTable.dirty
        PageTable.flush(address, pages: 1)
    }

    /// Gives every page of [start, end) in `r` that has no frame one, with `r`'s protection.
    private static func back(_ r: Region, _ start: UInt64, _ end: UInt64) throws(Errno) {
        let flags = PageTable.flags(for: r.protection)
        var address = start
        while address < end {
            if PageTable.frame(address) == nil {
                if r.sharedFile >= 0 {
                    let frame = try SharedFiles.mapPage(r.sharedFile, r.continued(at: address, to: end).filePage)
                    do { try PageTable.map(address, frame, flags) } catch {
                        SharedFiles.release(r.sharedFile)
                        throw error
                    }
                } else {
                    guard let frame = PhysicalMemory.allocateAppPage() else { throw .ENOMEM }
                    do { try PageTable.map(address, frame, flags) } catch {
                        PhysicalMemory.free(frame)
                        throw error
                    }
                }
            }
            address += pageSize
        }
    }

    /// Records a region, keeping the list ordered by start.
    static func insert(_ region: Region) {
        var i = 0
        while i < regions.count && regions[i].start < region.start { i += 1 }
        regions.insert(region, at: i)
    }

    /// Unmaps [start, end) of `r`: its own frames are freed, a shared file's handed back.
    private static func releaseFrames(_ r: Region, _ start: UInt64, _ end: UInt64) {
        releaseFrames(r, start, end, in: PageTable.root)
        PageTable.flush(start, pages: Int((end - start) / pageSize))
    }

    /// Unmaps [start, end) of `r` in the tables under `root` (no TLB flush). Only the page
    /// tables that exist are visited: a huge reservation with little mapped costs little.
    static func releaseFrames(_ r: Region, _ start: UInt64, _ end: UInt64, in root: PhysicalAddress) {
        try? PageTable.forEachEntry(from: start, to: end, in: root) { _, e throws(Errno) in
            let entry = e.pointee
            guard entry & (PageTable.present | PageTable.retained) != 0 else { return }
            e.pointee = 0
            if entry & PageTable.borrowed == 0 {
                release(r, PhysicalAddress(entry & PageTable.frameMask), dirty: entry & PageTable.dirty != 0)
            }
        }
    }

    /// Stores `value` at `address` of `memory` (another process's, through its page tables
    /// and the direct map, or the running one's): EFAULT unless the 4 bytes lie in one
    /// present, writable user page.
    static func store(_ value: UInt32, at address: UInt64, in memory: Memory) throws(Errno) {
        if memory === Memory.current { return try UserMemory.store(value, address) }
        guard address & 0xfff <= 0xffc, address < PageTable.userEnd,
              let region = memory.regions.first(where: { $0.start <= address && address < $0.end }) else { throw .EFAULT }
        if region.protection.contains(.PROT_WRITE) { try breakCopyOnWrite(address & ~(pageSize - 1), in: memory.root) }
        guard let e = try PageTable.leaf(address, create: false, in: memory.root) else { throw .EFAULT }
        let needed = PageTable.present | PageTable.user | PageTable.writable
        guard e.pointee & needed == needed else { throw .EFAULT }
        e.pointee |= PageTable.dirty
        let frame = PhysicalAddress(e.pointee & PageTable.frameMask)
        directMap(frame + (address & 0xfff)).storeBytes(of: value.littleEndian, as: UInt32.self)
    }

    /// A write to copy-on-write page `address` of the running address space, which its
    /// region allows: the page gets a frame of its own (a copy, unless no other mapping
    /// shares the frame any more) and becomes writable. False if the region does not allow
    /// writing (the write is the app's fault); ENOMEM if no frame is left.
    static func breakCopyOnWrite(_ address: UInt64) throws(Errno) -> Bool {
        guard let r = region(containing: address), r.protection.contains(.PROT_WRITE) else { return false }
        try breakCopyOnWrite(address & ~(pageSize - 1), in: PageTable.root)
        arch_invlpg(address)
        return true
    }

    /// The same in the tables under `root` (no TLB flush; the caller checked the region).
    static func breakCopyOnWrite(_ page: UInt64, in root: PhysicalAddress) throws(Errno) {
        guard let e = try PageTable.leaf(page, create: false, in: root), e.pointee & PageTable.copyOnWrite != 0 else { return }
        let entry = e.pointee
        let frame = PhysicalAddress(entry & PageTable.frameMask)
        var flags = (entry & ~(PageTable.frameMask | PageTable.copyOnWrite)) | PageTable.writable
        if PhysicalMemory.isShared(frame) {
            guard let copy = PhysicalMemory.allocateAppPage() else { throw .ENOMEM }
            directMap(copy).copyMemory(from: directMap(frame), byteCount: Int(pageSize))
            PhysicalMemory.free(frame)  // one mapping fewer
            flags |= PageTable.dirty
            e.pointee = copy.raw | flags
        } else {
            e.pointee = frame.raw | flags
        }
    }

    /// A page of `r` lost its mapping: a shared file's frame goes back to the file, any
    /// other is freed (a private page never written is zero still; shared pages may have
    /// been written through another mapping).
    static func release(_ r: Region, _ frame: PhysicalAddress, dirty: Bool) {
        if r.sharedFile >= 0 {
            SharedFiles.release(r.sharedFile)
        } else {
            PhysicalMemory.free(frame, zeroed: !dirty && !r.sharedAnonymous)
        }
    }

    /// fork: a new address space with the running one's mappings. Private pages are copied
    /// (a page never written gets a fresh zero frame instead: no copy, and on a host that
    /// backs guest memory lazily, no host memory); shared ones (MAP_SHARED files and
    /// anonymous memory) and the image's pages are mapped, not copied.
    static func fork() throws(Errno) -> Memory {
        let child = try Memory.make()
        child.regions = regions
        child.mmapTop = mmapTop
        child.brkStart = brkStart
        child.brkCurrent = brkCurrent
        let copyOnWrite = Platform.kind == .native
        defer { if copyOnWrite { PageTable.reloadRoot() } }  // the parent's entries lost their write bit
        for r in regions {
            do { try copy(r, into: child.root, copyOnWrite: copyOnWrite) } catch {
                child.free()
                throw error
            }
        }
        return child
    }

    /// Copies `r`'s pages into the child's tables; `copyOnWrite` (the native platform): private
    /// pages are shared read-only by both and copied at the first write instead.
    private static func copy(_ r: Region, into childRoot: PhysicalAddress, copyOnWrite: Bool) throws(Errno) {
        // The child's page table for the current 2 MiB, found (made) once per table.
        var childTable: UnsafeMutablePointer<UInt64>? = nil
        var childTableBase = UInt64.max
        try PageTable.forEachEntry(from: r.start, to: r.end, in: PageTable.root) { address, e throws(Errno) in
            let entry = e.pointee
            guard entry & (PageTable.present | PageTable.retained) != 0 else { return }
            let frame = PhysicalAddress(entry & PageTable.frameMask)
            var childFrame = frame
            if entry & PageTable.borrowed != 0 {
                // the image's page (or the vDSO's): never freed, nothing to count
            } else if r.sharedFile >= 0 {
                SharedFiles.retainPage(r.sharedFile)
            } else if r.sharedAnonymous {
                PhysicalMemory.share(frame)
            } else if copyOnWrite {
                // Both processes map the frame read-only until one of them writes.
                PhysicalMemory.share(frame)
                e.pointee = PageTable.writeProtected(entry | PageTable.copyOnWrite)
            } else {
                guard let copy = PhysicalMemory.allocateAppPage() else { throw .ENOMEM }
                if entry & PageTable.dirty != 0 {
                    directMap(copy).copyMemory(from: directMap(frame), byteCount: Int(pageSize))
                }
                childFrame = copy
            }
            if address & ~0x1f_ffff != childTableBase {
                guard let first = try? PageTable.leaf(address, create: true, in: childRoot) else {
                    if childFrame != frame {
                        PhysicalMemory.free(childFrame, zeroed: entry & PageTable.dirty == 0)
                    } else if r.sharedFile >= 0 {
                        SharedFiles.release(r.sharedFile)
                    } else if entry & PageTable.borrowed == 0 {
                        PhysicalMemory.free(frame)  // a shared anonymous or copy-on-write frame
                    }
                    throw .ENOMEM
                }
                childTable = first - Int((address >> 12) & 0x1ff)
                childTableBase = address & ~0x1f_ffff
            }
            childTable![Int((address >> 12) & 0x1ff)] = childFrame.raw | (e.pointee & ~PageTable.frameMask)
        }
    }

    /// Splits regions so that `address` is a region boundary.
    private static func split(at address: UInt64) {
        for i in regions.indices where regions[i].start < address && address < regions[i].end {
            let upper = regions[i].continued(at: address, to: regions[i].end)
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
        for r in regions where r.start >= start && r.end <= end { releaseFrames(r, r.start, r.end) }
        regions.removeAll { $0.start >= start && $0.end <= end }
        shrinkRegionListIfSparse()
    }

    /// mprotect: ENOMEM if any page of the range is not mapped.
    static func protect(_ start: UInt64, _ length: UInt64, _ protection: MmapProtection) throws(Errno) {
        let end = start + length
        var covered = start
        for r in regions where r.end > start && r.start < end {
            if r.start > covered { throw .ENOMEM }
            if !r.mayWrite && protection.contains(.PROT_WRITE) { throw .EACCES }
            covered = r.end
        }
        guard covered >= end else { throw .ENOMEM }
        // A reservation made accessible needs a frame per page (eager backing): refused
        // before anything changes when memory cannot hold it, as Linux refuses a commit past
        // its limit (a JVM committing its heap then sees ENOMEM, not a later fault).
        if !protection.isEmpty {
            var needed: UInt64 = 0
            for r in regions where r.end > start && r.start < end && r.protection.isEmpty && r.sharedFile < 0 {
                needed += min(r.end, end) - max(r.start, start)
            }
            guard needed == 0 || PhysicalMemory.canGrantApp(pages: Int(needed / pageSize)) else { throw .ENOMEM }
        }
        split(at: start)
        split(at: end)
        let flags = PageTable.flags(for: protection)
        for i in regions.indices where regions[i].start >= start && regions[i].end <= end {
            // The pages that have entries (sparse: a reservation has few).
            try PageTable.forEachEntry(from: regions[i].start, to: regions[i].end, in: PageTable.root) { address, e throws(Errno) in
                guard e.pointee & (PageTable.present | PageTable.retained) != 0 else { return }
                if protection.contains(.PROT_WRITE) && e.pointee & PageTable.borrowed != 0 { try privatize(address) }
                e.pointee = PageTable.writeProtected(
                    (e.pointee & (PageTable.frameMask | PageTable.borrowed | PageTable.dirty | PageTable.copyOnWrite)) | flags)
            }
            regions[i].protection = protection
            // A reservation becoming accessible is backed now.
            if !protection.isEmpty { try back(regions[i], regions[i].start, regions[i].end) }
        }
        PageTable.flush(start, pages: Int(length / pageSize))
    }

    /// True if regions cover every page of [start, end) (an empty range is).
    static func isMapped(_ start: UInt64, _ end: UInt64) -> Bool {
        var address = start
        while address < end {
            guard let r = region(containing: address) else { return false }
            address = r.end
        }
        return true
    }

    /// The region holding `address` (binary search: regions are sorted and disjoint).
    static func region(containing address: UInt64) -> Region? {
        var low = 0, high = regions.count
        while low < high {
            let middle = low + (high - low) / 2
            if regions[middle].end <= address { low = middle + 1 } else { high = middle }
        }
        return low < regions.count && regions[low].start <= address ? regions[low] : nil
    }

    /// mremap of one whole or partial region.
    static func remap(_ old: UInt64, _ oldLength: UInt64, _ newLength: UInt64, mayMove: Bool) throws(Errno) -> UInt64 {
        guard let r = region(containing: old), old + oldLength <= r.end else { throw .EFAULT }
        if newLength <= oldLength {
            if newLength < oldLength { unmap(old + newLength, oldLength - newLength) }
            return old
        }
        let growth = newLength - oldLength
        // Lengths come from the app: a growth or a new end past 2^64 is simply no room.
        guard case (let grownEnd, false) = r.end.addingReportingOverflow(growth),
              case (_, false) = old.addingReportingOverflow(newLength) else { throw .ENOMEM }
        // Checked before anything moves: a refused growth leaves the mapping as it was.
        guard r.protection.isEmpty || r.sharedFile >= 0 || PhysicalMemory.canGrantApp(pages: Int(growth / pageSize))
        else { throw .ENOMEM }
        if old + oldLength == r.end && isFree(r.end, grownEnd) {
            let grown = r.continued(at: r.end, to: grownEnd)
            try map(grown)
            SysMemory.fillFromFile(grown)
            merge()
            return old
        }
        guard mayMove else { throw .ENOMEM }
        guard let destination = findFree(length: newLength) else { throw .ENOMEM }
        // Move the frames, then back the new tail.
        let flags = PageTable.flags(for: r.protection)
        // (The walk reads each upper entry afresh per 2 MiB: the destination's tables that a
        // move creates never change an entry it is using.)
        try PageTable.forEachEntry(from: old, to: old + oldLength, in: PageTable.root) { address, e throws(Errno) in
            if e.pointee & (PageTable.present | PageTable.retained) != 0 {
                try PageTable.move(address, to: destination + (address - old), flags)
            }
        }
        PageTable.flush(old, pages: Int(oldLength / pageSize))
        split(at: old)
        split(at: old + oldLength)
        regions.removeAll { $0.start >= old && $0.end <= old + oldLength }
        insert(r.continued(at: old, to: old + oldLength).relocated(to: destination))
        let grown = r.continued(at: old + oldLength, to: old + newLength).relocated(to: destination + oldLength)
        try map(grown)
        SysMemory.fillFromFile(grown)
        merge()
        return destination
    }

    /// Joins adjacent regions of the same kind and protection.
    private static func merge() {
        var i = 0
        while i + 1 < regions.count {
            if regions[i].joins(regions[i + 1]) {
                regions[i].end = regions[i + 1].end
                regions.remove(at: i + 1)
            } else {
                i += 1
            }
        }
    }

    /// MADV_DONTNEED: private pages read as zero afterwards; a shared file's pages and pages
    /// borrowed from the image keep the file's bytes (what Linux's refault from the page
    /// cache gives).
    static func discard(_ start: UInt64, _ length: UInt64) {
        var address = start
        while address < start + length {
            if let frame = PageTable.frame(address), !PageTable.isBorrowed(address),
               let r = region(containing: address), r.sharedFile < 0, !r.sharedAnonymous {
                if PhysicalMemory.isShared(frame), let fresh = PhysicalMemory.allocateAppPage(),
                   let e = try? PageTable.leaf(address, create: false) {
                    // Copy on write: the other process keeps the bytes; this page reads zeros.
                    e.pointee = fresh.raw | PageTable.flags(for: r.protection)
                    PhysicalMemory.free(frame)
                    arch_invlpg(address)
                } else {
                    directMap(frame).initializeMemory(as: UInt8.self, repeating: 0, count: Int(pageSize))
                }
            }
            address += pageSize
        }
    }
}
