// Gaps of issue 13 that peer test suites hit: memfd_create, the legacy getdents, mknod of
// regular files, st_nlink of directories, RLIMIT_NOFILE, affinity of a thread's tid
// (filegaps.c), sethostname; System V message queues and semaphores, robust and PI futexes
// (ipc.c); AF_NETLINK route sockets for getifaddrs and if_nameindex (ifaddrs.c). Written
// once, listed per VMM in ApusVMMTests and QEMUTests.

import Foundation
import XCTest

extension VMMMatrix {
    /// filegaps.c in its four variants: every check as natively (status 0 means all passed).
    func fileGaps() throws {
        try differentialAllVariants("filegaps", expectStatus: 0)
    }

    /// sethostname, uname, gethostname and /proc/sys/kernel/hostname in the VM (natively the
    /// call would rename the machine, so only here).
    func sethostname() throws {
        for variant in ["musl", "glibc"] {
            guard let r = try apusOnly(Invocation(program: "./filegaps.\(variant)", args: ["hostname"])) else { continue }
            let what = "[\(vmm)] filegaps.\(variant) hostname"
            XCTAssertEqual(r.status, 0, "\(what): status\nstdout: \(r.stdoutText)\nstderr: \(r.stderrText)")
            XCTAssertTrue(r.stdoutText.hasSuffix("failures: 0\n"), "\(what):\n\(r.stdoutText)")
            XCTAssertFalse(r.stdoutText.contains(": no"), "\(what):\n\(r.stdoutText)")
        }
    }

    /// ipc.c in its four variants: System V queues and semaphores between processes, robust
    /// and PI mutexes between threads and processes, as natively.
    func ipc() throws {
        try differentialAllVariants("ipc", expectStatus: 0)
    }
}
