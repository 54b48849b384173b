import GuestABI
import KernelArch
import LinuxABI
import VFS

/// `apus run -t`: the program's terminal. Descriptors 0, 1 and 2 are one open file of
/// /dev/pts/0 (a character device 136:0, so isatty, ttyname and `ls -l /proc/self/fd` see a
/// pseudo-terminal, as under `docker run -t`), and /dev/tty and /dev/console are the same
/// terminal. Keyboard bytes from the host go through the line discipline (LinuxABI's
/// `LineDiscipline`: canonical mode, echo, erase and kill, VMIN/VTIME, ^C/^\/^Z as signals
/// for the foreground process group), and what the program writes through its output
/// processing (ONLCR) to the host's stdout, whose terminal apus keeps in raw mode.
///
/// Sessions: pid 1 leads session 1 and starts with the terminal as its controlling terminal
/// and process group 1 in the foreground. A process's controlling terminal is this one while
/// its session is the terminal's (setsid leaves it; TIOCSCTTY from a session leader takes it).
/// A read from a background process group raises SIGTTIN at the group and runs again once
/// continued (EIO when SIGTTIN is ignored or blocked); a write raises SIGTTOU the same way
/// with TOSTOP. TIOCSPGRP and TCSETS* from the background do not raise SIGTTOU.
///
/// Without `BootInfo.flagTerminal` none of this is in use: the standard streams stay byte
/// streams to the host (Files.swift).
enum Terminal {
    nonisolated(unsafe) static var enabled = false
    nonisolated(unsafe) static var discipline = LineDiscipline()
    nonisolated(unsafe) static var window = WindowSize(rows: 0, columns: 0)
    /// The session whose controlling terminal this is (0: none) and its foreground group.
    nonisolated(unsafe) static var session: Int32 = 1
    nonisolated(unsafe) static var foregroundGroup: Int32 = 1
    /// The host's stdin ended (the host terminal hung up): reads return end of file.
    nonisolated(unsafe) static var hostEnded = false
    /// Changes with every input batch (edge-triggered epoll's news).
    nonisolated(unsafe) static var inputStamp: UInt64 = 0

    static let path: StaticString = "/dev/pts/0"

    /// At mount, instead of the three console descriptors: /dev/pts/0, opened read-write as
    /// descriptor 0 and duplicated to 1 and 2 (one open file description, as a shell's
    /// terminal has).
    static func install(_ fs: inout FileSystem<KernelHost>) {
        enabled = true
        window = WindowSize(rows: Kernel.boot.terminalRows, columns: Kernel.boot.terminalColumns)
        let made = path.withUTF8Buffer { p -> Bool in
            let name = UnsafeRawBufferPointer(p)
            do throws(Errno) {
                try fs.addSynthetic(path: name, .device(.console(ConsoleID.stdin)))
                let fd = try fs.openat(SysIO.AT_FDCWD, name, flags: .O_RDWR)
                _ = try fs.duplicate2(fd, 1)
                _ = try fs.duplicate2(fd, 2)
                return fd == 0
            } catch {
                return false
            }
        }
        if !made { panic("cannot make the terminal /dev/pts/0") }
    }

    /// Whether `id` (a console id the VFS holds) is this terminal.
    static func isTerminal(_ id: UInt32) -> Bool { enabled && id <= ConsoleID.console }

    static func owns(_ fd: Int32) -> Bool {
        guard enabled, case .device(.console(let id))? = try? SysIO.fs.nodeType(fd) else { return false }
        return isTerminal(id)
    }

    /// Whether `p`'s controlling terminal is this one.
    static func controls(_ p: Process) -> Bool { session != 0 && p.session == session }

    // MARK: host input

    /// Takes the host input there is now into the line discipline (echo, signals). Returns
    /// whether anything arrived (bytes, or the end of the host's stdin). Also the entry for
    /// "host input may be available" when no one reads: ^C then still raises SIGINT.
    @discardableResult
    static func pumpHostInput() -> Bool {
        guard enabled else { return false }
        var arrived = false
        var chunk = [UInt8](repeating: 0, count: 512)
        while !hostEnded && discipline.room > 0 {
            let want = min(discipline.room, chunk.count)
            let result = chunk.withUnsafeMutableBytes { HostInput.readAvailable(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want])) }
            switch result {
            case .data(let n):
                chunk.withUnsafeBytes { receive(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                arrived = true
                if !HostInput.readsWithoutBlocking { return true }  // one blocking read per call
            case .endOfFile:
                hostEnded = true
                inputStamp &+= 1
                Scheduler.wakeRestartingWaiters()
                return true
            case .nothing:
                return arrived
            }
        }
        return arrived
    }

    private static func receive(_ bytes: UnsafeRawBufferPointer) {
        let effects = discipline.receive(bytes, now: Clock.monotonicNanos)
        if !effects.echo.isEmpty {
            effects.echo.withUnsafeBytes { Console.write(.stdout, $0) }
            Console.flushAll()
        }
        for signal in effects.signals { signalForeground(signal) }
        inputStamp &+= 1
        Scheduler.wakeRestartingWaiters()
    }

    /// A keyboard signal or SIGWINCH for every process of the foreground group (si_code
    /// SI_KERNEL, as Linux's tty sends them).
    private static func signalForeground(_ signal: Int32) {
        guard foregroundGroup != 0 else { return }
        for p in Processes.all where !p.isZombie && p.processGroup == foregroundGroup {
            SysSignal.raise(on: p, signal, SysSignal.sentByKernel)
        }
    }

    /// A window size the host reported (`HostChannel.windowSize` with the apus VMM, a serial
    /// frame under QEMU).
    static func checkHostEvents() {
        if Console.backend == .doorbell {
            let events = HostEvents.channel &+ UInt64(HostChannel.events)
            guard arch_load64(events) & HostChannel.eventWindowChanged != 0 else { return }
            Console.clearEvent(HostChannel.eventWindowChanged)
            let size = arch_load64(HostEvents.channel &+ UInt64(HostChannel.windowSize))
            windowChanged(rows: UInt16(truncatingIfNeeded: size), cols: UInt16(truncatingIfNeeded: size >> 16))
        } else if Serial.windowPending {
            Serial.windowPending = false
            windowChanged(rows: Serial.windowRows, cols: Serial.windowColumns)
        }
    }

    /// The host's window changed size (its SIGWINCH): TIOCGWINSZ answers the new size and
    /// the foreground group gets SIGWINCH.
    static func windowChanged(rows: UInt16, cols: UInt16) {
        guard enabled else { return }
        setWindow(WindowSize(rows: rows, columns: cols))
    }

    private static func setWindow(_ new: WindowSize) {
        guard new != window else { return }
        window = new
        signalForeground(28)  // SIGWINCH
    }

    // MARK: data

    /// read(2) on the terminal: a finished line in canonical mode, else what VMIN/VTIME say.
    static func read(into buffer: UnsafeMutableRawBufferPointer, nonblocking: Bool) throws(Errno) -> Int {
        guard buffer.count > 0 else { return 0 }
        if try stopIfBackground(21) { return 0 }  // SIGTTIN
        let time = UInt64(discipline.settings[TerminalSettings.VTIME]) * 100_000_000
        var callStart = Clock.monotonicNanos
        if let first = Scheduler.resumedDeadline, first != 0, first > time { callStart = first &- time }
        var arrived = false
        while true {
            var deadline: UInt64? = nil
            var poll = false
            if discipline.settings.has(local: TerminalSettings.ICANON) {
                if let n = discipline.readLine(into: buffer) { return n }
            } else {
                switch discipline.rawReadPlan(requested: buffer.count, callStart: callStart, now: Clock.monotonicNanos) {
                case .take(let n):
                    if n > 0 || arrived || hostEnded { return discipline.readBytes(into: buffer, count: n) }
                    poll = true
                case .wait(let until):
                    // With bytes there and only the inter-byte timer left, they are taken now
                    // (VTIME is coarse here: its wait would end the call with 0).
                    if until != nil && discipline.readableCount > 0 {
                        return discipline.readBytes(into: buffer, count: buffer.count)
                    }
                    deadline = until
                }
            }
            if hostEnded { return 0 }
            if SysSignal.hasDeliverable(Scheduler.current) { throw .EINTR }  // ^C for us
            if pumpHostInput() {
                arrived = true
                continue
            }
            if poll { return 0 }
            if nonblocking { throw .EAGAIN }
            HostInput.waitForInput(deadline: deadline ?? 0)
            return 0
        }
    }

    /// write(2) on the terminal: through output processing to the host's stdout.
    static func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int {
        if discipline.settings.has(local: TerminalSettings.TOSTOP), try stopIfBackground(22) { return 0 }  // SIGTTOU
        if discipline.settings.has(output: TerminalSettings.OPOST) {
            var out: [UInt8] = []
            discipline.processOutput(bytes, into: &out)
            out.withUnsafeBytes { Console.write(.stdout, $0) }
        } else {
            Console.write(.stdout, bytes)
        }
        return bytes.count
    }

    /// poll/select/epoll: always writable; readable with a finished line (canonical) or any
    /// byte, or at the host's end of file. `input`: the caller asks for POLLIN and would wait
    /// without a time limit. While `HostInput` cannot look without blocking, the only way to
    /// learn of input is to wait for it, so such a poll waits here (on the host, whatever its
    /// other descriptors) until the terminal is readable or a keyboard signal is for the
    /// caller; a poll with a timeout sees only input that already arrived (vi's 50 ms wait
    /// after ESC ends as on Linux, but a program polling with a timeout in a loop never sees
    /// new keys until the host read can be non-blocking);
    /// then a ^C ends the poll with EINTR as on Linux (Python's REPL waits in select()).
    static func readiness(input: Bool) -> UInt32 {
        if input {
            if HostInput.readsWithoutBlocking {
                pumpHostInput()
            } else {
                while !discipline.hasReadableInput && !hostEnded && !SysSignal.hasDeliverable(Scheduler.current) {
                    pumpHostInput()
                }
            }
        }
        return (discipline.hasReadableInput || hostEnded ? 1 : 0) | 4
    }

    /// SIGTTIN/SIGTTOU for a background process group using its controlling terminal: the
    /// signal goes to the group and the call runs again when the process continues (the
    /// frame is rewound over the `syscall` instruction, rax still holding its number).
    /// Returns whether that happened. A read with SIGTTIN ignored or blocked is EIO; a
    /// write with SIGTTOU ignored or blocked just goes ahead.
    private static func stopIfBackground(_ signal: Int32) throws(Errno) -> Bool {
        let me = Process.current
        guard controls(me), foregroundGroup != 0, me.processGroup != foregroundGroup else { return false }
        let refused = SysSignal.action(signal).handler == SysSignal.SIG_IGN || Scheduler.current.blocked & SysSignal.bit(signal) != 0
        if refused {
            if signal == 21 { throw .EIO }
            return false
        }
        for p in Processes.all where !p.isZombie && p.processGroup == me.processGroup {
            SysSignal.raise(on: p, signal, SysSignal.sentByKernel)
        }
        let frame = Scheduler.frame
        frame[.rip] &-= 2
        frame[.rcx] &-= 2
        Scheduler.switched = true
        return true
    }

    // MARK: ioctl

    /// The terminal ioctls; nil for a request that is not the terminal's (FIONBIO, FIOCLEX…
    /// are the descriptor's: SysIO.ioctl answers them).
    static func ioctl(_ fd: Int32, _ request: UInt32, _ argument: UInt64) throws(Errno) -> UInt64? {
        let me = Process.current
        switch request {
        case 0x5401, 0x802c_542a:  // TCGETS, TCGETS2
            let extended = request != 0x5401
            try discipline.settings.encode(into: UserMemory.writable(argument, extended ? TerminalSettings.size2 : TerminalSettings.size),
                                           extended: extended)
            return 0
        case 0x5402, 0x5403, 0x5404, 0x402c_542b, 0x402c_542c, 0x402c_542d:  // TCSETS, TCSETSW, TCSETSF (and …2)
            let extended = request > 0x5404
            var new = try TerminalSettings.decode(from: UserMemory.readable(argument, extended ? TerminalSettings.size2 : TerminalSettings.size),
                                                  extended: extended)
            if !extended {
                new.inputSpeed = discipline.settings.inputSpeed
                new.outputSpeed = discipline.settings.outputSpeed
            }
            if request == 0x5403 || request == 0x402c_542c { Console.flushAll() }  // W: after the output drained
            if request == 0x5404 || request == 0x402c_542d { discipline.flushInput() }  // F: input flushed
            discipline.apply(new)
            Scheduler.wakeRestartingWaiters()  // a reader in another mode looks again
            return 0
        case 0x5409, 0x5425:  // TCSBRK, TCSBRKP (tcdrain, tcsendbreak): the output goes out now
            Console.flushAll()
            return 0
        case 0x540a:  // TCXONC: flow control of a line with none
            guard argument <= 3 else { throw .EINVAL }
            return 0
        case 0x540b:  // TCFLSH: TCIFLUSH 0, TCOFLUSH 1, TCIOFLUSH 2 (output is never held back)
            guard argument <= 2 else { throw .EINVAL }
            if argument != 1 { discipline.flushInput() }
            return 0
        case 0x540c, 0x540d:  // TIOCEXCL, TIOCNXCL
            return 0
        case 0x540e:  // TIOCSCTTY
            if controls(me) { return 0 }
            guard me.pid == me.session else { throw .EPERM }
            let held = session != 0 && Processes.all.contains { !$0.isZombie && $0.session == session }
            if held && !(argument == 1 && me.credentials.effectiveUID == 0) { throw .EPERM }
            session = me.session
            foregroundGroup = me.processGroup
            return 0
        case 0x5422:  // TIOCNOTTY: a session leader gives the terminal up (others cannot leave it here)
            guard controls(me) else { throw .ENOTTY }
            if me.pid == me.session {
                signalForeground(1)   // SIGHUP
                signalForeground(18)  // SIGCONT
                session = 0
                foregroundGroup = 0
            }
            return 0
        case 0x540f:  // TIOCGPGRP
            guard controls(me) else { throw .ENOTTY }
            try UserMemory.store(foregroundGroup, argument)
            return 0
        case 0x5410:  // TIOCSPGRP
            guard controls(me) else { throw .ENOTTY }
            let group = try UserMemory.load(Int32.self, argument)
            guard group >= 0 else { throw .EINVAL }
            guard Processes.all.contains(where: { !$0.isZombie && $0.processGroup == group }) else { throw .ESRCH }
            guard Processes.all.contains(where: { !$0.isZombie && $0.processGroup == group && $0.session == session }) else { throw .EPERM }
            foregroundGroup = group
            Scheduler.wakeRestartingWaiters()
            return 0
        case 0x5429:  // TIOCGSID
            guard controls(me) else { throw .ENOTTY }
            try UserMemory.store(session, argument)
            return 0
        case 0x5411:  // TIOCOUTQ: output is never queued in the terminal
            try UserMemory.store(Int32(0), argument)
            return 0
        case 0x541b:  // FIONREAD (TIOCINQ)
            if HostInput.readsWithoutBlocking { pumpHostInput() }
            try UserMemory.store(Int32(discipline.readableCount), argument)
            return 0
        case 0x5413:  // TIOCGWINSZ
            try window.encode(into: UserMemory.writable(argument, WindowSize.size))
            return 0
        case 0x5414:  // TIOCSWINSZ
            setWindow(try WindowSize.decode(from: UserMemory.readable(argument, WindowSize.size)))
            return 0
        case 0x5424:  // TIOCGETD: N_TTY
            try UserMemory.store(Int32(0), argument)
            return 0
        case 0x5423:  // TIOCSETD: only N_TTY
            guard try UserMemory.load(Int32.self, argument) == 0 else { throw .EINVAL }
            return 0
        case 0x8004_5440:  // TIOCGEXCL
            try UserMemory.store(Int32(0), argument)
            return 0
        default:
            return nil
        }
    }
}

/// The terminal's view of the host's stdin: what there is now, without waiting, and a wait
/// (the calling thread parks, its syscall running again when woken) until the host reports
/// input through `HostChannel` (the apus VMM's clock thread watches stdin and stops the vCPU;
/// under QEMU the kernel polls the serial line), when `Console.checkInput` pumps it in.
enum HostInput {
    enum Result { case data(Int), nothing, endOfFile }

    static let readsWithoutBlocking = true

    /// No exit is spent while the host has been asked to report input and has not
    /// (`Console.hostInputMayBeThere`); a look that finds nothing asks it to report.
    static func readAvailable(into buffer: UnsafeMutableRawBufferPointer) -> Result {
        guard Console.hostInputMayBeThere() else { return .nothing }
        do {
            guard let n = try Console.readStdinNow(into: buffer) else {
                Console.armInputWatch()
                return .nothing
            }
            return n > 0 ? .data(n) : .endOfFile
        } catch {
            return .endOfFile
        }
    }

    static func waitForInput(deadline: UInt64) {
        Console.armInputWatch()
        Scheduler.blockCurrentRestarting(deadline: deadline)
    }
}
