// Programs users already have, unmodified: Debian's dynamically linked python3, sqlite3 and
// node, and a Swift program built with `swift build`. Each runs natively and in Apus (an
// image built by `apus build`, or on the fly by `apus run`) with identical stdout and exit
// status. stderr is not compared: Apus names the syscalls it lacks there (socket, for
// glibc's nscd probe) and the program's own stderr is empty in these cases.

import Foundation
import XCTest

extension VMMMatrix {
    /// The host program at `path`: nil (after failing the test) when it is missing in CI, a
    /// skip elsewhere.
    func requireProgram(_ path: String, package: String) throws -> String? {
        guard Harness.isExecutableFile(path) else {
            if Harness.isCI {
                XCTFail("\(path) is missing: scripts/setup.sh installs \(package)")
                return nil
            }
            throw XCTSkip("\(path) is missing (apt-get install \(package))")
        }
        return path
    }

    /// A scratch directory on the host whose path the image also has (files added at the
    /// same path), so native and Apus runs read the same paths.
    func scratchDirectory(_ name: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("apus-\(name)-\(getpid())-\(vmm)").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// `apus ARGS` with the integration store.
    func apusCommand(_ args: [String], timeout: TimeInterval = 120) throws -> RunResult {
        try Runner.run(Harness.apusBinary, args, cwd: Harness.guestsDir, environment: Harness.apusEnvironment,
                       timeout: timeout)
    }

    /// python3 from Debian: the acceptance one-liner, then a script that reads files, runs
    /// threads and uses `time` and a seeded `random`, in an image built with the standard
    /// library added.
    func python() throws {
        guard let python = try requireProgram("/usr/bin/python3", package: "python3") else { return }
        let version = try Runner.run(python, ["-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                                     cwd: "/", environment: [:], timeout: 30).stdoutText
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let dir = try scratchDirectory("python")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import hashlib, os, random, threading, time
            random.seed(7)
            data = open(os.path.join(os.path.dirname(__file__), "input.txt")).read().split()
            results = {}
            def work(i):
                results[i] = hashlib.sha256((data[i % len(data)] * (i + 1)).encode()).hexdigest()[:10]
            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            start = time.monotonic()
            for t in threads: t.start()
            for t in threads: t.join()
            time.sleep(0.01)
            print(sorted(results.items()))
            print(random.randint(1, 1000), random.choice(data), round(random.random(), 6))
            print("elapsed is positive:", time.monotonic() - start > 0, "time is sane:", time.time() > 1.7e9)
            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: dir + "/script.py"))
        try Data("apus runs python unchanged\n".utf8).write(to: URL(fileURLWithPath: dir + "/input.txt"))
        let image = "py-\(vmm)"
        let build = try apusCommand(["build", "-t", image, python, "--add", "/usr/lib/python\(version)", "--add", dir])
        XCTAssertEqual(build.status, 0, "[\(vmm)] apus build of python3: \(build.stderrText)")
        guard build.status == 0 else { return }

        let oneLiner = "import json,hashlib,sqlite3,threading; print(json.dumps({'sha': hashlib.sha256(b'apus').hexdigest()[:16], 'sqlite': sqlite3.sqlite_version, 'threads': threading.active_count()}))"
        try compareWithImage(native: [python, "-c", oneLiner], image: image, args: ["-c", oneLiner])
        try compareWithImage(native: [python, dir + "/script.py"], image: image, args: [dir + "/script.py"])
    }

    /// sqlite3 from Debian, its image made on the fly by `apus run`: a SQL script on stdin
    /// creates, fills and queries a table in a database file under /tmp.
    func sqlite() throws {
        guard let sqlite = try requireProgram("/usr/bin/sqlite3", package: "sqlite3") else { return }
        let database = "/tmp/apus-sqlite-\(getpid())-\(vmm).db"
        defer { try? FileManager.default.removeItem(atPath: database) }
        let sql = """
            create table fruit(name text primary key, count integer);
            insert into fruit values ('apple', 3), ('banana', 5), ('cherry', 7);
            update fruit set count = count * 2 where name = 'banana';
            select name, count from fruit order by count desc;
            select sum(count), group_concat(name, '+') from fruit;
            select sqlite_version() is not null;
            """
        try? FileManager.default.removeItem(atPath: database)
        try differential(Invocation(program: sqlite, args: ["-batch", database], stdin: Data(sql.utf8)),
                         compareStderr: false, expectStatus: 0)
    }

    /// node (Debian's nodejs): a Promise chain, setTimeout and fs.readFileSync of a file the
    /// image holds at the same path as the host.
    func node() throws {
        guard let node = try requireProgram("/usr/bin/node", package: "nodejs") else { return }
        let dir = try scratchDirectory("node")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("read by node\n".utf8).write(to: URL(fileURLWithPath: dir + "/data.txt"))
        let js = """
            const fs = require('fs');
            Promise.resolve(20)
              .then(x => new Promise(r => setTimeout(() => r(x + 1), 20)))
              .then(x => x * 2)
              .then(x => console.log('result', x, fs.readFileSync('\(dir)/data.txt', 'utf8').trim()));
            setTimeout(() => console.log('timer first'), 1);
            """
        let image = "node-\(vmm)"
        let build = try apusCommand(["build", "-t", image, node, "--add", dir])
        XCTAssertEqual(build.status, 0, "[\(vmm)] apus build of node: \(build.stderrText)")
        guard build.status == 0 else { return }
        try compareWithImage(native: [node, "-e", js], image: image, args: ["-e", js], memory: "1G",
                             timeout: vmm == "qemu" ? 300 : 60)
    }

    /// A Swift command-line program (Tests/Guests/swift) built by `swift build -c release`,
    /// dynamically linked against the Swift runtime: its image is made on the fly.
    func swiftProgram() throws {
        let program = (Harness.guestsDir as NSString).appendingPathComponent("swifthello")
        guard Harness.isExecutableFile(program) else {
            if Harness.isCI { XCTFail("\(program) is missing: Tests/Guests/build.sh builds it with swift") ; return }
            throw XCTSkip("\(program) is missing (Tests/Guests/build.sh builds it)")
        }
        try differential(Invocation(program: "./swifthello", args: ["unikernel", "ünïcode"], apusFlags: ["-m", "512M"]),
                         compareStderr: false, expectStatus: 0)
    }

    /// Runs `native` on the host and `apus run -m MEMORY IMAGE ARGS`, comparing stdout and
    /// status.
    private func compareWithImage(native: [String], image: String, args: [String], memory: String = "512M",
                                  timeout: TimeInterval? = nil,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        let host = try Runner.run(native[0], Array(native.dropFirst()), cwd: "/", environment: [:], timeout: 60)
        let apus = try apusCommand(["run", "--vmm", vmm, "-m", memory, image] + args,
                                   timeout: timeout ?? Harness.timeout(vmm: vmm))
        let what = "[\(vmm)] \(native.map { $0.count > 60 ? String($0.prefix(57)) + "…" : $0 }.joined(separator: " "))"
        XCTAssertEqual(host.status, 0, "\(what): natively: \(host.stderrText)", file: file, line: line)
        XCTAssertEqual(apus.status, host.status, "\(what): status\napus stderr: \(apus.stderrText)", file: file, line: line)
        XCTAssertEqual(apus.stdoutText, host.stdoutText, "\(what): stdout\napus stderr: \(apus.stderrText)", file: file, line: line)
    }
}
