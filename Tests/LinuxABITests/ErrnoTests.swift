import Glibc
import LinuxABI
import XCTest

final class ErrnoTests: XCTestCase {
    func testCommonValuesMatchGlibc() {
        let pairs: [(Errno, Int32)] = [
            (.EPERM, EPERM), (.ENOENT, ENOENT), (.ESRCH, ESRCH), (.EINTR, EINTR), (.EIO, EIO),
            (.ENXIO, ENXIO), (.E2BIG, E2BIG), (.ENOEXEC, ENOEXEC), (.EBADF, EBADF),
            (.ECHILD, ECHILD), (.EAGAIN, EAGAIN), (.EWOULDBLOCK, EWOULDBLOCK), (.ENOMEM, ENOMEM),
            (.EACCES, EACCES), (.EFAULT, EFAULT), (.ENOTBLK, ENOTBLK), (.EBUSY, EBUSY),
            (.EEXIST, EEXIST), (.EXDEV, EXDEV), (.ENODEV, ENODEV), (.ENOTDIR, ENOTDIR),
            (.EISDIR, EISDIR), (.EINVAL, EINVAL), (.ENFILE, ENFILE), (.EMFILE, EMFILE),
            (.ENOTTY, ENOTTY), (.ETXTBSY, ETXTBSY), (.EFBIG, EFBIG), (.ENOSPC, ENOSPC),
            (.ESPIPE, ESPIPE), (.EROFS, EROFS), (.EMLINK, EMLINK), (.EPIPE, EPIPE), (.EDOM, EDOM),
            (.ERANGE, ERANGE), (.EDEADLK, EDEADLK), (.EDEADLOCK, EDEADLOCK),
            (.ENAMETOOLONG, ENAMETOOLONG), (.ENOLCK, ENOLCK), (.ENOSYS, ENOSYS),
            (.ENOTEMPTY, ENOTEMPTY), (.ELOOP, ELOOP), (.ENODATA, ENODATA), (.ETIME, ETIME),
            (.EOVERFLOW, EOVERFLOW), (.EILSEQ, EILSEQ), (.ENOTSOCK, ENOTSOCK),
            (.EOPNOTSUPP, EOPNOTSUPP), (.ENOTSUP, ENOTSUP), (.EAFNOSUPPORT, EAFNOSUPPORT),
            (.EADDRINUSE, EADDRINUSE), (.ECONNRESET, ECONNRESET), (.ENOTCONN, ENOTCONN),
            (.ETIMEDOUT, ETIMEDOUT), (.ECONNREFUSED, ECONNREFUSED), (.EINPROGRESS, EINPROGRESS),
            (.EALREADY, EALREADY), (.ECANCELED, ECANCELED), (.EOWNERDEAD, EOWNERDEAD),
            (.EHWPOISON, EHWPOISON),
        ]
        for (errno, glibc) in pairs {
            XCTAssertEqual(errno.rawValue, glibc, "\(errno.name)")
        }
    }

    /// Every value 1…133 has the name glibc gives it (strerrorname_np, glibc ≥ 2.32).
    func testAllNamesMatchGlibc() throws {
        typealias NameFn = @convention(c) (Int32) -> UnsafePointer<CChar>?
        let strerrorname = try XCTUnwrap(libcFunction("strerrorname_np", as: NameFn.self))
        for value in Int32(1)...133 {
            guard let cName = strerrorname(value) else { continue }
            var glibcName = String(cString: cName)
            // glibc names 35 EDEADLK and 95 EOPNOTSUPP too; 11 is EAGAIN.
            if glibcName == "EDEADLOCK" { glibcName = "EDEADLK" }
            if glibcName == "ENOTSUP" { glibcName = "EOPNOTSUPP" }
            if glibcName == "EWOULDBLOCK" { glibcName = "EAGAIN" }
            XCTAssertEqual(String(Errno(value).name), glibcName, "errno \(value)")
        }
        XCTAssertEqual(String(Errno(0).name), "E?")
        XCTAssertEqual(String(Errno(4000).name), "E?")
    }

    func testNegatedReturn() {
        XCTAssertEqual(Errno.ENOENT.negatedReturn, 0xffff_ffff_ffff_fffe)
        XCTAssertEqual(Errno.EPERM.negatedReturn, UInt64.max)
        XCTAssertEqual(Int64(bitPattern: Errno.ENOSYS.negatedReturn), -38)
        XCTAssertEqual(Errno(syscallReturn: Errno.EFAULT.negatedReturn), .EFAULT)
        XCTAssertEqual(Errno(syscallReturn: UInt64(bitPattern: -4095)), Errno(4095))
        XCTAssertNil(Errno(syscallReturn: UInt64(bitPattern: -4096)), "an mmap address, not an error")
        XCTAssertNil(Errno(syscallReturn: 0))
        XCTAssertNil(Errno(syscallReturn: 3))
    }

    func testTypedThrows() {
        func fails() throws(Errno) { throw .EBADF }
        XCTAssertEqual(thrownErrno { () throws(Errno) in try fails() }, .EBADF)
        XCTAssertEqual(Errno(rawValue: 2), .ENOENT)
        XCTAssertNotEqual(Errno.ENOENT, .EIO)
    }
}
