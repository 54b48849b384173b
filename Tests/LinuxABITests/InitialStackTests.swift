import LinuxABI
import XCTest

/// Builds stacks into host buffers with a fake user address, then parses them back the way a
/// C runtime's _start does.
final class InitialStackTests: XCTestCase {
    /// The strings as a NUL-separated block, as the VMM passes it.
    func block(_ strings: [String], trailing: [UInt8] = []) -> [UInt8] {
        strings.flatMap { Array($0.utf8) + [0] } + trailing
    }

    struct Parsed {
        var argc = 0
        var argv: [String] = []
        var envp: [String] = []
        var auxv: [(UInt64, UInt64)] = []
        func aux(_ key: AuxvKey) -> UInt64? { auxv.first { $0.0 == key.rawValue }?.1 }
    }

    /// Reads the stack in `bytes` (ending at user address `top`) starting at `rsp`.
    func parse(_ bytes: [UInt8], top: UInt64, rsp: UInt64) throws -> Parsed {
        let bottom = top - UInt64(bytes.count)
        func offset(_ address: UInt64) throws -> Int {
            guard address >= bottom, address < top else {
                throw XCTSkip("address 0x\(String(address, radix: 16)) outside the stack")
            }
            return Int(address - bottom)
        }
        func word(_ address: UInt64) throws -> UInt64 { le(bytes, try offset(address), UInt64.self) }
        func string(_ address: UInt64) throws -> String {
            let start = try offset(address)
            let end = try XCTUnwrap(bytes[start...].firstIndex(of: 0))
            return String(decoding: bytes[start..<end], as: UTF8.self)
        }
        var p = Parsed()
        var a = rsp
        p.argc = Int(try word(a)); a += 8
        for _ in 0..<p.argc { p.argv.append(try string(try word(a))); a += 8 }
        XCTAssertEqual(try word(a), 0, "argv is NULL-terminated"); a += 8
        while try word(a) != 0 { p.envp.append(try string(try word(a))); a += 8 }
        a += 8
        while true {
            let key = try word(a), value = try word(a + 8)
            a += 16
            p.auxv.append((key, value))
            if key == 0 { XCTAssertEqual(value, 0); break }
        }
        return p
    }

    let top: UInt64 = 0x7fff_ffff_f000
    let auxv: [(UInt64, UInt64)] = [
        (AuxvKey.AT_SYSINFO_EHDR.rawValue, 0), (AuxvKey.AT_MINSIGSTKSZ.rawValue, 2048),
        (AuxvKey.AT_HWCAP.rawValue, 0x178bfbff), (AuxvKey.AT_PAGESZ.rawValue, 4096),
        (AuxvKey.AT_CLKTCK.rawValue, 100), (AuxvKey.AT_PHDR.rawValue, 0x40_0040),
        (AuxvKey.AT_PHENT.rawValue, 56), (AuxvKey.AT_PHNUM.rawValue, 9),
        (AuxvKey.AT_BASE.rawValue, 0), (AuxvKey.AT_FLAGS.rawValue, 0),
        (AuxvKey.AT_ENTRY.rawValue, 0x40_1020), (AuxvKey.AT_UID.rawValue, 0),
        (AuxvKey.AT_EUID.rawValue, 0), (AuxvKey.AT_GID.rawValue, 0), (AuxvKey.AT_EGID.rawValue, 0),
        (AuxvKey.AT_SECURE.rawValue, 0), (AuxvKey.AT_HWCAP2.rawValue, 2),
    ]
    let random: (UInt64, UInt64) = (0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908)

    func build(_ stack: inout [UInt8], top: UInt64, strings: [UInt8], argc: Int, envc: Int,
               auxv: [(UInt64, UInt64)]? = nil, execfn: [UInt8]?) -> Result<UInt64, Errno> {
        let auxv = auxv ?? self.auxv
        let random = self.random
        return stack.withUnsafeMutableBytes { buf in
            strings.withUnsafeBytes { block in
                func run(_ fn: UnsafeRawBufferPointer?) -> Result<UInt64, Errno> {
                    do throws(Errno) {
                        return .success(try InitialStack.build(
                            into: buf, stackTop: top, stringBlock: block, argc: argc, envc: envc,
                            auxv: auxv, random: random, execfn: fn))
                    } catch { return .failure(error) }
                }
                if let execfn { return execfn.withUnsafeBytes { run($0) } }
                return run(nil)
            }
        }
    }

    func testRoundTrip() throws {
        let args = ["/bin/app", "--flag", "", "a b c"]
        let env = ["PATH=/usr/bin:/bin", "HOME=/", "LANG=C.UTF-8"]
        var stack = [UInt8](repeating: 0xa5, count: 8192)
        let rsp = try build(&stack, top: top, strings: block(args + env), argc: 4, envc: 3,
                            execfn: Array("/bin/app".utf8)).get()
        XCTAssertEqual(rsp % 16, 0, "rsp is 16-byte aligned at entry")
        XCTAssertLessThan(rsp, top)
        XCTAssertGreaterThanOrEqual(rsp, top - 8192)

        let p = try parse(stack, top: top, rsp: rsp)
        XCTAssertEqual(p.argc, 4)
        XCTAssertEqual(p.argv, args)
        XCTAssertEqual(p.envp, env)
        // The caller's pairs in order, then AT_RANDOM, AT_EXECFN, AT_PLATFORM, AT_NULL.
        XCTAssertEqual(p.auxv.count, auxv.count + 4)
        for (i, pair) in auxv.enumerated() {
            XCTAssertEqual(p.auxv[i].0, pair.0)
            XCTAssertEqual(p.auxv[i].1, pair.1)
        }
        XCTAssertEqual(p.auxv.suffix(4).map(\.0), [AuxvKey.AT_RANDOM, .AT_EXECFN, .AT_PLATFORM, .AT_NULL].map(\.rawValue))

        let bottom = top - 8192
        let randomAt = Int(try XCTUnwrap(p.aux(.AT_RANDOM)) - bottom)
        XCTAssertEqual(Array(stack[randomAt..<(randomAt + 16)]), Array(0...15))
        let platformAt = Int(try XCTUnwrap(p.aux(.AT_PLATFORM)) - bottom)
        XCTAssertEqual(Array(stack[platformAt..<(platformAt + 7)]), Array("x86_64".utf8) + [0])
        let execfnAt = Int(try XCTUnwrap(p.aux(.AT_EXECFN)) - bottom)
        XCTAssertEqual(Array(stack[execfnAt..<(execfnAt + 9)]), Array("/bin/app".utf8) + [0])
        XCTAssertNotEqual(try XCTUnwrap(p.aux(.AT_EXECFN)), le(stack, Int(rsp - bottom) + 8, UInt64.self),
                          "execfn is its own copy, not argv[0]")

        // Linux's order from the top: end marker, execfn, strings, then platform and random.
        XCTAssertEqual(Array(stack[(8192 - 8)...]), [UInt8](repeating: 0, count: 8))
        XCTAssertEqual(execfnAt, 8192 - 8 - 9)
        let argv0 = Int(le(stack, Int(rsp - bottom) + 8, UInt64.self) - bottom)
        XCTAssertEqual(argv0 + block(args + env).count, execfnAt, "strings just below execfn")
        XCTAssertLessThan(platformAt, argv0)
        XCTAssertEqual(randomAt + 16, platformAt)
        // Nothing written below rsp.
        XCTAssertTrue(stack[..<Int(rsp - bottom)].allSatisfy { $0 == 0xa5 })
    }

    func testAlignmentForEveryParity() throws {
        // Odd and even word counts and string lengths, and unaligned tops: rsp stays aligned.
        for argc in 0...3 {
            for envc in 0...2 {
                for extra in 0..<3 {
                    for topSkew in [0, 3, 8, 13] as [UInt64] {
                        let strings = (0..<(argc + envc)).map { String(repeating: "x", count: $0 + extra) }
                        var stack = [UInt8](repeating: 0, count: 1024)
                        let t = top - topSkew
                        let auxv = Array(self.auxv.prefix(extra))
                        let rsp = try build(&stack, top: t, strings: block(strings), argc: argc, envc: envc,
                                            auxv: auxv, execfn: nil).get()
                        XCTAssertEqual(rsp % 16, 0)
                        let p = try parse(stack, top: t, rsp: rsp)
                        XCTAssertEqual(p.argv, Array(strings.prefix(argc)))
                        XCTAssertEqual(p.envp, Array(strings.suffix(envc)))
                        XCTAssertEqual(p.auxv.count, auxv.count + (argc > 0 ? 4 : 3))
                        if argc > 0 {
                            XCTAssertEqual(p.aux(.AT_EXECFN), le(stack, Int(rsp - (t - 1024)) + 8, UInt64.self),
                                           "without execfn, AT_EXECFN is argv[0]")
                        } else {
                            XCTAssertNil(p.aux(.AT_EXECFN))
                        }
                    }
                }
            }
        }
    }

    func testBytesAfterTheLastStringAreIgnored() throws {
        var stack = [UInt8](repeating: 0, count: 1024)
        let rsp = try build(&stack, top: top, strings: block(["prog", "A=1"], trailing: [0x41, 0x42]),
                            argc: 1, envc: 1, execfn: nil).get()
        let p = try parse(stack, top: top, rsp: rsp)
        XCTAssertEqual(p.argv, ["prog"])
        XCTAssertEqual(p.envp, ["A=1"])
    }

    func testE2BIGWhenTheStackIsTooSmall() throws {
        let strings = block(["/bin/app", "x", "HOME=/"])
        // Find the smallest buffer that works; every smaller one must be E2BIG, never a trap.
        var smallest = 0
        for size in stride(from: 800, through: 0, by: -1) {
            var stack = [UInt8](repeating: 0, count: size)
            switch build(&stack, top: top, strings: strings, argc: 2, envc: 1, execfn: Array("/bin/app".utf8)) {
            case .success: smallest = size
            case .failure(let e): XCTAssertEqual(e, .E2BIG, "size \(size)")
            }
        }
        XCTAssertGreaterThan(smallest, 0)
        for size in 0..<smallest {
            var stack = [UInt8](repeating: 0, count: size)
            XCTAssertEqual(build(&stack, top: top, strings: strings, argc: 2, envc: 1,
                                 execfn: Array("/bin/app".utf8)), .failure(.E2BIG), "size \(size)")
        }
        var empty: [UInt8] = []
        XCTAssertEqual(build(&empty, top: top, strings: strings, argc: 2, envc: 1, execfn: nil), .failure(.E2BIG))
        // A huge argc with a block that really holds that many strings does not fit either.
        var stack = [UInt8](repeating: 0, count: 4096)
        let many = block(Array(repeating: "", count: 5000))
        XCTAssertEqual(build(&stack, top: top, strings: many, argc: 5000, envc: 0, execfn: nil), .failure(.E2BIG))
    }

    func testEINVALOnMalformedInput() {
        var stack = [UInt8](repeating: 0, count: 4096)
        let strings = block(["prog", "A=1"])
        XCTAssertEqual(build(&stack, top: top, strings: strings, argc: 2, envc: 1, execfn: nil), .failure(.EINVAL),
                       "three strings announced, two present")
        XCTAssertEqual(build(&stack, top: top, strings: Array("prog".utf8), argc: 1, envc: 0, execfn: nil),
                       .failure(.EINVAL), "unterminated string")
        XCTAssertEqual(build(&stack, top: top, strings: strings, argc: -1, envc: 1, execfn: nil), .failure(.EINVAL))
        XCTAssertEqual(build(&stack, top: top, strings: strings, argc: 1, envc: Int.max, execfn: nil), .failure(.EINVAL))
        XCTAssertEqual(build(&stack, top: 100, strings: strings, argc: 1, envc: 1, execfn: nil), .failure(.EINVAL),
                       "stackTop below the buffer's size")
        for owned in [AuxvKey.AT_NULL, .AT_RANDOM, .AT_PLATFORM, .AT_EXECFN] {
            XCTAssertEqual(build(&stack, top: top, strings: strings, argc: 1, envc: 1,
                                 auxv: [(owned.rawValue, 1)], execfn: nil), .failure(.EINVAL), "\(owned)")
        }
    }

    func testExecfnStopsAtItsFirstNUL() throws {
        var stack = [UInt8](repeating: 0, count: 1024)
        let rsp = try build(&stack, top: top, strings: block(["a"]), argc: 1, envc: 0,
                            execfn: Array("/x\0garbage".utf8)).get()
        let p = try parse(stack, top: top, rsp: rsp)
        let at = Int(try XCTUnwrap(p.aux(.AT_EXECFN)) - (top - 1024))
        XCTAssertEqual(Array(stack[at..<(at + 3)]), Array("/x".utf8) + [0])
    }
}
