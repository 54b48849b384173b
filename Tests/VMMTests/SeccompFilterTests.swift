// The VMM's seccomp filter: the BPF program run by an interpreter on synthetic system calls
// (what it allows and what it traps), and the real filter installed in forked children
// (the kernel agrees, and a forbidden call gives the one-line report and exit 125).

import CKVM
import XCTest
@testable import VMM

#if canImport(Glibc)
import Glibc
#endif

/// A classic-BPF interpreter for the instructions `SeccompFilter.program` emits, over a
/// `struct seccomp_data` (nr, arch, instruction pointer, six 64-bit arguments).
struct SeccompMachine {
    let program: [sock_filter]

    enum Failure: Error { case badInstruction(Int), fellOffTheEnd, badLoad(UInt32) }

    func run(nr: UInt32, arch: UInt32 = CKVM_AUDIT_ARCH_X86_64, args: [UInt64] = []) throws -> UInt32 {
        var data = [UInt8](repeating: 0, count: 64)
        func put32(_ v: UInt32, _ at: Int) { for i in 0..<4 { data[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
        put32(nr, Int(CKVM_SECCOMP_DATA_NR))
        put32(arch, Int(CKVM_SECCOMP_DATA_ARCH))
        for (i, a) in args.enumerated() {
            put32(UInt32(truncatingIfNeeded: a), Int(CKVM_SECCOMP_DATA_ARGS) + 8 * i)
            put32(UInt32(truncatingIfNeeded: a >> 32), Int(CKVM_SECCOMP_DATA_ARGS) + 8 * i + 4)
        }
        var accumulator: UInt32 = 0
        var pc = 0
        while pc < program.count {
            let insn = program[pc]
            pc += 1
            switch insn.code {
            case CKVM_BPF_LOAD_WORD:
                let at = Int(insn.k)
                guard at % 4 == 0, at + 4 <= data.count else { throw Failure.badLoad(insn.k) }
                accumulator = (0..<4).reduce(0) { $0 | UInt32(data[at + $1]) << (8 * UInt32($1)) }
            case CKVM_BPF_JUMP_EQUAL:
                pc += Int(accumulator == insn.k ? insn.jt : insn.jf)
            case CKVM_BPF_JUMP_GREATER_EQUAL:
                pc += Int(accumulator >= insn.k ? insn.jt : insn.jf)
            case CKVM_BPF_JUMP_BITS_SET:
                pc += Int(accumulator & insn.k != 0 ? insn.jt : insn.jf)
            case CKVM_BPF_RETURN:
                return insn.k
            default:
                throw Failure.badInstruction(pc - 1)
            }
        }
        throw Failure.fellOffTheEnd
    }
}

/// x86-64 system call numbers used below.
private enum NR {
    static let read = 0, write = 1, open = 2, mmap = 9, mprotect = 10, ioctl = 16, socket = 41
    static let clone = 56, execve = 59, clock_gettime = 228, openat = 257, clone3 = 435
}

final class SeccompFilterTests: XCTestCase {
    let machine = SeccompMachine(program: SeccompFilter.program())
    let allow = CKVM_SECCOMP_RET_ALLOW
    let trap = CKVM_SECCOMP_RET_TRAP

    func testTableNamesMatchTheirNumbers() {
        Sandbox.installSyscallNames()
        for rule in SeccompFilter.rules {
            let name = ckvm_syscall_name(Int(rule.number)).map { String(cString: $0) }
            XCTAssertEqual(name, rule.name, "syscall \(rule.number)")
            XCTAssertFalse(rule.reason.isEmpty, "\(rule.name) needs a reason")
        }
        XCTAssertEqual(Set(SeccompFilter.rules.map(\.number)).count, SeccompFilter.rules.count, "a syscall listed twice")
        XCTAssertLessThan(SeccompFilter.program().count, 4096, "BPF_MAXINSNS")
    }

    /// Arguments that meet every condition of a rule (the first allowed value of each).
    private func meeting(_ conditions: [SeccompFilter.Condition]) -> [UInt64] {
        var args = [UInt64](repeating: 0, count: 6)
        for condition in conditions {
            if case .oneOf(let argument, let values) = condition { args[argument] = UInt64(values[0].value) }
        }
        return args
    }

    func testEveryRuleIsAllowedWithItsArguments() throws {
        for rule in SeccompFilter.rules {
            switch rule.action {
            case .fail(let errno):
                XCTAssertEqual(try machine.run(nr: rule.number), CKVM_SECCOMP_RET_ERRNO | UInt32(errno), rule.name)
            case .allow(let conditions):
                XCTAssertEqual(try machine.run(nr: rule.number, args: meeting(conditions)), allow, rule.name)
                for condition in conditions {
                    switch condition {
                    case .oneOf(let argument, let values):
                        for v in values {
                            var args = meeting(conditions)
                            args[argument] = UInt64(v.value)
                            XCTAssertEqual(try machine.run(nr: rule.number, args: args), allow, "\(rule.name)(\(v.name))")
                            // The kernel truncates these int arguments: high bits do not matter.
                            args[argument] |= 0xdead_beef_0000_0000
                            XCTAssertEqual(try machine.run(nr: rule.number, args: args), allow, "\(rule.name)(\(v.name) | high bits)")
                        }
                        var args = meeting(conditions)
                        args[argument] = 0x1234_5678
                        XCTAssertEqual(try machine.run(nr: rule.number, args: args), trap, "\(rule.name) with another value")
                    case .bitsClear(let argument, let mask, let name):
                        var args = meeting(conditions)
                        args[argument] = UInt64(~mask)
                        XCTAssertEqual(try machine.run(nr: rule.number, args: args), allow, "\(rule.name) without \(name)")
                        args[argument] = UInt64(mask)
                        XCTAssertEqual(try machine.run(nr: rule.number, args: args), trap, "\(rule.name) with \(name)")
                    }
                }
            }
        }
    }

    /// The table read directly: what the filter must answer for a call.
    private func expected(nr: UInt32, args: [UInt64]) -> UInt32 {
        guard let rule = SeccompFilter.rules.first(where: { $0.number == nr }) else { return trap }
        switch rule.action {
        case .fail(let errno): return CKVM_SECCOMP_RET_ERRNO | UInt32(errno)
        case .allow(let conditions):
            let met = conditions.allSatisfy { condition in
                switch condition {
                case .oneOf(let argument, let values):
                    return values.contains { $0.value == UInt32(truncatingIfNeeded: args[argument]) }
                case .bitsClear(let argument, let mask, _):
                    return UInt32(truncatingIfNeeded: args[argument]) & mask == 0
                }
            }
            return met ? allow : trap
        }
    }

    /// Every number from 0 to 600 and a few argument patterns: the search tree answers as
    /// the table says.
    func testTheProgramAnswersAsTheTableForEveryNumber() throws {
        let patterns: [[UInt64]] = [
            [0, 0, 0, 0, 0, 0],
            [UInt64.max, UInt64.max, UInt64.max, UInt64.max, UInt64.max, UInt64.max],
            [UInt64(AF_INET), UInt64(CKVM_RUN), UInt64(PROT_READ | PROT_WRITE), 0, 0, 0],
            [UInt64(CKVM_CLONE_PTHREAD_FLAGS), 128, UInt64(SIGABRT), 0, 0, 0],
            [33, UInt64(CKVM_IOEVENTFD), 0x22, 0, 0, 0],
            [3, UInt64(IPPROTO_TCP), UInt64(TCP_NODELAY), 0, 0, 0],
            [3, UInt64(SOL_SOCKET), UInt64(SO_ERROR), 0, 0, 0],
            [3, UInt64(IPPROTO_TCP), UInt64(SO_ERROR), 0, 0, 0],
        ]
        for nr in UInt32(0)..<600 {
            for args in patterns {
                XCTAssertEqual(try machine.run(nr: nr, args: args), expected(nr: nr, args: args), "syscall \(nr) args \(args)")
            }
        }
    }

    func testWhatAnEscapedGuestWouldWantIsTrapped() throws {
        let ioctl = UInt32(NR.ioctl), socket = UInt32(NR.socket)
        let denied: [(String, UInt32, [UInt64])] = [
            ("execve", 59, []), ("execveat", 322, []), ("creat", 85, []), ("stat", 4, []), ("rename", 82, []),
            ("ptrace", 101, []), ("fork", 57, []), ("vfork", 58, []), ("kill", 62, []),
            ("mount", 165, []), ("unshare", 272, []), ("setns", 308, []), ("bpf", 321, []),
            ("process_vm_writev", 311, []), ("init_module", 175, []), ("memfd_create", 319, []),
            ("prctl", 157, []), ("seccomp", 317, []), ("io_uring_setup", 425, []), ("bind", 49, []),
            ("listen", 50, []), ("chdir", 80, []), ("unlinkat", 263, []), ("mseal", 462, []),
            ("ioctl KVM_CREATE_VM", ioctl, [0, UInt64(CKVM_CREATE_VM)]),
            ("ioctl KVM_SET_USER_MEMORY_REGION", ioctl, [0, UInt64(CKVM_SET_USER_MEMORY_REGION)]),
            // (KVM_SET_REGS is allowed: the preemption of app code on pvm sets rip and rflags.)
            ("ioctl KVM_SET_SREGS", ioctl, [0, UInt64(CKVM_SET_SREGS)]),
            ("ioctl KVM_SET_CPUID2", ioctl, [0, UInt64(CKVM_SET_CPUID2)]),
            ("ioctl TIOCSTI", ioctl, [0, 0x5412]),
            ("socket AF_UNIX", socket, [UInt64(AF_UNIX), 1]),
            ("socket AF_NETLINK", socket, [UInt64(AF_NETLINK), 3]),
            ("socket AF_PACKET", socket, [UInt64(AF_PACKET), 3]),
            ("socket AF_INET6", socket, [UInt64(AF_INET6), 1]),
            ("setsockopt SO_ATTACH_FILTER", 54, [3, UInt64(SOL_SOCKET), 26]),
            ("setsockopt TCP_ULP", 54, [3, UInt64(IPPROTO_TCP), 31]),
            ("getsockopt SO_PEERCRED", 55, [3, UInt64(SOL_SOCKET), 17]),
            ("mmap PROT_EXEC", 9, [0, 4096, UInt64(PROT_READ | PROT_EXEC), UInt64(MAP_PRIVATE | MAP_ANONYMOUS)]),
            ("mprotect PROT_EXEC", 10, [0, 4096, UInt64(PROT_READ | PROT_WRITE | PROT_EXEC)]),
            ("clone of a process", UInt32(NR.clone), [UInt64(SIGCHLD)]),
            ("clone of a thread in a new namespace", UInt32(NR.clone), [UInt64(CKVM_CLONE_PTHREAD_FLAGS) | 0x1000_0000]),
            ("an unknown number", 999, []),
            ("the largest number", 0x3fff_ffff, []),
        ]
        for (what, nr, args) in denied {
            XCTAssertEqual(try machine.run(nr: nr, args: args), trap, what)
        }
        // Opens fail (glibc's malloc probes a /proc file and copes); clone3 says ENOSYS, so
        // that glibc uses clone, whose flags the filter reads.
        XCTAssertEqual(try machine.run(nr: UInt32(NR.openat)), CKVM_SECCOMP_RET_ERRNO | UInt32(EACCES), "openat")
        XCTAssertEqual(try machine.run(nr: UInt32(NR.open)), CKVM_SECCOMP_RET_ERRNO | UInt32(EACCES), "open")
        XCTAssertEqual(try machine.run(nr: UInt32(NR.clone3)), CKVM_SECCOMP_RET_ERRNO | UInt32(ENOSYS), "clone3")
        XCTAssertEqual(try machine.run(nr: UInt32(NR.clone), args: [UInt64(CKVM_CLONE_PTHREAD_FLAGS)]), allow, "clone of a thread")
        // x32 read and write, and read/write of the i386 ABI.
        XCTAssertEqual(try machine.run(nr: 0x4000_0000 | 0), trap, "x32 read")
        XCTAssertEqual(try machine.run(nr: 0x4000_0000 | 1), trap, "x32 write")
        XCTAssertEqual(try machine.run(nr: 3, arch: 0x4000_0003), trap, "i386 read")
        XCTAssertEqual(try machine.run(nr: 1, arch: 0xc000_003e ^ 1), trap, "another arch")
        // And the same calls in their allowed forms.
        XCTAssertEqual(try machine.run(nr: 0), allow, "read")
        XCTAssertEqual(try machine.run(nr: ioctl, args: [5, UInt64(CKVM_RUN), 0]), allow, "KVM_RUN")
        XCTAssertEqual(try machine.run(nr: socket, args: [UInt64(AF_INET), 1, 0]), allow, "socket AF_INET")
        XCTAssertEqual(try machine.run(nr: 54, args: [3, UInt64(IPPROTO_TCP), UInt64(TCP_NODELAY), 0, 4]), allow, "TCP_NODELAY")
        XCTAssertEqual(try machine.run(nr: 9, args: [0, 4096, UInt64(PROT_READ | PROT_WRITE), 0x22]), allow, "mmap RW")
    }

    // MARK: the real filter in a child process

    /// Forks; the child sends its stderr into a pipe, runs `before`, installs the VMM's filter
    /// and runs `body`, then exits 0. Returns the child's exit status (or 128+signal) and
    /// stderr. The closures must only call C functions: the child of a threaded process must
    /// not allocate through Swift.
    private func inSandboxedChild(before: () -> Void = {}, _ body: () -> Void) -> (status: Int32, stderr: String) {
        let program = SeccompFilter.program()
        Sandbox.installSyscallNames()  // in the parent: the child must not allocate
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&fds), 0)
        let pid = fork()
        if pid == 0 {
            dup2(fds[1], 2)
            close(fds[0])
            before()
            let r = program.withUnsafeBufferPointer { ckvm_seccomp_install($0.baseAddress, UInt16($0.count), 125) }
            if r != 0 { _exit(99) }
            body()
            _exit(0)
        }
        close(fds[1])
        var output: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n <= 0 { break }
            output += buffer[..<n]
        }
        close(fds[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, String(decoding: output, as: UTF8.self))
    }

    func testAllowedCallsRunUnderTheKernelsFilter() {
        let (status, stderr) = inSandboxedChild {
            // Each of these would end the child with 125 and a report if the filter trapped it.
            _ = getpid()
            var ts = timespec()
            _ = ckvm_syscall6(NR.clock_gettime, Int(CLOCK_MONOTONIC), Int(bitPattern: UnsafeMutableRawPointer(&ts)), 0, 0, 0, 0)
            let fd = ckvm_syscall6(NR.socket, Int(AF_INET), Int(SOCK_DGRAM.rawValue), 0, 0, 0, 0)
            if fd < 0 { _exit(3) }
            _ = ckvm_syscall6(3, fd, 0, 0, 0, 0, 0)
            // KVM_RUN on a descriptor that is no vCPU: the kernel's EBADF/ENOTTY, not a trap.
            let r = ckvm_syscall6(NR.ioctl, 0, Int(bitPattern: UInt(CKVM_RUN)), 0, 0, 0, 0)
            if r >= 0 { _exit(4) }
            // A thread: glibc's clone3 gets ENOSYS and falls back to clone with its flags.
            var thread = pthread_t()
            if pthread_create(&thread, nil, { _ in nil }, nil) != 0 { _exit(5) }
            pthread_join(thread, nil)
            // Opening a file fails with EACCES instead of stopping the process.
            let opened = "/".withCString { ckvm_syscall6(NR.openat, Int(AT_FDCWD), Int(bitPattern: $0), Int(O_RDONLY), 0, 0, 0) }
            if opened != -Int(EACCES) { _exit(6) }
            _ = write(2, "ok", 2)
        }
        XCTAssertEqual(status, 0, stderr)
        XCTAssertEqual(stderr, "ok")
    }

    func testForbiddenCallStopsTheProcessWithOneLine() {
        let cases: [(String, () -> Void)] = [
            ("forbidden system call 59 (execve)", {
                _ = ckvm_syscall6(NR.execve, 0, 0, 0, 0, 0, 0)
            }),
            ("forbidden system call 41 (socket)", {
                _ = ckvm_syscall6(NR.socket, Int(AF_UNIX), Int(SOCK_STREAM.rawValue), 0, 0, 0, 0)
            }),
            ("forbidden system call 16 (ioctl)", {
                _ = ckvm_syscall6(NR.ioctl, 0, Int(bitPattern: UInt(CKVM_CREATE_VM)), 0, 0, 0, 0)
            }),
            ("forbidden system call 9 (mmap)", {
                _ = ckvm_syscall6(NR.mmap, 0, 4096, Int(PROT_READ | PROT_EXEC), Int(MAP_PRIVATE | MAP_ANONYMOUS), -1, 0)
            }),
            ("forbidden system call 1073741825 (x32 ABI)", {
                _ = ckvm_syscall6(0x4000_0001, 2, 0, 0, 0, 0, 0)
            }),
        ]
        for (expected, call) in cases {
            let (status, stderr) = inSandboxedChild(call)
            XCTAssertEqual(status, 125, expected)
            XCTAssertEqual(stderr, "apus: the VMM was stopped by its sandbox: \(expected)\n")
        }
    }

    /// A thread started before the filter (TSYNC covers it) that blocks every signal but
    /// SIGSYS, as the network I/O thread does, reports its forbidden call the same way.
    func testAnEarlierThreadIsCoveredAndReports() {
        // The thread waits on the gate pipe until the filter is in place, then calls execve.
        let gate = UnsafeMutablePointer<Int32>.allocate(capacity: 2)
        defer { gate.deallocate() }
        var thread = pthread_t()
        let (status, stderr) = inSandboxedChild(before: {
            if pipe(gate) != 0 { _exit(5) }
            var mask = sigset_t(), previous = sigset_t()
            sigfillset(&mask)
            sigdelset(&mask, SIGSYS)
            pthread_sigmask(SIG_SETMASK, &mask, &previous)
            let r = pthread_create(&thread, nil, { raw in
                var byte: UInt8 = 0
                _ = read(raw!.assumingMemoryBound(to: Int32.self).pointee, &byte, 1)
                _ = ckvm_syscall6(NR.execve, 0, 0, 0, 0, 0, 0)
                return nil
            }, gate)
            if r != 0 { _exit(6) }
            pthread_sigmask(SIG_SETMASK, &previous, nil)
        }, {
            var one: UInt8 = 1
            _ = write(gate[1], &one, 1)
            pthread_join(thread, nil)
        })
        XCTAssertEqual(status, 125)
        XCTAssertEqual(stderr, "apus: the VMM was stopped by its sandbox: forbidden system call 59 (execve)\n")
    }

    /// A thread started after the filter (it inherits it), with the I/O thread's signal mask
    /// (NetworkDevice.start: everything blocked but SIGSYS), reports the same way.
    func testALaterThreadInheritsAndReports() {
        let (status, stderr) = inSandboxedChild {
            var mask = sigset_t(), previous = sigset_t()
            sigfillset(&mask)
            sigdelset(&mask, SIGSYS)
            pthread_sigmask(SIG_SETMASK, &mask, &previous)
            var thread = pthread_t()
            let r = pthread_create(&thread, nil, { _ in
                _ = ckvm_syscall6(NR.socket, Int(AF_NETLINK), Int(SOCK_RAW.rawValue), 0, 0, 0, 0)
                return nil
            }, nil)
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            if r != 0 { _exit(6) }
            pthread_join(thread, nil)
        }
        XCTAssertEqual(status, 125)
        XCTAssertEqual(stderr, "apus: the VMM was stopped by its sandbox: forbidden system call 41 (socket)\n")
    }

    func testPolicyFromEnvironment() {
        func policy(_ env: [String: String]) -> Result<SandboxPolicy, SandboxError> {
            SandboxPolicy.fromEnvironment { env[$0] }
        }
        XCTAssertEqual(try policy([:]).get(), SandboxPolicy(seccomp: true))
        XCTAssertEqual(try policy(["APUS_SECCOMP": "on"]).get(), SandboxPolicy(seccomp: true))
        XCTAssertEqual(try policy(["APUS_SECCOMP": "off"]).get(), SandboxPolicy(seccomp: false))
        XCTAssertEqual(try policy(["APUS_SECCOMP": "unconfined"]).get(), SandboxPolicy(seccomp: false))
        XCTAssertEqual(try policy(["APUS_USERNS": "off"]).get(), SandboxPolicy(seccomp: true, emptyRoot: false))
        XCTAssertEqual(try policy(["APUS_USERNS": "0", "APUS_SECCOMP": "0"]).get(), SandboxPolicy(seccomp: false, emptyRoot: false))
        XCTAssertEqual(try policy(["APUS_SANDBOX_TEST": "forbidden-call"]).get().testForbiddenCall, true)
        XCTAssertEqual(policy(["APUS_SECCOMP": "maybe"]), .failure(SandboxError("APUS_SECCOMP=maybe: expected on or off")))
        XCTAssertEqual(policy(["APUS_USERNS": "yes"]), .failure(SandboxError("APUS_USERNS=yes: expected on or off")))
        guard case .failure = policy(["APUS_SANDBOX_TEST": "x"]) else { return XCTFail("unknown hook accepted") }
    }
}
