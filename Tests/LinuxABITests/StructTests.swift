import Glibc
import LinuxABI
import XCTest

final class StructTests: XCTestCase {
    // MARK: - Sizes and offsets against Glibc's structs

    func testSizesMatchGlibc() {
        XCTAssertEqual(Timespec.size, MemoryLayout<timespec>.size)
        XCTAssertEqual(Timeval.size, MemoryLayout<timeval>.size)
        XCTAssertEqual(Itimerval.size, MemoryLayout<itimerval>.size)
        XCTAssertEqual(Tms.size, MemoryLayout<tms>.size)
        XCTAssertEqual(Rusage.size, MemoryLayout<rusage>.size)
        XCTAssertEqual(Utsname.size, MemoryLayout<utsname>.size)
        XCTAssertEqual(Stat.size, MemoryLayout<stat>.size)
        XCTAssertEqual(Rlimit.size, MemoryLayout<rlimit>.size)
        XCTAssertEqual(Winsize.size, MemoryLayout<winsize>.size)
        XCTAssertEqual(Iovec.size, MemoryLayout<iovec>.size)
        XCTAssertEqual(Pollfd.size, MemoryLayout<pollfd>.size)
        XCTAssertEqual(SignalStack.size, MemoryLayout<stack_t>.size)
        XCTAssertEqual(Dirent64.nameOffset, MemoryLayout<dirent>.offset(of: \dirent.d_name))
        XCTAssertEqual(SignalStack.minimumSize, UInt64(MINSIGSTKSZ))
    }

    func testStatLayoutMatchesGlibc() throws {
        typealias S = MemoryLayout<stat>
        let offsets: [(Int?, Int)] = [
            (S.offset(of: \.st_dev), 0), (S.offset(of: \.st_ino), 8), (S.offset(of: \.st_nlink), 16),
            (S.offset(of: \.st_mode), 24), (S.offset(of: \.st_uid), 28), (S.offset(of: \.st_gid), 32),
            (S.offset(of: \.st_rdev), 40), (S.offset(of: \.st_size), 48),
            (S.offset(of: \.st_blksize), 56), (S.offset(of: \.st_blocks), 64),
            (S.offset(of: \.st_atim), 72), (S.offset(of: \.st_mtim), 88), (S.offset(of: \.st_ctim), 104),
        ]
        for (glibc, ours) in offsets { XCTAssertEqual(glibc, ours) }

        var st = Stat()
        st.device = 0x0102_0304_0506_0708
        st.inode = 0x1122_3344_5566_7788
        st.linkCount = 3
        st.mode = FileMode.S_IFREG | 0o755
        st.uid = 1000
        st.gid = 1001
        st.specialDevice = 0x0a0b
        st.size = -2
        st.blockSize = 4096
        st.blocks = 17
        st.accessTime = Timespec(seconds: 1_700_000_000, nanoseconds: 1)
        st.modificationTime = Timespec(seconds: 1_700_000_001, nanoseconds: 999_999_999)
        st.changeTime = Timespec(seconds: -1, nanoseconds: 5)
        let bytes = try encoded(Stat.size + 8) { buf in
            for i in buf.indices { buf[i] = 0xaa }
            try st.encode(into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<Stat.size]))
        }
        XCTAssertEqual(bytes[Stat.size...].allSatisfy { $0 == 0xaa }, true, "nothing written past the struct")
        XCTAssertEqual(bytes[36..<40], [0, 0, 0, 0], "padding is zeroed")
        XCTAssertTrue(bytes[120..<144].allSatisfy { $0 == 0 }, "reserved words are zeroed")
        let c = asC(Array(bytes[0..<Stat.size]), stat.self)
        XCTAssertEqual(UInt64(c.st_dev), st.device)
        XCTAssertEqual(UInt64(c.st_ino), st.inode)
        XCTAssertEqual(c.st_nlink, 3)
        XCTAssertEqual(c.st_mode, S_IFREG | 0o755)
        XCTAssertEqual(c.st_uid, 1000)
        XCTAssertEqual(c.st_gid, 1001)
        XCTAssertEqual(c.st_rdev, 0x0a0b)
        XCTAssertEqual(c.st_size, -2)
        XCTAssertEqual(c.st_blksize, 4096)
        XCTAssertEqual(c.st_blocks, 17)
        XCTAssertEqual(c.st_atim.tv_sec, 1_700_000_000)
        XCTAssertEqual(c.st_atim.tv_nsec, 1)
        XCTAssertEqual(c.st_mtim.tv_sec, 1_700_000_001)
        XCTAssertEqual(c.st_mtim.tv_nsec, 999_999_999)
        XCTAssertEqual(c.st_ctim.tv_sec, -1)
        XCTAssertEqual(c.st_ctim.tv_nsec, 5)
    }

    func testTooSmallBuffersAreEFAULT() {
        var small = [UInt8](repeating: 0x55, count: 143)
        small.withUnsafeMutableBytes { buf in
            XCTAssertEqual(thrownErrno { () throws(Errno) in try Stat().encode(into: buf) }, .EFAULT)
            let sysinfoMinusOne = UnsafeMutableRawBufferPointer(rebasing: buf[0..<(Sysinfo.size - 1)])
            XCTAssertEqual(thrownErrno { () throws(Errno) in try Sysinfo().encode(into: sysinfoMinusOne) }, .EFAULT)
            XCTAssertEqual(thrownErrno { () throws(Errno) in try Statx().encode(into: buf) }, .EFAULT)
            XCTAssertEqual(thrownErrno { () throws(Errno) in try Utsname().encode(into: buf) }, .EFAULT)
            let tiny = UnsafeMutableRawBufferPointer(rebasing: buf[0..<7])
            XCTAssertEqual(thrownErrno { () throws(Errno) in
                try Winsize(rows: 1, columns: 1).encode(into: tiny) }, .EFAULT)
            XCTAssertEqual(thrownErrno { () throws(Errno) in
                try Timespec(seconds: 1, nanoseconds: 1).encode(into: tiny) }, .EFAULT)
            let empty = UnsafeMutableRawBufferPointer(start: nil, count: 0)
            XCTAssertEqual(thrownErrno { () throws(Errno) in try Rlimit(current: 1, maximum: 1).encode(into: empty) }, .EFAULT)
            XCTAssertEqual(thrownErrno { () throws(Errno) in
                _ = try Timespec.decode(from: UnsafeRawBufferPointer(empty)) }, .EFAULT)
        }
        XCTAssertTrue(small.allSatisfy { $0 == 0x55 }, "a failed encode writes nothing")
    }

    func testStructWriterDropsOutOfRangeStores() {
        var bytes = [UInt8](repeating: 0, count: 8)
        bytes.withUnsafeMutableBytes { buf in
            var w = StructWriter(buf)
            w.put(UInt32(0x0403_0201), at: 4)
            XCTAssertFalse(w.overflowed)
            w.put(UInt32(7), at: 5)
            XCTAssertTrue(w.overflowed)
            w.put(UInt8(9), at: -1)
            w.putCString(UnsafeRawBufferPointer(start: nil, count: 0), at: 6, capacity: 4)
            w.zero(2, count: -1)
            let r = StructReader(UnsafeRawBufferPointer(buf))
            XCTAssertEqual(r.get(UInt32.self, at: 4), 0x0403_0201)
            XCTAssertNil(r.get(UInt64.self, at: 1))
            XCTAssertNil(r.get(UInt8.self, at: -1))
            XCTAssertNil(r.get(UInt16.self, at: Int.max))
        }
        XCTAssertEqual(bytes, [0, 0, 0, 0, 1, 2, 3, 4])
    }

    // MARK: - Time

    func testTimespecTimevalItimerval() throws {
        let ts = Timespec(seconds: 12, nanoseconds: 345_678_901)
        let c = asC(try encoded(16) { try ts.encode(into: $0) }, timespec.self)
        XCTAssertEqual(c.tv_sec, 12)
        XCTAssertEqual(c.tv_nsec, 345_678_901)
        let back = try bytesOf(c).withUnsafeBytes { raw throws(Errno) in try Timespec.decode(from: raw) }
        XCTAssertEqual(back, ts)
        XCTAssertEqual(ts.totalNanoseconds, 12_345_678_901)
        XCTAssertEqual(Timespec(totalNanoseconds: 12_345_678_901), ts)
        XCTAssertEqual(Timespec(totalNanoseconds: -1), Timespec(seconds: -1, nanoseconds: 999_999_999))
        XCTAssertNil(Timespec(seconds: .max, nanoseconds: 0).totalNanoseconds)
        XCTAssertTrue(ts.isValid)
        XCTAssertFalse(Timespec(seconds: 0, nanoseconds: 1_000_000_000).isValid)
        XCTAssertFalse(Timespec(seconds: 0, nanoseconds: -1).isValid)

        let tv = Timeval(ts)
        XCTAssertEqual(tv, Timeval(seconds: 12, microseconds: 345_678))
        let ctv = asC(try encoded(16) { try tv.encode(into: $0) }, timeval.self)
        XCTAssertEqual(ctv.tv_sec, 12)
        XCTAssertEqual(ctv.tv_usec, 345_678)
        XCTAssertFalse(Timeval(seconds: 0, microseconds: 1_000_000).isValid)

        let it = Itimerval(interval: Timeval(seconds: 1, microseconds: 2), value: Timeval(seconds: 3, microseconds: 4))
        let cit = asC(try encoded(32) { try it.encode(into: $0) }, itimerval.self)
        XCTAssertEqual(cit.it_interval.tv_sec, 1)
        XCTAssertEqual(cit.it_interval.tv_usec, 2)
        XCTAssertEqual(cit.it_value.tv_sec, 3)
        XCTAssertEqual(cit.it_value.tv_usec, 4)
        let itBack = try bytesOf(cit).withUnsafeBytes { raw throws(Errno) in try Itimerval.decode(from: raw) }
        XCTAssertEqual(itBack, it)
    }

    func testTmsAndRusage() throws {
        let t = Tms(userTime: 1, systemTime: 2, childrenUserTime: 3, childrenSystemTime: 4)
        let ct = asC(try encoded(32) { try t.encode(into: $0) }, tms.self)
        XCTAssertEqual([ct.tms_utime, ct.tms_stime, ct.tms_cutime, ct.tms_cstime], [1, 2, 3, 4])
        XCTAssertEqual(Tms.clockTicksPerSecond, Int64(sysconf(Int32(_SC_CLK_TCK))))

        var r = Rusage()
        r.userTime = Timeval(seconds: 5, microseconds: 6)
        r.systemTime = Timeval(seconds: 7, microseconds: 8)
        r.maxResidentSetKiB = 9
        r.minorFaults = 10
        r.majorFaults = 11
        r.voluntaryContextSwitches = 12
        r.involuntaryContextSwitches = 13
        let bytes = try encoded(Rusage.size) { buf in
            for i in buf.indices { buf[i] = 0xff }
            try r.encode(into: buf)
        }
        let cr = asC(bytes, rusage.self)
        XCTAssertEqual(cr.ru_utime.tv_sec, 5)
        XCTAssertEqual(cr.ru_utime.tv_usec, 6)
        XCTAssertEqual(cr.ru_stime.tv_sec, 7)
        XCTAssertEqual(cr.ru_stime.tv_usec, 8)
        XCTAssertEqual(cr.ru_maxrss, 9)
        XCTAssertEqual(cr.ru_minflt, 10)
        XCTAssertEqual(cr.ru_majflt, 11)
        XCTAssertEqual(cr.ru_nvcsw, 12)
        XCTAssertEqual(cr.ru_nivcsw, 13)
        XCTAssertEqual(cr.ru_ixrss, 0)
        XCTAssertEqual(cr.ru_nsignals, 0)
        // (glibc wraps the long fields in unions, so offset(of:) cannot name them; the values
        // read back through its accessors above pin the offsets.)
    }

    // MARK: - System information

    func testUtsnameLayoutAndRealUname() throws {
        typealias U = MemoryLayout<utsname>
        XCTAssertEqual(U.offset(of: \.sysname), 0)
        XCTAssertEqual(U.offset(of: \.nodename), 65)
        XCTAssertEqual(U.offset(of: \.release), 130)
        XCTAssertEqual(U.offset(of: \.version), 195)
        XCTAssertEqual(U.offset(of: \.machine), 260)
        XCTAssertEqual(U.offset(of: \.__domainname), 325)

        // The host kernel's own answer, read at our offsets.
        var host = utsname()
        XCTAssertEqual(uname(&host), 0)
        let hostBytes = bytesOf(host)
        XCTAssertEqual(String(decoding: hostBytes[0..<5], as: UTF8.self), "Linux")
        XCTAssertEqual(String(decoding: hostBytes[260..<266], as: UTF8.self), "x86_64")

        // Ours, read through Glibc's struct.
        let ours = asC(try encoded(Utsname.size) { try Utsname().encode(into: $0) }, utsname.self)
        XCTAssertEqual(cString(ours.sysname), "Linux")
        XCTAssertEqual(cString(ours.nodename), "apus")
        XCTAssertEqual(cString(ours.machine), "x86_64")
        XCTAssertEqual(cString(ours.__domainname), "(none)")
        XCTAssertTrue(cString(ours.release).hasPrefix("6."))
        XCTAssertFalse(cString(ours.version).isEmpty)

        // A runtime hostname, truncated to 64 bytes + NUL.
        let long = [UInt8](repeating: UInt8(ascii: "h"), count: 100)
        let bytes = try long.withUnsafeBytes { name in
            try encoded(Utsname.size) { buf in
                for i in buf.indices { buf[i] = 0xee }
                try Utsname().encode(into: buf, nodename: name)
            }
        }
        let c = asC(bytes, utsname.self)
        XCTAssertEqual(cString(c.nodename), String(repeating: "h", count: 64))
        XCTAssertEqual(bytes[65 + 64], 0)
        XCTAssertEqual(cString(c.release), cString(ours.release), "neighbours untouched")
        XCTAssertFalse(bytes.contains(0xee), "every byte of the struct is written")
    }

    /// Calls the host's sysinfo() into a raw buffer and reads it with our offsets, then
    /// round-trips our encoder.
    func testSysinfoLayoutAgainstTheHostKernel() throws {
        typealias SysinfoFn = @convention(c) (UnsafeMutableRawPointer) -> Int32
        let sysinfoCall = try XCTUnwrap(libcFunction("sysinfo", as: SysinfoFn.self))
        var raw = [UInt8](repeating: 0, count: Sysinfo.size)
        XCTAssertEqual(raw.withUnsafeMutableBytes { sysinfoCall($0.baseAddress!) }, 0)
        let unit = UInt64(le(raw, 104, UInt32.self))
        let total = le(raw, 32, UInt64.self) * unit
        let pages = UInt64(sysconf(Int32(_SC_PHYS_PAGES))) * UInt64(sysconf(Int32(_SC_PAGESIZE)))
        XCTAssertEqual(total, pages, "totalram × mem_unit is the machine's memory")
        XCTAssertGreaterThan(le(raw, 0, Int64.self), 0, "uptime")
        XCTAssertLessThanOrEqual(le(raw, 40, UInt64.self), le(raw, 32, UInt64.self), "freeram ≤ totalram")
        XCTAssertGreaterThanOrEqual(le(raw, 80, UInt16.self), 1, "procs")

        var s = Sysinfo()
        s.uptimeSeconds = 77
        s.loads = (1 << 16, 2 << 16, 3 << 16)
        s.totalRAM = 512 << 20
        s.freeRAM = 300 << 20
        s.processes = 1
        s.memoryUnit = 1
        let bytes = try encoded(Sysinfo.size) { buf in
            for i in buf.indices { buf[i] = 0xcc }
            try s.encode(into: buf)
        }
        XCTAssertEqual(le(bytes, 0, Int64.self), 77)
        XCTAssertEqual(le(bytes, 16, UInt64.self), 2 << 16)
        XCTAssertEqual(le(bytes, 32, UInt64.self), 512 << 20)
        XCTAssertEqual(le(bytes, 40, UInt64.self), 300 << 20)
        XCTAssertEqual(le(bytes, 80, UInt16.self), 1)
        XCTAssertEqual(le(bytes, 104, UInt32.self), 1)
        XCTAssertFalse(bytes.contains(0xcc), "padding is zeroed")
        XCTAssertEqual(s, s)
    }

    func testRlimitAndWinsize() throws {
        let r = Rlimit(current: 8 << 20, maximum: Rlimit.infinity)
        let c = asC(try encoded(16) { try r.encode(into: $0) }, rlimit.self)
        XCTAssertEqual(c.rlim_cur, 8 << 20)
        XCTAssertEqual(UInt64(c.rlim_max), UInt64.max, "RLIM_INFINITY")
        XCTAssertEqual(try bytesOf(c).withUnsafeBytes { raw throws(Errno) in try Rlimit.decode(from: raw) }, r)
        XCTAssertTrue(r.isValid)
        XCTAssertFalse(Rlimit(current: 2, maximum: 1).isValid)

        // The host's real limit, read with our decoder.
        var host = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &host), 0)
        let decoded = try bytesOf(host).withUnsafeBytes { raw throws(Errno) in try Rlimit.decode(from: raw) }
        XCTAssertEqual(decoded.current, UInt64(host.rlim_cur))
        XCTAssertEqual(decoded.maximum, UInt64(host.rlim_max))

        let w = Winsize(rows: 24, columns: 80, xPixels: 640, yPixels: 480)
        let cw = asC(try encoded(8) { try w.encode(into: $0) }, winsize.self)
        XCTAssertEqual([cw.ws_row, cw.ws_col, cw.ws_xpixel, cw.ws_ypixel], [24, 80, 640, 480])
        XCTAssertEqual(try bytesOf(cw).withUnsafeBytes { raw throws(Errno) in try Winsize.decode(from: raw) }, w)
    }

    // MARK: - Files

    /// Calls the host's statx() on a file and reads the result with our offsets, comparing
    /// with stat(); then checks our encoder writes the same offsets.
    func testStatxLayoutAgainstTheHostKernel() throws {
        typealias StatxFn = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UInt32, UnsafeMutableRawPointer) -> Int32
        let statxCall = try XCTUnwrap(libcFunction("statx", as: StatxFn.self))
        let path = "/proc/self/exe"
        var raw = [UInt8](repeating: 0, count: Statx.size)
        XCTAssertEqual(raw.withUnsafeMutableBytes { statxCall(AtFlags.AT_FDCWD, path, 0, Statx.basicStats, $0.baseAddress!) }, 0)
        var st = stat()
        XCTAssertEqual(stat(path, &st), 0)
        XCTAssertEqual(le(raw, 0, UInt32.self) & Statx.basicStats, Statx.basicStats)
        XCTAssertEqual(UInt64(le(raw, 16, UInt32.self)), UInt64(st.st_nlink))
        XCTAssertEqual(le(raw, 20, UInt32.self), st.st_uid)
        XCTAssertEqual(le(raw, 24, UInt32.self), st.st_gid)
        XCTAssertEqual(UInt32(le(raw, 28, UInt16.self)), st.st_mode)
        XCTAssertEqual(le(raw, 32, UInt64.self), UInt64(st.st_ino))
        XCTAssertEqual(Int64(le(raw, 40, UInt64.self)), Int64(st.st_size))
        XCTAssertEqual(Int64(le(raw, 48, UInt64.self)), Int64(st.st_blocks))
        XCTAssertEqual(le(raw, 112, Int64.self), Int64(st.st_mtim.tv_sec))
        XCTAssertEqual(Int(le(raw, 120, UInt32.self)), st.st_mtim.tv_nsec)
        let dev = UInt64(st.st_dev)
        XCTAssertEqual(UInt64(le(raw, 136, UInt32.self)), ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff))
        XCTAssertEqual(UInt64(le(raw, 140, UInt32.self)), (dev & 0xff) | ((dev >> 12) & ~0xff))

        var x = Statx()
        x.linkCount = 2
        x.uid = 3
        x.gid = 4
        x.mode = UInt16(FileMode.S_IFDIR | 0o700)
        x.inode = 5
        x.size = 6
        x.blocks = 7
        x.modificationTime = Timespec(seconds: 8, nanoseconds: 9)
        x.deviceMajor = 10
        x.deviceMinor = 11
        let bytes = try encoded(Statx.size) { try x.encode(into: $0) }
        XCTAssertEqual(le(bytes, 0, UInt32.self), Statx.basicStats)
        XCTAssertEqual(le(bytes, 4, UInt32.self), 4096)
        XCTAssertEqual(le(bytes, 16, UInt32.self), 2)
        XCTAssertEqual(le(bytes, 20, UInt32.self), 3)
        XCTAssertEqual(le(bytes, 24, UInt32.self), 4)
        XCTAssertEqual(le(bytes, 28, UInt16.self), UInt16(S_IFDIR | 0o700))
        XCTAssertEqual(le(bytes, 32, UInt64.self), 5)
        XCTAssertEqual(le(bytes, 40, UInt64.self), 6)
        XCTAssertEqual(le(bytes, 48, UInt64.self), 7)
        XCTAssertEqual(le(bytes, 112, Int64.self), 8)
        XCTAssertEqual(le(bytes, 120, UInt32.self), 9)
        XCTAssertEqual(le(bytes, 136, UInt32.self), 10)
        XCTAssertEqual(le(bytes, 140, UInt32.self), 11)
    }

    func testIovecPollfdSignalStack() throws {
        let v = [iovec(iov_base: UnsafeMutableRawPointer(bitPattern: 0x1000), iov_len: 5),
                 iovec(iov_base: UnsafeMutableRawPointer(bitPattern: 0x2000), iov_len: 7)]
        let iovBytes = v.withUnsafeBytes { Array($0) }
        XCTAssertEqual(decoding(iovBytes) { raw throws(Errno) in try Iovec.decode(from: raw, index: 1) },
                       .success(Iovec(base: UserAddress(0x2000), length: 7)))
        XCTAssertEqual(decoding(iovBytes) { raw throws(Errno) in try Iovec.decode(from: raw) },
                       .success(Iovec(base: UserAddress(0x1000), length: 5)))
        XCTAssertEqual(decoding(iovBytes) { raw throws(Errno) in try Iovec.decode(from: raw, index: 2) },
                       .failure(.EFAULT))
        XCTAssertEqual(decoding(iovBytes) { raw throws(Errno) in try Iovec.decode(from: raw, index: -1) },
                       .failure(.EFAULT))

        var p = [pollfd(fd: 3, events: Int16(POLLIN), revents: 0),
                 pollfd(fd: -1, events: Int16(POLLOUT), revents: 0)]
        let pollBytes = p.withUnsafeBytes { Array($0) }
        XCTAssertEqual(decoding(pollBytes) { raw throws(Errno) in try Pollfd.decode(from: raw, index: 1) },
                       .success(Pollfd(fd: -1, events: PollEvents.POLLOUT)))
        let results: (Errno?, Errno?) = p.withUnsafeMutableBytes { raw in
            (thrownErrno { () throws(Errno) in try Pollfd.encodeReturnedEvents(PollEvents.POLLNVAL, into: raw, index: 1) },
             thrownErrno { () throws(Errno) in try Pollfd.encodeReturnedEvents(1, into: raw, index: 2) })
        }
        XCTAssertNil(results.0)
        XCTAssertEqual(results.1, .EFAULT)
        XCTAssertEqual(p[1].revents, Int16(POLLNVAL))
        XCTAssertEqual(p[1].fd, -1)
        XCTAssertEqual(p[0].revents, 0)

        let ss = SignalStack(base: UserAddress(0x7000_0000), flags: SignalStack.onStack, size: 8192)
        let ssBytes = try encoded(SignalStack.size) { try ss.encode(into: $0) }
        let cs = asC(ssBytes, stack_t.self)
        XCTAssertEqual(cs.ss_sp, UnsafeMutableRawPointer(bitPattern: 0x7000_0000))
        XCTAssertEqual(Int(cs.ss_flags), Int(SS_ONSTACK))
        XCTAssertEqual(cs.ss_size, 8192)
        XCTAssertEqual(decoding(ssBytes) { raw throws(Errno) in try SignalStack.decode(from: raw) }, .success(ss))
        XCTAssertEqual(Int(SignalStack.disable), Int(SS_DISABLE))
    }

    func testLegacyDirentRecords() throws {
        // struct linux_dirent: name at 18, NUL, padding, d_type in the last byte, 8-aligned.
        XCTAssertEqual(LegacyDirent.recordLength(nameLength: 1), 24, "18 + 1 + NUL + type = 21 → 24")
        XCTAssertEqual(LegacyDirent.recordLength(nameLength: 4), 24)
        XCTAssertEqual(LegacyDirent.recordLength(nameLength: 5), 32, "18 + 5 + 2 = 25 → 32")
        var bytes = [UInt8](repeating: 0xdd, count: 40)
        let written: (Int?, Int?) = bytes.withUnsafeMutableBytes { buf in
            let a = Array("hello".utf8).withUnsafeBytes { name in
                LegacyDirent.encode(into: buf, at: 0, inode: 42, nextOffset: 7, type: DirentType.DT_REG, name: name)
            }
            let b = Array("x".utf8).withUnsafeBytes { name in
                LegacyDirent.encode(into: buf, at: 32, inode: 3, nextOffset: 8, type: DirentType.DT_DIR, name: name)
            }
            return (a, b)
        }
        XCTAssertEqual(written.0, 32)
        XCTAssertNil(written.1, "24 bytes do not fit in the 8 left")
        XCTAssertEqual(bytes[0], 42)
        XCTAssertEqual(bytes[8], 7)
        XCTAssertEqual(bytes[16], 32)
        XCTAssertEqual(Array(bytes[18..<24]), Array("hello".utf8) + [0])
        XCTAssertEqual(bytes[31], DirentType.DT_REG)
        XCTAssertEqual(Array(bytes[32..<40]), [UInt8](repeating: 0xdd, count: 8), "nothing written past the first")
    }

    func testDirent64Records() throws {
        XCTAssertEqual(Dirent64.recordLength(nameLength: 1), 24)
        XCTAssertEqual(Dirent64.recordLength(nameLength: 4), 24)
        XCTAssertEqual(Dirent64.recordLength(nameLength: 5), 32, "19 + 5 + NUL = 25 → 32")
        var bytes = [UInt8](repeating: 0xdd, count: 56)
        let written: (Int?, Int?, Int?) = bytes.withUnsafeMutableBytes { buf in
            let a = Array("hello".utf8).withUnsafeBytes { name in
                Dirent64.encode(into: buf, at: 0, inode: 42, nextOffset: 1, type: DirentType.DT_REG, name: name)
            }
            let b = Array("..".utf8).withUnsafeBytes { name in
                Dirent64.encode(into: buf, at: 32, inode: 2, nextOffset: 2, type: DirentType.DT_DIR, name: name)
            }
            let c = Array("x".utf8).withUnsafeBytes { name in
                Dirent64.encode(into: buf, at: 56, inode: 3, nextOffset: 3, type: DirentType.DT_DIR, name: name)
            }
            return (a, b, c)
        }
        XCTAssertEqual(written.0, 32)
        XCTAssertEqual(written.1, 24)
        XCTAssertNil(written.2, "no room left")
        // glibc's struct dirent (d_name[256]) is longer than our records: pad to read it.
        let first = asC(bytes + [UInt8](repeating: 0, count: MemoryLayout<dirent>.size - bytes.count), dirent.self)
        XCTAssertEqual(first.d_ino, 42)
        XCTAssertEqual(first.d_off, 1)
        XCTAssertEqual(first.d_reclen, 32)
        XCTAssertEqual(first.d_type, UInt8(DT_REG))
        XCTAssertEqual(cString(first.d_name).prefix(5), "hello")
        XCTAssertEqual(bytes[24], 0, "name NUL-terminated")
        XCTAssertEqual(le(bytes, 32, UInt64.self), 2)
        XCTAssertEqual(le(bytes, 48, UInt16.self), 24)
        XCTAssertEqual(bytes[50], DirentType.DT_DIR)
        XCTAssertEqual(Array(bytes[51..<54]), [46, 46, 0])
    }

    // MARK: - Signals

    func testKernelSigactionRoundTrip() throws {
        var mask = SignalSet()
        mask.insert(.SIGINT)
        mask.insert(.SIGRTMAX)
        let sa = KernelSigaction(handler: 0x40_1000, flags: [.SA_SIGINFO, .SA_RESTORER, .SA_RESTART],
                                 restorer: 0x40_2000, mask: mask)
        let bytes = try encoded(KernelSigaction.size) { try sa.encode(into: $0) }
        XCTAssertEqual(le(bytes, 0, UInt64.self), 0x40_1000)
        XCTAssertEqual(le(bytes, 8, UInt64.self), UInt64(SA_SIGINFO) | 0x0400_0000 | UInt64(SA_RESTART))
        XCTAssertEqual(le(bytes, 16, UInt64.self), 0x40_2000)
        XCTAssertEqual(le(bytes, 24, UInt64.self), (1 << 1) | (1 << 63))
        XCTAssertEqual(try bytes.withUnsafeBytes { raw throws(Errno) in try KernelSigaction.decode(from: raw) }, sa)
    }
}
