// The network cases, written once and run per VMM by ApusVMMTests and QEMUTests (the
// tap-device cases, apus VMM and root only, are in NetworkTapTests.swift). Helpers and the
// rules every case keeps are in NetworkSupport.swift: traffic only to 127.0.0.1, ports
// chosen at run time, bounded load, every server stopped at the end.
//
// Guest side: the user network (default) puts the guest at 10.0.2.15 with the host's
// 127.0.0.1 at 10.0.2.2; `-p [HOST_IP:]HOST_PORT:GUEST_PORT` publishes a guest port on the
// host (127.0.0.1 by default). QEMU runs get the same addresses from QEMU's user network.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

extension VMMMatrix {
    // MARK: Sockets inside the VM

    /// sockets.c (TCP/UDP over loopback, AF_UNIX, poll/epoll, threads) identical to native,
    /// every variant, with the default network and with `--network none`.
    func netSockets() throws {
        for network in [nil, "none"] {
            for variant in Harness.variants {
                let flags = network.map { ["--network", $0] } ?? []
                try differential(Invocation(program: "./sockets.\(variant)", apusFlags: flags), expectStatus: 0)
            }
        }
    }

    // MARK: Outbound: the guest connects to a server on the host

    /// A host HTTP server on 127.0.0.1:<free>, reached from the guest as 10.0.2.2:<port>:
    /// busybox wget gets a small file, fetch.c a 5 MB body byte for byte (every variant, the
    /// dynamic one included); both again through a name from an /etc/hosts given with -v.
    /// A closed port and `--network none` fail the way a client reports it, never a hang.
    /// `--network user,…` policies: without host loopback, or without outbound, the guest's
    /// fetch of a host server through 10.0.2.2 fails and the server sees nothing; by default
    /// it works (netOutbound). QEMU takes outbound=off (slirp's restrict=on) and refuses
    /// host-loopback=off alone.
    func netPolicy() throws {
        let server = try HostTCPServer.http(files: ["/small.txt": Data("hello\n".utf8)])
        defer { server.stop() }
        var policies = ["user,outbound=off", "user,host-loopback=off,outbound=off"]
        if vmm == "apus" { policies.append("user,host-loopback=off") }
        for policy in policies {
            guard let r = try apusOnly(Invocation(program: "./fetch.musl", args: ["get", "10.0.2.2", String(server.port), "/small.txt"],
                                                  apusFlags: ["--network", policy])) else { continue }
            XCTAssertNotEqual(r.status, 0, "[\(vmm)] --network \(policy): the fetch of the host's loopback succeeded\n\(r.stdoutText)")
            XCTAssertEqual(r.stdoutText, "", "[\(vmm)] --network \(policy)")
        }
        XCTAssertTrue(server.records.isEmpty, "[\(vmm)] the host server saw requests: \(server.records)")
        if vmm == "qemu", let r = try apusOnly(Invocation(program: "./hello.musl", apusFlags: ["--network", "user,host-loopback=off"])) {
            XCTAssertEqual(r.status, 125, "[qemu] host-loopback=off alone must be refused\n\(r.stderrText)")
            XCTAssertTrue(r.stderrText.hasPrefix("apus: "), r.stderrText)
        }
    }

    func netOutbound() throws {
        guard let busybox = try requireBusybox() else { return }
        let small = Data("hello from the host\n".utf8)
        let big = Net.patternData(count: 5_000_000, from: 12345)
        let server = try HostTCPServer.http(files: ["/small.txt": small, "/big.bin": big, "/1mb.bin": big.prefix(1 << 20)])
        defer { server.stop() }
        let port = String(server.port)

        // busybox wget, by address.
        if let r = try apusOnly(Invocation(program: busybox, args: ["wget", "-q", "-O", "-", "http://10.0.2.2:\(port)/small.txt"])) {
            XCTAssertEqual(r.status, 0, "[\(vmm)] busybox wget 10.0.2.2: status\n\(r.stderrText)")
            XCTAssertEqual(r.stdout, small, "[\(vmm)] busybox wget 10.0.2.2: body\nstderr: \(r.stderrText)")
        }
        // fetch.c, 5 MB, every variant (QEMU, whose guest receives slowly: 5 MB for musl, 1 MB
        // for the others).
        for variant in Harness.variants {
            let path = vmm == "qemu" && variant != "musl" ? "/1mb.bin" : "/big.bin"
            let expected = path == "/big.bin" ? big : big.prefix(1 << 20)
            guard let r = try apusOnly(Invocation(program: "./fetch.\(variant)", args: ["get", "10.0.2.2", port, path])) else { continue }
            let what = "[\(vmm)] fetch.\(variant) get 10.0.2.2:\(port)\(path)"
            XCTAssertEqual(r.status, 0, "\(what): status\nstderr: \(r.stderrText)")
            if let d = Compare.difference(expected, r.stdout, expectedName: "served", actualName: "received") {
                XCTFail("\(what): body differs: \(d.prefix(600))\nstderr: \(r.stderrText)")
            }
        }
        XCTAssertTrue(server.records.contains("GET /small.txt HTTP/1.1") || server.records.contains("GET /small.txt HTTP/1.0"),
                      "[\(vmm)] the host server never saw busybox's request: \(server.records)")

        // Through a name: an /etc/hosts mapping hostbox.apus.test to the host.
        let dir = try scratchDirectory("net-hosts")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("127.0.0.1 localhost\n10.0.2.2 hostbox.apus.test hostbox\n".utf8).write(to: URL(fileURLWithPath: dir + "/hosts"))
        let hosts = ["-v", "\(dir)/hosts:/etc/hosts"]
        if let r = try apusOnly(Invocation(program: busybox, args: ["wget", "-q", "-O", "-", "http://hostbox.apus.test:\(port)/small.txt"],
                                           apusFlags: hosts)) {
            XCTAssertEqual(r.status, 0, "[\(vmm)] busybox wget hostbox.apus.test: status\n\(r.stderrText)")
            XCTAssertEqual(r.stdout, small, "[\(vmm)] busybox wget hostbox.apus.test: body\nstderr: \(r.stderrText)")
        }
        for variant in ["musl", "glibc"] {
            guard let r = try apusOnly(Invocation(program: "./fetch.\(variant)", args: ["get", "hostbox", port, "/small.txt"],
                                                  apusFlags: hosts)) else { continue }
            XCTAssertEqual(r.status, 0, "[\(vmm)] fetch.\(variant) get hostbox: status\n\(r.stderrText)")
            XCTAssertEqual(r.stdout, small, "[\(vmm)] fetch.\(variant) get hostbox: body\nstderr: \(r.stderrText)")
        }

        // What the guest is given: resolv.conf, and an /etc/hosts with localhost.
        if let r = try apusOnly(Invocation(program: busybox, args: ["cat", "/etc/resolv.conf", "/etc/hosts"])) {
            XCTAssertEqual(r.status, 0, "[\(vmm)] cat /etc/resolv.conf /etc/hosts: \(r.stderrText)")
            XCTAssertTrue(r.stdoutText.contains("nameserver 10.0.2.3"), "[\(vmm)] /etc/resolv.conf:\n\(r.stdoutText)")
            XCTAssertNotNil(r.stdoutText.range(of: #"(?m)^127\.0\.0\.1\s+localhost"#, options: .regularExpression),
                            "[\(vmm)] /etc/hosts lacks localhost:\n\(r.stdoutText)")
        }

        // Failures are reported to the program, not hung: a port nobody listens on, no network.
        let closed = try Net.freePort()
        if let r = try apusOnly(Invocation(program: "./fetch.musl", args: ["get", "10.0.2.2", String(closed), "/"])) {
            XCTAssertEqual(r.status, 1, "[\(vmm)] fetch from a closed host port: status\nstdout: \(r.stdoutText)\nstderr: \(r.stderrText)")
            XCTAssertTrue(r.stdout.isEmpty, "[\(vmm)] fetch from a closed host port printed a body: \(r.stdoutText)")
            // As on Linux (and QEMU's user network): connect() itself fails, ECONNREFUSED.
            XCTAssertTrue(r.stderrText.contains("fetch: connect: Connection refused"),
                          "[\(vmm)] connect() to a closed host port must fail with ECONNREFUSED: \(r.stderrText)")
        }
        if let r = try apusOnly(Invocation(program: "./fetch.musl", args: ["get", "10.0.2.2", port, "/small.txt"],
                                           apusFlags: ["--network", "none"])) {
            XCTAssertEqual(r.status, 1, "[\(vmm)] --network none: fetch must fail\nstdout: \(r.stdoutText)\nstderr: \(r.stderrText)")
            XCTAssertTrue(r.stderrText.contains("fetch: connect: Network") && r.stderrText.contains("unreachable"),
                          "[\(vmm)] --network none: expected ENETUNREACH from connect: \(r.stderrText)")
        }
    }

    /// A dynamically linked client (fetch.gcc: its image, built on the fly, has an
    /// /etc/hosts of its own) with `-v HOSTS:/etc/hosts`: the volume's file is the one the
    /// resolver reads, and the name it maps reaches the host.
    func netHostsVolumeOverImage() throws {
        let server = try HostTCPServer.http(files: ["/small.txt": Data("hello by name\n".utf8)])
        defer { server.stop() }
        let dir = try scratchDirectory("net-hosts-image")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("127.0.0.1 localhost\n10.0.2.2 hostbox.apus.test hostbox\n".utf8).write(to: URL(fileURLWithPath: dir + "/hosts"))
        guard let r = try apusOnly(Invocation(program: "./fetch.gcc", args: ["get", "hostbox.apus.test", String(server.port), "/small.txt"],
                                              apusFlags: ["-v", "\(dir)/hosts:/etc/hosts"])) else { return }
        XCTAssertEqual(r.status, 0, "[\(vmm)] fetch.gcc (dynamic) with -v HOSTS:/etc/hosts: status\n\(r.stderrText)")
        XCTAssertEqual(r.stdoutText, "hello by name\n", "[\(vmm)] fetch.gcc (dynamic) with -v HOSTS:/etc/hosts\nstderr: \(r.stderrText)")
    }

    /// Bulk TCP both ways through the user network: the guest sends 8 MiB (QEMU: 2 MiB) to a
    /// host sink that checks every byte, and reads as much from a host source, checking
    /// every byte too.
    func netBulk() throws {
        let mib = vmm == "qemu" ? 2 : 8
        let limit = ["--timeout", vmm == "qemu" ? "60" : "15"]
        let sink = try HostTCPServer.sink()
        defer { sink.stop() }
        let source = try HostTCPServer.source(count: mib << 20)
        defer { source.stop() }
        for variant in ["musl", "glibc"] {
            if let r = try apusOnly(Invocation(program: "./fetch.\(variant)", args: ["send", "10.0.2.2", String(sink.port), String(mib)],
                                               apusFlags: limit)) {
                let what = "[\(vmm)] fetch.\(variant) send \(mib) MiB to the host"
                XCTAssertEqual(r.status, 0, "\(what): status\nstderr: \(r.stderrText)")
                XCTAssertEqual(r.stdoutText, "host received \(mib << 20) bytes, pattern ok\n", "\(what)\nstderr: \(r.stderrText)")
            }
            if let r = try apusOnly(Invocation(program: "./fetch.\(variant)", args: ["recv", "10.0.2.2", String(source.port)],
                                               apusFlags: limit)) {
                let what = "[\(vmm)] fetch.\(variant) recv \(mib) MiB from the host"
                XCTAssertEqual(r.status, 0, "\(what): status\nstderr: \(r.stderrText)")
                XCTAssertEqual(r.stdoutText, "received \(mib << 20) bytes, pattern ok\n", "\(what)\nstderr: \(r.stderrText)")
            }
        }
    }

    // MARK: Published ports

    /// httpd.go (Go net/http) under `apus run -p <free>:8080`: curl gets the index, a 16 MB
    /// body (byte for byte), posts 3 MB (SHA-256 echoed), runs 20 keep-alive requests on one
    /// connection, 8 slow requests in parallel (they must overlap) and 24 parallel downloads;
    /// then /quit?code=7 stops the server: apus exits 7 and the host port is closed again.
    func netPublishedHTTP() throws {
        let curl = try requireTool("curl", package: "curl")
        guard Harness.isExecutableFile(Harness.guestPath("httpd.go")) else {
            try Harness.require(false, "httpd.go not built (Tests/Guests/build.sh builds it with go)")
            return
        }
        let port = try Net.freePort()
        let server = try startApus(["-p", "\(port):8080"], "./httpd.go")
        defer { server.stop() }
        let base = "http://127.0.0.1:\(port)"
        guard server.waitForOutput("listening on :8080", timeout: clientTimeout) else {
            XCTFail("[\(vmm)] httpd.go did not start listening\n\(server.report)")
            return
        }
        // The guest listens; the first request may still race the VMM's relay: retry briefly.
        var index = try client(curl, ["-sS", "--max-time", "10", "\(base)/"])
        for _ in 0..<20 where index.status != 0 {
            usleep(100_000)
            index = try client(curl, ["-sS", "--max-time", "10", "\(base)/"])
        }
        XCTAssertEqual(index.status, 0, "[\(vmm)] curl /: \(index.stderrText)\n\(server.report)")
        XCTAssertEqual(index.stdoutText, "hello from httpd\n", "[\(vmm)] curl /")

        // A large body, byte for byte.
        let bigCount = 16 << 20
        let big = try client(curl, ["-sS", "--max-time", "60", "\(base)/bytes?n=\(bigCount)"], timeout: 90)
        XCTAssertEqual(big.status, 0, "[\(vmm)] curl 16 MiB: \(big.stderrText)")
        if let d = Compare.difference(Net.patternData(count: bigCount), big.stdout, expectedName: "expected", actualName: "received") {
            XCTFail("[\(vmm)] curl 16 MiB: body differs: \(d.prefix(600))")
        }

        // An upload: the guest hashes it.
        let dir = try scratchDirectory("net-httpd")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let upload = Net.patternData(count: 3_000_000, from: 777)
        try upload.write(to: URL(fileURLWithPath: dir + "/upload.bin"))
        let sha = try Runner.run("/usr/bin/env", ["sha256sum", dir + "/upload.bin"], cwd: dir, environment: nil, timeout: 30)
            .stdoutText.split(separator: " ").first.map(String.init) ?? "?"
        let post = try client(curl, ["-sS", "--max-time", "60", "--data-binary", "@\(dir)/upload.bin", "\(base)/sha256"], timeout: 90)
        XCTAssertEqual(post.status, 0, "[\(vmm)] curl POST 3 MB: \(post.stderrText)")
        XCTAssertEqual(post.stdoutText, "\(sha) 3000000\n", "[\(vmm)] the guest's SHA-256 of the upload")

        // Keep-alive: 20 requests on one connection.
        let many = try client(curl, ["-sS", "--max-time", "30"] + Array(repeating: "\(base)/", count: 20))
        XCTAssertEqual(many.status, 0, "[\(vmm)] 20 keep-alive requests: \(many.stderrText)")
        XCTAssertEqual(many.stdoutText, String(repeating: "hello from httpd\n", count: 20), "[\(vmm)] 20 keep-alive requests")

        // Parallel: 8 requests that each take 1 s must overlap.
        let started = Date()
        let slow = try client(curl, ["-sS", "--max-time", "30", "--parallel", "--parallel-max", "8", "-w", "%{http_code}\\n"]
                                + (0..<8).flatMap { _ in ["\(base)/slow?ms=1000", "-o", "/dev/null"] })
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(slow.status, 0, "[\(vmm)] 8 parallel slow requests: \(slow.stderrText)")
        XCTAssertEqual(slow.stdoutText, String(repeating: "200\n", count: 8), "[\(vmm)] 8 parallel slow requests: statuses")
        XCTAssertLessThan(elapsed, 6, "[\(vmm)] 8 parallel 1-second requests took \(elapsed) s: they did not overlap")

        // Parallel downloads: 24 × 200 kB, 12 at a time, every status and size right.
        let par = try client(curl, ["-sS", "--max-time", "60", "--parallel", "--parallel-max", "12", "-w", "%{http_code} %{size_download}\\n"]
                               + (0..<24).flatMap { _ in ["\(base)/bytes?n=200000", "-o", "/dev/null"] }, timeout: 90)
        XCTAssertEqual(par.status, 0, "[\(vmm)] 24 parallel downloads: \(par.stderrText)")
        XCTAssertEqual(par.stdoutText, String(repeating: "200 200000\n", count: 24), "[\(vmm)] 24 parallel downloads")

        // Stop: the program exits 7, apus with it, and the port is free again.
        let quit = try client(curl, ["-sS", "--max-time", "10", "\(base)/quit?code=7"])
        XCTAssertEqual(quit.stdoutText, "bye\n", "[\(vmm)] /quit: \(quit.stderrText)")
        let status = server.waitExit(timeout: clientTimeout)
        XCTAssertEqual(status, 7, "[\(vmm)] apus's exit status after /quit?code=7\n\(server.report)")
        XCTAssertTrue(server.stdoutText.hasSuffix("exiting 7\n"), "[\(vmm)] httpd's last words\n\(server.report)")
        if status != nil {
            XCTAssertFalse(Net.canConnect(port: port), "[\(vmm)] 127.0.0.1:\(port) still accepts connections after apus exited")
        }
    }

    /// A server VM stopped from outside: SIGTERM to apus (its pid only, as `kill PID` or a
    /// supervisor would) ends the VM: apus exits within 10 s, leaves no process behind (QEMU
    /// included) and the published port is closed.
    func netStopBySignal() throws {
        guard Harness.isExecutableFile(Harness.guestPath("httpd.go")) else {
            try Harness.require(false, "httpd.go not built (Tests/Guests/build.sh builds it with go)")
            return
        }
        let port = try Net.freePort()
        let server = try startApus(["-p", "\(port):8080"], "./httpd.go")
        defer { server.stop() }
        guard server.waitForOutput("listening on :8080", timeout: clientTimeout) else {
            XCTFail("[\(vmm)] httpd.go did not start listening\n\(server.report)")
            return
        }
        XCTAssertTrue(Net.canConnect(port: port), "[\(vmm)] 127.0.0.1:\(port) is not open while the VM runs")
        let before = BackgroundProcess.descendants(of: server.pid)
        defer { for pid in before where BackgroundProcess.parentAndName(pid) != nil { kill(pid, SIGKILL) } }
        kill(server.pid, SIGTERM)
        // apus itself: gone (or a zombie) — Foundation may report the exit only once every
        // holder of its output pipes is gone, so /proc is asked, not the Process.
        let apusGone = server.wait(timeout: 10) { BackgroundProcess.parentAndName(server.pid) == nil }
        let status = server.status
        XCTAssertTrue(apusGone, "[\(vmm)] apus still runs 10 s after SIGTERM\n\(server.report)")
        usleep(1_000_000)
        let left = before.compactMap { pid in BackgroundProcess.parentAndName(pid).map { "\(pid) \($0.1)" } }
        XCTAssertEqual(left, [], "[\(vmm)] processes apus started outlive it after SIGTERM (status \(status.map(String.init) ?? "none"))")
        XCTAssertFalse(Net.canConnect(port: port), "[\(vmm)] 127.0.0.1:\(port) still accepts connections after apus got SIGTERM")
    }

    // MARK: redis-server (Debian's, dynamic: its image is built on the fly)

    /// `apus run -p <free>:6379 /usr/bin/redis-server --save '' --protected-mode no
    /// --bind 0.0.0.0`: redis-cli PING/SET/GET/INCR and a 1 MB value, a short
    /// redis-benchmark (GET, SET) that completes with no error, then SHUTDOWN: apus exits 0.
    func netRedis() throws {
        try runRedis(bindAll: true)
    }

    /// The same with redis's default binds (`* -::*`: 0.0.0.0 and, with IPV6_V6ONLY, ::):
    /// redis must start and answer.
    func netRedisDefaultBind() throws {
        try runRedis(bindAll: false, benchmark: false)
    }

    private func runRedis(bindAll: Bool, benchmark: Bool = true) throws {
        guard let redisServer = try requireProgram("/usr/bin/redis-server", package: "redis-server") else { return }
        let cli = try requireTool("redis-cli", package: "redis-tools")
        let bench = try requireTool("redis-benchmark", package: "redis-tools")
        let port = try Net.freePort()
        let args = ["--save", "", "--protected-mode", "no"] + (bindAll ? ["--bind", "0.0.0.0"] : [])
        let server = try startApus(["-p", "\(port):6379"], redisServer, args)
        defer { server.stop() }
        let what = "[\(vmm)] redis-server \(args.joined(separator: " "))"
        guard server.waitForOutput("Ready to accept connections", timeout: vmm == "qemu" ? 120 : 60) else {
            XCTFail("\(what) did not get ready\n\(server.report)")
            return
        }
        func redis(_ args: String..., stdin: Data? = nil) throws -> String {
            let r = try client(cli, ["-p", String(port)] + args, stdin: stdin)
            XCTAssertEqual(r.status, 0, "\(what): redis-cli \(args.joined(separator: " ")): \(r.stderrText)")
            return r.stdoutText
        }
        XCTAssertEqual(try redis("PING"), "PONG\n", what)
        XCTAssertEqual(try redis("SET", "greeting", "hello apus"), "OK\n", what)
        XCTAssertEqual(try redis("GET", "greeting"), "hello apus\n", what)
        XCTAssertEqual(try redis("INCR", "counter"), "1\n", what)
        XCTAssertEqual(try redis("INCR", "counter"), "2\n", what)
        XCTAssertEqual(try redis("INCRBY", "counter", "40"), "42\n", what)
        // A 1 MB value in and out (redis-cli -x takes the last argument from stdin).
        let value = String(repeating: "0123456789abcdef", count: 65536)
        XCTAssertEqual(try redis("-x", "SET", "big", stdin: Data(value.utf8)), "OK\n", what)
        XCTAssertEqual(try redis("STRLEN", "big"), "1048576\n", what)
        XCTAssertEqual(try redis("GET", "big"), value + "\n", "\(what): GET of the 1 MB value")

        if benchmark {
            // Bounded: 20000 requests per test from 50 clients, at most 60 s. QEMU (emulated):
            // 3000 requests from 4 clients — with 20 or more at once a connection there can
            // stall for seconds to minutes (seen in CI and by hand, not yet understood; the
            // apus VMM does not show it), which is an open bug, not something to wait out.
            let (n, clients) = vmm == "qemu" ? (3000, 4) : (20000, 50)
            let r = try client(bench, ["-p", String(port), "-n", String(n), "-c", String(clients), "-t", "get,set", "--csv"], timeout: 60)
            XCTAssertFalse(r.timedOut, "\(what): redis-benchmark -n \(n) did not finish within 60 s (stalled)\n\(server.report)")
            XCTAssertEqual(r.status, 0, "\(what): redis-benchmark: \(r.stderrText)")
            let rows = r.stdoutText.split(separator: "\n").filter { $0.hasPrefix("\"SET\"") || $0.hasPrefix("\"GET\"") }
            XCTAssertEqual(rows.count, 2, "\(what): redis-benchmark --csv lacks its GET and SET rows:\n\(r.stdoutText)\n\(r.stderrText)")
            for row in rows {
                let rps = Double(row.split(separator: ",")[1].replacingOccurrences(of: "\"", with: "")) ?? 0
                XCTAssertGreaterThan(rps, 0, "\(what): \(row)")
            }
            XCTAssertFalse(r.stderrText.lowercased().contains("error"), "\(what): redis-benchmark errors: \(r.stderrText)")
            XCTAssertEqual(try redis("DBSIZE"), "4\n", "\(what): keys after the benchmark (greeting, counter, big, key:__rand_int__)")
        }

        _ = try? client(cli, ["-p", String(port), "SHUTDOWN", "NOSAVE"])
        XCTAssertEqual(server.waitExit(timeout: clientTimeout), 0, "\(what): apus's exit status after SHUTDOWN\n\(server.report)")
        XCTAssertTrue(server.stdoutText.contains("ready to exit, bye bye"), "\(what): redis's own shutdown message\n\(server.report)")
    }

    // MARK: nginx (Debian's, in an image from `apus build`)

    /// nginx from an image made by `apus build` (the binary, an nginx.conf written here,
    /// mime.types, a document root with an index page and a 1 MB file, /var/lib/nginx),
    /// run with `-g 'daemon off; master_process off;'` and -p: curl gets both files byte for
    /// byte and a 3-second wrk run has no socket errors and no non-2xx answers.
    func netNginx() throws {
        guard let nginx = try requireProgram("/usr/sbin/nginx", package: "nginx-light") else { return }
        let curl = try requireTool("curl", package: "curl")
        let wrk = try requireTool("wrk", package: "wrk")
        let dir = try scratchDirectory("net-nginx")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        for sub in ["conf", "html", "lib"] { try fm.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true) }
        try """
            user root;
            worker_processes 1;
            error_log stderr;
            pid /tmp/nginx.pid;
            events { worker_connections 512; }
            http {
                include /etc/nginx/mime.types;
                default_type application/octet-stream;
                access_log off;
                sendfile on;
                keepalive_requests 100000;
                server {
                    listen 8080;
                    root /srv/www;
                }
            }

            """.write(toFile: "\(dir)/conf/nginx.conf", atomically: true, encoding: .utf8)
        if fm.fileExists(atPath: "/etc/nginx/mime.types") {
            try fm.copyItem(atPath: "/etc/nginx/mime.types", toPath: "\(dir)/conf/mime.types")
        } else {
            try "types { text/html html; }\n".write(toFile: "\(dir)/conf/mime.types", atomically: true, encoding: .utf8)
        }
        let index = Data("<!doctype html><title>apus</title><h1>nginx in apus</h1>\n".utf8)
        let file = Net.patternData(count: 1 << 20, from: 99)
        try index.write(to: URL(fileURLWithPath: "\(dir)/html/index.html"))
        try file.write(to: URL(fileURLWithPath: "\(dir)/html/one-mb.bin"))

        let image = "nginx-net-\(vmm)"
        let build = try apusCommand(["build", "-t", image, nginx, "--add", "\(dir)/conf:/etc/nginx", "--add", "\(dir)/html:/srv/www",
                                     "--add", "\(dir)/lib:/var/lib/nginx", "--", "-g", "daemon off; master_process off;"])
        XCTAssertEqual(build.status, 0, "[\(vmm)] apus build of nginx: \(build.stderrText)")
        guard build.status == 0 else { return }

        let port = try Net.freePort()
        let server = try startApus(["-p", "\(port):8080"], image)
        defer { server.stop() }
        let base = "http://127.0.0.1:\(port)"
        var got = try client(curl, ["-sS", "--max-time", "3", "\(base)/"])
        let deadline = Date().addingTimeInterval(vmm == "qemu" ? 60 : 20)
        while got.status != 0 && server.isRunning && Date() < deadline {
            usleep(100_000)
            got = try client(curl, ["-sS", "--max-time", "3", "\(base)/"])
        }
        // epoll_ctl(ADD) of a reused descriptor number once failed with EEXIST (close() left
        // the old interest behind): nginx then fails every connection.
        XCTAssertFalse(server.stderrText.contains("(17: File exists)"), "[\(vmm)] nginx: \(server.report)")
        XCTAssertEqual(got.status, 0, "[\(vmm)] nginx: curl /: \(got.stderrText)\n\(server.report)")
        XCTAssertEqual(got.stdout, index, "[\(vmm)] nginx: the index page\n\(server.report)")
        let one = try client(curl, ["-sS", "--max-time", "30", "\(base)/one-mb.bin"], timeout: 60)
        XCTAssertEqual(one.status, 0, "[\(vmm)] nginx: curl 1 MB: \(one.stderrText)")
        if let d = Compare.difference(file, one.stdout, expectedName: "file", actualName: "received") {
            XCTFail("[\(vmm)] nginx: the 1 MB file differs: \(d.prefix(600))")
        }
        let missing = try client(curl, ["-s", "-o", "/dev/null", "-w", "%{http_code}", "\(base)/no-such-file"])
        XCTAssertEqual(missing.stdoutText, "404", "[\(vmm)] nginx: a missing file")

        // 3 seconds of load, bounded by wrk's own duration.
        let load = try client(wrk, ["-t", "2", "-c", "16", "-d", "3s", "--timeout", "2s", "\(base)/"], timeout: 30)
        XCTAssertEqual(load.status, 0, "[\(vmm)] wrk: \(load.stderrText)")
        XCTAssertFalse(load.stdoutText.contains("Socket errors"), "[\(vmm)] wrk reported socket errors:\n\(load.stdoutText)\n\(server.report)")
        XCTAssertFalse(load.stdoutText.contains("Non-2xx"), "[\(vmm)] wrk reported non-2xx answers:\n\(load.stdoutText)")
        let requests = load.stdoutText.range(of: #"(\d+) requests in"#, options: .regularExpression)
            .flatMap { Int(load.stdoutText[$0].split(separator: " ")[0]) } ?? 0
        XCTAssertGreaterThan(requests, 100, "[\(vmm)] wrk: too few requests:\n\(load.stdoutText)")
        XCTAssertTrue(server.isRunning, "[\(vmm)] nginx exited during the test\n\(server.report)")
        XCTAssertFalse(server.stderrText.contains("[alert]") || server.stderrText.contains("[emerg]"),
                       "[\(vmm)] nginx logged alerts:\n\(server.report)")
    }

    // MARK: -p errors

    /// A host port already in use: apus exits 125 naming the port, and the program never
    /// runs. Bad `-p` values and `--network none -p` are refused before anything boots.
    func netPublishErrors() throws {
        let (fd, busy) = try Net.listen(port: 0)
        defer { close(fd) }
        if let r = try apusOnly(Invocation(program: "./hello.musl", apusFlags: ["-p", "\(busy):8080"])) {
            let what = "[\(vmm)] -p \(busy):8080 with 127.0.0.1:\(busy) in use"
            XCTAssertEqual(r.status, 125, "\(what): status\nstderr: \(r.stderrText)")
            XCTAssertTrue(r.stderrText.contains(String(busy)), "\(what): the message does not name the port: \(r.stderrText)")
            XCTAssertTrue(r.stderrText.hasPrefix("apus: "), "\(what): not one apus: line: \(r.stderrText)")
            XCTAssertFalse(r.stdoutText.contains("Hello"), "\(what): the program ran")
        }
        let bad = ["abc", "8080", "70000:80", "8080:0", "0:80", "8080:80/sctp", "1.2.3:80:80", "127.0.0.1:8080:80:90", ":80", "8080:"]
        for spec in bad {
            guard let r = try apusOnly(Invocation(program: "./hello.musl", apusFlags: ["-p", spec])) else { continue }
            let what = "[\(vmm)] -p \(spec)"
            XCTAssertNotEqual(r.status, 0, "\(what) must be refused")
            XCTAssertTrue(r.stderrText.contains("-p \(spec)"), "\(what): the message does not quote the value: \(r.stderrText)")
            XCTAssertFalse(r.stdoutText.contains("Hello"), "\(what): the program ran")
        }
        let free = try Net.freePort()
        if let r = try apusOnly(Invocation(program: "./hello.musl", apusFlags: ["--network", "none", "-p", "\(free):80"])) {
            XCTAssertNotEqual(r.status, 0, "[\(vmm)] --network none -p must be refused")
            XCTAssertTrue(r.stderrText.contains("-p") && r.stderrText.contains("none"), "[\(vmm)] --network none -p: \(r.stderrText)")
            XCTAssertFalse(r.stdoutText.contains("Hello"), "[\(vmm)] --network none -p: the program ran")
        }
        if let r = try apusOnly(Invocation(program: "./hello.musl", apusFlags: ["--network", "bogus"])) {
            XCTAssertNotEqual(r.status, 0, "[\(vmm)] --network bogus must be refused")
            XCTAssertTrue(r.stderrText.contains("bogus"), "[\(vmm)] --network bogus: \(r.stderrText)")
        }
        // A valid -p on a free port with a program that exits at once: it runs and apus frees the port.
        if let r = try apusOnly(Invocation(program: "./hello.musl", apusFlags: ["-p", "\(free):80", "-p", "127.0.0.1:\(free):81/udp"])) {
            XCTAssertEqual(r.status, 0, "[\(vmm)] -p \(free):80 with hello: \(r.stderrText)")
            XCTAssertEqual(r.stdoutText, "Hello from Apus!\n", "[\(vmm)] -p \(free):80 with hello")
            XCTAssertFalse(Net.canConnect(port: free), "[\(vmm)] 127.0.0.1:\(free) still open after apus exited")
        }
    }
}
