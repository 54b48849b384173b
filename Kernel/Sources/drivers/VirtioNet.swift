import GuestABI
import KernelArch

/// The virtio-net driver over virtio-mmio (virtio 1.x, split virtqueues), polled: the kernel
/// looks at the receive ring when it would wait or sleep and at network syscalls, so no
/// interrupt ever lands while app code runs (on pvm one would be delivered on the app's
/// stack). Features taken: VERSION_1, MAC, EVENT_IDX; no offloads (the stack computes every
/// checksum).
///
/// Memory, per queue (`size` ≤ 256 entries), physically contiguous and never freed:
///   page 0  descriptor table (16 bytes per entry)
///   page 1  available ring: flags u16, idx u16, ring[size] u16, used_event u16
///   page 2  used ring: flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16
/// and one 2 KiB buffer per descriptor (descriptor i always points at buffer i): the 12-byte
/// virtio_net_hdr, then one Ethernet frame (at most 1514 bytes for a 1500-byte MTU).
enum VirtioNet {
    /// virtio-mmio register offsets (virtio 1.x §4.2.2).
    private enum Register: UInt64 {
        case magic = 0x000, version = 0x004, deviceID = 0x008, deviceFeatures = 0x010,
             deviceFeaturesSelect = 0x014, driverFeatures = 0x020, driverFeaturesSelect = 0x024,
             queueSelect = 0x030, queueSizeMax = 0x034, queueSize = 0x038, queueReady = 0x044,
             queueNotify = 0x050, interruptStatus = 0x060, interruptAck = 0x064, status = 0x070,
             descriptorLow = 0x080, descriptorHigh = 0x084, driverLow = 0x090, driverHigh = 0x094,
             deviceLow = 0x0a0, deviceHigh = 0x0a4, config = 0x100
    }
    private static let statusAcknowledge: UInt32 = 1, statusDriver: UInt32 = 2, statusDriverOK: UInt32 = 4,
                       statusFeaturesOK: UInt32 = 8, statusFailed: UInt32 = 128
    private static let featureMAC: UInt64 = 1 << 5, featureEventIndex: UInt64 = 1 << 29,
                       featureVersion1: UInt64 = 1 << 32
    static let headerSize = 12
    static let bufferSize = 2048
    private static let descriptorWrite: UInt16 = 2

    /// One split virtqueue and the buffers its descriptors point at.
    struct Queue {
        var size: UInt16 = 0
        var rings: UInt64 = 0        // direct-map address of page 0
        var buffers: UInt64 = 0      // direct-map address of buffer 0
        var buffersPhysical: UInt64 = 0
        var availableIndex: UInt16 = 0   // next avail idx to publish (driver's copy)
        var usedSeen: UInt16 = 0         // used entries consumed so far
        var notifiedAt: UInt16 = 0       // avail idx at the last notify decision

        var descriptorTable: UInt64 { rings }
        var availableRing: UInt64 { rings + 4096 }
        var usedRing: UInt64 { rings + 8192 }
        func buffer(_ i: UInt16) -> UnsafeMutableRawPointer {
            UnsafeMutableRawPointer(bitPattern: UInt(buffers + UInt64(i) * UInt64(VirtioNet.bufferSize)))!
        }
        var usedIndex: UInt16 { arch_load16(usedRing + 2) }
        /// The device's avail_event: it wants a notify once avail idx passes it.
        var deviceWantsNotifyAfter: UInt16 { arch_load16(usedRing + 4 + 8 * UInt64(size)) }

        /// Makes descriptor `id` (buffer `id`, `length` bytes) available to the device.
        mutating func offer(_ id: UInt16, length: Int, deviceWrites: Bool) {
            let d = descriptorTable + UInt64(id) * 16
            arch_store64(d, buffersPhysical + UInt64(id) * UInt64(VirtioNet.bufferSize))
            arch_store32(d + 8, UInt32(length))
            arch_store16(d + 12, deviceWrites ? VirtioNet.descriptorWrite : 0)
            arch_store16(availableRing + 4 + 2 * UInt64(availableIndex % size), id)
            availableIndex &+= 1
        }

        /// Makes offered descriptors visible without deciding about a notify (a device that
        /// is already working through the ring picks them up on its own).
        func publishQuietly() { arch_store16(availableRing + 2, availableIndex) }

        /// Publishes offered descriptors; true when the device asked to be told (EVENT_IDX:
        /// its avail_event lies in the span published since the last notify).
        mutating func publish() -> Bool {
            arch_store16(availableRing + 2, availableIndex)
            arch_fence()
            let event = deviceWantsNotifyAfter
            let needed = (availableIndex &- event &- 1) < (availableIndex &- notifiedAt)
            notifiedAt = availableIndex
            return needed
        }

        /// The next used entry (descriptor id, bytes written), if the device returned one.
        mutating func nextUsed() -> (id: UInt16, length: Int)? {
            guard usedSeen != usedIndex else { return nil }
            let entry = usedRing + 4 + 8 * UInt64(usedSeen % size)
            let id = UInt16(truncatingIfNeeded: arch_load32(entry))
            let length = Int(arch_load32(entry + 4))
            usedSeen &+= 1
            return id < size ? (id, length) : nil
        }

        /// used_event: the device signals (an interrupt, which also ends a sleep in the
        /// apus VMM) when it uses entry `usedSeen`, i.e. the first one we have not seen.
        func wantSignalForNext() { arch_store16(availableRing + 4 + 2 * UInt64(size), usedSeen) }
    }

    nonisolated(unsafe) static var present = false
    nonisolated(unsafe) static var mac: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
    nonisolated(unsafe) private static var registers: UInt64 = 0
    nonisolated(unsafe) private static var receiveQueue = Queue()
    nonisolated(unsafe) private static var transmitQueue = Queue()
    /// Transmit descriptors not in the device's hands.
    nonisolated(unsafe) private static var freeTransmit: [UInt16] = []

    private static func read(_ r: Register) -> UInt32 { arch_load32(registers + r.rawValue) }
    private static func write(_ r: Register, _ value: UInt32) { arch_store32(registers + r.rawValue, value) }

    /// Finds the first virtio-net device among the boot info's slots and brings it up.
    static func start(_ info: NetworkInfo) {
        guard info.virtioSlotCount > 0, info.virtioBase != 0 else { return }
        for slot in 0..<UInt64(min(info.virtioSlotCount, 32)) {
            registers = UInt64(UInt(bitPattern: directMap(PhysicalAddress(info.virtioBase + slot * UInt64(info.virtioStride)))))
            guard read(.magic) == 0x7472_6976, read(.version) == 2, read(.deviceID) == 1 else { continue }
            if initialize() { return }
            write(.status, statusFailed)
        }
        registers = 0
    }

    private static func initialize() -> Bool {
        write(.status, 0)  // reset
        write(.status, statusAcknowledge)
        write(.status, statusAcknowledge | statusDriver)
        write(.deviceFeaturesSelect, 0)
        var offered = UInt64(read(.deviceFeatures))
        write(.deviceFeaturesSelect, 1)
        offered |= UInt64(read(.deviceFeatures)) << 32
        guard offered & featureVersion1 != 0 else { return false }
        let wanted = offered & (featureVersion1 | featureMAC | featureEventIndex)
        guard wanted & featureEventIndex != 0 else { return false }
        write(.driverFeaturesSelect, 0)
        write(.driverFeatures, UInt32(truncatingIfNeeded: wanted))
        write(.driverFeaturesSelect, 1)
        write(.driverFeatures, UInt32(truncatingIfNeeded: wanted >> 32))
        write(.status, statusAcknowledge | statusDriver | statusFeaturesOK)
        guard read(.status) & statusFeaturesOK != 0 else { return false }
        guard let rx = setUpQueue(0), let tx = setUpQueue(1) else { return false }
        receiveQueue = rx
        transmitQueue = tx
        if wanted & featureMAC != 0 {
            let c = registers + Register.config.rawValue
            let low = arch_load32(c), high = arch_load32(c + 4)
            mac = (UInt8(truncatingIfNeeded: low), UInt8(truncatingIfNeeded: low >> 8), UInt8(truncatingIfNeeded: low >> 16),
                   UInt8(truncatingIfNeeded: low >> 24), UInt8(truncatingIfNeeded: high), UInt8(truncatingIfNeeded: high >> 8))
        } else {
            let r = Random.next()
            mac = (0x52, 0x54, UInt8(truncatingIfNeeded: r), UInt8(truncatingIfNeeded: r >> 8),
                   UInt8(truncatingIfNeeded: r >> 16), UInt8(truncatingIfNeeded: r >> 24))
        }
        for id in 0..<receiveQueue.size { receiveQueue.offer(id, length: bufferSize, deviceWrites: true) }
        _ = receiveQueue.publish()
        freeTransmit = Array(0..<transmitQueue.size)
        write(.status, statusAcknowledge | statusDriver | statusFeaturesOK | statusDriverOK)
        present = true
        return true
    }

    private static func setUpQueue(_ index: UInt32) -> Queue? {
        write(.queueSelect, index)
        let maxSize = read(.queueSizeMax)
        guard maxSize > 0, read(.queueReady) == 0 else { return nil }
        var q = Queue()
        q.size = UInt16(min(maxSize, 256))
        guard let rings = PhysicalMemory.allocateContiguous(pages: 3),
              let buffers = PhysicalMemory.allocateContiguous(pages: Int(q.size) * bufferSize / 4096) else { return nil }
        q.rings = UInt64(UInt(bitPattern: directMap(rings)))
        q.buffers = UInt64(UInt(bitPattern: directMap(buffers)))
        q.buffersPhysical = buffers.raw
        UnsafeMutableRawPointer(bitPattern: UInt(q.rings))!.initializeMemory(as: UInt8.self, repeating: 0, count: 3 * 4096)
        write(.queueSize, UInt32(q.size))
        write(.descriptorLow, UInt32(truncatingIfNeeded: rings.raw))
        write(.descriptorHigh, UInt32(truncatingIfNeeded: rings.raw >> 32))
        write(.driverLow, UInt32(truncatingIfNeeded: rings.raw + 4096))
        write(.driverHigh, UInt32(truncatingIfNeeded: (rings.raw + 4096) >> 32))
        write(.deviceLow, UInt32(truncatingIfNeeded: rings.raw + 8192))
        write(.deviceHigh, UInt32(truncatingIfNeeded: (rings.raw + 8192) >> 32))
        write(.queueReady, 1)
        return q
    }

    /// Whether received frames are waiting (one shared-memory load; no exit).
    static var hasReceived: Bool { present && receiveQueue.usedSeen != receiveQueue.usedIndex }

    /// Hands every received frame to `deliver`, then gives the buffers back to the device.
    /// Returns how many frames there were.
    @discardableResult
    static func receive(_ deliver: (UnsafeRawBufferPointer) -> Void) -> Int {
        guard present else { return 0 }
        var count = 0
        while let (id, length) = receiveQueue.nextUsed() {
            if length > headerSize && length <= bufferSize {
                deliver(UnsafeRawBufferPointer(start: receiveQueue.buffer(id) + headerSize, count: length - headerSize))
            }
            receiveQueue.offer(id, length: bufferSize, deviceWrites: true)
            count += 1
        }
        if count > 0 && receiveQueue.publish() { write(.queueNotify, 0) }
        receiveQueue.wantSignalForNext()
        return count
    }

    /// Frames published to the device but not yet announced (see `kick`).
    nonisolated(unsafe) private static var unannounced = 0

    /// Tells the device about published transmit frames if it asked to be told. Frames are
    /// announced in batches — at the next network poll (the program's next poll/epoll_wait or
    /// the kernel going idle), or once 32 are waiting — since a notify costs a few µs
    /// (ioeventfd) to tens of µs (an MMIO exit).
    static func kick() {
        guard unannounced > 0 else { return }
        unannounced = 0
        if transmitQueue.publish() { write(.queueNotify, 1) }
    }

    /// Sends frames while `fill` produces them (it writes one frame into the buffer it is
    /// given and returns its length, or nil when it has none) and descriptors are free.
    static func transmit(_ fill: (UnsafeMutableRawBufferPointer) -> Int?) {
        guard present else { return }
        while let (id, _) = transmitQueue.nextUsed() { freeTransmit.append(id) }
        var sent = 0
        while let id = freeTransmit.last {
            let buffer = transmitQueue.buffer(id)
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: headerSize)
            guard let length = fill(UnsafeMutableRawBufferPointer(start: buffer + headerSize, count: bufferSize - headerSize)),
                  length > 0 else { break }
            freeTransmit.removeLast()
            transmitQueue.offer(id, length: headerSize + length, deviceWrites: false)
            sent += 1
        }
        if sent > 0 {
            unannounced += sent
            if unannounced >= 32 || freeTransmit.isEmpty { kick() } else { transmitQueue.publishQuietly() }
        }
    }
}
