// The VMM's sandbox (Sources/VMM/Sandbox.swift, SeccompFilter.swift), apus VMM only. Every
// other apus-VMM case runs under the filter too, since it is on by default; these check that
// it is on, that a forbidden call stops the run with its one-line report, that it can be
// switched off, and that apus needs no root (only the kvm group).

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

extension VMMMatrix {
    /// The test hook makes the vCPU thread call execve right after the filter is installed:
    /// one `apus:` line naming it, exit 125, nothing else — also with a published port bound
    /// (the network's I/O thread is covered by SeccompFilterTests' thread case).
    func sandboxStopsAForbiddenCall() throws {
        var environment = Harness.apusEnvironment
        environment["APUS_SANDBOX_TEST"] = "forbidden-call"
        for flags in [[], ["-p", "127.0.0.1:\(try Net.freePort()):80"]] {
            let r = try Runner.run(Harness.apusBinary, ["run"] + flags + ["./hello.musl"], cwd: Harness.guestsDir,
                                   environment: environment, timeout: Harness.timeout(vmm: vmm))
            let what = "[\(vmm)] APUS_SANDBOX_TEST=forbidden-call apus run \(flags.joined(separator: " ")) hello.musl"
            XCTAssertFalse(r.timedOut, "\(what): timed out")
            XCTAssertEqual(r.status, 125, "\(what): status\nstderr: \(r.stderrText)")
            XCTAssertEqual(r.stderrText, "apus: the VMM was stopped by its sandbox: forbidden system call 59 (execve)\n", what)
            XCTAssertEqual(r.stdoutText, "", "\(what): the guest must not have run")
        }
    }

    /// While a guest runs (busybox cat, echoing a line back), the apus process has
    /// NoNewPrivs and one seccomp filter, and its root is an empty directory (where user
    /// namespaces are available: probed with util-linux's unshare). APUS_SECCOMP=off and
    /// APUS_USERNS=off turn each off and the guest runs the same. A bad value is one `apus:`
    /// line and 125.
    func sandboxIsOnByDefault() throws {
        guard let busybox = try requireBusybox() else { return }
        let unshare = try Runner.run("/usr/bin/env", ["unshare", "--user", "--mount", "true"], cwd: "/",
                                     environment: nil, timeout: 10)
        // nil: no unshare command here to ask (the root is then not checked).
        let namespaces: Bool? = unshare.status == 127 ? nil : unshare.status == 0
        for (variable, value) in [("", ""), ("APUS_SECCOMP", "off"), ("APUS_USERNS", "off")] {
            var environment = Harness.apusEnvironment
            if !variable.isEmpty { environment[variable] = value }
            let (status, root) = try statusWhileRunning(busybox: busybox, environment: environment)
            let what = "[\(vmm)] \(variable.isEmpty ? "default" : "\(variable)=\(value)")"
            let filtered = variable != "APUS_SECCOMP"
            XCTAssertEqual(status["Seccomp"], filtered ? "2" : "0", "\(what): /proc/PID/status")
            XCTAssertEqual(status["NoNewPrivs"], filtered ? "1" : "0", "\(what): /proc/PID/status")
            if filtered { XCTAssertEqual(status["Seccomp_filters"], "1", what) }
            if variable == "APUS_USERNS" || namespaces == false {
                XCTAssertTrue(root.contains("proc"), "\(what): the host's root, got \(root)")
            } else if namespaces == true {
                XCTAssertEqual(root, [], "\(what): an empty root")
                XCTAssertEqual(status["CapEff"], "0000000000000000", "\(what): no capabilities")
            }
        }
        for variable in ["APUS_SECCOMP", "APUS_USERNS"] {
            var environment = Harness.apusEnvironment
            environment[variable] = "maybe"
            let r = try Runner.run(Harness.apusBinary, ["run", "./hello.musl"], cwd: Harness.guestsDir,
                                   environment: environment, timeout: Harness.timeout(vmm: vmm))
            XCTAssertEqual(r.status, 125, r.stderrText)
            XCTAssertEqual(r.stderrText, "apus: \(variable)=maybe: expected on or off\n")
        }
    }

    /// Starts `apus run busybox cat`, writes a line and waits for its echo (the guest runs:
    /// setup is over), reads the apus process's /proc status and lists its root directory
    /// (/proc/PID/root), then ends stdin.
    private func statusWhileRunning(busybox: String, environment: [String: String]) throws -> ([String: String], [String]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Harness.apusBinary)
        process.arguments = ["run", "--timeout", "30", busybox, "cat"]
        process.currentDirectoryURL = URL(fileURLWithPath: Harness.guestsDir)
        process.environment = environment
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            try? input.fileHandleForWriting.close()
            process.waitUntilExit()
        }
        input.fileHandleForWriting.write(Data("ping\n".utf8))
        var echoed = Data()
        while !echoed.contains(UInt8(ascii: "\n")) {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            echoed += chunk
        }
        XCTAssertEqual(String(decoding: echoed, as: UTF8.self), "ping\n", "busybox cat under apus did not echo")
        let proc = "/proc/\(process.processIdentifier)"
        let root = (try? FileManager.default.contentsOfDirectory(atPath: proc + "/root")) ?? ["(unreadable)"]
        let text = (try? String(contentsOfFile: proc + "/status", encoding: .utf8)) ?? ""
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return (fields, root)
    }

    /// `apus run` as an ordinary user in the kvm group (the README's setup): a static guest,
    /// a dynamic Debian program (built into the user's own store on the fly), a published
    /// port; `--network tap` alone needs root and says so. Needs root to create the user, so
    /// it runs where the suite runs as root (CI), and is skipped elsewhere (there the whole
    /// suite already runs without root).
    ///
    /// Host changes (kept: they are what a distribution's setup does, and the next run reuses
    /// them): a system group `kvm` if missing, /dev/kvm group-owned by kvm with mode g+rw if it
    /// is not (udev's rule on Debian and Ubuntu: GROUP="kvm", MODE="0660"), and a system user
    /// `apus-test` in that group, without a home or a login shell.
    func runsAsAnOrdinaryUser() throws {
        guard geteuid() == 0 else {
            throw XCTSkip("runs as root only (it creates a user); this suite already runs as uid \(geteuid())")
        }
        let user = "apus-test"
        for tool in ["/usr/sbin/useradd", "/usr/sbin/usermod", "/usr/sbin/groupadd", "/usr/sbin/runuser", "/usr/bin/getent"] {
            try Harness.require(Harness.isExecutableFile(tool), "\(tool) is missing (passwd, util-linux)")
        }
        func root(_ command: String, _ args: [String]) throws -> RunResult {
            try Runner.run(command, args, cwd: "/", environment: nil, timeout: 30)
        }
        if try root("/usr/bin/getent", ["group", "kvm"]).status != 0 {
            let r = try root("/usr/sbin/groupadd", ["--system", "kvm"])
            XCTAssertEqual(r.status, 0, "groupadd kvm: \(r.stderrText)")
        }
        var device = stat()
        XCTAssertEqual(stat("/dev/kvm", &device), 0)
        let kvmGroup = getgrnam("kvm").map { $0.pointee.gr_gid }
        if device.st_gid != kvmGroup || device.st_mode & 0o060 != 0o060 {
            XCTAssertEqual(try root("/bin/chgrp", ["kvm", "/dev/kvm"]).status, 0)
            XCTAssertEqual(try root("/bin/chmod", ["g+rw", "/dev/kvm"]).status, 0)
        }
        if try root("/usr/bin/id", ["-u", user]).status != 0 {
            let r = try root("/usr/sbin/useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                                                   "--groups", "kvm", user])
            XCTAssertEqual(r.status, 0, "useradd: \(r.stderrText)")
        } else {
            XCTAssertEqual(try root("/usr/sbin/usermod", ["-aG", "kvm", user]).status, 0)
        }

        // The worktree may sit where others cannot reach it: copy apus, its kernel and the
        // guest into a directory the user can read, with a store the user owns.
        let dir = try makeScratchDirectory(prefix: "apus-nonroot")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let binDir = URL(fileURLWithPath: Harness.apusBinary).deletingLastPathComponent().path
        for (from, to) in [(Harness.apusBinary, "apus"), (binDir + "/apus-kernel.elf", "apus-kernel.elf"),
                           (Harness.guestPath("hello.musl"), "hello.musl")] {
            try FileManager.default.copyItem(atPath: from, toPath: dir + "/" + to)
            chmod(dir + "/" + to, 0o755)
        }
        let store = dir + "/store"
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: false)
        XCTAssertEqual(try root("/bin/chown", [user, store]).status, 0)

        func asUser(_ args: [String]) throws -> RunResult {
            try Runner.run("/usr/sbin/runuser", ["-u", user, "--", "/usr/bin/env", "APUS_HOME=\(store)", dir + "/apus"] + args,
                           cwd: dir, environment: nil, timeout: Harness.timeout(vmm: vmm))
        }
        var r = try asUser(["run", "./hello.musl"])
        XCTAssertEqual(r.status, 0, "hello.musl as \(user): \(r.stderrText)")
        XCTAssertEqual(r.stdoutText, "Hello from Apus!\n")
        r = try asUser(["run", "/bin/echo", "from", "a", "user"])
        XCTAssertEqual(r.status, 0, "/bin/echo as \(user): \(r.stderrText)")
        XCTAssertEqual(r.stdoutText, "from a user\n")
        r = try asUser(["run", "-p", "127.0.0.1:\(try Net.freePort()):80", "./hello.musl"])
        XCTAssertEqual(r.status, 0, "-p as \(user): \(r.stderrText)")
        r = try asUser(["run", "--network", "tap", "./hello.musl"])
        XCTAssertEqual(r.status, 125, "--network tap as \(user)")
        XCTAssertTrue(r.stderrText.hasPrefix("apus: cannot create a tap device") && r.stderrText.contains("CAP_NET_ADMIN"),
                      "--network tap as \(user): \(r.stderrText)")
    }

    /// A fresh directory under /tmp (not $TMPDIR, which may sit in a home other users cannot
    /// enter), readable and searchable by everyone.
    private func makeScratchDirectory(prefix: String) throws -> String {
        var template = Array(("/tmp/" + prefix + ".XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw Harness.MissingRequirement(description: "mkdtemp failed") }
        let path = String(cString: made)
        chmod(path, 0o755)
        return path
    }
}
