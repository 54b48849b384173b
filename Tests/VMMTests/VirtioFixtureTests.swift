// Fixtures shared by the Virtio*Tests files (guest RAM, a hand-driven driver queue, a fake
// backend); named *Tests.swift to sit with them.
import GuestABI
@testable import VMM
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Guest RAM for virtio tests: a zeroed host buffer registered as guest-physical [0, size).
final class TestGuestRAM {
    let bytes: UnsafeMutableRawBufferPointer
    var memory = GuestMemory()

    init(size: Int = 1 << 20) {
        bytes = .allocate(byteCount: size, alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0), size: UInt64(size), host: bytes.baseAddress!))
    }

    deinit { bytes.deallocate() }

    func write<T: FixedWidthInteger>(_ value: T, at address: UInt64) {
        bytes.storeBytes(of: value.littleEndian, toByteOffset: Int(address), as: T.self)
    }

    func read<T: FixedWidthInteger>(_: T.Type, at address: UInt64) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: Int(address), as: T.self))
    }

    func copy(_ data: [UInt8], to address: UInt64) {
        for (i, b) in data.enumerated() { bytes[Int(address) + i] = b }
    }

    func slice(_ address: UInt64, _ count: Int) -> [UInt8] {
        Array(bytes[Int(address)..<Int(address) + count])
    }
}

/// The driver's side of one split virtqueue, written by hand into TestGuestRAM.
final class TestDriverQueue {
    let ram: TestGuestRAM
    let size: UInt16
    let descriptors: UInt64
    let avail: UInt64
    let used: UInt64
    var availIdx: UInt16 = 0

    init(ram: TestGuestRAM, size: UInt16, base: UInt64) {
        self.ram = ram
        self.size = size
        descriptors = base
        avail = base + 16 * UInt64(size)
        used = (avail + 6 + 2 * UInt64(size) + 3) & ~3
    }

    var layout: VirtqueueLayout { VirtqueueLayout(size: size, descriptors: descriptors, driverArea: avail, deviceArea: used) }

    func setDescriptor(_ i: UInt16, address: UInt64, length: UInt32, flags: UInt16 = 0, next: UInt16 = 0) {
        let d = descriptors + 16 * UInt64(i)
        ram.write(address, at: d)
        ram.write(length, at: d + 8)
        ram.write(flags, at: d + 12)
        ram.write(next, at: d + 14)
    }

    /// Offers chain heads: ring entries then one idx store.
    func offer(_ heads: [UInt16]) {
        for h in heads {
            ram.write(h, at: avail + 4 + 2 * UInt64(availIdx % size))
            availIdx &+= 1
        }
        ram.write(availIdx, at: avail + 2)
    }

    func setAvailIdx(_ value: UInt16) {
        availIdx = value
        ram.write(value, at: avail + 2)
    }

    var usedIdx: UInt16 { ram.read(UInt16.self, at: used + 2) }
    func usedEntry(_ i: UInt16) -> (id: UInt32, length: UInt32) {
        let e = used + 4 + 8 * UInt64(i % size)
        return (ram.read(UInt32.self, at: e), ram.read(UInt32.self, at: e + 4))
    }
    /// used_event (in the avail ring: what the driver asks to be interrupted at).
    func setUsedEvent(_ value: UInt16) { ram.write(value, at: avail + 4 + 2 * UInt64(size)) }
    /// avail_event (in the used ring: when the device wants to be notified).
    var availEvent: UInt16 { ram.read(UInt16.self, at: used + 4 + 8 * UInt64(size)) }
    func setAvailFlags(_ value: UInt16) { ram.write(value, at: avail) }
}

/// A backend recording what the guest sent and handing out queued frames; wakes the I/O
/// thread through a pipe. Thread-safe (the test thread and the I/O thread both use it).
final class FakeBackend: NetworkBackend, @unchecked Sendable {
    private var lock = pthread_mutex_t()
    private var sent: [[UInt8]] = []
    private var queued: [[UInt8]] = []
    private var _shutdownCount = 0
    private var _serviceCalls = 0
    let pipeRead: Int32
    let pipeWrite: Int32

    init() {
        pthread_mutex_init(&lock, nil)
        var fds: [Int32] = [0, 0]
        _ = pipe(&fds)
        pipeRead = fds[0]
        pipeWrite = fds[1]
        for fd in fds { _ = fcntl(fd, F_SETFL, O_NONBLOCK); _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }

    deinit {
        close(pipeRead)
        close(pipeWrite)
        pthread_mutex_destroy(&lock)
    }

    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return body()
    }

    /// Queues a frame for the guest and wakes the I/O thread (like a packet arriving).
    func deliver(_ frame: [UInt8]) {
        locked { queued.append(frame) }
        var b: UInt8 = 1
        _ = write(pipeWrite, &b, 1)
    }

    /// Queues without waking: only hasPendingFrames tells.
    func enqueueSilently(_ frame: [UInt8]) { locked { queued.append(frame) } }

    var transmitted: [[UInt8]] { locked { sent } }
    var pending: Int { locked { queued.count } }
    var shutdownCount: Int { locked { _shutdownCount } }
    var serviceCalls: Int { locked { _serviceCalls } }

    func transmit(_ frame: UnsafeRawBufferPointer) { locked { sent.append(Array(frame)) } }

    func receive(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        locked {
            guard !queued.isEmpty else { return nil }
            let f = queued.removeFirst()
            buffer.copyBytes(from: f)
            return f.count
        }
    }

    func pollDescriptors() -> [pollfd] { [pollfd(fd: pipeRead, events: Int16(POLLIN), revents: 0)] }

    func service(_ ready: [pollfd], now: UInt64) {
        locked { _serviceCalls += 1 }
        if !ready.isEmpty {
            var buf = [UInt8](repeating: 0, count: 64)
            _ = read(pipeRead, &buf, 64)
        }
    }

    var nextDeadline: UInt64? { nil }
    var hasPendingFrames: Bool { locked { !queued.isEmpty } }
    func shutdown() { locked { _shutdownCount += 1 } }
}

/// Drives a transport through the driver's initialisation (§3.1.1) with `features`.
@discardableResult
func negotiate(_ t: VirtioMMIOTransport, features: UInt64) -> UInt32 {
    typealias R = VirtioMMIORegister
    _ = t.write(offset: R.status, size: 4, value: 0)
    _ = t.write(offset: R.status, size: 4, value: VirtioStatus.acknowledge)
    _ = t.write(offset: R.status, size: 4, value: VirtioStatus.acknowledge | VirtioStatus.driver)
    _ = t.write(offset: R.driverFeaturesSel, size: 4, value: 0)
    _ = t.write(offset: R.driverFeatures, size: 4, value: UInt32(truncatingIfNeeded: features))
    _ = t.write(offset: R.driverFeaturesSel, size: 4, value: 1)
    _ = t.write(offset: R.driverFeatures, size: 4, value: UInt32(truncatingIfNeeded: features >> 32))
    _ = t.write(offset: R.status, size: 4, value: VirtioStatus.acknowledge | VirtioStatus.driver | VirtioStatus.featuresOK)
    return t.read(offset: R.status, size: 4)
}

/// Programs queue `index` with `layout` and makes it ready.
func setUpQueue(_ write: (UInt64, UInt32) -> Void, index: UInt32, layout: VirtqueueLayout) -> Void {
    typealias R = VirtioMMIORegister
    write(R.queueSel, index)
    write(R.queueNum, UInt32(layout.size))
    write(R.queueDescLow, UInt32(truncatingIfNeeded: layout.descriptors))
    write(R.queueDescHigh, UInt32(truncatingIfNeeded: layout.descriptors >> 32))
    write(R.queueDriverLow, UInt32(truncatingIfNeeded: layout.driverArea))
    write(R.queueDriverHigh, UInt32(truncatingIfNeeded: layout.driverArea >> 32))
    write(R.queueDeviceLow, UInt32(truncatingIfNeeded: layout.deviceArea))
    write(R.queueDeviceHigh, UInt32(truncatingIfNeeded: layout.deviceArea >> 32))
    write(R.queueReady, 1)
}

let allNetFeatures: UInt64 = VirtioFeature.version1 | VirtioFeature.ringEventIndex | VirtioNetDevice.featureMAC | VirtioNetDevice.featureStatus

/// Polls `condition` every 200 µs for up to `seconds`.
func waitUntil(_ seconds: Double = 2, _ condition: () -> Bool) -> Bool {
    let end = monotonicNanos() + UInt64(seconds * 1e9)
    while monotonicNanos() < end {
        if condition() { return true }
        usleep(200)
    }
    return condition()
}
