// Big-endian field access and the Internet checksum (RFC 1071).
//
// Parsers read received bytes through UnsafeRawBufferPointer after checking the length that
// covers every field they read; builders write into a Packet.

extension UnsafeRawBufferPointer {
    /// Reads the 16-bit big-endian field at `offset` (the caller has checked the length).
    func be16(_ offset: Int) -> UInt16 { UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }
    func be32(_ offset: Int) -> UInt32 { UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
    func be64(_ offset: Int) -> UInt64 { UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    /// The 128-bit IPv6 address at `offset`.
    func ipv6(_ offset: Int) -> IPAddress { IPAddress(high: be64(offset), low: be64(offset + 8)) }
    /// The bytes in `from..<to`, rebased to index 0.
    func slice(_ from: Int, _ to: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[from..<to])
    }
}

/// An outgoing packet: zeroed storage of a fixed size, written in place by each layer and
/// passed by reference between the queues (no copies on the way to the driver).
final class Packet {
    let count: Int
    let base: UnsafeMutableRawPointer

    init(count: Int) {
        self.count = count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 8)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: count)
    }

    deinit { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    // Writers of big-endian fields; offsets are within `count` by construction.
    subscript(offset: Int) -> UInt8 {
        get { base.load(fromByteOffset: offset, as: UInt8.self) }
        set { base.storeBytes(of: newValue, toByteOffset: offset, as: UInt8.self) }
    }
    func put16(_ value: UInt16, at offset: Int) { base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self) }
    func put32(_ value: UInt32, at offset: Int) { base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self) }
    /// Writes the low 48 bits of `value` (a MAC address), most significant octet first.
    func put48(_ value: UInt64, at offset: Int) {
        put16(UInt16(truncatingIfNeeded: value >> 32), at: offset)
        put32(UInt32(truncatingIfNeeded: value), at: offset + 2)
    }
    func put(_ a: IPAddress, at offset: Int) {
        base.storeBytes(of: a.high.bigEndian, toByteOffset: offset, as: UInt64.self)
        base.storeBytes(of: a.low.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
    }
    func put(_ source: UnsafeRawBufferPointer, at offset: Int) {
        guard let from = source.baseAddress else { return }
        (base + offset).copyMemory(from: from, byteCount: source.count)
    }
    /// The one's-complement sum of `length` bytes at `offset`.
    func sum(_ offset: Int, _ length: Int) -> UInt32 { onesComplementSum(bytes.slice(offset, offset + length)) }
}

/// The one's-complement sum of `data` read as 16-bit big-endian words (an odd last byte is
/// padded with zero), folded to 16 bits and not complemented, as a number (0...0xffff).
/// It adds 64-bit native words with end-around carry: the one's-complement sum does not
/// depend on byte order except for a final swap (RFC 1071 §2(B)), and folding 64 bits to 16
/// keeps the value modulo 0xffff.
func onesComplementSum(_ data: UnsafeRawBufferPointer) -> UInt32 {
    guard let base = data.baseAddress else { return 0 }
    let n = data.count
    var acc: UInt64 = 0
    var i = 0
    while i + 8 <= n {
        let (s, carry) = acc.addingReportingOverflow(base.loadUnaligned(fromByteOffset: i, as: UInt64.self))
        acc = s &+ (carry ? 1 : 0)
        i += 8
    }
    // The last 0-7 bytes, placed as a zero-padded word in memory order.
    var tail: UInt64 = 0
    var shift: UInt64 = 0
    while i < n {
        tail |= UInt64(data[i]) << shift
        shift += 8
        i += 1
    }
    let (s, carry) = acc.addingReportingOverflow(UInt64(littleEndian: tail))
    acc = s &+ (carry ? 1 : 0)
    acc = (acc & 0xffff_ffff) + (acc >> 32)
    let native = UInt16(truncatingIfNeeded: fold16(acc))
    return UInt32(UInt16(bigEndian: native))
}

/// Folds a one's-complement accumulator of up to 33 bits to 16 bits.
func fold16(_ value: UInt64) -> UInt64 {
    var v = value
    v = (v & 0xffff) + (v >> 16)
    v = (v & 0xffff) + (v >> 16)
    return (v & 0xffff) + (v >> 16)
}

/// The final checksum field value for a partial sum: folded and complemented.
func checksumField(_ sum: UInt32) -> UInt16 {
    ~UInt16(truncatingIfNeeded: fold16(UInt64(sum)))
}

/// True when `sum` (data including its checksum field) verifies: it folds to 0xffff.
func checksumValid(_ sum: UInt32) -> Bool { fold16(UInt64(sum)) == 0xffff }

/// The sum of the four 16-bit words of `x`.
private func words(_ x: UInt64) -> UInt32 {
    UInt32(truncatingIfNeeded: (x >> 48) + (x >> 32 & 0xffff) + (x >> 16 & 0xffff) + (x & 0xffff))
}

/// The partial sum of the transport pseudo-header (RFC 768 / RFC 793 for IPv4: addresses,
/// protocol, length; RFC 8200 §8.1 for IPv6: the same fields, 128-bit addresses).
func pseudoHeaderSum(_ src: IPAddress, _ dst: IPAddress, _ proto: UInt8, _ length: Int) -> UInt32 {
    let addresses = src.isIPv4
        ? words(src.low & 0xffff_ffff) + words(dst.low & 0xffff_ffff)
        : words(src.high) + words(src.low) + words(dst.high) + words(dst.low)
    return addresses + UInt32(proto) + UInt32(truncatingIfNeeded: length & 0xffff) + UInt32(truncatingIfNeeded: length >> 16)
}
