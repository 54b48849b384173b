import LinuxABI
import XCTest

/// strace-like rendering, fed fake user memory.
final class TraceTests: XCTestCase {
    let memory: [UInt64: [UInt8]] = [
        0x1000: Array("Hello\n\u{1}\"\\".utf8),
        0x2000: Array("/etc/passwd".utf8),
        0x3000: Array(repeating: UInt8(ascii: "x"), count: 100),
    ]

    func render(_ call: SyscallArguments, _ result: UInt64?) -> String {
        let line = SyscallTrace.format(call, result: result,
            readMemory: { address, count in self.memory[address].map { Array($0.prefix(count)) } },
            readString: { address in self.memory[address] })
        return String(decoding: line, as: UTF8.self)
    }

    func testWriteQuotesItsBuffer() {
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.write, 1, 0x1000, 9), 9),
                       #"write(1, "Hello\n\001\"\\", 9) = 9"#)
    }

    func testLongBuffersAreCut() {
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.write, 2, 0x3000, 100), 100),
                       "write(2, \"\(String(repeating: "x", count: 32))\"..., 100) = 100")
    }

    func testReadShowsWhatWasRead() {
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.read, 0, 0x1000, 64), 5),
                       #"read(0, "Hello", 64) = 5"#)
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.read, 0, 0x1000, 64), 0), "read(0, 0x1000, 64) = 0")
    }

    func testErrorsByName() {
        let enoent = Errno.ENOENT.negatedReturn
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.openat, UInt64(bitPattern: -100), 0x2000, 0x80000, 0), enoent),
                       #"openat(AT_FDCWD, "/etc/passwd", 0x80000, 0x0) = -1 ENOENT"#)
    }

    func testUnreadablePointersPrintRaw() {
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.write, 1, 0xdead0, 3), Errno.EFAULT.negatedReturn),
                       "write(1, 0xdead0, 3) = -1 EFAULT")
    }

    func testAddressesSignalsClocksAndExit() {
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.mmap, 0, 8192, 3, 0x22, UInt64(bitPattern: -1), 0), 0x7f0000000000),
                       "mmap(NULL, 8192, 0x3, 0x22, -1, 0x0) = 0x7f0000000000")
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.tgkill, 1, 1, 6), 0), "tgkill(1, 1, SIGABRT) = 0")
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.clock_gettime, 1, 0x5000), 0),
                       "clock_gettime(CLOCK_MONOTONIC, 0x5000) = 0")
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.exit_group, 3), nil), "exit_group(3) = ?")
        XCTAssertEqual(render(SyscallArguments(number: SyscallNumber.getpid), 1), "getpid() = 1")
    }

    func testUnknownSyscallsShowRawArguments() {
        XCTAssertEqual(render(SyscallArguments(number: 999, 1, 2, 3, 4, 5, 6), Errno.ENOSYS.negatedReturn),
                       "syscall_999(0x1, 0x2, 0x3, 0x4, 0x5, 0x6) = -1 ENOSYS")
    }

    func testSignatures() {
        let write = SyscallSignature.of(SyscallNumber.write)
        XCTAssertEqual(write.arguments, [.fd, .bufferIn(length: 2), .uint])
        XCTAssertFalse(write.returnsAddress)
        let mmap = SyscallSignature.of(SyscallNumber.mmap)
        XCTAssertEqual(mmap.arguments, [.pointer, .uint, .hex, .hex, .fd, .hex])
        XCTAssertTrue(mmap.returnsAddress)
        XCTAssertEqual(SyscallSignature.of(SyscallNumber.getpid).arguments, [])
        XCTAssertEqual(SyscallSignature.of(SyscallNumber.clock_nanosleep).arguments, [.clock, .hex, .pointer, .pointer])
        XCTAssertEqual(SyscallSignature.of(SyscallNumber.tgkill).arguments, [.int, .int, .signal])
        XCTAssertEqual(SyscallSignature.of(SyscallNumber.getcwd).arguments, [.bufferOut, .uint])
        XCTAssertEqual(SyscallSignature.of(SyscallNumber.openat).arguments, [.fd, .string, .hex, .hex])
        XCTAssertEqual(SyscallSignature.of(999).arguments, Array(repeating: .hex, count: 6))
        for n in 0...SyscallNumber.highestKnown { XCTAssertLessThanOrEqual(SyscallSignature.of(n).arguments.count, 6) }
    }
}
