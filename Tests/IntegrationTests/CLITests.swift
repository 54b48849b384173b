// The `apus` command line itself: help, version, bad flags, and inputs that are not
// runnable (each must fail fast with exit 125 and one "apus: ..." line, booting nothing).
// None of these boots a VM, so they need neither /dev/kvm nor QEMU.
//   swift test --filter IntegrationTests.CLITests

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class CLITests: XCTestCase {
    override func setUpWithError() throws {
        try Harness.requireApus()
    }

    private func apus(_ args: [String], timeout: TimeInterval = 30) throws -> RunResult {
        let r = try Runner.run(Harness.apusBinary, args, cwd: FileManager.default.fileExists(atPath: Harness.guestsDir)
                                   ? Harness.guestsDir : Harness.repoRoot.path,
                               environment: nil, timeout: timeout)
        XCTAssertFalse(r.timedOut, "\(r.commandLine): timed out")
        return r
    }

    func testRunHelp() throws {
        let r = try apus(["run", "--help"])
        XCTAssertEqual(r.status, 0, "apus run --help: status\nstderr: \(r.stderrText)")
        let text = r.stdoutText + r.stderrText
        for flag in ["--env", "--memory", "--timings", "--vmm", "--volume"] {
            XCTAssertTrue(text.contains(flag), "apus run --help does not mention \(flag):\n\(text)")
        }
    }

    func testVersion() throws {
        let r = try apus(["version"])
        XCTAssertEqual(r.status, 0, "apus version: status\nstderr: \(r.stderrText)")
        XCTAssertFalse((r.stdoutText + r.stderrText).trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                       "apus version printed nothing")
    }

    /// Bad option values are usage errors: non-zero, a message, the program never runs.
    func testBadFlags() throws {
        try Harness.requireGuests()
        let cases: [[String]] = [
            ["run", "--memory", "abc", "./hello.musl"],
            ["run", "-m", "-5M", "./hello.musl"],
            ["run", "--vmm", "bogus", "./hello.musl"],
            ["run", "--no-such-flag", "./hello.musl"],
            ["run"],
            ["run", "-v", "/tmp", "./hello.musl"],                    // no guest path
            ["run", "-v", "/tmp:relative", "./hello.musl"],
            ["run", "-v", "/tmp:/", "./hello.musl"],
            ["run", "-v", "/tmp:/data:rx", "./hello.musl"],
            ["run", "-v", "./does-not-exist:/data", "./hello.musl"],  // exit 125 at start
            ["run", "-v", "./hello.musl:/data", "-v", "./hello.glibc:/data", "./hello.musl"],
        ]
        for args in cases {
            let r = try apus(args)
            XCTAssertNotEqual(r.status, 0, "\(r.commandLine) should fail")
            XCTAssertFalse(r.stderrText.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty,
                           "\(r.commandLine): no error message on stderr")
            XCTAssertFalse(r.stdoutText.contains("Hello from Apus!"), "\(r.commandLine): the program ran")
        }
    }

    /// The error contract: a usage error of any verb (an unknown flag or verb, a bad or missing
    /// value, a value out of range) is exactly one `apus:` line on stderr and exit 125, never
    /// ArgumentParser's multi-line usage with its own status.
    func testUsageErrorsAreOneLineAnd125() throws {
        try Harness.requireGuests()
        let cases: [[String]] = [
            ["run", "--memory", "abc", "./hello.musl"],
            ["run", "--no-such-flag", "./hello.musl"],
            ["run"],
            ["run", "--timeout", "abc", "./hello.musl"],
            ["run", "--timeout", "1e308", "./hello.musl"],
            ["run", "--timeout", "-1", "./hello.musl"],
            ["run", "--timeout", "nan", "./hello.musl"],
            ["run", "--network", "bogus", "./hello.musl"],
            ["run", "-p", "99999:80", "./hello.musl"],
            ["run", "--memory"],
            ["build", "--memory", "lots", "/bin/true"],
            ["build", "--no-such-flag"],
            ["build"],
            ["rmi"],
            ["inspect"],
            ["images", "--bogus"],
            ["no-such-verb"],
        ]
        for args in cases {
            let r = try apus(args)
            let what = r.commandLine
            XCTAssertEqual(r.status, 125, "\(what): exit status\nstderr: \(r.stderrText)")
            let lines = r.stderrText.split(separator: "\n", omittingEmptySubsequences: false)
            XCTAssertTrue(r.stderrText.hasPrefix("apus: "), "\(what): stderr must start with \"apus: \":\n\(r.stderrText)")
            XCTAssertTrue(lines.count == 2 && lines[1].isEmpty, "\(what): stderr must be exactly one line:\n\(r.stderrText)")
            XCTAssertEqual(r.stdoutText, "", "\(what): stdout must be empty")
        }
    }

    /// Not-runnable PROGRAMs: exit 125, exactly one stderr line starting "apus: ", nothing on
    /// stdout, and fast (< 2 s: nothing was booted). Checked with the default VMM and qemu.
    func testNotRunnableInputs() throws {
        try Harness.requireGuests()
        let inputs = [
            "./does-not-exist",       // missing file
            "./truncated.elf",        // first 100 bytes of an ELF
            "./empty.elf",            // zero bytes
            "./wrong-arch.elf",       // e_machine = 183 (AArch64)
            "./script.sh",            // #!/bin/sh script
            "./a-directory",          // a directory
        ]
        // A FIFO: opening it for reading would wait for a writer forever.
        let fifo = NSTemporaryDirectory() + "apus-cli-fifo-\(getpid())"
        unlink(fifo)
        XCTAssertEqual(mkfifo(fifo, 0o600), 0, "mkfifo \(fifo)")
        defer { unlink(fifo) }
        for vmmFlags in [[], ["--vmm", "qemu"], ["--vmm", "apus"]] {
            for input in inputs + [fifo] {
                let r = try apus(["run"] + vmmFlags + [input])
                let what = r.commandLine
                XCTAssertEqual(r.status, 125, "\(what): exit status\nstderr: \(r.stderrText)")
                let err = r.stderrText
                let lines = err.split(separator: "\n", omittingEmptySubsequences: false)
                XCTAssertTrue(err.hasPrefix("apus: "), "\(what): stderr must start with \"apus: \":\n\(err)")
                XCTAssertTrue(lines.count == 1 || (lines.count == 2 && lines[1].isEmpty),
                              "\(what): stderr must be exactly one line:\n\(err)")
                XCTAssertEqual(r.stdoutText, "", "\(what): stdout must be empty")
                XCTAssertLessThan(r.duration, 2.0, "\(what): took \(r.duration) s; nothing should boot")
            }
        }
    }
}
