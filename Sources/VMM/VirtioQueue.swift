import CKVM
import GuestABI

// Split virtqueues (virtio 1.x §2.7), the device side, over untrusted guest memory.
//
// Layout in guest memory (little-endian; `N` = queue size, a power of two ≤ 32768):
//
//   descriptor table (QueueDesc, 16-byte aligned), N × 16 bytes:
//     +0 addr u64   +8 len u32   +12 flags u16 (1 NEXT, 2 WRITE, 4 INDIRECT)   +14 next u16
//   driver area / avail ring (QueueDriver, 2-byte aligned), 6 + 2N bytes:
//     +0 flags u16 (1 NO_INTERRUPT)   +2 idx u16   +4 ring[N] u16   +4+2N used_event u16
//   device area / used ring (QueueDevice, 4-byte aligned), 6 + 8N bytes:
//     +0 flags u16 (1 NO_NOTIFY)   +2 idx u16   +4 ring[N] {id u32, len u32}   +4+8N avail_event u16
//
// used_event / avail_event exist only with VIRTIO_RING_F_EVENT_IDX, but the areas are
// validated with them either way (a driver allocates them; the spec sizes the rings so).
//
// Trust: every value read from the rings is untrusted and read exactly once into a local
// before it is checked and used (the guest may change the rings concurrently). Buffer
// addresses are resolved through `GuestMemory.bytes`, which bounds-checks them against one
// region; a buffer straddling two regions is rejected (the apus guest's RAM is one region).
//
// Failure policy:
//   - A bad descriptor chain (next index out of range, a loop / chain longer than N,
//     INDIRECT (never offered), a device-readable descriptor after a device-writable one,
//     a descriptor of the wrong direction for the queue, a buffer outside guest memory or
//     writable memory, a total length over 4 GiB - 1) fails that request only: `pop`
//     returns `.bad` and the caller returns the head with used length 0.
//   - Ring corruption that leaves no head to return (an avail ring entry ≥ N, or avail idx
//     more than N ahead of the device) is unrecoverable: `.broken`, and the transport sets
//     DEVICE_NEEDS_RESET (§2.1.2) and stops processing until the driver resets the device.
//
// Memory ordering: the guest driver runs on another CPU. avail idx is loaded with acquire
// semantics before the ring entries it covers are read; used idx is stored with release
// semantics after the used entries are written. The event-index checks (store used idx →
// load used_event; store avail_event → load avail idx) need a full fence in between, else
// both sides can miss each other's update and a notification or interrupt is lost.

/// Why a descriptor chain was refused.
public enum VirtqueueChainError: Equatable, Sendable {
    case nextOutOfRange(UInt16)
    case tooLong
    case indirect
    case readableAfterWritable
    case wrongDirection
    case outsideMemory(address: UInt64, length: UInt32)
    case lengthOverflow
    case tooLarge
    case tooSmall
}

/// One descriptor chain, resolved to host memory. Reused between pops (no allocation per
/// request once its arrays have grown).
public struct VirtioChain {
    public var head: UInt16 = 0
    /// Device-readable buffers, in chain order.
    public var readable: [UnsafeRawBufferPointer] = []
    /// Device-writable buffers, in chain order (all after the readable ones).
    public var writable: [UnsafeMutableRawBufferPointer] = []
    public var readableLength = 0
    public var writableLength = 0

    public init() {}

    mutating func clear() {
        readable.removeAll(keepingCapacity: true)
        writable.removeAll(keepingCapacity: true)
        readableLength = 0
        writableLength = 0
    }

    /// Copies `bytes` into the writable buffers from `offset` on; returns how many fit.
    @discardableResult
    public func scatter(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        var skip = offset
        var copied = 0
        for segment in writable {
            if copied == bytes.count { break }
            if skip >= segment.count { skip -= segment.count; continue }
            let n = min(segment.count - skip, bytes.count - copied)
            (segment.baseAddress! + skip).copyMemory(from: bytes.baseAddress! + copied, byteCount: n)
            copied += n
            skip = 0
        }
        return copied
    }

    /// Copies the readable buffers' bytes into `buffer` (at most its size); returns the count.
    public func gather(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        var copied = 0
        for segment in readable {
            let n = min(segment.count, buffer.count - copied)
            if n <= 0 { break }
            (buffer.baseAddress! + copied).copyMemory(from: segment.baseAddress!, byteCount: n)
            copied += n
        }
        return copied
    }
}

/// The direction a queue's buffers must have.
public enum VirtqueueDirection: Sendable {
    /// Only device-readable descriptors (e.g. virtio-net's transmitq).
    case deviceReads
    /// Only device-writable descriptors (e.g. virtio-net's receiveq).
    case deviceWrites
    /// Readable then writable (request/response queues).
    case both
}

/// The ring areas a driver configured for one queue, before they are checked.
public struct VirtqueueLayout: Equatable, Sendable {
    public var size: UInt16
    public var descriptors: UInt64
    public var driverArea: UInt64
    public var deviceArea: UInt64

    public init(size: UInt16, descriptors: UInt64, driverArea: UInt64, deviceArea: UInt64) {
        self.size = size
        self.descriptors = descriptors
        self.driverArea = driverArea
        self.deviceArea = deviceArea
    }
}

public final class SplitVirtqueue {
    public enum Pop {
        /// No buffer available.
        case empty
        /// `chain` holds the next request.
        case chain
        /// The chain at `head` is invalid; return it with used length 0.
        case bad(head: UInt16, VirtqueueChainError)
        /// The rings are corrupt beyond one request: the device needs a reset.
        case broken(String)
    }

    public let size: UInt16
    public let direction: VirtqueueDirection
    public let eventIndex: Bool
    let memory: GuestMemory
    // Host views of the ring areas, resolved and bounds-checked once when the queue is made
    // ready (guest memory regions never move while the VM exists).
    let descriptorTable: UnsafeRawPointer
    let avail: UnsafeRawPointer
    let used: UnsafeMutableRawPointer

    /// The next avail ring slot the device will read (free-running, mod 2^16).
    public private(set) var lastAvail: UInt16 = 0
    /// The next used ring slot the device will fill (free-running); published in `publish`.
    public private(set) var nextUsed: UInt16 = 0
    /// used idx at the previous interrupt decision (event-index suppression).
    private var signalledUsed: UInt16 = 0
    private var signalledUsedValid = false

    /// Checks a driver's queue layout (§2.7: size a power of two, descriptor table 16-byte,
    /// avail 2-byte and used 4-byte aligned, every area inside guest memory, the used ring
    /// writable). nil when any check fails.
    public init?(layout: VirtqueueLayout, maxSize: UInt16, memory: GuestMemory, eventIndex: Bool,
                 direction: VirtqueueDirection) {
        let n = UInt64(layout.size)
        guard layout.size > 0, layout.size <= maxSize, layout.size & (layout.size - 1) == 0,
              layout.descriptors & 15 == 0, layout.driverArea & 1 == 0, layout.deviceArea & 3 == 0,
              let d = memory.bytes(at: PhysicalAddress(layout.descriptors), count: 16 * n),
              let a = memory.bytes(at: PhysicalAddress(layout.driverArea), count: 6 + 2 * n),
              let u = memory.bytes(at: PhysicalAddress(layout.deviceArea), count: 6 + 8 * n, writable: true)
        else { return nil }
        size = layout.size
        self.memory = memory
        self.eventIndex = eventIndex
        self.direction = direction
        descriptorTable = UnsafeRawPointer(d.baseAddress!)
        avail = UnsafeRawPointer(a.baseAddress!)
        used = u.baseAddress!
        // A freshly enabled queue starts at index 0 on both sides (the driver zeroes its
        // rings before QueueReady; after a reset it sets them up again).
        nextUsed = 0
        lastAvail = 0
    }

    // MARK: ring fields

    /// avail->idx, acquire: ring entries below it are visible after this load.
    var availIndex: UInt16 { UInt16(littleEndian: ckvm_load_acquire_u16(avail + 2)) }
    var availFlags: UInt16 { UInt16(littleEndian: avail.loadUnaligned(fromByteOffset: 0, as: UInt16.self)) }
    var usedEvent: UInt16 {
        UInt16(littleEndian: ckvm_load_acquire_u16(avail + 4 + 2 * Int(size)))
    }
    private func availRing(_ slot: UInt16) -> UInt16 {
        UInt16(littleEndian: avail.loadUnaligned(fromByteOffset: 4 + 2 * Int(slot & (size - 1)), as: UInt16.self))
    }

    /// Whether the driver has made buffers available that the device has not taken yet.
    public var hasAvailable: Bool { availIndex != lastAvail }

    // MARK: popping chains

    /// Takes the next available chain and resolves it into `chain` (see the failure policy
    /// at the top of the file).
    public func pop(into chain: inout VirtioChain) -> Pop {
        let availIdx = availIndex
        let pending = availIdx &- lastAvail
        if pending == 0 { return .empty }
        guard pending <= size else {
            return .broken("avail idx \(availIdx) is \(pending) entries ahead of the device (queue size \(size))")
        }
        let head = availRing(lastAvail)
        guard head < size else {
            return .broken("avail ring entry \(lastAvail & (size - 1)) names descriptor \(head) (queue size \(size))")
        }
        lastAvail &+= 1
        chain.clear()
        chain.head = head
        if let error = resolve(head: head, into: &chain) {
            chain.clear()
            return .bad(head: head, error)
        }
        return .chain
    }

    /// Puts the last popped chain back (the device could not use it now, e.g. no frame to
    /// receive after all). Only valid right after a `.chain` pop, before any `pushUsed`.
    public func unpop() { lastAvail &-= 1 }

    private func resolve(head: UInt16, into chain: inout VirtioChain) -> VirtqueueChainError? {
        var index = head
        var count: UInt16 = 0
        var total: UInt64 = 0
        var seenWritable = false
        while true {
            // A chain visits at most `size` descriptors; more means a loop.
            guard count < size else { return .tooLong }
            count += 1
            let base = Int(index) * 16
            let address = UInt64(littleEndian: descriptorTable.loadUnaligned(fromByteOffset: base, as: UInt64.self))
            let length = UInt32(littleEndian: descriptorTable.loadUnaligned(fromByteOffset: base + 8, as: UInt32.self))
            let flags = UInt16(littleEndian: descriptorTable.loadUnaligned(fromByteOffset: base + 12, as: UInt16.self))
            let next = UInt16(littleEndian: descriptorTable.loadUnaligned(fromByteOffset: base + 14, as: UInt16.self))

            if flags & VirtioRing.descriptorIndirect != 0 { return .indirect }
            let writes = flags & VirtioRing.descriptorWrite != 0
            switch direction {
            case .deviceReads: if writes { return .wrongDirection }
            case .deviceWrites: if !writes { return .wrongDirection }
            case .both: if !writes && seenWritable { return .readableAfterWritable }
            }
            seenWritable = seenWritable || writes
            total += UInt64(length)
            guard total <= UInt64(UInt32.max) else { return .lengthOverflow }
            if length > 0 {
                guard let bytes = memory.bytes(at: PhysicalAddress(address), count: UInt64(length), writable: writes) else {
                    return .outsideMemory(address: address, length: length)
                }
                if writes {
                    chain.writable.append(bytes)
                    chain.writableLength += Int(length)
                } else {
                    chain.readable.append(UnsafeRawBufferPointer(bytes))
                    chain.readableLength += Int(length)
                }
            }
            guard flags & VirtioRing.descriptorNext != 0 else { return nil }
            guard next < size else { return .nextOutOfRange(next) }
            index = next
        }
    }

    // MARK: returning buffers

    /// Writes a used ring entry; the driver sees it after `publish()`.
    public func pushUsed(head: UInt16, length: UInt32) {
        let entry = 4 + 8 * Int(nextUsed & (size - 1))
        used.storeBytes(of: UInt32(head).littleEndian, toByteOffset: entry, as: UInt32.self)
        used.storeBytes(of: length.littleEndian, toByteOffset: entry + 4, as: UInt32.self)
        nextUsed &+= 1
    }

    /// Publishes every pushed entry with one used idx store and says whether the driver
    /// wants an interrupt for them: with EVENT_IDX when the new used idx passed used_event
    /// since the previous decision (§2.7.10), else unless avail flags say NO_INTERRUPT.
    public func publish() -> Bool {
        let old = signalledUsed
        let new = nextUsed
        ckvm_store_release_u16(used + 2, new.littleEndian)
        // used idx store → used_event load: a full fence, else a driver that just re-armed
        // used_event could be missed.
        ckvm_fence_seq_cst()
        let valid = signalledUsedValid
        signalledUsed = new
        signalledUsedValid = true
        if new == old && valid { return false }
        if eventIndex {
            // The first decision after setup has no `old` to compare with: interrupt.
            return !valid || VirtioRing.needsEvent(event: usedEvent, new: new, old: old)
        }
        return availFlags & VirtioRing.availNoInterrupt == 0
    }

    /// Asks the driver to notify when it adds buffers past what the device has taken
    /// (avail_event = last avail index with EVENT_IDX; used flags 0 otherwise). Returns true
    /// if buffers arrived meanwhile: the caller must process them (no notification will come).
    public func enableNotifications() -> Bool {
        if eventIndex {
            ckvm_store_release_u16(used + 4 + 8 * Int(size), lastAvail.littleEndian)
        } else {
            ckvm_store_release_u16(used, 0)
        }
        // avail_event store → avail idx load (see the top of the file).
        ckvm_fence_seq_cst()
        return hasAvailable
    }

    /// Without EVENT_IDX: tells the driver not to notify while the device is processing
    /// anyway (VRING_USED_F_NO_NOTIFY). With EVENT_IDX nothing is needed: avail_event is
    /// simply not advanced until `enableNotifications`.
    public func disableNotifications() {
        if !eventIndex { ckvm_store_release_u16(used, VirtioRing.usedNoNotify.littleEndian) }
    }
}

/// Constants and the event-index rule of split rings.
public enum VirtioRing {
    public static let descriptorNext: UInt16 = 1
    public static let descriptorWrite: UInt16 = 2
    public static let descriptorIndirect: UInt16 = 4
    public static let availNoInterrupt: UInt16 = 1
    public static let usedNoNotify: UInt16 = 1

    /// vring_need_event: true when `event` lies in [old, new) modulo 2^16, i.e. the index
    /// moved from `old` to `new` past the one the other side asked to be told about.
    @inlinable
    public static func needsEvent(event: UInt16, new: UInt16, old: UInt16) -> Bool {
        (new &- event &- 1) < (new &- old)
    }
}
