// `--timeout` ends the VM whatever apus is doing at that moment: running the guest, blocked
// reading the host's stdin for it, or blocked writing its output to a full pipe. The apus
// VMM only: under QEMU the launcher's `timeout --signal=KILL` ends QEMU from outside.
//   swift test --filter IntegrationTests.TimeoutTests

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class TimeoutTests: XCTestCase {
    override func setUpWithError() throws {
        try Harness.requireApus()
        try Harness.requireGuests()
        try Harness.requirePlatform(vmm: "apus")
    }

    /// Starts `apus run ARGS` with the given stdin and stdout and waits at most `limit` seconds.
    private func runBlocked(_ args: [String], stdin: Pipe, stdout: Pipe, limit: TimeInterval) throws -> (status: Int32, seconds: TimeInterval, stderr: String) {
        _ = Harness.noCoreDumps
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.apusBinary)
        process.arguments = ["run"] + args
        process.currentDirectoryURL = URL(fileURLWithPath: Harness.guestsDir)
        process.environment = Harness.apusEnvironment
        process.standardInput = stdin
        process.standardOutput = stdout
        let errPipe = Pipe()
        process.standardError = errPipe
        let exited = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exited.signal() }
        let started = Date()
        try process.run()
        try? errPipe.fileHandleForWriting.close()
        let finished = exited.wait(timeout: .now() + limit) == .success
        let seconds = Date().timeIntervalSince(started)
        if !finished { process.terminate(); kill(process.processIdentifier, SIGKILL); _ = exited.wait(timeout: .now() + 5) }
        let stderr = String(decoding: errPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertTrue(finished, "apus \(args.joined(separator: " ")) was still running after \(limit) s: the timeout did not end it")
        return (process.terminationStatus, seconds, stderr)
    }

    /// The guest waits for stdin that never comes (the writer keeps the pipe open).
    func testTimeoutWhileBlockedOnHostStdin() throws {
        let input = Pipe(), output = Pipe()
        defer { try? input.fileHandleForWriting.close() }
        let r = try runBlocked(["--timeout", "1", "./stdin.musl"], stdin: input, stdout: output, limit: 10)
        XCTAssertEqual(r.status, 251, r.stderr)
        XCTAssertLessThan(r.seconds, 5, "took \(r.seconds) s for --timeout 1")
        XCTAssertTrue(r.stderr.contains("did not finish within 1000 ms"), r.stderr)
    }

    /// The guest writes without end to a pipe nobody reads: apus blocks in write(2).
    func testTimeoutWhileBlockedOnHostStdout() throws {
        let input = Pipe(), output = Pipe()
        defer { try? output.fileHandleForReading.close() }
        try input.fileHandleForWriting.close()
        let r = try runBlocked(["--timeout", "1", "/bin/busybox", "yes"], stdin: input, stdout: output, limit: 10)
        XCTAssertEqual(r.status, 251, r.stderr)
        XCTAssertLessThan(r.seconds, 5, "took \(r.seconds) s for --timeout 1")
    }

    /// What the program wrote before the timeout (still in the kernel's console buffer)
    /// reaches stdout when the VM is stopped.
    func testTimeoutKeepsTheOutputWrittenBefore() throws {
        let r = try Runner.run(Harness.apusBinary, ["run", "--timeout", "1", "/bin/busybox", "sh", "-c", "echo written-before; while :; do :; done"],
                               cwd: Harness.guestsDir, environment: Harness.apusEnvironment, timeout: 20)
        XCTAssertEqual(r.status, 251, r.stderrText)
        XCTAssertEqual(r.stdoutText, "written-before\n", r.stderrText)
    }

    /// A sub-millisecond timeout is a (1 ms) limit, not "no limit".
    func testSubMillisecondTimeoutStillLimits() throws {
        let input = Pipe(), output = Pipe()
        try input.fileHandleForWriting.close()
        let r = try runBlocked(["--timeout", "0.0001", "./spin.musl"], stdin: input, stdout: output, limit: 10)
        XCTAssertEqual(r.status, 251, r.stderr)
        XCTAssertTrue(r.stderr.contains("did not finish within 1 ms"), r.stderr)
    }
}
