import Glibc
import LinuxABI

/// A C function of the host's C library looked up at run time, for the few that the Glibc
/// module does not declare (it is built without _GNU_SOURCE): sysinfo, statx, getauxval, …
func libcFunction<F>(_ name: String, as type: F.Type) -> F? {
    guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, name) else { return nil }
    return unsafeBitCast(symbol, to: type)
}

/// Encodes with `body` into a fresh zero-filled buffer of `count` bytes and returns the bytes.
func encoded(_ count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    try bytes.withUnsafeMutableBytes { try body($0) }
    return bytes
}

/// Reinterprets encoded bytes as a C struct of the host (which must be exactly as large).
func asC<T>(_ bytes: [UInt8], _: T.Type) -> T {
    precondition(bytes.count == MemoryLayout<T>.size, "size mismatch")
    return bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
}

/// The raw bytes of a C value.
func bytesOf<T>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// A little-endian integer at `offset` of `bytes`.
func le<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, _: T.Type) -> T {
    bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
}

/// The C string stored in a fixed char array field.
func cString<T>(_ field: T) -> String {
    withUnsafeBytes(of: field) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}

extension String {
    /// This string's text, from a StaticString.
    init(_ s: StaticString) {
        self = s.withUTF8Buffer { String(decoding: $0, as: UTF8.self) }
    }
}

/// Runs `body`, returning the Errno it throws (nil if it does not throw).
func thrownErrno(_ body: () throws(Errno) -> Void) -> Errno? {
    do { try body(); return nil } catch { return error }
}

/// Runs a typed-throwing decoder over `bytes`.
func decoding<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(Errno) -> R) -> Result<R, Errno> {
    bytes.withUnsafeBytes { raw in
        do throws(Errno) { return .success(try body(raw)) } catch { return .failure(error) }
    }
}
