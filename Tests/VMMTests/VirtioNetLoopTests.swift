import GuestABI
@testable import VMM
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The whole device without KVM: register writes as the vCPU thread would make them, the
/// real I/O thread, a fake backend, and the driver's side played by the test.
final class VirtioNetLoopTests: XCTestCase {
    typealias R = VirtioMMIORegister

    final class Counter: @unchecked Sendable {
        private var lock = pthread_mutex_t()
        private var n = 0
        init() { pthread_mutex_init(&lock, nil) }
        func bump() { pthread_mutex_lock(&lock); n += 1; pthread_mutex_unlock(&lock) }
        var value: Int { pthread_mutex_lock(&lock); defer { pthread_mutex_unlock(&lock) }; return n }
    }

    func openDescriptors() -> Int {
        (try? FileManagerless.count("/proc/self/fd")) ?? -1
    }

    enum FileManagerless {
        static func count(_ path: String) throws -> Int {
            guard let dir = opendir(path) else { return -1 }
            defer { closedir(dir) }
            var n = 0
            while readdir(dir) != nil { n += 1 }
            return n
        }
    }

    func makeDevice(ram: TestGuestRAM, backend: FakeBackend, interrupts: Counter) throws -> NetworkDevice {
        let config = NetworkConfiguration(backend: backend, mac: .derived(from: 7),
                                          ipv4: .init(address: .init(10, 0, 3, 2), prefixLength: 24))
        return try NetworkDevice(configuration: config, slot: 0, memory: ram.memory, forwarders: [],
                                 interrupt: .callback({ interrupts.bump() }))
    }

    func testFramesMoveBothWays() throws {
        let ram = TestGuestRAM()
        let backend = FakeBackend()
        let interrupts = Counter()
        let device = try makeDevice(ram: ram, backend: backend, interrupts: interrupts)
        try device.start()
        defer { device.stop() }
        let w = { (o: UInt64, v: UInt32) in device.mmioWrite(offset: o, size: 4, value: v) }

        // The driver's initialisation, as a kernel driver would do it.
        XCTAssertEqual(device.mmioRead(offset: R.magicValue, size: 4), R.magic)
        w(R.status, 0)
        w(R.status, VirtioStatus.acknowledge | VirtioStatus.driver)
        w(R.driverFeaturesSel, 0); w(R.driverFeatures, UInt32(truncatingIfNeeded: allNetFeatures))
        w(R.driverFeaturesSel, 1); w(R.driverFeatures, UInt32(truncatingIfNeeded: allNetFeatures >> 32))
        w(R.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK)
        XCTAssertNotEqual(device.mmioRead(offset: R.status, size: 4) & VirtioStatus.featuresOK, 0)
        let rx = TestDriverQueue(ram: ram, size: 16, base: 0x1_0000)
        let tx = TestDriverQueue(ram: ram, size: 16, base: 0x2_0000)
        setUpQueue(w, index: 0, layout: rx.layout)
        setUpQueue(w, index: 1, layout: tx.layout)
        for i in 0..<4 { rx.setDescriptor(UInt16(i), address: 0x8_0000 + UInt64(i) * 0x800, length: 2048, flags: VirtioRing.descriptorWrite) }
        rx.offer([0, 1, 2, 3])
        w(R.status, VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK | VirtioStatus.driverOK)
        w(R.queueNotify, 0)

        // Guest → backend: two frames, one notify.
        for i in 0..<2 {
            ram.copy([UInt8](repeating: 0, count: 12) + [UInt8(0x10 + i), 0xee], to: 0x4_0000 + UInt64(i) * 0x100)
            tx.setDescriptor(UInt16(i), address: 0x4_0000 + UInt64(i) * 0x100, length: 14)
        }
        tx.offer([0, 1])
        w(R.queueNotify, 1)
        XCTAssertTrue(waitUntil { backend.transmitted.count == 2 }, "frames not transmitted: \(backend.transmitted)")
        XCTAssertEqual(backend.transmitted, [[0x10, 0xee], [0x11, 0xee]])
        XCTAssertTrue(waitUntil { tx.usedIdx == 2 })
        XCTAssertTrue(waitUntil { interrupts.value >= 1 })
        XCTAssertNotEqual(device.mmioRead(offset: R.interruptStatus, size: 4) & 1, 0)
        w(R.interruptACK, 1)

        // Backend → guest: six frames but four buffers; the rest wait for more buffers.
        for i in 0..<6 { backend.deliver([0xaa, UInt8(i)]) }
        XCTAssertTrue(waitUntil { rx.usedIdx == 4 }, "used idx \(rx.usedIdx)")
        XCTAssertEqual(rx.usedEntry(3).length, 14)
        XCTAssertEqual(ram.slice(0x8_0000 + 3 * 0x800 + 12, 2), [0xaa, 3])
        usleep(2000)
        XCTAssertEqual(backend.pending, 2, "no buffers: frames stay in the backend")
        XCTAssertEqual(rx.availEvent, 4, "armed for the next buffer")

        // Refill: the notify resumes reception without any backend activity.
        for i in 4..<8 { rx.setDescriptor(UInt16(i), address: 0x8_0000 + UInt64(i) * 0x800, length: 2048, flags: VirtioRing.descriptorWrite) }
        rx.offer([4, 5, 6, 7])
        w(R.queueNotify, 0)
        XCTAssertTrue(waitUntil { rx.usedIdx == 6 }, "used idx \(rx.usedIdx)")
        XCTAssertEqual(ram.slice(0x8_0000 + 5 * 0x800 + 12, 2), [0xaa, 5])
        XCTAssertEqual(backend.pending, 0)

        // A corrupt avail ring: DEVICE_NEEDS_RESET and a config interrupt; a reset recovers.
        let before = interrupts.value
        tx.setAvailIdx(tx.availIdx &+ 100)
        w(R.queueNotify, 1)
        XCTAssertTrue(waitUntil { device.state.status & VirtioStatus.deviceNeedsReset != 0 })
        XCTAssertTrue(waitUntil { interrupts.value > before })
        XCTAssertNotEqual(device.mmioRead(offset: R.interruptStatus, size: 4) & 2, 0)
        w(R.status, 0)
        XCTAssertEqual(device.mmioRead(offset: R.status, size: 4), 0)
    }

    /// With no buffers posted, frames stay in the backend (its POLLIN is masked, so the
    /// thread does not spin either), and the VM's stop joins the thread and closes every fd.
    func testStopsCleanlyWithoutLeaks() throws {
        let fdsBefore = openDescriptors()
        for _ in 0..<3 {
            let ram = TestGuestRAM()
            let backend = FakeBackend()
            let interrupts = Counter()
            let device = try makeDevice(ram: ram, backend: backend, interrupts: interrupts)
            try device.start()
            backend.deliver([1, 2, 3])
            usleep(3000)
            // The thread has nothing to deliver to (not even DRIVER_OK) and must idle.
            let calls = backend.serviceCalls
            usleep(3000)
            XCTAssertLessThanOrEqual(backend.serviceCalls - calls, 2, "I/O thread spins")
            device.stop()
            device.stop()
            XCTAssertEqual(backend.shutdownCount, 1)
            XCTAssertEqual(backend.pending, 1)
        }
        XCTAssertEqual(openDescriptors(), fdsBefore, "descriptors leaked")
    }

    /// The sleep doorbell's replacement: a full sleep without interrupts, cut short by one.
    func testSleepEndsAtAnInterrupt() throws {
        let ram = TestGuestRAM()
        let device = try makeDevice(ram: ram, backend: FakeBackend(), interrupts: Counter())
        defer { device.stop() }
        var start = monotonicNanos()
        device.sleep(nanoseconds: 2_000_000)
        XCTAssertGreaterThanOrEqual(monotonicNanos() - start, 2_000_000)
        // A broken driver sequence raises a (config) interrupt right away.
        device.mmioWrite(offset: VirtioMMIORegister.status, size: 4, value: VirtioStatus.acknowledge | VirtioStatus.driverOK)
        start = monotonicNanos()
        device.sleep(nanoseconds: 5_000_000_000)
        XCTAssertLessThan(monotonicNanos() - start, 1_000_000_000, "the interrupt did not end the sleep")
    }

    /// A device that never started still shuts its backend down once.
    func testStopWithoutStart() throws {
        let backend = FakeBackend()
        let device = try makeDevice(ram: TestGuestRAM(), backend: backend, interrupts: Counter())
        device.stop()
        XCTAssertEqual(backend.shutdownCount, 1)
    }

    func testBootInfoAndMAC() {
        let config = NetworkConfiguration(backend: FakeBackend(), mac: .derived(from: 1234),
                                          ipv4: .init(address: .init(10, 0, 3, 2), prefixLength: 24,
                                                      gateway: .init(10, 0, 3, 1), dns: .init("10.0.3.1")))
        let info = config.bootInfo
        XCTAssertEqual(info.virtioBase, 0xd000_1000)
        XCTAssertEqual(info.virtioStride, 0x1000)
        XCTAssertEqual(info.virtioSlotCount, 1)
        XCTAssertEqual(info.virtioFirstIRQ, 5)
        XCTAssertEqual(info.ipv4Address, 0x0a00_0302)
        XCTAssertEqual(info.ipv4PrefixLength, 24)
        XCTAssertEqual(info.ipv4Gateway, 0x0a00_0301)
        XCTAssertEqual(info.ipv4DNS, 0x0a00_0301)
        let mac = config.mac.array
        XCTAssertEqual(Array(mac.prefix(3)), [0x52, 0x54, 0x00])
        XCTAssertNotEqual(NetworkConfiguration.MACAddress.derived(from: 1234), .derived(from: 1235))
        XCTAssertNil(NetworkConfiguration.IPv4Address("10.0.3"))
        XCTAssertNil(NetworkConfiguration.IPv4Address("10.0.3.256"))
        XCTAssertEqual(NetworkConfiguration.IPv4Address.netmask(prefix: 24), 0xffff_ff00)
        XCTAssertEqual(NetworkConfiguration.IPv4Address.netmask(prefix: 0), 0)
    }
}
