// Name tables packed into one string literal (the generated syscallNames and errnoNames):
// "read\0write\0open\0…", entry i being the i-th NUL-terminated name. A lookup scans the
// table; the callers (trace lines, error reports) are rare and slow anyway, and the table
// costs a byte per character where a switch over the names costs a few instructions per case.

/// The `index`-th name of `table` (NUL-separated ASCII names), or nil when `index` is out of
/// range or that entry is empty (a number with no name).
func packedName(_ table: StaticString, _ index: Int) -> StaticString? {
    guard index >= 0 else { return nil }
    let text = table.utf8Start
    let count = table.utf8CodeUnitCount
    var start = 0
    var skipped = 0
    while skipped < index {
        guard start < count else { return nil }
        if text[start] == 0 { skipped += 1 }
        start += 1
    }
    var end = start
    while end < count && text[end] != 0 { end += 1 }
    guard end > start else { return nil }
    return StaticString(asciiLiteralBytes: text + start, count: end - start)
}

extension StaticString {
    /// The `count` ASCII bytes at `start`, which must lie inside a string literal (static
    /// storage, followed by a NUL as `utf8Start` promises).
    ///
    /// StaticString has no public initializer from a pointer, but its layout is frozen ABI
    /// (`@frozen`: the pointer as a word, the byte count as a word, then a flags byte whose
    /// bit 0 clear means "pointer representation" and bit 1 set means "ASCII"), so the value
    /// is assembled from exactly those three fields.
    init(asciiLiteralBytes start: UnsafePointer<UInt8>, count: Int) {
        let pointerRepresentationASCII: UInt8 = 0b10
        self = unsafeBitCast((UInt(bitPattern: start), UInt(count), pointerRepresentationASCII),
                             to: StaticString.self)
    }
}
