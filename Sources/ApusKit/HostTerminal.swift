#if canImport(Glibc)
import Glibc
#endif

/// `apus run -t`: the host's terminal (apus's stdin) in raw mode while the VM runs — no echo,
/// no line editing, no signals from the keyboard, no output processing — so that every key
/// reaches the guest's line discipline as a byte (^C included) and the guest's output
/// reaches the screen as it wrote it. The settings found at the start come back on every way
/// out: the normal return and every error (`restore`, from `boot`'s defer), and a crash of
/// apus itself: SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT and SIGTRAP handlers put them back
/// with tcsetattr (async-signal-safe), then re-raise the signal under its previous handler
/// (the Swift runtime's backtracer, or the default action). A SIGKILL of apus leaves the
/// terminal raw (nothing can run then; `stty sane` or `reset` repairs it).
public enum HostTerminal {
    nonisolated(unsafe) static var saved = termios()
    nonisolated(unsafe) static var active: Int32 = 0
    /// The dispositions the crash handlers replaced, by signal number (allocated once, before
    /// any handler can run: a handler must not allocate).
    nonisolated(unsafe) static var previous = UnsafeMutablePointer<sigaction>.allocate(capacity: 65)
    static let crashSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP]

    /// -t needs a terminal to give the guest: docker's "the input device is not a TTY".
    static func check() throws(RunError) {
        guard isatty(0) == 1 else {
            throw RunError("-t: the input device is not a TTY (apus's stdin must be a terminal; run without -t, or from a terminal)")
        }
    }

    /// The host terminal's size (rows, columns) from stdin, else stdout; (0, 0) if unknown.
    static func windowSize() -> (rows: UInt16, columns: UInt16) {
        var size = winsize()
        for fd: Int32 in [0, 1] where ioctl(fd, UInt(TIOCGWINSZ), &size) == 0 && size.ws_row > 0 {
            return (size.ws_row, size.ws_col)
        }
        return (0, 0)
    }

    /// TERM for the guest: the host's, else xterm (docker sets xterm).
    static var termVariable: String {
        if let value = getenv("TERM"), value.pointee != 0 { return "TERM=" + String(cString: value) }
        return "TERM=xterm"
    }

    /// Saves the settings and switches the terminal to raw mode (cfmakeraw's changes, VMIN
    /// 1, VTIME 0).
    static func enterRaw() throws(RunError) {
        guard tcgetattr(0, &saved) == 0 else {
            throw RunError("-t: cannot read the terminal's settings: \(String(cString: strerror(errno)))")
        }
        var raw = saved
        raw.c_iflag &= ~tcflag_t(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON)
        raw.c_oflag &= ~tcflag_t(OPOST)
        raw.c_lflag &= ~tcflag_t(ECHO | ECHONL | ICANON | ISIG | IEXTEN)
        raw.c_cflag &= ~tcflag_t(CSIZE | PARENB)
        raw.c_cflag |= tcflag_t(CS8)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        for signal in crashSignals {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { signal in HostTerminal.crashed(signal) }
            action.sa_flags = Int32(SA_NODEFER)
            sigemptyset(&action.sa_mask)
            sigaction(signal, &action, previous + Int(signal))
        }
        active = 1
        while tcsetattr(0, TCSADRAIN, &raw) != 0 {
            if errno == EINTR { continue }
            let problem = String(cString: strerror(errno))
            restore()
            throw RunError("-t: cannot put the terminal in raw mode: \(problem)")
        }
    }

    /// The saved settings back, and the crash handlers gone.
    static func restore() {
        guard active != 0 else { return }
        while tcsetattr(0, TCSADRAIN, &saved) != 0 && errno == EINTR {}
        active = 0
        for signal in crashSignals { sigaction(signal, previous + Int(signal), nil) }
    }

    /// A crash signal: the terminal's settings back (tcsetattr and sigaction are
    /// async-signal-safe), then the signal again under the handler that was there before.
    /// A fault re-executes and faults again there; a sent signal (abort, kill) is re-raised.
    private static func crashed(_ signal: Int32) {
        if active != 0 { tcsetattr(0, TCSANOW, &saved) }
        active = 0
        sigaction(signal, previous + Int(signal), nil)
        raise(signal)
    }
}
