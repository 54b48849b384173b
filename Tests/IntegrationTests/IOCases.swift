// I/O and memory semantics real programs rely on (Tests/Guests/iogaps.c), against native
// runs: blocking writes to pipes, AF_UNIX and TCP sockets that return only when all is
// written (a signal: the count so far), sendfile of a whole file to a blocking socket,
// select/pselect6 writing back the time left, mremap growing a private file mapping with the
// file's bytes, munmap/mprotect of a 64 TiB reservation in little time, sigaltstack.

import XCTest

extension VMMMatrix {
    /// iogaps.c: identical to native, with a child's stack overflow caught by a SIGSEGV
    /// handler on the alternate stack (on pvm the VMM turns the triple fault into the
    /// kernel's SIGSEGV, see FaultCases.swift).
    func ioGaps() throws {
        try differentialAllVariants("iogaps", args: ["overflow"], expectStatus: 0)
    }
}
