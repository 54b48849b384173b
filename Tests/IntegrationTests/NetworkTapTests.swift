// The tap network backend (`apus run --network tap`: a tap device, host side 10.0.3.1/24,
// guest 10.0.3.2), apus VMM only. Needs root (the tap device, `ip netns`); skipped otherwise,
// also under CI=true, since an unprivileged CI runner is normal.
//
// Every case runs inside a network namespace of its own (`ip netns add apus-test-<pid>-…`),
// deleted at the end also when the case fails, so no traffic and no device ever reach the
// host's own network, and ports inside the namespace are free by construction.
//   swift test --filter IntegrationTests.NetworkTapTests

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

final class NetworkTapTests: XCTestCase {
    let matrix = VMMMatrix(vmm: "apus")
    var ip = ""

    override func setUpWithError() throws {
        try matrix.setUp()
        guard geteuid() == 0 else { throw XCTSkip("the tap backend and ip netns need root") }
        guard access("/dev/net/tun", R_OK | W_OK) == 0 else { throw XCTSkip("no usable /dev/net/tun") }
        guard let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first(where: Harness.isExecutableFile) else {
            throw XCTSkip("no ip command (iproute2)")
        }
        self.ip = ip
    }

    /// A fresh namespace with its loopback up; deleted by the returned closure.
    private func namespace(_ tag: String) throws -> (String, () -> Void) {
        let name = "apus-test-\(getpid())-\(tag)"
        _ = try? Runner.run(ip, ["netns", "delete", name], cwd: "/", environment: nil, timeout: 10)
        let add = try Runner.run(ip, ["netns", "add", name], cwd: "/", environment: nil, timeout: 10)
        guard add.status == 0 else { throw XCTSkip("ip netns add failed (no namespace support here?): \(add.stderrText)") }
        let cleanup = { [ip] in _ = try? Runner.run(ip, ["netns", "delete", name], cwd: "/", environment: nil, timeout: 10) }
        let lo = try Runner.run(ip, ["netns", "exec", name, ip, "link", "set", "lo", "up"], cwd: "/", environment: nil, timeout: 10)
        XCTAssertEqual(lo.status, 0, "ip link set lo up in \(name): \(lo.stderrText)")
        return (name, cleanup)
    }

    private func inNamespace(_ ns: String, _ args: [String], timeout: TimeInterval = 30) throws -> RunResult {
        try Runner.run(ip, ["netns", "exec", ns] + args, cwd: Harness.guestsDir, environment: Harness.apusEnvironment, timeout: timeout)
    }

    /// httpd.go on the tap network: reached directly at 10.0.3.2:8080 and through `-p`
    /// on the namespace's 127.0.0.1; /quit?code=3 ends it with apus exiting 3.
    func testTapInbound() throws {
        let curl = try matrix.requireTool("curl", package: "curl")
        guard Harness.isExecutableFile(Harness.guestPath("httpd.go")) else { throw XCTSkip("httpd.go not built") }
        let (ns, cleanup) = try namespace("in")
        defer { cleanup() }
        let server = try BackgroundProcess(ip, ["netns", "exec", ns, Harness.apusBinary, "run", "--network", "tap", "--timeout", "60",
                                                "-p", "18080:8080", "./httpd.go"])
        defer { server.stop() }
        guard server.waitForOutput("listening on :8080", timeout: 20) else {
            XCTFail("httpd.go on the tap network did not start\n\(server.report)")
            return
        }
        var direct = try inNamespace(ns, [curl, "-sS", "--max-time", "5", "http://10.0.3.2:8080/"])
        for _ in 0..<20 where direct.status != 0 {
            usleep(100_000)
            direct = try inNamespace(ns, [curl, "-sS", "--max-time", "5", "http://10.0.3.2:8080/"])
        }
        XCTAssertEqual(direct.status, 0, "curl 10.0.3.2:8080 in \(ns): \(direct.stderrText)\n\(server.report)")
        XCTAssertEqual(direct.stdoutText, "hello from httpd\n", "curl 10.0.3.2:8080")
        let big = try inNamespace(ns, [curl, "-sS", "--max-time", "30", "http://10.0.3.2:8080/bytes?n=4000000"], timeout: 60)
        XCTAssertEqual(big.status, 0, "curl 4 MB over tap: \(big.stderrText)")
        XCTAssertTrue(big.stdout == Net.patternData(count: 4_000_000), "curl 4 MB over tap: \(big.stdout.count) bytes, content differs")
        let published = try inNamespace(ns, [curl, "-sS", "--max-time", "5", "http://127.0.0.1:18080/"])
        XCTAssertEqual(published.status, 0, "curl 127.0.0.1:18080 (-p) in \(ns): \(published.stderrText)")
        XCTAssertEqual(published.stdoutText, "hello from httpd\n", "curl through -p on the tap network")
        let quit = try inNamespace(ns, [curl, "-sS", "--max-time", "5", "http://10.0.3.2:8080/quit?code=3"])
        XCTAssertEqual(quit.stdoutText, "bye\n", "/quit: \(quit.stderrText)")
        XCTAssertEqual(server.waitExit(timeout: 20), 3, "apus's exit status after /quit?code=3\n\(server.report)")
    }

    /// Outbound on the tap network: busybox httpd in the namespace on 0.0.0.0:8000, fetched
    /// by the guest from the tap's host side, 10.0.3.1 (busybox wget and fetch.c, 3 MB).
    func testTapOutbound() throws {
        guard let busybox = try matrix.requireBusybox() else { return }
        let (ns, cleanup) = try namespace("out")
        defer { cleanup() }
        let dir = try matrix.scratchDirectory("net-tap-www")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let small = Data("hello over tap\n".utf8)
        let big = Net.patternData(count: 3_000_000, from: 5)
        try small.write(to: URL(fileURLWithPath: dir + "/small.txt"))
        try big.write(to: URL(fileURLWithPath: dir + "/big.bin"))
        let httpd = try BackgroundProcess(ip, ["netns", "exec", ns, busybox, "httpd", "-f", "-p", "0.0.0.0:8000", "-h", dir])
        defer { httpd.stop() }
        usleep(300_000)
        XCTAssertTrue(httpd.isRunning, "busybox httpd in \(ns)\n\(httpd.report)")

        let wget = try inNamespace(ns, [Harness.apusBinary, "run", "--network", "tap", "--timeout", "30", busybox,
                                        "wget", "-q", "-O", "-", "http://10.0.3.1:8000/small.txt"], timeout: 60)
        XCTAssertEqual(wget.status, 0, "busybox wget 10.0.3.1 over tap: \(wget.stderrText)")
        XCTAssertEqual(wget.stdout, small, "busybox wget 10.0.3.1 over tap")
        let fetch = try inNamespace(ns, [Harness.apusBinary, "run", "--network", "tap", "--timeout", "30", "./fetch.musl",
                                         "get", "10.0.3.1", "8000", "/big.bin"], timeout: 60)
        XCTAssertEqual(fetch.status, 0, "fetch.musl 3 MB over tap: \(fetch.stderrText)")
        XCTAssertTrue(fetch.stdout == big, "fetch.musl 3 MB over tap: \(fetch.stdout.count) bytes, content differs")

        // Bulk out: the guest sends 8 MiB to fetch.musl serve-recv in the namespace, which
        // checks every byte and answers.
        let sink = try BackgroundProcess(ip, ["netns", "exec", ns, Harness.guestPath("fetch.musl"), "serve-recv", "0.0.0.0", "9000"])
        defer { sink.stop() }
        XCTAssertTrue(sink.waitForOutput("port 9000", timeout: 10), "fetch serve-recv in \(ns)\n\(sink.report)")
        let send = try inNamespace(ns, [Harness.apusBinary, "run", "--network", "tap", "--timeout", "30", "./fetch.musl",
                                        "send", "10.0.3.1", "9000", "8"], timeout: 60)
        XCTAssertEqual(send.status, 0, "fetch.musl send 8 MiB over tap: \(send.stderrText)")
        XCTAssertEqual(send.stdoutText, "host received 8388608 bytes, pattern ok\n", "fetch.musl send 8 MiB over tap\n\(send.stderrText)")
    }
}
