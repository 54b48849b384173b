import LinuxABI
/// A kernel diagnostic line being built: bytes, decimal and hex numbers. No String formatting
/// machinery (Unicode tables, existentials) is pulled into the kernel for it.
struct Message {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(128) }

    init(_ text: StaticString) {
        self.init()
        append(text)
    }

    mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func append(bytes other: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: other)
    }

    mutating func append(byte: UInt8) { bytes.append(byte) }

    mutating func append(bytes other: [UInt8]) { bytes.append(contentsOf: other) }

    mutating func decimal(_ value: Int64) {
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            decimal(UInt64(0 &- value))
        } else {
            decimal(UInt64(value))
        }
    }

    mutating func decimal(_ value: UInt64) {
        var digits: (UInt64, [UInt8]) = (value, [])
        repeat {
            digits.1.append(UInt8(ascii: "0") &+ UInt8(digits.0 % 10))
            digits.0 /= 10
        } while digits.0 != 0
        bytes.append(contentsOf: digits.1.reversed())
    }

    mutating func decimal(_ value: Int) { decimal(Int64(value)) }

    /// "0x" followed by at least `width` hex digits.
    mutating func hex(_ value: UInt64, width: Int = 1) {
        append("0x")
        var count = 16
        while count > width && (value >> UInt64((count - 1) * 4)) & 0xf == 0 { count -= 1 }
        for i in stride(from: count - 1, through: 0, by: -1) {
            let nibble = UInt8((value >> UInt64(i * 4)) & 0xf)
            bytes.append(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
        }
    }
}

/// `body` over `bytes`' storage, its Errno passed on (Array.withUnsafeBytes rethrows untyped).
func withBytes<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(Errno) -> R) throws(Errno) -> R {
    let result: Result<R, Errno> = bytes.withUnsafeBytes { p in
        do throws(Errno) { return .success(try body(p)) } catch { return .failure(error) }
    }
    return try result.get()
}
