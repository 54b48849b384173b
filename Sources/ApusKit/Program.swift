import ELF
#if canImport(Glibc)
import Glibc
#endif

/// Something apus refuses to run, with the one line the user sees.
public struct RunError: Error {
    public var message: String
    public var exitCode: Int32
    public init(_ message: String, exitCode: Int32 = 125) {
        self.message = message
        self.exitCode = exitCode
    }
}

/// A read-only mapping of a host file.
public final class MappedFile {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    public let fd: Int32
    public let mode: UInt32

    public init(path: String) throws(RunError) {
        self.path = path
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw RunError("\(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw RunError("\(path): \(String(cString: strerror(errno)))") }
        guard st.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            throw RunError("\(path): \(st.st_mode & S_IFMT == S_IFDIR ? "is a directory" : "is not a regular file"), not a program")
        }
        self.fd = fd
        mode = UInt32(st.st_mode & 0o7777)
        let size = Int(st.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
        } else {
            let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
            guard let p, p != MAP_FAILED else { close(fd); throw RunError("\(path): cannot map: \(String(cString: strerror(errno)))") }
            bytes = UnsafeRawBufferPointer(start: p, count: size)
        }
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
        close(fd)
    }
}

/// What kind of program a checked file is.
public enum ProgramKind: Equatable, Sendable {
    /// Static (or static-pie): booted straight from an in-memory image.
    case staticProgram
    /// Dynamically linked: PT_INTERP names its loader; it runs from a store image that holds
    /// the loader and its libraries (`apus build`, or `apus run` building one on the fly).
    case dynamic(interpreter: String)
}

/// The checks made before anything boots or builds: the file must be an x86-64 Linux
/// executable ELF, not a script.
public enum ProgramCheck {
    public static func classify(_ file: MappedFile) throws(RunError) -> ProgramKind {
        let bytes = file.bytes
        if bytes.count >= 2 && bytes[0] == UInt8(ascii: "#") && bytes[1] == UInt8(ascii: "!") {
            let line = bytes.prefix(80).prefix { $0 != 0x0a }
            throw RunError("\(file.path): is a script (\(String(decoding: line, as: UTF8.self))), not an ELF program; run its interpreter's binary instead")
        }
        let elf: ELFFile
        do {
            elf = try ELFFile(bytes: bytes)
            try elf.validateForLoading()
        } catch {
            throw RunError("\(file.path): \(error.message)")
        }
        if let interpreter = elf.interpreter {
            return .dynamic(interpreter: String(decoding: interpreter, as: UTF8.self))
        }
        return .staticProgram
    }
}

/// The host's canonical absolute path of a file (what /proc/self/exe shows natively).
public func absolutePath(_ path: String) -> String {
    guard let resolved = realpath(path, nil) else { return path }
    defer { free(resolved) }
    return String(cString: resolved)
}
