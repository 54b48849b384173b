import ApusKit
import XCTest

final class RunOptionTests: XCTestCase {
    func testMemorySizes() {
        XCTAssertEqual(MemorySize.parse("64M"), 64 << 20)
        XCTAssertEqual(MemorySize.parse("1g"), 1 << 30)
        XCTAssertEqual(MemorySize.parse("512K"), 512 << 10)
        XCTAssertEqual(MemorySize.parse("4096"), 4096)
        for bad in ["", "M", "abc", "-5M", "64MiB", "1.5G", "99999999999999999999G", "6 4M"] {
            XCTAssertNil(MemorySize.parse(bad), bad)
        }
    }

    func testMakeReportsEachProblem() {
        func problem(memory: String = "64M", vmm: String = "apus", env: [String] = [], timeout: Double = 0) -> String? {
            if case .failure(let e) = RunOptions.make(program: "p", arguments: [], environment: env, memory: memory,
                                                      vmm: vmm, timings: false, timeout: timeout) { return e.description }
            return nil
        }
        XCTAssertNil(problem())
        XCTAssertTrue(problem(memory: "lots")?.contains("--memory") ?? false)
        XCTAssertTrue(problem(vmm: "xen")?.contains("--vmm") ?? false)
        XCTAssertNil(problem(env: ["NOEQUALS"]), "a bare NAME passes the host's NAME, as docker's -e NAME")
        XCTAssertTrue(problem(env: ["=x"])?.contains("NAME=VALUE") ?? false)
        XCTAssertTrue(problem(env: [""])?.contains("the name is empty") ?? false)
        XCTAssertTrue(problem(timeout: -1)?.contains("--timeout") ?? false)
    }

    func testFastParserTakesTheCommonForm() throws {
        let o = try XCTUnwrap(FastRunParser.parse(["run", "-e", "A=1", "--env", "B=2", "-m", "64M", "--timings",
                                                   "--vmm", "qemu", "--timeout", "2.5", "./prog", "-x", "--env", "y"]))
        XCTAssertEqual(o.program, "./prog")
        XCTAssertEqual(o.arguments, ["-x", "--env", "y"])  // everything after PROGRAM is the program's
        XCTAssertEqual(o.environment, ["A=1", "B=2"])
        XCTAssertEqual(o.memorySize, 64 << 20)
        XCTAssertEqual(o.monitor, .qemu)
        XCTAssertTrue(o.timings)
        XCTAssertEqual(o.timeoutSeconds, 2.5)
        let defaults = try XCTUnwrap(FastRunParser.parse(["run", "./prog"]))
        XCTAssertEqual(defaults.memorySize, 128 << 20)
        XCTAssertEqual(defaults.monitor, .apus)
        XCTAssertFalse(defaults.timings)
    }

    /// Everything else goes to ArgumentParser, which owns help and error messages.
    func testFastParserLeavesEverythingElse() {
        for argv in [[], ["version"], ["run"], ["run", "--help"], ["run", "-h"], ["run", "--env=A=1", "p"],
                     ["run", "--bogus", "p"], ["run", "--memory", "abc", "p"], ["run", "-e"], ["run", "--vmm", "xen", "p"],
                     ["run", "-e", "=x", "p"], ["run", "--env-file", "/nonexistent/env", "p"], ["run", "--timeout", "soon", "p"], ["run", "--timings"]] {
            XCTAssertNil(FastRunParser.parse(argv), "\(argv)")
        }
    }
}
