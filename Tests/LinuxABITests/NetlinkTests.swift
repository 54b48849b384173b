import LinuxABI
import XCTest

/// The RTM_GETLINK / RTM_GETADDR dumps and error answers, parsed back field by field.
final class NetlinkTests: XCTestCase {
    private let interfaces = [
        NetlinkInterface(index: 1, name: Array("lo".utf8), flags: 0x49, mtu: 65536, hardwareType: 772,
                         hardwareAddress: [0, 0, 0, 0, 0, 0],
                         addresses: [.init(bytes: [127, 0, 0, 1], prefixLength: 8, scope: 254)]),
        NetlinkInterface(index: 2, name: Array("eth0".utf8), flags: 0x1043, mtu: 1500, hardwareType: 1,
                         hardwareAddress: [0x52, 0x54, 0, 0x12, 0x34, 0x56],
                         addresses: [.init(bytes: [10, 0, 2, 15], prefixLength: 24, scope: 0),
                                     .init(bytes: [0xfe, 0x80] + [UInt8](repeating: 0, count: 13) + [1], prefixLength: 64, scope: 253)]),
    ]

    /// A request of one message: type, flags, seq 9, pid 0, and a 1-byte family payload
    /// padded as rtgenmsg is (to 4 bytes).
    private func request(_ type: UInt16, flags: UInt16, family: UInt8 = 0) -> [UInt8] {
        var m: [UInt8] = []
        func le<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { m += $0 } }
        le(UInt32(20)); le(type); le(flags); le(UInt32(9)); le(UInt32(0))
        m += [family, 0, 0, 0]
        return m
    }

    private func respond(_ bytes: [UInt8]) -> [[Netlink.Message]] {
        let datagrams = bytes.withUnsafeBytes { Netlink.respond(to: $0, portID: 4242, interfaces: interfaces) }
        return datagrams.map { d in d.withUnsafeBytes { Netlink.parse($0) } }
    }

    /// The attributes of a payload after its fixed header of `skip` bytes.
    private func attributes(_ payload: [UInt8], skip: Int) -> [UInt16: [UInt8]] {
        var out: [UInt16: [UInt8]] = [:]
        var i = skip
        while i + 4 <= payload.count {
            let length = Int(payload[i]) | Int(payload[i + 1]) << 8
            let type = UInt16(payload[i + 2]) | UInt16(payload[i + 3]) << 8
            XCTAssertGreaterThanOrEqual(length, 4)
            out[type] = Array(payload[(i + 4)..<(i + length)])
            i += (length + 3) & ~3
        }
        return out
    }

    func testLinkDump() {
        let answer = respond(request(Netlink.RTM_GETLINK, flags: Netlink.NLM_F_REQUEST | Netlink.NLM_F_DUMP))
        XCTAssertEqual(answer.count, 2, "the links, then NLMSG_DONE")
        XCTAssertEqual(answer[0].map(\.type), [Netlink.RTM_NEWLINK, Netlink.RTM_NEWLINK])
        XCTAssertTrue(answer[0].allSatisfy { $0.sequence == 9 && $0.portID == 4242 && $0.flags & Netlink.NLM_F_MULTI != 0 })
        let eth = answer[0][1].payload
        XCTAssertEqual(Array(eth[2..<4]), [1, 0], "ARPHRD_ETHER")
        XCTAssertEqual(Array(eth[4..<8]), [2, 0, 0, 0], "index 2")
        XCTAssertEqual(Array(eth[8..<12]), [0x43, 0x10, 0, 0], "flags")
        let a = attributes(eth, skip: 16)
        XCTAssertEqual(a[3], Array("eth0".utf8) + [0], "IFLA_IFNAME")
        XCTAssertEqual(a[1], [0x52, 0x54, 0, 0x12, 0x34, 0x56], "IFLA_ADDRESS")
        XCTAssertEqual(a[4], [0xdc, 0x05, 0, 0], "IFLA_MTU 1500")
        XCTAssertEqual(answer[1].map(\.type), [Netlink.NLMSG_DONE])
        XCTAssertEqual(answer[1][0].payload, [0, 0, 0, 0])
    }

    func testAddressDumpFiltersByFamily() {
        let all = respond(request(Netlink.RTM_GETADDR, flags: Netlink.NLM_F_REQUEST | Netlink.NLM_F_DUMP))
        XCTAssertEqual(all[0].count, 3)
        let v4 = respond(request(Netlink.RTM_GETADDR, flags: Netlink.NLM_F_REQUEST | Netlink.NLM_F_DUMP, family: 2))
        XCTAssertEqual(v4[0].count, 2)
        let eth = v4[0][1].payload
        XCTAssertEqual(Array(eth[0..<4]), [2, 24, 0x80, 0], "AF_INET, /24, permanent, universe")
        XCTAssertEqual(Array(eth[4..<8]), [2, 0, 0, 0])
        let a = attributes(eth, skip: 8)
        XCTAssertEqual(a[1], [10, 0, 2, 15])
        XCTAssertEqual(a[2], [10, 0, 2, 15])
        XCTAssertEqual(a[4], [10, 0, 2, 255], "IFA_BROADCAST")
        XCTAssertEqual(a[3], Array("eth0".utf8) + [0])
        let v6 = respond(request(Netlink.RTM_GETADDR, flags: Netlink.NLM_F_REQUEST | Netlink.NLM_F_DUMP, family: 10))
        XCTAssertEqual(v6[0].count, 1)
        XCTAssertEqual(Array(v6[0][0].payload[0..<4]), [10, 64, 0x80, 253])
        let none = respond(request(Netlink.RTM_GETADDR, flags: Netlink.NLM_F_REQUEST | Netlink.NLM_F_DUMP, family: 99))
        XCTAssertEqual(none.map { $0.map(\.type) }, [[Netlink.NLMSG_DONE]], "nothing but DONE")
    }

    func testOtherRequestsGetEOPNOTSUPP() {
        for (type, flags) in [(UInt16(24), Netlink.NLM_F_REQUEST | Netlink.NLM_F_ACK),
                              (Netlink.RTM_GETLINK, Netlink.NLM_F_REQUEST)] {
            let answer = respond(request(type, flags: flags))
            XCTAssertEqual(answer.count, 1)
            let error = answer[0][0]
            XCTAssertEqual(error.type, Netlink.NLMSG_ERROR)
            XCTAssertEqual(error.sequence, 9)
            let code = Int32(bitPattern: UInt32(error.payload[0]) | UInt32(error.payload[1]) << 8
                             | UInt32(error.payload[2]) << 16 | UInt32(error.payload[3]) << 24)
            XCTAssertEqual(code, -Errno.EOPNOTSUPP.rawValue)
            XCTAssertEqual(Array(error.payload[8..<10]), [UInt8(type & 0xff), UInt8(type >> 8)], "the request's header follows")
        }
        XCTAssertTrue(respond(request(Netlink.RTM_GETLINK, flags: 0)).isEmpty, "not a request: no answer")
    }

    func testMalformedDatagramsStopTheParse() {
        var bad = request(Netlink.RTM_GETLINK, flags: Netlink.NLM_F_REQUEST | Netlink.NLM_F_DUMP)
        bad[0] = 200  // longer than the datagram
        XCTAssertTrue(bad.withUnsafeBytes { Netlink.parse($0) }.isEmpty)
        bad[0] = 8  // shorter than a header
        XCTAssertTrue(bad.withUnsafeBytes { Netlink.parse($0) }.isEmpty)
        XCTAssertTrue([UInt8](repeating: 0, count: 10).withUnsafeBytes { Netlink.parse($0) }.isEmpty)
        let two = request(Netlink.RTM_GETLINK, flags: Netlink.NLM_F_REQUEST | Netlink.NLM_F_DUMP)
            + request(Netlink.RTM_GETADDR, flags: Netlink.NLM_F_REQUEST | Netlink.NLM_F_DUMP)
        XCTAssertEqual(two.withUnsafeBytes { Netlink.parse($0) }.map(\.type), [Netlink.RTM_GETLINK, Netlink.RTM_GETADDR])
    }

    func testSockaddrNetlink() throws {
        var bytes = [UInt8](repeating: 0, count: 12)
        let address = SocketAddress.netlink(portID: 77, groups: 5)
        XCTAssertEqual(bytes.withUnsafeMutableBytes { address.encode(into: $0) }, 12)
        XCTAssertEqual(bytes, [16, 0, 0, 0, 77, 0, 0, 0, 5, 0, 0, 0])
        let decoded = bytes.withUnsafeBytes { b in Result { () throws(Errno) in try SocketAddress(decoding: b) } }
        XCTAssertEqual(try decoded.get(), address)
        let short = bytes.prefix(8).withUnsafeBytes { b in Result { () throws(Errno) in try SocketAddress(decoding: b) } }
        XCTAssertThrowsError(try short.get()) { XCTAssertEqual($0 as? Errno, .EINVAL) }
    }
}
