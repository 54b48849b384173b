// The Apus image file: one program plus the files it needs, read-only, laid out so that the
// kernel can serve read() and file-backed mmap() straight from it. The VMM maps the whole
// file read-only into guest memory; the kernel reads it through a pointer, after
// `ImageReader.init` has validated every structure below. All integers are little-endian.
//
// ┌──────────────────────────── offset 0
// │ header (64 bytes)
// ├──────────────────────────── indexOffset (= 64)
// │ index: entryCount records of 32 bytes, sorted strictly ascending by path bytes
// ├──────────────────────────── stringsOffset (= indexOffset + 32 × entryCount)
// │ string table: paths and symlink targets, not NUL-terminated (records carry lengths)
// ├──────────────────────────── zero padding to dataOffset (a multiple of 4096)
// │ file data: each regular file's bytes at its own 4096-aligned offset, the rest of its
// │ last page zero (so a page-granular mmap sees zeros past end of file)
// └──────────────────────────── totalSize (a multiple of 4096)
//
// Header:
//   offset size field
//   0      8    magic            "APUSIMG1"
//   8      4    version          1 (`ImageFormat.version`)
//   12     4    flags            0 (reserved)
//   16     4    entryCount       >= 1; entry 0 is the root directory "/"
//   20     4    entrypointIndex  index of the program to run; must be a regular file
//   24     8    indexOffset      >= 64, multiple of 8
//   32     8    stringsOffset    >= indexOffset + 32 × entryCount
//   40     8    stringsSize      stringsOffset + stringsSize <= dataOffset
//   48     8    dataOffset       end of the metadata; multiple of 4096
//   56     8    totalSize        image length; multiple of 4096, >= dataOffset
//
// Index record:
//   offset size field
//   0      4    pathOffset       into the string table
//   4      4    pathLength
//   8      1    kind             1 regular file, 2 directory, 3 symlink (`EntryKind`)
//   9      1    flags            bit 0 `readOnlyFlag`: the VM may not change this entry or,
//                                for a directory, anything below it (EROFS); others 0
//   10     2    reserved         0
//   12     4    mode             permission bits only (<= 0o7777); the kind gives S_IFMT
//   16     8    size             file: length in bytes; symlink: target length; directory: 0
//   24     8    dataOffset       file: absolute offset of its bytes, multiple of 4096,
//                                      dataOffset(header) <= it, it + size <= totalSize;
//                                symlink: offset of the target in the string table;
//                                directory: 0
//
// Paths are absolute and normalized (see `ImagePath`): "/" or "/a/b", no empty, "." or
// ".." components, no trailing slash, no NUL. Every entry's parent directory is itself an
// entry of kind directory. Because the order is plain byte order, the descendants of a
// directory "/d" are exactly the contiguous run of entries in ["/d/", "/d0") ('0' follows
// '/' in ASCII), which is how `ImageReader.children(of:)` lists a directory.

public enum ImageFormat {
    /// The eight magic bytes at offset 0: "APUSIMG1" in ASCII. Spelled as numbers because
    /// `Array(String.utf8)` would pull the whole String machinery into the kernel.
    public static let magic: [UInt8] = [0x41, 0x50, 0x55, 0x53, 0x49, 0x4d, 0x47, 0x31]
    public static let version: UInt32 = 1
    public static let headerSize = 64
    public static let recordSize = 32
    /// Alignment of `dataOffset`, of every file's bytes and of `totalSize`.
    public static let pageSize: UInt64 = 4096
    /// Largest path or symlink target, in bytes (Linux PATH_MAX less its NUL).
    public static let maxPathLength = 4095
    /// Largest path component, in bytes (Linux NAME_MAX).
    public static let maxNameLength = 255
    /// Permission bits a record's mode may carry (rwx for user/group/other, setuid,
    /// setgid, sticky).
    public static let modeMask: UInt32 = 0o7777
    /// Record flag: the entry (and a directory's whole subtree) is read-only in the VM.
    public static let readOnlyFlag: UInt8 = 1
}

/// What an index record describes.
public enum EntryKind: UInt8, Equatable {
    case file = 1
    case directory = 2
    case symlink = 3
}

/// Why a path handed to `ImagePath.normalize` cannot name a file in an image.
public enum ImagePathProblem: Equatable, Sendable {
    case empty
    case relative
    case containsNUL
    case dotDot
    case tooLong
    case componentTooLong
}

/// Why an image cannot be written or read. Reader cases carry the index of the offending
/// record where there is one; writer cases carry the path the caller passed.
///
/// Equatable by hand: String payloads compare by UTF-8 bytes, the way paths compare
/// everywhere in this format (and without pulling Unicode normalization tables into the
/// Embedded kernel, which the synthesized String `==` would).
public enum ImageError: Error, Equatable {
    // Reading.
    /// Shorter than the header, or than the header's totalSize.
    case truncated
    case badMagic
    case unsupportedVersion(UInt32)
    /// Reserved flags set, or the regions are misaligned, out of order or overlapping.
    case badHeader
    /// The index does not fit between indexOffset and the string table.
    case indexOutOfBounds
    /// The string table does not fit between the index and dataOffset.
    case stringTableOutOfBounds
    /// A record's path or symlink target reaches past the string table.
    case stringOutOfBounds(index: Int)
    /// Unknown kind, mode bits beyond 0o7777, reserved bytes set, a directory with a
    /// size, or an empty / overlong / NUL-containing symlink target.
    case badEntry(index: Int)
    /// A record's path is not absolute and normalized.
    case badPath(index: Int)
    /// A record's path does not sort strictly after the previous one.
    case unsortedIndex(index: Int)
    /// Entry 0 is not the root directory "/".
    case noRoot
    /// A record's parent directory is not in the index as a directory.
    case missingParent(index: Int)
    /// A file's data offset is not a multiple of 4096.
    case misalignedData(index: Int)
    /// A file's data is not inside [dataOffset, totalSize).
    case dataOutOfBounds(index: Int)
    case entrypointOutOfRange(UInt32)
    case entrypointNotAFile

    // Writing.
    case invalidPath(String, ImagePathProblem)
    case duplicatePath(String)
    case parentNotDirectory(String)
    case invalidMode(UInt32)
    case invalidSymlinkTarget(String)
    case noEntrypoint
    case entrypointNotFound(String)
    /// `markReadOnly` of a path that was not added.
    case missingPath(String)
    /// More than 2^32 entries or string bytes, or data beyond 2^64 bytes.
    case tooLarge

    /// One human line describing the problem.
    public var message: String {
        switch self {
        case .truncated: return "image is truncated"
        case .badMagic: return "not an Apus image (bad magic)"
        case .unsupportedVersion(let v):
            return "image format version \(v), expected \(ImageFormat.version)"
        case .badHeader: return "image header is inconsistent"
        case .indexOutOfBounds: return "image index is out of bounds"
        case .stringTableOutOfBounds: return "image string table is out of bounds"
        case .stringOutOfBounds(let i): return "image entry \(i) refers to a string outside the string table"
        case .badEntry(let i): return "image entry \(i) is malformed"
        case .badPath(let i): return "image entry \(i) has a path that is not absolute and normalized"
        case .unsortedIndex(let i): return "image entry \(i) is out of order"
        case .noRoot: return "image has no root directory"
        case .missingParent(let i): return "image entry \(i) has no parent directory"
        case .misalignedData(let i): return "image entry \(i) has data not aligned to 4096 bytes"
        case .dataOutOfBounds(let i): return "image entry \(i) has data outside the image"
        case .entrypointOutOfRange(let i): return "image entrypoint \(i) is not an entry"
        case .entrypointNotAFile: return "image entrypoint is not a regular file"
        case .invalidPath(let p, let problem):
            let why: String
            switch problem {
            case .empty: why = "it is empty"
            case .relative: why = "it is not absolute"
            case .containsNUL: why = "it contains a NUL byte"
            case .dotDot: why = "it contains a '..' component"
            case .tooLong: why = "it is longer than \(ImageFormat.maxPathLength) bytes"
            case .componentTooLong: why = "a component is longer than \(ImageFormat.maxNameLength) bytes"
            }
            return "invalid image path \"\(p)\": \(why)"
        case .duplicatePath(let p): return "image path \"\(p)\" added twice"
        case .parentNotDirectory(let p): return "a parent of image path \"\(p)\" is not a directory"
        case .invalidMode(let m): return "mode 0o\(String(m, radix: 8)) has bits beyond permissions (0o7777)"
        case .invalidSymlinkTarget(let t): return "invalid symlink target \"\(t)\""
        case .noEntrypoint: return "image has no entrypoint"
        case .entrypointNotFound(let p): return "entrypoint \"\(p)\" is not in the image"
        case .missingPath(let p): return "\"\(p)\" is not in the image"
        case .tooLarge: return "image is too large"
        }
    }
}

extension ImageError {
    public static func == (lhs: ImageError, rhs: ImageError) -> Bool {
        func same(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }
        switch (lhs, rhs) {
        case (.truncated, .truncated), (.badMagic, .badMagic), (.badHeader, .badHeader),
             (.indexOutOfBounds, .indexOutOfBounds), (.stringTableOutOfBounds, .stringTableOutOfBounds),
             (.noRoot, .noRoot), (.entrypointNotAFile, .entrypointNotAFile),
             (.noEntrypoint, .noEntrypoint), (.tooLarge, .tooLarge):
            return true
        case (.unsupportedVersion(let a), .unsupportedVersion(let b)): return a == b
        case (.stringOutOfBounds(let a), .stringOutOfBounds(let b)): return a == b
        case (.badEntry(let a), .badEntry(let b)): return a == b
        case (.badPath(let a), .badPath(let b)): return a == b
        case (.unsortedIndex(let a), .unsortedIndex(let b)): return a == b
        case (.missingParent(let a), .missingParent(let b)): return a == b
        case (.misalignedData(let a), .misalignedData(let b)): return a == b
        case (.dataOutOfBounds(let a), .dataOutOfBounds(let b)): return a == b
        case (.entrypointOutOfRange(let a), .entrypointOutOfRange(let b)): return a == b
        case (.invalidMode(let a), .invalidMode(let b)): return a == b
        case (.invalidPath(let a, let x), .invalidPath(let b, let y)): return same(a, b) && x == y
        case (.duplicatePath(let a), .duplicatePath(let b)): return same(a, b)
        case (.parentNotDirectory(let a), .parentNotDirectory(let b)): return same(a, b)
        case (.invalidSymlinkTarget(let a), .invalidSymlinkTarget(let b)): return same(a, b)
        case (.entrypointNotFound(let a), .entrypointNotFound(let b)): return same(a, b)
        case (.missingPath(let a), .missingPath(let b)): return same(a, b)
        default: return false
        }
    }
}
