// The guest test cases, written once and run per VMM by ApusVMMTests and QEMUTests.
// Each case runs a guest from Tests/Guests natively and under `apus run --vmm X` and
// compares stdout, stderr and exit status (see Harness.swift), or checks apus-only
// behaviour (crash reports, unimplemented-syscall logging, --timings).

import Foundation
import XCTest

extension VMMMatrix {
    /// Debian's busybox-static: nil (after failing the test) when it is missing in CI, a skip
    /// elsewhere.
    func requireBusybox() throws -> String? {
        try requireProgram("/bin/busybox", package: "busybox-static")
    }

    // MARK: Differential (identical to native)

    func hello() throws {
        try differentialAllVariants("hello")
    }

    /// argv and envp round-trip: spaces, empty strings, UTF-8, '=' in values, dashes that
    /// look like apus flags after PROGRAM, control characters; no variable leaks in from
    /// the host; many and long arguments; an absolute PROGRAM path as argv[0].
    func args() throws {
        let tricky = ["one", "two words", "", "ünïcödé ✓ 日本語 🐦", "--flag", "-e", "x=y", "--vmm",
                      "  leading and trailing  ", "tab\there", "new\nline", "'quoted' \"double\" $HOME \\"]
        let env = [("A", "1"), ("UNICODE", "ü✓🐦"), ("EQ", "b=c=d"), ("EMPTY", ""), ("SPACE", "a b"),
                   ("lower_case", "x")]
        try differentialAllVariants("args", args: tricky, env: env)
        // No --env at all: the guest sees docker's defaults, nothing of the host's own.
        try differentialAllVariants("args")
        // Many and long arguments and variables.
        let many = (0..<300).map { "arg-\($0)" } + [String(repeating: "L", count: 10000)]
        let manyEnv = (0..<100).map { ("VAR_\($0)", String(repeating: "v", count: $0)) }
        try differentialAllVariants("args", args: many, env: manyEnv, variants: ["musl", "glibc-pie"])
        // argv[0] as typed, absolute this time.
        try differential(Invocation(program: Harness.guestPath("args.musl"), args: ["abs"]), expectStatus: 0)
    }

    /// Exit statuses through exit(), return from main, raw SYS_exit and SYS_exit_group;
    /// 256 wraps to 0.
    func exitCodes() throws {
        let musl: [(Int, String)] = [(0, "exit"), (1, "exit"), (42, "exit"), (255, "exit"), (256, "exit"),
                                    (7, "return"), (9, "raw-exit"), (11, "raw-exit-group")]
        for (code, how) in musl {
            try differential(Invocation(program: "./exitcode.musl", args: [String(code), how]),
                             expectStatus: Int32(code & 255))
        }
        for variant in ["glibc", "glibc-pie"] {
            for (code, how) in [(42, "exit"), (3, "raw-exit"), (0, "return")] {
                try differential(Invocation(program: "./exitcode.\(variant)", args: [String(code), how]),
                                 expectStatus: Int32(code))
            }
        }
    }

    func stdio() throws { try differentialAllVariants("stdio") }

    /// apus forwards its stdin: ~100 KiB of known bytes, and /dev/null.
    func stdin() throws {
        var data = Data()
        for i in 0..<2000 { data.append(contentsOf: Array("line \(i): the quick brown fox ✓\n".utf8)) }
        data.append(contentsOf: [0, 1, 2, 255, 254])
        try differentialAllVariants("stdin", stdin: data)
        try differentialAllVariants("stdin", variants: ["musl"])
    }

    /// Not the dynamic variant: its raw brk shrink pulls memory from under glibc's malloc
    /// when malloc's heap is brk-backed, which crashes natively too.
    func memory() throws { try differentialAllVariants("memory", variants: ["musl", "glibc", "glibc-pie"]) }
    func madvise() throws { try differentialAllVariants("madvise") }
    func sharedMappings() throws { try differentialAllVariants("sharedmap") }
    func fileMappings() throws { try differentialAllVariants("filemap") }
    func time() throws {
        let now = String(Int(Date().timeIntervalSince1970))
        try differentialAllVariants("time", args: [now])
    }
    func ids() throws { try differentialAllVariants("ids") }
    func random() throws { try differentialAllVariants("random") }
    func sysinfo() throws { try differentialAllVariants("sysinfo") }
    func float() throws { try differentialAllVariants("float") }
    func tls() throws { try differentialAllVariants("tls") }
    func signals() throws { try differentialAllVariants("signals") }
    func efault() throws { try differentialAllVariants("efault") }

    /// abort() → 134, and stdout/stderr exactly what was printed before (no crash report).
    func abort() throws { try differentialAllVariants("abort", expectStatus: 134) }

    /// Signals to self with the default action: terminate (128+sig) or ignore (carry on).
    func raise() throws {
        let musl: [(Int32, String)] = [(15, "raise"), (15, "kill"), (9, "tkill"), (10, "tgkill"),
                                       (17, "raise"), (23, "kill"), (28, "tgkill")]
        let ignoredByDefault: Set<Int32> = [17, 23, 28]
        func expected(_ sig: Int32) -> Int32 { ignoredByDefault.contains(sig) ? 0 : 128 + sig }
        for (sig, how) in musl {
            try differential(Invocation(program: "./raise.musl", args: [String(sig), how]), expectStatus: expected(sig))
        }
        for variant in ["glibc", "glibc-pie"] {
            for (sig, how) in [(Int32(15), "raise"), (Int32(17), "tgkill")] {
                try differential(Invocation(program: "./raise.\(variant)", args: [String(sig), how]),
                                 expectStatus: expected(sig))
            }
        }
    }

    /// `-m/--memory` is accepted and a memory-hungry guest still behaves as natively.
    func memoryFlag() throws {
        try differential(Invocation(program: "./memory.glibc", apusFlags: ["-m", "256M"]), expectStatus: 0)
        try differential(Invocation(program: "./hello.musl", apusFlags: ["--memory", "128M"]), expectStatus: 0)
    }

    // MARK: Faults (stdout and status as natively; stderr carries apus's crash report)

    /// A store to 0x10 in crash_here(): 139, and a report naming SIGSEGV, the fault
    /// address, rip and the symbol (all variants keep their symbols; the PIE one checks
    /// that the report accounts for the load base).
    func segfaultReport() throws {
        for variant in Harness.variants {
            let (_, apus) = try differential(Invocation(program: "./segv.\(variant)", args: ["write"]),
                                             compareStderr: false, expectStatus: 139)
            if apus.timedOut { continue }
            let report = apus.stderrText
            let what = "[\(vmm)] segv.\(variant) crash report"
            XCTAssertTrue(report.contains("SIGSEGV"), "\(what) lacks \"SIGSEGV\":\n\(report)")
            XCTAssertTrue(report.contains("crash_here"), "\(what) lacks the symbol \"crash_here\":\n\(report)")
            XCTAssertTrue(report.lowercased().contains("rip"), "\(what) lacks the register \"rip\":\n\(report)")
            XCTAssertNotNil(report.range(of: #"0x0*10\b"#, options: [.regularExpression, .caseInsensitive]),
                            "\(what) lacks the fault address 0x10:\n\(report)")
        }
    }

    /// Unbounded recursion must hit a guard page: SIGSEGV (139), never a hang or a kernel crash.
    func stackOverflow() throws {
        for variant in Harness.variants {
            let (_, apus) = try differential(Invocation(program: "./segv.\(variant)", args: ["stack-overflow"]),
                                             compareStderr: false, expectStatus: 139)
            if !apus.timedOut {
                XCTAssertTrue(apus.stderrText.contains("SIGSEGV"),
                              "[\(vmm)] segv.\(variant) stack-overflow: no SIGSEGV report:\n\(apus.stderrText)")
            }
        }
    }

    /// A call through a NULL function pointer (in a PIE the code lies far above rip 0) and a
    /// call into the kernel's part of the address space are the app's own faults: 139 with a
    /// crash report (signal, fault address, rip, registers), or the program's SIGSEGV handler
    /// runs and it carries on; never a guest kernel panic.
    func wildJumps() throws {
        func checkReport(_ apus: RunResult, _ what: String, address: String) {
            guard !apus.timedOut else { return }
            let report = apus.stderrText
            for needle in ["SIGSEGV", "executing \(address)", "at rip \(address) ", "rax 0x", "r15 0x"] {
                XCTAssertTrue(report.contains(needle), "[\(vmm)] \(what): the crash report lacks \"\(needle)\":\n\(report)")
            }
        }
        for variant in Harness.variants {
            let (_, null) = try differential(Invocation(program: "./segv.\(variant)", args: ["nullcall"]),
                                             compareStderr: false, expectStatus: 139)
            checkReport(null, "segv.\(variant) nullcall", address: "0x0")
            for target in kernelRangeTargets {
                let (_, jump) = try differential(Invocation(program: "./segv.\(variant)", args: ["jump", target]),
                                                 compareStderr: false, expectStatus: 139)
                checkReport(jump, "segv.\(variant) jump \(target)", address: "0x\(target)")
                try differential(Invocation(program: "./segv.\(variant)", args: ["jump-handler", target]),
                                 compareStderr: false, expectStatus: 0)
            }
        }
    }

    /// Addresses in the kernel's part of the address space (PML4 slot 255) that no boot maps:
    /// the kernel's and the direct map's old fixed places (the kernel's entry, the boot info
    /// page) and the top GiB of the slot. All are unmapped in a Linux process too, so the
    /// native run gives the expected result.
    var kernelRangeTargets: [String] { ["7fff00100000", "7f8000001000", "7fffc0000000"] }

    /// W^X as Solo5's test_wnox checks it: executing from the stack, the heap and a read-write
    /// mmap, and writing to the program's own code, each raise SIGSEGV (caught, so one run
    /// checks all four), as on Linux.
    func writeXorExecute() throws {
        for variant in Harness.variants {
            try differential(Invocation(program: "./wnox.\(variant)"), expectStatus: 0)
        }
    }

    /// Stack, heap, mmap and (for a PIE) code addresses differ between two runs.
    func addressRandomization() throws {
        for variant in Harness.variants {
            var runs: [[Substring: Substring]] = []
            for _ in 0..<2 {
                guard let r = try apusOnly(Invocation(program: "./wnox.\(variant)", args: ["addresses"])) else { return }
                XCTAssertEqual(r.status, 0, "[\(vmm)] wnox.\(variant) addresses: \(r.stderrText)")
                var fields: [Substring: Substring] = [:]
                for line in r.stdoutText.split(separator: "\n") {
                    let parts = line.split(separator: " ")
                    if parts.count == 2 { fields[parts[0]] = parts[1] }
                }
                XCTAssertEqual(Set(fields.keys), ["stack", "heap", "mmap", "code"], "[\(vmm)] wnox.\(variant): \(r.stdoutText)")
                runs.append(fields)
            }
            let randomized: [Substring] = variant == "glibc-pie" || variant == "gcc"
                ? ["stack", "heap", "mmap", "code"] : ["stack", "heap", "mmap"]
            for key in randomized {
                XCTAssertNotEqual(runs[0][key], runs[1][key], "[\(vmm)] wnox.\(variant): \(key) at the same address twice")
            }
        }
    }

    /// The kernel's old fixed addresses hold nothing a program can read: the kernel (its ELF
    /// headers, text, data) and the direct map (boot info, page tables, the kernel's
    /// physical pages) moved to random places. And the direct map is never executable:
    /// calling into the GDT's page (found with sgdt; a direct-map page on both platforms)
    /// faults. On the native platform UMIP, where the CPU has it, refuses sgdt itself.
    func kernelAddressProbes() throws {
        let old = ["7fff00100000", "7fff00101000", "7fff00130000", "7fff00140000", "7fff00000000",
                   "7f8000000000", "7f8000001000", "7f8000010000", "7f8000100000"]
        for variant in Harness.variants {
            try differential(Invocation(program: "./wnox.\(variant)", args: ["probe"] + old), expectStatus: 0)
            guard let r = try apusOnly(Invocation(program: "./wnox.\(variant)", args: ["gdt-exec"])) else { continue }
            XCTAssertEqual(r.status, 0, "[\(vmm)] wnox.\(variant) gdt-exec: \(r.stdoutText)\(r.stderrText)")
            XCTAssertTrue(["execute the GDT's page: SIGSEGV\n", "sgdt: refused\n"].contains(r.stdoutText),
                          "[\(vmm)] wnox.\(variant) gdt-exec: \(r.stdoutText)")
            if vmm == "apus" {  // pvm answers sgdt for app code: the NX check must have run
                XCTAssertEqual(r.stdoutText, "execute the GDT's page: SIGSEGV\n", "[\(vmm)] wnox.\(variant) gdt-exec")
            }
        }
    }

    /// ud2 → SIGILL (132); idiv by zero → SIGFPE (136). Only status and stdout are checked.
    func otherFaults() throws {
        for variant in ["musl", "glibc-pie"] {
            try differential(Invocation(program: "./segv.\(variant)", args: ["ill"]),
                             compareStderr: false, expectStatus: 132)
            try differential(Invocation(program: "./segv.\(variant)", args: ["div0"]),
                             compareStderr: false, expectStatus: 136)
        }
    }

    // MARK: apus-only behaviour

    /// io_setup (206) is not implemented: -1/ENOSYS to the program, which carries on;
    /// apus logs it once on stderr however often it is called.
    func unimplementedSyscall() throws {
        for variant in Harness.variants {
            guard let r = try apusOnly(Invocation(program: "./unknown_syscall.\(variant)")) else { continue }
            let what = "[\(vmm)] unknown_syscall.\(variant)"
            XCTAssertEqual(r.status, 0, "\(what): exit status\nstderr: \(r.stderrText)")
            XCTAssertEqual(r.stdoutText, """
                io_setup call 1: ret=-1 errno=38 (ENOSYS)
                io_setup call 2: ret=-1 errno=38 (ENOSYS)
                still running

                """, "\(what): stdout")
            let message = "apus: unimplemented syscall io_setup (206)"
            let count = r.stderrText.components(separatedBy: message).count - 1
            XCTAssertEqual(count, 1, "\(what): expected \"\(message)\" exactly once on stderr:\n\(r.stderrText)")
        }
    }

    /// A tmpfs that fills the VM's memory (after the app mapped and freed most of it, so
    /// free memory is scattered pages): ENOSPC, the file intact, memory back after unlink.
    func tmpfsFull() throws {
        for variant in Harness.variants {
            guard let r = try apusOnly(Invocation(program: "./tmpfsfull.\(variant)", apusFlags: ["-m", "32M"])) else { continue }
            let what = "[\(vmm)] tmpfsfull.\(variant)"
            XCTAssertEqual(r.status, 0, "\(what): exit status\nstdout: \(r.stdoutText)\nstderr: \(r.stderrText)")
            XCTAssertTrue(r.stdoutText.hasSuffix("failures: 0\n"), "\(what): \(r.stdoutText)")
        }
    }

    /// --timings: program output untouched on stdout, a timeline on stderr.
    /// Signals delivered to handlers: siginfo, masks, SA_NODEFER/RESETHAND/ONSTACK, pending.
    func signalHandlers() throws { try differentialAllVariants("sighandler") }

    /// Faults to the program's handlers (SIGSEGV MAPERR/ACCERR with si_addr, SIGFPE, SIGILL on
    /// the alternate stack), recovered with siglongjmp.
    func faultHandlers() throws { try differentialAllVariants("faulthandler") }

    /// pthreads: mutex, condition variables, TLS, join, timed wait; then 64 threads.
    func threads() throws {
        try differentialAllVariants("threads")
        // 64 threads, 10^6 lock/unlock pairs on one futex-based mutex in all.
        try differential(Invocation(program: "./threads.musl", args: ["64", "15625"]), expectStatus: 0)
        // glibc gives each thread an 8 MiB stack (RLIMIT_STACK) and apus backs memory eagerly
        // (PVM.md: the app must not fault), so 64 glibc threads need a larger VM.
        try differential(Invocation(program: "./threads.glibc", args: ["64", "15625"], apusFlags: ["--memory", "1G"]),
                         expectStatus: 0)
    }

    /// A static Rust program: threads, channels, Mutex, stdout and stderr.
    func rust() throws {
        guard Harness.isExecutableFile(Harness.guestPath("rust_threads.rust")) else {
            throw XCTSkip("rust_threads.rust not built (no rustc when Tests/Guests/build.sh ran)")
        }
        try differential(Invocation(program: "./rust_threads.rust"), expectStatus: 0)
    }

    /// A static Go program: goroutines, channels, timers (netpoll on epoll and a pipe), GC,
    /// file reading, and a nil dereference turned into a recovered panic (SIGSEGV handler).
    func go() throws {
        guard Harness.isExecutableFile(Harness.guestPath("go_runtime.go")) else {
            throw XCTSkip("go_runtime.go not built (no go when Tests/Guests/build.sh ran)")
        }
        try differential(Invocation(program: "./go_runtime.go"), expectStatus: 0)
    }

    /// Process information calls; uname's nodename is the host's, given with --hostname.
    func procinfo() throws {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        let host = String(cString: buffer)
        for variant in Harness.variants {
            try differential(Invocation(program: "./procinfo.\(variant)", apusFlags: ["--hostname", host]), expectStatus: 0)
        }
    }

    /// The vDSO: the time guest reads CLOCK_MONOTONIC over a thousand times; with --trace,
    /// almost none of those may show up as syscalls.
    func vdso() throws {
        let now = String(Int(Date().timeIntervalSince1970))
        for variant in Harness.variants {
            guard let r = try apusOnly(Invocation(program: "./time.\(variant)", args: [now], apusFlags: ["--trace"])) else { continue }
            let calls = r.stderrText.components(separatedBy: "\n").filter { $0.hasPrefix("[pid 1] clock_gettime(CLOCK_MONOTONIC") }.count
            XCTAssertEqual(r.status, 0, "[\(vmm)] time.\(variant) --trace: status\n\(r.stderrText.suffix(2000))")
            XCTAssertLessThan(calls, 10, "[\(vmm)] time.\(variant): \(calls) clock_gettime syscalls: the vDSO is not used")
        }
    }

    /// Debian's busybox-static, unmodified: shell builtins, sort, sha256sum, wc, cat (sendfile),
    /// against the same binary run natively; `ls -l /` lists the image's root.
    func busybox() throws {
        guard let busybox = try requireBusybox() else { return }
        let text = Data("banana\napple\ncherry\nthe quick brown fox\n".utf8)
        try differential(Invocation(program: busybox, args: ["sh", "-c", "echo hi; for i in 1 2 3; do echo $i; done; x=$((6*7)); echo $x"]), expectStatus: 0)
        try differential(Invocation(program: busybox, args: ["sort"], stdin: text), expectStatus: 0)
        try differential(Invocation(program: busybox, args: ["sha256sum"], stdin: text), expectStatus: 0)
        try differential(Invocation(program: busybox, args: ["wc"], stdin: text), expectStatus: 0)
        try differential(Invocation(program: busybox, args: ["cat"], stdin: text), expectStatus: 0)
        guard let ls = try apusOnly(Invocation(program: busybox, args: ["ls", "-l", "/"])) else { return }
        XCTAssertEqual(ls.status, 0, "[\(vmm)] busybox ls -l /: \(ls.stderrText)")
        for entry in [" dev", " proc", " tmp"] {
            XCTAssertTrue(ls.stdoutText.contains(entry), "[\(vmm)] busybox ls -l / lacks\(entry):\n\(ls.stdoutText)")
        }
    }

    /// `-v HOST:GUEST[:ro]`: a host directory (files, a subdirectory, a symlink) copied into
    /// the image; reads match the host, writes stay in the VM, and `:ro` refuses them (EROFS).
    func volumes() throws {
        guard let busybox = try requireBusybox() else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("apus-volume-\(getpid())-\(vmm)").path
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("alpha\n".utf8).write(to: URL(fileURLWithPath: dir + "/a.txt"))
        try Data(repeating: 0x5a, count: 70_000).write(to: URL(fileURLWithPath: dir + "/sub/big.bin"))
        try FileManager.default.createSymbolicLink(atPath: dir + "/link", withDestinationPath: "a.txt")

        let mount = ["-v", "\(dir):\(dir)"]
        try differential(Invocation(program: busybox, args: ["sha256sum", dir + "/a.txt", dir + "/sub/big.bin", dir + "/link"],
                                    apusFlags: mount), expectStatus: 0)
        if let find = try apusOnly(Invocation(program: busybox, args: ["find", dir], apusFlags: mount)) {
            XCTAssertEqual(find.stdoutText.split(separator: "\n").sorted(),
                           [dir, dir + "/a.txt", dir + "/link", dir + "/sub", dir + "/sub/big.bin"].map { Substring($0) },
                           "[\(vmm)] find lists the imported tree")
        }
        let write = "echo changed > \(dir)/a.txt; read line < \(dir)/a.txt; echo $line"
        if let rw = try apusOnly(Invocation(program: busybox, args: ["sh", "-c", write], apusFlags: mount)) {
            XCTAssertEqual(rw.stdoutText, "changed\n", "[\(vmm)] the guest writes its copy: \(rw.stderrText)")
            XCTAssertEqual(try String(contentsOfFile: dir + "/a.txt", encoding: .utf8), "alpha\n", "[\(vmm)] the host file is untouched")
        }
        if let ro = try apusOnly(Invocation(program: busybox, args: ["rm", "/data/a.txt"], apusFlags: ["-v", "\(dir):/data:ro"])) {
            XCTAssertEqual(ro.status, 1, "[\(vmm)] rm in a :ro volume fails")
            XCTAssertTrue(ro.stderrText.contains("Read-only file system"), "[\(vmm)] \(ro.stderrText)")
        }
    }

    /// alarm/setitimer/pause/sigsuspend/sigtimedwait and a sleep interrupted by SIGALRM.
    func timers() throws { try differentialAllVariants("timers") }

    /// timer_create (signal, thread, SIGEV_THREAD), timerfd, signalfd, the temporary masks of
    /// ppoll/pselect/epoll_pwait, nanosleep's remaining time, CPU-time clocks and ITIMER_PROF.
    func events() throws { try differentialAllVariants("events") }

    /// /proc/self/fd, /proc/self/stat, /proc/stat and comm.
    func procfs() throws { try differentialAllVariants("procfs") }

    /// Two threads spinning in user code, each waiting for the other without a syscall:
    /// they finish only if the kernel preempts them — the native platform's LAPIC timer
    /// slice, the VMM's redirect into the kernel at the slice's end on pvm.
    func preemption() throws {
        try differentialAllVariants("preempt")
    }

    /// Pipes, eventfd, epoll and poll between threads.
    func pipes() throws { try differentialAllVariants("pipes") }

    /// Files: /tmp, directories, links, descriptors, dup2, mmap of a file, /dev, /proc/self/exe.
    func files() throws { try differentialAllVariants("files") }

    /// gaps.c: creat, the xattr reads (ENODATA, empty lists), getpriority/setpriority,
    /// PR_SET_NO_NEW_PRIVS, syncfs, and their inheritance by a child: identical to native.
    func gaps() throws {
        try differentialAllVariants("gaps", expectStatus: 0)
    }

    /// /proc/mounts and /proc/self/mountinfo: busybox df finds the root file system.
    func mounts() throws {
        guard let busybox = try requireBusybox(),
              let r = try apusOnly(Invocation(program: busybox, args: ["sh", "-c", "df /; cat /proc/mounts /proc/self/mountinfo"]))
        else { return }
        let what = "[\(vmm)] busybox df / and /proc/mounts"
        XCTAssertEqual(r.status, 0, "\(what): status\nstderr: \(r.stderrText)")
        XCTAssertTrue(r.stdoutText.contains("tmpfs / tmpfs rw"), "\(what): no root in /proc/mounts:\n\(r.stdoutText)")
        XCTAssertTrue(r.stdoutText.contains(" / / rw,relatime - tmpfs tmpfs rw"), "\(what): no root in mountinfo:\n\(r.stdoutText)")
        XCTAssertTrue(r.stdoutText.split(separator: "\n").contains { $0.hasPrefix("tmpfs") && $0.hasSuffix(" /") },
                      "\(what): df does not list /:\n\(r.stdoutText)")
    }

    /// --trace: one strace-like line per syscall on stderr, the program's stdout untouched.
    func trace() throws {
        for variant in ["musl", "glibc"] {
            guard let r = try apusOnly(Invocation(program: "./hello.\(variant)", apusFlags: ["--trace"])) else { continue }
            let what = "[\(vmm)] --trace hello.\(variant)"
            XCTAssertEqual(r.status, 0, "\(what): status\nstderr: \(r.stderrText)")
            XCTAssertEqual(r.stdoutText, "Hello from Apus!\n", "\(what): stdout")
            let expected = variant == "musl" ? "writev(1, " : "write(1, \"Hello from Apus!\\n\", 17) = 17"
            XCTAssertTrue(r.stderrText.contains(expected), "\(what): no \(expected) in:\n\(r.stderrText)")
            XCTAssertTrue(r.stderrText.contains("arch_prctl(0x1002, "), "\(what): no arch_prctl line:\n\(r.stderrText)")
            XCTAssertTrue(r.stderrText.hasSuffix("[pid 1] exit_group(0) = ?\n"), "\(what): the last line is not the exit:\n\(r.stderrText)")
        }
        // Several processes: every line names its pid, as strace -f does.
        guard let busybox = try requireBusybox(),
              let r = try apusOnly(Invocation(program: busybox, args: ["sh", "-c", "true | cat"], apusFlags: ["--trace"]))
        else { return }
        let what = "[\(vmm)] --trace busybox sh -c 'true | cat'"
        XCTAssertEqual(r.status, 0, "\(what): status\nstderr: \(r.stderrText)")
        let lines = r.stderrText.split(separator: "\n")
        XCTAssertTrue(lines.allSatisfy { $0.hasPrefix("[pid ") }, "\(what): a line without its pid:\n\(r.stderrText)")
        XCTAssertTrue(lines.contains { $0.hasPrefix("[pid 1] clone(") }, "\(what): no clone by pid 1:\n\(r.stderrText)")
        XCTAssertTrue(lines.contains { !$0.hasPrefix("[pid 1] ") && $0.contains("exit_group(0) = ?") },
                      "\(what): no child's exit_group line:\n\(r.stderrText)")
    }

    /// A guest that spins forever is stopped by --timeout: 251 and a message, never 0.
    func timeout() throws {
        guard let r = try apusOnly(Invocation(program: "./spin.musl", apusFlags: ["--timeout", "1"])) else { return }
        let what = "[\(vmm)] --timeout 1 spin.musl"
        XCTAssertEqual(r.status, 251, "\(what): status\nstderr: \(r.stderrText)")
        XCTAssertTrue(r.stderrText.contains("did not finish within"), "\(what): no timeout message:\n\(r.stderrText)")
    }

    func timings() throws {
        for variant in ["musl", "glibc-pie"] {
            guard let r = try apusOnly(Invocation(program: "./hello.\(variant)", apusFlags: ["--timings"])) else { continue }
            let what = "[\(vmm)] --timings hello.\(variant)"
            XCTAssertEqual(r.status, 0, "\(what): status\nstderr: \(r.stderrText)")
            XCTAssertEqual(r.stdoutText, "Hello from Apus!\n", "\(what): stdout must hold only the program's output")
            XCTAssertTrue(r.stderrText.contains("kernel entry"), "\(what): no \"kernel entry\" on stderr:\n\(r.stderrText)")
            XCTAssertTrue(r.stderrText.contains("app entry"), "\(what): no \"app entry\" on stderr:\n\(r.stderrText)")
        }
    }
}

// MARK: - Hardening: what a program does never panics the guest kernel

extension VMMMatrix {
    /// Negative and huge timeouts, mmap hints and lengths near 2^64, positions and iovec
    /// lengths at the edge of their type, rt_sigtimedwait for a signal with a handler:
    /// Linux's answers, identical to native (the guest kernel used to panic or hang on each).
    func oddArguments() throws {
        try differentialAllVariants("oddargs")
        // A signal handler returning to a rip the CPU cannot return to: SIGSEGV (139).
        for address in ["0x800000000000", "0xffff800000000000", "0xfffffffffffff000"] {
            for variant in ["musl", "glibc-pie"] {
                try differential(Invocation(program: "./oddargs.\(variant)", args: ["sigreturn", address]),
                                 compareStderr: false, expectStatus: 139)
            }
        }
    }

    /// Empty files in one directory until the VM's tmpfs is full: ENOSPC, as tmpfs on Linux
    /// (the kernel used to panic out of heap near 200,000 files), and the memory back after
    /// removing them. Not run natively: it would fill the host's /tmp.
    func manyFiles() throws {
        try selfCheckingInSmallVM("manyfiles")
    }

    /// The program takes all memory, then asks for pipes full of data, timers, mappings,
    /// files and socket pairs until each is refused: errnos, never the kernel out of heap
    /// (a panic before), and everything works again once it lets go. Not run natively.
    func memoryFull() throws {
        try selfCheckingInSmallVM("memfull")
    }

    /// A guest that checks itself (its last line `failures: 0`) in a 16 MiB VM, musl and
    /// static-pie: exit 0 with no failure.
    private func selfCheckingInSmallVM(_ name: String) throws {
        for variant in ["musl", "glibc-pie"] {
            guard let r = try apusOnly(Invocation(program: "./\(name).\(variant)", apusFlags: ["-m", "16M"])) else { continue }
            let what = "[\(vmm)] \(name).\(variant)"
            XCTAssertEqual(r.status, 0, "\(what): exit status\nstdout: \(r.stdoutText)\nstderr: \(r.stderrText)")
            XCTAssertTrue(r.stdoutText.hasSuffix("failures: 0\n"), "\(what): \(r.stdoutText)")
        }
    }

    /// The syscall fuzzer (Tests/Guests/sysfuzz.c): `calls` random syscalls with edge
    /// arguments per seed, in a VM without a network. A guest kernel panic (250), a hang past
    /// --timeout (251), a fault of the fuzzer itself (3) or a crash of the VMM fails; the run
    /// must end with the fuzzer's summary. Longer runs: scripts/sysfuzz.sh.
    func syscallFuzzer(calls: Int, seeds: [Int], variant: String = "musl", timeoutSeconds: Int) throws {
        for seed in seeds {
            let inv = Invocation(program: "./sysfuzz.\(variant)", args: [String(seed), String(calls)],
                                 apusFlags: ["--network", "none", "--timeout", String(timeoutSeconds)])
            guard let r = try apusOnly(inv) else { continue }
            let what = "[\(vmm)] sysfuzz.\(variant) seed \(seed), \(calls) calls"
            XCTAssertEqual(r.status, 0, "\(what): exit status \(r.status) (250: kernel panic, 251: hang)\n"
                           + "stdout: \(r.stdoutText)\nstderr tail: \(Compare.tail(r.stderr))")
            XCTAssertTrue(r.stdoutText.contains("sysfuzz: seed \(seed): "), "\(what): no summary:\n\(r.stdoutText)")
            XCTAssertTrue(r.stdoutText.hasSuffix("sysfuzz: done\n"), "\(what): did not finish:\n\(r.stdoutText)")
            XCTAssertFalse(r.stderrText.contains("panic"), "\(what): \(Compare.tail(r.stderr))")
        }
    }
}
