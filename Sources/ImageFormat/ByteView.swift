// Checked little-endian reads over untrusted bytes.
//
// Invariant: nothing in this module indexes the image buffer except through `ByteView`.
// The optional-returning readers check bounds and never trap; the `at:` readers are for
// offsets `ImageReader.init` has already proven to be in bounds, and trap only on a bug in
// this module (never on a property of the input).

struct ByteView {
    let bytes: UnsafeRawBufferPointer

    var count: Int { bytes.count }

    /// The in-bounds byte range `[offset, offset + length)` of a buffer of `limit` bytes,
    /// or nil if it overflows or reaches past `limit`. Offsets and lengths come from the
    /// image as UInt64 and are compared before any conversion to Int.
    static func range(offset: UInt64, length: UInt64, limit: UInt64) -> Range<Int>? {
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= limit, limit <= UInt64(Int.max) else { return nil }
        return Int(offset)..<Int(end)
    }

    func contains(_ offset: Int, width: Int) -> Bool {
        offset >= 0 && offset <= bytes.count - width
    }

    func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count)
        return UnsafeRawBufferPointer(rebasing: bytes[range])
    }

    func u8(at offset: Int) -> UInt8 {
        precondition(contains(offset, width: 1))
        return bytes[offset]
    }

    func u32(at offset: Int) -> UInt32 {
        precondition(contains(offset, width: 4))
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    func u64(at offset: Int) -> UInt64 {
        precondition(contains(offset, width: 8))
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

/// Three-way byte comparison (negative, zero, positive), as memcmp with lengths.
func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let common = min(a.count, b.count)
    var i = 0
    while i < common {
        let x = a[i], y = b[i]
        if x != y { return x < y ? -1 : 1 }
        i += 1
    }
    return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
}

/// Compares `a` with the key `prefix` followed by the single byte `last`.
func compareBytes(_ a: UnsafeRawBufferPointer, _ prefix: UnsafeRawBufferPointer, _ last: UInt8) -> Int {
    let head = UnsafeRawBufferPointer(rebasing: a[0..<min(a.count, prefix.count)])
    let order = compareBytes(head, prefix)
    if order != 0 { return order }
    if a.count == prefix.count { return -1 }  // a is a proper prefix of the key
    let x = a[prefix.count]
    if x != last { return x < last ? -1 : 1 }
    return a.count == prefix.count + 1 ? 0 : 1
}
