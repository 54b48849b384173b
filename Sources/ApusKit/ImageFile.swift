import ImageFormat
#if canImport(Glibc)
import Glibc
#endif

/// Where the bytes of one regular file come from when an image is written to a file.
enum FileSource: Equatable {
    /// A host file, copied; it must still have the size the layout was made with.
    case host(String)
    /// Bytes the builder made (/etc/passwd and the like).
    case bytes([UInt8])
}

/// Writes an `ImageLayout` to a file: the metadata at offset 0, every file's bytes at its
/// page-aligned offset, zeros elsewhere (left as holes: the file is sparse where the layout
/// pads). Returns the SHA-256 of the whole image as it reads back, holes included, computed
/// while copying so the bytes pass through memory once.
enum ImageFileWriter {
    static let chunkSize = 1 << 20

    static func write(_ layout: ImageLayout, sources: [Int: FileSource], to fd: Int32,
                      path: String) throws(StoreError) -> SHA256.Digest {
        var hash = SHA256()
        let ok = layout.metadata.withUnsafeBytes { raw -> Bool in
            hash.update(raw)
            return writeAll(fd, raw, at: 0)
        }
        guard ok else { throw StoreError(.io, "cannot write \(path): \(errnoText())") }
        var cursor = UInt64(layout.metadata.count)
        var buffer = [UInt8](repeating: 0, count: chunkSize)
        for placement in layout.fileDataOffsets {
            hash.updateZeros(placement.offset - cursor)
            cursor = placement.offset
            switch sources[placement.entryID] {
            case .bytes(let bytes)?:
                precondition(UInt64(bytes.count) == placement.size, "generated file size must match its layout")
                let ok = bytes.withUnsafeBytes { raw -> Bool in
                    hash.update(raw)
                    return writeAll(fd, raw, at: cursor)
                }
                guard ok else { throw StoreError(.io, "cannot write \(path): \(errnoText())") }
            case .host(let hostPath)?:
                try copy(hostPath, size: placement.size, to: fd, path: path, at: cursor, buffer: &buffer, hash: &hash)
            case nil:
                preconditionFailure("every file in an image layout has a source")
            }
            cursor += placement.size
        }
        hash.updateZeros(layout.totalSize - cursor)
        guard ftruncate(fd, off_t(layout.totalSize)) == 0, fsync(fd) == 0 else {
            throw StoreError(.io, "cannot write \(path): \(errnoText())")
        }
        return hash.finalize()
    }

    /// Copies `size` bytes of `hostPath` to `offset` of `fd` in 1 MiB chunks. A file whose
    /// size changed since the layout was made is an error (the index already says its size).
    private static func copy(_ hostPath: String, size: UInt64, to fd: Int32, path: String, at offset: UInt64,
                             buffer: inout [UInt8], hash: inout SHA256) throws(StoreError) {
        // O_NONBLOCK: a file swapped for a FIFO since the layout was made must not hang the build.
        let input = open(hostPath, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard input >= 0 else { throw StoreError(.build, "\(hostPath): \(errnoText())") }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0, st.st_mode & S_IFMT == S_IFREG, UInt64(st.st_size) == size else {
            throw StoreError(.build, "\(hostPath) changed while the image was being built; build again")
        }
        var done: UInt64 = 0
        while done < size {
            let want = Int(min(UInt64(buffer.count), size - done))
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, want) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw StoreError(.build, n == 0 ? "\(hostPath) changed while the image was being built; build again"
                                               : "\(hostPath): \(errnoText())")
            }
            let ok = buffer.withUnsafeBytes { raw -> Bool in
                let chunk = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                hash.update(chunk)
                return writeAll(fd, chunk, at: offset + done)
            }
            guard ok else { throw StoreError(.io, "cannot write \(path): \(errnoText())") }
            done += UInt64(n)
        }
    }
}

/// A store image file opened for booting: a read-only mapping of the file (PROT_READ,
/// MAP_PRIVATE, never written, so every VM of the image reads the same host page-cache pages),
/// validated by `ImageReader` before anything boots.
public final class ImageFile {
    public let file: MappedFile
    /// The validated view of the image; it points into the mapping, so it is valid only
    /// while this object lives.
    public let reader: ImageReader
    public var bytes: UnsafeRawBufferPointer { file.bytes }

    /// `label` names the image in error messages.
    public init(path: String, label: String) throws(StoreError) {
        do {
            file = try MappedFile(path: path)
        } catch {
            throw StoreError(.corrupt, "image \(label): cannot open its file: \(error.message); remove it with apus rmi \(label) and build it again")
        }
        do {
            reader = try ImageReader(bytes: file.bytes)
        } catch {
            throw StoreError(.corrupt, "image \(label) is corrupt (\(error.message)) in \(path); remove it with apus rmi \(label) and build it again")
        }
    }
}
