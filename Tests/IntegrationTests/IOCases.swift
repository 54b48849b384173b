// I/O and memory semantics real programs rely on (Tests/Guests/iogaps.c), against native
// runs: blocking writes to pipes, AF_UNIX and TCP sockets that return only when all is
// written (a signal: the count so far), sendfile of a whole file to a blocking socket,
// select/pselect6 writing back the time left, mremap growing a private file mapping with the
// file's bytes, munmap/mprotect of a 64 TiB reservation in little time, sigaltstack.

import XCTest

extension VMMMatrix {
    /// iogaps.c: identical to native. Under QEMU (the native platform) it also overflows a
    /// child's stack, caught by a SIGSEGV handler on the alternate stack; on the apus VMM
    /// (pvm) a fault pushes its frame on the app's stack, which an overflow leaves unmapped,
    /// so the VM stops there (a limit of the platform, reported as a stack overflow).
    func ioGaps() throws {
        try differentialAllVariants("iogaps", args: vmm == "qemu" ? ["overflow"] : [], expectStatus: 0)
    }
}
