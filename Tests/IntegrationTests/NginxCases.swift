// nginx as it ships: a master process and two worker processes (Debian's nginx-light, its
// stock nginx.conf with the changes a VM needs), serving through `-p`, then shut down
// gracefully by SIGQUIT to its master.
//
// A test on the host cannot signal a process inside the VM, so pid 1 is not nginx but
// Tests/Guests/signalport: it starts nginx as its child (nginx's master, pid 2), and when
// the host connects to its control port it sends the master SIGQUIT, waits for it, answers
// "exited N" and exits with the master's status, which is the VM's (`apus run` exits with
// pid 1's). So the graceful path is checked end to end: the master relays QUIT to its
// workers over their channels (socketpairs whose ends it passed with SCM_RIGHTS), each
// worker finishes and exits 0, the master reaps them (SIGCHLD, waitpid) and exits 0.

import Foundation
import XCTest

extension VMMMatrix {
    /// nginx's stock configuration (/etc/nginx/nginx.conf of nginx-common 1.22) with:
    /// `daemon off` and `master_process on` stated, `worker_processes 2`, `user root` (the
    /// image's only user: www-data does not exist there), the error log on stderr at notice
    /// level (the shutdown's steps are logged there), the pid file and temp paths in /tmp, no
    /// `include` of modules-enabled and sites-enabled (the one server is inline: a document root
    /// at /srv/www, which adds the answering worker's pid as `X-Worker`).
    static let nginxStockConfiguration = """
        user root;
        worker_processes 2;
        master_process on;
        daemon off;
        pid /tmp/nginx.pid;
        error_log stderr notice;

        events {
        \tworker_connections 768;
        }

        http {
        \tsendfile on;
        \ttcp_nopush on;
        \ttypes_hash_max_size 2048;
        \tinclude /etc/nginx/mime.types;
        \tdefault_type application/octet-stream;
        \taccess_log /var/log/nginx/access.log;
        \tgzip on;
        \tclient_body_temp_path /tmp/nginx-body;
        \tproxy_temp_path /tmp/nginx-proxy;
        \tfastcgi_temp_path /tmp/nginx-fastcgi;
        \tuwsgi_temp_path /tmp/nginx-uwsgi;
        \tscgi_temp_path /tmp/nginx-scgi;
        \tserver {
        \t\tlisten 8080;
        \t\troot /srv/www;
        \t\tadd_header X-Worker $pid;
        \t}
        }

        """

    /// `--add` arguments for `program`'s shared libraries other than libc and the loader (the
    /// image's entry program brings those): each at the host's real directory under its
    /// soname, from `ldd`.
    func libraryAdds(of program: String) throws -> [String] {
        let ldd = try Runner.run("/usr/bin/ldd", [program], cwd: "/", environment: nil, timeout: 30)
        guard ldd.status == 0 else { throw XCTSkip("ldd \(program) failed: \(ldd.stderrText)") }
        var adds: [String] = []
        for line in ldd.stdoutText.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard parts.count >= 3, parts[1] == "=>", parts[2].hasPrefix("/"),
                  !parts[0].hasPrefix("libc.so"), !parts[0].hasPrefix("ld-linux") else { continue }
            guard let resolved = realpath(parts[2], nil) else { continue }
            let real = String(cString: resolved)
            free(resolved)
            adds += ["--add", "\(real):\((real as NSString).deletingLastPathComponent)/\(parts[0])"]
        }
        return adds
    }

    /// nginx with a master and 2 workers under signalport: curl gets the index page, 2,000
    /// requests over 16 parallel connections all answer 200 with the page, each from one of
    /// the two workers the master started; wrk runs
    /// 2 s without socket errors or non-2xx answers; then the control port's SIGQUIT stops the
    /// master: the workers log their graceful exit, the master reaps both (exit code 0),
    /// signalport reports "exited 0", and apus exits 0.
    func netNginxMasterWorkers() throws {
        guard let nginx = try requireProgram("/usr/sbin/nginx", package: "nginx-light") else { return }
        let curl = try requireTool("curl", package: "curl")
        let wrk = try requireTool("wrk", package: "wrk")
        let signalport = Harness.guestPath("signalport.gcc")
        guard Harness.isExecutableFile(signalport) else {
            try Harness.require(false, "signalport.gcc not built (Tests/Guests/build.sh builds it)")
            return
        }
        let dir = try scratchDirectory("nginx-master")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        for sub in ["conf", "html", "log"] { try fm.createDirectory(atPath: "\(dir)/\(sub)", withIntermediateDirectories: true) }
        try Self.nginxStockConfiguration.write(toFile: "\(dir)/conf/nginx.conf", atomically: true, encoding: .utf8)
        if fm.fileExists(atPath: "/etc/nginx/mime.types") {
            try fm.copyItem(atPath: "/etc/nginx/mime.types", toPath: "\(dir)/conf/mime.types")
        } else {
            try "types { text/html html; }\n".write(toFile: "\(dir)/conf/mime.types", atomically: true, encoding: .utf8)
        }
        let index = Data("<!doctype html><title>apus</title><h1>nginx: a master and two workers</h1>\n".utf8)
        try index.write(to: URL(fileURLWithPath: "\(dir)/html/index.html"))

        let image = "nginx-master-\(vmm)"
        let build = try apusCommand(["build", "-t", image, signalport, "--add", nginx] + libraryAdds(of: nginx)
                                    + ["--add", "\(dir)/conf:/etc/nginx", "--add", "\(dir)/html:/srv/www",
                                       "--add", "\(dir)/log:/var/log/nginx", "--", "8081", "3", "/usr/sbin/nginx"])
        XCTAssertEqual(build.status, 0, "[\(vmm)] apus build of nginx under signalport: \(build.stderrText)")
        guard build.status == 0 else { return }

        let port = try Net.freePort(), control = try Net.freePort()
        let server = try startApus(["-p", "\(port):8080", "-p", "\(control):8081"], image)
        defer { server.stop() }
        let base = "http://127.0.0.1:\(port)"
        func get() throws -> RunResult {
            try client(curl, ["-sS", "--max-time", "5", "-D", "-", "\(base)/"])
        }
        var first = try get()
        let deadline = Date().addingTimeInterval(vmm == "qemu" ? 60 : 20)
        while first.status != 0 && server.isRunning && Date() < deadline {
            usleep(100_000)
            first = try get()
        }
        XCTAssertEqual(first.status, 0, "[\(vmm)] nginx: curl /: \(first.stderrText)\n\(server.report)")
        guard first.status == 0 else { return }
        let master = server.stdoutText.split(separator: "\n").first { $0.hasPrefix("signalport: child ") }
            .flatMap { Int($0.split(separator: " ").last ?? "") }
        XCTAssertNotNil(master, "[\(vmm)] signalport did not name nginx's pid\n\(server.report)")
        XCTAssertTrue(first.stdoutText.hasPrefix("HTTP/1.1 200 OK"), "[\(vmm)] nginx: curl /:\n\(first.stdoutText)")
        XCTAssertTrue(first.stdout.suffix(index.count) == index, "[\(vmm)] nginx: the index page\n\(first.stdoutText)")

        // 2,000 requests, 16 at a time: each line is "status size worker".
        let count = 2000
        let load = try client(curl, ["-sS", "--max-time", "60", "--parallel", "--parallel-max", "16",
                                     "-w", "%{http_code} %{size_download} %header{x-worker}\\n"]
                                    + (0..<count).flatMap { _ in ["\(base)/", "-o", "/dev/null"] }, timeout: 120)
        XCTAssertEqual(load.status, 0, "[\(vmm)] nginx: 2,000 requests: \(load.stderrText.prefix(600))\n\(server.report)")
        let answers = load.stdoutText.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        XCTAssertEqual(answers.count, count, "[\(vmm)] nginx: answers to 2,000 requests")
        let bad = answers.filter { $0.count != 3 || $0[0] != "200" || $0[1] != String(index.count) }
        XCTAssertTrue(bad.isEmpty, "[\(vmm)] nginx: \(bad.count) answers not 200 with the page, e.g. \(bad.prefix(3))")
        // The master's log names its workers ("start worker process N").
        let started = server.stderrText.split(separator: "\n").compactMap { line -> Int? in
            guard let r = line.range(of: "start worker process ") else { return nil }
            return Int(line[r.upperBound...])
        }
        XCTAssertEqual(started.count, 2, "[\(vmm)] nginx: worker processes started\n\(server.report)")
        var served: [Int: Int] = [:]
        for a in answers where a.count == 3 { served[Int(a[2]) ?? -1, default: 0] += 1 }
        XCTAssertTrue(Set(served.keys).isSubset(of: Set(started)), "[\(vmm)] nginx: answers came from \(served), not only from the workers \(started)")
        if let master { XCTAssertNil(served[master], "[\(vmm)] nginx: the master \(master) served requests") }
        // Which worker wins a connection from the shared listening socket is the scheduler's
        // choice: on one vCPU the worker woken first takes it (measured: 1,034/966 in some
        // runs, all 2,000 by one worker in others), so the split is not asserted here;
        // sharing.c checks that two processes accept from one listener.

        let bench = try client(wrk, ["-t", "2", "-c", "16", "-d", "2s", "--timeout", "2s", "\(base)/"], timeout: 30)
        XCTAssertEqual(bench.status, 0, "[\(vmm)] wrk: \(bench.stderrText)")
        XCTAssertFalse(bench.stdoutText.contains("Socket errors"), "[\(vmm)] wrk reported socket errors:\n\(bench.stdoutText)\n\(server.report)")
        XCTAssertFalse(bench.stdoutText.contains("Non-2xx"), "[\(vmm)] wrk reported non-2xx answers:\n\(bench.stdoutText)")
        XCTAssertTrue(server.isRunning, "[\(vmm)] nginx exited during the load\n\(server.report)")

        // SIGQUIT to the master through signalport; its answer comes once the master is reaped.
        let quit = try client(curl, ["-sS", "--http0.9", "--max-time", "\(Int(clientTimeout))", "http://127.0.0.1:\(control)/"])
        XCTAssertEqual(quit.stdoutText, "exited 0\n", "[\(vmm)] nginx's master after SIGQUIT: \(quit.stderrText)\n\(server.report)")
        let status = server.waitExit(timeout: clientTimeout)
        XCTAssertEqual(status, 0, "[\(vmm)] apus's exit status after nginx's graceful shutdown\n\(server.report)")
        let log = server.stderrText
        XCTAssertTrue(log.contains("signal 3 (SIGQUIT) received from 1, shutting down"), "[\(vmm)] nginx's master log\n\(log)")
        for worker in started {
            XCTAssertTrue(log.contains("\(worker)#\(worker): gracefully shutting down"), "[\(vmm)] worker \(worker)'s shutdown\n\(log)")
            XCTAssertTrue(log.contains("worker process \(worker) exited with code 0"), "[\(vmm)] the master reaping worker \(worker)\n\(log)")
        }
        XCTAssertFalse(log.contains("[alert]") || log.contains("[emerg]") || log.contains("[crit]"),
                       "[\(vmm)] nginx logged alerts:\n\(log)")
        XCTAssertTrue(server.stdoutText.hasSuffix("exited 0\n"), "[\(vmm)] signalport's last line\n\(server.report)")
    }
}
