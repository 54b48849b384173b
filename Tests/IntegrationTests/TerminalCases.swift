// `apus run -t`: programs in a terminal, driven through a pseudo-terminal the test owns (as a
// user's terminal emulator would): apus runs as a session leader with the pty as its
// controlling terminal and stdin/stdout/stderr; the test types keys on the master side and
// reads the screen's bytes. Each case also checks that the host terminal's settings are what
// they were before apus started once it is gone. Written once, listed per VMM in
// ApusVMMTests and QEMUTests.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A pseudo-terminal with `apus` running in it.
final class TerminalSession: @unchecked Sendable {
    let master: Int32
    /// The terminal side, kept open by the test to read its settings (O_NOCTTY).
    let slave: Int32
    let pid: pid_t
    private let lock = NSLock()
    private var screen: [UInt8] = []
    private var stopReading = false
    private let readerDone = DispatchSemaphore(value: 0)
    let settingsBefore: [UInt8]

    static let TCGETS: UInt = 0x5401

    init(_ arguments: [String], rows: UInt16 = 30, columns: UInt16 = 100) throws {
        _ = Harness.noCoreDumps
        master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        var unlock: Int32 = 0, number: UInt32 = 0
        guard master >= 0, ioctl(master, 0x4004_5431, &unlock) == 0, ioctl(master, 0x8004_5430, &number) == 0 else {
            throw XCTSkip("no pseudo-terminals on this host")
        }
        let path = "/dev/pts/\(number)"
        slave = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard slave >= 0 else { throw XCTSkip("cannot open \(path)") }
        var size = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
        settingsBefore = TerminalSession.settings(of: slave)

        // The child: a new session (POSIX_SPAWN_SETSID) whose first terminal opened becomes
        // its controlling terminal, on 0, 1 and 2.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(0x80))  // POSIX_SPAWN_SETSID
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, path, O_RDWR, 0)
        posix_spawn_file_actions_adddup2(&actions, 0, 1)
        posix_spawn_file_actions_adddup2(&actions, 0, 2)
        var environment = Harness.apusEnvironment
        environment["TERM"] = "xterm"
        let argv = ([Harness.apusBinary] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for p in argv + envp { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, Harness.apusBinary, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw XCTSkip("posix_spawn: \(String(cString: strerror(rc)))") }
        pid = child
        let thread = Thread { [self] in readScreen() }
        thread.start()
    }

    deinit {
        lock.lock(); stopReading = true; lock.unlock()
        _ = readerDone.wait(timeout: .now() + 2)
        close(master)
        close(slave)
    }

    /// struct termios (the kernel's 36 bytes) of the terminal now.
    static func settings(of fd: Int32) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 36)
        _ = bytes.withUnsafeMutableBytes { ioctl(fd, TCGETS, $0.baseAddress!) }
        return bytes
    }

    private func readScreen() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            lock.lock(); let stop = stopReading; lock.unlock()
            if stop { break }
            var p = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            lock.lock(); screen += buffer[0..<n]; lock.unlock()
        }
        readerDone.signal()
    }

    var text: String {
        lock.lock(); defer { lock.unlock() }
        return String(decoding: screen, as: UTF8.self)
    }

    func type(_ keys: String) { type(Array(keys.utf8)) }
    func type(_ keys: [UInt8]) {
        var offset = 0
        while offset < keys.count {
            let n = keys[offset...].withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            offset += n
        }
    }

    /// Waits until the screen shows `expected` after `from` (a count of screen bytes) or the
    /// timeout passes; returns whether it did.
    @discardableResult
    func waitFor(_ expected: String, after from: Int = 0, timeout: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            lock.lock(); let tail = String(decoding: screen[min(from, screen.count)...], as: UTF8.self); lock.unlock()
            if tail.contains(expected) { return true }
            usleep(20_000)
        }
        return false
    }

    var mark: Int { lock.lock(); defer { lock.unlock() }; return screen.count }

    /// The exit status (128+N for a signal), or nil after `timeout` (apus is then killed).
    func wait(timeout: TimeInterval) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        var status: Int32 = 0
        while Date() < deadline {
            let r = waitpid(pid, &status, WNOHANG)
            if r == pid {
                usleep(100_000)  // the last bytes on their way through the pty
                return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
            }
            usleep(20_000)
        }
        kill(pid, SIGKILL)
        _ = waitpid(pid, &status, 0)
        return nil
    }

    func resize(rows: UInt16, columns: UInt16) {
        var size = winsize(ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
    }

    /// Whether the terminal's settings are back to what they were before apus ran.
    var settingsRestored: Bool { TerminalSession.settings(of: slave) == settingsBefore }
}

extension VMMMatrix {
    private var terminalTimeout: TimeInterval { vmm == "qemu" ? 90 : 30 }

    private func terminal(_ arguments: [String]) throws -> TerminalSession {
        try TerminalSession(["run", "--vmm", vmm, "-it"] + arguments)
    }

    private func finish(_ session: TerminalSession, expect status: Int32, _ what: String) {
        let got = session.wait(timeout: terminalTimeout)
        XCTAssertEqual(got, status, "[\(vmm)] \(what): exit status\nscreen: \(Compare.escape(Array(session.text.utf8)))")
        XCTAssertTrue(session.settingsRestored, "[\(vmm)] \(what): the host terminal's settings were not restored")
    }

    /// busybox sh in a terminal: its prompt, its own line editing (backspace fixes a typo),
    /// the terminal's name and size as the program sees them, and its exit status.
    func terminalShell() throws {
        guard try requireProgram("/bin/busybox", package: "busybox-static") != nil else { return }
        let s = try terminal(["/bin/busybox", "sh"])
        XCTAssertTrue(s.waitFor("/ # ", timeout: terminalTimeout), "[\(vmm)] no prompt: \(s.text)")
        var mark = s.mark
        s.type("echo prnt\u{7f}\u{7f}int-fixed\r")
        XCTAssertTrue(s.waitFor("print-fixed\r\n", after: mark, timeout: terminalTimeout), "[\(vmm)] line editing: \(s.text)")
        mark = s.mark
        s.type("tty; stty size; test -t 0 && test -t 1 && echo both-ttys; echo TERM=$TERM\r")
        XCTAssertTrue(s.waitFor("/dev/pts/0\r\n30 100\r\nboth-ttys\r\nTERM=xterm\r\n", after: mark, timeout: terminalTimeout),
                      "[\(vmm)] ttyname, size, isatty, TERM: \(s.text)")
        s.type("exit 3\r")
        finish(s, expect: 3, "busybox sh")
    }

    /// The kernel's canonical mode with a program that does no line editing of its own (sh's
    /// `read`, cat): erase and kill, echo, ^D as end of file, ^C as SIGINT.
    func terminalCanonicalMode() throws {
        guard try requireProgram("/bin/busybox", package: "busybox-static") != nil else { return }
        let s = try terminal(["/bin/busybox", "sh", "-c",
                              "read a; echo \"got[$a]\"; cat; echo cat-ended; cat; echo not-reached"])
        usleep(300_000)
        s.type("prnt\u{7f}\u{7f}int junk\u{15}typed\r")
        XCTAssertTrue(s.waitFor("got[typed]\r\n", timeout: terminalTimeout), "[\(vmm)] erase/kill: \(s.text)")
        XCTAssertTrue(s.text.contains("prnt\u{8} \u{8}\u{8} \u{8}int junk"), "[\(vmm)] erase echo: \(s.text)")
        var mark = s.mark
        s.type("line one\r")
        XCTAssertTrue(s.waitFor("line one\r\nline one\r\n", after: mark, timeout: terminalTimeout), "[\(vmm)] cat's line: \(s.text)")
        s.type("partial\u{4}")
        XCTAssertTrue(s.waitFor("line one\r\npartialpartial", after: mark, timeout: terminalTimeout),
                      "[\(vmm)] ^D pushes a partial line: \(s.text)")
        s.type("\u{4}")
        XCTAssertTrue(s.waitFor("cat-ended", after: mark, timeout: terminalTimeout), "[\(vmm)] ^D at a line start: \(s.text)")
        mark = s.mark
        usleep(200_000)
        s.type("abc\u{3}")
        // ^C: echoed, and SIGINT for the foreground group (the shell and its cat) ends it all.
        finish(s, expect: 130, "^C")
        XCTAssertTrue(s.text.contains("abc^C"), "[\(vmm)] ^C echo: \(s.text)")
        XCTAssertFalse(s.text.contains("not-reached"), "[\(vmm)] \(s.text)")
    }

    /// Debian's python3 REPL (GNU readline): a prompt, a typo fixed with backspace and arrow
    /// keys, ^C as KeyboardInterrupt with a new prompt, ^D to leave.
    func terminalPythonREPL() throws {
        guard let python = try requireProgram("/usr/bin/python3", package: "python3") else { return }
        let version = try Runner.run(python, ["-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                                     cwd: "/", environment: nil, timeout: 30).stdoutText
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let image = "apus-test-pyterm"
        var build = ["build", "-t", image, python, "--add", "/usr/lib/python\(version)"]
        for terminfo in ["/lib/terminfo/x/xterm", "/usr/share/terminfo/x/xterm"] where FileManager.default.fileExists(atPath: terminfo) {
            build += ["--add", terminfo + ":/usr/share/terminfo/x/xterm"]
            break
        }
        let built = try apusCommand(build)
        XCTAssertEqual(built.status, 0, "[\(vmm)] apus build of python3: \(built.stderrText)")
        guard built.status == 0 else { return }
        let s = try terminal([image])
        XCTAssertTrue(s.waitFor(">>> ", timeout: terminalTimeout), "[\(vmm)] no prompt: \(s.text)")
        var mark = s.mark
        s.type("prnt\u{7f}\u{7f}int('ok', 6*7)\r")
        XCTAssertTrue(s.waitFor("ok 42\r\n>>> ", after: mark, timeout: terminalTimeout), "[\(vmm)] backspace: \(s.text)")
        mark = s.mark
        s.type("prnt(1+1)" + String(repeating: "\u{1b}[D", count: 7) + "i\r")  // ← ×7, then the missing i
        XCTAssertTrue(s.waitFor("2\r\n>>> ", after: mark, timeout: terminalTimeout), "[\(vmm)] arrow keys: \(s.text)")
        mark = s.mark
        s.type("abc")
        usleep(300_000)
        s.type("\u{3}")
        XCTAssertTrue(s.waitFor("KeyboardInterrupt\r\n>>> ", after: mark, timeout: terminalTimeout), "[\(vmm)] ^C: \(s.text)")
        mark = s.mark
        s.type("import os; print(os.ttyname(0), os.get_terminal_size())\r")
        XCTAssertTrue(s.waitFor("/dev/pts/0 os.terminal_size(columns=100, lines=30)", after: mark, timeout: terminalTimeout),
                      "[\(vmm)] ttyname and size: \(s.text)")
        s.type("\u{4}")
        finish(s, expect: 0, "python3 REPL")
    }

    /// Job control in an interactive shell: ^Z stops the foreground job (SIGTSTP from the
    /// line discipline to its group), fg continues it and gives it the terminal again
    /// (TIOCSPGRP), ^C ends it; a background job reading the terminal stops with SIGTTIN.
    func terminalJobControl() throws {
        guard try requireProgram("/bin/busybox", package: "busybox-static") != nil else { return }
        let s = try terminal(["/bin/busybox", "sh"])
        XCTAssertTrue(s.waitFor("/ # ", timeout: terminalTimeout), "[\(vmm)] no prompt: \(s.text)")
        var mark = s.mark
        s.type("cat\r")
        usleep(300_000)
        s.type("one\r")
        XCTAssertTrue(s.waitFor("one\r\none\r\n", after: mark, timeout: terminalTimeout), "[\(vmm)] cat: \(s.text)")
        s.type("\u{1a}")
        XCTAssertTrue(s.waitFor("Stopped", after: mark, timeout: terminalTimeout), "[\(vmm)] ^Z: \(s.text)")
        mark = s.mark
        s.type("fg\r")
        usleep(300_000)
        s.type("two\r")
        XCTAssertTrue(s.waitFor("two\r\ntwo\r\n", after: mark, timeout: terminalTimeout), "[\(vmm)] fg: \(s.text)")
        s.type("\u{3}")
        XCTAssertTrue(s.waitFor("/ # ", after: mark, timeout: terminalTimeout), "[\(vmm)] ^C: \(s.text)")
        mark = s.mark
        s.type("cat &\r")
        usleep(300_000)
        s.type("\r")
        XCTAssertTrue(s.waitFor("Stopped (tty input)", after: mark, timeout: terminalTimeout), "[\(vmm)] SIGTTIN: \(s.text)")
        mark = s.mark
        s.type("kill -9 %1\r")
        XCTAssertTrue(s.waitFor("/ # ", after: mark, timeout: terminalTimeout), "[\(vmm)] kill: \(s.text)")
        usleep(300_000)
        s.type("exit 0\r")
        usleep(300_000)
        s.type("exit 0\r")  // a second exit, should ash still count the killed job as stopped
        finish(s, expect: 0, "job control")
    }

    /// busybox vi (full screen, raw mode): insert text, save, quit; the file has it.
    func terminalVi() throws {
        guard try requireProgram("/bin/busybox", package: "busybox-static") != nil else { return }
        let s = try terminal(["/bin/busybox", "sh", "-c", "vi /tmp/note.txt && echo \"saved: $(cat /tmp/note.txt)\""])
        XCTAssertTrue(s.waitFor("/tmp/note.txt", timeout: terminalTimeout), "[\(vmm)] vi's screen: \(s.text)")
        usleep(300_000)
        s.type("ihello from vi")
        usleep(300_000)
        s.type("\u{1b}")
        usleep(500_000)
        s.type(":wq\r")
        XCTAssertTrue(s.waitFor("saved: hello from vi", timeout: terminalTimeout), "[\(vmm)] vi's file: \(s.text)")
        finish(s, expect: 0, "busybox vi")
    }

    /// A size set from inside (TIOCSWINSZ by stty) reaches the foreground group as SIGWINCH.
    func terminalResizeInside() throws {
        guard try requireProgram("/bin/busybox", package: "busybox-static") != nil else { return }
        let s = try terminal(["/bin/busybox", "sh", "-c",
                              "trap 'echo winch; stty size' WINCH; stty rows 40 cols 120; stty size; exit 0"])
        finish(s, expect: 0, "stty rows/cols")
        XCTAssertTrue(s.text.contains("winch\r\n40 120\r\n"), "[\(vmm)] SIGWINCH after TIOCSWINSZ: \(s.text)")
    }

    /// The host window resized (TIOCSWINSZ on the master: the host kernel sends apus SIGWINCH):
    /// the guest's foreground group gets SIGWINCH and reads the new size. Needs the VMM's
    /// host-signal path to call the kernel's `Terminal.windowChanged(rows:cols:)`.
    func terminalResizeFromHost() throws {
        guard try requireProgram("/bin/busybox", package: "busybox-static") != nil else { return }
        let s = try terminal(["/bin/busybox", "sh", "-c",
                              "trap 'echo winch' WINCH; echo ready; read x; stty size"])
        XCTAssertTrue(s.waitFor("ready", timeout: terminalTimeout), "[\(vmm)] \(s.text)")
        usleep(300_000)
        s.resize(rows: 45, columns: 140)
        usleep(500_000)
        s.type("\r")
        finish(s, expect: 0, "host resize")
        XCTAssertTrue(s.text.contains("winch"), "[\(vmm)] no SIGWINCH after the host's resize: \(s.text)")
        XCTAssertTrue(s.text.contains("45 140"), "[\(vmm)] the new size: \(s.text)")
    }

    /// The host terminal's settings come back after apus crashes (SIGSEGV sent to it: the
    /// crash handler restores them, then apus dies of the signal) and after the guest program
    /// is killed with SIGKILL inside the VM (exit status 137).
    func terminalRestoredAfterCrashAndKill() throws {
        guard try requireProgram("/bin/busybox", package: "busybox-static") != nil else { return }
        let s = try terminal(["/bin/busybox", "sh"])
        XCTAssertTrue(s.waitFor("/ # ", timeout: terminalTimeout), "[\(vmm)] no prompt: \(s.text)")
        XCTAssertFalse(s.settingsRestored, "[\(vmm)] the host terminal is not in raw mode while the VM runs")
        kill(s.pid, SIGSEGV)
        let status = s.wait(timeout: terminalTimeout)
        XCTAssertEqual(status, 128 + SIGSEGV, "[\(vmm)] apus after SIGSEGV")
        XCTAssertTrue(s.settingsRestored, "[\(vmm)] settings after a crash of apus")

        let k = try terminal(["/bin/busybox", "sh", "-c", "echo before; kill -9 $$; echo after"])
        finish(k, expect: 137, "kill -9 of the guest program")
        XCTAssertTrue(k.text.contains("before") && !k.text.contains("after"), "[\(vmm)] \(k.text)")
    }

    /// -t needs a terminal on stdin (docker: "the input device is not a TTY"); without -t a
    /// program in the same pty sees no terminal.
    func terminalRequiresATTY() throws {
        guard try requireProgram("/bin/busybox", package: "busybox-static") != nil else { return }
        let r = try Runner.run(Harness.apusBinary, ["run", "--vmm", vmm, "-t", "/bin/busybox", "true"], cwd: "/",
                               environment: Harness.apusEnvironment, timeout: terminalTimeout)
        XCTAssertEqual(r.status, 125, "[\(vmm)] -t with /dev/null on stdin")
        XCTAssertTrue(r.stderrText.contains("the input device is not a TTY"), "[\(vmm)] \(r.stderrText)")
        let s = try TerminalSession(["run", "--vmm", vmm, "/bin/busybox", "sh", "-c", "tty; test -t 1 || echo no-tty-out"])
        let status = s.wait(timeout: terminalTimeout)
        XCTAssertEqual(status, 0, "[\(vmm)] tty without -t: \(s.text)")
        XCTAssertTrue(s.text.contains("not a tty") && s.text.contains("no-tty-out"), "[\(vmm)] \(s.text)")
        XCTAssertTrue(s.settingsRestored, "[\(vmm)] without -t the terminal is left alone")
    }
}
