// Processes (fork, vfork, posix_spawn, execve, wait, signals between processes), each case
// compared with the same program run natively: stdout and exit status always, stderr where
// it is the program's own. Written once, listed per VMM in ApusVMMTests and QEMUTests.

import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

extension VMMMatrix {
    /// procs.c in its four variants: every fork/exec/wait/signal/group check as natively.
    /// stderr is not compared: a child that dies of SIGSEGV on purpose may get a crash report
    /// there from apus, and the program's own stderr carries only details of failures, which
    /// show in stdout as FAIL lines anyway.
    func processes() throws {
        try differentialAllVariants("procs", compareStderr: false, expectStatus: 0)
    }

    /// forkbomb.c: fork until fork fails, which must be EAGAIN from the VM's process limit
    /// (Processes.limit)
    /// (natively: RLIMIT_NPROC 200, as an unprivileged user, since root is not bound by it),
    /// then reap everything; fork, exec and memory still work. Same stdout, status 0.
    func forkBomb() throws {
        let native: RunResult
        let prlimit = ["/usr/bin/prlimit", "--nproc=200", "./forkbomb.musl", "2000"]
        if getuid() == 0 {
            guard let setpriv = try requireProgram("/usr/bin/setpriv", package: "util-linux") else { return }
            native = try Runner.run(setpriv, ["--reuid=65534", "--regid=65534", "--clear-groups"] + prlimit,
                                    cwd: Harness.guestsDir, environment: [:], timeout: Harness.nativeTimeout)
        } else {
            guard try requireProgram(prlimit[0], package: "util-linux") != nil else { return }
            native = try Runner.run(prlimit[0], Array(prlimit.dropFirst()), cwd: Harness.guestsDir, environment: [:],
                                    timeout: Harness.nativeTimeout)
        }
        XCTAssertEqual(native.status, 0, "forkbomb natively (under prlimit --nproc=200): \(native.stdoutText)\(native.stderrText)")
        // 512 MiB: the VM's process limit (memory / (stack + 256 KiB)) is 62 there, above
        // the 50 live children the guest asks for.
        guard let apus = try apusOnly(Invocation(program: "./forkbomb.musl", apusFlags: ["--memory", "512M"])) else { return }
        let what = "[\(vmm)] forkbomb.musl (bound 100000, 512M)"
        XCTAssertEqual(apus.status, 0, "\(what): status\nstdout: \(apus.stdoutText)\nstderr: \(Compare.tail(apus.stderr))")
        if let d = Compare.difference(native.stdout, apus.stdout) {
            XCTFail("\(what): stdout differs from the native run: \(d)\nstderr: \(Compare.tail(apus.stderr))")
        }
    }

    /// forkmem.c: a process that wrote 60% of free memory forks. The Apus VMM (pvm) copies
    /// private memory at fork: ENOMEM, the copy does not fit. QEMU (the native platform)
    /// shares it copy on write: fork succeeds and the child's write is its own. Then fork,
    /// pipes and exit statuses work.
    func forkWithoutMemory() throws {
        guard let r = try apusOnly(Invocation(program: "./forkmem.musl")) else { return }
        let what = "[\(vmm)] forkmem.musl"
        XCTAssertEqual(r.status, 0, "\(what): status\nstdout: \(r.stdoutText)\nstderr: \(Compare.tail(r.stderr))")
        let expected = vmm == "qemu" ? "fork: shared copy on write\n" : "fork: Out of memory\n"
        XCTAssertTrue(r.stdoutText.contains(expected), "\(what): no \(expected) in \(r.stdoutText)")
        XCTAssertTrue(r.stdoutText.hasSuffix("failures: 0\n"), "\(what): \(r.stdoutText)")
    }

    /// Debian's busybox sh (busybox-static; its applets run as NOEXEC/NOFORK or by
    /// re-executing /proc/self/exe): pipelines, subshells, command substitution, background
    /// jobs with wait, kill and exit statuses, trap, exec and descriptor redirection.
    func busyboxShell() throws {
        guard let busybox = try requireBusybox() else { return }
        for (script, status) in Self.busyboxScripts {
            try differential(Invocation(program: busybox, args: ["sh", "-c", script]), expectStatus: status)
        }
    }

    /// /proc/PID of another process: exe names the program (symlinks resolved), cwd its
    /// directory, status its name, state and parent; the same lines as natively (numbers
    /// masked). (ash reports "Terminated" for the killed job or not depending on whether it
    /// reaped it before `wait`, natively too: that line is not compared.)
    func procOfOtherProcess() throws {
        guard let busybox = try requireBusybox() else { return }
        let script = """
            cd /etc
            sleep 2 & p=$!
            cd /
            readlink /proc/$p/exe
            readlink /proc/$p/cwd
            grep -E '^(Name|State|PPid):' /proc/$p/status | sed 's/[0-9][0-9]*/N/; s/ (sleeping)//'
            grep -q ' r-xp ' /proc/$p/maps && echo "maps has code"
            kill $p; wait $p 2>/dev/null; echo "status $?"
            """
        try differential(Invocation(program: busybox, args: ["sh", "-c", script]), expectStatus: 0)
    }

    /// Each script with the exit status it ends with.
    static let busyboxScripts: [(String, Int32)] = [
        // Pipelines.
        ("""
        printf '3\\n1\\n2\\n' | sort | head -2
        echo a b c d | tr ' ' '\\n' | wc -l
        seq 1 100 | grep 7 | sort -rn | head -3 | tr '\\n' ' '; echo
        seq 1 5 | { s=0; while read n; do s=$((s + n)); done; echo "sum $s"; }
        false | true; echo "pipeline status $?"
        set -o pipefail; false | true; echo "pipefail status $?"; set +o pipefail

        """, 0),
        // Subshells and command substitution.
        ("""
        x=outer; (x=inner; echo "subshell $x"; exit 4); echo "status $? x=$x"
        (cd /; pwd)
        a=$(echo hello | tr a-z A-Z); echo "$a $(( $(echo 6) * 7 )) `echo back`ticks"
        echo "nested $(echo $(echo $(echo deep)))"
        n=0; for i in $(seq 1 20); do n=$((n + $(echo $i))); done; echo "total $n"
        echo "a child shell has another pid: $( [ "$(sh -c 'echo $$')" != "$$" ] && echo yes || echo no)"

        """, 0),
        // Background jobs, wait, kill and exit statuses.
        ("""
        { (echo one) & (echo two) & (sleep 0.1; echo three) & wait; } | sort
        sleep 0.05 & p=$!; wait $p; echo "waited $?"
        (exit 6) & wait $!; echo "background status $?"
        sleep 5 & p=$!; kill $p; wait $p 2>/dev/null; echo "killed status $?"
        sh -c 'kill -9 $$'; echo "sigkill status $?"
        sh -c 'exit 255'; echo "exit status $?"
        wait; echo "wait with no jobs $?"

        """, 0),
        // trap, exec, redirections, and the script's own exit status.
        ("""
        trap 'echo caught USR1' USR1
        kill -USR1 $$; echo after usr1
        trap - USR1
        sh -c 'trap "echo term in child; exit 9" TERM; kill -TERM $$; echo not reached'; echo "child status $?"
        sh -c 'trap "echo exit trap" EXIT; echo body'
        f=$(mktemp); exec 3>"$f"; echo via fd 3 >&3; exec 3>&-; cat "$f"; rm -f "$f"
        sh -c 'exec echo replaced by exec; echo never'
        (trap 'echo bye from subshell' EXIT; exit 2); echo "status $?"
        trap 'echo exiting' EXIT
        exit 3

        """, 3),
    ]

    /// Debian's bash (dynamic) running a script in an image with the coreutils it calls:
    /// pipelines, functions reading a pipe, arrays, $( ) with a child bash, background jobs,
    /// kill and wait, trap on EXIT, and its exit status 5.
    func bashScript() throws {
        guard let bash = try requireProgram("/bin/bash", package: "bash") else { return }
        let dir = try scratchDirectory("bash")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("alpha\nbeta\ngamma\n".utf8).write(to: URL(fileURLWithPath: dir + "/a.txt"))
        try Data((1...500).map { "\($0)\n" }.joined().utf8).write(to: URL(fileURLWithPath: dir + "/b.txt"))
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/c.txt"))
        let script = """
            set -u
            dir=$(cd "$(dirname "$0")" && pwd)
            for f in "$dir"/*.txt; do wc -c "$f"; done | sort -n | tail -1 | tr -s ' ' | cut -d' ' -f1
            seq 1 10 | tac | head -3 | tr '\\n' ' '; echo
            sha256sum "$dir/a.txt" | cut -c1-16
            words=(one two three); echo "${#words[@]} words, last ${words[-1]}"
            count() { local n=0; while read -r _; do n=$((n + 1)); done; echo "$n lines"; }
            seq 1 42 | count
            total=$(cat "$dir/b.txt" | sort -rn | head -5 | { s=0; while read -r n; do s=$((s + n)); done; echo $s; })
            echo "top five sum $total"
            { (sleep 0.1; echo late) & (echo early) & wait; } | sort
            sleep 5 & p=$!; kill -TERM "$p"; wait "$p"; echo "killed: $?"
            (exit 7); echo "subshell: $?"
            trap 'echo "trap on exit"' EXIT
            out=$(bash -c 'echo "inner $((6 * 7))"; exit 3'); echo "$out, status $?"
            exit 5

            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: dir + "/script.sh"))
        let tools = ["sort", "head", "tail", "wc", "seq", "tr", "cut", "sha256sum", "cat", "tac", "sleep", "dirname"]
        var build = ["build", "-t", "bash-\(vmm)", bash, "--add", dir]
        for tool in tools {
            guard let path = try requireProgram("/usr/bin/\(tool)", package: "coreutils") else { return }
            build += ["--add", path]
        }
        let built = try apusCommand(build)
        XCTAssertEqual(built.status, 0, "[\(vmm)] apus build of bash: \(built.stderrText)")
        guard built.status == 0 else { return }
        try compareImageRun(native: [bash, dir + "/script.sh"], image: "bash-\(vmm)", args: [dir + "/script.sh"], expectStatus: 5)
    }

    /// Debian's python3: subprocess (run, Popen with pipes, a child killed by SIGTERM, a
    /// missing program), os.fork, and multiprocessing's Pool and Process with the fork and
    /// the spawn start methods (spawn execs python again; Pool needs a POSIX semaphore).
    func pythonProcesses() throws {
        guard let python = try requireProgram("/usr/bin/python3", package: "python3") else { return }
        let version = try Runner.run(python, ["-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                                     cwd: "/", environment: [:], timeout: 30).stdoutText
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let dir = try scratchDirectory("pyprocs")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = """
            import multiprocessing as mp, os, signal, subprocess, sys

            def square(x):
                return x * x

            def describe(queue, method, owner):
                queue.put(f"{method} child: getppid() == parent: {os.getppid() == owner}, own pid: {os.getpid() != owner}")

            if __name__ == "__main__":
                r = subprocess.run([sys.executable, "-c", "import sys; print('child got', sys.argv[1:]); sys.exit(3)", "a b", ""],
                                   capture_output=True, text=True)
                print("subprocess.run:", r.returncode, r.stdout.strip())
                p = subprocess.Popen([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                print("Popen.communicate:", p.communicate("piped through a child")[0].strip(), p.returncode)
                r = subprocess.run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
                print("killed by SIGTERM:", r.returncode == -signal.SIGTERM)
                out = subprocess.check_output([sys.executable, "-c", "print('output captured')"], text=True)
                print("check_output:", out.strip())
                try:
                    subprocess.run(["/nonexistent/program"])
                except FileNotFoundError as e:
                    print("missing program:", type(e).__name__, e.errno)
                pid = os.fork()
                if pid == 0:
                    os._exit(9)
                _, status = os.waitpid(pid, 0)
                print("os.fork:", os.waitstatus_to_exitcode(status))
                for method in ("fork", "spawn"):
                    ctx = mp.get_context(method)
                    with ctx.Pool(2) as pool:
                        print(method, "Pool.map:", pool.map(square, range(8)))
                    queue = ctx.Queue()
                    proc = ctx.Process(target=describe, args=(queue, method, os.getpid()))
                    proc.start()
                    print(queue.get(timeout=60))
                    proc.join()
                    print(method, "Process exitcode:", proc.exitcode)

            """
        try Data(script.utf8).write(to: URL(fileURLWithPath: dir + "/procs.py"))
        let image = "pyprocs-\(vmm)"
        let build = try apusCommand(["build", "-t", image, python, "--add", "/usr/lib/python\(version)", "--add", dir])
        XCTAssertEqual(build.status, 0, "[\(vmm)] apus build of python3: \(build.stderrText)")
        guard build.status == 0 else { return }
        try compareImageRun(native: [python, dir + "/procs.py"], image: image, args: [dir + "/procs.py"], expectStatus: 0,
                            timeout: vmm == "qemu" ? 300 : 60)
    }

    /// redis-server (Debian's): 100 keys, BGSAVE (a forked child writes dump.rdb and the
    /// parent reaps it), INFO reports success; then a key set after the save, and
    /// `DEBUG RELOAD NOSAVE` replaces the data set with the dump's: 100 keys, their values,
    /// and not the later key. (The dump is checked inside the VM: `-v` volumes are copies.)
    func redisBackgroundSave() throws {
        guard let redisServer = try requireProgram("/usr/bin/redis-server", package: "redis-server") else { return }
        let cli = try requireTool("redis-cli", package: "redis-tools")
        let port = try Net.freePort()
        let args = ["--save", "", "--dir", "/tmp", "--dbfilename", "dump.rdb", "--enable-debug-command", "yes",
                    "--protected-mode", "no", "--bind", "0.0.0.0"]
        let server = try startApus(["-p", "\(port):6379"], redisServer, args)
        defer { server.stop() }
        let what = "[\(vmm)] redis-server BGSAVE"
        guard server.waitForOutput("Ready to accept connections", timeout: vmm == "qemu" ? 120 : 60) else {
            XCTFail("\(what): redis did not get ready\n\(server.report)")
            return
        }
        func redis(_ args: [String]) throws -> String? {
            let r = try client(cli, ["-p", String(port)] + args)
            XCTAssertEqual(r.status, 0, "\(what): redis-cli \(args.prefix(3).joined(separator: " ")): \(r.stderrText)\n\(server.report)")
            return r.status == 0 ? r.stdoutText : nil
        }
        let pairs = (1...100).flatMap { ["key\($0)", "value \($0)"] }
        XCTAssertEqual(try redis(["MSET"] + pairs), "OK\n", what)
        XCTAssertEqual(try redis(["BGSAVE"]), "Background saving started\n", "\(what)\n\(server.report)")
        // Until the parent has reaped the child (bounded; a server that stops answering ends it).
        var info = ""
        let deadline = Date().addingTimeInterval(clientTimeout)
        repeat {
            usleep(100_000)
            guard let answer = try redis(["INFO", "persistence"]) else { return }
            info = answer
        } while info.contains("rdb_bgsave_in_progress:1") && Date() < deadline
        XCTAssertTrue(info.contains("rdb_bgsave_in_progress:0"), "\(what): still saving after \(clientTimeout) s\n\(info)\n\(server.report)")
        XCTAssertTrue(info.contains("rdb_last_bgsave_status:ok"), "\(what): the save failed\n\(info)\n\(server.report)")
        XCTAssertTrue(info.contains("rdb_changes_since_last_save:0"), "\(what)\n\(info)")

        XCTAssertEqual(try redis(["SET", "after-the-save", "1"]), "OK\n", what)
        XCTAssertEqual(try redis(["DEBUG", "RELOAD", "NOSAVE"]), "OK\n", "\(what): loading the dump back\n\(server.report)")
        XCTAssertEqual(try redis(["DBSIZE"]), "100\n", "\(what): keys in the dump")
        XCTAssertEqual(try redis(["GET", "key57"]), "value 57\n", "\(what): a value from the dump")
        XCTAssertEqual(try redis(["EXISTS", "after-the-save"]), "0\n", "\(what): the data set came from the dump")

        _ = try? client(cli, ["-p", String(port), "SHUTDOWN", "NOSAVE"])
        XCTAssertEqual(server.waitExit(timeout: clientTimeout), 0, "\(what): apus's exit status after SHUTDOWN\n\(server.report)")
        XCTAssertTrue(server.stdoutText.contains("Background saving terminated with success"),
                      "\(what): redis's log lacks the child's success\n\(server.report)")
    }

    /// Runs `native` on the host (cwd /, empty environment) and `apus run -m MEMORY IMAGE
    /// ARGS`; both must exit `expectStatus` with the same stdout.
    private func compareImageRun(native: [String], image: String, args: [String], expectStatus: Int32,
                                 memory: String = "512M", timeout: TimeInterval? = nil,
                                 file: StaticString = #filePath, line: UInt = #line) throws {
        let host = try Runner.run(native[0], Array(native.dropFirst()), cwd: "/", environment: [:], timeout: 60)
        let apus = try apusCommand(["run", "--vmm", vmm, "-m", memory, image] + args,
                                   timeout: timeout ?? Harness.timeout(vmm: vmm))
        let what = "[\(vmm)] \(native.joined(separator: " "))"
        XCTAssertEqual(host.status, expectStatus, "\(what): natively: \(host.stderrText)", file: file, line: line)
        XCTAssertFalse(apus.timedOut, "\(what): timed out\nstdout: \(apus.stdoutText)\nstderr: \(Compare.tail(apus.stderr))",
                       file: file, line: line)
        XCTAssertEqual(apus.status, host.status, "\(what): status\napus stderr: \(Compare.tail(apus.stderr))", file: file, line: line)
        if let d = Compare.difference(host.stdout, apus.stdout) {
            XCTFail("\(what): stdout differs: \(d)\napus stderr: \(Compare.tail(apus.stderr))", file: file, line: line)
        }
    }
}
