// Shared machinery for the integration tests: locating the `apus` binary and the guest
// programs, deciding skip-vs-fail for missing pieces, running subprocesses with pipes and a
// timeout, and comparing a native run with a run under apus.
//
// Artifacts:
//   apus binary   $APUS_BIN, else <repo>/.build/release/apus            (scripts/build.sh)
//   guests        $APUS_GUESTS, else <repo>/out/guests                   (Tests/Guests/build.sh)
// Per-run timeout: 30 s (apus), 120 s (qemu), or $APUS_TEST_TIMEOUT seconds.
// Anything missing (binary, guests, /dev/kvm, qemu-system-x86_64) skips the test, or fails
// it when CI=true.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Locations and requirements

enum Harness {
    static let environment = ProcessInfo.processInfo.environment
    static let isCI = environment["CI"] == "true"

    /// The repository root: the nearest ancestor of this file holding Package.swift.
    static let repoRoot: URL = {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                return dir
            }
            dir = dir.deletingLastPathComponent()
        }
        // Fallback: Tests/IntegrationTests/<file> → repo.
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }()

    static let apusBinary: String = environment["APUS_BIN"]
        ?? repoRoot.appendingPathComponent(".build/release/apus").path

    static let guestsDir: String = environment["APUS_GUESTS"]
        ?? repoRoot.appendingPathComponent("out/guests").path

    /// The guest variants built by Tests/Guests/build.sh.
    static let variants = ["musl", "glibc", "glibc-pie", "gcc"]
    /// The image store of every `apus run` here (a dynamic guest is built into it on the
    /// fly; later runs of the same binary are cache hits): never the user's own store.
    static let storeHome = NSTemporaryDirectory() + "apus-integration-store"
    static let apusEnvironment: [String: String] = {
        var e = environment
        e["APUS_HOME"] = storeHome
        return e
    }()

    /// Per-run timeouts (seconds). QEMU runs are TCG-emulated, hence slower.
    static let nativeTimeout: TimeInterval = 30
    /// APUS_TEST_TIMEOUT (seconds) overrides both, e.g. for a slow CI machine.
    static func timeout(vmm: String) -> TimeInterval {
        if let s = environment["APUS_TEST_TIMEOUT"], let t = TimeInterval(s), t > 0 { return t }
        return vmm == "qemu" ? 120 : 30
    }

    /// Core dumps of the deliberately crashing guests (abort, segv) would land in the
    /// guests directory and slow the runs down: switch them off for us and our children.
    /// Also ignore SIGPIPE, so that feeding stdin to a guest that stops reading early
    /// gives EPIPE instead of killing the test runner.
    static let noCoreDumps: Void = {
        signal(SIGPIPE, SIG_IGN)
        var limit = rlimit(rlim_cur: 0, rlim_max: 0)
        getrlimit(Int32(RLIMIT_CORE.rawValue), &limit)
        limit.rlim_cur = 0
        setrlimit(Int32(RLIMIT_CORE.rawValue), &limit)
    }()

    struct MissingRequirement: Error, CustomStringConvertible {
        let description: String
    }

    /// Skips the test when `ok` is false — or, under CI=true, fails it.
    static func require(_ ok: Bool, _ message: @autoclosure () -> String,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        if ok { return }
        let text = message()
        if isCI {
            XCTFail(text, file: file, line: line)
            throw MissingRequirement(description: text)
        }
        throw XCTSkip(text, file: file, line: line)
    }

    static func isExecutableFile(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && !isDir.boolValue
            && FileManager.default.isExecutableFile(atPath: path)
    }

    static func requireApus(file: StaticString = #filePath, line: UInt = #line) throws {
        try require(isExecutableFile(apusBinary),
                    "apus binary not found at \(apusBinary): build it with scripts/build.sh "
                    + "(swift build -c release) or point APUS_BIN at it", file: file, line: line)
    }

    static func requireGuests(file: StaticString = #filePath, line: UInt = #line) throws {
        let probe = (guestsDir as NSString).appendingPathComponent("hello.musl")
        try require(isExecutableFile(probe),
                    "guest programs not found in \(guestsDir) (no hello.musl): build them with "
                    + "scripts/build.sh or Tests/Guests/build.sh, or point APUS_GUESTS at them",
                    file: file, line: line)
    }

    static func requirePlatform(vmm: String, file: StaticString = #filePath, line: UInt = #line) throws {
        switch vmm {
        case "apus":
            try require(access("/dev/kvm", R_OK | W_OK) == 0,
                        "the apus VMM needs a readable and writable /dev/kvm (missing or no permission)",
                        file: file, line: line)
        case "qemu":
            try require(findOnPath("qemu-system-x86_64") != nil,
                        "the qemu VMM needs qemu-system-x86_64 on PATH (apt-get install qemu-system-x86)",
                        file: file, line: line)
        default:
            XCTFail("unknown VMM \(vmm)", file: file, line: line)
        }
    }

    static func findOnPath(_ name: String) -> String? {
        for dir in (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }

    static func guestPath(_ name: String) -> String {
        (guestsDir as NSString).appendingPathComponent(name)
    }
}

// MARK: - Running processes

struct RunResult {
    var stdout: Data
    var stderr: Data
    /// The exit status, or 128+signal when the process was killed by a signal (like a shell).
    var status: Int32
    var timedOut: Bool
    var duration: TimeInterval
    var commandLine: String

    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

private final class DataBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value = Data()
    func append(_ data: Data) { lock.lock(); value.append(data); lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return value }

    /// Reads `handle` to EOF chunk by chunk, so a timed-out run still shows its partial output.
    func drain(_ handle: FileHandle) {
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { return }
            append(chunk)
        }
    }
}

enum Runner {
    /// Runs `executable args` in `cwd`, with `environment` (nil: inherit ours), feeding
    /// `stdin` (nil: /dev/null). stdout and stderr are pipes, drained concurrently. After
    /// `timeout` seconds the process is killed (SIGKILL) and the result marked timedOut.
    static func run(_ executable: String, _ args: [String], cwd: String,
                    environment: [String: String]?, stdin: Data? = nil,
                    timeout: TimeInterval) throws -> RunResult {
        _ = Harness.noCoreDumps
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        if let environment { process.environment = environment }

        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        var inPipe: Pipe?
        if stdin != nil {
            inPipe = Pipe()
            process.standardInput = inPipe
        } else {
            process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        }

        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }

        let outBox = DataBox(), errBox = DataBox()
        let drained = DispatchGroup()
        let outHandle = outPipe.fileHandleForReading, errHandle = errPipe.fileHandleForReading
        let started = Date()
        try process.run()
        // Our copies of the write ends must go, or the readers never see EOF.
        try? outPipe.fileHandleForWriting.close()
        try? errPipe.fileHandleForWriting.close()

        DispatchQueue.global().async(group: drained) { outBox.drain(outHandle) }
        DispatchQueue.global().async(group: drained) { errBox.drain(errHandle) }
        if let inPipe, let stdin {
            try? inPipe.fileHandleForReading.close()
            let writer = inPipe.fileHandleForWriting
            DispatchQueue.global().async {
                // EPIPE if the program does not read everything: fine (SIGPIPE is ignored).
                try? writer.write(contentsOf: stdin)
                try? writer.close()
            }
        }

        // Foundation's Process puts the child in its own process group (pgid == pid) and
        // only reports its exit once every descendant holding its inherited fds is gone, so
        // a timeout kills the whole group (QEMU, in a group of its own, dies with apus).
        var timedOut = false
        if exited.wait(timeout: .now() + timeout) == .timedOut {
            timedOut = true
            let pid = process.processIdentifier
            if getpgid(pid) == pid { kill(-pid, SIGKILL) } else { kill(pid, SIGKILL) }
            _ = exited.wait(timeout: .now() + 10)
        }
        // A grandchild (e.g. qemu under apus) may still hold the pipes after a kill:
        // don't wait for it forever.
        _ = drained.wait(timeout: .now() + (timedOut ? 5 : 60))
        let duration = Date().timeIntervalSince(started)

        var status = process.isRunning ? -1 : process.terminationStatus
        if !process.isRunning && process.terminationReason == .uncaughtSignal { status += 128 }
        return RunResult(stdout: outBox.get(), stderr: errBox.get(), status: status,
                         timedOut: timedOut, duration: duration,
                         commandLine: ([executable] + args).map(shellQuote).joined(separator: " "))
    }

    static func shellQuote(_ s: String) -> String {
        if !s.isEmpty, s.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:@+,".contains($0) }) { return s }
        return "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

// MARK: - A guest invocation, run natively and under apus

/// One way to invoke a guest program: its argv (argv[0] is `program` as typed), its exact
/// environment (ordered), optional stdin, and extra `apus run` flags.
struct Invocation {
    var program: String          // e.g. "./hello.musl" (relative to the guests dir) or absolute
    var args: [String] = []
    var env: [(String, String)] = []
    var stdin: Data? = nil
    var apusFlags: [String] = []

    var label: String {
        ([program] + args).map { a in
            let short = a.count > 40 ? String(a.prefix(37)) + "…(\(a.utf8.count) B)" : a
            return Runner.shellQuote(short)
        }.prefix(12).joined(separator: " ") + (args.count > 11 ? " …(\(args.count) args)" : "")
    }

    /// The environment `apus run` gives the program (docker's: PATH, HOSTNAME, the -e
    /// variables, HOME from the image's /etc/passwd, which is root's /root for the guests),
    /// so that native runs see the same.
    var guestEnvironment: [String] {
        let hostname = apusFlags.firstIndex(of: "--hostname").flatMap { $0 + 1 < apusFlags.count ? apusFlags[$0 + 1] : nil }
        var result = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=\(hostname ?? "apus")"]
        for (k, v) in env {
            if let i = result.firstIndex(where: { $0.hasPrefix(k + "=") }) { result[i] = "\(k)=\(v)" } else { result.append("\(k)=\(v)") }
        }
        if !result.contains(where: { $0.hasPrefix("HOME=") }) { result.append("HOME=/root") }
        return result
    }

    /// Natively: `env -i VARIABLES... PROGRAM ARGS...` from the guests dir, with an empty
    /// environment for `env` itself; VARIABLES are `guestEnvironment`.
    func runNative() throws -> RunResult {
        let envArgs = ["-i"] + guestEnvironment
        return try Runner.run("/usr/bin/env", envArgs + [program] + args, cwd: Harness.guestsDir,
                              environment: [:], stdin: stdin, timeout: Harness.nativeTimeout)
    }

    /// `apus run --vmm VMM [-e K=V]... [flags] PROGRAM ARGS...` from the guests dir.
    func runApus(vmm: String, timeout: TimeInterval? = nil) throws -> RunResult {
        var a = ["run", "--vmm", vmm]
        for (k, v) in env { a += ["-e", "\(k)=\(v)"] }
        a += apusFlags
        a.append(program)
        a += args
        return try Runner.run(Harness.apusBinary, a, cwd: Harness.guestsDir, environment: Harness.apusEnvironment,
                              stdin: stdin, timeout: timeout ?? Harness.timeout(vmm: vmm))
    }
}

// MARK: - Comparisons with readable messages

enum Compare {
    /// Escapes bytes for a failure message: printable ASCII as is, UTF-8 kept, the rest \xNN.
    static func escape<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = ""
        for b in bytes {
            switch b {
            case 0x0a: s += "\\n"
            case 0x0d: s += "\\r"
            case 0x09: s += "\\t"
            case 0x5c: s += "\\\\"
            case 0x20..<0x7f: s += String(UnicodeScalar(b))
            default: s += String(format: "\\x%02x", b)
            }
        }
        return s
    }

    /// Where two outputs first differ, with the surrounding line of each.
    static func difference(_ expected: Data, _ actual: Data, expectedName: String = "native",
                           actualName: String = "apus") -> String? {
        if expected == actual { return nil }
        let e = [UInt8](expected), a = [UInt8](actual)
        var i = 0
        while i < e.count && i < a.count && e[i] == a[i] { i += 1 }
        let line = e[..<i].filter { $0 == 0x0a }.count + 1
        func lineAround(_ b: [UInt8]) -> String {
            guard i <= b.count else { return "" }
            var start = i
            while start > 0 && b[start - 1] != 0x0a && i - start < 200 { start -= 1 }
            var end = i
            while end < b.count && b[end] != 0x0a && end - i < 200 { end += 1 }
            if end < b.count { end += 1 }
            return escape(b[start..<end])
        }
        var msg = "first difference at byte \(i), line \(line) "
            + "(\(expectedName): \(e.count) bytes, \(actualName): \(a.count) bytes)\n"
        msg += "  \(expectedName): \(i < e.count ? lineAround(e) : "<end of output>")\n"
        msg += "  \(actualName):   \(i < a.count ? lineAround(a) : "<end of output>")"
        if e.count + a.count < 3000 {
            msg += "\n--- \(expectedName) (full) ---\n\(escape(e))\n--- \(actualName) (full) ---\n\(escape(a))"
        }
        return msg
    }

    static func tail(_ data: Data, _ n: Int = 1500) -> String {
        let bytes = [UInt8](data)
        return escape(bytes.suffix(n))
    }
}

// MARK: - Test helpers used by the per-VMM test classes

struct VMMMatrix {
    let vmm: String

    /// Checks binary, guests and platform; skips (or fails in CI) when one is missing.
    func setUp() throws {
        try Harness.requireApus()
        try Harness.requireGuests()
        try Harness.requirePlatform(vmm: vmm)
    }

    /// Runs `inv` natively and under apus and asserts identical stdout, stderr and status.
    /// `compareStderr: false` for guests whose stderr is expected to differ.
    @discardableResult
    func differential(_ inv: Invocation, compareStderr: Bool = true, expectStatus: Int32? = nil,
                      file: StaticString = #filePath, line: UInt = #line) throws -> (native: RunResult, apus: RunResult) {
        let what = "[\(vmm)] \(inv.label)"
        let native = try inv.runNative()
        XCTAssertFalse(native.timedOut, "\(what): the NATIVE run timed out (broken guest?)", file: file, line: line)
        let apus = try inv.runApus(vmm: vmm)
        if apus.timedOut {
            XCTFail("\(what): timed out: hung guest, or apus left a process holding its stdout/stderr "
                    + "(killed after \(Int(Harness.timeout(vmm: vmm))) s)\n"
                    + "command: \(apus.commandLine)\nstdout tail: \(Compare.tail(apus.stdout, 500))\n"
                    + "stderr tail: \(Compare.tail(apus.stderr))", file: file, line: line)
            return (native, apus)
        }
        if let expectStatus {
            XCTAssertEqual(native.status, expectStatus,
                           "\(what): the NATIVE run exited \(native.status), expected \(expectStatus) "
                           + "(broken guest or harness?)\nstderr: \(Compare.tail(native.stderr))", file: file, line: line)
        }
        XCTAssertEqual(apus.status, native.status,
                       "\(what): exit status differs (native \(native.status), apus \(apus.status))\n"
                       + "command: \(apus.commandLine)\napus stderr tail: \(Compare.tail(apus.stderr))",
                       file: file, line: line)
        if let d = Compare.difference(native.stdout, apus.stdout) {
            XCTFail("\(what): stdout differs: \(d)\ncommand: \(apus.commandLine)"
                    + "\napus stderr tail: \(Compare.tail(apus.stderr, 800))", file: file, line: line)
        }
        if compareStderr, let d = Compare.difference(native.stderr, apus.stderr) {
            XCTFail("\(what): stderr differs: \(d)\ncommand: \(apus.commandLine)", file: file, line: line)
        }
        return (native, apus)
    }

    /// `differential` for every variant of guest `name`, with argv[0] "./NAME.VARIANT".
    func differentialAllVariants(_ name: String, args: [String] = [], env: [(String, String)] = [],
                                 stdin: Data? = nil, variants: [String] = Harness.variants,
                                 compareStderr: Bool = true, expectStatus: Int32? = 0,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        for variant in variants {
            let inv = Invocation(program: "./\(name).\(variant)", args: args, env: env, stdin: stdin)
            try differential(inv, compareStderr: compareStderr, expectStatus: expectStatus, file: file, line: line)
        }
    }

    /// Runs only under apus (for behaviour that intentionally differs from native).
    func apusOnly(_ inv: Invocation, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult? {
        let r = try inv.runApus(vmm: vmm)
        if r.timedOut {
            XCTFail("[\(vmm)] \(inv.label): timed out: hung guest\ncommand: \(r.commandLine)\n"
                    + "stderr tail: \(Compare.tail(r.stderr))", file: file, line: line)
            return nil
        }
        return r
    }
}
