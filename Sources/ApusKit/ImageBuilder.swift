import ImageFormat
#if canImport(Glibc)
import Glibc
#endif

/// Builds an image for one program through the ImageFormat seam (DESIGN.md "Image format and
/// files"): the program at its host absolute path, as the entrypoint, plus the `--volume`
/// imports.
///
/// `InMemoryImage` lays the image out in host memory without copying the program: the
/// metadata pages are anonymous memory, and the program's pages are a private mapping of the
/// program file placed at its page-aligned data offset, so the guest reads the host's page
/// cache directly; imported files are mapped the same way (a file that shrinks on the host
/// while the VM runs would fault the guest's reads past its new end). (The image store and
/// `apus build` of later versions write the same layout to a file.)
public final class InMemoryImage {
    public let bytes: UnsafeMutableRawBufferPointer
    public let layout: ImageLayout

    /// Warnings to print before boot (volume entries that were skipped).
    public private(set) var warnings: [String] = []

    public init(program: MappedFile, imagePath: String, volumes: [Volume] = []) throws(RunError) {
        var importer = VolumeImporter(writer: ImageWriter())
        let id: Int
        do {
            id = try importer.writer.addFile(path: imagePath, size: UInt64(program.bytes.count), mode: program.mode)
            try importer.writer.setEntrypoint(path: imagePath)
        } catch {
            throw RunError("cannot build an image for \(program.path): \(error.message)")
        }
        for volume in volumes { try importer.add(volume) }
        do {
            layout = try importer.writer.layout()
        } catch {
            throw RunError("cannot build an image for \(program.path): \(error.message)")
        }
        warnings = importer.warnings
        let total = Int(layout.totalSize)
        let base = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let base, base != MAP_FAILED else { throw RunError("cannot reserve \(total) bytes for the image") }
        bytes = UnsafeMutableRawBufferPointer(start: base, count: total)
        layout.metadata.withUnsafeBytes { bytes.copyMemory(from: $0) }
        // Each file's pages: a private mapping of the host file at its data offset.
        var hostPaths = [Int: String]()
        for source in importer.sources { hostPaths[source.entryID] = source.hostPath }
        for placement in layout.fileDataOffsets where placement.size > 0 {
            let target = base + Int(placement.offset)
            let fd: Int32
            let path: String
            if placement.entryID == id {
                fd = program.fd
                path = program.path
            } else {
                path = hostPaths[placement.entryID] ?? ""
                fd = open(path, O_RDONLY | O_CLOEXEC)
            }
            let mapped = fd < 0 ? MAP_FAILED : mmap(target, Int(placement.size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0)
            let problem = errno
            if fd >= 0 && fd != program.fd { close(fd) }
            guard mapped == target else {
                munmap(base, total)
                throw RunError("cannot map \(path) into the image: \(String(cString: strerror(problem)))")
            }
        }
    }

    deinit { munmap(bytes.baseAddress, bytes.count) }
}
