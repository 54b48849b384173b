// The `apus` command line itself: help, version, bad flags, and inputs that are not
// runnable (each must fail fast with exit 125 and one "apus: ..." line, booting nothing).
// None of these boots a VM, so they need neither /dev/kvm nor QEMU.
//   swift test --filter IntegrationTests.CLITests

import Foundation
import XCTest

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
        for vmmFlags in [[], ["--vmm", "qemu"], ["--vmm", "apus"]] {
            for input in inputs {
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
