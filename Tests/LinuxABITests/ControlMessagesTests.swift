import Glibc
import LinuxABI
import XCTest

/// SCM_RIGHTS records against Glibc's CMSG_* layout.
final class ControlMessagesTests: XCTestCase {
    /// A control buffer with `records` (level, type, data) laid out as CMSG_NXTHDR walks it.
    private func control(_ records: [(Int32, Int32, [Int32])], lengthAdjust: Int = 0) -> [UInt8] {
        var bytes: [UInt8] = []
        for (level, type, data) in records {
            var header = cmsghdr()
            header.cmsg_len = Int(MemoryLayout<cmsghdr>.size + 4 * data.count + lengthAdjust)
            header.cmsg_level = level
            header.cmsg_type = type
            withUnsafeBytes(of: &header) { bytes.append(contentsOf: $0) }
            for var d in data { withUnsafeBytes(of: &d) { bytes.append(contentsOf: $0) } }
            while bytes.count % 8 != 0 { bytes.append(0) }
        }
        return bytes
    }

    func testHeaderMatchesGlibc() {
        XCTAssertEqual(ControlMessages.headerSize, MemoryLayout<cmsghdr>.size)
        XCTAssertEqual(ControlMessages.SCM_RIGHTS, Int32(SCM_RIGHTS))
        XCTAssertEqual(ControlMessages.SCM_CREDENTIALS, 2)  // glibc declares it only with _GNU_SOURCE
        XCTAssertEqual(SocketConstants.MSG_CTRUNC, Int32(MSG_CTRUNC))
        for n in 0..<5 { XCTAssertEqual(ControlMessages.space(4 * n), Int(CMSG_SPACE_compat(4 * n))) }
    }

    /// glibc's CMSG_SPACE is a macro Swift does not import: the same arithmetic by hand.
    private func CMSG_SPACE_compat(_ length: Int) -> Int {
        let align = { (n: Int) in (n + MemoryLayout<Int>.size - 1) & ~(MemoryLayout<Int>.size - 1) }
        return align(length) + align(MemoryLayout<cmsghdr>.size)
    }

    func testRightsAcrossRecordsInOrder() throws {
        let bytes = control([(SOL_SOCKET, SCM_RIGHTS_VALUE, [5, 7, 5]), (6, 99, [1]), (SOL_SOCKET, SCM_RIGHTS_VALUE, [9])])
        let fds = try bytes.withUnsafeBytes { try ControlMessages.descriptorsToSend($0) }
        XCTAssertEqual(fds, [5, 7, 5, 9], "other levels are skipped; duplicates are passed twice")
    }

    func testMalformedRecordsAreEINVAL() {
        // Shorter than its header, longer than the buffer, an unknown SOL_SOCKET type, bad ucred.
        let short = control([(SOL_SOCKET, SCM_RIGHTS_VALUE, [])], lengthAdjust: -1)
        var long = control([(SOL_SOCKET, SCM_RIGHTS_VALUE, [3])])
        long.removeLast(5)  // 19 bytes left for a record whose cmsg_len says 20
        let unknown = control([(SOL_SOCKET, 77, [3])])
        let credentials = control([(SOL_SOCKET, ControlMessages.SCM_CREDENTIALS, [1, 0])])
        for (name, bytes) in [("short", short), ("long", long), ("unknown type", unknown), ("ucred size", credentials)] {
            XCTAssertThrowsError(try bytes.withUnsafeBytes { try ControlMessages.descriptorsToSend($0) }, name) {
                XCTAssertEqual($0 as? Errno, .EINVAL, name)
            }
        }
        // A tail shorter than a header is ignored, as CMSG_NXTHDR stops there.
        let tail = control([(SOL_SOCKET, SCM_RIGHTS_VALUE, [4])]) + [1, 2, 3]
        XCTAssertEqual(try tail.withUnsafeBytes { try ControlMessages.descriptorsToSend($0) }, [4])
    }

    func testAtMost253Descriptors() throws {
        let ok = control([(SOL_SOCKET, SCM_RIGHTS_VALUE, Array(repeating: 3, count: 200)),
                          (SOL_SOCKET, SCM_RIGHTS_VALUE, Array(repeating: 4, count: 53))])
        XCTAssertEqual(try ok.withUnsafeBytes { try ControlMessages.descriptorsToSend($0) }.count, 253)
        let tooMany = control([(SOL_SOCKET, SCM_RIGHTS_VALUE, Array(repeating: 3, count: 200)),
                               (SOL_SOCKET, SCM_RIGHTS_VALUE, Array(repeating: 4, count: 54))])
        XCTAssertThrowsError(try tooMany.withUnsafeBytes { try ControlMessages.descriptorsToSend($0) })
    }

    func testReceiveEncodingAndCapacity() {
        XCTAssertEqual(ControlMessages.descriptorCapacity(0), 0)
        XCTAssertEqual(ControlMessages.descriptorCapacity(16), 0)
        XCTAssertEqual(ControlMessages.descriptorCapacity(20), 1)
        XCTAssertEqual(ControlMessages.descriptorCapacity(24), 2)
        var buffer = [UInt8](repeating: 0xee, count: 24)
        let used = buffer.withUnsafeMutableBytes { ControlMessages.encodeRights([11], into: $0) }
        XCTAssertEqual(used, 24, "CMSG_SPACE(4)")
        buffer.withUnsafeBytes { raw in
            let header = raw.loadUnaligned(as: cmsghdr.self)
            XCTAssertEqual(header.cmsg_len, 20)
            XCTAssertEqual(header.cmsg_level, SOL_SOCKET)
            XCTAssertEqual(header.cmsg_type, SCM_RIGHTS_VALUE)
            XCTAssertEqual(raw.loadUnaligned(fromByteOffset: 16, as: Int32.self), 11)
        }
        // Room for the record but not its padding: the whole buffer is reported used.
        var tight = [UInt8](repeating: 0, count: 20)
        XCTAssertEqual(tight.withUnsafeMutableBytes { ControlMessages.encodeRights([11], into: $0) }, 20)
        var none = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(none.withUnsafeMutableBytes { ControlMessages.encodeRights([11], into: $0) }, 0)
    }

    private var SCM_RIGHTS_VALUE: Int32 { Int32(SCM_RIGHTS) }
}
