import GuestABI
@testable import VMM
import XCTest

/// Split virtqueue processing through virtio-net's queues: valid chains, hostile chains
/// (each fails only its request, or needs a reset), and event-index suppression.
final class VirtioQueueTests: XCTestCase {
    let ram = TestGuestRAM()
    let backend = FakeBackend()
    let net = VirtioNetDevice(mac: .derived(from: 1))
    static let size: UInt16 = 8
    lazy var tx = TestDriverQueue(ram: ram, size: Self.size, base: 0x1_0000)
    lazy var rx = TestDriverQueue(ram: ram, size: Self.size, base: 0x2_0000)

    func queue(_ driver: TestDriverQueue, _ direction: VirtqueueDirection, eventIndex: Bool = true) -> SplitVirtqueue {
        SplitVirtqueue(layout: driver.layout, maxSize: 256, memory: ram.memory, eventIndex: eventIndex, direction: direction)!
    }

    /// A TX chain: a 12-byte header then `frame`, in one buffer at `address`.
    func putFrame(_ frame: [UInt8], at address: UInt64, descriptor: UInt16) {
        ram.copy([UInt8](repeating: 0, count: 12) + frame, to: address)
        tx.setDescriptor(descriptor, address: address, length: UInt32(12 + frame.count))
    }

    func testTransmitValidChains() {
        let q = queue(tx, .deviceReads)
        // Chain 0: one buffer. Chain 1: header split 5+7, frame in two parts (copied).
        // Chain 2: header alone, then the frame (passed without a copy).
        putFrame([1, 2, 3], at: 0x8000, descriptor: 0)
        ram.copy([0, 0, 0, 0, 0], to: 0x9000)
        ram.copy([0, 0, 0, 0, 0, 0, 0, 0xa, 0xb], to: 0x9100)
        ram.copy([0xc, 0xd], to: 0x9200)
        tx.setDescriptor(1, address: 0x9000, length: 5, flags: VirtioRing.descriptorNext, next: 2)
        tx.setDescriptor(2, address: 0x9100, length: 9, flags: VirtioRing.descriptorNext, next: 3)
        tx.setDescriptor(3, address: 0x9200, length: 2)
        ram.copy([UInt8](repeating: 0, count: 12), to: 0xa000)
        ram.copy([7, 7, 7, 7], to: 0xa100)
        tx.setDescriptor(4, address: 0xa000, length: 12, flags: VirtioRing.descriptorNext, next: 5)
        tx.setDescriptor(5, address: 0xa100, length: 4)
        tx.offer([0, 1, 4])
        let o = net.transmitAll(queue: q, backend: backend)
        XCTAssertEqual(o.completed, 3)
        XCTAssertTrue(o.interrupt)
        XCTAssertNil(o.broken)
        XCTAssertEqual(backend.transmitted, [[1, 2, 3], [0xa, 0xb, 0xc, 0xd], [7, 7, 7, 7]])
        XCTAssertEqual(tx.usedIdx, 3)
        XCTAssertEqual(tx.usedEntry(0).id, 0)
        XCTAssertEqual(tx.usedEntry(1).id, 1)
        XCTAssertEqual(tx.usedEntry(2).id, 4)
        XCTAssertEqual(tx.usedEntry(2).length, 0, "TX buffers: nothing written")
        XCTAssertEqual(tx.availEvent, 3, "notify me after the next buffer")
        XCTAssertEqual(net.badChains, 0)
    }

    /// Each hostile chain is returned with length 0; the good chain after it still goes out.
    func testHostileChainsFailOnlyTheirRequest() {
        let cases: [(String, (TestDriverQueue) -> Void, VirtqueueChainError)] = [
            ("next out of range", { $0.setDescriptor(0, address: 0x8000, length: 20, flags: VirtioRing.descriptorNext, next: 8) }, .nextOutOfRange(8)),
            ("loop 0→1→0", {
                $0.setDescriptor(0, address: 0x8000, length: 20, flags: VirtioRing.descriptorNext, next: 1)
                $0.setDescriptor(1, address: 0x8000, length: 20, flags: VirtioRing.descriptorNext, next: 0)
            }, .tooLong),
            ("self loop", { $0.setDescriptor(0, address: 0x8000, length: 20, flags: VirtioRing.descriptorNext, next: 0) }, .tooLong),
            ("outside RAM", { $0.setDescriptor(0, address: 0x10_0000, length: 20) }, .outsideMemory(address: 0x10_0000, length: 20)),
            ("straddles the end of RAM", { $0.setDescriptor(0, address: 0xf_fff0, length: 32) }, .outsideMemory(address: 0xf_fff0, length: 32)),
            ("wraps the address space", { $0.setDescriptor(0, address: UInt64.max - 3, length: 20) }, .outsideMemory(address: UInt64.max - 3, length: 20)),
            ("write descriptor in TX", { $0.setDescriptor(0, address: 0x8000, length: 20, flags: VirtioRing.descriptorWrite) }, .wrongDirection),
            ("indirect", { $0.setDescriptor(0, address: 0x8000, length: 32, flags: VirtioRing.descriptorIndirect) }, .indirect),
            ("shorter than the header", { $0.setDescriptor(0, address: 0x8000, length: 11) }, .tooSmall),
        ]
        for (what, setUp, expected) in cases {
            let ram = TestGuestRAM()
            let driver = TestDriverQueue(ram: ram, size: Self.size, base: 0x1_0000)
            let backend = FakeBackend()
            let net = VirtioNetDevice(mac: .derived(from: 2))
            let q = SplitVirtqueue(layout: driver.layout, maxSize: 256, memory: ram.memory, eventIndex: true, direction: .deviceReads)!
            setUp(driver)
            ram.copy([UInt8](repeating: 0, count: 12) + [42], to: 0x9000)
            driver.setDescriptor(5, address: 0x9000, length: 13)
            driver.offer([0, 5])
            let o = net.transmitAll(queue: q, backend: backend)
            XCTAssertNil(o.broken, what)
            XCTAssertEqual(o.completed, 2, what)
            XCTAssertEqual(backend.transmitted, [[42]], what)
            XCTAssertEqual(driver.usedIdx, 2, what)
            XCTAssertEqual(driver.usedEntry(0).id, 0, what)
            XCTAssertEqual(driver.usedEntry(0).length, 0, what)
            XCTAssertEqual(net.lastChainError, expected, what)
        }
    }

    /// A chain exactly as long as the queue is fine; the limit only stops loops.
    func testChainAsLongAsTheQueue() {
        let q = queue(tx, .deviceReads)
        ram.copy([UInt8](repeating: 0, count: 12) + Array(1...8), to: 0x8000)
        // 8 descriptors: 12 header bytes + 8 frame bytes = 20, spread 5+5+2+1+1+1+1+4.
        let parts: [UInt32] = [5, 5, 2, 1, 1, 1, 1, 4]
        var offset: UInt64 = 0
        for (i, n) in parts.enumerated() {
            let last = i == parts.count - 1
            tx.setDescriptor(UInt16(i), address: 0x8000 + offset, length: n, flags: last ? 0 : VirtioRing.descriptorNext, next: UInt16(i + 1))
            offset += UInt64(n)
        }
        tx.offer([0])
        XCTAssertEqual(net.transmitAll(queue: q, backend: backend).completed, 1)
        XCTAssertEqual(backend.transmitted, [Array(1...8)])
    }

    /// Two regions side by side in guest-physical space but not in host memory: a buffer
    /// across the boundary is refused (it would read the wrong host bytes).
    func testBufferStraddlingRegionsIsRefused() {
        let second = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { second.deallocate() }
        var memory = ram.memory
        memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(UInt64(ram.bytes.count)), size: 4096, host: second.baseAddress!))
        let q = SplitVirtqueue(layout: tx.layout, maxSize: 256, memory: memory, eventIndex: true, direction: .deviceReads)!
        tx.setDescriptor(0, address: UInt64(ram.bytes.count) - 8, length: 20)
        tx.setDescriptor(1, address: UInt64(ram.bytes.count) + 8, length: 20)  // wholly in the second region
        tx.offer([0, 1])
        XCTAssertEqual(net.transmitAll(queue: q, backend: backend).completed, 2)
        XCTAssertEqual(backend.transmitted.count, 1)
        XCTAssertEqual(net.lastChainError, .outsideMemory(address: UInt64(ram.bytes.count) - 8, length: 20))
    }

    /// Descriptors summing past 4 GiB (each inside a 3 GiB lazily backed region).
    func testTotalLengthOverflow() throws {
        let big = try XCTUnwrap(AnonymousMapping(size: 3 << 30))
        var memory = GuestMemory()
        memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0), size: UInt64(big.size), host: big.pointer))
        let table = UnsafeMutableRawBufferPointer(start: big.pointer, count: 0x10000)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) { table.storeBytes(of: v.littleEndian, toByteOffset: at, as: T.self) }
        // Descriptors at 0x1000, avail at 0x2000, used at 0x3000; two 2 GiB buffers.
        for i in 0..<2 {
            put(UInt64(0x1000_0000), 0x1000 + 16 * i)
            put(UInt32(0x8000_0000), 0x1000 + 16 * i + 8)
            put(UInt16(i == 0 ? VirtioRing.descriptorNext : 0), 0x1000 + 16 * i + 12)
            put(UInt16(1), 0x1000 + 16 * i + 14)
        }
        put(UInt16(0), 0x2004)
        put(UInt16(1), 0x2002)
        let q = try XCTUnwrap(SplitVirtqueue(layout: VirtqueueLayout(size: 8, descriptors: 0x1000, driverArea: 0x2000, deviceArea: 0x3000),
                                             maxSize: 256, memory: memory, eventIndex: false, direction: .deviceReads))
        var chain = VirtioChain()
        guard case .bad(let head, let error) = q.pop(into: &chain) else { return XCTFail("chain over 4 GiB accepted") }
        XCTAssertEqual(head, 0)
        XCTAssertEqual(error, .lengthOverflow)
    }

    func testCorruptRingsNeedReset() {
        // An avail ring entry naming a descriptor past the table.
        var q = queue(tx, .deviceReads)
        tx.offer([9])
        var o = net.transmitAll(queue: q, backend: backend)
        XCTAssertNotNil(o.broken)
        XCTAssertEqual(tx.usedIdx, 0)

        // avail idx more than a queue's worth ahead.
        let ram2 = TestGuestRAM()
        let driver = TestDriverQueue(ram: ram2, size: Self.size, base: 0x1_0000)
        q = SplitVirtqueue(layout: driver.layout, maxSize: 256, memory: ram2.memory, eventIndex: true, direction: .deviceReads)!
        driver.setAvailIdx(Self.size + 1)
        o = net.transmitAll(queue: q, backend: backend)
        XCTAssertNotNil(o.broken)
        XCTAssertTrue(backend.transmitted.isEmpty)

        // The same through the device: DEVICE_NEEDS_RESET, and an interrupt for it.
        let t = VirtioMMIOTransport(device: net, memory: ram2.memory)
        negotiate(t, features: allNetFeatures)
        setUpQueue({ _ = t.write(offset: $0, size: 4, value: $1) }, index: 1, layout: driver.layout)
        let why = net.transmitAll(queue: t.queues[1]!, backend: backend).broken!
        XCTAssertTrue(t.markBroken(why).interrupt)
        XCTAssertNotEqual(t.read(offset: VirtioMMIORegister.status, size: 4) & VirtioStatus.deviceNeedsReset, 0)
        XCTAssertEqual(t.read(offset: VirtioMMIORegister.interruptStatus, size: 4) & 2, 2)
    }

    /// used_event: one interrupt when the used index passes it, none while it stays ahead.
    func testEventIndexSuppressesInterrupts() {
        let q = queue(tx, .deviceReads)
        for i in 0..<8 { putFrame([UInt8(i)], at: 0x8000 + UInt64(i) * 0x100, descriptor: UInt16(i)) }
        tx.offer([0, 1])
        XCTAssertTrue(net.transmitAll(queue: q, backend: backend).interrupt, "first batch")
        XCTAssertEqual(tx.availEvent, 2)

        // The driver wants an interrupt only after used idx passes 4 (used_event = 4).
        tx.setUsedEvent(4)
        tx.offer([2])
        XCTAssertFalse(net.transmitAll(queue: q, backend: backend).interrupt, "used idx 3: not yet")
        tx.offer([3])
        XCTAssertFalse(net.transmitAll(queue: q, backend: backend).interrupt, "used idx 4: used_event 4 not passed")
        tx.offer([4, 5])
        XCTAssertTrue(net.transmitAll(queue: q, backend: backend).interrupt, "used idx 6 passed 4")
        XCTAssertEqual(tx.usedIdx, 6)
        XCTAssertEqual(tx.availEvent, 6)
        // used_event behind (driver not interested): no interrupt.
        tx.offer([6])
        XCTAssertFalse(net.transmitAll(queue: q, backend: backend).interrupt)
        XCTAssertEqual(backend.transmitted.count, 7)
    }

    func testNoInterruptFlagWithoutEventIndex() {
        let q = queue(tx, .deviceReads, eventIndex: false)
        putFrame([1], at: 0x8000, descriptor: 0)
        putFrame([2], at: 0x8100, descriptor: 1)
        tx.setAvailFlags(VirtioRing.availNoInterrupt)
        tx.offer([0])
        XCTAssertFalse(net.transmitAll(queue: q, backend: backend).interrupt)
        tx.setAvailFlags(0)
        tx.offer([1])
        XCTAssertTrue(net.transmitAll(queue: q, backend: backend).interrupt)
        XCTAssertEqual(ram.read(UInt16.self, at: tx.used), 0, "notifications re-enabled (no NO_NOTIFY)")
    }

    // MARK: receive

    func testReceiveScattersHeaderAndFrame() {
        let q = queue(rx, .deviceWrites)
        // Buffer 0: 8 + 2000 bytes (the header split); buffer 1: one 2048-byte descriptor.
        rx.setDescriptor(0, address: 0x8000, length: 8, flags: VirtioRing.descriptorWrite | VirtioRing.descriptorNext, next: 1)
        rx.setDescriptor(1, address: 0x9000, length: 2000, flags: VirtioRing.descriptorWrite)
        rx.setDescriptor(2, address: 0xa000, length: 2048, flags: VirtioRing.descriptorWrite)
        rx.offer([0, 2])
        ram.copy([UInt8](repeating: 0xff, count: 16), to: 0x8000)
        let frame1 = (0..<100).map { UInt8($0) }
        let frame2 = [UInt8](repeating: 0x77, count: 1514)
        backend.enqueueSilently(frame1)
        backend.enqueueSilently(frame2)
        let (o, left) = net.receiveAll(queue: q, backend: backend)
        XCTAssertEqual(o.completed, 2)
        XCTAssertTrue(o.interrupt)
        XCTAssertFalse(left, "both buffers used")
        XCTAssertEqual(rx.usedEntry(0).id, 0)
        XCTAssertEqual(rx.usedEntry(0).length, 112)
        XCTAssertEqual(rx.usedEntry(1).id, 2)
        XCTAssertEqual(rx.usedEntry(1).length, 1526)
        // Header: zeros, num_buffers = 1 (bytes 10-11), split over the two descriptors.
        XCTAssertEqual(ram.slice(0x8000, 8), [0, 0, 0, 0, 0, 0, 0, 0])
        XCTAssertEqual(ram.slice(0x9000, 4), [0, 0, 1, 0])
        XCTAssertEqual(ram.slice(0x9004, 100), frame1)
        XCTAssertEqual(ram.slice(0xa000 + 10, 2), [1, 0])
        XCTAssertEqual(ram.slice(0xa00c, 1514), frame2)
        XCTAssertEqual(rx.availEvent, 2, "armed: the next buffer notifies")
    }

    func testReceiveDropsOversizedFrameAndKeepsBuffer() {
        let q = queue(rx, .deviceWrites)
        rx.setDescriptor(0, address: 0x8000, length: 100, flags: VirtioRing.descriptorWrite)
        rx.offer([0])
        backend.enqueueSilently([UInt8](repeating: 1, count: 200))  // too big for 100 - 12
        backend.enqueueSilently([9, 9, 9])
        let (o, left) = net.receiveAll(queue: q, backend: backend)
        XCTAssertEqual(o.completed, 1)
        XCTAssertFalse(left)
        XCTAssertEqual(rx.usedEntry(0).length, 15)
        XCTAssertEqual(ram.slice(0x800c, 3), [9, 9, 9])
        XCTAssertEqual(net.droppedReceives, 1)
    }

    func testReceiveRefusesReadableDescriptors() {
        let q = queue(rx, .deviceWrites)
        rx.setDescriptor(0, address: 0x8000, length: 2048)  // not WRITE
        rx.setDescriptor(1, address: 0x9000, length: 2048, flags: VirtioRing.descriptorWrite)
        rx.setDescriptor(2, address: 0x10_0000 - 100, length: 2048, flags: VirtioRing.descriptorWrite)  // past RAM
        rx.offer([0, 2, 1])
        backend.enqueueSilently([5, 6])
        let (o, _) = net.receiveAll(queue: q, backend: backend)
        XCTAssertEqual(o.completed, 3)
        XCTAssertEqual(rx.usedEntry(0).id, 0)
        XCTAssertEqual(rx.usedEntry(0).length, 0)
        XCTAssertEqual(rx.usedEntry(1).id, 2)
        XCTAssertEqual(rx.usedEntry(1).length, 0)
        XCTAssertEqual(rx.usedEntry(2).id, 1)
        XCTAssertEqual(rx.usedEntry(2).length, 14)
        XCTAssertEqual(net.badChains, 2)
    }

    /// No frame from the backend: the popped buffer stays available.
    func testReceiveWithoutFramesKeepsBuffers() {
        let q = queue(rx, .deviceWrites)
        rx.setDescriptor(0, address: 0x8000, length: 2048, flags: VirtioRing.descriptorWrite)
        rx.offer([0])
        let (o, left) = net.receiveAll(queue: q, backend: backend)
        XCTAssertEqual(o.completed, 0)
        XCTAssertFalse(o.interrupt)
        XCTAssertTrue(left)
        XCTAssertEqual(rx.usedIdx, 0)
        backend.enqueueSilently([1])
        XCTAssertEqual(net.receiveAll(queue: q, backend: backend).0.completed, 1)
    }

    func testNeedsEventArithmetic() {
        XCTAssertTrue(VirtioRing.needsEvent(event: 0, new: 1, old: 0))
        XCTAssertFalse(VirtioRing.needsEvent(event: 1, new: 1, old: 0))
        XCTAssertTrue(VirtioRing.needsEvent(event: 0xffff, new: 2, old: 0xfffe), "wraps")
        XCTAssertFalse(VirtioRing.needsEvent(event: 5, new: 5, old: 5))
    }
}
