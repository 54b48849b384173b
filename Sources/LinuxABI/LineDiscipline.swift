/// A terminal's line discipline (Linux's N_TTY, termios(3)) as a pure state machine: input
/// bytes from the keyboard go in, and out come the bytes a read may take, the bytes to echo
/// to the screen and the signals the keyboard raised for the foreground process group. Output
/// the program writes goes through the same output processing (OPOST) as the echo, which
/// keeps one idea of the cursor's column for erasing tabs. Time is a parameter (VTIME).
///
/// Canonical mode (ICANON): input is edited a line at a time — VERASE erases a character (a
/// whole UTF-8 character with IUTF8), VKILL the line, VWERASE a word, VREPRINT shows the line
/// again, VLNEXT quotes the next character — and a read takes at most one finished line:
/// ended by NL, VEOL or VEOL2 (kept in the line), or VEOF (dropped; at the start of a line it
/// reads as end of file). Otherwise every byte is readable at once and VMIN/VTIME decide
/// when a read returns (`rawReadPlan`).
///
/// Input translation: ISTRIP, IGNCR, ICRNL, INLCR. ISIG: VINTR, VQUIT, VSUSP raise SIGINT,
/// SIGQUIT, SIGTSTP and flush the input unless NOFLSH. Echo: ECHO, ECHOE, ECHOK, ECHOKE,
/// ECHONL, ECHOCTL (control characters as ^X). Output: OPOST with ONLCR, OCRNL, ONOCR,
/// ONLRET. IXON: VSTOP/VSTART are taken out of the input and recorded in `outputStopped`,
/// which the owner may honour (the kernel's terminal does not hold output back).
/// Not done: PARMRK/INPCK (no parity on a virtual line), ECHOPRT's hardcopy erase (treated
/// as ECHOE), OLCUC/IUCLC/XCASE, tab expansion (XTABS), FLUSHO/VDISCARD, EXTPROC.
public struct LineDiscipline: Sendable {
    /// Linux's N_TTY_BUF_SIZE: input held at most (an edited line is at most one less).
    public static let bufferSize = 4096
    public static let SIGINT: Int32 = 2
    public static let SIGQUIT: Int32 = 3
    public static let SIGTSTP: Int32 = 20

    public private(set) var settings: TerminalSettings
    /// Bytes a read may take, oldest first.
    private var readable: [UInt8] = []
    /// Canonical mode: the length of each finished line in `readable`, in order; 0 is an
    /// end of file (VEOF at the start of a line).
    private var lineLengths: [Int] = []
    /// Canonical mode: the line being edited.
    private var editing: [UInt8] = []
    /// The column the output is at (tab stops every 8), and where the edited line's echo began.
    public private(set) var column = 0
    private var lineStartColumn = 0
    /// VLNEXT was typed: the next byte is taken literally.
    private var literalNext = false
    /// When the last input byte arrived (VTIME's inter-byte timer; monotonic nanoseconds).
    public private(set) var lastInputTime: UInt64 = 0
    /// VSTOP was typed (IXON) and no VSTART since.
    public private(set) var outputStopped = false

    /// What one batch of input did besides filling the read buffer.
    public struct Effects: Equatable, Sendable {
        /// Bytes for the screen (already through output processing).
        public var echo: [UInt8] = []
        /// Signals for the foreground process group, in order.
        public var signals: [Int32] = []
        public init() {}
    }

    public init(settings: TerminalSettings = .linuxDefault) {
        self.settings = settings
    }

    // MARK: settings

    /// TCSETS*: new settings. Leaving canonical mode makes the edited line readable; entering
    /// it makes unread input the start of the line being edited (as Linux's n_tty does).
    public mutating func apply(_ new: TerminalSettings) {
        let wasCanonical = settings.has(local: TerminalSettings.ICANON)
        let canonical = new.has(local: TerminalSettings.ICANON)
        if wasCanonical && !canonical {
            readable += editing
            editing = []
            lineLengths = []
        } else if !wasCanonical && canonical {
            editing = readable + editing
            if editing.count > Self.bufferSize - 1 { editing.removeFirst(editing.count - (Self.bufferSize - 1)) }
            readable = []
            lineLengths = []
            lineStartColumn = column
        }
        settings = new
        if !settings.has(input: TerminalSettings.IXON) { outputStopped = false }
    }

    /// TCFLSH, TCSETSF, a signal character without NOFLSH: unread input is gone.
    public mutating func flushInput() {
        readable = []
        lineLengths = []
        editing = []
        literalNext = false
        lineStartColumn = column
    }

    // MARK: reading

    private var canonical: Bool { settings.has(local: TerminalSettings.ICANON) }

    /// Whether a read would return now without waiting: a finished line (or end of file) in
    /// canonical mode, any byte otherwise (VMIN/VTIME aside: see `rawReadPlan`).
    public var hasReadableInput: Bool { canonical ? !lineLengths.isEmpty : !readable.isEmpty }

    /// FIONREAD: the bytes a read could take now (finished lines only in canonical mode).
    public var readableCount: Int { readable.count }

    /// Room left for input before bytes are dropped.
    public var room: Int { max(0, Self.bufferSize - readable.count - editing.count) }

    /// Canonical mode: takes up to `buffer.count` bytes of the first finished line and
    /// returns the count (0 for an end of file); nil when no line is finished.
    public mutating func readLine(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        guard let first = lineLengths.first else { return nil }
        if first == 0 {
            lineLengths.removeFirst()
            return 0
        }
        let n = min(first, buffer.count)
        take(n, into: buffer)
        if n == first { lineLengths.removeFirst() } else { lineLengths[0] = first - n }
        return n
    }

    /// Takes `count` readable bytes (at most what is there).
    public mutating func readBytes(into buffer: UnsafeMutableRawBufferPointer, count: Int) -> Int {
        let n = min(count, buffer.count, readable.count)
        take(n, into: buffer)
        return n
    }

    private mutating func take(_ n: Int, into buffer: UnsafeMutableRawBufferPointer) {
        guard n > 0 else { return }
        for i in 0..<n { buffer[i] = readable[i] }
        readable.removeFirst(n)
    }

    /// What a non-canonical read of `requested` (> 0) bytes does, from VMIN and VTIME
    /// (termios(3)): take bytes now (possibly none: a poll, or VTIME ran out), or wait until
    /// more input or the deadline (nil: no deadline). `callStart` is when the read began.
    public enum RawRead: Equatable, Sendable {
        case take(Int)
        case wait(until: UInt64?)
    }

    public func rawReadPlan(requested: Int, callStart: UInt64, now: UInt64) -> RawRead {
        let minimum = Int(settings[TerminalSettings.VMIN])
        let time = UInt64(settings[TerminalSettings.VTIME]) * 100_000_000  // tenths of a second
        let available = min(readable.count, requested)
        if minimum == 0 {
            if available > 0 || time == 0 { return .take(available) }
            // VTIME alone: a read that waits at most that long for its first byte.
            let deadline = callStart &+ time
            return now >= deadline ? .take(0) : .wait(until: deadline)
        }
        if available >= min(minimum, requested) { return .take(available) }
        if time == 0 || available == 0 { return .wait(until: nil) }
        // VMIN and VTIME: after the first byte, VTIME between bytes ends the read.
        let deadline = lastInputTime &+ time
        return now >= deadline ? .take(available) : .wait(until: deadline)
    }

    // MARK: input

    /// Input bytes from the keyboard, arrived at `now`.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: UInt64) -> Effects {
        var effects = Effects()
        for byte in bytes { receive(byte, &effects) }
        if !bytes.isEmpty { lastInputTime = now }
        return effects
    }

    public mutating func receive(_ bytes: [UInt8], now: UInt64) -> Effects {
        bytes.withUnsafeBytes { receive($0, now: now) }
    }

    private func isSpecial(_ c: UInt8, _ index: Int) -> Bool {
        let special = settings[index]
        return special != 0 && c == special  // 0 is _POSIX_VDISABLE
    }

    private mutating func receive(_ input: UInt8, _ effects: inout Effects) {
        typealias T = TerminalSettings
        let s = settings
        var c = input
        if s.has(input: T.ISTRIP) { c &= 0x7f }
        if literalNext {
            literalNext = false
            if s.has(local: T.ECHO) && s.has(local: T.ECHOCTL) { output(8, into: &effects.echo) }  // over the '^'
            insert(c, &effects)
            return
        }
        if c == 13 {
            if s.has(input: T.IGNCR) { return }
            if s.has(input: T.ICRNL) { c = 10 }
        } else if c == 10 && s.has(input: T.INLCR) {
            c = 13
        }
        if s.has(input: T.IXON) {
            if isSpecial(c, T.VSTOP) { outputStopped = true; return }
            if isSpecial(c, T.VSTART) { outputStopped = false; return }
            if s.has(input: T.IXANY) { outputStopped = false }
        }
        if s.has(local: T.ISIG) {
            if isSpecial(c, T.VINTR) { signal(Self.SIGINT, c, &effects); return }
            if isSpecial(c, T.VQUIT) { signal(Self.SIGQUIT, c, &effects); return }
            if isSpecial(c, T.VSUSP) { signal(Self.SIGTSTP, c, &effects); return }
        }
        guard s.has(local: T.ICANON) else {
            guard readable.count < Self.bufferSize else { return }
            if s.has(local: T.ECHO) {
                if c == 10 { output(10, into: &effects.echo) } else { echo(c, &effects) }
            }
            readable.append(c)
            return
        }
        let extended = s.has(local: T.IEXTEN)
        if isSpecial(c, T.VERASE) { erase(.character, &effects); return }
        if isSpecial(c, T.VKILL) { erase(.line, &effects); return }
        if extended && isSpecial(c, T.VWERASE) { erase(.word, &effects); return }
        if extended && isSpecial(c, T.VLNEXT) {
            literalNext = true
            if s.has(local: T.ECHO) && s.has(local: T.ECHOCTL) {
                if editing.isEmpty { lineStartColumn = column }
                output(UInt8(ascii: "^"), into: &effects.echo)
            }
            return
        }
        if extended && isSpecial(c, T.VREPRINT) && s.has(local: T.ECHO) {
            echo(c, &effects)
            output(10, into: &effects.echo)
            lineStartColumn = column
            for byte in editing { echo(byte, &effects) }
            return
        }
        if c == 10 || isSpecial(c, T.VEOL) || (extended && isSpecial(c, T.VEOL2)) {
            guard readable.count + editing.count < Self.bufferSize || readable.isEmpty else { return }
            if c == 10 {
                if s.has(local: T.ECHO) || s.has(local: T.ECHONL) { output(10, into: &effects.echo) }
            } else if s.has(local: T.ECHO) {
                echo(c, &effects)
            }
            editing.append(c)
            finishLine()
            return
        }
        if isSpecial(c, T.VEOF) {
            finishLine()  // not echoed; at the start of a line, an end of file
            return
        }
        insert(c, &effects)
    }

    /// An ordinary character: into the edited line (canonical) or the read buffer.
    private mutating func insert(_ c: UInt8, _ effects: inout Effects) {
        guard canonical else {
            guard readable.count < Self.bufferSize else { return }
            if settings.has(local: TerminalSettings.ECHO) { echo(c, &effects) }
            readable.append(c)
            return
        }
        // One byte stays free for the line's end, as in Linux.
        guard readable.count + editing.count < Self.bufferSize - 1 else { return }
        if settings.has(local: TerminalSettings.ECHO) {
            if editing.isEmpty { lineStartColumn = column }
            echo(c, &effects)
        }
        editing.append(c)
    }

    private mutating func finishLine() {
        readable += editing
        lineLengths.append(editing.count)
        editing = []
        lineStartColumn = column
    }

    private mutating func signal(_ signal: Int32, _ c: UInt8, _ effects: inout Effects) {
        if !settings.has(local: TerminalSettings.NOFLSH) { flushInput() }
        outputStopped = false
        if settings.has(local: TerminalSettings.ECHO) { echo(c, &effects) }
        effects.signals.append(signal)
    }

    // MARK: erasing

    private enum Erase { case character, word, line }

    private static func isControl(_ c: UInt8) -> Bool { c < 0x20 || c == 0x7f }
    private static func isWordCharacter(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == 0x5f
    }

    private mutating func erase(_ kind: Erase, _ effects: inout Effects) {
        typealias T = TerminalSettings
        guard !editing.isEmpty else { return }
        let s = settings
        let echoing = s.has(local: T.ECHO)
        if kind == .line && (!echoing || !s.has(local: T.ECHOK) || !s.has(local: T.ECHOKE) || !s.has(local: T.ECHOE)) {
            editing = []
            if echoing {
                echo(s[T.VKILL], &effects)
                if s.has(local: T.ECHOK) { output(10, into: &effects.echo) }
            }
            lineStartColumn = column
            return
        }
        var seenWord = false
        while !editing.isEmpty {
            // One character: with IUTF8, a lead byte and its continuation bytes.
            var start = editing.count - 1
            if s.has(input: T.IUTF8) {
                while start > 0 && editing[start] & 0xc0 == 0x80 { start -= 1 }
            }
            let c = editing[start]
            if kind == .word {
                if Self.isWordCharacter(c) { seenWord = true } else if seenWord { break }
            }
            editing.removeSubrange(start...)
            if echoing {
                if kind == .character && !s.has(local: T.ECHOE) {
                    echo(s[T.VERASE], &effects)
                } else if c == 9 {
                    // Back to where the tab started: the column after the rest of the line.
                    let target = columnAfterEditedLine()
                    while column > target { output(8, into: &effects.echo) }
                } else {
                    let control = Self.isControl(c)
                    if control && s.has(local: T.ECHOCTL) { effects.echo += eraseOne() }
                    if !control || s.has(local: T.ECHOCTL) { effects.echo += eraseOne() }
                }
            }
            if kind == .character { break }
        }
    }

    /// "\b \b" for one column, keeping `column`.
    private mutating func eraseOne() -> [UInt8] {
        if column > 0 { column -= 1 }
        return [8, 32, 8]
    }

    /// The column the echo of `editing` ends at, from where the line began.
    private func columnAfterEditedLine() -> Int {
        var col = lineStartColumn
        for c in editing {
            if c == 9 {
                col = (col | 7) + 1
            } else if Self.isControl(c) {
                if settings.has(local: TerminalSettings.ECHOCTL) { col += 2 }
            } else if !(settings.has(input: TerminalSettings.IUTF8) && c & 0xc0 == 0x80) {
                col += 1
            }
        }
        return col
    }

    // MARK: output

    /// Echoes one input byte: control characters as ^X with ECHOCTL (tab and newline as
    /// themselves).
    private mutating func echo(_ c: UInt8, _ effects: inout Effects) {
        if settings.has(local: TerminalSettings.ECHOCTL) && Self.isControl(c) && c != 9 && c != 10 {
            output(UInt8(ascii: "^"), into: &effects.echo)
            output(c ^ 0x40, into: &effects.echo)
        } else {
            output(c, into: &effects.echo)
        }
    }

    /// Output processing of the program's bytes (write(2) on the terminal).
    public mutating func processOutput(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + bytes.count + bytes.count / 8)
        for c in bytes { output(c, into: &out) }
    }

    /// One byte through OPOST (Linux's do_output_char), tracking the column.
    private mutating func output(_ c: UInt8, into out: inout [UInt8]) {
        typealias T = TerminalSettings
        let s = settings
        guard s.has(output: T.OPOST) else {
            out.append(c)
            return
        }
        switch c {
        case 10:
            if s.has(output: T.ONLRET) { column = 0 }
            if s.has(output: T.ONLCR) {
                column = 0
                out.append(13)
            }
            out.append(10)
        case 13:
            if s.has(output: T.ONOCR) && column == 0 { return }
            if s.has(output: T.OCRNL) {
                if s.has(output: T.ONLRET) { column = 0 }
                out.append(10)
                return
            }
            column = 0
            out.append(13)
        case 9:
            column = (column | 7) + 1
            out.append(9)
        case 8:
            if column > 0 { column -= 1 }
            out.append(8)
        default:
            if !Self.isControl(c) && !(s.has(input: T.IUTF8) && c & 0xc0 == 0x80) { column += 1 }
            out.append(c)
        }
    }
}
