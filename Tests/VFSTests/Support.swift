import ImageFormat
import LinuxABI
import VFS
import XCTest

/// A deterministic world: a clock that ticks one second per reading, a counter for random
/// bytes, fixed generated files, and consoles that record what was written.
struct TestHost: FileSystemHost {
    var seconds: Int64 = 1_000
    var randomByte: UInt8 = 0
    var generated: [UInt32: [UInt8]] = [:]
    var consoleOutput: [UInt32: [UInt8]] = [:]
    var consoleInput: [UInt8] = []
    /// A host's shared mapping of a node, as bytes from file offset 0 (what the kernel keeps
    /// as one frame per page); stores through the mapping are writes to this array.
    var mappedPages: [Int: [UInt8]] = [:]

    mutating func now() -> Timespec {
        seconds += 1
        return Timespec(seconds: seconds, nanoseconds: 0)
    }

    mutating func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        for i in 0..<buffer.count {
            randomByte &+= 1
            buffer[i] = randomByte
        }
    }

    mutating func generate(_ id: UInt32) throws(Errno) -> [UInt8] {
        guard let bytes = generated[id] else { throw .ENOENT }
        return bytes
    }

    mutating func consoleRead(_ id: UInt32, into buffer: UnsafeMutableRawBufferPointer,
                              nonblocking: Bool) throws(Errno) -> Int {
        let count = min(buffer.count, consoleInput.count)
        for i in 0..<count { buffer[i] = consoleInput[i] }
        consoleInput.removeFirst(count)
        return count
    }

    mutating func consoleName(_ id: UInt32) -> [UInt8] { Array("pipe:[\(id)]".utf8) }

    /// Memory the host will spare for file bytes (ENOSPC past it).
    var spareBytes = Int.max

    mutating func canAllocate(_ bytes: Int) -> Bool { bytes <= spareBytes }

    mutating func collectMappedBytes(_ node: Int, into contents: UnsafeMutableRawBufferPointer, _ range: Range<Int>) {
        guard let pages = mappedPages[node] else { return }
        for i in range where i < pages.count { contents[i] = pages[i] }
    }

    mutating func mappedBytesChanged(_ node: Int, _ contents: UnsafeRawBufferPointer, from: Int, to: Int) {
        guard var pages = mappedPages[node] else { return }
        var i = from
        while i < to && i < pages.count {
            pages[i] = i < contents.count ? contents[i] : 0
            i += 1
        }
        mappedPages[node] = pages
    }

    mutating func consoleWrite(_ id: UInt32, _ bytes: UnsafeRawBufferPointer,
                               nonblocking: Bool) throws(Errno) -> Int {
        consoleOutput[id, default: []].append(contentsOf: bytes)
        return bytes.count
    }
}

typealias TestFS = FileSystem<TestHost>

let imageTime = Timespec(seconds: 500, nanoseconds: 7)

/// Image file contents, by path.
let imageFiles: [(path: String, bytes: [UInt8], mode: UInt32)] = [
    ("/bin/prog", (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13) }, 0o755),
    ("/etc/hosts", Array("127.0.0.1 localhost\n".utf8), 0o644),
    ("/etc/empty", [], 0o600),
    ("/usr/lib/libc.so", (0..<4096).map { UInt8(truncatingIfNeeded: $0) }, 0o644),
    ("/usr/share/doc/readme", Array("read me\n".utf8), 0o644),
    ("/usr/share/doc/notes", Array("notes\n".utf8), 0o644),
]

/// Symlinks in the image: relative, absolute, chained, looping and dangling ones.
let imageLinks: [(path: String, target: String)] = [
    ("/lib", "usr/lib"),
    ("/abs", "/etc/hosts"),
    ("/etc/rel", "../usr/lib/libc.so"),
    ("/etc/chain", "rel"),
    ("/loop1", "loop2"),
    ("/loop2", "loop1"),
    ("/dangling", "/nonexistent/file"),
    ("/dangling-tmp", "/tmp/made-through-link"),
    ("/dirlink", "/usr/share"),
]

/// An image in memory that outlives the file systems mounted on it (never freed).
final class ImageBuffer {
    let bytes: UnsafeMutableRawBufferPointer
    let reader: ImageReader

    init(files: [(path: String, bytes: [UInt8], mode: UInt32)] = imageFiles,
         links: [(path: String, target: String)] = imageLinks,
         directories: [String] = ["/var/empty"], readOnly: [String] = []) throws {
        var writer = ImageWriter()
        var contents: [Int: [UInt8]] = [:]
        for file in files {
            contents[try writer.addFile(path: file.path, size: UInt64(file.bytes.count), mode: file.mode)] = file.bytes
        }
        for link in links { try writer.addSymlink(path: link.path, target: link.target) }
        for directory in directories { try writer.addDirectory(path: directory, mode: 0o755) }
        for path in readOnly { try writer.markReadOnly(path: path) }
        try writer.setEntrypoint(path: files[0].path)
        let layout = try writer.layout()
        bytes = .allocate(byteCount: Int(layout.totalSize), alignment: 4096)
        bytes.initializeMemory(as: UInt8.self, repeating: 0)
        for i in 0..<layout.metadata.count { bytes[i] = layout.metadata[i] }
        for file in layout.fileDataOffsets {
            for (i, byte) in contents[file.entryID]!.enumerated() { bytes[Int(file.offset) + i] = byte }
        }
        reader = try ImageReader(bytes: UnsafeRawBufferPointer(bytes))
    }

    // No deinit: the readers and file systems made from it keep raw pointers into `bytes`
    // and may outlive this object (tests often keep only the file system); a test image is
    // a few pages, so it is simply never freed.

    /// The image's own bytes for `path` (to check they never change).
    func contents(_ path: String) -> [UInt8] {
        Array(reader.contents(of: reader.lookup(path: path)!))
    }

    func mount(executable: String? = "/bin/prog", maxDescriptors: Int = 1024) -> TestFS {
        TestFS(image: reader, host: TestHost(),
               options: MountOptions(imageTime: imageTime, executablePath: executable.map { Array($0.utf8) },
                                     maxFileSize: 1 << 20, maxDescriptors: maxDescriptors))
    }
}

/// Runs `body` with `path`'s bytes (no NUL, as the kernel passes them).
func withPath<T>(_ path: String, _ body: (UnsafeRawBufferPointer) throws(Errno) -> T) throws(Errno) -> T {
    let bytes = Array(path.utf8)
    let result: Result<T, Errno> = bytes.withUnsafeBytes { raw in Result { () throws(Errno) -> T in try body(raw) } }
    return try result.get()
}

let cwd = AtFlags.AT_FDCWD

/// String conveniences over the byte API.
extension FileSystem {
    mutating func open(_ path: String, _ flags: OpenFlags = [], mode: UInt32 = 0o644,
                       at dirfd: Int32 = AtFlags.AT_FDCWD) throws(Errno) -> Int32 {
        try withPath(path) { (p) throws(Errno) in try openat(dirfd, p, flags: flags, mode: mode) }
    }

    mutating func stat(_ path: String, at dirfd: Int32 = AtFlags.AT_FDCWD) throws(Errno) -> Stat {
        try withPath(path) { (p) throws(Errno) in try fstatat(dirfd, p, flags: []) }
    }

    mutating func lstat(_ path: String, at dirfd: Int32 = AtFlags.AT_FDCWD) throws(Errno) -> Stat {
        try withPath(path) { (p) throws(Errno) in try fstatat(dirfd, p, flags: .AT_SYMLINK_NOFOLLOW) }
    }

    mutating func mkdir(_ path: String, mode: UInt32 = 0o755) throws(Errno) {
        try withPath(path) { (p) throws(Errno) in try mkdirat(AtFlags.AT_FDCWD, p, mode: mode) }
    }

    mutating func unlink(_ path: String) throws(Errno) {
        try withPath(path) { (p) throws(Errno) in try unlinkat(AtFlags.AT_FDCWD, p, flags: []) }
    }

    mutating func rmdir(_ path: String) throws(Errno) {
        try withPath(path) { (p) throws(Errno) in try unlinkat(AtFlags.AT_FDCWD, p, flags: .AT_REMOVEDIR) }
    }

    mutating func rename(_ old: String, _ new: String, flags: UInt32 = 0) throws(Errno) {
        try withPath(old) { (o) throws(Errno) in
            try withPath(new) { (n) throws(Errno) in try renameat2(AtFlags.AT_FDCWD, o, AtFlags.AT_FDCWD, n, flags: flags) }
        }
    }

    mutating func link(_ old: String, _ new: String, flags: AtFlags = []) throws(Errno) {
        try withPath(old) { (o) throws(Errno) in
            try withPath(new) { (n) throws(Errno) in try linkat(AtFlags.AT_FDCWD, o, AtFlags.AT_FDCWD, n, flags: flags) }
        }
    }

    mutating func symlink(_ target: String, _ path: String) throws(Errno) {
        try withPath(target) { (t) throws(Errno) in
            try withPath(path) { (p) throws(Errno) in try symlinkat(t, AtFlags.AT_FDCWD, p) }
        }
    }

    mutating func readlink(_ path: String, at dirfd: Int32 = AtFlags.AT_FDCWD, size: Int = 4096) throws(Errno) -> String {
        var buffer = [UInt8](repeating: 0, count: size)
        let count = try buffer.withUnsafeMutableBytes { raw in
            Result { () throws(Errno) -> Int in try withPath(path) { (p) throws(Errno) in try readlinkat(dirfd, p, into: raw) } }
        }.get()
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    mutating func access(_ path: String, _ mode: Int32) throws(Errno) {
        try withPath(path) { (p) throws(Errno) in try faccessat(AtFlags.AT_FDCWD, p, mode: mode, flags: []) }
    }

    mutating func chdir(_ path: String) throws(Errno) {
        try withPath(path) { (p) throws(Errno) in try chdir(p) }
    }

    /// Reads up to `count` bytes.
    mutating func read(_ fd: Int32, count: Int = 65536) throws(Errno) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = try buffer.withUnsafeMutableBytes { raw in
            Result { () throws(Errno) -> Int in try read(fd, into: raw) }
        }.get()
        return Array(buffer[0..<n])
    }

    mutating func pread(_ fd: Int32, count: Int, offset: Int64) throws(Errno) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = try buffer.withUnsafeMutableBytes { raw in
            Result { () throws(Errno) -> Int in try pread(fd, into: raw, offset: offset) }
        }.get()
        return Array(buffer[0..<n])
    }

    @discardableResult
    mutating func write(_ fd: Int32, _ text: String) throws(Errno) -> Int {
        try write(fd, Array(text.utf8))
    }

    @discardableResult
    mutating func write(_ fd: Int32, _ bytes: [UInt8]) throws(Errno) -> Int {
        try bytes.withUnsafeBytes { raw in Result { () throws(Errno) -> Int in try write(fd, raw) } }.get()
    }

    @discardableResult
    mutating func pwrite(_ fd: Int32, _ text: String, offset: Int64) throws(Errno) -> Int {
        try Array(text.utf8).withUnsafeBytes { raw in
            Result { () throws(Errno) -> Int in try pwrite(fd, raw, offset: offset) }
        }.get()
    }

    /// Reads a whole file by path.
    mutating func contents(_ path: String) throws(Errno) -> [UInt8] {
        let fd = try open(path)
        defer { try? close(fd) }
        var all: [UInt8] = []
        while true {
            let chunk = try read(fd, count: 1000)
            if chunk.isEmpty { return all }
            all += chunk
        }
    }

    /// getdents64 records: (name, ino, type, d_off), one call.
    mutating func dents(_ fd: Int32, bufferSize: Int = 4096) throws(Errno) -> [(name: String, ino: UInt64, type: UInt8, off: Int64)] {
        var buffer = [UInt8](repeating: 0xee, count: bufferSize)
        let n = try buffer.withUnsafeMutableBytes { raw in
            Result { () throws(Errno) -> Int in try getdents64(fd, into: raw) }
        }.get()
        return parseDirents(Array(buffer[0..<n]))
    }

    /// Every name in a directory, by repeated getdents64.
    mutating func list(_ path: String, bufferSize: Int = 4096) throws(Errno) -> [String] {
        let fd = try open(path, .O_DIRECTORY)
        defer { try? close(fd) }
        var names: [String] = []
        while true {
            let batch = try dents(fd, bufferSize: bufferSize)
            if batch.isEmpty { return names }
            names += batch.map(\.name)
        }
    }
}

func parseDirents(_ bytes: [UInt8]) -> [(name: String, ino: UInt64, type: UInt8, off: Int64)] {
    var records: [(name: String, ino: UInt64, type: UInt8, off: Int64)] = []
    var at = 0
    func u64(_ o: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[o + $1]) << (8 * $1) } }
    while at < bytes.count {
        let length = Int(bytes[at + 16]) | Int(bytes[at + 17]) << 8
        var end = at + 19
        while bytes[end] != 0 { end += 1 }
        records.append((String(decoding: bytes[(at + 19)..<end], as: UTF8.self), u64(at),
                        bytes[at + 18], Int64(bitPattern: u64(at + 8))))
        at += length
    }
    return records
}

/// Asserts that `body` fails with `expected`.
func XCTAssertErrno<T>(_ expected: Errno, _ message: String = "", _ body: () throws(Errno) -> T,
                       file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try body()
        XCTFail("expected errno \(expected.name.text), got success \(message)", file: file, line: line)
    } catch {
        XCTAssertEqual(error.rawValue, expected.rawValue, "expected \(expected.name.text), got \(error.name.text) \(message)",
                       file: file, line: line)
    }
}

extension StaticString {
    var text: String { withUTF8Buffer { String(decoding: $0, as: UTF8.self) } }
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
