import GuestABI
import KernelArch
import LinuxABI
import VFS

/// The app's stdout and stderr and the kernel's own diagnostics, batched: every flush is one
/// VM exit (≈38 µs on pvm), so output is buffered per stream and flushed when a buffer fills,
/// before the other stream writes (keeping the order the app wrote them in), before the
/// program blocks or reads, and at exit.
enum Console {
    enum Backend { case doorbell, serial }

    static let bufferSize = 16 * 4096

    nonisolated(unsafe) static var backend = Backend.doorbell
    /// Physical page holding the ConsoleRequest the doorbell points at.
    nonisolated(unsafe) static var requestPage = PhysicalAddress(0)
    nonisolated(unsafe) static var buffers: (PhysicalAddress, PhysicalAddress) = (PhysicalAddress(0), PhysicalAddress(0))
    nonisolated(unsafe) static var fill: (Int, Int) = (0, 0)
    nonisolated(unsafe) static var lastStream: ConsoleStream = .stdout
    nonisolated(unsafe) static var ready = false
    /// When the oldest unflushed app byte was written (monotonic ns; 0: nothing buffered).
    /// Output a program wrote before computing for a long time reaches the host within
    /// `flushLatency`: preemptions (and the native timer tick) flush buffers that old.
    nonisolated(unsafe) static var bufferedSince: UInt64 = 0
    static let flushLatency: UInt64 = 50_000_000

    static func useDoorbells() { backend = .doorbell }
    static func useSerial() {
        backend = .serial
        Serial.initialize()
    }

    static func allocateBuffers() {
        guard let request = PhysicalMemory.allocatePage(),
              let out = PhysicalMemory.allocateContiguous(pages: bufferSize / 4096),
              let err = PhysicalMemory.allocateContiguous(pages: bufferSize / 4096)
        else { panic("no memory for console buffers") }
        requestPage = request
        buffers = (out, err)
        ready = true
        if backend == .doorbell {
            let state = guestState
            state.writeLE(out.raw, at: GuestState.stdoutBufferOffset - GuestState.offset)
            state.writeLE(err.raw, at: GuestState.stderrBufferOffset - GuestState.offset)
        }
    }

    /// The GuestState area of the boot info page: kept current so the host can drain the
    /// buffers if the VM dies without a last flush (GuestABI.swift).
    static var guestState: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: directMap(GuestABI.bootInfoAddress + UInt64(GuestState.offset)),
                                      count: GuestState.size)
    }

    private static func publishFill() {
        guard backend == .doorbell else { return }
        let state = guestState
        state.writeLE(UInt64(fill.0), at: GuestState.stdoutFillOffset - GuestState.offset)
        state.writeLE(UInt64(fill.1), at: GuestState.stderrFillOffset - GuestState.offset)
    }

    /// Appends the app's bytes to a stream's buffer; returns after the bytes are buffered or
    /// sent. `bytes` may point to user memory (already validated by the caller).
    static func write(_ stream: ConsoleStream, _ bytes: UnsafeRawBufferPointer) {
        if Kernel.timeline.firstOutput == 0 && stream != .kernel {
            Kernel.timeline.firstOutput = arch_rdtsc()
        }
        if stream != lastStream { flushAll() }
        lastStream = stream
        guard stream != .kernel else {
            send(.kernel, bytes)
            return
        }
        if bufferedSince == 0 && !bytes.isEmpty { bufferedSince = max(Clock.monotonicNanos, 1) }
        var remaining = bytes
        while !remaining.isEmpty {
            let used = stream == .stdout ? fill.0 : fill.1
            let base = stream == .stdout ? buffers.0 : buffers.1
            let n = min(bufferSize - used, remaining.count)
            directMap(base + UInt64(used)).copyMemory(from: remaining.baseAddress!, byteCount: n)
            if stream == .stdout { fill.0 += n } else { fill.1 += n }
            remaining = UnsafeRawBufferPointer(rebasing: remaining[n...])
            if used + n == bufferSize { flush(stream) }
        }
        publishFill()
    }

    static func flush(_ stream: ConsoleStream) {
        guard ready else { return }
        let used = stream == .stdout ? fill.0 : fill.1
        guard used > 0 else { return }
        let base = stream == .stdout ? buffers.0 : buffers.1
        send(stream, UnsafeRawBufferPointer(start: directMap(base), count: used))
        if stream == .stdout { fill.0 = 0 } else { fill.1 = 0 }
        if fill.0 == 0 && fill.1 == 0 { bufferedSince = 0 }
        publishFill()
    }

    /// Flushes output that has waited `flushLatency` or longer.
    static func flushIfOld() {
        if bufferedSince != 0 && Clock.monotonicNanos &- bufferedSince >= flushLatency { flushAll() }
    }

    static func flushAll() {
        flush(.stdout)
        flush(.stderr)
    }

    /// One line of kernel diagnostics ("apus: ..."), sent at once.
    static func kernelLine(_ message: Message) {
        flushAll()
        var line = message
        line.append(byte: 0x0a)
        line.bytes.withUnsafeBytes { send(.kernel, $0) }
    }

    static func sendPanic(_ message: Message) {
        switch backend {
        case .doorbell:
            message.bytes.withUnsafeBytes { bytes in
                let n = min(bytes.count, 4096 - ConsoleRequest.size)
                if !ready {
                    // Before the allocator: borrow the top of the argument block page range.
                    requestPage = GuestABI.argumentsAddress
                }
                let page = directMap(requestPage)
                page.advanced(by: ConsoleRequest.size).copyMemory(from: bytes.baseAddress!, byteCount: n)
                ConsoleRequest(stream: ConsoleStream.kernel.rawValue, length: UInt32(n),
                               buffer: requestPage + UInt64(ConsoleRequest.size))
                    .encode(into: UnsafeMutableRawBufferPointer(start: page, count: ConsoleRequest.size))
                ring(.panic, requestPage.raw)
            }
        case .serial:
            message.bytes.withUnsafeBytes { Serial.sendFrame(.panic, $0) }
            Serial.powerOff()  // QEMU exits: the launcher reports the panic (a halted VM never would)
        }
    }

    /// The host's stdin as the program's descriptors see it (without -t): poll, select and
    /// epoll learn whether it is readable by reading ahead into `pending` (what a later read
    /// returns first), so a program that waits for stdin among other descriptors is woken
    /// when input arrives, not told it is readable before.
    enum HostStdin {
        nonisolated(unsafe) static var pending: [UInt8] = []
        nonisolated(unsafe) static var ended = false
        /// Changes whenever input arrives (edge-triggered epoll).
        nonisolated(unsafe) static var stamp: UInt64 = 0

        /// Whether descriptor `fd` reads the host's stdin (a console, not the terminal).
        static func owns(_ fd: Int32) -> Bool {
            guard !Terminal.enabled, case .device(.console(let id))? = try? SysIO.fs.nodeType(fd) else { return false }
            return id == ConsoleID.stdin || id == ConsoleID.tty || id == ConsoleID.console
        }

        /// What there is now (the read-ahead first), nil when nothing has arrived yet.
        static func read(into out: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
            if !pending.isEmpty {
                let n = min(out.count, pending.count)
                pending.withUnsafeBytes { out.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                pending.removeFirst(n)
                return n
            }
            if ended { return 0 }
            return try Console.readStdinNow(into: out)
        }

        /// POLLIN (1) when a read would not wait; else the host is asked to report input and
        /// the waiter (a poll parks restartably) is woken by `checkInput`.
        static func readiness() -> UInt32 {
            if !pending.isEmpty || ended { return 1 }
            if hostInputMayBeThere() {
                var chunk = [UInt8](repeating: 0, count: 4096)
                let got: Int? = chunk.withUnsafeMutableBytes { b in
                    do throws(Errno) { return try Console.readStdinNow(into: b) } catch { return 0 }  // an error reads as the end
                }
                if let n = got {
                    if n > 0 { pending.append(contentsOf: chunk[0..<n]) } else { ended = true }
                    stamp &+= 1
                    return 1
                }
            }
            waitForInput()
            return 0
        }
    }

    /// Threads wait for host stdin (a blocking read found nothing): `checkInput` wakes them.
    nonisolated(unsafe) static var inputWaiters = false

    /// What host stdin has now, without waiting: bytes read, 0 at its end, nil when nothing
    /// has arrived yet. The app's buffered output goes first (it may be a prompt).
    static func readStdinNow(into out: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        guard out.count > 0 else { return 0 }
        flushAll()
        guard backend == .doorbell else { return Serial.readStdinNow(into: out) }
        let page = directMap(requestPage)
        let room = min(out.count, 4096 - ConsoleRequest.size)
        let request = UnsafeMutableRawBufferPointer(start: page, count: ConsoleRequest.size)
        ConsoleRequest(stream: 1, length: UInt32(room), buffer: requestPage + UInt64(ConsoleRequest.size))
            .encode(into: request)
        ring(.stdinRead, requestPage.raw)
        let answer = ConsoleRequest(decoding: UnsafeRawBufferPointer(request))
        if answer.stream == UInt32(Errno.EAGAIN.rawValue) || answer.stream == UInt32(Errno.EINTR.rawValue) { return nil }
        if answer.stream != 0 { throw Errno(Int32(truncatingIfNeeded: answer.stream)) }
        let n = min(Int(answer.length), room)
        out.copyMemory(from: UnsafeRawBufferPointer(start: page + ConsoleRequest.size, count: n))
        return n
    }

    /// Whether the host was asked to report stdin input (`HostChannel.inputWaiting`) and has
    /// not reported it yet: until it does, there is nothing to read and no exit is spent
    /// looking (the terminal pumps input at every poll).
    nonisolated(unsafe) static var inputWatchArmed = false

    /// Asks the host to report when stdin has input (doorbell console; under QEMU the serial
    /// line is polled anyway).
    static func armInputWatch() {
        guard backend == .doorbell, !inputWatchArmed else { return }
        inputWatchArmed = true
        _ = arch_exchange64(HostEvents.channel &+ UInt64(HostChannel.inputWaiting), 1)
        ring(.deadline, 0)
    }

    /// Whether a read of host stdin may find something now: not while the host has been asked
    /// to report input and has not. Takes the host's report.
    static func hostInputMayBeThere() -> Bool {
        guard backend == .doorbell else {
            Serial.pollInput()
            return Serial.inputAvailable
        }
        guard inputWatchArmed else { return true }
        let events = HostEvents.channel &+ UInt64(HostChannel.events)
        guard arch_load64(events) & HostChannel.eventInputReady != 0 else { return false }
        clearEvent(HostChannel.eventInputReady)
        inputWatchArmed = false
        return true
    }

    /// Clears one bit of the channel's event word (the VMM only ever sets bits).
    static func clearEvent(_ bit: UInt64) {
        let events = HostEvents.channel &+ UInt64(HostChannel.events)
        var seen = arch_load64(events)
        while seen & bit != 0 {
            let now = arch_compare_exchange64(events, seen, seen & ~bit)
            if now == seen { return }
            seen = now
        }
    }

    /// The running thread will wait for host stdin.
    static func waitForInput() {
        inputWaiters = true
        armInputWatch()
    }

    /// Host input arrived (idle loop, preemption, timer tick): the terminal takes it in (its
    /// ^C works even when nothing reads), and the stdin waiters look again.
    static func checkInput() {
        if Terminal.enabled {
            Terminal.checkHostEvents()
            if !inputWatchArmed || hostInputMayBeThere() { Terminal.pumpHostInput() }
            return
        }
        guard inputWaiters, hostInputMayBeThere() else { return }
        inputWaiters = false
        Scheduler.wakeRestartingWaiters()
    }

    /// Sends bytes to the host now, in pieces the transport allows.
    private static func send(_ stream: ConsoleStream, _ bytes: UnsafeRawBufferPointer) {
        switch backend {
        case .doorbell:
            // The doorbell carries a physical address; bytes in user or kernel memory are
            // copied through a bounce buffer when they are not physically contiguous.
            var remaining = bytes
            while !remaining.isEmpty {
                let page = directMap(requestPage)
                let length: Int
                let physical: PhysicalAddress
                if isDirectMapped(remaining.baseAddress!, count: remaining.count) {
                    length = remaining.count
                    physical = directMapPhysical(remaining.baseAddress!)
                } else {
                    length = min(remaining.count, 4096 - ConsoleRequest.size)
                    page.advanced(by: ConsoleRequest.size).copyMemory(from: remaining.baseAddress!, byteCount: length)
                    physical = requestPage + UInt64(ConsoleRequest.size)
                }
                ConsoleRequest(stream: stream.rawValue, length: UInt32(length), buffer: physical)
                    .encode(into: UnsafeMutableRawBufferPointer(start: page, count: ConsoleRequest.size))
                ring(.console, requestPage.raw)
                remaining = UnsafeRawBufferPointer(rebasing: remaining[length...])
            }
        case .serial:
            let kind: SerialFrame.Kind = stream == .stdout ? .stdout : stream == .stderr ? .stderr : .kernel
            var remaining = bytes
            while !remaining.isEmpty {
                let n = min(remaining.count, SerialFrame.maxPayload)
                Serial.sendFrame(kind, UnsafeRawBufferPointer(rebasing: remaining[..<n]))
                remaining = UnsafeRawBufferPointer(rebasing: remaining[n...])
            }
        }
    }

    /// True for buffers inside the direct map (physically contiguous by construction).
    private static func isDirectMapped(_ p: UnsafeRawPointer, count: Int) -> Bool {
        let a = UInt64(UInt(bitPattern: p))
        return a >= Kernel.directMapBase && a &- Kernel.directMapBase &+ UInt64(count) <= Kernel.boot.memorySize
    }

    static func ring(_ doorbell: Doorbell, _ value: UInt64) {
        arch_store64(Kernel.directMapBase &+ GuestABI.doorbellAddress.raw &+ doorbell.rawValue, value)
    }

    /// Ends the VM with the app's status.
    static func exit(_ status: ExitStatus) -> Never {
        flushAll()
        Network.drainBeforeExit()
        Kernel.timeline.exit = arch_rdtsc()
        Kernel.publishTimeline()
        switch backend {
        case .doorbell:
            ring(.exit, status.encoded)
        case .serial:
            var payload = [UInt8](repeating: 0, count: 8 + 32)
            payload.withUnsafeMutableBytes { bytes in
                bytes.writeLE(status.encoded, at: 0)
                Kernel.timeline.encode(into: UnsafeMutableRawBufferPointer(rebasing: bytes[8...]))
                Serial.sendFrame(.exit, UnsafeRawBufferPointer(bytes))
            }
            Serial.powerOff()
        }
        haltForever()
    }
}

/// COM1 (a 16550 at port 0x3f8) carrying `SerialFrame`s: the console on QEMU.
enum Serial {
    static let port: UInt16 = 0x3f8

    static func initialize() {
        arch_outb(port + 1, 0x00)  // no interrupts
        arch_outb(port + 3, 0x80)  // DLAB
        arch_outb(port + 0, 0x01)  // 115200 baud
        arch_outb(port + 1, 0x00)
        arch_outb(port + 3, 0x03)  // 8N1
        // The FIFOs stay off: enabling them resets the receiver, which would drop stdin bytes
        // QEMU already delivered, and QEMU then waits for a receive-register read forever.
    }

    static func put(_ byte: UInt8) {
        while arch_inb(port + 5) & 0x20 == 0 { arch_pause() }
        arch_outb(port, byte)
    }

    static func sendFrame(_ kind: SerialFrame.Kind, _ payload: UnsafeRawBufferPointer) {
        let h = SerialFrame.header(kind: kind, length: payload.count)
        put(h.0); put(h.1); put(h.2); put(h.3)
        for b in payload { put(b) }
    }

    /// Host → guest frames (the QEMU launcher's `SerialFrame`s on COM1), parsed as bytes
    /// arrive: stdin data is kept for `readStdinNow`, a signal frame is queued for pid 1, the
    /// exit frame ends stdin. Bytes are taken whenever the kernel polls (idle loop, timer
    /// tick, stdin reads); data beyond `inputLimit` unread bytes is left in QEMU (which then
    /// holds the rest of the stream, signal frames behind it included) until the app reads.
    nonisolated(unsafe) static var input: [UInt8] = []
    nonisolated(unsafe) static var inputStart = 0
    nonisolated(unsafe) static var inputEnded = false
    nonisolated(unsafe) static var header: (count: Int, kind: UInt8, length: Int) = (0, 0, 0)
    nonisolated(unsafe) static var payloadLeft = 0
    static let inputLimit = 64 << 10

    static func get() -> UInt8 {
        while arch_inb(port + 5) & 0x01 == 0 { arch_pause() }
        return arch_inb(port)
    }

    /// Takes every byte COM1 has now (QEMU only; no-op on the doorbell console).
    static func pollInput() {
        guard Console.backend == .serial else { return }
        while input.count - inputStart < inputLimit && arch_inb(port + 5) & 0x01 != 0 {
            take(arch_inb(port))
        }
    }

    /// The last window size a window frame carried (rows, columns), not yet taken.
    nonisolated(unsafe) static var windowPending = false
    nonisolated(unsafe) static var windowRows: UInt16 = 0
    nonisolated(unsafe) static var windowColumns: UInt16 = 0
    nonisolated(unsafe) static var windowBytes: (UInt8, UInt8, UInt8) = (0, 0, 0)

    private static func take(_ byte: UInt8) {
        if payloadLeft > 0 {
            payloadLeft -= 1
            if header.kind == SerialFrame.Kind.window.rawValue {
                // rows (u16 LE), columns (u16 LE)
                switch header.length - payloadLeft {
                case 1: windowBytes.0 = byte
                case 2: windowBytes.1 = byte
                case 3: windowBytes.2 = byte
                case 4:
                    windowRows = UInt16(windowBytes.0) | UInt16(windowBytes.1) << 8
                    windowColumns = UInt16(windowBytes.2) | UInt16(byte) << 8
                    windowPending = true
                default: break
                }
            } else if header.kind == SerialFrame.Kind.signal.rawValue {
                HostEvents.queueSerialSignal(byte)
            } else if header.kind != SerialFrame.Kind.exit.rawValue {
                input.append(byte)
            }
            return
        }
        switch header.count {
        case 0:
            if byte == SerialFrame.marker { header = (1, 0, 0) }
        case 1:
            header = (2, byte, 0)
        case 2:
            header.length = Int(byte)
            header.count = 3
        default:
            header.length |= Int(byte) << 8
            header.count = 0
            payloadLeft = header.length
            if header.kind == SerialFrame.Kind.exit.rawValue { inputEnded = true }
        }
    }

    /// Whether a read would return now (data, or the end of stdin).
    static var inputAvailable: Bool { input.count > inputStart || (inputEnded && payloadLeft == 0) }

    /// What has arrived, without waiting (nil: nothing yet; 0: the end of stdin).
    static func readStdinNow(into out: UnsafeMutableRawBufferPointer) -> Int? {
        pollInput()
        guard inputAvailable else { return nil }
        // The rest of a data frame being received is on its way (QEMU hands the receive
        // register one byte at a time): take it now rather than one byte per read.
        while payloadLeft > 0 && header.kind == SerialFrame.Kind.stdout.rawValue
            && input.count - inputStart < min(out.count, inputLimit) {
            take(get())
        }
        let n = min(out.count, input.count - inputStart)
        for i in 0..<n { out[i] = input[inputStart + i] }
        inputStart += n
        if inputStart == input.count {
            input.removeAll(keepingCapacity: true)
            inputStart = 0
        }
        return n
    }

    /// isa-debug-exit at port 0xf4 (the QEMU launcher adds that device): QEMU exits at once.
    static func powerOff() {
        arch_outl(0xf4, 0)
    }
}
