// Virtio harness: the VMM walking split virtqueues in guest memory that a hostile guest
// controls, through the same objects NetworkDevice uses: the virtio-mmio transport (register
// writes set the queues up), SplitVirtqueue (ring and descriptor-chain walking) and
// VirtioNetDevice (transmitAll / receiveAll against a backend).
//
// Guest memory: 64 KiB of RAM at guest-physical 0 (writable) and 4 KiB read-only at 0x10000
// (like the image mapping: the device must never write there).
//
// Input:
//   size log2 u8 (mod 9), flags u8 (bit 0 EVENT_IDX, bits 1-2 the direct walker's direction)
//   layout of queue 0 (receiveq) and queue 1 (transmitq): descriptors u32, driver u32, device u32
//   RAM contents: length u16, bytes (copied to guest-physical 0)
//   operations until the input ends, op u8 mod 6:
//     0 pop every chain of the transmitq's rings directly (a fresh SplitVirtqueue), checking
//       each resolved chain, then return them all
//     1 transmitAll on the transport's transmitq
//     2 receiveAll on the transport's receiveq: count u8, then per frame a length u16
//     3 the guest writes RAM: offset u16, length u8, bytes
//     4 the guest writes a transport register: offset u16 (mod 0x200), width u8, value u32
//     5 the guest reads a transport register: offset u16, width u8
//
// Checked: every buffer of a resolved chain lies inside guest memory, device-writable ones
// inside writable RAM, lengths add up and match the queue's direction; used idx is what the
// device published; used entries name descriptors < queue size with lengths the device may
// report; frames handed to the backend are at most maxFrame bytes and readable.
import FuzzSupport
import GuestABI
import VMM
#if canImport(Glibc)
import Glibc
#endif

let ramSize = 65536
let romBase: UInt64 = 0x10000
let romSize = 4096

final class FakeBackend: NetworkBackend {
    var frameLengths: [Int] = []
    var transmitted = 0
    var checksum: UInt8 = 0

    func transmit(_ frame: UnsafeRawBufferPointer) {
        check(frame.count <= VirtioNetDevice.maxFrame, "transmitted frame of \(frame.count) bytes")
        // Read every byte: ASan reports a frame that is not all readable memory.
        for b in frame { checksum &+= b }
        transmitted += 1
    }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard !frameLengths.isEmpty else { return nil }
        check(buffer.count >= 65536, "receive buffer of \(buffer.count) bytes")
        let length = frameLengths.removeFirst()
        // A backend never reports more than the buffer, but the device checks anyway.
        for i in 0..<min(length, buffer.count, 2048) { buffer[i] = UInt8(truncatingIfNeeded: i) }
        return length
    }

    func pollDescriptors() -> [pollfd] { [] }
    func service(_ ready: [pollfd], now: UInt64) {}
    var nextDeadline: UInt64? { nil }
    var hasPendingFrames: Bool { !frameLengths.isEmpty }
    func shutdown() {}
}

struct Layout {
    var descriptors: UInt64, driver: UInt64, device: UInt64
}

func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(inputBuffer(data, size))
    let queueSize = UInt16(1) << UInt16(input.u8() % 9)
    let flags = input.u8()
    let eventIndex = flags & 1 != 0
    let direction: VirtqueueDirection = [.deviceReads, .deviceWrites, .both, .deviceReads][Int(flags >> 1) & 3]
    let layouts = (0..<2).map { _ in Layout(descriptors: UInt64(input.u32()), driver: UInt64(input.u32()), device: UInt64(input.u32())) }

    let ram = UnsafeMutableRawBufferPointer.allocate(byteCount: ramSize, alignment: 4096)
    let rom = UnsafeMutableRawBufferPointer.allocate(byteCount: romSize, alignment: 4096)
    defer { ram.deallocate(); rom.deallocate() }
    ram.initializeMemory(as: UInt8.self, repeating: 0)
    rom.initializeMemory(as: UInt8.self, repeating: 0xee)
    ram.copyMemory(from: input.take(Int(input.u16())))
    var memory = GuestMemory()
    memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0), size: UInt64(ramSize), host: ram.baseAddress!))
    memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(romBase), size: UInt64(romSize), host: rom.baseAddress!, writable: false))
    let guest = Guest(ram: ram, rom: rom, memory: memory)

    // The driver's setup sequence (virtio 1.x §3.1.1), as the kernel does it.
    let net = VirtioNetDevice(mac: .init(0x52, 0x54, 0, 1, 2, 3))
    let transport = VirtioMMIOTransport(device: net, memory: memory)
    typealias R = VirtioMMIORegister
    _ = transport.write(offset: R.status, size: 4, value: VirtioStatus.acknowledge | VirtioStatus.driver)
    let features = VirtioFeature.version1 | VirtioNetDevice.featureMAC | (eventIndex ? VirtioFeature.ringEventIndex : 0)
    _ = transport.write(offset: R.driverFeaturesSel, size: 4, value: 0)
    _ = transport.write(offset: R.driverFeatures, size: 4, value: UInt32(truncatingIfNeeded: features))
    _ = transport.write(offset: R.driverFeaturesSel, size: 4, value: 1)
    _ = transport.write(offset: R.driverFeatures, size: 4, value: UInt32(truncatingIfNeeded: features >> 32))
    _ = transport.write(offset: R.status, size: 4, value: VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK)
    check(transport.status & VirtioStatus.featuresOK != 0, "offered features refused")
    for (q, layout) in layouts.enumerated() {
        _ = transport.write(offset: R.queueSel, size: 4, value: UInt32(q))
        _ = transport.write(offset: R.queueNum, size: 4, value: UInt32(queueSize))
        _ = transport.write(offset: R.queueDescLow, size: 4, value: UInt32(truncatingIfNeeded: layout.descriptors))
        _ = transport.write(offset: R.queueDriverLow, size: 4, value: UInt32(truncatingIfNeeded: layout.driver))
        _ = transport.write(offset: R.queueDeviceLow, size: 4, value: UInt32(truncatingIfNeeded: layout.device))
        _ = transport.write(offset: R.queueReady, size: 4, value: 1)
        let valid = guest.validLayout(layout, size: queueSize)
        check((transport.queues[q] != nil) == valid || transport.status & VirtioStatus.deviceNeedsReset != 0,
              "queue \(q) layout \(layout) accepted: \(transport.queues[q] != nil), valid: \(valid)")
    }
    _ = transport.write(offset: R.status, size: 4,
                        value: VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)

    // Register writes may reset the device and make queues ready again elsewhere: used rings
    // are only checked at the layout of the queues made here.
    let setUp = transport.queues
    let backend = FakeBackend()
    var operations = 0
    while !input.isAtEnd && operations < 48 {
        operations += 1
        switch input.u8() % 6 {
        case 0:
            guest.popDirectly(layouts[1], size: queueSize, eventIndex: eventIndex, direction: direction)
        case 1:
            guard transport.isLive, let tx = transport.queues[VirtioNetDevice.transmitQueue] else { continue }
            let before = tx.nextUsed
            let outcome = net.transmitAll(queue: tx, backend: backend)
            if let why = outcome.broken { transport.markBroken("transmitq: \(why)") }
            guest.checkUsed(tx, layouts[1], from: before, count: outcome.completed, transmit: true,
                            entries: tx === setUp[VirtioNetDevice.transmitQueue])
        case 2:
            backend.frameLengths = (0..<Int(input.u8() % 8)).map { _ in Int(input.u16()) &* 2 }
            guard transport.isLive, let rx = transport.queues[VirtioNetDevice.receiveQueue] else { continue }
            let before = rx.nextUsed
            // The guest may offer receive buffers over the used ring (or over the descriptor
            // table, changing the buffers): the device then legitimately writes frame bytes
            // over used entries, which can no longer be checked.
            let overwritable = guest.writableBuffersOverlap(layouts[0], size: rx.size)
            let (outcome, _) = net.receiveAll(queue: rx, backend: backend)
            if let why = outcome.broken { transport.markBroken("receiveq: \(why)") }
            guest.checkUsed(rx, layouts[0], from: before, count: outcome.completed, transmit: false,
                            entries: !overwritable && rx === setUp[VirtioNetDevice.receiveQueue])
        case 3:
            let offset = Int(input.u16())
            let bytes = input.take(Int(input.u8()))
            let n = min(bytes.count, ramSize - offset)
            if n > 0 { (ram.baseAddress! + offset).copyMemory(from: bytes.baseAddress!, byteCount: n) }
        case 4:
            let offset = UInt64(input.u16() % 0x200)
            let width = [1, 2, 4, 8][Int(input.u8() & 3)]
            _ = transport.write(offset: offset, size: width, value: input.u32())
        default:
            let offset = UInt64(input.u16() % 0x200)
            _ = transport.read(offset: offset, size: [1, 2, 4, 8][Int(input.u8() & 3)])
        }
    }
    return 0
}

struct Guest {
    let ram: UnsafeMutableRawBufferPointer
    let rom: UnsafeMutableRawBufferPointer
    let memory: GuestMemory

    /// The §2.7 rules, restated: alignment, every area inside one region, the used ring in RAM.
    func validLayout(_ l: Layout, size: UInt16) -> Bool {
        func inside(_ address: UInt64, _ count: UInt64, writable: Bool) -> Bool {
            (address + count <= UInt64(ramSize))
                || (!writable && address >= romBase && address + count <= romBase + UInt64(romSize))
        }
        let n = UInt64(size)
        return l.descriptors & 15 == 0 && l.driver & 1 == 0 && l.device & 3 == 0
            && inside(l.descriptors, 16 * n, writable: false) && inside(l.driver, 6 + 2 * n, writable: false)
            && inside(l.device, 6 + 8 * n, writable: true)
    }

    func inGuestMemory(_ b: UnsafeRawBufferPointer) -> Bool {
        lies(b, within: UnsafeRawBufferPointer(ram)) || lies(b, within: UnsafeRawBufferPointer(rom))
    }

    /// Whether the used ring shares bytes with the descriptor table or the avail ring (then
    /// the device's own writes change what it reads, and the used entries can't be checked).
    func usedOverlaps(_ l: Layout, size: UInt16) -> Bool {
        let n = UInt64(size)
        let used = l.device..<(l.device + 6 + 8 * n)
        return used.overlaps(l.descriptors..<(l.descriptors + 16 * n)) || used.overlaps(l.driver..<(l.driver + 6 + 2 * n))
    }

    /// Whether a device-writable descriptor of the table at `l` names bytes of the used ring
    /// or of the descriptor table itself.
    func writableBuffersOverlap(_ l: Layout, size: UInt16) -> Bool {
        let n = UInt64(size)
        let used = l.device..<(l.device + 6 + 8 * n)
        let table = l.descriptors..<(l.descriptors + 16 * n)
        // The table is in one region (the queue was made); read it from there.
        guard let r = memory.bytes(at: PhysicalAddress(l.descriptors), count: 16 * n).map(UnsafeRawBufferPointer.init)
        else { return false }
        for i in 0..<Int(size) {
            let base = 16 * i
            let address = r.readLE(UInt64.self, at: base), length = UInt64(r.readLE(UInt32.self, at: base + 8))
            let flags = r.readLE(UInt16.self, at: base + 12)
            guard flags & VirtioRing.descriptorWrite != 0, length > 0 else { continue }
            let (end, overflow) = address.addingReportingOverflow(length)
            let buffer = address..<(overflow ? UInt64.max : end)
            if buffer.overlaps(used) || buffer.overlaps(table) { return true }
        }
        return false
    }

    func popDirectly(_ layout: Layout, size: UInt16, eventIndex: Bool, direction: VirtqueueDirection) {
        let l = VirtqueueLayout(size: size, descriptors: layout.descriptors, driverArea: layout.driver, deviceArea: layout.device)
        guard let queue = SplitVirtqueue(layout: l, maxSize: 256, memory: memory, eventIndex: eventIndex, direction: direction)
        else {
            check(!validLayout(layout, size: size), "valid layout \(layout) refused")
            return
        }
        check(validLayout(layout, size: size), "invalid layout \(layout) accepted")
        var chain = VirtioChain()
        var popped = 0
        loop: for _ in 0..<(2 * Int(size) + 1) {
            switch queue.pop(into: &chain) {
            case .empty, .broken: break loop
            case .bad(let head, _):
                check(head < size, "bad chain head \(head)")
                queue.pushUsed(head: head, length: 0)
            case .chain:
                check(chain.head < size, "chain head \(chain.head)")
                var readable = 0, writable = 0
                for b in chain.readable {
                    check(inGuestMemory(b), "readable buffer outside guest memory")
                    readable += b.count
                }
                for b in chain.writable {
                    check(lies(UnsafeRawBufferPointer(b), within: UnsafeRawBufferPointer(ram)), "writable buffer outside RAM")
                    writable += b.count
                }
                check(readable == chain.readableLength && writable == chain.writableLength, "chain lengths")
                check(readable + writable <= Int(UInt32.max), "chain longer than 4 GiB")
                switch direction {
                case .deviceReads: check(chain.writable.isEmpty, "writable buffer on a device-reads queue")
                case .deviceWrites: check(chain.readable.isEmpty, "readable buffer on a device-writes queue")
                case .both: break
                }
                // Everything the device may copy is really there.
                var scratch = [UInt8](repeating: 0, count: min(readable, 4096))
                let gathered = scratch.withUnsafeMutableBytes { chain.gather(into: $0) }
                check(gathered == scratch.count, "gather copied \(gathered) of \(scratch.count)")
                let pattern = [UInt8](repeating: 0x5a, count: min(writable, 4096))
                check(pattern.withUnsafeBytes { chain.scatter($0, at: 0) } == pattern.count, "scatter")
                queue.pushUsed(head: chain.head, length: UInt32(writable))
            }
            popped += 1
        }
        // Each avail entry is taken once, unless the device's own writes (used entries over
        // the avail ring, or the pattern scattered into writable buffers) made more.
        check(popped <= Int(size) || usedOverlaps(layout, size: size) || direction != .deviceReads,
              "popped \(popped) chains from a queue of \(size)")
        _ = queue.publish()
        checkUsedIndex(queue, layout)
    }

    func checkUsedIndex(_ queue: SplitVirtqueue, _ layout: Layout) {
        let usedIndex = UnsafeRawBufferPointer(ram).readLE(UInt16.self, at: Int(layout.device) + 2)
        check(usedIndex == queue.nextUsed, "used idx \(usedIndex), device published \(queue.nextUsed)")
    }

    /// After a device pass that completed `count` chains starting at used slot `from`.
    func checkUsed(_ queue: SplitVirtqueue, _ layout: Layout, from: UInt16, count: Int, transmit: Bool, entries: Bool = true) {
        check(queue.nextUsed == from &+ UInt16(truncatingIfNeeded: count), "completed \(count), used moved \(queue.nextUsed &- from)")
        guard count > 0, entries, !usedOverlaps(layout, size: queue.size) else { return }
        checkUsedIndex(queue, layout)
        let r = UnsafeRawBufferPointer(ram)
        for i in 0..<min(count, Int(queue.size)) {
            let slot = Int((from &+ UInt16(count - 1 - i)) & (queue.size - 1))
            let entry = Int(layout.device) + 4 + 8 * slot
            let id = r.readLE(UInt32.self, at: entry), length = r.readLE(UInt32.self, at: entry + 4)
            check(id < UInt32(queue.size), "\(transmit ? "transmitq" : "receiveq") used slot \(slot) names descriptor \(id)")
            if transmit {
                check(length == 0, "transmit used length \(length)")
            } else {
                let header = UInt32(VirtioNetDevice.headerSize)
                check(length == 0 || (length >= header && length <= header + UInt32(VirtioNetDevice.maxFrame)),
                      "receive used length \(length)")
            }
        }
    }
}

// MARK: Seeds

/// Size-8 rings: the transmitq's descriptors at 0x0, avail at 0x80, used at 0x100; the
/// receiveq's at 0x200, 0x280, 0x300; transmit buffers from 0x400, receive buffers in the
/// zeroed RAM above the seed's bytes. Three chains posted on the transmitq, five on the
/// receiveq.
func seed(eventIndex: Bool, operations: [UInt8]) -> [UInt8] {
    var ram = [UInt8](repeating: 0, count: 0x640)
    func descriptor(_ table: Int, _ i: Int, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) {
        ram.storeLE(address, at: table + 16 * i)
        ram.storeLE(length, at: table + 16 * i + 8)
        ram.storeLE(flags, at: table + 16 * i + 12)
        ram.storeLE(next, at: table + 16 * i + 14)
    }
    // Transmitq: a one-buffer frame (header + 60 bytes), a header-only buffer + frame buffer,
    // and a three-buffer chain whose middle part is in the read-only region.
    descriptor(0, 0, address: 0x400, length: 72, flags: 0, next: 0)
    descriptor(0, 1, address: 0x480, length: 12, flags: 1, next: 2)
    descriptor(0, 2, address: 0x500, length: 42, flags: 0, next: 0)
    descriptor(0, 3, address: 0x580, length: 6, flags: 1, next: 4)
    descriptor(0, 4, address: romBase, length: 20, flags: 1, next: 5)
    descriptor(0, 5, address: 0x600, length: 40, flags: 0, next: 0)
    for (slot, head) in [0, 1, 3].enumerated() { ram.storeLE(UInt16(head), at: 0x84 + 2 * slot) }
    ram.storeLE(UInt16(3), at: 0x82)
    // Receiveq: four 1526-byte buffers and one split into header + frame.
    for i in 0..<4 { descriptor(0x200, i, address: UInt64(0x8000 + 0x800 * i), length: 1526, flags: 2, next: 0) }
    descriptor(0x200, 4, address: 0xa000, length: 12, flags: 3, next: 5)
    descriptor(0x200, 5, address: 0xa100, length: 1514, flags: 2, next: 0)
    for slot in 0..<5 { ram.storeLE(UInt16(slot), at: 0x284 + 2 * slot) }
    ram.storeLE(UInt16(5), at: 0x282)
    var s: [UInt8] = [3, eventIndex ? 1 : 0]
    for (d, a, u) in [(0x200, 0x280, 0x300), (0x0, 0x80, 0x100)] {
        s.appendLE(UInt32(d)); s.appendLE(UInt32(a)); s.appendLE(UInt32(u))
    }
    s.appendLE(UInt16(ram.count))
    return s + ram + operations
}

runFuzzer(seeds: {
    // 0: direct walk; 1: transmit; 2 with 3 frames of 60, 1514 and 70000 bytes (halved in
    // the input: lengths are u16 × 2); 3: the guest posts one more transmit chain; 4: reset.
    let receive: [UInt8] = [2, 3, 30, 0, 0xf5, 2, 0x2c, 0x88]
    let postMore: [UInt8] = [3, 0x8a, 0, 2, 0, 0, 3, 0x82, 0, 2, 4, 0]
    return [("direct", seed(eventIndex: false, operations: [0])),
            ("transmit-receive", seed(eventIndex: true, operations: [1] + receive + postMore + [1, 1])),
            ("reset", seed(eventIndex: false, operations: [1, 4, 0x70, 0, 2, 0, 0, 0, 0, 1]))]
}, { testOneInput($0, $1) })
