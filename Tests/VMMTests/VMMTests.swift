import GuestABI
import VMM
import XCTest

/// Records what the guest sent; stdin is a fixed byte string.
struct RecordingConsole: ConsoleSink {
    var written: [(ConsoleStream, [UInt8])] = []
    var input: [UInt8] = Array("typed\n".utf8)

    mutating func write(_ stream: ConsoleStream, _ bytes: UnsafeRawBufferPointer) {
        written.append((stream, Array(bytes)))
    }

    var slept: [UInt64] = []
    mutating func sleep(nanoseconds: UInt64) { slept.append(nanoseconds) }

    mutating func readStdin(into buffer: UnsafeMutableRawBufferPointer, nonblocking: Bool) -> Int {
        let n = min(buffer.count, input.count)
        buffer.copyBytes(from: input.prefix(n))
        input.removeFirst(n)
        return n
    }
}

/// The doorbell handler is fed synthetic exits against fake guest memory: the guest is
/// hostile, and no request may reach outside guest memory or crash the host.
final class DoorbellTests: XCTestCase {
    var ram = [UInt8](repeating: 0, count: 64 * 1024)

    func withMemory<T>(_ body: (GuestMemory) -> T) -> T {
        ram.withUnsafeMutableBytes { raw in
            var memory = GuestMemory()
            memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0), size: UInt64(raw.count), host: raw.baseAddress!))
            return body(memory)
        }
    }

    func putRequest(at address: Int, stream: UInt32, length: UInt32, buffer: UInt64) {
        ram.withUnsafeMutableBytes {
            ConsoleRequest(stream: stream, length: length, buffer: PhysicalAddress(buffer))
                .encode(into: UnsafeMutableRawBufferPointer(rebasing: $0[address..<address + 16]))
        }
    }

    func testConsoleWriteGoesToItsStream() {
        ram.replaceSubrange(0x2000..<0x2005, with: Array("hello".utf8))
        putRequest(at: 0x1000, stream: 2, length: 5, buffer: 0x2000)
        var console = RecordingConsole()
        let outcome = withMemory { handleDoorbell(offset: Doorbell.console.rawValue, value: 0x1000, memory: $0, sink: &console) }
        XCTAssertEqual(outcome, .resume)
        XCTAssertEqual(console.written.count, 1)
        XCTAssertEqual(console.written.first?.0, .stderr)
        XCTAssertEqual(console.written.first?.1, Array("hello".utf8))
    }

    func testExitCarriesStatus() {
        var console = RecordingConsole()
        let outcome = withMemory { handleDoorbell(offset: Doorbell.exit.rawValue, value: 0x10b, memory: $0, sink: &console) }
        XCTAssertEqual(outcome, .exit(.signaled(11)))
    }

    func testRequestsOutsideGuestMemoryAreRejected() {
        var console = RecordingConsole()
        withMemory { memory in
            // The request itself outside memory, straddling the end, and a huge address.
            for address: UInt64 in [0x1_0000, 0xfff8, UInt64.max - 4] {
                guard case .rejected = handleDoorbell(offset: 0, value: address, memory: memory, sink: &console) else {
                    return XCTFail("request at \(address) accepted")
                }
            }
        }
        // A buffer that overflows the end of memory, or wraps around.
        for (buffer, length) in [(UInt64(0xff00), UInt32(0x200)), (UInt64.max - 1, UInt32(16))] {
            putRequest(at: 0x100, stream: 1, length: length, buffer: buffer)
            let outcome = withMemory { handleDoorbell(offset: 0, value: 0x100, memory: $0, sink: &console) }
            guard case .rejected = outcome else { return XCTFail("buffer \(buffer)+\(length) accepted") }
        }
        putRequest(at: 0x100, stream: 9, length: 1, buffer: 0x200)
        guard case .rejected = withMemory({ handleDoorbell(offset: 0, value: 0x100, memory: $0, sink: &console) }) else {
            return XCTFail("unknown stream accepted")
        }
        guard case .rejected = withMemory({ handleDoorbell(offset: 0x40, value: 0, memory: $0, sink: &console) }) else {
            return XCTFail("unknown doorbell accepted")
        }
        XCTAssertTrue(console.written.isEmpty)
    }

    func testStdinReadAnswersInTheRequest() {
        putRequest(at: 0x100, stream: 0, length: 64, buffer: 0x400)
        var console = RecordingConsole()
        let outcome = withMemory { handleDoorbell(offset: Doorbell.stdinRead.rawValue, value: 0x100, memory: $0, sink: &console) }
        XCTAssertEqual(outcome, .resume)
        let answer = ram.withUnsafeBytes { ConsoleRequest(decoding: UnsafeRawBufferPointer(rebasing: $0[0x100..<0x110])) }
        XCTAssertEqual(answer.stream, 0)
        XCTAssertEqual(answer.length, 6)
        XCTAssertEqual(Array(ram[0x400..<0x406]), Array("typed\n".utf8))
    }

    func testSleepAsksTheHost() {
        var console = RecordingConsole()
        let outcome = withMemory { handleDoorbell(offset: Doorbell.sleep.rawValue, value: 2_500_000, memory: $0, sink: &console) }
        XCTAssertEqual(outcome, .resume)
        XCTAssertEqual(console.slept, [2_500_000])
    }

    /// A read-only region (a store image mapped PROT_READ) can be read from, never written:
    /// a stdin read aimed at it is rejected instead of faulting the host.
    func testStdinReadIntoReadOnlyMemoryIsRejected() {
        let image = [UInt8](repeating: 0xee, count: 4096)
        putRequest(at: 0x100, stream: 0, length: 64, buffer: 0x1_0000_0000)
        putRequest(at: 0x200, stream: 1, length: 4, buffer: 0x1_0000_0000)
        var console = RecordingConsole()
        image.withUnsafeBytes { imageBytes in
            ram.withUnsafeMutableBytes { raw in
                var memory = GuestMemory()
                memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0), size: UInt64(raw.count), host: raw.baseAddress!))
                memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0x1_0000_0000), size: 4096,
                                             host: UnsafeMutableRawPointer(mutating: imageBytes.baseAddress!), writable: false))
                let read = handleDoorbell(offset: Doorbell.stdinRead.rawValue, value: 0x100, memory: memory, sink: &console)
                guard case .rejected(let why) = read else { return XCTFail("stdin read into read-only memory: \(read)") }
                XCTAssertTrue(why.contains("writable"), why)
                XCTAssertNil(memory.bytes(at: PhysicalAddress(0x1_0000_0000), count: 1, writable: true))
                XCTAssertEqual(handleDoorbell(offset: Doorbell.console.rawValue, value: 0x200, memory: memory, sink: &console), .resume)
            }
        }
        XCTAssertEqual(console.written.map { $0.1 }, [[0xee, 0xee, 0xee, 0xee]], "writing out of the image is fine")
        XCTAssertEqual(console.input, Array("typed\n".utf8), "nothing was read")
    }

    func testPanicCarriesMessage() {
        ram.replaceSubrange(0x800..<0x804, with: Array("oops".utf8))
        putRequest(at: 0x100, stream: 3, length: 4, buffer: 0x800)
        var console = RecordingConsole()
        let outcome = withMemory { handleDoorbell(offset: Doorbell.panic.rawValue, value: 0x100, memory: $0, sink: &console) }
        XCTAssertEqual(outcome, .panic("oops"))
    }

    /// The guest chooses the panic text's length: the host copies a bounded prefix, whatever
    /// the guest asked for (all of guest memory here).
    func testPanicTextIsBoundedAndEscaped() {
        for i in 0..<ram.count { ram[i] = UInt8(ascii: "A") }
        ram.replaceSubrange(0x800..<0x806, with: [0x1b, 0x5b, 0x32, 0x4a, 0x07, 0x0a])  // ESC [ 2 J, BEL, newline
        putRequest(at: 0x100, stream: 3, length: UInt32(ram.count - 0x800), buffer: 0x800)
        var console = RecordingConsole()
        let outcome = withMemory { handleDoorbell(offset: Doorbell.panic.rawValue, value: 0x100, memory: $0, sink: &console) }
        guard case .panic(let text) = outcome else { return XCTFail("expected a panic, got \(outcome)") }
        XCTAssertLessThan(text.utf8.count, GuestText.panicLimit + 200, "the host copy is bounded")
        XCTAssertTrue(text.hasPrefix("\\x1b[2J\\x07\nAAA"), "control bytes are shown escaped: \(text.prefix(20))")
        XCTAssertFalse(text.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 })
        XCTAssertTrue(text.hasSuffix("(\(ram.count - 0x800 - GuestText.panicLimit) more bytes not shown)"))
    }
}

final class BootSetupTests: XCTestCase {
    func testPageTablesMapKernelAndDirectMap() throws {
        var ram = [UInt8](repeating: 0, count: 0x2_0000)
        try ram.withUnsafeMutableBytes { raw in
            var memory = GuestMemory()
            memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0), size: UInt64(raw.count), host: raw.baseAddress!))
            let layout = KernelLayout(random: 0x1234_5678_9abc)
            try BootSetup.writePageTables(into: memory, directMapSpan: 5 << 30, layout: layout, userAccessible: true)
            func entry(_ table: UInt64, _ index: Int) -> UInt64 {
                UnsafeRawBufferPointer(raw).readLE(UInt64.self, at: Int(table) + index * 8)
            }
            // Walk a virtual address through the tables to its physical address.
            // Returns the physical address and whether the leaf may be executed (NX clear).
            func translate(_ virtual: UInt64) -> (physical: UInt64, executable: Bool)? {
                var table = GuestABI.bootPageTablesAddress.raw
                for level in stride(from: 3, through: 1, by: -1) {
                    let e = entry(table, Int((virtual >> UInt64(12 + 9 * level)) & 0x1ff))
                    guard e & 1 != 0, e & 4 != 0 else { return nil }  // present, user (pvm)
                    if level == 1 {
                        XCTAssertNotEqual(e & 0x80, 0)
                        return ((e & 0x000f_ffff_ffe0_0000) | (virtual & 0x1f_ffff), e >> 63 == 0)
                    }
                    table = e & 0x000f_ffff_ffff_f000
                }
                return nil
            }
            let direct = layout.directMapBase
            let kernel = layout.kernelVirtualBase
            XCTAssertEqual(translate(kernel + 0x10_1234)?.physical, 0x10_1234)
            XCTAssertEqual(translate(kernel + 0x10_1234)?.executable, true)
            XCTAssertEqual(translate(kernel + GuestABI.kernelSpan - 1)?.physical, GuestABI.kernelSpan - 1)
            XCTAssertNil(translate(kernel + GuestABI.kernelSpan))
            XCTAssertNil(translate(GuestABI.kernelLinkBase + 0x10_0000))  // never at the link address
            XCTAssertEqual(translate(direct + 0x1_2345_6000)?.physical, 0x1_2345_6000)
            XCTAssertEqual(translate(direct + GuestABI.doorbellAddress.raw)?.physical, GuestABI.doorbellAddress.raw)
            XCTAssertEqual(translate(direct + (5 << 30) - 1)?.physical, (5 << 30) - 1)
            // No data page has an executable alias: the whole direct map is NX.
            for offset: UInt64 in [0, 0x10_1000, 0x1_2345_6000, (5 << 30) - 1] {
                XCTAssertEqual(translate(direct + offset)?.executable, false, "direct map + \(offset)")
            }
            XCTAssertNil(translate(direct + (5 << 30)))
            XCTAssertNil(translate(0x40_0000))  // the app's half is empty at boot
            // The direct map's old fixed place (the first GiB of the kernel's slot) is empty.
            XCTAssertNil(translate(GuestABI.kernelRegionStart + 0x1000))
        }
    }

    func testKernelLoaderRejectsGarbage() {
        var ram = [UInt8](repeating: 0, count: 4096)
        let garbage = [UInt8](repeating: 0x7f, count: 200)
        ram.withUnsafeMutableBytes { raw in
            var memory = GuestMemory()
            memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0), size: UInt64(raw.count), host: raw.baseAddress!))
            let bytes = UnsafeRawBufferPointer(start: garbage.withUnsafeBytes { $0.baseAddress }, count: garbage.count)
            do throws(BootSetup.Error) {
                _ = try BootSetup.loadKernel(bytes, into: memory)
                XCTFail("garbage loaded as a kernel")
            } catch {
                XCTAssertTrue(error.message.contains("not a loadable ELF"), error.message)
            }
        }
    }
}
