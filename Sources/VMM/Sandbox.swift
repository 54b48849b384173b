import CKVM
import LinuxABI
import GuestABI
#if canImport(Glibc)
import Glibc
#endif

/// What the VMM gives up before the guest runs (`VMConfiguration.sandbox`).
///
/// `apus run` turns it on (`fromEnvironment`); a library user that boots a VM inside a larger
/// process (the tests) leaves it off, since a seccomp filter cannot be removed again and
/// binds every thread of the process.
public struct SandboxPolicy: Equatable, Sendable {
    /// Install `SeccompFilter` (after PR_SET_NO_NEW_PRIVS).
    public var seccomp = true
    /// Give up the file system first where the kernel allows it without privileges: a user
    /// and mount namespace of the VMM's own whose root is an empty read-only tmpfs
    /// (`ckvm_enter_empty_root`). Where user namespaces are unavailable (a sysctl, a
    /// container, AppArmor's restriction of unprivileged ones) the run goes on without it.
    public var emptyRoot = true
    /// Test only: right after the filter is installed, the vCPU thread makes a forbidden call
    /// (execve with no program: harmless even unfiltered), to check that the run stops with
    /// the sandbox's report. Set by
    /// `APUS_SANDBOX_TEST=forbidden-call`; never useful otherwise.
    public var testForbiddenCall = false

    public init(seccomp: Bool = true, emptyRoot: Bool = true) {
        self.seccomp = seccomp
        self.emptyRoot = emptyRoot
    }

    /// The policy of `apus run`, from its environment:
    ///   APUS_SECCOMP=off (or 0, unconfined) runs without the filter, for debugging the VMM
    ///   with tools that need more system calls (strace works either way: ptrace is outside
    ///   the filter's reach); on (or 1, or unset) is the default.
    ///   APUS_USERNS=off (or 0) keeps the host's file system (no user namespace); on (or 1,
    ///   or unset) is the default.
    ///   APUS_SANDBOX_TEST=forbidden-call: the test hook above.
    /// An unknown value is an error naming the variable.
    public static func fromEnvironment(_ lookup: (String) -> String?) -> Result<SandboxPolicy, SandboxError> {
        var policy = SandboxPolicy()
        switch lookup("APUS_SECCOMP") {
        case nil, "", "on", "1": policy.seccomp = true
        case "off", "0", "unconfined": policy.seccomp = false
        case let other?: return .failure(SandboxError("APUS_SECCOMP=\(other): expected on or off"))
        }
        switch lookup("APUS_USERNS") {
        case nil, "", "on", "1": policy.emptyRoot = true
        case "off", "0": policy.emptyRoot = false
        case let other?: return .failure(SandboxError("APUS_USERNS=\(other): expected on or off"))
        }
        switch lookup("APUS_SANDBOX_TEST") {
        case nil, "": break
        case "forbidden-call": policy.testForbiddenCall = true
        case let other?: return .failure(SandboxError("APUS_SANDBOX_TEST=\(other): the only test hook is forbidden-call"))
        }
        return .success(policy)
    }
}

public struct SandboxError: Error, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
}

/// Enters the sandbox: called once per process by `VirtualMachine.boot`, on the vCPU thread,
/// after every file, device and listening socket the run needs is open and before the first
/// KVM_RUN (and before the I/O thread starts, which then inherits it; the filter is installed
/// with TSYNC, so a thread started earlier is covered too). First the empty root (a new
/// user namespace needs a single-threaded process), then the filter. Nothing after setup
/// opens a path: the image, kernel, volumes and /dev/kvm are mapped or open, the published
/// ports bound, the tap device configured, /etc/resolv.conf read.
enum Sandbox {
    /// The exit status when the filter stops the VMM: apus's own failure.
    static let violationExitCode = HostExitCode.startFailure
    /// x86-64 execve(2).
    static let execve = 59
    /// Whether this process entered the sandbox (it is process-wide and cannot be left).
    nonisolated(unsafe) private static var entered = false

    /// Hands LinuxABI's packed syscall names (static storage) to the SIGSYS report, which may
    /// not allocate: one pointer, no copy.
    public static func installSyscallNames() {
        let names = packedSyscallNames
        ckvm_set_syscall_names(UnsafeRawPointer(names.utf8Start).assumingMemoryBound(to: CChar.self),
                               names.utf8CodeUnitCount)
    }

    /// Returns what it entered, for `--timings`: "seccomp filter, empty root", or why the
    /// empty root is missing.
    static func enter(_ policy: SandboxPolicy) throws(VMMError) -> String {
        // The sandbox binds the whole process for good: a second VM in the same process
        // (a library user) runs inside the first one's, whose filter forbids entering again.
        guard !entered else { return "entered before" }
        entered = true
        var parts: [String] = []
        if policy.emptyRoot {
            // Before the filter, which forbids unshare, mount and chroot.
            var step: Int32 = 0
            let r = ckvm_enter_empty_root(&step)
            let steps = ["unshare", "mount propagation", "mount tmpfs", "chroot", "capset"]
            parts.append(r == 0 ? "empty root"
                         : "no empty root (\(steps[Int(min(max(step, 0), 4))]): \(String(cString: strerror(-r))))")
        }
        guard policy.seccomp else { return parts.isEmpty ? "off" : parts.joined(separator: ", ") }
        installSyscallNames()
        let program = SeccompFilter.program()
        let r = program.withUnsafeBufferPointer {
            ckvm_seccomp_install($0.baseAddress, UInt16($0.count), violationExitCode)
        }
        guard r == 0 else {
            throw .sandbox("cannot install the VMM's seccomp filter: \(String(cString: strerror(-r))) (APUS_SECCOMP=off runs without it)")
        }
        if policy.testForbiddenCall {
            _ = ckvm_syscall6(execve, 0, 0, 0, 0, 0, 0)
        }
        return (["seccomp filter"] + parts).joined(separator: ", ")
    }
}
