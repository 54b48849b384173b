// Machinery for the network tests: free host ports, servers that run in the background (apus
// with a published port, or a small TCP server inside the test process), and host clients
// (curl, redis-cli) run with bounded time.
//
// Rules every network test keeps: traffic only to 127.0.0.1 (or to a tap device inside a
// network namespace the test creates and deletes), ports chosen at run time, every load run
// bounded in count and time, every server stopped at the end — also when the test fails —
// and `apus run --timeout` on every long-running VM as a backstop.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum Net {
    /// A TCP port on 127.0.0.1 that nothing listens on right now (bind port 0, read it, close).
    static func freePort() throws -> UInt16 {
        let (fd, port) = try listen(port: 0)
        close(fd)
        return port
    }

    /// A listening TCP socket on 127.0.0.1:`port` (0: any), and its port.
    static func listen(port: UInt16, backlog: Int32 = 64) throws -> (Int32, UInt16) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Harness.MissingRequirement(description: "socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let e = errno
            close(fd)
            throw Harness.MissingRequirement(description: "bind/listen 127.0.0.1:\(port): errno \(e)")
        }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return (fd, UInt16(bigEndian: addr.sin_port))
    }

    /// Whether a TCP connection to 127.0.0.1:`port` is accepted right now.
    static func canConnect(port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// `pattern(i)` of fetch.c, sockets.c and httpd.go: (i * 2654435761 mod 2^32) >> 24.
    static func pattern(_ i: Int) -> UInt8 { UInt8(truncatingIfNeeded: (UInt32(truncatingIfNeeded: i) &* 2654435761) >> 24) }

    static func patternData(count: Int, from start: Int = 0) -> Data {
        var d = Data(count: count)
        d.withUnsafeMutableBytes { raw in
            let p = raw.bindMemory(to: UInt8.self)
            for i in 0..<count { p[i] = pattern(start + i) }
        }
        return d
    }

    /// Writes all of `data` to `fd` (MSG_NOSIGNAL); false when the peer went away.
    @discardableResult
    static func sendAll(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { raw -> Bool in
            var off = 0
            while off < raw.count {
                let n = send(fd, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n < 0 { if errno == EINTR { continue }; return false }
                off += n
            }
            return true
        }
    }

    /// Reads from `fd` until EOF (or an error), handing each chunk to `body`.
    static func readToEOF(_ fd: Int32, _ body: (UnsafeRawBufferPointer) -> Void) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }
}

// MARK: - A process running in the background

/// A process (usually `apus run … SERVER`) started without waiting for it: its output is
/// collected as it comes, and `stop()` (also run on deinit) kills its whole process group.
final class BackgroundProcess: @unchecked Sendable {
    let commandLine: String
    private let process = Process()
    private let lock = NSLock()
    private var out = Data(), err = Data()
    private let exited = DispatchSemaphore(value: 0)
    private var exitStatus: Int32?
    private let drained = DispatchGroup()

    init(_ executable: String, _ args: [String], cwd: String = Harness.guestsDir,
         environment: [String: String]? = Harness.apusEnvironment) throws {
        _ = Harness.noCoreDumps
        commandLine = ([executable] + args).map(Runner.shellQuote).joined(separator: " ")
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = args
        process.currentDirectoryURL = URL(fileURLWithPath: cwd)
        if let environment { process.environment = environment }
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        let outPipe = Pipe(), errPipe = Pipe()
        process.standardOutput = outPipe
        process.standardError = errPipe
        process.terminationHandler = { [weak self] p in
            guard let self else { return }
            var status = p.terminationStatus
            if p.terminationReason == .uncaughtSignal { status += 128 }
            self.lock.lock(); self.exitStatus = status; self.lock.unlock()
            self.exited.signal()
        }
        try process.run()
        try? outPipe.fileHandleForWriting.close()
        try? errPipe.fileHandleForWriting.close()
        let o = outPipe.fileHandleForReading, e = errPipe.fileHandleForReading
        DispatchQueue.global().async(group: drained) { [self] in drain(o, isErr: false) }
        DispatchQueue.global().async(group: drained) { [self] in drain(e, isErr: true) }
    }

    private func drain(_ handle: FileHandle, isErr: Bool) {
        while true {
            let chunk = handle.availableData
            if chunk.isEmpty { return }
            lock.lock()
            if isErr { err.append(chunk) } else { out.append(chunk) }
            lock.unlock()
        }
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: Data { lock.lock(); defer { lock.unlock() }; return out }
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    var stderrText: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }
    var status: Int32? { lock.lock(); defer { lock.unlock() }; return exitStatus }
    var isRunning: Bool { status == nil }

    /// Waits up to `timeout` seconds for the process to exit; its status, or nil.
    func waitExit(timeout: TimeInterval) -> Int32? {
        if let s = status { return s }
        if exited.wait(timeout: .now() + timeout) == .success { exited.signal() }
        if status != nil { _ = drained.wait(timeout: .now() + 5) }
        return status
    }

    /// Polls until `condition` holds (true), the process exits or `timeout` passes (false).
    func wait(timeout: TimeInterval, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if condition() { return true }
            if !isRunning { return condition() }
            usleep(50_000)
        }
        return condition()
    }

    /// Waits until `text` shows up on stdout or stderr.
    func waitForOutput(_ text: String, timeout: TimeInterval) -> Bool {
        wait(timeout: timeout) { stdoutText.contains(text) || stderrText.contains(text) }
    }

    /// SIGTERM to the process group, then SIGKILL after `grace` seconds; the exit status.
    /// Descendants that left the group (`apus run --vmm qemu` runs QEMU in a group of its own,
    /// so that Ctrl-C reaches apus only; QEMU dies with apus) are found first and killed by pid
    /// afterwards, so that no VM outlives its test even when apus fails to stop it.
    @discardableResult
    func stop(grace: TimeInterval = 3) -> Int32? {
        if let s = status { return s }
        let pid = process.processIdentifier
        let descendants = Self.descendants(of: pid)
        let group = getpgid(pid) == pid
        kill(group ? -pid : pid, SIGTERM)
        var result = waitExit(timeout: grace)
        if result == nil {
            kill(group ? -pid : pid, SIGKILL)
            result = waitExit(timeout: 10)
        }
        usleep(200_000)
        for child in descendants where Self.parentAndName(child) != nil { kill(child, SIGKILL) }
        return result
    }

    /// The pids of every live descendant of `pid` (from /proc/PID/stat's ppid field).
    static func descendants(of pid: Int32) -> [Int32] {
        var parents: [Int32: [Int32]] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let child = Int32(entry), let (ppid, _) = parentAndName(child) else { continue }
            parents[ppid, default: []].append(child)
        }
        var result: [Int32] = [], queue = [pid]
        while let p = queue.popLast() {
            for c in parents[p] ?? [] { result.append(c); queue.append(c) }
        }
        return result
    }

    /// (ppid, comm) of a live process, nil when it is gone.
    static func parentAndName(_ pid: Int32) -> (Int32, String)? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, fields[0] != "Z", let ppid = Int32(fields[1]) else { return nil }
        return (ppid, String(stat[stat.index(after: open)..<close]))
    }

    /// A description for failure messages: the command and the tails of its output.
    var report: String {
        "command: \(commandLine)\nstatus: \(status.map(String.init) ?? "running")\n"
            + "stdout tail: \(Compare.tail(stdout, 800))\nstderr tail: \(Compare.tail(Data(stderrText.utf8), 1500))"
    }

    deinit { stop(grace: 1) }
}

// MARK: - A TCP server inside the test process (127.0.0.1 only)

/// Accepts connections on 127.0.0.1:`port` on a background thread and hands each to
/// `handler` on its own thread; `stop()` (also on deinit) closes the listener.
final class HostTCPServer: @unchecked Sendable {
    let port: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var stopped = false
    private var log: [String] = []

    init(handler: @escaping @Sendable (Int32, HostTCPServer) -> Void) throws {
        (fd, port) = try Net.listen(port: 0)
        let listenFD = fd
        Thread.detachNewThread { [weak self] in
            while true {
                let c = accept(listenFD, nil, nil)
                if c < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                guard let self else { close(c); return }
                Thread.detachNewThread {
                    handler(c, self)
                    close(c)
                }
            }
        }
    }

    func record(_ line: String) { lock.lock(); log.append(line); lock.unlock() }
    var records: [String] { lock.lock(); defer { lock.unlock() }; return log }

    func stop() {
        lock.lock(); defer { lock.unlock() }
        if stopped { return }
        stopped = true
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    deinit { stop() }

    /// An HTTP/1.0 file server: GET PATH answers `files[PATH]` (200, Content-Length) or 404,
    /// then closes. Each request line is recorded.
    static func http(files: [String: Data]) throws -> HostTCPServer {
        try HostTCPServer { fd, server in
            var head = Data()
            var buffer = [UInt8](repeating: 0, count: 4096)
            while head.range(of: Data("\r\n\r\n".utf8)) == nil && head.count < 65536 {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                head.append(contentsOf: buffer[0..<n])
            }
            let requestLine = String(decoding: head.prefix { $0 != 0x0d }, as: UTF8.self)
            server.record(requestLine)
            let parts = requestLine.split(separator: " ")
            let path = parts.count >= 2 ? String(parts[1]) : ""
            if parts.first == "GET", let body = files[path] {
                Net.sendAll(fd, Data("HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8))
                Net.sendAll(fd, body)
            } else {
                Net.sendAll(fd, Data("HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n".utf8))
            }
            shutdown(fd, Int32(SHUT_WR))
            Net.readToEOF(fd) { _ in }
        }
    }

    /// A sink: reads to EOF as fast as it can, then compares the bytes with Net.pattern and
    /// answers "host received N bytes, pattern ok|BAD\n" (recorded too).
    static func sink() throws -> HostTCPServer {
        try HostTCPServer { fd, server in
            var received = Data()
            Net.readToEOF(fd) { chunk in received.append(contentsOf: chunk) }
            let ok = received == Net.patternData(count: received.count)
            let line = "host received \(received.count) bytes, pattern \(ok ? "ok" : "BAD")\n"
            server.record(line)
            Net.sendAll(fd, Data(line.utf8))
        }
    }

    /// A source: writes `count` bytes of Net.pattern, then closes.
    static func source(count: Int) throws -> HostTCPServer {
        let data = Net.patternData(count: count)
        return try HostTCPServer { fd, server in
            let ok = Net.sendAll(fd, data)
            server.record("sent \(count) bytes: \(ok ? "ok" : "peer went away")")
            shutdown(fd, Int32(SHUT_WR))
            Net.readToEOF(fd) { _ in }
        }
    }
}

// MARK: - Requirements and host clients

extension VMMMatrix {
    /// The host tool `name` on PATH (curl, redis-cli, wrk …): its path; a skip when it is
    /// missing, a failure under CI=true.
    func requireTool(_ name: String, package: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        guard let path = Harness.findOnPath(name) ?? (Harness.isExecutableFile("/usr/bin/\(name)") ? "/usr/bin/\(name)" : nil)
                ?? (Harness.isExecutableFile("/usr/sbin/\(name)") ? "/usr/sbin/\(name)" : nil) else {
            try Harness.require(false, "\(name) is missing: scripts/setup.sh installs \(package)", file: file, line: line)
            return ""
        }
        return path
    }

    /// The `apus run` timeout backstop for a server VM, and the per-client timeout.
    var serverTimeout: Int { vmm == "qemu" ? 240 : 90 }
    var clientTimeout: TimeInterval { vmm == "qemu" ? 90 : 30 }

    /// Starts `apus run --vmm VMM --timeout T FLAGS PROGRAM ARGS` in the background.
    func startApus(_ flags: [String], _ program: String, _ args: [String] = []) throws -> BackgroundProcess {
        try BackgroundProcess(Harness.apusBinary,
                              ["run", "--vmm", vmm, "--timeout", String(serverTimeout)] + flags + [program] + args)
    }

    /// Runs a host client with a bounded time; the result.
    func client(_ tool: String, _ args: [String], timeout: TimeInterval? = nil, stdin: Data? = nil) throws -> RunResult {
        try Runner.run(tool, args, cwd: NSTemporaryDirectory(), environment: nil, stdin: stdin,
                       timeout: timeout ?? clientTimeout)
    }
}
