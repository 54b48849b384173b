import Glibc
import LinuxABI
import XCTest

/// The socket structures against Glibc's own definitions.
final class SocketsTests: XCTestCase {
    func testInetAddressMatchesGlibc() throws {
        var c = sockaddr_in()
        c.sin_family = sa_family_t(AF_INET)
        c.sin_port = in_port_t(8080).bigEndian
        c.sin_addr.s_addr = inet_addr("10.0.2.15")
        let decoded = try withUnsafeBytes(of: &c) { try SocketAddress(decoding: $0) }
        XCTAssertEqual(decoded, .inet(address: 0x0a00_020f, port: 8080))
        var out = sockaddr_in()
        let length = withUnsafeMutableBytes(of: &out) { decoded.encode(into: $0) }
        XCTAssertEqual(length, MemoryLayout<sockaddr_in>.size)
        XCTAssertEqual(out.sin_port, c.sin_port)
        XCTAssertEqual(out.sin_addr.s_addr, c.sin_addr.s_addr)
        XCTAssertEqual(Int32(out.sin_family), AF_INET)
    }

    func testInet6AddressMatchesGlibc() throws {
        var c = sockaddr_in6()
        c.sin6_family = sa_family_t(AF_INET6)
        c.sin6_port = in_port_t(443).bigEndian
        XCTAssertEqual(inet_pton(AF_INET6, "fd00::1:2", &c.sin6_addr), 1)
        c.sin6_scope_id = 3
        let decoded = try withUnsafeBytes(of: &c) { try SocketAddress(decoding: $0) }
        XCTAssertEqual(decoded, .inet6(high: 0xfd00_0000_0000_0000, low: 0x0000_0000_0001_0002, port: 443, scope: 3))
        var out = sockaddr_in6()
        XCTAssertEqual(withUnsafeMutableBytes(of: &out) { decoded.encode(into: $0) }, MemoryLayout<sockaddr_in6>.size)
        XCTAssertEqual(withUnsafeBytes(of: &out) { Array($0) }, withUnsafeBytes(of: &c) { Array($0) })
    }

    func testUnixAddresses() throws {
        var c = sockaddr_un()
        c.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &c.sun_path) { p in for (i, b) in "/run/x.sock".utf8.enumerated() { p[i] = b } }
        let full = try withUnsafeBytes(of: &c) { try SocketAddress(decoding: $0) }
        XCTAssertEqual(full, .unix(path: Array("/run/x.sock".utf8)))
        XCTAssertEqual(full.encodedLength, 2 + 11 + 1)
        // Abstract: a leading NUL, the length says where the name ends.
        let abstract: [UInt8] = [1, 0, 0, 0x61, 0x62]
        XCTAssertEqual(try abstract.withUnsafeBytes { try SocketAddress(decoding: $0) }, .unix(path: [0, 0x61, 0x62]))
        XCTAssertEqual(SocketAddress.unix(path: [0, 0x61, 0x62]).encodedLength, 5)
        XCTAssertEqual(try [UInt8]([1, 0]).withUnsafeBytes { try SocketAddress(decoding: $0) }, .unix(path: []))
    }

    func testBadAddresses() {
        XCTAssertThrowsError(try [UInt8]([2, 0, 0, 80]).withUnsafeBytes { try SocketAddress(decoding: $0) }) {
            XCTAssertEqual($0 as? Errno, .EINVAL)
        }
        XCTAssertThrowsError(try [UInt8](repeating: 0x77, count: 16).withUnsafeBytes { try SocketAddress(decoding: $0) }) {
            XCTAssertEqual($0 as? Errno, .EAFNOSUPPORT)
        }
        XCTAssertThrowsError(try [UInt8]([2]).withUnsafeBytes { try SocketAddress(decoding: $0) })
    }

    /// A short caller buffer gets the first bytes; the full length is still reported.
    func testTruncatedEncoding() {
        var small = [UInt8](repeating: 0xee, count: 4)
        let n = small.withUnsafeMutableBytes { SocketAddress.inet(address: 0x7f00_0001, port: 80).encode(into: $0) }
        XCTAssertEqual(n, 16)
        XCTAssertEqual(small, [2, 0, 0, 80])
    }

    func testMessageHeaderMatchesGlibc() throws {
        XCTAssertEqual(MemoryLayout<msghdr>.size, MessageHeader.size)
        XCTAssertEqual(MemoryLayout<msghdr>.offset(of: \msghdr.msg_flags), MessageHeader.flagsOffset)
        XCTAssertEqual(MemoryLayout<msghdr>.offset(of: \msghdr.msg_controllen), MessageHeader.controlLengthOffset)
        // struct mmsghdr (not in Glibc's Swift overlay): a msghdr, then msg_len, padded to 8.
        XCTAssertEqual(MessageHeader.lengthOffset, MemoryLayout<msghdr>.size)
        XCTAssertEqual(MessageHeader.multipleSize, (MemoryLayout<msghdr>.size + 4 + 7) & ~7)
        var m = msghdr()
        m.msg_name = UnsafeMutableRawPointer(bitPattern: 0x1000)
        m.msg_namelen = 16
        m.msg_iov = UnsafeMutablePointer(bitPattern: 0x2000)
        m.msg_iovlen = 3
        m.msg_controllen = 24
        m.msg_flags = 0x40
        let decoded = try withUnsafeBytes(of: &m) { try MessageHeader(decoding: $0) }
        XCTAssertEqual(decoded, MessageHeader(name: 0x1000, nameLength: 16, vectors: 0x2000, vectorCount: 3,
                                              control: 0, controlLength: 24, flags: 0x40))
        var back = msghdr()
        try withUnsafeMutableBytes(of: &back) { try decoded.encode(into: $0) }
        XCTAssertEqual(withUnsafeBytes(of: &back) { Array($0) }, withUnsafeBytes(of: &m) { Array($0) })
    }

    func testConstantsMatchGlibc() {
        XCTAssertEqual(SocketConstants.SOCK_NONBLOCK, Int32(SOCK_NONBLOCK.rawValue))
        XCTAssertEqual(SocketConstants.SOCK_CLOEXEC, Int32(SOCK_CLOEXEC.rawValue))
        XCTAssertEqual(SocketConstants.SO_REUSEPORT, SO_REUSEPORT)
        XCTAssertEqual(SocketConstants.SO_PROTOCOL, SO_PROTOCOL)
        XCTAssertEqual(SocketConstants.TCP_KEEPCNT, TCP_KEEPCNT)
        XCTAssertEqual(SocketConstants.IPV6_V6ONLY, IPV6_V6ONLY)
        XCTAssertEqual(SocketConstants.MSG_NOSIGNAL, Int32(MSG_NOSIGNAL))
        XCTAssertEqual(SocketConstants.MSG_WAITALL, Int32(MSG_WAITALL))
    }
}
