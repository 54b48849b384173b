import GuestABI
#if canImport(Glibc)
import Glibc
#endif

/// A guest-physical range backed by host memory. Every access from the VMM goes through
/// `bytes(at:count:)`, which bounds-checks the guest-supplied address and length: the guest
/// is untrusted and a bad request must fail that request, never the host.
public struct GuestMemoryRegion {
    public let guestBase: PhysicalAddress
    public let size: UInt64
    public let host: UnsafeMutableRawPointer
    /// False for host memory the VMM must never write, such as a store image mapped
    /// PROT_READ: a write there would fault the host, so `bytes(at:count:writable: true)`
    /// never returns it (a guest request to write there fails instead).
    public let writable: Bool

    public init(guestBase: PhysicalAddress, size: UInt64, host: UnsafeMutableRawPointer, writable: Bool = true) {
        self.guestBase = guestBase
        self.size = size
        self.host = host
        self.writable = writable
    }

    func contains(_ address: PhysicalAddress, count: UInt64) -> Bool {
        guard address.raw >= guestBase.raw else { return false }
        let offset = address.raw - guestBase.raw
        let (end, overflow) = offset.addingReportingOverflow(count)
        return !overflow && end <= size
    }
}

public struct GuestMemory {
    public private(set) var regions: [GuestMemoryRegion] = []

    public init() {}

    public mutating func add(_ region: GuestMemoryRegion) {
        regions.append(region)
    }

    /// Host bytes for [address, address+count), or nil if any part lies outside guest memory
    /// (with `writable`, outside its writable regions: use it for anything the VMM writes).
    public func bytes(at address: PhysicalAddress, count: UInt64, writable: Bool = false) -> UnsafeMutableRawBufferPointer? {
        for r in regions where r.contains(address, count: count) && (r.writable || !writable) {
            return UnsafeMutableRawBufferPointer(start: r.host + Int(address.raw - r.guestBase.raw), count: Int(count))
        }
        return nil
    }
}

/// An anonymous host mapping for guest RAM: reserved lazily (MAP_NORESERVE), never prefaulted.
/// Pages the guest never touches cost the host nothing and read as zero.
public final class AnonymousMapping {
    public let pointer: UnsafeMutableRawPointer
    public let size: Int

    public init?(size: Int) {
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let p, p != MAP_FAILED else { return nil }
        pointer = p
        self.size = size
    }

    deinit { munmap(pointer, size) }
}
