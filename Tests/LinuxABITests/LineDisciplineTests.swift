import Glibc
import LinuxABI
import XCTest

/// The terminal structures against the host kernel's (a real pseudo-terminal), and the line
/// discipline against what Linux's n_tty does with the same keys.
final class TerminalStructTests: XCTestCase {
    private func openPTY() throws -> (master: Int32, slave: Int32) {
        // posix_openpt and friends by hand (the Glibc module leaves them out): /dev/ptmx,
        // TIOCSPTLCK 0 to unlock, TIOCGPTN for the number.
        let master = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        var unlock: Int32 = 0, number: UInt32 = 0
        guard master >= 0, ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else {
            throw XCTSkip("no pseudo-terminal on this host")
        }
        let slave = open("/dev/pts/\(number)", O_RDWR | O_NOCTTY)
        guard slave >= 0 else { throw XCTSkip("cannot open /dev/pts/\(number)") }
        return (master, slave)
    }

    /// TCGETS's bytes decode to what tcgetattr reports; TCSETS of our encoding sets exactly
    /// what tcgetattr then reads back.
    func testTermiosLayoutMatchesTheHostKernel() throws {
        let (master, slave) = try openPTY()
        defer { close(master); close(slave) }
        var raw = [UInt8](repeating: 0xee, count: TerminalSettings.size)
        XCTAssertEqual(raw.withUnsafeMutableBytes { ioctl(slave, UInt(TCGETS), $0.baseAddress!) }, 0)
        let decoded = try raw.withUnsafeBytes { try TerminalSettings.decode(from: $0) }
        var c = termios()
        XCTAssertEqual(tcgetattr(slave, &c), 0)
        XCTAssertEqual(decoded.inputFlags, c.c_iflag)
        XCTAssertEqual(decoded.outputFlags, c.c_oflag)
        XCTAssertEqual(decoded.controlFlags, c.c_cflag)
        XCTAssertEqual(decoded.localFlags, c.c_lflag)
        let cc = withUnsafeBytes(of: c.c_cc) { Array($0.prefix(TerminalSettings.controlCharacterCount)) }
        XCTAssertEqual(decoded.controlCharacters, cc)
        // A fresh pseudo-terminal has Linux's standard settings; ours add IUTF8.
        var fresh = TerminalSettings.linuxDefault
        fresh.inputFlags &= ~TerminalSettings.IUTF8
        var hostFresh = decoded
        hostFresh.inputFlags &= ~TerminalSettings.IUTF8
        XCTAssertEqual(hostFresh, fresh)

        var changed = TerminalSettings.linuxDefault
        changed.localFlags &= ~(TerminalSettings.ICANON | TerminalSettings.ECHO)
        changed[TerminalSettings.VMIN] = 3
        changed[TerminalSettings.VTIME] = 7
        changed[TerminalSettings.VERASE] = 8
        var out = [UInt8](repeating: 0, count: TerminalSettings.size)
        try out.withUnsafeMutableBytes { try changed.encode(into: $0) }
        XCTAssertEqual(out.withUnsafeMutableBytes { ioctl(slave, UInt(TCSETS), $0.baseAddress!) }, 0)
        XCTAssertEqual(tcgetattr(slave, &c), 0)
        XCTAssertEqual(c.c_lflag & UInt32(ICANON | ECHO), 0)
        XCTAssertEqual(c.c_cc.6, 3)   // VMIN
        XCTAssertEqual(c.c_cc.5, 7)   // VTIME
        XCTAssertEqual(c.c_cc.2, 8)   // VERASE
        XCTAssertEqual(c.c_iflag, changed.inputFlags)
        XCTAssertEqual(c.c_oflag, changed.outputFlags)
    }

    func testTermios2CarriesSpeeds() throws {
        var s = TerminalSettings.linuxDefault
        s.inputSpeed = 9600
        s.outputSpeed = 115200
        var bytes = [UInt8](repeating: 0xff, count: TerminalSettings.size2)
        try bytes.withUnsafeMutableBytes { try s.encode(into: $0, extended: true) }
        XCTAssertEqual(bytes[36..<40], [0x80, 0x25, 0, 0])
        XCTAssertEqual(try bytes.withUnsafeBytes { try TerminalSettings.decode(from: $0, extended: true) }, s)
        // Short buffers are EFAULT, never a trap.
        XCTAssertThrowsError(try [UInt8](repeating: 0, count: 35).withUnsafeBytes { try TerminalSettings.decode(from: $0) })
        var short = [UInt8](repeating: 0, count: 40)
        XCTAssertThrowsError(try short.withUnsafeMutableBytes { try s.encode(into: $0, extended: true) })
    }

    func testWindowSizeMatchesTheHostKernel() throws {
        let (master, slave) = try openPTY()
        defer { close(master); close(slave) }
        var size = WindowSize(rows: 43, columns: 132)
        size.xPixels = 5
        var bytes = [UInt8](repeating: 0, count: WindowSize.size)
        try bytes.withUnsafeMutableBytes { try size.encode(into: $0) }
        XCTAssertEqual(bytes.withUnsafeMutableBytes { ioctl(master, UInt(TIOCSWINSZ), $0.baseAddress!) }, 0)
        var w = winsize()
        XCTAssertEqual(ioctl(slave, UInt(TIOCGWINSZ), &w), 0)
        XCTAssertEqual([w.ws_row, w.ws_col, w.ws_xpixel, w.ws_ypixel], [43, 132, 5, 0])
        XCTAssertEqual(try bytes.withUnsafeBytes { try WindowSize.decode(from: $0) }, size)
    }
}

final class LineDisciplineTests: XCTestCase {
    typealias T = TerminalSettings

    private func line(_ d: inout LineDiscipline, max: Int = 4096) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: max)
        guard let n = buffer.withUnsafeMutableBytes({ d.readLine(into: $0) }) else { return nil }
        return Array(buffer[0..<n])
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testCanonicalLineWithEraseAndEcho() {
        var d = LineDiscipline()
        let e = d.receive(bytes("prnt") + [0x7f, 0x7f] + bytes("int"), now: 1)
        XCTAssertNil(line(&d), "no line before the newline")
        XCTAssertFalse(d.hasReadableInput)
        XCTAssertEqual(e.echo, bytes("prnt\u{8} \u{8}\u{8} \u{8}int"))
        let end = d.receive([13], now: 2)  // Enter: CR, made NL by ICRNL
        XCTAssertEqual(end.echo, [13, 10])
        XCTAssertEqual(line(&d), bytes("print\n"))
        XCTAssertNil(line(&d))
    }

    func testEraseCharacterIsConfigurable() {
        var d = LineDiscipline()
        _ = d.receive(bytes("ab") + [8], now: 0)  // ^H is an ordinary character by default
        var s = d.settings
        s[T.VERASE] = 8
        d.apply(s)
        let e = d.receive([8, 8] + bytes("c\n"), now: 0)
        XCTAssertEqual(line(&d), bytes("ac\n"))
        XCTAssertEqual(e.echo, [8, 32, 8, 8, 32, 8, 8, 32, 8] + bytes("c\r\n"), "^H echoed as two columns, then b")
    }

    func testEraseWithoutECHOEEchoesTheEraseCharacter() {
        var d = LineDiscipline()
        var s = d.settings
        s.localFlags &= ~T.ECHOE
        d.apply(s)
        let e = d.receive(bytes("ab") + [0x7f], now: 0)
        XCTAssertEqual(e.echo, bytes("ab^?"))
    }

    func testKillErasesTheLine() {
        var d = LineDiscipline()
        let e = d.receive(bytes("abc") + [0x15] + bytes("x\n"), now: 0)
        XCTAssertEqual(line(&d), bytes("x\n"))
        XCTAssertEqual(e.echo, bytes("abc") + Array([[UInt8]](repeating: [8, 32, 8], count: 3).joined()) + bytes("x\r\n"))
        // Without ECHOKE: the kill character and a newline (ECHOK).
        var s = d.settings
        s.localFlags &= ~T.ECHOKE
        d.apply(s)
        let plain = d.receive(bytes("ab") + [0x15], now: 0)
        XCTAssertEqual(plain.echo, bytes("ab^U\r\n"))
        XCTAssertFalse(d.hasReadableInput)
    }

    func testWordEraseAndReprint() {
        var d = LineDiscipline()
        _ = d.receive(bytes("ls  foo.c  ") + [0x17], now: 0)  // ^W: "  ", "c", then stops at "."
        let r = d.receive([0x12], now: 0)                      // ^R
        XCTAssertEqual(r.echo, bytes("^R\r\nls  foo."))
        _ = d.receive([0x17, 10], now: 0)
        XCTAssertEqual(line(&d), bytes("ls  \n"))
    }

    func testEndOfFile() {
        var d = LineDiscipline()
        let e = d.receive(bytes("abc") + [4], now: 0)
        XCTAssertEqual(e.echo, bytes("abc"), "VEOF is not echoed")
        XCTAssertEqual(line(&d), bytes("abc"), "VEOF pushes the line without itself")
        _ = d.receive([4], now: 0)
        XCTAssertTrue(d.hasReadableInput)
        XCTAssertEqual(line(&d), [], "VEOF at the start of a line reads as end of file")
        XCTAssertNil(line(&d))
    }

    func testReadTakesAtMostOneLineInPieces() {
        var d = LineDiscipline()
        _ = d.receive(bytes("hello\nworld\n"), now: 0)
        XCTAssertEqual(d.readableCount, 12)
        XCTAssertEqual(line(&d, max: 3), bytes("hel"))
        XCTAssertEqual(line(&d), bytes("lo\n"))
        XCTAssertEqual(line(&d), bytes("world\n"))
    }

    func testInputTranslation() {
        var d = LineDiscipline()
        var s = d.settings
        s.inputFlags = (s.inputFlags & ~T.ICRNL) | T.IGNCR
        d.apply(s)
        _ = d.receive(bytes("a\rb\n"), now: 0)
        XCTAssertEqual(line(&d), bytes("ab\n"))
        s.inputFlags = (s.inputFlags & ~T.IGNCR) | T.INLCR
        s.localFlags &= ~T.ICANON
        d.apply(s)
        _ = d.receive(bytes("x\n"), now: 0)
        var buffer = [UInt8](repeating: 0, count: 8)
        let n = buffer.withUnsafeMutableBytes { d.readBytes(into: $0, count: 8) }
        XCTAssertEqual(Array(buffer[0..<n]), bytes("x\r"))
        s.inputFlags = T.ISTRIP
        d.apply(s)
        _ = d.receive([0xc1], now: 0)
        XCTAssertEqual(buffer.withUnsafeMutableBytes { d.readBytes(into: $0, count: 8) }, 1)
        XCTAssertEqual(buffer[0], 0x41)
    }

    func testSignalCharacters() {
        var d = LineDiscipline()
        let e = d.receive(bytes("ab") + [3], now: 0)
        XCTAssertEqual(e.signals, [LineDiscipline.SIGINT])
        XCTAssertEqual(e.echo, bytes("ab^C"))
        _ = d.receive([10], now: 0)
        XCTAssertEqual(line(&d), [10], "the interrupted line was flushed")
        XCTAssertEqual(d.receive([0x1c], now: 0).signals, [LineDiscipline.SIGQUIT])
        XCTAssertEqual(d.receive([0x1a], now: 0).signals, [LineDiscipline.SIGTSTP])
        // NOFLSH keeps the input.
        var s = d.settings
        s.localFlags |= T.NOFLSH
        d.apply(s)
        _ = d.receive(bytes("keep") + [3] + bytes("\n"), now: 0)
        XCTAssertEqual(line(&d), bytes("keep\n"))
        // Without ISIG, ^C is data (raw mode as a full-screen program sets it).
        s.localFlags &= ~(T.ISIG | T.ICANON | T.ECHO)
        d.apply(s)
        let raw = d.receive([3], now: 0)
        XCTAssertEqual(raw.signals, [])
        XCTAssertEqual(raw.echo, [])
        XCTAssertEqual(d.readableCount, 1)
    }

    func testControlCharactersEchoAsCaretAndEraseTwoColumns() {
        var d = LineDiscipline()
        let e = d.receive([0x61, 0x01, 0x7f], now: 0)
        XCTAssertEqual(e.echo, bytes("a^A") + [8, 32, 8, 8, 32, 8])
        // Without ECHOCTL a control character is echoed as itself and erasing it prints nothing.
        var s = d.settings
        s.localFlags &= ~T.ECHOCTL
        d.apply(s)
        XCTAssertEqual(d.receive([0x01, 0x7f], now: 0).echo, [0x01])
    }

    func testLiteralNext() {
        var d = LineDiscipline()
        let e = d.receive([0x16, 0x03, 0x16, 0x7f, 10], now: 0)  // ^V ^C ^V DEL NL
        XCTAssertEqual(e.signals, [])
        XCTAssertEqual(e.echo, bytes("^\u{8}^C^\u{8}^?\r\n"))
        XCTAssertEqual(line(&d), [0x03, 0x7f, 10])
    }

    func testUTF8CharacterErasesWhole() {
        var d = LineDiscipline()
        let e = d.receive(bytes("aé") + [0x7f] + bytes("\n"), now: 0)
        XCTAssertEqual(line(&d), bytes("a\n"))
        XCTAssertEqual(e.echo, bytes("aé") + [8, 32, 8] + bytes("\r\n"))
        XCTAssertEqual(d.column, 0)
    }

    func testTabEraseGoesBackToTheTabStop() {
        var d = LineDiscipline()
        var out: [UInt8] = []
        bytes("$ ").withUnsafeBytes { d.processOutput($0, into: &out) }  // a prompt: column 2
        let e = d.receive(bytes("ab\t") + [0x7f], now: 0)
        XCTAssertEqual(e.echo, bytes("ab\t") + [8, 8, 8, 8])  // from column 8 back to 4
        XCTAssertEqual(d.column, 4)
    }

    func testEchoNewlineWithoutEcho() {
        var d = LineDiscipline()
        var s = d.settings
        s.localFlags = (s.localFlags & ~T.ECHO) | T.ECHONL
        d.apply(s)
        let e = d.receive(bytes("secret\n"), now: 0)
        XCTAssertEqual(e.echo, [13, 10])
        XCTAssertEqual(line(&d), bytes("secret\n"))
    }

    func testOutputProcessing() {
        var d = LineDiscipline()
        var out: [UInt8] = []
        bytes("a\nb").withUnsafeBytes { d.processOutput($0, into: &out) }
        XCTAssertEqual(out, bytes("a\r\nb"))
        var s = d.settings
        s.outputFlags = T.OPOST | T.OCRNL | T.ONOCR
        var fresh = LineDiscipline(settings: s)
        out = []
        bytes("\rx\r").withUnsafeBytes { fresh.processOutput($0, into: &out) }
        XCTAssertEqual(out, bytes("x\n"), "ONOCR drops a CR at column 0; OCRNL makes the other one NL")
        s.outputFlags = 0
        d.apply(s)
        out = []
        bytes("a\n").withUnsafeBytes { d.processOutput($0, into: &out) }
        XCTAssertEqual(out, bytes("a\n"))
    }

    func testLeavingCanonicalModeMakesTheLineReadable() {
        var d = LineDiscipline()
        _ = d.receive(bytes("done\npartial"), now: 0)
        var s = d.settings
        s.localFlags &= ~T.ICANON
        d.apply(s)
        XCTAssertEqual(d.readableCount, 12)
        s.localFlags |= T.ICANON
        d.apply(s)
        XCTAssertFalse(d.hasReadableInput, "back in canonical mode the bytes are an unfinished line")
        _ = d.receive([10], now: 0)
        XCTAssertEqual(line(&d), bytes("done\npartial\n"))
    }

    func testVMINAndVTIME() {
        var d = LineDiscipline()
        var s = d.settings
        s.localFlags &= ~T.ICANON
        s[T.VMIN] = 0
        s[T.VTIME] = 0
        d.apply(s)
        XCTAssertEqual(d.rawReadPlan(requested: 10, callStart: 0, now: 0), .take(0), "MIN 0 TIME 0: a poll")
        s[T.VTIME] = 5
        d.apply(s)
        XCTAssertEqual(d.rawReadPlan(requested: 10, callStart: 1_000, now: 1_000), .wait(until: 500_001_000))
        XCTAssertEqual(d.rawReadPlan(requested: 10, callStart: 1_000, now: 500_001_000), .take(0))
        s[T.VMIN] = 3
        s[T.VTIME] = 0
        d.apply(s)
        _ = d.receive(bytes("ab"), now: 7_000)
        XCTAssertEqual(d.rawReadPlan(requested: 10, callStart: 0, now: 8_000), .wait(until: nil), "MIN 3: two are not enough")
        XCTAssertEqual(d.rawReadPlan(requested: 2, callStart: 0, now: 8_000), .take(2), "a read of 2 needs only 2")
        s[T.VTIME] = 1
        d.apply(s)
        XCTAssertEqual(d.rawReadPlan(requested: 10, callStart: 0, now: 8_000), .wait(until: 100_007_000), "the inter-byte timer")
        XCTAssertEqual(d.rawReadPlan(requested: 10, callStart: 0, now: 100_007_000), .take(2))
        _ = d.receive(bytes("c"), now: 9_000)
        XCTAssertEqual(d.rawReadPlan(requested: 10, callStart: 0, now: 9_000), .take(3))
    }

    func testFullBufferDropsInput() {
        var d = LineDiscipline()
        _ = d.receive([UInt8](repeating: 0x61, count: 5000), now: 0)
        XCTAssertEqual(d.room, 1, "an edited line stops one short of the buffer")
        _ = d.receive([10], now: 0)
        XCTAssertEqual(line(&d, max: 8192)?.count, LineDiscipline.bufferSize)
        var s = d.settings
        s.localFlags &= ~T.ICANON
        d.apply(s)
        _ = d.receive([UInt8](repeating: 0x62, count: 5000), now: 0)
        XCTAssertEqual(d.readableCount, LineDiscipline.bufferSize)
    }

    func testFlowControlCharactersAreTakenOut() {
        var d = LineDiscipline()
        _ = d.receive([0x13], now: 0)
        XCTAssertTrue(d.outputStopped)
        _ = d.receive([0x11, 10], now: 0)
        XCTAssertFalse(d.outputStopped)
        XCTAssertEqual(line(&d), [10])
    }
}
