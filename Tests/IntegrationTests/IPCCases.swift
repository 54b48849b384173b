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

    /// ifaddrs.c: getifaddrs, if_nameindex, if_nametoindex/if_indextoname (over AF_NETLINK
    /// and SIOCGIFINDEX) list what the VM has: lo, and with the default user network eth0
    /// with 10.0.2.15/24 and its EUI-64 link-local address; with `--network none` lo alone.
    /// Not compared with native: the host's interfaces differ.
    func netlinkInterfaces() throws {
        let flagsLo = "flags UP,LOOPBACK,RUNNING", flagsEth = "flags UP,BROADCAST,RUNNING,MULTICAST"
        let lo = ["lo inet 127.0.0.1/8 broadcast none \(flagsLo)", "lo inet6 ::1/128 \(flagsLo)",
                  "lo packet hwaddr-length 6 \(flagsLo)"]
        let eth = ["eth0 inet 10.0.2.15/24 broadcast 10.0.2.255 \(flagsEth)", "eth0 inet6 fe80::<eui64>/64 \(flagsEth)",
                   "eth0 packet hwaddr-length 6 \(flagsEth)"]
        let tail = ["if_nametoindex(lo): 1", "if_indextoname(1): lo", "if_nametoindex(nosuch0): 0",
                    "netlink bind and getsockname: yes", "netlink SO_TYPE and SO_DOMAIN: yes", "an unserved request (RTM_NEWROUTE) is answered with an error: yes",
                    "... which is not 0 and names the request: yes"]
        let withNetwork = eth + lo + ["if_nameindex: 1 lo", "if_nameindex: 2 eth0"] + tail
        let withoutNetwork = lo + ["if_nameindex: 1 lo"] + tail
        for (flags, expected) in [([String](), withNetwork), (["--network", "none"], withoutNetwork)] {
            for variant in Harness.variants {
                guard let r = try apusOnly(Invocation(program: "./ifaddrs.\(variant)", apusFlags: flags)) else { continue }
                let what = "[\(vmm)] ifaddrs.\(variant) \(flags.joined(separator: " "))"
                XCTAssertEqual(r.status, 0, "\(what): status\nstderr: \(r.stderrText)")
                XCTAssertEqual(r.stdoutText, expected.joined(separator: "\n") + "\n", "\(what): interfaces")
            }
        }
    }
}
