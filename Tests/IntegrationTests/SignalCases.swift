import Foundation
import XCTest

/// Signals from the host to the program, and code that makes no syscalls interrupted anyway:
/// on pvm by the VMM's preemption (Preemption.swift, HostEvents.swift), under QEMU by the
/// LAPIC timer, with host signals carried as serial frames.
extension VMMMatrix {
    /// alarm(1) and ITIMER_VIRTUAL end loops without syscalls through their handlers; two
    /// spinning threads both progress while main sleeps (its wake-up interrupts them).
    func interruptsWithoutSyscalls() throws {
        for mode in ["alarm", "vtalarm", "threads"] {
            try differentialAllVariants("interrupts", args: [mode])
        }
    }

    /// `hlt` in app code: SIGSEGV (si_code SI_KERNEL to a handler), as Linux's #GP; on pvm the
    /// hypervisor would otherwise halt the whole VM. apus adds a crash line on stderr.
    func privilegedInstruction() throws {
        for variant in Harness.variants {
            try differential(Invocation(program: "./interrupts.\(variant)", args: ["hlt"]), compareStderr: false, expectStatus: 139)
            try differential(Invocation(program: "./interrupts.\(variant)", args: ["hlt-caught"]), expectStatus: 4)
        }
    }

    /// Go's asynchronous preemption (SIGURG from sysmon): with GOMAXPROCS=1 a goroutine in a
    /// tight loop does not starve the main goroutine.
    func goPreemption() throws {
        try requireGoGuest("gosignals")
        try differential(Invocation(program: "./gosignals.go", args: ["preempt"]), expectStatus: 0)
    }

    /// SIGUSR1 twice, then SIGTERM, sent to apus reach the program waiting in pause(): its
    /// handlers run and it exits with its own status.
    func hostSignalWakesPause() throws {
        let server = try startApus([], "./interrupts.musl", ["wait-signal"])
        defer { server.stop() }
        XCTAssertTrue(server.waitForOutput("ready", timeout: Harness.timeout(vmm: vmm)), "[\(vmm)] never ready\n\(server.report)")
        for signal in [SIGUSR1, SIGUSR1, SIGTERM] {
            kill(server.pid, signal)
            usleep(300_000)
        }
        XCTAssertEqual(server.waitExit(timeout: 30), 3, "[\(vmm)] exit status\n\(server.report)")
        XCTAssertTrue(server.stdoutText.contains("woke by SIGTERM after 2 SIGUSR1"), "[\(vmm)] \(server.report)")
    }

    /// SIGTERM to apus interrupts a program spinning without syscalls (its handler runs).
    func hostSignalInterruptsSpinning() throws {
        let server = try startApus([], "./interrupts.glibc", ["spin-signal"])
        defer { server.stop() }
        XCTAssertTrue(server.waitForOutput("ready", timeout: Harness.timeout(vmm: vmm)), "[\(vmm)] never ready\n\(server.report)")
        kill(server.pid, SIGTERM)
        XCTAssertEqual(server.waitExit(timeout: 30), 3, "[\(vmm)] exit status\n\(server.report)")
        XCTAssertTrue(server.stdoutText.contains("SIGTERM handled while spinning"), "[\(vmm)] \(server.report)")
    }

    /// A program without handlers dies of the signal (128+N, as before); one that ignores
    /// SIGINT and SIGTERM is stopped by a second Ctrl-C (130) or `--stop-timeout` after
    /// SIGTERM (137), with a line that says why.
    func hostSignalDefaultsAndForcedStops() throws {
        guard let busybox = try requireBusybox() else { return }
        let plain = try startApus([], busybox, ["sleep", "60"])
        defer { plain.stop() }
        usleep(vmm == "qemu" ? 3_000_000 : 500_000)
        kill(plain.pid, SIGTERM)
        XCTAssertEqual(plain.waitExit(timeout: 30), 143, "[\(vmm)] SIGTERM's default action\n\(plain.report)")

        let script = "trap '' TERM INT; echo ready; while :; do :; done"
        let stubborn = try startApus(["--stop-timeout", "1"], busybox, ["sh", "-c", script])
        defer { stubborn.stop() }
        XCTAssertTrue(stubborn.waitForOutput("ready", timeout: Harness.timeout(vmm: vmm)), "[\(vmm)] \(stubborn.report)")
        let sent = Date()
        kill(stubborn.pid, SIGTERM)
        XCTAssertEqual(stubborn.waitExit(timeout: 30), 137, "[\(vmm)] --stop-timeout\n\(stubborn.report)")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(sent), 0.9, "[\(vmm)] stopped before --stop-timeout")
        XCTAssertTrue(stubborn.stderrText.contains("--stop-timeout"), "[\(vmm)] \(stubborn.report)")

        let twice = try startApus([], busybox, ["sh", "-c", script])
        defer { twice.stop() }
        XCTAssertTrue(twice.waitForOutput("ready", timeout: Harness.timeout(vmm: vmm)), "[\(vmm)] \(twice.report)")
        kill(twice.pid, SIGINT)
        usleep(500_000)
        XCTAssertNil(twice.status, "[\(vmm)] one ignored SIGINT must not stop the VM\n\(twice.report)")
        kill(twice.pid, SIGINT)
        XCTAssertEqual(twice.waitExit(timeout: 30), 130, "[\(vmm)] second Ctrl-C\n\(twice.report)")
        XCTAssertTrue(twice.stderrText.contains("interrupted twice"), "[\(vmm)] \(twice.report)")
    }

    /// A Go HTTP server with signal.Notify shuts down cleanly on SIGTERM and on SIGINT.
    func goServerGracefulShutdown() throws {
        try requireGoGuest("gosignals")
        let curl = try requireTool("curl", package: "curl")
        for (signal, name) in [(SIGTERM, "terminated"), (SIGINT, "interrupt")] {
            let port = try Net.freePort()
            let server = try startApus(["-p", "\(port):8080"], "./gosignals.go", ["serve", ":8080"])
            defer { server.stop() }
            XCTAssertTrue(server.waitForOutput("listening on", timeout: Harness.timeout(vmm: vmm)), "[\(vmm)] \(server.report)")
            var reply = try client(curl, ["-s", "--max-time", "20", "http://127.0.0.1:\(port)/"])
            for _ in 0..<20 where reply.status != 0 {  // the relay may still be starting
                usleep(100_000)
                reply = try client(curl, ["-s", "--max-time", "20", "http://127.0.0.1:\(port)/"])
            }
            XCTAssertEqual(reply.stdoutText, "hello\n", "[\(vmm)] request before the signal\n\(server.report)")
            kill(server.pid, signal)
            XCTAssertEqual(server.waitExit(timeout: 30), 0, "[\(vmm)] exit status after \(name)\n\(server.report)")
            XCTAssertTrue(server.stdoutText.contains("shutting down on \(name)\nclean exit\n"), "[\(vmm)] \(server.report)")
        }
    }

    /// Debian's python3 serving HTTP (http.server) with a SIGTERM handler, and with Python's
    /// own SIGINT handling (KeyboardInterrupt): each shuts the server down and exits 0.
    func pythonServerGracefulShutdown() throws {
        guard let python = try requireProgram("/usr/bin/python3", package: "python3") else { return }
        let curl = try requireTool("curl", package: "curl")
        let script = """
            import http.server, signal, sys
            def on_term(signum, frame):
                raise SystemExit(f"signal {signum}")
            signal.signal(signal.SIGTERM, on_term)
            class Hello(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"hello\\n")
                def log_message(self, *args):
                    pass
            server = http.server.HTTPServer(("0.0.0.0", 8000), Hello)
            print("listening", flush=True)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                print("KeyboardInterrupt", flush=True)
            except SystemExit as e:
                print(e, flush=True)
            finally:
                server.server_close()
                print("clean exit", flush=True)
            """
        for (signal, expected) in [(SIGTERM, "signal 15"), (SIGINT, "KeyboardInterrupt")] {
            let port = try Net.freePort()
            let server = try startApus(["-m", "256M", "-p", "\(port):8000"], python, ["-c", script])
            defer { server.stop() }
            XCTAssertTrue(server.waitForOutput("listening", timeout: vmm == "qemu" ? 300 : 120), "[\(vmm)] \(server.report)")
            var reply = try client(curl, ["-s", "--max-time", "20", "http://127.0.0.1:\(port)/"])
            for _ in 0..<20 where reply.status != 0 {
                usleep(100_000)
                reply = try client(curl, ["-s", "--max-time", "20", "http://127.0.0.1:\(port)/"])
            }
            XCTAssertEqual(reply.stdoutText, "hello\n", "[\(vmm)] request before the signal\n\(server.report)")
            kill(server.pid, signal)
            XCTAssertEqual(server.waitExit(timeout: 60), 0, "[\(vmm)] exit status after signal \(signal)\n\(server.report)")
            XCTAssertTrue(server.stdoutText.contains("\(expected)\nclean exit\n"), "[\(vmm)] \(server.report)")
        }
    }

    /// The program's stdin is what apus's is: /dev/null a character device 1:3, a pipe a FIFO
    /// (before, every stream was a FIFO).
    func standardStreamKinds() throws {
        try differentialAllVariants("streams")
        try differentialAllVariants("streams", stdin: Data("x\n".utf8))
    }

    func requireGoGuest(_ name: String) throws {
        try Harness.require(Harness.isExecutableFile(Harness.guestPath("\(name).go")),
                            "\(name).go not built (Tests/Guests/build.sh builds it with go)")
    }
}
