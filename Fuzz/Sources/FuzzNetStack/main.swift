// User-network harness: Ethernet frames from a hostile guest into a NetworkStack set up the
// way the VMM's UserNetwork sets up its own (10.0.2.2/24 on 52:55:0a:00:02:02, accepting
// any destination, a deferring any-TCP listener and an any-UDP socket), with more prior
// state: a connection the stack opens to the guest (a published port's), a connected UDP
// socket (a published UDP port's peer) and an ordinary listener on port 7. Between frames,
// the harness plays UserNetwork's part without host sockets: it completes or refuses the
// guest's connections, echoes what the guest sends on every connection and UDP flow,
// closes what the guest closes, and lets time pass so that timers run.
//
// Input: records until the input ends (at most 64):
//   control u8, length u16 (little-endian), the frame's bytes
// control bits:
//   0 fix the IPv4 header checksum and the TCP/UDP/ICMP/ICMPv6 checksum
//   1 TCP sequence numbers are relative: seq += what the stack acknowledged last on this
//     connection, ack += the stack's next sequence number (so the fuzzer reaches the
//     synchronized states without guessing 32-bit numbers)
//   2 run the application step (UserNetwork's `service`) after the frame
//   3 fix the IPv4 total length / IPv6 payload length to the frame's size
//   4-7 time passes before the frame: n × 250 ms
// After the last record, time runs on for ten minutes in steps so every timer fires.
//
// Checked, on every frame the stack sends: it comes from the stack's MAC, fits the MTU, and
// is a well-formed ARP, IPv4 or IPv6 packet (lengths and every checksum right) — the
// stack's writers must produce valid packets whatever it was fed. API results stay in
// bounds (bytes received ≤ buffer, sent ≤ offered).
import FuzzSupport
import NetStack
#if canImport(Glibc)
import Glibc
#endif

/// APUS_FUZZ_TRACE set: print a line per frame in and out (for reading what a seed or a
/// reproducer does: `APUS_FUZZ_TRACE=1 FuzzNetStack FILE`).
let tracing = getenv("APUS_FUZZ_TRACE") != nil

func describe(_ f: UnsafeRawBufferPointer) -> String {
    guard f.count >= 14 else { return "runt \(f.count)" }
    let type = be16(f, 12)
    var text = "\(f.count) bytes type 0x\(String(type, radix: 16))"
    let ipv4 = type == 0x0800 && f.count >= 34
    let ipv6 = type == 0x86dd && f.count >= 54
    guard ipv4 || ipv6 else { return text }
    let proto = ipv4 ? f[23] : f[20]
    let t = UnsafeRawBufferPointer(rebasing: f[(ipv4 ? 14 + Int(f[14] & 15) * 4 : 54)...])
    text += " proto \(proto)"
    if proto == 6 && t.count >= 20 {
        text += " \(be16(t, 0))→\(be16(t, 2)) flags 0x\(String(t[13], radix: 16)) seq \(be32(t, 4)) ack \(be32(t, 8))"
            + " len \(t.count - Int(t[12] >> 4) * 4)"
    }
    return text
}

let stackMAC: UInt64 = 0x5255_0a00_0202
let gateway: UInt32 = 0x0a00_0202
let guestIPv4: UInt32 = 0x0a00_020f
let millisecond: UInt64 = 1_000_000
let stackPort: UInt16 = 50000

/// What the stack last said on one TCP connection, by (guest address, guest port, other
/// address, other port) as bytes.
struct Track {
    var next: UInt32 = 0       // the stack's next sequence number
    var acknowledged: UInt32 = 0
}

final class Harness {
    let stack: NetworkStack
    let anyTCP: SocketID
    let anyUDP: SocketID
    let listener: SocketID
    var connections: [SocketID] = []
    var udpPeers: [SocketID] = []
    var tracks: [[UInt8]: Track] = [:]
    var now: UInt64 = 1_000 * millisecond
    let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
    let data = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 16)

    init() {
        var config = InterfaceConfig(mac: MACAddress(stackMAC), ipv4: gateway, ipv4PrefixLength: 24, ipv4Gateway: 0)
        config.acceptsAnyDestination = true
        stack = NetworkStack(interface: config, seed: 0x5eed)
        do {
            anyTCP = try stack.open(.stream, ipv6: false)
            try stack.listenAny(anyTCP, deferHandshake: true)
            anyUDP = try stack.open(.datagram, ipv6: false)
            try stack.bindAny(anyUDP)
            listener = try stack.open(.stream, ipv6: true)
            try stack.bind(listener, to: Endpoint(address: .any6, port: 7))
            try stack.listen(listener, backlog: 8)
            let udp = try stack.open(.datagram, ipv6: false)
            try stack.connect(udp, to: Endpoint(address: IPAddress(ipv4: guestIPv4), port: 5353), now: now)
            _ = try stack.sendTo(udp, UnsafeRawBufferPointer(rebasing: data[0..<32]), to: nil, from: nil, now: now)
            udpPeers.append(udp)
        } catch {
            fatalError("stack setup failed: \(error)")
        }
        // A published port: the stack connects to the guest's 8080 (ARP first), from a fixed
        // port so that seeds can answer it (UserNetwork's come from an ephemeral one).
        if let s = try? stack.open(.stream, ipv6: false) {
            try? stack.setOption(s, .noDelay(true))
            try? stack.bind(s, to: Endpoint(address: IPAddress(ipv4: gateway), port: stackPort))
            do { try stack.connect(s, to: Endpoint(address: IPAddress(ipv4: guestIPv4), port: 8080), now: now) } catch {}
            connections.append(s)
        }
        drainOutput()
    }

    deinit {
        frame.deallocate()
        data.deallocate()
    }

    func run(_ input: inout FuzzInput) {
        var records = 0
        while !input.isAtEnd && records < 64 {
            records += 1
            let control = input.u8()
            let length = Int(input.u16())
            let bytes = input.take(length)
            now += UInt64(control >> 4) * 250 * millisecond
            if let d = stack.nextDeadline, d <= now { stack.advance(now: now) }
            let f = UnsafeMutableRawBufferPointer(rebasing: frame[0..<bytes.count])
            f.copyMemory(from: bytes)
            fixUp(f, control: control)
            if tracing { print("in  t=\(now / millisecond)ms \(describe(UnsafeRawBufferPointer(f)))") }
            stack.input(frame: UnsafeRawBufferPointer(f), now: now)
            drainOutput()
            if control & 4 != 0 { service() }
        }
        for _ in 0..<20 {
            now += 30_000 * millisecond
            stack.advance(now: now)
            service()
        }
    }

    // MARK: UserNetwork's part

    func service() {
        if let d = stack.nextDeadline, d <= now { stack.advance(now: now) }
        // The guest's outbound connections: "host connect" succeeds unless the port is a
        // multiple of 3 (refused: the guest gets a reset).
        while let (s, _) = try? stack.accept(anyTCP) {
            guard connections.count < 32, let local = stack.localEndpoint(s), local.port % 3 != 0 else {
                stack.abort(s, now: now)
                continue
            }
            stack.completeHandshake(s, now: now)
            connections.append(s)
        }
        while connections.count < 32, let (s, _) = try? stack.accept(listener) { connections.append(s) }
        // Echo, half-close on EOF, close when both sides are done.
        connections.removeAll { s in
            let readiness = stack.readiness(s)
            if readiness.contains(.error), stack.takeError(s) != nil {
                stack.abort(s, now: now)
                return true
            }
            do {
                let n = try stack.receive(s, into: data, peek: false, now: now)
                check(n >= 0 && n <= data.count, "received \(n) bytes into \(data.count)")
                if n == 0 {
                    try? stack.shutdown(s, read: false, write: true, now: now)
                } else {
                    let sent = try stack.send(s, UnsafeRawBufferPointer(rebasing: data[0..<n]), now: now)
                    check(sent >= 0 && sent <= n, "sent \(sent) of \(n)")
                }
            } catch {
                // EAGAIN, ENOTCONN during the handshake, EPIPE after a reset: as UserNetwork.
            }
            if readiness.contains(.hangup) {
                stack.close(s, now: now)
                return true
            }
            return false
        }
        // UDP: answer every datagram as its original destination (UserNetwork's flows).
        var datagrams = 0
        while datagrams < 16, let r = try? stack.receiveFrom(anyUDP, into: data, peek: false) {
            datagrams += 1
            check(r.count <= data.count && r.count <= r.fullLength, "datagram \(r.count)/\(r.fullLength)")
            _ = try? stack.sendTo(anyUDP, UnsafeRawBufferPointer(rebasing: data[0..<r.count]), to: r.from, from: r.to, now: now)
        }
        for peer in udpPeers {
            while let r = try? stack.receiveFrom(peer, into: data, peek: false) {
                check(r.count <= data.count, "peer datagram \(r.count)")
            }
        }
        drainOutput()
    }

    // MARK: Frames out

    func drainOutput() {
        while let n = stack.nextOutputFrame(into: frame) {
            verifyOutput(UnsafeRawBufferPointer(rebasing: frame[0..<n]))
        }
    }

    func verifyOutput(_ f: UnsafeRawBufferPointer) {
        if tracing { print("out t=\(now / millisecond)ms \(describe(f))") }
        check(f.count >= 14 && f.count <= 14 + 1500, "frame of \(f.count) bytes sent")
        check(be48(f, 6) == stackMAC, "frame from another MAC")
        let p = UnsafeRawBufferPointer(rebasing: f[14...])
        switch be16(f, 12) {
        case 0x0806:
            check(p.count == 28 && be16(p, 0) == 1 && be16(p, 2) == 0x0800 && p[4] == 6 && p[5] == 4, "malformed ARP sent")
            check(be16(p, 6) == 1 || be16(p, 6) == 2, "ARP op")
        case 0x0800:
            check(p.count >= 20 && p[0] == 0x45 && Int(be16(p, 2)) == p.count, "IPv4 header or length")
            check(sum(UnsafeRawBufferPointer(rebasing: p[0..<20])) == 0xffff, "IPv4 header checksum")
            let fragment = be16(p, 6)
            guard fragment & 0x3fff == 0 else { return }   // a fragment: no transport header to check
            verifyTransport(p[9], UnsafeRawBufferPointer(rebasing: p[20...]),
                            pseudo: sum(UnsafeRawBufferPointer(rebasing: p[12..<20])), addresses: p[12..<20], ipv6: false)
        case 0x86dd:
            check(p.count >= 40 && p[0] >> 4 == 6 && Int(be16(p, 4)) == p.count - 40, "IPv6 header or length")
            verifyTransport(p[6], UnsafeRawBufferPointer(rebasing: p[40...]),
                            pseudo: sum(UnsafeRawBufferPointer(rebasing: p[8..<40])), addresses: p[8..<40], ipv6: true)
        default:
            fatalError("frame with EtherType 0x\(String(be16(f, 12), radix: 16)) sent")
        }
    }

    func verifyTransport(_ proto: UInt8, _ t: UnsafeRawBufferPointer, pseudo: UInt32, addresses: Slice<UnsafeRawBufferPointer>, ipv6: Bool) {
        let pseudoSum = pseudo + UInt32(proto) + UInt32(t.count)
        switch proto {
        case 6:
            check(t.count >= 20 && Int(t[12] >> 4) * 4 >= 20 && Int(t[12] >> 4) * 4 <= t.count, "TCP header")
            check(fold(sum(t) + pseudoSum) == 0xffff, "TCP checksum")
            // Learn the connection's numbers, keyed from the guest's side.
            let half = addresses.count / 2
            let source = Array(addresses.prefix(half)), destination = Array(addresses.suffix(half))
            let key = destination + [t[2], t[3]] + source + [t[0], t[1]]
            let flags = t[13]
            guard flags & 0x04 == 0 else { tracks[key] = nil; return }
            let payload = t.count - Int(t[12] >> 4) * 4
            var track = tracks[key] ?? Track()
            track.next = be32(t, 4) &+ UInt32(payload) &+ (flags & 0x02 != 0 ? 1 : 0) &+ (flags & 0x01 != 0 ? 1 : 0)
            if flags & 0x10 != 0 { track.acknowledged = be32(t, 8) }
            tracks[key] = track
        case 17:
            check(t.count >= 8 && Int(be16(t, 4)) == t.count, "UDP length")
            check(be16(t, 6) != 0 && fold(sum(t) + pseudoSum) == 0xffff, "UDP checksum")
        case 1 where !ipv6:
            check(t.count >= 8 && sum(t) == 0xffff, "ICMP checksum")
        case 58 where ipv6:
            check(t.count >= 4 && fold(sum(t) + pseudoSum) == 0xffff, "ICMPv6 checksum")
        default:
            fatalError("IP protocol \(proto) sent")
        }
    }

    // MARK: Frames in

    /// The fix-ups the control byte asks for, on the guest's frame in place.
    func fixUp(_ f: UnsafeMutableRawBufferPointer, control: UInt8) {
        guard f.count >= 14 else { return }
        let p = UnsafeMutableRawBufferPointer(rebasing: f[14...])
        let type = be16(UnsafeRawBufferPointer(f), 12)
        if type == 0x0800, p.count >= 20, p[0] >> 4 == 4 {
            let headerLength = max(Int(p[0] & 0x0f) * 4, 20)
            guard headerLength <= p.count else { return }
            if control & 8 != 0 { put16(p, 2, UInt16(truncatingIfNeeded: p.count)) }
            let total = min(max(Int(be16(UnsafeRawBufferPointer(p), 2)), headerLength), p.count)
            if control & 1 != 0 {
                put16(p, 10, 0)
                put16(p, 10, ~UInt16(sum(UnsafeRawBufferPointer(rebasing: p[0..<headerLength]))))
            }
            // A fragment holds part of a transport message: its checksum covers the whole.
            guard be16(UnsafeRawBufferPointer(p), 6) & 0x3fff == 0 else { return }
            let t = UnsafeMutableRawBufferPointer(rebasing: p[headerLength..<total])
            transportFixUp(p[9], t, addresses: UnsafeRawBufferPointer(rebasing: p[12..<20]), control: control)
        } else if type == 0x86dd, p.count >= 40, p[0] >> 4 == 6 {
            if control & 8 != 0 { put16(p, 4, UInt16(truncatingIfNeeded: p.count - 40)) }
            let end = min(40 + Int(be16(UnsafeRawBufferPointer(p), 4)), p.count)
            let t = UnsafeMutableRawBufferPointer(rebasing: p[40..<end])
            transportFixUp(p[6], t, addresses: UnsafeRawBufferPointer(rebasing: p[8..<40]), control: control)
        }
    }

    func transportFixUp(_ proto: UInt8, _ t: UnsafeMutableRawBufferPointer, addresses: UnsafeRawBufferPointer, control: UInt8) {
        let checksumAt: Int
        switch proto {
        case 6:
            guard t.count >= 20 else { return }
            if control & 2 != 0 {
                let half = addresses.count / 2
                let key = Array(addresses.prefix(half)) + [t[0], t[1]] + Array(addresses.suffix(half)) + [t[2], t[3]]
                if let track = tracks[key] {
                    put32(t, 4, track.acknowledged &+ be32(UnsafeRawBufferPointer(t), 4))
                    put32(t, 8, track.next &+ be32(UnsafeRawBufferPointer(t), 8))
                }
            }
            checksumAt = 16
        case 17: guard t.count >= 8 else { return }; checksumAt = 6
        case 1 where addresses.count == 8: guard t.count >= 4 else { return }; checksumAt = 2
        case 58 where addresses.count == 32: guard t.count >= 4 else { return }; checksumAt = 2
        default: return
        }
        guard control & 1 != 0 else { return }
        put16(t, checksumAt, 0)
        let pseudo = proto == 1 ? 0 : sum(addresses) + UInt32(proto) + UInt32(t.count)
        let value = ~UInt16(fold(sum(UnsafeRawBufferPointer(t)) + pseudo))
        put16(t, checksumAt, proto == 17 && value == 0 ? 0xffff : value)
    }
}

// MARK: Byte helpers (the harness's own, so that the stack is checked against them)

func be16(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }
func be32(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt32 { UInt32(be16(b, o)) << 16 | UInt32(be16(b, o + 2)) }
func be48(_ b: UnsafeRawBufferPointer, _ o: Int) -> UInt64 { UInt64(be16(b, o)) << 32 | UInt64(be32(b, o + 2)) }
func put16(_ b: UnsafeMutableRawBufferPointer, _ o: Int, _ v: UInt16) { b[o] = UInt8(v >> 8); b[o + 1] = UInt8(truncatingIfNeeded: v) }
func put32(_ b: UnsafeMutableRawBufferPointer, _ o: Int, _ v: UInt32) {
    put16(b, o, UInt16(v >> 16)); put16(b, o + 2, UInt16(truncatingIfNeeded: v))
}
func fold(_ v: UInt32) -> UInt32 {
    var x = v
    while x > 0xffff { x = (x & 0xffff) + (x >> 16) }
    return x
}
/// The folded one's-complement sum of 16-bit big-endian words (RFC 1071), odd byte padded.
func sum(_ b: UnsafeRawBufferPointer) -> UInt32 {
    var total: UInt32 = 0
    var i = 0
    while i + 1 < b.count { total = fold(total + UInt32(be16(b, i))); i += 2 }
    if i < b.count { total = fold(total + UInt32(b[i]) << 8) }
    return total
}

func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    var input = FuzzInput(inputBuffer(data, size))
    let harness = Harness()
    harness.run(&input)
    return 0
}

// MARK: Seeds

let guestMAC: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
let stackMACBytes: [UInt8] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]

func ipv4Bytes(_ a: UInt32) -> [UInt8] { [UInt8(a >> 24), UInt8(truncatingIfNeeded: a >> 16), UInt8(truncatingIfNeeded: a >> 8), UInt8(truncatingIfNeeded: a)] }

func ethernet(_ type: UInt16, _ payload: [UInt8], to: [UInt8] = stackMACBytes) -> [UInt8] {
    to + guestMAC + [UInt8(type >> 8), UInt8(truncatingIfNeeded: type)] + payload
}

func arp(op: UInt16, senderIP: UInt32, targetIP: UInt32, targetMAC: [UInt8]) -> [UInt8] {
    [0, 1, 8, 0, 6, 4, 0, UInt8(op)] + guestMAC + ipv4Bytes(senderIP) + targetMAC + ipv4Bytes(targetIP)
}

/// An IPv4 packet from the guest (checksums and lengths left to the fix-up bits).
func ipv4(_ proto: UInt8, to destination: UInt32, _ payload: [UInt8], fragment: UInt16 = 0x4000, id: UInt16 = 1) -> [UInt8] {
    var h: [UInt8] = [0x45, 0, 0, 0, UInt8(id >> 8), UInt8(truncatingIfNeeded: id), UInt8(fragment >> 8), UInt8(truncatingIfNeeded: fragment), 64, proto, 0, 0]
    h += ipv4Bytes(guestIPv4) + ipv4Bytes(destination)
    h.storeBE(UInt16(20 + payload.count), at: 2)
    return h + payload
}

func tcp(from: UInt16, to: UInt16, seq: UInt32, ack: UInt32, flags: UInt8, options: [UInt8] = [], _ payload: [UInt8] = []) -> [UInt8] {
    var t = [UInt8](repeating: 0, count: 20)
    t.storeBE(from, at: 0); t.storeBE(to, at: 2); t.storeBE(seq, at: 4); t.storeBE(ack, at: 8)
    t[12] = UInt8((20 + options.count) / 4) << 4
    t[13] = flags
    t.storeBE(UInt16(64240), at: 14)
    return t + options + payload
}

func udp(from: UInt16, to: UInt16, _ payload: [UInt8]) -> [UInt8] {
    var u = [UInt8](repeating: 0, count: 8)
    u.storeBE(from, at: 0); u.storeBE(to, at: 2); u.storeBE(UInt16(8 + payload.count), at: 4)
    return u + payload
}

/// SYN options: MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
let synOptions: [UInt8] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]

func record(_ control: UInt8, _ frame: [UInt8]) -> [UInt8] {
    var r = [control]
    r.appendLE(UInt16(frame.count))
    return r + frame
}

/// Fix checksums and lengths, relative TCP numbers, run the application step.
let fixAll: UInt8 = 0x0f

func seeds() -> [(name: String, bytes: [UInt8])] {
    let arpRequest = record(fixAll, ethernet(0x0806, arp(op: 1, senderIP: guestIPv4, targetIP: gateway, targetMAC: [0, 0, 0, 0, 0, 0]),
                                             to: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))
    let arpReply = record(fixAll, ethernet(0x0806, arp(op: 2, senderIP: guestIPv4, targetIP: gateway, targetMAC: stackMACBytes)))
    let server: UInt32 = 0x5db8_d822   // 93.184.216.34
    let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)
    // The guest connects out, sends a request, gets the echo, closes.
    let outbound = arpRequest
        + record(fixAll, ethernet(0x0800, ipv4(6, to: server, tcp(from: 40000, to: 80, seq: 1000, ack: 0, flags: 0x02, options: synOptions))))
        + record(fixAll, ethernet(0x0800, ipv4(6, to: server, tcp(from: 40000, to: 80, seq: 0, ack: 0, flags: 0x10))))
        + record(fixAll, ethernet(0x0800, ipv4(6, to: server, tcp(from: 40000, to: 80, seq: 0, ack: 0, flags: 0x18, request))))
        + record(fixAll, ethernet(0x0800, ipv4(6, to: server, tcp(from: 40000, to: 80, seq: 0, ack: 0, flags: 0x11))))
        + record(0x1f, ethernet(0x0800, ipv4(6, to: server, tcp(from: 40000, to: 80, seq: 0, ack: 0, flags: 0x10))))
    // The stack's connection to the guest's 8080: ARP reply, SYN-ACK, data, reset.
    let inbound = arpReply
        + record(fixAll, ethernet(0x0800, ipv4(6, to: gateway, tcp(from: 8080, to: stackPort, seq: 5000, ack: 0, flags: 0x12, options: synOptions))))
        + record(fixAll, ethernet(0x0800, ipv4(6, to: gateway, tcp(from: 8080, to: stackPort, seq: 0, ack: 0, flags: 0x18, Array("hello".utf8)))))
        + record(0x4f, ethernet(0x0800, ipv4(6, to: gateway, tcp(from: 8080, to: stackPort, seq: 0, ack: 0, flags: 0x04))))
    // A refused connection (port 21 is a multiple of 3) and the ordinary listener on port 7.
    let listener = arpRequest
        + record(fixAll, ethernet(0x0800, ipv4(6, to: 0x0a00_0203, tcp(from: 40001, to: 21, seq: 1, ack: 0, flags: 0x02))))
        + record(fixAll, ethernet(0x0800, ipv4(6, to: gateway, tcp(from: 40002, to: 7, seq: 77, ack: 0, flags: 0x02, options: synOptions))))
        + record(fixAll, ethernet(0x0800, ipv4(6, to: gateway, tcp(from: 40002, to: 7, seq: 0, ack: 0, flags: 0x10))))
        + record(fixAll, ethernet(0x0800, ipv4(6, to: gateway, tcp(from: 40002, to: 7, seq: 0, ack: 0, flags: 0x18, Array("echo me".utf8)))))
    // UDP to the DNS address, ICMP echo, two IPv4 fragments of one datagram, an ICMPv6 echo
    // to the stack's link-local address and a neighbour solicitation for it.
    let dns = udp(from: 5353, to: 53, [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0] + [7] + Array("example".utf8) + [3] + Array("com".utf8) + [0, 0, 1, 0, 1])
    let echo: [UInt8] = [8, 0, 0, 0, 0, 1, 0, 1] + Array("ping".utf8)
    let whole = udp(from: 4000, to: 4001, [UInt8](repeating: 0x61, count: 40))   // checksum 0: none
    let linkLocal: [UInt8] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x55, 0x0a, 0xff, 0xfe, 0x00, 0x02, 0x02]
    let guestLinkLocal: [UInt8] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x50, 0x54, 0x00, 0xff, 0xfe, 0x12, 0x34, 0x56]
    func ipv6(_ next: UInt8, to destination: [UInt8], _ payload: [UInt8]) -> [UInt8] {
        [0x60, 0, 0, 0, UInt8(payload.count >> 8), UInt8(truncatingIfNeeded: payload.count), next, 255] + guestLinkLocal + destination + payload
    }
    let solicitedNode: [UInt8] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0x00, 0x02, 0x02]
    let solicitation: [UInt8] = [135, 0, 0, 0, 0, 0, 0, 0] + linkLocal + [1, 1] + guestMAC
    let mixed = arpRequest
        + record(fixAll, ethernet(0x0800, ipv4(17, to: 0x0a00_0203, dns)))
        + record(fixAll, ethernet(0x0800, ipv4(1, to: gateway, echo)))
        + record(fixAll, ethernet(0x0800, ipv4(17, to: 0x0a00_0209, Array(whole[0..<24]), fragment: 0x2000, id: 9)))
        + record(fixAll, ethernet(0x0800, ipv4(17, to: 0x0a00_0209, Array(whole[24...]), fragment: 3, id: 9)))
        + record(fixAll, ethernet(0x86dd, ipv6(58, to: solicitedNode, solicitation), to: [0x33, 0x33, 0xff, 0x00, 0x02, 0x02]))
        + record(fixAll, ethernet(0x86dd, ipv6(58, to: linkLocal, [128, 0, 0, 0, 0, 7, 0, 1, 1, 2, 3, 4])))
        + record(fixAll, ethernet(0x86dd, ipv6(6, to: linkLocal, tcp(from: 40003, to: 7, seq: 9, ack: 0, flags: 0x02, options: synOptions))))
    return [("outbound-tcp", outbound), ("inbound-tcp", inbound), ("listener-tcp", listener), ("udp-icmp-ipv6", mixed)]
}

runFuzzer(seeds: seeds, { testOneInput($0, $1) })
