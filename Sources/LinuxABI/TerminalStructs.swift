// A terminal's settings as the Linux ioctls carry them: struct termios (TCGETS/TCSETS*),
// struct termios2 (TCGETS2/TCSETS2*) and struct winsize (TIOCGWINSZ/TIOCSWINSZ), x86-64.
//
//   struct termios  { u32 c_iflag @0, c_oflag @4, c_cflag @8, c_lflag @12; u8 c_line @16;
//                     u8 c_cc[19] @17 }                                          36 bytes
//   struct termios2 { the same, then u32 c_ispeed @36, c_ospeed @40 }             44 bytes
//   struct winsize  { u16 ws_row @0, ws_col @2, ws_xpixel @4, ws_ypixel @6 }       8 bytes
//
// (The kernel's struct termios is not glibc's: glibc's has c_cc[32] and speed fields, and
// converts in tcgetattr.)

/// The flags and control characters of a terminal (termios(3)).
public struct TerminalSettings: Equatable, Sendable {
    public static let size = 36
    public static let size2 = 44
    public static let controlCharacterCount = 19

    public var inputFlags: UInt32
    public var outputFlags: UInt32
    public var controlFlags: UInt32
    public var localFlags: UInt32
    public var lineDiscipline: UInt8 = 0
    /// c_cc, indexed by the V* constants below; 0 disables a character (_POSIX_VDISABLE).
    public var controlCharacters: [UInt8]
    public var inputSpeed: UInt32 = 38400
    public var outputSpeed: UInt32 = 38400

    // c_iflag
    public static let IGNBRK: UInt32 = 0o1, BRKINT: UInt32 = 0o2, IGNPAR: UInt32 = 0o4, ISTRIP: UInt32 = 0o40
    public static let INLCR: UInt32 = 0o100, IGNCR: UInt32 = 0o200, ICRNL: UInt32 = 0o400
    public static let IXON: UInt32 = 0o2000, IXANY: UInt32 = 0o4000, IXOFF: UInt32 = 0o10000
    public static let IMAXBEL: UInt32 = 0o20000, IUTF8: UInt32 = 0o40000
    // c_oflag
    public static let OPOST: UInt32 = 0o1, ONLCR: UInt32 = 0o4, OCRNL: UInt32 = 0o10
    public static let ONOCR: UInt32 = 0o20, ONLRET: UInt32 = 0o40
    // c_cflag
    public static let B38400: UInt32 = 0o17, CS8: UInt32 = 0o60, CREAD: UInt32 = 0o200, HUPCL: UInt32 = 0o2000
    // c_lflag
    public static let ISIG: UInt32 = 0o1, ICANON: UInt32 = 0o2, ECHO: UInt32 = 0o10, ECHOE: UInt32 = 0o20
    public static let ECHOK: UInt32 = 0o40, ECHONL: UInt32 = 0o100, NOFLSH: UInt32 = 0o200
    public static let TOSTOP: UInt32 = 0o400, ECHOCTL: UInt32 = 0o1000, ECHOPRT: UInt32 = 0o2000
    public static let ECHOKE: UInt32 = 0o4000, IEXTEN: UInt32 = 0o100000

    // c_cc indices
    public static let VINTR = 0, VQUIT = 1, VERASE = 2, VKILL = 3, VEOF = 4, VTIME = 5, VMIN = 6
    public static let VSWTC = 7, VSTART = 8, VSTOP = 9, VSUSP = 10, VEOL = 11, VREPRINT = 12
    public static let VDISCARD = 13, VWERASE = 14, VLNEXT = 15, VEOL2 = 16

    /// A new pseudo-terminal's settings on Linux (tty_std_termios with the pty driver's
    /// c_cflag, as `stty -a` shows a fresh /dev/pts/N), plus IUTF8 as the host terminals that
    /// start Apus have it: cooked input
    /// (ICRNL, IXON), output with NL → CR NL, canonical mode with echo and the usual erase.
    public static let linuxDefault = TerminalSettings(
        inputFlags: ICRNL | IXON | IUTF8,
        outputFlags: OPOST | ONLCR,
        controlFlags: B38400 | CS8 | CREAD,
        localFlags: ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN,
        //                 INTR QUIT ERASE KILL EOF TIME MIN SWTC START STOP SUSP EOL REPRINT DISCARD WERASE LNEXT EOL2
        controlCharacters: [0x03, 0x1c, 0x7f, 0x15, 0x04, 0, 1, 0, 0x11, 0x13, 0x1a, 0, 0x12, 0x0f, 0x17, 0x16, 0, 0, 0])

    public init(inputFlags: UInt32, outputFlags: UInt32, controlFlags: UInt32, localFlags: UInt32,
                controlCharacters: [UInt8]) {
        precondition(controlCharacters.count == Self.controlCharacterCount)
        self.inputFlags = inputFlags
        self.outputFlags = outputFlags
        self.controlFlags = controlFlags
        self.localFlags = localFlags
        self.controlCharacters = controlCharacters
    }

    public subscript(_ index: Int) -> UInt8 {
        get { controlCharacters[index] }
        set { controlCharacters[index] = newValue }
    }

    public func has(local flag: UInt32) -> Bool { localFlags & flag != 0 }
    public func has(input flag: UInt32) -> Bool { inputFlags & flag != 0 }
    public func has(output flag: UInt32) -> Bool { outputFlags & flag != 0 }

    /// struct termios (36 bytes) or, with `extended`, struct termios2 (44 bytes, with the
    /// speeds). EFAULT when the buffer is shorter.
    public static func decode(from buffer: UnsafeRawBufferPointer, extended: Bool = false) throws(Errno) -> TerminalSettings {
        guard buffer.count >= (extended ? size2 : size) else { throw .EFAULT }
        let r = StructReader(buffer)
        var cc = [UInt8](repeating: 0, count: controlCharacterCount)
        for i in 0..<controlCharacterCount { cc[i] = buffer[17 + i] }
        var s = TerminalSettings(inputFlags: r.get(UInt32.self, at: 0)!, outputFlags: r.get(UInt32.self, at: 4)!,
                                 controlFlags: r.get(UInt32.self, at: 8)!, localFlags: r.get(UInt32.self, at: 12)!,
                                 controlCharacters: cc)
        s.lineDiscipline = buffer[16]
        if extended {
            s.inputSpeed = r.get(UInt32.self, at: 36)!
            s.outputSpeed = r.get(UInt32.self, at: 40)!
        }
        return s
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer, extended: Bool = false) throws(Errno) {
        let size = extended ? Self.size2 : Self.size
        try checkFits(buffer, size)
        var w = StructWriter(buffer)
        w.zero(count: size)
        w.put(inputFlags, at: 0)
        w.put(outputFlags, at: 4)
        w.put(controlFlags, at: 8)
        w.put(localFlags, at: 12)
        w.put(lineDiscipline, at: 16)
        for i in 0..<Self.controlCharacterCount { w.put(controlCharacters[i], at: 17 + i) }
        if extended {
            w.put(inputSpeed, at: 36)
            w.put(outputSpeed, at: 40)
        }
    }
}

/// struct winsize: a terminal's size in characters (and pixels, which nothing here uses).
public struct WindowSize: Equatable, Sendable {
    public static let size = 8
    public var rows: UInt16
    public var columns: UInt16
    public var xPixels: UInt16 = 0
    public var yPixels: UInt16 = 0

    public init(rows: UInt16, columns: UInt16) {
        self.rows = rows
        self.columns = columns
    }

    public static func decode(from buffer: UnsafeRawBufferPointer) throws(Errno) -> WindowSize {
        let r = StructReader(buffer)
        guard let rows = r.get(UInt16.self, at: 0), let columns = r.get(UInt16.self, at: 2),
              let x = r.get(UInt16.self, at: 4), let y = r.get(UInt16.self, at: 6) else { throw .EFAULT }
        var size = WindowSize(rows: rows, columns: columns)
        size.xPixels = x
        size.yPixels = y
        return size
    }

    public func encode(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) {
        try checkFits(buffer, Self.size)
        var w = StructWriter(buffer)
        w.put(rows, at: 0)
        w.put(columns, at: 2)
        w.put(xPixels, at: 4)
        w.put(yPixels, at: 6)
    }
}
