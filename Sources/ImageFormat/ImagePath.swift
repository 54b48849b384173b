// Path rules for image entries. A normalized path is "/" or "/c1/c2/…/cn" where every
// component is non-empty, is not "." or "..", has at most 255 bytes and no NUL or '/', and
// the whole path has at most 4095 bytes. These rules make byte order a tree order (see
// ImageFormat.swift) and let the kernel compare paths byte for byte.

let slash = UInt8(ascii: "/")
let dot = UInt8(ascii: ".")

public enum ImagePath {
    /// `s` as a normalized absolute path: "//" and "/./" collapse, a trailing "/" or "/."
    /// is dropped. Rejects empty and relative paths, NUL bytes and ".." components (an image
    /// path never escapes upward, so ".." is a mistake rather than something to resolve).
    public static func normalize(_ s: String) throws(ImageError) -> String {
        let bytes = try normalizedBytes(s)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `normalize` as UTF-8 bytes; what the writer stores.
    static func normalizedBytes(_ s: String) throws(ImageError) -> [UInt8] {
        let input = Array(s.utf8)
        guard let first = input.first else { throw .invalidPath(s, .empty) }
        guard first == slash else { throw .invalidPath(s, .relative) }
        guard !input.contains(0) else { throw .invalidPath(s, .containsNUL) }

        var output: [UInt8] = []
        output.reserveCapacity(input.count)
        for component in input.split(separator: slash) {
            if component.count == 1 && component.first == dot { continue }
            if component.count == 2 && component.allSatisfy({ $0 == dot }) {
                throw .invalidPath(s, .dotDot)
            }
            guard component.count <= ImageFormat.maxNameLength else {
                throw .invalidPath(s, .componentTooLong)
            }
            output.append(slash)
            output.append(contentsOf: component)
        }
        if output.isEmpty { output = [slash] }
        guard output.count <= ImageFormat.maxPathLength else { throw .invalidPath(s, .tooLong) }
        return output
    }

    /// Whether `path` already satisfies the rules above (what `normalize` returns).
    public static func isNormalized(_ path: UnsafeRawBufferPointer) -> Bool {
        guard path.count >= 1, path.count <= ImageFormat.maxPathLength, path[0] == slash else {
            return false
        }
        if path.count == 1 { return true }
        // Walk components; each starts right after a '/'.
        var start = 1
        while true {
            var end = start
            while end < path.count && path[end] != slash {
                if path[end] == 0 { return false }
                end += 1
            }
            let length = end - start
            if length == 0 || length > ImageFormat.maxNameLength { return false }
            if path[start] == dot && (length == 1 || (length == 2 && path[start + 1] == dot)) {
                return false
            }
            if end == path.count { return true }
            start = end + 1
        }
    }

    /// The length of the parent's path within `path` (a normalized path other than "/"):
    /// the bytes before the last '/', or 1 for a child of the root.
    static func parentLength(_ path: UnsafeRawBufferPointer) -> Int {
        var i = path.count - 1
        while i > 0 && path[i] != slash { i -= 1 }
        return max(i, 1)
    }
}
