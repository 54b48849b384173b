import CKVM
import GuestABI
@testable import VMM
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The device in a real VM (skipped without /dev/kvm): a hand-assembled guest reads the
/// device's MagicValue (a userspace MMIO exit answered by the device) and writes QueueNotify
/// N times, then exits through the exit doorbell. With KVM_IOEVENTFD the notifies never
/// leave the host kernel (the VMM sees no exit for them); without, each is one MMIO exit.
/// Prints what one notify costs each way on this host.
final class VirtioKVMTests: XCTestCase {
    /// The entry point in the ELF (at the link address; the VMM moves it to the layout's).
    static let entry = GuestABI.kernelLinkBase + 0x10_0000
    /// The hand-assembled kernels use absolute addresses and do not relocate: a fixed layout.
    static let layout = KernelLayout(random: 7)

    /// A minimal kernel ELF: on pvm (rdi = 1) enter native mode, check the magic, notify
    /// queue 1 `count` times, exit with 0 (1 if the magic was wrong).
    static func guestKernel(notifies count: UInt32) -> [UInt8] {
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let device = Self.layout.directMapBase + GuestABI.virtioBase.raw
        let exitDoorbell = Self.layout.directMapBase + GuestABI.doorbellAddress.raw + Doorbell.exit.rawValue
        var code: [UInt8] = []
        code += [0x83, 0xff, 0x01, 0x75, 0x0e]                   // cmp edi,1; jne +14
        code += [0xb9] + le(UInt32(0x4b56_4d10))                 // mov ecx, PVM mode MSR
        code += [0xb8, 1, 0, 0, 0, 0x31, 0xd2, 0x0f, 0x30]       // mov eax,1; xor edx,edx; wrmsr
        code += [0x48, 0xbb] + le(device)                        // movabs rbx, device window
        code += [0x8b, 0x03]                                     // mov eax,[rbx]  (MagicValue)
        code += [0x3d] + le(UInt32(0x7472_6976))                 // cmp eax, "virt"
        code += [0x75, 0x18]                                     // jne fail
        code += [0xb9] + le(count)                               // mov ecx, count
        code += [0x85, 0xc9, 0x74, 0x0b]                         // test ecx,ecx; jz done
        code += [0xc7, 0x43, 0x50, 1, 0, 0, 0]                   // loop: mov dword [rbx+0x50], 1
        code += [0xff, 0xc9, 0x75, 0xf5]                         // dec ecx; jnz loop
        code += [0x31, 0xf6, 0xeb, 0x05]                         // done: xor esi,esi; jmp exit
        code += [0xbe, 1, 0, 0, 0]                               // fail: mov esi,1
        code += [0x48, 0xbb] + le(exitDoorbell)                  // exit: movabs rbx, exit doorbell
        code += [0x48, 0x89, 0x33, 0xf4, 0xeb, 0xfe]             // mov [rbx],rsi; hlt; jmp .
        precondition(code.count == 0x53)

        var elf = [UInt8](repeating: 0, count: 0x1000)
        elf.replaceSubrange(0..<8, with: [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0])
        func put(_ bytes: [UInt8], _ at: Int) { elf.replaceSubrange(at..<at + bytes.count, with: bytes) }
        put(le(UInt16(2)), 16); put(le(UInt16(0x3e)), 18); put(le(UInt32(1)), 20); put(le(entry), 24)
        put(le(UInt64(64)), 32); put(le(UInt16(64)), 52); put(le(UInt16(56)), 54); put(le(UInt16(1)), 56)
        put(le(UInt16(64)), 58)
        put(le(UInt32(1)), 64); put(le(UInt32(5)), 68); put(le(UInt64(0x1000)), 72)
        put(le(entry), 80); put(le(UInt64(0x10_0000)), 88)
        put(le(UInt64(code.count)), 96); put(le(UInt64(0x1000)), 104); put(le(UInt64(0x1000)), 112)
        return elf + code
    }

    struct Measurement {
        var status: ExitStatus
        var nanos: UInt64
        var exits: Int
        var ioeventfd: Bool
        var irqfd: Bool
    }

    func boot(notifies: UInt32, accelerate: Bool, backend: FakeBackend = FakeBackend()) throws -> Measurement? {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else { return nil }
        let kernel = Self.guestKernel(notifies: notifies)
        return try kernel.withUnsafeBytes { bytes in
            let vm: VirtualMachine
            do throws(VMMError) { vm = try VirtualMachine() } catch { throw XCTSkip("no KVM: \(error.message)") }
            var config = VMConfiguration(memorySize: 16 << 20, kernel: bytes, image: UnsafeRawBufferPointer(start: nil, count: 0),
                                         arguments: [], environment: [], seed: (1, 2, 3, 4))
            config.timeoutMilliseconds = 20_000
            config.kernelLayout = Self.layout
            var network = NetworkConfiguration(backend: backend, mac: .derived(from: 9),
                                               ipv4: .init(address: .init(10, 0, 3, 2), prefixLength: 24))
            network.kernelAcceleration = accelerate
            config.network = network
            var console = RecordingConsole()
            let result: RunResult
            do throws(VMMError) { result = try vm.boot(config, sink: &console) } catch { XCTFail(error.message); return nil }
            let t = result.timeline
            return Measurement(status: result.status, nanos: t.exited - t.firstRun, exits: t.exitCount,
                               ioeventfd: vm.networkDevice?.usesIOEventFD ?? false, irqfd: vm.networkDevice?.usesIRQFD ?? false)
        }
    }

    func testGuestNotifiesWithAndWithoutIOEventFD() throws {
        let n: UInt32 = 4000
        guard let base = try boot(notifies: 0, accelerate: true) else { throw XCTSkip("no /dev/kvm") }
        XCTAssertEqual(base.status, .exited(0), "the guest did not read the device's magic")
        let fast = try XCTUnwrap(boot(notifies: n, accelerate: true))
        let baseSlow = try XCTUnwrap(boot(notifies: 0, accelerate: false))
        let slow = try XCTUnwrap(boot(notifies: n, accelerate: false))
        for m in [fast, baseSlow, slow] { XCTAssertEqual(m.status, .exited(0)) }
        XCTAssertFalse(slow.ioeventfd)
        XCTAssertGreaterThanOrEqual(slow.exits, Int(n), "every notify is an exit without ioeventfd")
        if fast.ioeventfd {
            XCTAssertLessThan(fast.exits, 100, "notifies reached the VMM despite ioeventfd")
        }
        let perFast = Double(fast.nanos) - Double(base.nanos)
        let perSlow = Double(slow.nanos) - Double(baseSlow.nanos)
        let line = "virtio notify cost on this host: ioeventfd \(fast.ioeventfd ? "on" : "unavailable"), irqfd \(fast.irqfd ? "on" : "unavailable"); "
            + "\(Int(perFast) / Int(n)) ns per notify with ioeventfd (\(fast.exits) exits), "
            + "\(Int(perSlow) / Int(n)) ns per notify via userspace MMIO exit (\(slow.exits) exits)\n"
        _ = line.withCString { write(2, $0, strlen($0)) }
    }

    /// Host-side cost of raising the device's interrupt: an irqfd write vs a KVM_IRQ_LINE
    /// pulse (two ioctls). No guest handler is involved (delivery is not timed).
    func testInterruptInjectionCost() throws {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else { throw XCTSkip("no /dev/kvm") }
        let vm = try VirtualMachine()
        XCTAssertEqual(ckvm_ioctl_int(vm.vm, CKVM_CREATE_IRQCHIP, 0), 0)
        let gsi = GuestABI.virtioFirstIRQ
        let n = 20_000
        var start = monotonicNanos()
        for _ in 0..<n {
            XCTAssertEqual(ckvm_irq_line(vm.vm, gsi, 1), 0)
            _ = ckvm_irq_line(vm.vm, gsi, 0)
        }
        let line = (monotonicNanos() - start) / UInt64(n)
        var irqfdCost: UInt64 = 0
        if ckvm_ioctl_int(vm.vm, CKVM_CHECK_EXTENSION, UInt(CKVM_CAP_IRQFD)) > 0 {
            let fd = ckvm_eventfd()
            defer { close(fd) }
            XCTAssertEqual(ckvm_irqfd(vm.vm, fd, gsi, 1), 0)
            start = monotonicNanos()
            var one: UInt64 = 1
            for _ in 0..<n { XCTAssertEqual(write(fd, &one, 8), 8) }
            irqfdCost = (monotonicNanos() - start) / UInt64(n)
            XCTAssertEqual(ckvm_irqfd(vm.vm, fd, gsi, 0), 0)
        }
        let text = "virtio interrupt cost on this host (VMM side): KVM_IRQ_LINE pulse \(line) ns, irqfd write \(irqfdCost) ns\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
    }

    // MARK: a minimal driver in the guest

    /// Just enough x86-64 to write a guest driver by hand: 32-bit register stores, polling
    /// a 16-bit index, rel32 jumps to labels.
    struct Assembler {
        var code: [UInt8] = []
        var labels: [String: Int] = [:]
        var fixups: [(at: Int, label: String)] = []

        static func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        mutating func label(_ name: String) { labels[name] = code.count }
        mutating func bytes(_ b: [UInt8]) { code += b }
        /// mov dword [rbx + offset], value
        mutating func store(_ offset: UInt64, _ value: UInt32) { code += [0xc7, 0x83] + Self.le(UInt32(offset)) + Self.le(value) }
        mutating func movabs(rax value: UInt64) { code += [0x48, 0xb8] + Self.le(value) }
        mutating func movabs(rbx value: UInt64) { code += [0x48, 0xbb] + Self.le(value) }
        mutating func jump(_ opcode: [UInt8], to label: String) {
            code += opcode
            fixups.append((code.count, label))
            code += [0, 0, 0, 0]
        }
        /// Spins until the u16 at virtual `address` equals `value`, else jumps to `timeout`.
        mutating func waitU16(at address: UInt64, equals value: UInt32, timeout: String) {
            movabs(rax: address)
            code += [0x49, 0xb8] + Self.le(UInt64(4_000_000_000))  // movabs r8, spin limit
            let loop = code.count
            code += [0x0f, 0xb7, 0x08]                  // movzx ecx, word [rax]
            code += [0x81, 0xf9] + Self.le(value)         // cmp ecx, value
            code += [0x74, 0x0a]                        // je past the loop
            code += [0x49, 0xff, 0xc8]                  // dec r8
            code += [0x75, UInt8(bitPattern: Int8(loop - (code.count + 2)))]  // jnz loop
            jump([0xe9], to: timeout)
        }
        func finished() -> [UInt8] {
            var out = code
            for f in fixups {
                let rel = Int32(labels[f.label]! - (f.at + 4))
                out.replaceSubrange(f.at..<f.at + 4, with: Self.le(rel))
            }
            return out
        }
    }

    /// Guest-physical layout of the driver guest's data (inside its PT_LOAD segment).
    enum DriverGuest {
        static let base: UInt64 = 0x10_0000
        static let txDescriptors = base + 0x1000, txAvail = base + 0x1100, txUsed = base + 0x1200
        static let rxDescriptors = base + 0x1400, rxAvail = base + 0x1500, rxUsed = base + 0x1600
        static let txBuffer = base + 0x3000, rxBuffer = base + 0x4000
        static let frame: [UInt8] = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 1, 2, 3, 0x88, 0xb5, 0xc0, 0xde]
        static let segmentSize = 0x5000
    }

    /// A kernel that drives the device like a real driver (reset, features, both queues of
    /// size 4, DRIVER_OK), transmits one frame, posts one receive buffer, waits for both used
    /// rings, and exits 0 if the received frame starts with 0xab (3: wrong bytes, 4/5: a
    /// used ring never moved).
    static func driverKernel() -> [UInt8] {
        typealias G = DriverGuest
        let virt = { (p: UInt64) in Self.layout.kernelVirtualBase + p }  // where the code runs
        var a = Assembler()
        a.bytes([0x83, 0xff, 0x01, 0x75, 0x0e, 0xb9] + Assembler.le(UInt32(0x4b56_4d10)) + [0xb8, 1, 0, 0, 0, 0x31, 0xd2, 0x0f, 0x30])
        a.movabs(rbx: Self.layout.directMapBase + GuestABI.virtioBase.raw)
        typealias R = VirtioMMIORegister
        a.store(R.status, 0)
        a.store(R.status, 1)
        a.store(R.status, 3)
        let features = allNetFeatures
        a.store(R.driverFeaturesSel, 0); a.store(R.driverFeatures, UInt32(truncatingIfNeeded: features))
        a.store(R.driverFeaturesSel, 1); a.store(R.driverFeatures, UInt32(truncatingIfNeeded: features >> 32))
        a.store(R.status, 0xb)
        for (q, d, av, u) in [(0, G.rxDescriptors, G.rxAvail, G.rxUsed), (1, G.txDescriptors, G.txAvail, G.txUsed)] {
            a.store(R.queueSel, UInt32(q)); a.store(R.queueNum, 4)
            a.store(R.queueDescLow, UInt32(d)); a.store(R.queueDriverLow, UInt32(av)); a.store(R.queueDeviceLow, UInt32(u))
            a.store(R.queueReady, 1)
        }
        a.store(R.status, 0xf)
        a.store(R.queueNotify, 0)
        a.store(R.queueNotify, 1)
        a.waitU16(at: virt(G.txUsed + 2), equals: 1, timeout: "txTimeout")
        a.waitU16(at: virt(G.rxUsed + 2), equals: 1, timeout: "rxTimeout")
        a.movabs(rax: virt(G.rxBuffer + 12))
        a.bytes([0x0f, 0xb6, 0x08, 0x81, 0xf9] + Assembler.le(UInt32(0xab)))  // movzx ecx, byte [rax]; cmp ecx, 0xab
        a.jump([0x0f, 0x85], to: "wrong")
        a.bytes([0x31, 0xf6]); a.jump([0xe9], to: "exit")                     // xor esi, esi
        a.label("wrong"); a.bytes([0xbe, 3, 0, 0, 0]); a.jump([0xe9], to: "exit")
        a.label("txTimeout"); a.bytes([0xbe, 4, 0, 0, 0]); a.jump([0xe9], to: "exit")
        a.label("rxTimeout"); a.bytes([0xbe, 5, 0, 0, 0])
        a.label("exit")
        a.movabs(rbx: Self.layout.directMapBase + GuestABI.doorbellAddress.raw + Doorbell.exit.rawValue)
        a.bytes([0x48, 0x89, 0x33, 0xf4, 0xeb, 0xfe])

        // The segment: code, then the rings and buffers at their offsets.
        var segment = [UInt8](repeating: 0, count: 0x3100)
        let code = a.finished()
        segment.replaceSubrange(0..<code.count, with: code)
        func put(_ bytes: [UInt8], _ physical: UInt64) {
            let o = Int(physical - G.base)
            segment.replaceSubrange(o..<o + bytes.count, with: bytes)
        }
        let le = { (v: any FixedWidthInteger) -> [UInt8] in
            switch v {
            case let x as UInt64: return Assembler.le(x)
            case let x as UInt32: return Assembler.le(x)
            case let x as UInt16: return Assembler.le(x)
            default: return []
            }
        }
        put(le(G.txBuffer) + le(UInt32(12 + G.frame.count)) + le(UInt16(0)) + le(UInt16(0)), G.txDescriptors)
        put(le(UInt16(0)) + le(UInt16(1)) + le(UInt16(0)), G.txAvail)
        put([UInt8](repeating: 0, count: 12) + G.frame, G.txBuffer)
        put(le(G.rxBuffer) + le(UInt32(2048)) + le(VirtioRing.descriptorWrite) + le(UInt16(0)), G.rxDescriptors)
        put(le(UInt16(0)) + le(UInt16(1)) + le(UInt16(0)), G.rxAvail)

        var elf = [UInt8](repeating: 0, count: 0x1000)
        func at(_ bytes: [UInt8], _ o: Int) { elf.replaceSubrange(o..<o + bytes.count, with: bytes) }
        at([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0)
        at(le(UInt16(2)), 16); at(le(UInt16(0x3e)), 18); at(le(UInt32(1)), 20); at(le(GuestABI.kernelLinkBase + G.base), 24)
        at(le(UInt64(64)), 32); at(le(UInt16(64)), 52); at(le(UInt16(56)), 54); at(le(UInt16(1)), 56); at(le(UInt16(64)), 58)
        at(le(UInt32(1)), 64); at(le(UInt32(7)), 68); at(le(UInt64(0x1000)), 72)
        at(le(GuestABI.kernelLinkBase + G.base), 80); at(le(G.base), 88)  // the ELF's addresses are link addresses
        at(le(UInt64(segment.count)), 96); at(le(UInt64(G.segmentSize)), 104); at(le(UInt64(0x1000)), 112)
        return elf + segment
    }

    /// Frames both ways through a real VM, with and without the KVM accelerations.
    func testGuestDriverMovesFramesBothWays() throws {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else { throw XCTSkip("no /dev/kvm") }
        let kernel = Self.driverKernel()
        for accelerate in [true, false] {
            let backend = FakeBackend()
            backend.enqueueSilently([0xab, 0xcd] + [UInt8](repeating: 0x11, count: 58))
            try kernel.withUnsafeBytes { bytes in
                let vm = try VirtualMachine()
                var config = VMConfiguration(memorySize: 16 << 20, kernel: bytes, image: UnsafeRawBufferPointer(start: nil, count: 0),
                                             arguments: [], environment: [], seed: (1, 2, 3, 4))
                config.timeoutMilliseconds = 20_000
            config.kernelLayout = Self.layout
                var network = NetworkConfiguration(backend: backend, mac: .derived(from: 5),
                                                   ipv4: .init(address: .init(10, 0, 3, 2), prefixLength: 24))
                network.kernelAcceleration = accelerate
                config.network = network
                var console = RecordingConsole()
                do throws(VMMError) {
                    let result = try vm.boot(config, sink: &console)
                    XCTAssertEqual(result.status, .exited(0), "accelerate \(accelerate): 3 wrong frame, 4 no TX completion, 5 no RX")
                } catch {
                    XCTFail("accelerate \(accelerate): \(error.message)")
                }
            }
            XCTAssertEqual(backend.transmitted, [DriverGuest.frame], "accelerate \(accelerate)")
            XCTAssertEqual(backend.pending, 0)
            XCTAssertEqual(backend.shutdownCount, 1)
        }
    }
}
