import Glibc
import LinuxABI
import XCTest

final class TimerStructTests: XCTestCase {
    func testItimerspecMatchesGlibc() throws {
        XCTAssertEqual(Itimerspec.size, MemoryLayout<itimerspec>.size)
        let spec = Itimerspec(interval: Timespec(seconds: 1, nanoseconds: 2), value: Timespec(seconds: 3, nanoseconds: 4))
        let c = asC(try encoded(32) { try spec.encode(into: $0) }, itimerspec.self)
        XCTAssertEqual([c.it_interval.tv_sec, c.it_interval.tv_nsec, c.it_value.tv_sec, c.it_value.tv_nsec], [1, 2, 3, 4])
        let back = try bytesOf(c).withUnsafeBytes { raw throws(Errno) in try Itimerspec.decode(from: raw) }
        XCTAssertEqual(back, spec)
        XCTAssertEqual(Itimerspec(intervalNanos: 1_500_000_000, valueNanos: 7),
                       Itimerspec(interval: Timespec(seconds: 1, nanoseconds: 500_000_000), value: Timespec(seconds: 0, nanoseconds: 7)))
        XCTAssertTrue(spec.isValid)
        XCTAssertFalse(Itimerspec(interval: Timespec(seconds: -1, nanoseconds: 0), value: spec.value).isValid)
        XCTAssertFalse(Itimerspec(interval: spec.interval, value: Timespec(seconds: 0, nanoseconds: 1_000_000_000)).isValid)
        XCTAssertThrowsError(try [UInt8](repeating: 0, count: 31).withUnsafeBytes { raw throws(Errno) in try Itimerspec.decode(from: raw) })
    }

    /// Timeouts and durations as Linux takes them: negative or malformed is nil (EINVAL),
    /// beyond Int64.max nanoseconds saturates (KTIME_MAX) instead of overflowing.
    func testDurationDecoding() {
        XCTAssertEqual(Timespec(seconds: 0, nanoseconds: 0).durationNanoseconds, 0)
        XCTAssertEqual(Timespec(seconds: 2, nanoseconds: 5).durationNanoseconds, 2_000_000_005)
        XCTAssertNil(Timespec(seconds: -1, nanoseconds: 0).durationNanoseconds)
        XCTAssertNil(Timespec(seconds: Int64.min, nanoseconds: 0).durationNanoseconds)
        XCTAssertNil(Timespec(seconds: 0, nanoseconds: -1).durationNanoseconds)
        XCTAssertNil(Timespec(seconds: 0, nanoseconds: 1_000_000_000).durationNanoseconds)
        let max = UInt64(Int64.max)
        XCTAssertEqual(Timespec(seconds: 1 << 40, nanoseconds: 0).durationNanoseconds, max)  // 2^40 s: past 2^63 ns
        XCTAssertEqual(Timespec(seconds: Int64.max, nanoseconds: 999_999_999).durationNanoseconds, max)
        XCTAssertEqual(Timespec(seconds: 9_223_372_036, nanoseconds: 854_775_807).durationNanoseconds, max)
        XCTAssertEqual(Timespec(seconds: 9_223_372_036, nanoseconds: 854_775_808).durationNanoseconds, max)

        XCTAssertEqual(Timeval(seconds: 3, microseconds: 7).durationNanoseconds, 3_000_007_000)
        XCTAssertNil(Timeval(seconds: -1, microseconds: 0).durationNanoseconds)
        XCTAssertNil(Timeval(seconds: 0, microseconds: 1_000_000).durationNanoseconds)
        XCTAssertEqual(Timeval(seconds: 1 << 40, microseconds: 0).durationNanoseconds, max)
        XCTAssertEqual(Timeval(seconds: Int64.max, microseconds: 999_999).durationNanoseconds, max)

        // select carries whole seconds out of tv_usec, as Linux's kern_select does.
        XCTAssertEqual(Timeval(seconds: 1, microseconds: 2_500_000).selectTimeoutNanoseconds, 3_500_000_000)
        XCTAssertEqual(Timeval(seconds: 1 << 40, microseconds: 0).selectTimeoutNanoseconds, max)
        XCTAssertNil(Timeval(seconds: -1, microseconds: 0).selectTimeoutNanoseconds)
        XCTAssertNil(Timeval(seconds: 0, microseconds: -1).selectTimeoutNanoseconds)
        XCTAssertNil(Timeval(seconds: Int64.max, microseconds: 1_000_000).selectTimeoutNanoseconds)
        XCTAssertEqual(Timeval(seconds: Int64.max, microseconds: 999_999).selectTimeoutNanoseconds, max)
    }

    func testSigeventMatchesGlibc() throws {
        XCTAssertEqual(Sigevent.size, MemoryLayout<sigevent>.size)
        var c = sigevent()
        c.sigev_value.sival_ptr = UnsafeMutableRawPointer(bitPattern: 0x1234_5678_9abc)
        c.sigev_signo = 27
        c.sigev_notify = Int32(SIGEV_THREAD_ID)
        c._sigev_un._tid = 42
        let e = try bytesOf(c).withUnsafeBytes { raw throws(Errno) in try Sigevent.decode(from: raw) }
        XCTAssertEqual(e, Sigevent(value: 0x1234_5678_9abc, signal: 27, notify: Sigevent.SIGEV_THREAD_ID, threadID: 42))
        XCTAssertEqual(Sigevent.SIGEV_SIGNAL, Int32(SIGEV_SIGNAL))
        XCTAssertEqual(Sigevent.SIGEV_NONE, Int32(SIGEV_NONE))
        XCTAssertEqual(Sigevent.SIGEV_THREAD, Int32(SIGEV_THREAD))
        XCTAssertThrowsError(try [UInt8](repeating: 0, count: 19).withUnsafeBytes { raw throws(Errno) in try Sigevent.decode(from: raw) })
    }

    func testSiginfoLayoutMatchesGlibc() throws {
        XCTAssertEqual(SignalInfo.siginfoSize, MemoryLayout<siginfo_t>.size)
        let kill = SignalInfo(code: SignalInfo.SI_TKILL, sender: 1, detail: 0)
        let ck = asC(try encoded(128) { try kill.encodeSiginfo(signal: 10, into: $0) }, siginfo_t.self)
        XCTAssertEqual(ck.si_signo, 10)
        XCTAssertEqual(ck.si_code, SignalInfo.SI_TKILL)
        XCTAssertEqual(ck._sifields._kill.si_pid, 1)
        XCTAssertEqual(ck._sifields._kill.si_uid, 0)

        let timer = SignalInfo(code: SignalInfo.SI_TIMER, sender: 3, detail: 2, value: 0xdead_beef_0000)
        let ct = asC(try encoded(128) { try timer.encodeSiginfo(signal: 34, into: $0) }, siginfo_t.self)
        XCTAssertEqual(ct.si_code, Int32(SI_TIMER))
        XCTAssertEqual(ct._sifields._timer.si_tid, 3)
        XCTAssertEqual(ct._sifields._timer.si_overrun, 2)
        XCTAssertEqual(UInt(bitPattern: ct._sifields._timer.si_sigval.sival_ptr), 0xdead_beef_0000)
        XCTAssertEqual(SignalInfo.SI_USER, Int32(SI_USER))
        XCTAssertEqual(SignalInfo.SI_KERNEL, Int32(SI_KERNEL))
    }

    func testSignalfdSiginfoLayout() throws {
        // struct signalfd_siginfo is not in the Glibc module: its offsets are checked against
        // <sys/signalfd.h> by hand here (ssi_pid @12, ssi_tid @24, ssi_overrun @32, ssi_int @44,
        // ssi_ptr @48).
        let kill = SignalInfo(code: SignalInfo.SI_USER, sender: 1, detail: 0)
        let k = try encoded(128) { try kill.encodeSignalfd(signal: 15, into: $0) }
        XCTAssertEqual(le(k, 0, UInt32.self), 15)
        XCTAssertEqual(le(k, 8, Int32.self), 0)
        XCTAssertEqual(le(k, 12, UInt32.self), 1)
        let timer = SignalInfo(code: SignalInfo.SI_TIMER, sender: 5, detail: 1, value: 0x1_0000_0007)
        let t = try encoded(128) { try timer.encodeSignalfd(signal: 14, into: $0) }
        XCTAssertEqual(le(t, 8, Int32.self), -2)
        XCTAssertEqual(le(t, 24, UInt32.self), 5)
        XCTAssertEqual(le(t, 32, UInt32.self), 1)
        XCTAssertEqual(le(t, 44, Int32.self), 7)
        XCTAssertEqual(le(t, 48, UInt64.self), 0x1_0000_0007)
        XCTAssertThrowsError(try encoded(127) { try timer.encodeSignalfd(signal: 14, into: $0) })
    }
}
