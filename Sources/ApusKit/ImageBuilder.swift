import ImageFormat
#if canImport(Glibc)
import Glibc
#endif

/// Builds an image for one program through the ImageFormat seam (DESIGN.md "Image format and
/// files"): the program at its host absolute path, as the entrypoint, plus the `--volume`
/// imports, plus /etc/passwd and /etc/group (`ImageBuild.accountFiles`) where no volume put
/// one, as every image `apus build` writes has.
///
/// `InMemoryImage` lays the image out in host memory without copying the program: the
/// metadata pages are anonymous memory, and the program's pages are a private mapping of the
/// program file placed at its page-aligned data offset, so the guest reads the host's page
/// cache directly; imported files are mapped the same way (a file that shrinks on the host
/// while the VM runs would fault the guest's reads past its new end). `apus build` writes the
/// same layout to a file in the image store instead (ImageFile.swift, Build.swift).
public final class InMemoryImage {
    public let bytes: UnsafeMutableRawBufferPointer
    public let layout: ImageLayout

    /// Warnings to print before boot (volume entries that were skipped).
    public private(set) var warnings: [String] = []

    public convenience init(program: MappedFile, imagePath: String, volumes: [Volume] = []) throws(RunError) {
        var importer = VolumeImporter(writer: ImageWriter())
        let id: Int
        do {
            id = try importer.writer.addFile(path: imagePath, size: UInt64(program.bytes.count), mode: program.mode)
            try importer.writer.setEntrypoint(path: imagePath)
        } catch {
            throw RunError("cannot build an image for \(program.path): \(error.message)")
        }
        for volume in volumes { try importer.add(volume) }
        // After the volumes: a volume's /etc/passwd wins (the duplicate is not added).
        var generated: [Int: [UInt8]] = [:]
        for (path, text) in ImageBuild.accountFiles {
            let bytes = Array(text.utf8)
            if let fileID = try? importer.writer.addFile(path: path, size: UInt64(bytes.count), mode: 0o644) {
                generated[fileID] = bytes
            }
        }
        try self.init(importer: importer, what: program.path, mapped: [id: (program.fd, 0, program.path)],
                      generated: generated)
    }

    /// A store image with `-v` volumes on top: the store image's entries, each file's pages
    /// a private mapping of the store file at the file's offset (page-aligned by the format),
    /// plus the volumes, mapped from their host files as above.
    public convenience init(base: ImageFile, label: String, volumes: [Volume]) throws(RunError) {
        var importer = VolumeImporter(writer: ImageWriter())
        var mapped: [Int: (fd: Int32, offset: UInt64, path: String)] = [:]
        let reader = base.reader
        do {
            for index in 0..<reader.entryCount {
                let entry = reader.entry(at: index)
                let path = String(decoding: entry.path, as: UTF8.self)
                switch entry.kind {
                case .directory:
                    try importer.writer.addDirectory(path: path, mode: entry.mode)
                case .file:
                    let id = try importer.writer.addFile(path: path, size: entry.size, mode: entry.mode)
                    mapped[id] = (base.file.fd, entry.dataOffset, base.file.path)
                case .symlink:
                    try importer.writer.addSymlink(path: path, target: String(decoding: entry.linkTarget ?? UnsafeRawBufferPointer(start: nil, count: 0), as: UTF8.self))
                }
                if entry.readOnly { try importer.writer.markReadOnly(path: path) }
            }
            try importer.writer.setEntrypoint(path: String(decoding: reader.entrypoint.path, as: UTF8.self))
        } catch {
            throw RunError("image \(label): \(error.message)")
        }
        for volume in volumes { try importer.add(volume) }
        try self.init(importer: importer, what: "image \(label)", mapped: mapped)
    }

    /// Lays out `importer`'s image in memory. `mapped` gives, for some entry ids, an open
    /// file and offset their bytes come from, `generated` the bytes of others; the rest are
    /// the importer's host files.
    private init(importer: VolumeImporter, what: String,
                 mapped: [Int: (fd: Int32, offset: UInt64, path: String)],
                 generated: [Int: [UInt8]] = [:]) throws(RunError) {
        do {
            layout = try importer.writer.layout()
        } catch {
            throw RunError("cannot build an image for \(what): \(error.message)")
        }
        warnings = importer.warnings
        let total = Int(layout.totalSize)
        let base = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let base, base != MAP_FAILED else { throw RunError("cannot reserve \(total) bytes for the image") }
        bytes = UnsafeMutableRawBufferPointer(start: base, count: total)
        layout.metadata.withUnsafeBytes { bytes.copyMemory(from: $0) }
        // Each file's pages: a private mapping of its source file at its data offset.
        var hostPaths = [Int: String]()
        for source in importer.sources { hostPaths[source.entryID] = source.hostPath }
        for placement in layout.fileDataOffsets where placement.size > 0 {
            let target = base + Int(placement.offset)
            if let bytes = generated[placement.entryID] {
                bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(start: target, count: bytes.count).copyMemory(from: $0) }
                continue
            }
            let fd: Int32
            let path: String
            let offset: UInt64
            let borrowed = mapped[placement.entryID]
            if let borrowed {
                (fd, offset, path) = borrowed
            } else {
                path = hostPaths[placement.entryID] ?? ""
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)  // a FIFO must not block: mmap refuses it
                offset = 0
            }
            let result = fd < 0 ? MAP_FAILED : mmap(target, Int(placement.size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, off_t(offset))
            let problem = errno
            if fd >= 0 && borrowed == nil { close(fd) }
            guard result == target else {
                munmap(base, total)
                throw RunError("cannot map \(path) into the image: \(String(cString: strerror(problem)))")
            }
        }
    }

    deinit { munmap(bytes.baseAddress, bytes.count) }
}
