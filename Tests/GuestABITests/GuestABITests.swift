import GuestABI
import XCTest

final class GuestABITests: XCTestCase {
    func testBootInfoRoundTrip() throws {
        var info = BootInfo()
        info.platform = .native
        info.memorySize = 128 << 20
        info.kernelEnd = 0x14_0000
        info.imageSize = 12288
        info.argumentsSize = 42
        info.argc = 3
        info.envc = 2
        info.tscFrequencyKHz = 2_596_000
        info.realtimeNanosAtBoot = 1_790_000_000_000_000_000
        info.flags = BootInfo.flagTraceSyscalls
        info.seed = (1, 2, 3, 4)
        info.bootTSC = 99
        info.timeline.kernelEntry = 5
        info.hostname = Array("web-1.example".utf8)
        var page = [UInt8](repeating: 0, count: 4096)
        page.withUnsafeMutableBytes { info.encode(into: $0) }
        let decoded = try page.withUnsafeBytes { try BootInfo(decoding: $0) }
        XCTAssertEqual(decoded, info)
        XCTAssertEqual(decoded.hostname, Array("web-1.example".utf8))
        XCTAssertEqual(Array(page[BootInfo.hostnameOffset..<BootInfo.hostnameOffset + 5]), Array("web-1".utf8))
    }

    /// The layout is a contract with already-built kernels: fields stay where they are.
    func testBootInfoFieldOffsets() {
        var info = BootInfo()
        info.memorySize = 0x1122_3344_5566_7788
        info.argc = 0xaabb_ccdd
        info.bootTSC = 0x0102_0304_0506_0708
        info.workingDirectoryLength = 0x0a0b_0c0d
        info.terminalRows = 0x0132
        info.terminalColumns = 0x0204
        var page = [UInt8](repeating: 0, count: 4096)
        page.withUnsafeMutableBytes { info.encode(into: $0) }
        XCTAssertEqual(Array(page[0..<8]), Array("APUSBOOT".utf8))
        XCTAssertEqual(page[0x10], 0x88)
        XCTAssertEqual(page[0x17], 0x11)
        XCTAssertEqual(page[0x40], 0xdd)
        XCTAssertEqual(page[0x80], 0x08)
        XCTAssertEqual(GuestState.offset + GuestState.size, BootInfo.hostnameOffset)
        XCTAssertEqual(page[0x110], 0x0d)
        XCTAssertEqual(Array(page[0x114..<0x118]), [0x32, 0x01, 0x04, 0x02])
        XCTAssertEqual(NetworkInfo.offset, BootInfo.hostnameOffset + BootInfo.hostnameCapacity + 8)
        XCTAssertEqual(BootInfo.streamsOffset, NetworkInfo.offset + NetworkInfo.size)
        XCTAssertEqual(BootInfo.size, BootInfo.streamsOffset + 3 * 16)
        XCTAssertLessThanOrEqual(BootInfo.size, HostChannel.offset)
        XCTAssertEqual(page.withUnsafeBytes { try? BootInfo(decoding: $0) }, info)
    }

    /// Network addresses are stored in wire order: 10.0.2.15 is the bytes 10, 0, 2, 15.
    func testNetworkInfoLayout() {
        var info = BootInfo()
        info.network.virtioBase = GuestABI.virtioBase.raw
        info.network.virtioStride = 0x1000
        info.network.virtioSlotCount = 1
        info.network.virtioFirstIRQ = 5
        info.network.ipv4Address = 0x0a00_020f
        info.network.ipv4PrefixLength = 24
        info.network.ipv4Gateway = 0x0a00_0202
        info.network.ipv4DNS = 0x0a00_0203
        info.network.ipv6PrefixLength = 64
        info.network.ipv6Address = (0xfd00_0000_0000_0000, 0x0000_0000_0000_000f)
        var page = [UInt8](repeating: 0, count: 4096)
        page.withUnsafeMutableBytes { info.encode(into: $0) }
        let base = NetworkInfo.offset
        XCTAssertEqual(Array(page[base + 0x18..<base + 0x1c]), [10, 0, 2, 15])
        XCTAssertEqual(Array(page[base + 0x1c..<base + 0x20]), [10, 0, 2, 2])
        XCTAssertEqual(page[base + 0x14], 24)
        XCTAssertEqual(page[base + 0x28], 0xfd)
        XCTAssertEqual(page[base + 0x37], 0x0f)
        XCTAssertEqual(page[base + 0x0c], 1)
        XCTAssertEqual(page.withUnsafeBytes { try? BootInfo(decoding: $0) }, info)
    }

    func testWorkingDirectoryEndsTheArgumentBlock() throws {
        let block = try ArgumentBlock.encode(arguments: [Array("prog".utf8)], environment: [Array("A=1".utf8)],
                                             workingDirectory: Array("/app".utf8), capacity: 100)
        XCTAssertEqual(block, Array("prog\u{0}A=1\u{0}/app\u{0}".utf8))
        XCTAssertEqual(try ArgumentBlock.encode(arguments: [Array("p".utf8)], environment: [], capacity: 100), Array("p\u{0}".utf8))
    }

    func testBootInfoRejectsBadInput() {
        var page = [UInt8](repeating: 0, count: 4096)
        page.withUnsafeMutableBytes { BootInfo().encode(into: $0) }
        XCTAssertThrowsError(try page.withUnsafeBytes { try BootInfo(decoding: UnsafeRawBufferPointer(rebasing: $0[0..<16])) }) {
            XCTAssertEqual($0 as? BootInfo.DecodeError, .tooShort)
        }
        var bad = page
        bad[0] ^= 0xff
        XCTAssertThrowsError(try bad.withUnsafeBytes { try BootInfo(decoding: $0) }) {
            XCTAssertEqual($0 as? BootInfo.DecodeError, .badMagic)
        }
        bad = page
        bad[0x08] = 99
        XCTAssertThrowsError(try bad.withUnsafeBytes { try BootInfo(decoding: $0) }) {
            XCTAssertEqual($0 as? BootInfo.DecodeError, .unsupportedVersion(99))
        }
        bad = page
        bad[0x0c] = 7
        XCTAssertThrowsError(try bad.withUnsafeBytes { try BootInfo(decoding: $0) }) {
            XCTAssertEqual($0 as? BootInfo.DecodeError, .unknownPlatform(7))
        }
    }

    func testConsoleRequestRoundTrip() {
        let request = ConsoleRequest(stream: 2, length: 4080, buffer: PhysicalAddress(0x12_3010))
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { request.encode(into: $0) }
        XCTAssertEqual(bytes.withUnsafeBytes { ConsoleRequest(decoding: $0) }, request)
        XCTAssertEqual(bytes[4], 0xf0)
        XCTAssertEqual(bytes[5], 0x0f)
    }

    func testExitStatusEncoding() {
        XCTAssertEqual(ExitStatus.exited(3).encoded, 3)
        XCTAssertEqual(ExitStatus.signaled(11).encoded, 0x10b)
        XCTAssertEqual(ExitStatus(encoded: 0x10b), .signaled(11))
        XCTAssertEqual(ExitStatus(encoded: 255), .exited(255))
        XCTAssertEqual(ExitStatus.signaled(11).shellStatus, 139)
        XCTAssertEqual(ExitStatus.signaled(6).shellStatus, 134)
        XCTAssertEqual(ExitStatus.exited(0).shellStatus, 0)
    }

    func testArgumentBlock() throws {
        let block = try ArgumentBlock.encode(arguments: [Array("./a".utf8), []], environment: [Array("K=V".utf8)], capacity: 100)
        XCTAssertEqual(block, Array("./a\0\0K=V\0".utf8))
        XCTAssertThrowsError(try ArgumentBlock.encode(arguments: [[0x41, 0, 0x42]], environment: [], capacity: 100)) {
            XCTAssertEqual($0 as? ArgumentBlock.EncodeError, .containsNUL)
        }
        XCTAssertThrowsError(try ArgumentBlock.encode(arguments: [Array(repeating: 0x41, count: 100)], environment: [], capacity: 100)) {
            XCTAssertEqual($0 as? ArgumentBlock.EncodeError, .tooLarge(needed: 101, capacity: 100))
        }
    }

    func testSerialFrameDecoderReassemblesAndSkipsNoise() {
        var decoder = SerialFrameDecoder()
        let h = SerialFrame.header(kind: .stdout, length: 3)
        let frame: [UInt8] = [h.0, h.1, h.2, h.3] + Array("abc".utf8)
        let e = SerialFrame.header(kind: .exit, length: 8)
        let exit: [UInt8] = [e.0, e.1, e.2, e.3, 0x0b, 0x01, 0, 0, 0, 0, 0, 0]
        let stream: [UInt8] = [0x00, 0x13] + frame + exit
        var frames: [SerialFrameDecoder.Frame] = []
        for byte in stream { frames += decoder.feed([byte]) }  // one byte at a time
        XCTAssertEqual(frames, [
            .init(kind: SerialFrame.Kind.stdout.rawValue, payload: Array("abc".utf8)),
            .init(kind: SerialFrame.Kind.exit.rawValue, payload: [0x0b, 0x01, 0, 0, 0, 0, 0, 0]),
        ])
        XCTAssertEqual(decoder.pendingCount, 0)
        XCTAssertEqual(decoder.feed(frame.prefix(5)), [])
        XCTAssertEqual(decoder.pendingCount, 5)
    }

    /// Every layout the rule can choose: the direct map 1 GiB aligned in its window with its
    /// whole span, never in the first GiB of the slot (its old fixed place); the kernel 2 MiB
    /// aligned in its window, its span inside one GiB, never at its link address; both
    /// accepted by the kernel's check. arch/entry.S's PVH path uses the same constants.
    func testKernelLayoutChoices() {
        XCTAssertEqual(KernelLayout.directMapSlots, 248)                  // entry.S DIRECT_MAP_SLOTS
        XCTAssertEqual(GuestABI.directMapWindowStart, 0x7f80_4000_0000)   // entry.S DIRECT_MAP_WINDOW
        XCTAssertEqual(KernelLayout.kernelSlots, 63_116)                  // entry.S KERNEL_SLOTS
        XCTAssertEqual(KernelLayout.kernelSlotsPerGiB, 509)               // entry.S KERNEL_SLOTS_PER_GIB
        XCTAssertEqual(GuestABI.kernelWindowStart, 0x7fe0_0000_0000)      // entry.S KERNEL_WINDOW
        XCTAssertEqual((GuestABI.kernelWindowStart >> 30) & 0x1ff, 384)   // entry.S KERNEL_WINDOW_FIRST_GIB
        XCTAssertEqual(GuestABI.kernelSpan, 4 << 21)                      // entry.S maps 4 large pages
        let gib: UInt64 = 1 << 30
        var directMaps = Set<UInt64>(), kernels = Set<UInt64>()
        var x: UInt64 = 0x9e37_79b9_7f4a_7c15
        var randoms: [UInt64] = Array(0..<300) + [.max, UInt64(UInt32.max), 248 * 63_116 - 1]
        for _ in 0..<20_000 {  // a fixed xorshift sequence: spread over the whole range
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            randoms.append(x)
        }
        for random in randoms {
            let layout = KernelLayout(random: random)
            let base = layout.directMapBase, kernel = layout.kernelVirtualBase
            XCTAssertEqual(base & (gib - 1), 0)
            XCTAssertGreaterThanOrEqual(base, GuestABI.kernelRegionStart + gib)
            XCTAssertLessThanOrEqual(base + GuestABI.maxDirectMapSpan, GuestABI.directMapWindowEnd)
            XCTAssertEqual(kernel & ((1 << 21) - 1), 0)
            XCTAssertGreaterThanOrEqual(kernel, GuestABI.kernelWindowStart)
            XCTAssertLessThanOrEqual(kernel + GuestABI.kernelSpan, GuestABI.kernelWindowEnd)
            XCTAssertEqual(kernel / gib, (kernel + GuestABI.kernelSpan - 1) / gib, "kernel span crosses a GiB")
            XCTAssertEqual(KernelLayout(directMapBase: base, kernelVirtualBase: kernel), layout)
            directMaps.insert(base)
            kernels.insert(kernel)
        }
        XCTAssertEqual(UInt64(directMaps.count), KernelLayout.directMapSlots)
        XCTAssertGreaterThan(kernels.count, 15_000)
        // What the kernel refuses: unaligned, the old places, past the windows, the app's half.
        let goodKernel = GuestABI.kernelWindowStart
        let goodDirect = GuestABI.directMapWindowStart
        for bad: UInt64 in [GuestABI.directMapWindowStart + 0x1000, GuestABI.kernelRegionStart,
                            GuestABI.directMapWindowEnd - GuestABI.maxDirectMapSpan + gib,
                            GuestABI.heapWindowStart, 0x7000_0000_0000, 0] {
            XCTAssertNil(KernelLayout(directMapBase: bad, kernelVirtualBase: goodKernel), "accepted \(String(bad, radix: 16))")
        }
        for bad: UInt64 in [GuestABI.kernelLinkBase, GuestABI.kernelWindowStart + 0x1000,
                            GuestABI.kernelWindowStart + gib - GuestABI.kernelSpan + (2 << 20),
                            GuestABI.kernelWindowStart - (2 << 20), 0x40_0000] {
            XCTAssertNil(KernelLayout(directMapBase: goodDirect, kernelVirtualBase: bad), "accepted \(String(bad, radix: 16))")
        }
    }

    func testMemoryMapIsConsistent() {
        XCTAssertLessThan(GuestABI.argumentsAddress.raw + GuestABI.argumentsCapacity, GuestABI.bootPageTablesAddress.raw + 1)
        XCTAssertLessThanOrEqual(GuestABI.bootPageTablesAddress.raw + GuestABI.bootPageTablesSize, GuestABI.kernelPhysicalBase.raw)
        XCTAssertLessThanOrEqual(GuestABI.maxMemorySize, GuestABI.doorbellAddress.raw)
        XCTAssertLessThan(GuestABI.doorbellAddress.raw, GuestABI.imageAddress.raw)
        // Everything of the kernel's lives in the last PML4 slot of the lower half.
        XCTAssertEqual(GuestABI.kernelRegionStart >> 39, 255)
        XCTAssertEqual(GuestABI.kernelLinkBase >> 39, 255)
        XCTAssertLessThan(GuestABI.kernelLinkBase + GuestABI.kernelSpan, 1 << 47)
        XCTAssertLessThanOrEqual(GuestABI.directMapWindowEnd, GuestABI.heapWindowStart)
        XCTAssertLessThanOrEqual(GuestABI.heapWindowEnd, GuestABI.kernelWindowStart)
        XCTAssertLessThanOrEqual(GuestABI.kernelWindowEnd, GuestABI.kernelLinkBase)
        XCTAssertLessThanOrEqual(QEMUBundle.argumentsOffset + GuestABI.argumentsCapacity, QEMUBundle.imageOffset)
    }
}
