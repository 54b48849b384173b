// Checked little-endian reads over untrusted bytes.
//
// Invariant: nothing in this module indexes the caller's buffer except through `ByteView`.
// The optional-returning readers check bounds and never trap; the `at:` readers are for
// offsets that `ELFFile.init` has already proven to be in bounds, and trap only on a bug in
// this module (never on a property of the input).

struct ByteView {
    let bytes: UnsafeRawBufferPointer

    var count: Int { bytes.count }

    /// The in-bounds byte range `[offset, offset + length)`, or nil if it overflows or
    /// reaches past the end. Offsets and lengths come straight from the file as UInt64 and
    /// are compared before any conversion to Int.
    func range(offset: UInt64, length: UInt64) -> Range<Int>? {
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard !overflow, end <= UInt64(bytes.count) else { return nil }
        return Int(offset)..<Int(end)
    }

    /// `range(offset:length:)` for a table of `count` records of `size` bytes each.
    func range(offset: UInt64, count: UInt64, size: UInt64) -> Range<Int>? {
        let (length, overflow) = count.multipliedReportingOverflow(by: size)
        guard !overflow else { return nil }
        return range(offset: offset, length: length)
    }

    func contains(_ offset: Int, width: Int) -> Bool {
        offset >= 0 && offset <= bytes.count - width
    }

    func slice(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count)
        return UnsafeRawBufferPointer(rebasing: bytes[range])
    }

    // Optional readers: nil when out of bounds.

    func u8(_ offset: Int) -> UInt8? {
        contains(offset, width: 1) ? bytes[offset] : nil
    }

    func u16(_ offset: Int) -> UInt16? {
        contains(offset, width: 2) ? u16(at: offset) : nil
    }

    func u32(_ offset: Int) -> UInt32? {
        contains(offset, width: 4) ? u32(at: offset) : nil
    }

    func u64(_ offset: Int) -> UInt64? {
        contains(offset, width: 8) ? u64(at: offset) : nil
    }

    // Readers for offsets validated earlier; the precondition guards against bugs here.

    func u16(at offset: Int) -> UInt16 {
        precondition(contains(offset, width: 2))
        return UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
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
