// The image store from the command line: apus build, images, inspect, rmi, and apus run of a
// store image (its stored args, env and workdir, and the run's overrides). Every test gets
// its own APUS_HOME. Tests that boot need /dev/kvm; building and listing do not.
//   APUS_BIN=... APUS_GUESTS=... swift test --skip-build --filter IntegrationTests.StoreTests

import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

final class StoreTests: XCTestCase {
    var home = ""
    var work = ""

    override func setUpWithError() throws {
        try Harness.requireApus()
        try Harness.requireGuests()
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("apus-store-it-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: base.appendingPathComponent("work"), withIntermediateDirectories: true)
        home = base.appendingPathComponent("home").path
        work = base.appendingPathComponent("work").path
    }

    override func tearDownWithError() throws {
        if !home.isEmpty { try? FileManager.default.removeItem(atPath: (home as NSString).deletingLastPathComponent) }
    }

    /// `apus ARGS` in the work directory with this test's APUS_HOME.
    @discardableResult
    private func apus(_ args: [String], cwd: String? = nil, timeout: TimeInterval = 60) throws -> RunResult {
        var environment = Harness.environment
        environment["APUS_HOME"] = home
        let r = try Runner.run(Harness.apusBinary, args, cwd: cwd ?? work, environment: environment, timeout: timeout)
        XCTAssertFalse(r.timedOut, "\(r.commandLine): timed out")
        return r
    }

    private func assertOneErrorLine(_ r: RunResult, status: Int32, mentioning needles: [String],
                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, status, "\(r.commandLine): status\nstderr: \(r.stderrText)", file: file, line: line)
        let lines = r.stderrText.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "\(r.commandLine): want one stderr line:\n\(r.stderrText)", file: file, line: line)
        XCTAssertTrue(r.stderrText.hasPrefix("apus: "), "\(r.commandLine): \(r.stderrText)", file: file, line: line)
        for needle in needles {
            XCTAssertTrue(r.stderrText.contains(needle), "\(r.commandLine): stderr lacks \(needle):\n\(r.stderrText)",
                          file: file, line: line)
        }
    }

    private func storeFiles(_ directory: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: home + "/" + directory)) ?? []
    }

    // MARK: Build, list, run, inspect, remove

    func testBuildRunInspectRemove() throws {
        try Harness.requirePlatform(vmm: "apus")
        let args = Harness.guestPath("args.musl")
        var r = try apus(["build", "-t", "argsimg", "-e", "A=1", "-e", "B=x=y", "-w", "/srv", "--hostname", "h1",
                          "-m", "64M", args, "one", "two three"])
        XCTAssertEqual(r.status, 0, "build: \(r.stderrText)")
        XCTAssertTrue(r.stdoutText.contains("argsimg: built sha256:"), r.stdoutText)

        r = try apus(["build", "-t", "argsimg", "-e", "A=1", "-e", "B=x=y", "-w", "/srv", "--hostname", "h1",
                      "-m", "64M", args, "one", "two three"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertTrue(r.stdoutText.contains("up to date (cache hit"), "the rebuild is a cache hit: \(r.stdoutText)")

        r = try apus(["images"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        let rows = r.stdoutText.split(separator: "\n")
        XCTAssertEqual(rows.first?.split(separator: " ", omittingEmptySubsequences: true), ["NAME", "SIZE", "CREATED", "DIGEST"])
        XCTAssertTrue(rows.contains { $0.hasPrefix("argsimg ") && $0.contains("kB") && ($0.contains("just now") || $0.contains("seconds ago")) },
                      r.stdoutText)

        // The stored defaults.
        r = try apus(["run", "argsimg"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertTrue(r.stdoutText.contains("argc=3\n"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("argv[0] (\(args.utf8.count)) = [\(args)]"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("argv[2] (9) = [two three]"), r.stdoutText)
        // docker's defaults around the image's variables: PATH, HOSTNAME (the image's), HOME last.
        XCTAssertTrue(r.stdoutText.contains("envp[0] (65) = [PATH=\(ContainerPath.docker)]\nenvp[1] (11) = [HOSTNAME=h1]\n"
                                            + "envp[2] (3) = [A=1]\nenvp[3] (5) = [B=x=y]\nenvp[4] (10) = [HOME=/root]\nenvc=5"), r.stdoutText)
        // Overrides: ARGS replace, -e adds and overrides.
        r = try apus(["run", "-e", "A=2", "-e", "C=3", "argsimg", "new"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertTrue(r.stdoutText.contains("argc=2\n"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("argv[1] (3) = [new]"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("envp[2] (3) = [A=2]\nenvp[3] (5) = [B=x=y]\nenvp[4] (3) = [C=3]\nenvp[5] (10) = [HOME=/root]\nenvc=6"),
                      r.stdoutText)

        r = try apus(["inspect", "argsimg"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        for needle in ["Entrypoint:  \(args)", "Args:        one 'two three'", "Env:         A=1 B=x=y", "Workdir:     /srv",
                       "Hostname:    h1", "Memory:      64M", "/etc/passwd", "Files:       "] {
            XCTAssertTrue(r.stdoutText.contains(needle), "inspect lacks \(needle):\n\(r.stdoutText)")
        }
        r = try apus(["inspect", "--json", "argsimg"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        let json = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any]
        XCTAssertEqual(json?["args"] as? [String], ["one", "two three"])
        XCTAssertEqual(json?["workdir"] as? String, "/srv")

        r = try apus(["rmi", "argsimg"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertTrue(r.stdoutText.contains("Untagged: argsimg") && r.stdoutText.contains("Deleted: sha256:"), r.stdoutText)
        r = try apus(["images"])
        XCTAssertFalse(r.stdoutText.contains("argsimg"), r.stdoutText)
        XCTAssertEqual(storeFiles("blobs"), [], "rmi collected the image file")
        XCTAssertEqual(storeFiles("configs"), [])
        assertOneErrorLine(try apus(["rmi", "argsimg"]), status: 1, mentioning: ["argsimg"])
    }

    /// The working directory and hostname from the image, and -w / --hostname over them
    /// (busybox-static: pwd and hostname are applets that run without fork).
    func testWorkdirAndHostname() throws {
        try Harness.requirePlatform(vmm: "apus")
        let busybox = "/bin/busybox"
        try Harness.require(Harness.isExecutableFile(busybox), "\(busybox) (busybox-static) is missing")
        var r = try apus(["build", "-t", "bb", "-w", "/app", "--hostname", "box", busybox, "pwd"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        r = try apus(["run", "bb"])
        XCTAssertEqual(r.stdoutText, "/app\n", r.stderrText)
        r = try apus(["run", "-w", "/tmp", "bb", "pwd"])
        XCTAssertEqual(r.stdoutText, "/tmp\n", r.stderrText)
        r = try apus(["run", "bb", "hostname"])
        XCTAssertEqual(r.stdoutText, "box\n", r.stderrText)
        r = try apus(["run", "--hostname", "other", "bb", "hostname"])
        XCTAssertEqual(r.stdoutText, "other\n", r.stderrText)
        r = try apus(["run", "bb", "cat", "/etc/passwd"])
        XCTAssertEqual(r.stdoutText, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", r.stderrText)
        // A volume on top of a store image.
        let source = Harness.repoRoot.appendingPathComponent("Tests/Guests/hello.c").path
        r = try apus(["run", "-v", source + ":/data/hello.c", "bb", "wc", "-l", "/data/hello.c"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertTrue(r.stdoutText.hasSuffix(" /data/hello.c\n"), r.stdoutText)
    }

    func testManifest() throws {
        try Harness.requirePlatform(vmm: "apus")
        try "from the manifest\n".write(toFile: work + "/note.txt", atomically: true, encoding: .utf8)
        try """
            name: fromyaml
            program: \(Harness.guestPath("args.musl"))
            args: [first, "second arg"]
            env:
              GREETING: hello world
            files:
              - note.txt:/data/note.txt
              - {from: note.txt, to: /data/copy.txt}
            memory: 96M
            """.write(toFile: work + "/Apusfile.yaml", atomically: true, encoding: .utf8)
        // From elsewhere: the manifest's relative paths are relative to its own directory.
        var r = try apus(["build", "-f", work + "/Apusfile.yaml"], cwd: "/")
        XCTAssertEqual(r.status, 0, r.stderrText)
        r = try apus(["run", "fromyaml"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertTrue(r.stdoutText.contains("argv[2] (10) = [second arg]"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("envp[2] (20) = [GREETING=hello world]"), r.stdoutText)
        r = try apus(["inspect", "fromyaml"])
        XCTAssertTrue(r.stdoutText.contains("/data/note.txt") && r.stdoutText.contains("/data/copy.txt"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("Memory:      96M"), r.stdoutText)

        try "program: /bin/true\nargz: [x]\n".write(toFile: work + "/bad.yaml", atomically: true, encoding: .utf8)
        assertOneErrorLine(try apus(["build", "-f", "bad.yaml"]), status: 1, mentioning: ["bad.yaml:2", "argz"])
        try "program: /bin/true\nargs: notalist\n".write(toFile: work + "/bad2.yaml", atomically: true, encoding: .utf8)
        assertOneErrorLine(try apus(["build", "-f", "bad2.yaml"]), status: 1, mentioning: ["args", "list"])
        assertOneErrorLine(try apus(["build", "-f", "missing.yaml"]), status: 1, mentioning: ["missing.yaml"])
    }

    /// An image file whose bytes changed on disk but still parse (one flipped bit in the
    /// program, mtime put back): refused before boot on both VMMs, as `apus inspect` does.
    func testTamperedImageIsRefused() throws {
        var r = try apus(["build", "-t", "victim", Harness.guestPath("hello.musl")])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertEqual(try apus(["run", "victim"]).stdoutText, "Hello from Apus!\n")
        for blob in storeFiles("blobs") {
            let path = home + "/blobs/" + blob
            var before = stat()
            XCTAssertEqual(stat(path, &before), 0)
            chmod(path, 0o644)
            let fd = open(path, O_RDWR)
            // The middle of the last page holding file data: the program's bytes, not the index.
            let offset = off_t(before.st_size - 4096 + 100)
            var byte: UInt8 = 0
            XCTAssertEqual(pread(fd, &byte, 1, offset), 1)
            byte ^= 0x01
            XCTAssertEqual(pwrite(fd, &byte, 1, offset), 1)
            var times = [before.st_atim, before.st_mtim]
            XCTAssertEqual(futimens(fd, &times), 0)
            close(fd)
        }
        for vmm in ["apus", "qemu"] {
            r = try apus(["run", "--vmm", vmm, "victim"])
            assertOneErrorLine(r, status: 125, mentioning: ["image victim is corrupt", "SHA-256", "apus rmi victim"])
            XCTAssertEqual(r.stdoutText, "")
        }
        assertOneErrorLine(try apus(["inspect", "victim"]), status: 1, mentioning: ["victim is corrupt"])
    }

    /// A corrupt image file in the store: one clear line, exit 125, nothing booted.
    func testCorruptImageIsRefused() throws {
        var r = try apus(["build", "-t", "victim", Harness.guestPath("hello.musl")])
        XCTAssertEqual(r.status, 0, r.stderrText)
        for blob in storeFiles("blobs") {
            let path = home + "/blobs/" + blob
            try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
            let handle = try XCTUnwrap(FileHandle(forWritingAtPath: path))
            try handle.write(contentsOf: Data("NOTANIMG".utf8))
            try handle.close()
        }
        for vmm in ["apus", "qemu"] {
            r = try apus(["run", "--vmm", vmm, "victim"])
            assertOneErrorLine(r, status: 125, mentioning: ["image victim is corrupt", "apus rmi victim"])
            XCTAssertEqual(r.stdoutText, "")
            XCTAssertLessThan(r.duration, 2.0, "nothing should boot")
        }
        assertOneErrorLine(try apus(["inspect", "victim"]), status: 1, mentioning: ["victim"])
        XCTAssertEqual(try apus(["rmi", "victim"]).status, 0, "a corrupt image can still be removed")
        XCTAssertEqual(storeFiles("blobs"), [])
    }

    /// A build killed while it copies leaves no name and no image; the next build removes its
    /// temporary file.
    func testKilledBuildLeavesNothing() throws {
        let big = work + "/big.bin"
        XCTAssertTrue(FileManager.default.createFile(atPath: big, contents: nil))
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: big))
        try handle.truncate(atOffset: 768 << 20)  // sparse: cheap to make, slow enough to hash
        try handle.close()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.apusBinary)
        process.arguments = ["build", "-t", "killed", "--add", big + ":/big.bin", Harness.guestPath("hello.musl")]
        var environment = Harness.environment
        environment["APUS_HOME"] = home
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        usleep(300_000)
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        if process.terminationReason != .uncaughtSignal { throw XCTSkip("the build finished before it could be killed") }
        XCTAssertEqual(storeFiles("names"), [], "no dangling name")
        XCTAssertEqual(storeFiles("blobs"), [], "no half image")
        XCTAssertEqual(storeFiles("configs"), [])
        XCTAssertLessThanOrEqual(storeFiles("tmp").count, 1)
        XCTAssertEqual(try apus(["build", "-t", "next", Harness.guestPath("hello.musl")]).status, 0)
        XCTAssertEqual(storeFiles("tmp"), [], "the dead build's temporary file is collected")
        XCTAssertEqual(storeFiles("names"), ["next"])
    }

    func testUnknownImagesAndBadInput() throws {
        assertOneErrorLine(try apus(["run", "no-such-image"]), status: 125, mentioning: ["no-such-image"])
        assertOneErrorLine(try apus(["inspect", "no-such-image"]), status: 1, mentioning: ["no-such-image"])
        assertOneErrorLine(try apus(["rmi", "no-such-image"]), status: 1, mentioning: ["no-such-image"])
        assertOneErrorLine(try apus(["build", "./does-not-exist"]), status: 1, mentioning: ["does-not-exist"])
        assertOneErrorLine(try apus(["build", "-t", "bad/name", Harness.guestPath("hello.musl")]), status: 1,
                           mentioning: ["image name"])
        assertOneErrorLine(try apus(["build", Harness.guestPath("hello.musl"), "--add", "./nothing-here:/x"]),
                           status: 1, mentioning: ["--add", "nothing-here"])
        assertOneErrorLine(try apus(["build", Harness.guestPath("script.sh")]), status: 1, mentioning: ["script"])
        let r = try apus(["images"])
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertEqual(r.stdoutText.split(separator: "\n").count, 1, "only the header: \(r.stdoutText)")
    }

    func testHelpTeaches() throws {
        for verb in ["build", "images", "inspect", "rmi"] {
            let r = try apus([verb, "--help"])
            XCTAssertEqual(r.status, 0, "\(verb) --help: \(r.stderrText)")
            XCTAssertTrue(r.stdoutText.contains("Examples:") && r.stdoutText.contains("apus \(verb)"), r.stdoutText)
        }
        let r = try apus(["build", "--help"])
        for flag in ["--tag", "--file", "--add", "--env", "--workdir", "--hostname", "--memory", "--ca-certificates"] {
            XCTAssertTrue(r.stdoutText.contains(flag), "build --help lacks \(flag)")
        }
    }

    // MARK: Dynamic programs

    private func requireCompiler() throws -> String {
        let gcc = Harness.findOnPath("gcc")
        try Harness.require(gcc != nil, "gcc is needed to make dynamic test programs")
        return gcc!
    }

    private func compile(_ gcc: String, _ source: String, _ args: [String]) throws {
        try source.write(toFile: work + "/src.c", atomically: true, encoding: .utf8)
        let r = try Runner.run(gcc, ["-o"] + args + ["src.c"] + [], cwd: work, environment: nil, timeout: 60)
        XCTAssertEqual(r.status, 0, "gcc: \(r.stderrText)")
    }

    /// A DT_NEEDED library that exists nowhere: the build names it and who needs it.
    func testMissingLibraryIsABuildError() throws {
        let gcc = try requireCompiler()
        try "int foo(void) { return 7; }\n".write(toFile: work + "/foo.c", atomically: true, encoding: .utf8)
        var r = try Runner.run(gcc, ["-shared", "-fPIC", "-o", "libfoo.so", "foo.c"], cwd: work, environment: nil, timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderrText)
        try "int foo(void);\nint main(void) { return foo(); }\n".write(toFile: work + "/x.c", atomically: true, encoding: .utf8)
        r = try Runner.run(gcc, ["-o", "needsfoo", "x.c", "-L.", "-lfoo"], cwd: work, environment: nil, timeout: 60)
        XCTAssertEqual(r.status, 0, r.stderrText)
        try FileManager.default.removeItem(atPath: work + "/libfoo.so")

        assertOneErrorLine(try apus(["build", "./needsfoo"]), status: 1,
                           mentioning: ["libfoo.so", "needed by", "needsfoo"])
        assertOneErrorLine(try apus(["run", "./needsfoo"]), status: 125, mentioning: ["libfoo.so", "needed by"])
        XCTAssertEqual(storeFiles("names"), [])
        XCTAssertEqual(storeFiles("blobs"), [])
    }

    /// `apus run` of a dynamic program builds its image into the store once, then hits the
    /// cache; the image is listed without a name.
    func testDynamicProgramRunsFromAnImageBuiltOnTheFly() throws {
        try Harness.requirePlatform(vmm: "apus")
        let gcc = try requireCompiler()
        try compile(gcc, "#include <stdio.h>\nint main(int c, char **v) { printf(\"dynamic %s\\n\", c > 1 ? v[1] : \"-\"); return 3; }\n",
                    ["dyn"])
        var r = try apus(["run", "./dyn", "x"])
        XCTAssertEqual(r.status, 3, r.stderrText)
        XCTAssertEqual(r.stdoutText, "dynamic x\n", r.stderrText)
        let blobs = storeFiles("blobs")
        XCTAssertEqual(blobs.count, 1)
        r = try apus(["run", "./dyn", "--", "y"])
        XCTAssertEqual(r.stdoutText, "dynamic y\n", "\"--\" after PROGRAM separates: \(r.stderrText)")
        XCTAssertEqual(storeFiles("blobs"), blobs, "the second run hits the cache")
        r = try apus(["images"])
        XCTAssertTrue(r.stdoutText.contains("<none>"), r.stdoutText)
        r = try apus(["build", "-t", "dynimg", "./dyn"])
        XCTAssertTrue(r.stdoutText.contains("cache hit"), r.stdoutText)
        r = try apus(["inspect", "dynimg"])
        XCTAssertTrue(r.stdoutText.contains("Interpreter: /lib64/ld-linux-x86-64.so.2"), r.stdoutText)
        XCTAssertTrue(r.stdoutText.contains("libc.so.6 → "), r.stdoutText)
    }

    // MARK: QEMU

    func testStoreImageUnderQEMU() throws {
        try Harness.requirePlatform(vmm: "qemu")
        XCTAssertEqual(try apus(["build", "-t", "hi", Harness.guestPath("hello.musl")]).status, 0)
        let r = try apus(["run", "--vmm", "qemu", "hi"], timeout: Harness.timeout(vmm: "qemu"))
        XCTAssertEqual(r.status, 0, r.stderrText)
        XCTAssertEqual(r.stdoutText, "Hello from Apus!\n")
    }
}
