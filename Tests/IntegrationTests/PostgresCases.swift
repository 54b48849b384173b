// PostgreSQL from Debian, unmodified, in an image: root makes the data directory and hands
// it to the postgres user (uid 999); busybox su switches to that user for initdb and the
// server (PostgreSQL refuses to run as root and wants its directory owned, mode 0700).
// The server forks a backend per connection and background workers, shares memory between
// them (System V and POSIX shared memory) and synchronizes through futexes on it.

import Foundation
import XCTest

extension VMMMatrix {
    /// initdb, then postgres with -p; from the host: psql `select 1`, pgbench -i (scale 1)
    /// and a bounded pgbench run (4 clients × 100 transactions); every transaction pgbench
    /// reports is in pgbench_history afterwards.
    func postgres() throws {
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        guard let version = versions.sorted().last,
              let postgres = try requireProgram("/usr/lib/postgresql/\(version)/bin/postgres", package: "postgresql")
        else {
            try Harness.require(false, "PostgreSQL is missing: scripts/setup.sh installs postgresql")
            return
        }
        let psql = try requireTool("psql", package: "postgresql-client")
        let pgbench = try requireTool("pgbench", package: "postgresql-contrib")
        guard let busybox = try requireBusybox() else { return }
        let bin = "/usr/lib/postgresql/\(version)/bin"
        let dir = try scratchDirectory("postgres")
        let script = """
            #!/bin/sh
            set -e
            mkdir -p /var/lib/pg
            chown 999:999 /var/lib/pg
            su postgres -s /bin/sh -c "\(bin)/initdb -D /var/lib/pg/data -U postgres --auth=trust -E UTF8 --locale=C" > /tmp/initdb.log 2>&1 || { cat /tmp/initdb.log; exit 1; }
            echo "host all all 0.0.0.0/0 trust" >> /var/lib/pg/data/pg_hba.conf
            echo "initdb done"
            exec su postgres -s /bin/sh -c "exec \(bin)/postgres -D /var/lib/pg/data -c listen_addresses=0.0.0.0 -c unix_socket_directories=''"

            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: dir + "/start.sh"))
        chmod(dir + "/start.sh", 0o755)
        try Data("root:x:0:0:root:/root:/bin/sh\npostgres:x:999:999:PostgreSQL:/var/lib/pg:/bin/sh\n".utf8)
            .write(to: URL(fileURLWithPath: dir + "/passwd"))
        try Data("root:x:0:\npostgres:x:999:\n".utf8).write(to: URL(fileURLWithPath: dir + "/group"))
        // The libraries of postgres and initdb (busybox, the image's program, is static).
        var libraries = Set<String>()
        for program in [postgres, bin + "/initdb"] {
            let ldd = try Runner.run("/usr/bin/ldd", [program], cwd: dir, environment: nil, timeout: 30)
            for word in ldd.stdoutText.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
            where word.hasPrefix("/") { libraries.insert(String(word)) }
        }
        let image = "apus-test-postgres-\(vmm)"
        var build = ["build", "-t", image, busybox, "sh", "/start.sh", "--memory", "512M",
                     "--add", dir + "/start.sh:/start.sh", "--add", dir + "/passwd:/etc/passwd",
                     "--add", dir + "/group:/etc/group", "--add", busybox + ":/usr/bin/sh",
                     "--add", "/usr/lib/postgresql/\(version)", "--add", "/usr/share/postgresql/\(version)"]
        if FileManager.default.fileExists(atPath: "/usr/share/zoneinfo/UTC") { build += ["--add", "/usr/share/zoneinfo/UTC"] }
        for library in libraries.sorted() { build += ["--add", library] }
        let built = try apusCommand(build)
        XCTAssertEqual(built.status, 0, "[\(vmm)] apus build of PostgreSQL: \(built.stderrText)")
        guard built.status == 0 else { return }

        let port = try Net.freePort()
        let server = try startApus(["-p", "\(port):5432"], image)
        defer { server.stop() }
        let what = "[\(vmm)] postgres"
        guard server.waitForOutput("database system is ready to accept connections", timeout: vmm == "qemu" ? 240 : 90) else {
            XCTFail("\(what) did not get ready\n\(server.report)")
            return
        }
        let connection = ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres"]
        let one = try client(psql, connection + ["-tAc", "select 1", "postgres"])
        XCTAssertEqual(one.stdoutText, "1\n", "\(what): psql select 1: \(one.stderrText)\n\(server.report)")
        let initialize = try client(pgbench, connection + ["-i", "-s", "1", "postgres"], timeout: 120)
        XCTAssertEqual(initialize.status, 0, "\(what): pgbench -i: \(initialize.stderrText)\n\(server.report)")
        let run = try client(pgbench, connection + ["-c", "4", "-t", "100", "postgres"], timeout: 120)
        XCTAssertEqual(run.status, 0, "\(what): pgbench: \(run.stdoutText)\(run.stderrText)\n\(server.report)")
        XCTAssertTrue(run.stdoutText.contains("number of transactions actually processed: 400/400"),
                      "\(what): pgbench did not process 400 transactions:\n\(run.stdoutText)")
        let count = try client(psql, connection + ["-tAc", "select count(*) from pgbench_history", "postgres"])
        XCTAssertEqual(count.stdoutText, "400\n", "\(what): rows of pgbench_history (one per committed transaction)")
        // Each connection was a backend process; the server is pid 1 (exec'd through su).
        let processes = try client(psql, connection + ["-tAc", "select count(*) > 0 from pg_stat_activity where pid > 1", "postgres"])
        XCTAssertEqual(processes.stdoutText, "t\n", "\(what): backend processes other than pid 1")
    }
}
