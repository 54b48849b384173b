import GuestABI

/// Where the guest's console output and stdin requests go. The real one writes to the host's
/// fds; tests use a fake.
public protocol ConsoleSink {
    mutating func write(_ stream: ConsoleStream, _ bytes: UnsafeRawBufferPointer)
    /// One read from the host's stdin: bytes read (0 at end of file) or a negative errno.
    /// `nonblocking`: -EAGAIN at once when stdin has nothing to read yet.
    mutating func readStdin(into buffer: UnsafeMutableRawBufferPointer, nonblocking: Bool) -> Int
    /// Sleeps on the host for the guest (returns early when a signal interrupts it).
    mutating func sleep(nanoseconds: UInt64)
}

/// What the VM does after a doorbell.
public enum DoorbellOutcome: Equatable {
    case resume
    case exit(ExitStatus)
    case panic(String)
    /// The request was malformed; it is dropped and the VM resumes. The text says why.
    case rejected(String)
}

/// Handles one write to the doorbell page. A free function of its inputs so that tests can
/// feed it synthetic exits; every guest address and length is checked against guest memory.
public func handleDoorbell<Sink: ConsoleSink>(offset: UInt64, value: UInt64, memory: GuestMemory,
                                              sink: inout Sink) -> DoorbellOutcome {
    guard let doorbell = Doorbell(rawValue: offset) else {
        return .rejected("write to unknown doorbell offset 0x\(String(offset, radix: 16))")
    }
    switch doorbell {
    case .exit:
        return .exit(ExitStatus(encoded: value))
    case .sleep:
        sink.sleep(nanoseconds: value)
        return .resume
    case .deadline:
        // Normally an ioeventfd that never reaches here; as an exit, the run loop wakes the
        // clock thread itself.
        return .resume
    case .console, .panic, .stdinRead:
        // A stdin read writes the answer and the data: both must be in writable memory.
        let writes = doorbell == .stdinRead
        guard let raw = memory.bytes(at: PhysicalAddress(value), count: UInt64(ConsoleRequest.size), writable: writes) else {
            return .rejected("console request at 0x\(String(value, radix: 16)) is outside \(writes ? "writable " : "")guest memory")
        }
        let request = ConsoleRequest(decoding: UnsafeRawBufferPointer(raw))
        guard let buffer = memory.bytes(at: request.buffer, count: UInt64(request.length), writable: writes) else {
            return .rejected("console buffer 0x\(String(request.buffer.raw, radix: 16))+\(request.length) is outside \(writes ? "writable " : "")guest memory")
        }
        switch doorbell {
        case .console:
            guard let stream = ConsoleStream(rawValue: request.stream) else {
                return .rejected("console request names unknown stream \(request.stream)")
            }
            sink.write(stream, UnsafeRawBufferPointer(buffer))
            return .resume
        case .panic:
            return .panic(GuestText.decode(UnsafeRawBufferPointer(buffer), limit: GuestText.panicLimit))
        default:
            let n = sink.readStdin(into: buffer, nonblocking: request.stream == 1)
            var answer = request
            if n >= 0 {
                answer.stream = 0
                answer.length = UInt32(min(n, Int(request.length)))
            } else {
                answer.stream = UInt32(-n)
                answer.length = 0
            }
            answer.encode(into: raw)
            return .resume
        }
    }
}

/// Text the guest hands the VMM for its own messages (a kernel panic): the guest chooses the
/// length (up to all of guest memory) and the bytes, so the host copies at most `limit`
/// bytes and shows control characters and invalid UTF-8 escaped, never raw: a message cannot
/// grow the VMM's memory with the guest's size or drive the user's terminal.
public enum GuestText {
    /// A kernel panic line is under 200 bytes; 4 KiB leaves room for a long one.
    public static let panicLimit = 4096

    public static func decode(_ bytes: UnsafeRawBufferPointer, limit: Int) -> String {
        let shown = UnsafeRawBufferPointer(rebasing: bytes.prefix(limit))
        var text = ""
        text.reserveCapacity(shown.count)
        for scalar in String(decoding: shown, as: UTF8.self).unicodeScalars {
            switch scalar.value {
            case 0x0a, 0x09: text.unicodeScalars.append(scalar)
            case 0..<0x20, 0x7f, 0x80..<0xa0: text += "\\x" + hex2(scalar.value)
            case 0xfffd: text += "\\ufffd"
            default: text.unicodeScalars.append(scalar)
            }
        }
        if bytes.count > limit { text += "… (\(bytes.count - limit) more bytes not shown)" }
        return text
    }

    private static func hex2(_ v: UInt32) -> String {
        let digits = String(v, radix: 16)
        return digits.count < 2 ? "0" + digits : digits
    }
}
