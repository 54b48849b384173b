import GuestABI
import KernelArch
import LinuxABI

/// The one address space: four-level x86-64 page tables rooted at CR3. The upper half (kernel
/// and direct map) was built before the kernel ran; this code manages the lower half, the
/// app's, with 4 KiB pages.
///
/// Entry bits used: P(0) W(1) U(2) PS(7) NX(63), and two software bits: `retained`(9), a page
/// made PROT_NONE keeps its frame in a not-present entry so its contents survive mprotect;
/// `borrowed`(11), the frame is not the page's own but a page of the read-only image (a file
/// mapped straight from it): never freed, never writable, copied before the page may be
/// written (`AddressSpace.privatize`).
enum PageTable {
    static let present: UInt64 = 1 << 0
    static let writable: UInt64 = 1 << 1
    static let user: UInt64 = 1 << 2
    static let huge: UInt64 = 1 << 7
    static let retained: UInt64 = 1 << 9
    static let borrowed: UInt64 = 1 << 11
    static let noExecute: UInt64 = 1 << 63
    static let frameMask: UInt64 = 0x000f_ffff_ffff_f000

    /// End of the app's part of the address space (exclusive: the kernel's PML4 slot starts
    /// there) and the lowest address app mappings may use.
    static let userEnd: UInt64 = GuestABI.kernelRegionStart
    static let userStart: UInt64 = 0x1_0000

    static let accessed: UInt64 = 1 << 5
    /// Set by the CPU at a write through the entry, and by the kernel when it writes a
    /// page's frame through the direct map: a private page without it was never written
    /// and is still all zeros (fork gives the child a fresh frame instead of a copy).
    static let dirty: UInt64 = 1 << 6

    /// The root in CR3 now: the running process's page tables (see `Memory`).
    nonisolated(unsafe) static var rootAddress: PhysicalAddress? = nil
    /// The boot page tables: their kernel slot (PML4 entry 255 and up) is every address
    /// space's (`makeRoot`).
    nonisolated(unsafe) static var bootRoot = PhysicalAddress(0)

    static var root: PhysicalAddress {
        if let r = rootAddress { return r }
        let r = PhysicalAddress(arch_read_cr3() & frameMask)
        rootAddress = r
        bootRoot = r
        return r
    }

    /// The PML4 slots of the app's half: [0, kernelSlot).
    static let kernelSlot = Int(GuestABI.kernelRegionStart >> 39)

    static func clearAppRegion() {
        let pml4 = directMap(root).assumingMemoryBound(to: UInt64.self)
        for i in 0..<kernelSlot { pml4[i] = 0 }
        reloadRoot()
    }

    /// A new, empty app half with the kernel's part of the boot tables (shared: kernel
    /// mappings made later through any root are in all of them).
    static func makeRoot() -> PhysicalAddress? {
        _ = root
        guard let page = PhysicalMemory.allocatePage() else { return nil }
        let source = table(bootRoot), target = table(page)
        for i in kernelSlot..<512 { target[i] = source[i] }
        return page
    }

    /// Makes `newRoot` the address space the CPU uses.
    static func activate(_ newRoot: PhysicalAddress) {
        guard newRoot != root else { return }
        rootAddress = newRoot
        reloadRoot()
    }

    /// Writes CR3 (the TLB is flushed). On pvm the hypervisor interprets the guest after a
    /// CR3 write until an iretq, and its interpreter cannot run SSE: pvm_write_cr3 irets.
    static func reloadRoot() {
        if Platform.kind == .pvm { pvm_write_cr3(root.raw) } else { arch_write_cr3(root.raw) }
    }

    /// Frees the app half's table pages under `root` (its pages' frames were released
    /// before) and, unless it is the boot root, the root itself. `root` must not be in CR3.
    static func freeTables(_ root: PhysicalAddress) {
        let pml4 = table(root)
        for i in 0..<kernelSlot where pml4[i] & present != 0 {
            let pdpt = table(PhysicalAddress(pml4[i] & frameMask))
            for j in 0..<512 where pdpt[j] & present != 0 && pdpt[j] & huge == 0 {
                let pd = table(PhysicalAddress(pdpt[j] & frameMask))
                for k in 0..<512 where pd[k] & present != 0 && pd[k] & huge == 0 {
                    PhysicalMemory.free(PhysicalAddress(pd[k] & frameMask))
                }
                PhysicalMemory.free(PhysicalAddress(pdpt[j] & frameMask))
            }
            PhysicalMemory.free(PhysicalAddress(pml4[i] & frameMask))
            pml4[i] = 0
        }
        if root != bootRoot { PhysicalMemory.free(root) }
    }

    private static func table(_ p: PhysicalAddress) -> UnsafeMutablePointer<UInt64> {
        directMap(p).assumingMemoryBound(to: UInt64.self)
    }

    /// The leaf entry for `address`, creating intermediate tables when `create` is set.
    static func leaf(_ address: UInt64, create: Bool) throws(Errno) -> UnsafeMutablePointer<UInt64>? {
        try leaf(address, create: create, in: root)
    }

    /// The leaf entry for `address` in the tables under `tablesRoot`.
    static func leaf(_ address: UInt64, create: Bool, in tablesRoot: PhysicalAddress) throws(Errno) -> UnsafeMutablePointer<UInt64>? {
        var current = table(tablesRoot)
        for level in stride(from: 3, through: 1, by: -1) {
            let index = Int((address >> UInt64(12 + 9 * level)) & 0x1ff)
            var entry = current[index]
            if entry & present == 0 {
                guard create else { return nil }
                guard let page = PhysicalMemory.allocatePage() else { throw .ENOMEM }
                entry = page.raw | present | writable | user
                current[index] = entry
            }
            if entry & huge != 0 { return nil }  // never in the user half
            current = table(PhysicalAddress(entry & frameMask))
        }
        return current + Int((address >> 12) & 0x1ff)
    }

    /// Entry bits for a user page with the given protection.
    static func flags(for protection: MmapProtection) -> UInt64 {
        if protection.isEmpty { return retained | user }
        var f = present | user
        if protection.contains(.PROT_WRITE) { f |= writable }
        if !protection.contains(.PROT_EXEC) { f |= noExecute }
        return f
    }

    static func map(_ address: UInt64, _ frame: PhysicalAddress, _ entryFlags: UInt64) throws(Errno) {
        try map(address, frame, entryFlags, in: root)
    }

    static func map(_ address: UInt64, _ frame: PhysicalAddress, _ entryFlags: UInt64, in tablesRoot: PhysicalAddress) throws(Errno) {
        guard let e = try leaf(address, create: true, in: tablesRoot) else { throw .ENOMEM }
        e.pointee = frame.raw | entryFlags
    }

    /// The frame behind a user page, present or retained.
    static func frame(_ address: UInt64) -> PhysicalAddress? {
        guard let e = try? leaf(address, create: false), e.pointee & (present | retained) != 0 else { return nil }
        return PhysicalAddress(e.pointee & frameMask)
    }

    /// Removes a page's mapping and returns its frame if the page owned it (not borrowed).
    static func unmap(_ address: UInt64) -> PhysicalAddress? { unmap(address, in: root)?.frame }

    /// The same in the tables under `tablesRoot`, with whether the entry was dirty.
    static func unmap(_ address: UInt64, in tablesRoot: PhysicalAddress) -> (frame: PhysicalAddress, dirty: Bool)? {
        guard let e = try? leaf(address, create: false, in: tablesRoot), e.pointee & (present | retained) != 0 else { return nil }
        let entry = e.pointee
        e.pointee = 0
        return entry & borrowed != 0 ? nil : (PhysicalAddress(entry & frameMask), entry & dirty != 0)
    }

    /// True if the page maps a borrowed image page.
    static func isBorrowed(_ address: UInt64) -> Bool {
        guard let e = try? leaf(address, create: false) else { return false }
        return e.pointee & (present | retained) != 0 && e.pointee & borrowed != 0
    }

    /// Moves a page's entry (frame and every bit) to `to`, whose page must be unmapped.
    static func move(_ from: UInt64, to: UInt64, _ entryFlags: UInt64) throws(Errno) {
        guard let e = try? leaf(from, create: false), e.pointee & (present | retained) != 0 else { return }
        let entry = e.pointee
        try map(to, PhysicalAddress(entry & frameMask), entryFlags | (entry & (borrowed | dirty)))
        e.pointee = 0
    }

    /// New protection bits for a mapped page; its frame, `borrowed` and `dirty` stay.
    static func protect(_ address: UInt64, _ entryFlags: UInt64) {
        guard let e = try? leaf(address, create: false), e.pointee & (present | retained) != 0 else { return }
        e.pointee = (e.pointee & (frameMask | borrowed | dirty)) | entryFlags
    }

    /// Invalidates the TLB for a range: page by page for small ranges, else a CR3 reload.
    /// (Both trap to the hypervisor on pvm.)
    static func flush(_ start: UInt64, pages: Int) {
        if pages <= 16 {
            for i in 0..<pages { arch_invlpg(start + UInt64(i) * 4096) }
        } else {
            reloadRoot()
        }
    }

    /// True when every page of [address, address+length) is present, user-accessible and,
    /// when `write` is set, writable.
    static func isAccessible(_ address: UInt64, length: UInt64, write: Bool) -> Bool {
        if length == 0 { return true }
        let (last, overflow) = address.addingReportingOverflow(length - 1)
        guard !overflow, last < userEnd else { return false }
        var page = address & ~0xfff
        while page <= last {
            guard let e = try? leaf(page, create: false) else { return false }
            let v = e.pointee
            if v & (present | user) != present | user { return false }
            if write && v & writable == 0 { return false }
            page += 4096
        }
        return true
    }
}

/// Checked access to the app's memory. The kernel shares the app's address space, so a
/// validated user address is dereferenced directly; validation goes through the page tables,
/// never through a fault (DESIGN.md: a bad pointer is EFAULT).
enum UserMemory {
    static func readable(_ address: UInt64, _ length: Int) throws(Errno) -> UnsafeRawBufferPointer {
        guard length >= 0 else { throw .EINVAL }
        if length == 0 { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard PageTable.isAccessible(address, length: UInt64(length), write: false) else { throw .EFAULT }
        return UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(address)), count: length)
    }

    static func writable(_ address: UInt64, _ length: Int) throws(Errno) -> UnsafeMutableRawBufferPointer {
        guard length >= 0 else { throw .EINVAL }
        if length == 0 { return UnsafeMutableRawBufferPointer(start: nil, count: 0) }
        guard PageTable.isAccessible(address, length: UInt64(length), write: true) else { throw .EFAULT }
        return UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(bitPattern: UInt(address)), count: length)
    }

    static func load<T: FixedWidthInteger>(_ type: T.Type, _ address: UInt64) throws(Errno) -> T {
        try readable(address, MemoryLayout<T>.size).readLE(T.self, at: 0)
    }

    static func store<T: FixedWidthInteger>(_ value: T, _ address: UInt64) throws(Errno) {
        try writable(address, MemoryLayout<T>.size).writeLE(value, at: 0)
    }

    /// A NUL-terminated string of at most `limit` bytes (without the NUL).
    static func string(_ address: UInt64, limit: Int = 4096) throws(Errno) -> UnsafeRawBufferPointer {
        var length = 0
        var page = address & ~0xfff
        while true {
            guard PageTable.isAccessible(page, length: 1, write: false) else { throw .EFAULT }
            let pageEnd = page + 4096
            while address + UInt64(length) < pageEnd {
                if UnsafePointer<UInt8>(bitPattern: UInt(address) + UInt(length))!.pointee == 0 {
                    return UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: UInt(address)), count: length)
                }
                length += 1
                if length > limit { throw .ENAMETOOLONG }
            }
            page = pageEnd
        }
    }
}
