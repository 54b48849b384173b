// Guest ABI harness: everything the two sides decode from memory the other side wrote.
//   - The kernel decodes BootInfo (and its GuestState, Timeline and NetworkInfo blocks) from
//     the boot page; ConsoleRequest answers. Checked: a decoded page re-encodes to the same
//     bytes (all but the reserved ones), and decoding that again gives the same value.
//   - The VMM handles doorbell writes from a hostile guest (`handleDoorbell`: console,
//     panic and stdin requests at guest addresses, exit status, sleep). Checked: every
//     buffer it hands the console lies inside guest memory, stdin answers stay inside the
//     request, unknown doorbells are rejected, exit statuses round-trip.
//   - The QEMU launcher decodes serial frames from the guest (`SerialFrameDecoder`). Checked:
//     any split of the byte stream gives the same frames, and frames re-encode.
//
// Input: byte 0 chooses the part (mod 3); the rest is that part's input (see each function).
import FuzzSupport
import GuestABI
import VMM

func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(inputBuffer(data, size))
    switch input.u8() % 3 {
    case 0: bootPage(input.rest())
    case 1: doorbells(&input)
    default: serialFrames(&input)
    }
    return 0
}

// MARK: Boot info page

/// Bytes of the boot info that BootInfo does not carry: the reserved u32 after
/// workingDirectoryLength, the three reserved bytes after ipv4PrefixLength (both encoded as
/// zero), and the GuestState block (the kernel stores it directly; the encoder leaves it).
let reservedBootInfoBytes = Set(0x114..<0x118).union((NetworkInfo.offset + 0x15)..<(NetworkInfo.offset + 0x18))
    .union(GuestState.offset..<(GuestState.offset + GuestState.size))

func bootPage(_ bytes: UnsafeRawBufferPointer) {
    if bytes.count >= ConsoleRequest.size {
        let request = ConsoleRequest(decoding: bytes)
        var encoded = [UInt8](repeating: 0, count: ConsoleRequest.size)
        encoded.withUnsafeMutableBytes { request.encode(into: $0) }
        check(encoded.elementsEqual(bytes.prefix(ConsoleRequest.size)), "ConsoleRequest does not round-trip")
    }
    guard let info = try? BootInfo(decoding: bytes) else { return }
    check(bytes.count >= BootInfo.size, "BootInfo decoded from \(bytes.count) bytes")
    check(info.hostname.count <= BootInfo.hostnameCapacity && !info.hostname.contains(0), "hostname")
    var encoded = [UInt8](repeating: 0, count: BootInfo.size)
    encoded.withUnsafeMutableBytes { info.encode(into: $0) }
    for i in 0..<BootInfo.size where !reservedBootInfoBytes.contains(i) {
        check(encoded[i] == bytes[i], "BootInfo byte 0x\(String(i, radix: 16)) changed in a round trip")
    }
    let again = encoded.withUnsafeBytes { try? BootInfo(decoding: $0) }
    check(again == info, "BootInfo decode(encode(x)) != x")
    // What the host reads back after an abnormal stop.
    let state = GuestState(decoding: UnsafeRawBufferPointer(rebasing: bytes[GuestState.offset..<(GuestState.offset + GuestState.size)]))
    check(state.stdoutFill == bytes.readLE(UInt64.self, at: GuestState.stdoutFillOffset)
              && state.stderrBuffer.raw == bytes.readLE(UInt64.self, at: GuestState.stderrBufferOffset),
          "GuestState fields")
    check(info.timeline.exit == encoded.withUnsafeBytes { $0.readLE(UInt64.self, at: Timeline.exitOffset) }, "timeline")
}

// MARK: Doorbells

/// Records what the VMM passes on, and checks it is inside guest memory.
struct CheckingConsole: ConsoleSink {
    let ram: UnsafeMutableRawBufferPointer
    let rom: UnsafeMutableRawBufferPointer
    var stdinResults: [Int]
    var written = 0

    func inGuestMemory(_ b: UnsafeRawBufferPointer) -> Bool {
        lies(b, within: UnsafeRawBufferPointer(ram)) || lies(b, within: UnsafeRawBufferPointer(rom))
    }

    mutating func write(_ stream: ConsoleStream, _ bytes: UnsafeRawBufferPointer) {
        check(inGuestMemory(bytes), "console bytes outside guest memory")
        written += bytes.count
    }

    mutating func readStdin(into buffer: UnsafeMutableRawBufferPointer, nonblocking: Bool) -> Int {
        check(lies(UnsafeRawBufferPointer(buffer), within: UnsafeRawBufferPointer(ram)), "stdin buffer not in writable RAM")
        // Like read(2): a count up to the buffer's size, or a negative errno.
        let choice = stdinResults.isEmpty ? 0 : stdinResults.removeFirst()
        if choice < 0 { return -(-choice % 134 + 1) }
        let n = buffer.isEmpty ? 0 : choice % (buffer.count + 1)
        for i in 0..<n { buffer[i] = UInt8(truncatingIfNeeded: i) }
        return n
    }

    mutating func sleep(nanoseconds: UInt64) {}
}

/// Input: RAM contents (u16 length, then the bytes; RAM is 8 KiB at guest 0x0, writable),
/// then doorbell writes: { offset u8 (the low 6 bits), value u64, stdin result i16 }.
/// A 4 KiB read-only region at 0x10000 (like the image mapping) holds the last RAM bytes.
func doorbells(_ input: inout FuzzInput) {
    let ram = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 4096)
    let rom = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
    defer { ram.deallocate(); rom.deallocate() }
    ram.initializeMemory(as: UInt8.self, repeating: 0)
    let contents = input.take(Int(input.u16()) % (ram.count + 1))
    ram.copyMemory(from: contents)
    rom.copyMemory(from: UnsafeRawBufferPointer(rebasing: ram[4096...]))
    var memory = GuestMemory()
    memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0), size: UInt64(ram.count), host: ram.baseAddress!))
    memory.add(GuestMemoryRegion(guestBase: PhysicalAddress(0x10000), size: UInt64(rom.count), host: rom.baseAddress!,
                                 writable: false))
    var sink = CheckingConsole(ram: ram, rom: rom, stdinResults: [])

    var rounds = 0
    while !input.isAtEnd && rounds < 64 {
        rounds += 1
        let offset = UInt64(input.u8() & 0x3f)
        let value = input.u64()
        sink.stdinResults = [Int(Int16(bitPattern: input.u16()))]
        let before = ConsoleRequest(decoding: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(ram)[0..<16]))
        let outcome = handleDoorbell(offset: offset, value: value, memory: memory, sink: &sink)
        guard let doorbell = Doorbell(rawValue: offset) else {
            if case .rejected = outcome {} else { fatalError("unknown doorbell 0x\(String(offset, radix: 16)) not rejected") }
            continue
        }
        switch (doorbell, outcome) {
        case (.exit, .exit(let status)):
            check(ExitStatus(encoded: status.encoded) == status, "exit status round trip")
            check(status.shellStatus >= 0 && status.shellStatus <= 383, "shell status \(status.shellStatus)")
        case (.sleep, .resume), (.deadline, .resume), (.console, .resume), (.console, .rejected), (.panic, .panic), (.panic, .rejected),
             (.stdinRead, .rejected):
            break
        case (.stdinRead, .resume):
            // The answer is in writable RAM; it never claims more than the request offered.
            check(value < UInt64(ram.count), "stdin request outside RAM accepted")
            let answer = ConsoleRequest(decoding: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(ram)[Int(value)...]))
            if value == 0 { check(answer.length <= before.length, "stdin answer longer than the request") }
            check(answer.stream == 0 || answer.length == 0, "stdin error answer with data")
        default:
            fatalError("doorbell \(doorbell) gave \(outcome)")
        }
    }
}

// MARK: Serial frames

/// Input: { chunk length u8 } pairs followed by the stream; the stream is fed in those
/// chunks and, separately, at once.
func serialFrames(_ input: inout FuzzInput) {
    var chunks: [Int] = []
    for _ in 0..<Int(input.u8() % 16) { chunks.append(Int(input.u8())) }
    let stream = Array(input.rest())
    var whole = SerialFrameDecoder()
    let expected = whole.feed(stream)
    var pieces = SerialFrameDecoder()
    var frames: [SerialFrameDecoder.Frame] = []
    var position = 0
    for chunk in chunks where position < stream.count {
        let end = min(position + chunk, stream.count)
        frames += pieces.feed(stream[position..<end])
        position = end
    }
    frames += pieces.feed(stream[position...])
    check(frames == expected, "frames depend on how the stream was split")
    check(pieces.pendingCount == whole.pendingCount, "pending bytes depend on the split")
    check(whole.pendingCount <= stream.count, "pending more than fed")
    var consumed = 0
    for frame in expected {
        check(frame.payload.count <= SerialFrame.maxPayload, "oversized frame")
        consumed += SerialFrame.headerSize + frame.payload.count
        guard let kind = SerialFrame.Kind(rawValue: frame.kind) else { continue }
        let h = SerialFrame.header(kind: kind, length: frame.payload.count)
        var single = SerialFrameDecoder()
        let decoded = single.feed([h.0, h.1, h.2, h.3] + frame.payload)
        check(decoded == [frame] && single.pendingCount == 0, "frame does not re-encode")
    }
    check(consumed + whole.pendingCount <= stream.count, "frames and pending bytes exceed the stream")
}

// MARK: Seeds

func bootPageSeed() -> [UInt8] {
    var info = BootInfo()
    info.memorySize = 256 << 20
    info.kernelEnd = 0x40_0000
    info.imageSize = 0x10_0000
    info.argumentsSize = 12
    info.argc = 2
    info.tscFrequencyKHz = 2_000_000
    info.flags = BootInfo.flagTraceSyscalls
    info.seed = (1, 2, 3, 4)
    info.hostname = Array("apus-seed".utf8)
    info.workingDirectoryLength = 4
    info.network.virtioBase = GuestABI.virtioBase.raw
    info.network.virtioSlotCount = 1
    info.network.ipv4Address = 0x0a00_020f
    info.network.ipv4PrefixLength = 24
    var page = [UInt8](repeating: 0, count: BootInfo.size)
    page.withUnsafeMutableBytes { info.encode(into: $0) }
    return [0] + page
}

func doorbellSeed() -> [UInt8] {
    var ram = [UInt8](repeating: 0, count: 64)
    // A console request at 0 (stdout, 5 bytes at 0x20), a stdin request at 0x10 (8 bytes at 0x28).
    ram.storeLE(UInt32(1), at: 0); ram.storeLE(UInt32(5), at: 4); ram.storeLE(UInt64(0x20), at: 8)
    ram.storeLE(UInt32(0), at: 16); ram.storeLE(UInt32(8), at: 20); ram.storeLE(UInt64(0x28), at: 24)
    ram.replaceSubrange(0x20..<0x25, with: Array("hello".utf8))
    var seed: [UInt8] = [1]
    seed.appendLE(UInt16(ram.count))
    seed += ram
    for (offset, value, stdin) in [(0x00, 0x0, 0), (0x18, 0x10, 5), (0x10, 0x0, 0), (0x20, 1000, 0), (0x08, 0x10b, 0), (0x30, 0, 0)]
    {
        seed.append(UInt8(offset))
        seed.appendLE(UInt64(value))
        seed.appendLE(Int16(stdin))
    }
    return seed
}

func serialSeed() -> [UInt8] {
    var stream: [UInt8] = [0x00, 0x41]                        // firmware noise
    stream += [0xA5, 1, 6, 0] + Array("hello\n".utf8)
    stream += [0xA5, 3, 2, 0, 0x6f, 0x6b]
    stream += [0xA5, 0xFF, 40, 0] + [UInt8](repeating: 0, count: 40)
    stream += [0xA5, 2, 10, 0, 1, 2]                          // incomplete
    return [2, 3, 5, 1, 7] + stream
}

runFuzzer(seeds: {
    [("bootinfo", bootPageSeed()), ("doorbells", doorbellSeed()), ("serial", serialSeed())]
}, { testOneInput($0, $1) })
