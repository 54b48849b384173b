// Faults Linux answers without ending the program (Tests/Guests/faults.c): the legacy
// vsyscall page, mappings bigger than --memory, the VM running out of memory where no errno
// can be returned, and a stack overflow caught on the alternate stack.

import XCTest

extension VMMMatrix {
    /// Calls to 0xffffffffff600000/…400/…800 (gettimeofday, time, getcpu) return the
    /// syscall's result as Linux's vsyscall=emulate does: identical to native, every variant.
    func legacyVsyscall() throws {
        try differentialAllVariants("faults", args: ["vsyscall"], expectStatus: 0)
    }

    /// Mappings 4x the machine's memory: a writable private mapping, brk, a mremap growth and
    /// an mprotect commit fail with ENOMEM (a failed mremap keeps the mapping), huge PROT_NONE
    /// reservations succeed: identical to native (Linux's heuristic overcommit), in a 128 MiB VM.
    func mappingsPastMemory() throws {
        for variant in ["musl", "glibc"] {
            try differential(Invocation(program: "./faults.\(variant)", args: ["maps"], apusFlags: ["--memory", "128M"]),
                             expectStatus: 0)
        }
    }

    /// A child writing its copy-on-write copy of 60% of memory. Under QEMU (fork shares
    /// pages) the pages run out inside a fault: apus names --memory and exits 252
    /// (HostExitCode.outOfMemory). On pvm fork
    /// copies, so fork itself fails with ENOMEM and the program carries on.
    func outOfMemoryInAFault() throws {
        guard let r = try apusOnly(Invocation(program: "./faults.musl", args: ["exhaust"], apusFlags: ["--memory", "64M"]))
        else { return }
        let what = "[\(vmm)] faults.musl exhaust"
        if vmm == "qemu" {
            XCTAssertEqual(r.status, 252, "\(what): status\nstdout: \(r.stdoutText)\nstderr: \(r.stderrText)")
            XCTAssertTrue(r.stderrText.contains("apus: the VM ran out of memory (--memory 64M)"), "\(what): \(r.stderrText)")
            XCTAssertFalse(r.stderrText.contains("panic"), "\(what): \(r.stderrText)")
        } else {
            XCTAssertEqual(r.status, 0, "\(what): status\nstdout: \(r.stdoutText)\nstderr: \(r.stderrText)")
            XCTAssertTrue(r.stdoutText.contains("fork: Out of memory\n"), "\(what): \(r.stdoutText)")
            XCTAssertTrue(r.stdoutText.hasSuffix("failures: 0\n"), "\(what): \(r.stdoutText)")
        }
    }

    /// Unbounded recursion with a SA_ONSTACK SIGSEGV handler on a sigaltstack: the handler
    /// runs and exits 0, identical to native, on both VMMs (on pvm the VMM turns the triple
    /// fault of a frame pushed on the overflowed stack into the kernel's SIGSEGV).
    func stackOverflowOnAlternateStack() throws {
        try differentialAllVariants("faults", args: ["overflow"], expectStatus: 0)
    }
}
