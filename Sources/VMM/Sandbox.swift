import CKVM
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
    /// Test only: right after the filter is installed, the vCPU thread makes a forbidden call
    /// (execve with no program: harmless even unfiltered), to check that the run stops with
    /// the sandbox's report. Set by
    /// `APUS_SANDBOX_TEST=forbidden-call`; never useful otherwise.
    public var testForbiddenCall = false

    public init(seccomp: Bool = true) { self.seccomp = seccomp }

    /// The policy of `apus run`, from its environment:
    ///   APUS_SECCOMP=off (or 0, unconfined) runs without the filter, for debugging the VMM
    ///   with tools that need more system calls (strace works either way: ptrace is outside
    ///   the filter's reach); on (or 1, or unset) is the default.
    ///   APUS_SANDBOX_TEST=forbidden-call: the test hook above.
    /// An unknown value is an error naming the variable.
    public static func fromEnvironment(_ lookup: (String) -> String?) -> Result<SandboxPolicy, SandboxError> {
        var policy = SandboxPolicy()
        switch lookup("APUS_SECCOMP") {
        case nil, "", "on", "1": policy.seccomp = true
        case "off", "0", "unconfined": policy.seccomp = false
        case let other?: return .failure(SandboxError("APUS_SECCOMP=\(other): expected on or off"))
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
/// with TSYNC, so a thread started earlier is covered too).
enum Sandbox {
    /// The exit status when the filter stops the VMM: apus's own failure.
    static let violationExitCode = HostExitCode.startFailure
    /// x86-64 execve(2).
    static let execve = 59

    static func enter(_ policy: SandboxPolicy) throws(VMMError) {
        guard policy.seccomp else { return }
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
    }
}
