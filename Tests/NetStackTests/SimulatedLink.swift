// A deterministic simulated Ethernet between NetworkStacks, driven by a virtual clock: frames
// are delayed, and (with a seeded PRNG) dropped, duplicated and reordered.
import LinuxABI
import XCTest
@testable import NetStack

let ms: UInt64 = 1_000_000
let sec: UInt64 = 1_000_000_000

func ip(_ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: UInt32) -> UInt32 { a << 24 | b << 16 | c << 8 | d }
func ep(_ a: UInt32, _ port: UInt16) -> Endpoint { Endpoint(address: IPAddress(ipv4: a), port: port) }

struct TestRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
    /// True with probability `p`.
    mutating func chance(_ p: Double) -> Bool { p > 0 && Double(next() % 1_000_000) < p * 1_000_000 }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
}

/// A frame seen on the link, for assertions.
struct SeenFrame {
    var time: UInt64
    var from: Int
    var bytes: [UInt8]
    var isTCP: Bool { bytes.count >= 54 && bytes[12] == 8 && bytes[13] == 0 && bytes[23] == 6 }
    var tcpOffset: Int { 14 + Int(bytes[14] & 0x0f) * 4 }
    var tcpFlags: UInt8 { bytes[tcpOffset + 13] }
    var tcpSeq: UInt32 { be32(tcpOffset + 4) }
    var tcpAck: UInt32 { be32(tcpOffset + 8) }
    var tcpWindow: UInt16 { UInt16(bytes[tcpOffset + 14]) << 8 | UInt16(bytes[tcpOffset + 15]) }
    var tcpPayloadLength: Int { 14 + (Int(bytes[16]) << 8 | Int(bytes[17])) - tcpOffset - Int(bytes[tcpOffset + 12] >> 4) * 4 }
    var tcpOptions: [UInt8] { Array(bytes[(tcpOffset + 20)..<(tcpOffset + Int(bytes[tcpOffset + 12] >> 4) * 4)]) }
    func be32(_ o: Int) -> UInt32 { UInt32(bytes[o]) << 24 | UInt32(bytes[o + 1]) << 16 | UInt32(bytes[o + 2]) << 8 | UInt32(bytes[o + 3]) }
}

final class SimulatedLink {
    var now: UInt64 = 0
    let stacks: [NetworkStack]
    var random: TestRandom
    var loss = 0.0, duplication = 0.0, reordering = 0.0
    var latency: UInt64 = 1 * ms
    /// Frames from stack i are dropped while this returns false.
    var pass: (Int, SeenFrame) -> Bool = { _, _ in true }
    var seen: [SeenFrame] = []
    var keepLog = true
    private var inFlight: [(at: UInt64, to: Int, bytes: [UInt8])] = []
    private var buffer = [UInt8](repeating: 0, count: 70_000)

    static let addressA = ip(10, 0, 0, 1), addressB = ip(10, 0, 0, 2)

    init(seed: UInt64 = 1, configure: (inout InterfaceConfig, Int) -> Void = { _, _ in }) {
        var stacks: [NetworkStack] = []
        for i in 0..<2 {
            var c = InterfaceConfig(mac: MACAddress(0x0200_0000_0001 + UInt64(i)), ipv4: ip(10, 0, 0, 1 + UInt32(i)),
                                    ipv4PrefixLength: 24)
            configure(&c, i)
            stacks.append(NetworkStack(interface: c, seed: seed &+ UInt64(i) &* 77))
        }
        self.stacks = stacks
        random = TestRandom(state: seed)
    }

    var a: NetworkStack { stacks[0] }
    var b: NetworkStack { stacks[1] }

    /// Moves every queued output frame onto the wire.
    func collect() {
        for (i, stack) in stacks.enumerated() {
            while let n = buffer.withUnsafeMutableBytes({ stack.nextOutputFrame(into: $0) }) {
                let frame = SeenFrame(time: now, from: i, bytes: Array(buffer[0..<n]))
                if keepLog { seen.append(frame) }
                guard pass(i, frame), !random.chance(loss) else { continue }
                let copies = random.chance(duplication) ? 2 : 1
                for _ in 0..<copies {
                    let extra = random.chance(reordering) ? latency * (1 + random.next() % 4) : 0
                    inFlight.append((now + latency + extra, 1 - i, frame.bytes))
                }
            }
        }
    }

    /// Runs one event (frame delivery or timer); false when nothing is scheduled before `limit`.
    @discardableResult
    func step(limit: UInt64 = .max) -> Bool {
        collect()
        var next = inFlight.map(\.at).min() ?? .max
        for s in stacks { if let d = s.nextDeadline { next = min(next, d) } }
        guard next != .max, next <= limit else { return false }
        now = max(now, next)
        let due = inFlight.filter { $0.at <= now }
        inFlight.removeAll { $0.at <= now }
        for f in due { f.bytes.withUnsafeBytes { stacks[f.to].input(frame: $0, now: now) } }
        for s in stacks { s.advance(now: now) }
        collect()
        return true
    }

    /// Runs until `done` holds (true) or virtual time passes `timeout` from now (false).
    @discardableResult
    func run(for timeout: UInt64 = 10 * sec, until done: () -> Bool = { false }) -> Bool {
        let limit = now + timeout
        while !done() {
            if !step(limit: limit) {
                now = max(now, limit)
                return done()
            }
        }
        return true
    }

    var tcpFrames: [SeenFrame] { seen.filter(\.isTCP) }

    /// Fills both neighbour caches (A pings B), so later timings exclude ARP.
    func resolveNeighbours() {
        var ping = [UInt8](repeating: 0, count: 42)
        ping.put48(0x0200_0000_0001, at: 0)
        ping.put16(0x0800, at: 12)
        ping[14] = 0x45
        ping.put16(28, at: 16)
        ping[22] = 64
        ping[23] = 1
        ping.put32(SimulatedLink.addressB, at: 26)
        ping.put32(SimulatedLink.addressA, at: 30)
        ping.put16(checksumField(ping.sum(14, 20)), at: 24)
        ping[34] = 8
        ping.put16(checksumField(ping.sum(34, 8)), at: 36)
        // B "sent" an echo request to A: A answers, resolving B; B learns A from A's ARP request.
        ping.withUnsafeBytes { a.input(frame: $0, now: now) }
        run(for: sec)
        seen.removeAll()
    }
}

extension NetworkStack {
    /// Sends all of `bytes` it can now; returns the count.
    func sendSome(_ s: SocketID, _ bytes: ArraySlice<UInt8>, now: UInt64) -> Int {
        (try? bytes.withUnsafeBytes { try send(s, $0, now: now) }) ?? 0
    }
    func receiveAll(_ s: SocketID, now: UInt64, max: Int = 1 << 20, peek: Bool = false) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        let n = try buffer.withUnsafeMutableBytes { try receive(s, into: $0, peek: peek, now: now) }
        return Array(buffer[0..<n])
    }
    func sendBytes(_ s: SocketID, _ bytes: [UInt8], now: UInt64) throws -> Int {
        try bytes.withUnsafeBytes { try send(s, $0, now: now) }
    }
    func state(_ s: SocketID) -> TCPState? { (try? socket(s))?.state }
    func rawSocket(_ s: SocketID) -> Socket { try! socket(s) }
}

func expectErrno(_ expected: Errno, _ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) {
    do {
        try body()
        XCTFail("expected \(expected.rawValue), got success", file: file, line: line)
    } catch {
        XCTAssertEqual(error as? Errno, expected, file: file, line: line)
    }
}

/// Opens a listener on B:port and connects A to it; returns (client on A, server on B).
func establish(_ link: SimulatedLink, port: UInt16 = 80, configure: (NetworkStack, SocketID) -> Void = { _, _ in })
    -> (SocketID, SocketID) {
    let l = try! link.b.open(.stream, ipv6: false)
    try! link.b.bind(l, to: ep(0, port))
    try! link.b.listen(l, backlog: 8)
    let c = try! link.a.open(.stream, ipv6: false)
    configure(link.a, c)
    expectErrno(.EINPROGRESS) { try link.a.connect(c, to: ep(SimulatedLink.addressB, port), now: link.now) }
    var server: SocketID?
    XCTAssertTrue(link.run { if server == nil { server = try? link.b.accept(l).0 }; return server != nil && link.a.state(c) == .established })
    link.b.close(l, now: link.now)
    return (c, server!)
}

func randomBytes(_ seed: UInt64, _ n: Int) -> [UInt8] {
    var r = TestRandom(state: seed)
    return r.bytes(n)
}

/// Compares byte arrays, reporting the first difference instead of both arrays.
func assertSameBytes(_ a: [UInt8], _ b: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
    guard a != b else { return }
    let i = (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
    XCTFail("byte arrays differ: counts \(a.count) and \(b.count), first difference at \(i)", file: file, line: line)
}

// Frame building in tests.
extension Array where Element == UInt8 {
    mutating func put16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }
    mutating func put32(_ value: UInt32, at offset: Int) {
        put16(UInt16(truncatingIfNeeded: value >> 16), at: offset)
        put16(UInt16(truncatingIfNeeded: value), at: offset + 2)
    }
    mutating func put48(_ value: UInt64, at offset: Int) {
        put16(UInt16(truncatingIfNeeded: value >> 32), at: offset)
        put32(UInt32(truncatingIfNeeded: value), at: offset + 2)
    }
    func sum(_ offset: Int, _ count: Int) -> UInt32 {
        withUnsafeBytes { onesComplementSum($0.slice(offset, offset + count)) }
    }
}
