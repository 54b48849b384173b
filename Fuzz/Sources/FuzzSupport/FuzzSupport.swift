// What every harness shares: the entry point, invariant checks, an input cursor and the
// seed writer.
//
// A harness is an executable whose top-level code calls `runFuzzer(seeds:_:)`:
//   - `Harness --write-seeds DIR` writes the harness's generated seed inputs into DIR (the
//     Fuzz/Corpus/<harness>/ files are made this way, plus a few real files);
//   - anything else goes to libFuzzer (`Harness [libFuzzer flags] CORPUS…`), which calls the
//     test function on every input and reports a crash, a leak, a timeout or an OOM.
// A failed invariant stops the process through `fatalError`, which libFuzzer reports as a
// crash with the input that caused it.
import CLibFuzzer
#if canImport(Glibc)
import Glibc
#endif

/// Runs the libFuzzer driver with `test`, or writes `seeds()` for `--write-seeds DIR`.
public func runFuzzer(seeds: () -> [(name: String, bytes: [UInt8])],
                      _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    let arguments = CommandLine.arguments
    if arguments.count == 3 && arguments[1] == "--write-seeds" {
        for seed in seeds() { writeFile(arguments[2] + "/" + seed.name, seed.bytes) }
        exit(0)
    }
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, test))
}

/// The input as a buffer (libFuzzer passes a null pointer for the empty input).
public func inputBuffer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
    guard let data, size > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: data, count: size)
}

/// Stops the run with a message when an invariant does not hold (a finding).
@inline(__always)
public func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String,
                  file: StaticString = #file, line: UInt = #line) {
    if !condition() { fatalError("invariant violated: \(message())", file: file, line: line) }
}

/// Whether `inner` lies entirely inside `outer` (by address), e.g. a parsed view inside the
/// input buffer. An empty view with no base address counts as inside.
public func lies(_ inner: UnsafeRawBufferPointer, within outer: UnsafeRawBufferPointer) -> Bool {
    guard let start = inner.baseAddress else { return inner.isEmpty }
    guard let base = outer.baseAddress else { return false }
    return start >= base && start + inner.count <= base + outer.count
}

/// Sequential reads from the input; past its end every read returns zeros (so a short input
/// still drives the harness, with defaults).
public struct FuzzInput {
    public let bytes: UnsafeRawBufferPointer
    public private(set) var position = 0

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    public var remaining: Int { max(bytes.count - position, 0) }
    public var isAtEnd: Bool { position >= bytes.count }

    public mutating func u8() -> UInt8 {
        defer { position += 1 }
        return position < bytes.count ? bytes[position] : 0
    }

    public mutating func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    public mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    public mutating func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }

    /// The next `count` bytes (fewer at the end of the input).
    public mutating func take(_ count: Int) -> UnsafeRawBufferPointer {
        let start = min(position, bytes.count)
        let end = min(start + max(count, 0), bytes.count)
        position = end
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }

    /// Everything not read yet.
    public mutating func rest() -> UnsafeRawBufferPointer { take(remaining) }
}

/// Little-endian builders for seeds.
extension Array where Element == UInt8 {
    public mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        for i in 0..<MemoryLayout<T>.size { append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }

    public mutating func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        for i in 0..<MemoryLayout<T>.size { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }

    public mutating func storeBE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        let n = MemoryLayout<T>.size
        for i in 0..<n { self[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * (n - 1 - i))) }
    }
}

func writeFile(_ path: String, _ bytes: [UInt8]) {
    guard let file = fopen(path, "wb") else { fatalError("cannot write \(path)") }
    let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    fclose(file)
    if written != bytes.count { fatalError("short write to \(path)") }
}
