import CKVM
#if canImport(Glibc)
import Glibc
#endif

/// The system calls the VMM may make once the guest runs, and the seccomp-BPF program built
/// from them (`Sandbox` installs it before the first KVM_RUN).
///
/// The table is the whole policy: one rule per system call, with the thread that needs it
/// and why, and for the calls whose danger is in an argument (ioctl's request, socket's
/// family, mmap's protection) the argument values allowed. It was found by tracing every run
/// of the integration suite (`strace -f`: the hello guest, stdin, --timeout, crash reports,
/// the network guests with -p and outbound connections, redis, nginx, the Go server, tap)
/// from the first KVM_RUN to the exit, and adds nothing that was not seen there, except
/// where a rule says so.
///
/// Threads: "vCPU" is the main thread (KVM_RUN loop, doorbells, console, teardown and apus's
/// exit path); "I/O" is the network device's thread (NetworkDevice.swift: virtqueues, the
/// user network's host sockets, published ports, the tap device); "runtime" is the Swift
/// runtime and libc underneath either (allocator, locks, thread start and end).
///
/// Program layout (classic BPF over `struct seccomp_data`):
///
///     load arch;  arch != AUDIT_ARCH_X86_64        → trap
///     load nr;    nr ≥ 0x40000000 (the x32 ABI)     → trap
///     a binary search over the rules' numbers; at a rule's number:
///                 allow | fail with its errno | [load an argument; allowed? → allow : trap]
///     a number in no rule                           → trap
///
/// Every denial is SECCOMP_RET_TRAP: the kernel sends SIGSYS to the calling thread, whose
/// handler (CKVM's `ckvm_seccomp_install`) writes one `apus:` line naming the call and exits
/// 125, instead of the silent SIGSYS death of SECCOMP_RET_KILL_PROCESS.
///
/// Cost: Linux (≥ 5.11) runs the filter once per syscall number when it is installed and
/// answers the calls that are allowed whatever their arguments (read, write, ppoll, …) from
/// a bitmap, without running it again; only the argument-checked calls (ioctl: KVM_RUN at
/// every exit) run it each time. The search tree keeps both short (at most about 20
/// instructions for a number instead of a walk through the whole table), and the leaves
/// share their returns (123 instructions in all): installing costs the kernel ~0.1 ms, a
/// filtered call ~50-70 ns more than an unfiltered one on the development machine.
public enum SeccompFilter {
    /// A condition on one argument. Only the argument's low 32 bits are compared: every
    /// argument checked here is an `int` or `unsigned int` in the kernel's prototype (ioctl's
    /// cmd, socket's family, the protection bits), so the kernel ignores the high bits too.
    public enum Condition: Sendable {
        /// The argument is one of these values.
        case oneOf(argument: Int, [Value])
        /// None of these bits is set in the argument.
        case bitsClear(argument: Int, mask: UInt32, name: String)
    }

    public struct Value: Sendable {
        public let value: UInt32
        public let name: String
        init(_ value: UInt32, _ name: String) {
            self.value = value
            self.name = name
        }
        init(_ value: UInt, _ name: String) {
            self.init(UInt32(truncatingIfNeeded: value), name)
        }
        init(_ value: Int32, _ name: String) {
            self.init(UInt32(bitPattern: value), name)
        }
    }

    /// What the filter does with a call.
    public enum Action: Sendable {
        /// Let it through if every condition holds (none: always); else trap.
        case allow([Condition])
        /// Fail it with this errno without running it: for a call that libc makes on its own
        /// and copes with failing, where stopping the VMM would be wrong.
        case fail(Int32)
    }

    /// One system call the filter knows (x86-64 number). Every other call traps.
    public struct Rule: Sendable {
        public let name: String
        public let number: UInt32
        public let action: Action
        /// Which thread needs it, and for what.
        public let reason: String
        init(_ name: String, _ number: UInt32, _ conditions: Condition..., reason: String) {
            self.init(name, number, action: .allow(conditions), reason: reason)
        }
        init(_ name: String, _ number: UInt32, action: Action, reason: String) {
            self.name = name
            self.number = number
            self.action = action
            self.reason = reason
        }
    }

    static let protExec = UInt32(PROT_EXEC)
    static let futexPrivate = CKVM_FUTEX_PRIVATE_FLAG
    static let futexRealtime = CKVM_FUTEX_CLOCK_REALTIME
    /// glibc's set-id signal (SIGRTMIN + 1), which it uses to run set*id on every thread.
    static let glibcSetXIDSignal: UInt32 = 33
    /// The clock thread's kick (`ckvm_kick_signal`, SIGRTMIN + 2 in glibc).
    static let kickSignal = UInt32(ckvm_kick_signal())

    /// The table, in syscall-number order (x86-64 numbers, the ABI's; `SeccompFilterTests`
    /// checks each against its name).
    public static let rules: [Rule] = [
        Rule("read", 0, reason: "vCPU: stdin for the guest; both: draining eventfds; I/O: host sockets, the tap device"),
        Rule("write", 1, reason: "vCPU: the guest's stdout/stderr, `apus:` lines, eventfd signals; I/O: the tap device, eventfds; the SIGSYS report"),
        Rule("open", 2, action: .fail(EACCES), reason: "as openat"),
        Rule("close", 3, reason: "I/O: finished connections and flows; vCPU: teardown of the VM's descriptors"),
        Rule("mmap", 9, .bitsClear(argument: 2, mask: protExec, name: "PROT_EXEC"),
             reason: "runtime: the allocator and the I/O thread's stack; never executable memory"),
        Rule("mprotect", 10, .bitsClear(argument: 2, mask: protExec, name: "PROT_EXEC"),
             reason: "runtime: the allocator growing a thread's heap, a thread stack; never executable"),
        Rule("munmap", 11, reason: "runtime: the allocator, a finished thread's stack; vCPU: the kvm_run page and guest memory at teardown"),
        Rule("brk", 12, reason: "runtime: the allocator"),
        Rule("rt_sigaction", 13, .oneOf(argument: 0, [Value(glibcSetXIDSignal, "SIGSETXID"), Value(SIGABRT, "SIGABRT"),
                                                      Value(SIGSEGV, "SIGSEGV"), Value(SIGBUS, "SIGBUS"), Value(SIGILL, "SIGILL"),
                                                      Value(SIGFPE, "SIGFPE"), Value(SIGTRAP, "SIGTRAP")]),
             reason: """
                runtime: glibc's first pthread_create installs its set-id signal's handler; abort() resets SIGABRT (not seen                 in the traces); vCPU with -t: the crash signals' handlers that restore the host terminal go (HostTerminal)
                """),
        Rule("rt_sigprocmask", 14, reason: "runtime: pthread_create and thread start mask signals (the I/O thread blocks all but SIGSYS)"),
        Rule("rt_sigreturn", 15, reason: "vCPU: return from the --timeout watchdog's SIGALRM handler"),
        Rule("ioctl", 16, .oneOf(argument: 1, [
            Value(CKVM_RUN, "KVM_RUN"),
            Value(CKVM_IOEVENTFD, "KVM_IOEVENTFD"),
            Value(CKVM_GET_REGS, "KVM_GET_REGS"),
            Value(CKVM_SET_REGS, "KVM_SET_REGS"),
            Value(CKVM_IRQFD, "KVM_IRQFD"),
            Value(CKVM_IRQ_LINE, "KVM_IRQ_LINE"),
            Value(UInt32(0x5401), "TCGETS"),
            Value(UInt32(0x5402), "TCSETS"),
            Value(UInt32(0x5403), "TCSETSW"),
            Value(UInt32(0x5413), "TIOCGWINSZ"),
        ]), reason: """
            vCPU: KVM_RUN; KVM_IOEVENTFD when the virtio-net driver's notifies move into the \
            kernel (and their removal at teardown); KVM_GET_REGS for the rip/rsp of a failure \
            report and, with KVM_SET_REGS (rip and rflags only), a preemption of app code \
            (Preemption.swift); KVM_IRQFD removal and KVM_IRQ_LINE for a VM that takes interrupts (not seen: \
            the CLI's VMs take none); with -t, TCSETS/TCSETSW to give the host terminal its settings \
            back (also from a crash handler; glibc's tcsetattr reads them back with TCGETS) and \
            TIOCGWINSZ for its new size. No new VM, \
            vCPU or memory region, no MSR, CPUID or special-register change once the guest runs
            """),
        Rule("mremap", 25, reason: "runtime: realloc of a large block (not seen in the traces)"),
        Rule("madvise", 28, reason: "runtime: the allocator returning pages (MADV_DONTNEED)"),
        Rule("setitimer", 38, reason: "vCPU: disarming the --timeout watchdog"),
        Rule("getpid", 39, reason: "runtime: abort() (not seen in the traces)"),
        Rule("socket", 41, .oneOf(argument: 0, [Value(Int32(AF_INET), "AF_INET")]),
             reason: "I/O: a host socket per outbound TCP connection or UDP flow of the user network, and per connection to a port published on the tap network; IPv4 only"),
        Rule("connect", 42, reason: "I/O: those sockets' connects"),
        Rule("sendto", 44, reason: "I/O: send() of relayed TCP bytes and UDP datagrams (MSG_NOSIGNAL)"),
        Rule("recvfrom", 45, reason: "I/O: recv() of UDP flows and published UDP ports"),
        Rule("shutdown", 48, reason: "I/O: a half-close relayed from the other side"),
        Rule("setsockopt", 54, .oneOf(argument: 1, [Value(Int32(IPPROTO_TCP), "IPPROTO_TCP")]),
             .oneOf(argument: 2, [Value(Int32(TCP_NODELAY), "TCP_NODELAY")]),
             reason: "I/O: TCP_NODELAY on relayed connections; no other option (no socket filters, no ULPs)"),
        Rule("getsockopt", 55, .oneOf(argument: 1, [Value(Int32(SOL_SOCKET), "SOL_SOCKET")]),
             .oneOf(argument: 2, [Value(Int32(SO_ERROR), "SO_ERROR")]),
             reason: "I/O: SO_ERROR after a non-blocking connect"),
        Rule("clone", 56, .oneOf(argument: 0, [Value(CKVM_CLONE_PTHREAD_FLAGS, "pthread_create's flags")]),
             reason: "vCPU: the network I/O thread, started when the driver first touches the device; threads only, never a process"),
        Rule("exit", 60, reason: "I/O: the thread's end"),
        Rule("gettid", 186, reason: "runtime: thread start; abort()"),
        Rule("futex", 202, .oneOf(argument: 1, [
            Value(CKVM_FUTEX_WAIT | futexPrivate, "FUTEX_WAIT_PRIVATE"),
            Value(CKVM_FUTEX_WAKE | futexPrivate, "FUTEX_WAKE_PRIVATE"),
            Value(CKVM_FUTEX_WAIT, "FUTEX_WAIT"),
            Value(CKVM_FUTEX_WAKE, "FUTEX_WAKE"),
            Value(CKVM_FUTEX_WAIT_BITSET | futexRealtime, "FUTEX_WAIT_BITSET|FUTEX_CLOCK_REALTIME"),
            Value(CKVM_FUTEX_WAIT_BITSET | futexPrivate, "FUTEX_WAIT_BITSET_PRIVATE"),
            Value(CKVM_FUTEX_WAIT_BITSET | futexPrivate | futexRealtime, "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME"),
        ]), reason: "runtime: a contended pthread mutex (the network device's lock: WAIT/WAKE_PRIVATE), pthread_join (WAIT_BITSET on the tid word); the shared WAIT/WAKE and the other BITSET forms were not seen in the traces but are what the same glibc paths use for shared or timed waits"),
        Rule("clock_gettime", 228, reason: "both: monotonic time (the vDSO answers it, so not seen in the traces; this is its fallback)"),
        Rule("clock_nanosleep", 230, reason: "vCPU: the sleep doorbell without a network (nanosleep); I/O: the pause after a failed poll (usleep)"),
        Rule("exit_group", 231, reason: "vCPU: apus's exit; the SIGSYS report"),
        Rule("tgkill", 234, .oneOf(argument: 2, [Value(SIGABRT, "SIGABRT"), Value(SIGSEGV, "SIGSEGV"), Value(SIGBUS, "SIGBUS"),
                                                 Value(SIGILL, "SIGILL"), Value(SIGFPE, "SIGFPE"), Value(SIGTRAP, "SIGTRAP"),
                                                 Value(kickSignal, "SIGRTMIN+2")]),
             reason: """
                runtime: abort() raising SIGABRT on a fatal error, so that the failure is the runtime's report (not seen in \
                the traces); vCPU with -t: the crash handler raising the crash signal again once the host terminal is \
                restored; clock thread: the kick that stops the vCPU's KVM_RUN for a preemption
                """),
        Rule("openat", 257, action: .fail(EACCES), reason: """
            runtime: the VMM opens no file once the guest runs, but glibc's malloc reads \
            /proc/sys/vm/overcommit_memory the first time a thread's heap shrinks and copes with \
            a failure; every open fails instead of stopping the VMM
            """),
        Rule("ppoll", 271, reason: "I/O: the loop's wait; vCPU: the sleep doorbell with a network"),
        Rule("set_robust_list", 273, reason: "runtime: thread start"),
        Rule("timerfd_settime", 286, reason: "clock thread: sleeping until the guest's preemption deadline"),
        Rule("accept4", 288, reason: "I/O: connections to published ports"),
        Rule("getrandom", 318, reason: "runtime: the Swift hashing seed when a process first hashes after setup (not seen in the traces)"),
        Rule("rseq", 334, reason: "runtime: thread start (glibc registers restartable sequences)"),
        Rule("clone3", 435, action: .fail(ENOSYS),
             reason: "runtime: glibc tries clone3 first, whose flags sit in memory the filter cannot read; ENOSYS makes it use clone, whose flags it checks"),
    ]

    /// Rules per leaf of the search tree.
    static let leafSize = 4

    /// The filter as classic BPF instructions. Assembled in one pass over the table, without
    /// sorting or hashing: this runs once per `apus run`, cold, on the boot path.
    public static func program(_ rules: [Rule] = rules) -> [sock_filter] {
        for i in rules.indices.dropFirst() {
            // Sorted, so that the search works; strictly, since a second rule for a number
            // would never be reached.
            precondition(rules[i - 1].number < rules[i].number, "seccomp table: \(rules[i].name) out of order or listed twice")
        }
        var p: [sock_filter] = [
            load(CKVM_SECCOMP_DATA_ARCH),
            jump(CKVM_BPF_JUMP_EQUAL, CKVM_AUDIT_ARCH_X86_64, ifTrue: 1, ifFalse: 0),
            ret(CKVM_SECCOMP_RET_TRAP),
            load(CKVM_SECCOMP_DATA_NR),
            jump(CKVM_BPF_JUMP_GREATER_EQUAL, CKVM_X32_SYSCALL_BIT, ifTrue: 0, ifFalse: 1),
            ret(CKVM_SECCOMP_RET_TRAP),
        ]
        p.reserveCapacity(4 * rules.count + 32)
        appendSearchTree(rules, rules.indices, to: &p)
        return p
    }

    /// Rules `range` (sorted by number) as a binary search on the accumulator (the syscall
    /// number): `nr ≥ pivot` jumps over the lower half. cBPF jumps only forward, so each node
    /// is followed by its lower half, then its upper half. A leaf:
    ///
    ///     per rule:  nr == number → allow (jump to the leaf's allow), or fail with errno, or
    ///                [load argument; == value → allow … ; the last mismatch → trap]
    ///     trap
    ///     allow
    private static func appendSearchTree(_ rules: [Rule], _ range: Range<Int>, to p: inout [sock_filter]) {
        guard range.count > leafSize else {
            var toAllow: [Int] = [], toTrap: [Int] = []  // jumps to patch: jt / jf of these
            for i in range {
                let matchAt = p.count
                p.append(jump(CKVM_BPF_JUMP_EQUAL, rules[i].number, ifTrue: 0, ifFalse: 0))
                switch rules[i].action {
                case .allow(let conditions) where conditions.isEmpty:
                    toAllow.append(matchAt)
                    continue  // no block: jt goes to the leaf's allow, jf to the next rule
                case .fail(let errno):
                    p.append(ret(CKVM_SECCOMP_RET_ERRNO | (UInt32(errno) & CKVM_SECCOMP_RET_DATA)))
                case .allow(let conditions):
                    // Each condition in turn: a failed one traps, a met one goes on to the
                    // next (falls through), the last met one allows.
                    for (c, condition) in conditions.enumerated() {
                        let last = c == conditions.count - 1
                        switch condition {
                        case .oneOf(let argument, let values):
                            precondition(!values.isEmpty && values.count < 255, "seccomp table: \(rules[i].name)'s values")
                            p.append(load(argumentOffset(argument)))
                            for (k, v) in values.enumerated() {
                                let at = p.count
                                // Equal: on to the next condition (after this one's compares).
                                p.append(jump(CKVM_BPF_JUMP_EQUAL, v.value, ifTrue: UInt8(values.count - 1 - k), ifFalse: 0))
                                if last { toAllow.append(at) }
                                if k == values.count - 1 { toTrap.append(at) }
                            }
                        case .bitsClear(let argument, let mask, _):
                            p.append(load(argumentOffset(argument)))
                            // Any bit set → trap (jt); clear → allow or on (jf): patched below
                            // like the others, with the two targets swapped.
                            toTrap.append(p.count)
                            if last { toAllow.append(p.count) }
                            p.append(jump(CKVM_BPF_JUMP_BITS_SET, mask, ifTrue: 0, ifFalse: 0))
                        }
                    }
                }
                p[matchAt].jf = jumpOffset(p.count - matchAt - 1, rules[i].name)
            }
            let trapAt = p.count
            p.append(ret(CKVM_SECCOMP_RET_TRAP))
            let allowAt = p.count
            p.append(ret(CKVM_SECCOMP_RET_ALLOW))
            for at in toAllow {
                let offset = jumpOffset(allowAt - at - 1, "a leaf")
                if p[at].code == CKVM_BPF_JUMP_BITS_SET { p[at].jf = offset } else { p[at].jt = offset }
            }
            for at in toTrap {
                let offset = jumpOffset(trapAt - at - 1, "a leaf")
                if p[at].code == CKVM_BPF_JUMP_BITS_SET { p[at].jt = offset } else { p[at].jf = offset }
            }
            return
        }
        let middle = range.lowerBound + range.count / 2
        let nodeAt = p.count
        p.append(jump(CKVM_BPF_JUMP_GREATER_EQUAL, rules[middle].number, ifTrue: 0, ifFalse: 0))
        appendSearchTree(rules, range.lowerBound..<middle, to: &p)
        p[nodeAt].jt = jumpOffset(p.count - nodeAt - 1, rules[middle].name)
        appendSearchTree(rules, middle..<range.upperBound, to: &p)
    }

    private static func jumpOffset(_ distance: Int, _ name: String) -> UInt8 {
        precondition(distance <= 255, "seccomp table: the jump at \(name) is too long for cBPF")
        return UInt8(distance)
    }

    private static func argumentOffset(_ index: Int) -> UInt32 {
        precondition(index >= 0 && index < 6)
        return CKVM_SECCOMP_DATA_ARGS + UInt32(index * 8)  // the low word (little-endian)
    }

    private static func load(_ offset: UInt32) -> sock_filter {
        sock_filter(code: CKVM_BPF_LOAD_WORD, jt: 0, jf: 0, k: offset)
    }

    private static func jump(_ code: UInt16, _ k: UInt32, ifTrue: UInt8, ifFalse: UInt8) -> sock_filter {
        sock_filter(code: code, jt: ifTrue, jf: ifFalse, k: k)
    }

    private static func ret(_ action: UInt32) -> sock_filter {
        sock_filter(code: CKVM_BPF_RETURN, jt: 0, jf: 0, k: action)
    }
}
