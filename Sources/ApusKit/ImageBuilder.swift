import ImageFormat
#if canImport(Glibc)
import Glibc
#endif

/// Builds an image for one program through the ImageFormat seam (DESIGN.md "Image format and
/// files"): the program at its host absolute path, as the entrypoint.
///
/// `InMemoryImage` lays the image out in host memory without copying the program: the
/// metadata pages are anonymous memory, and the program's pages are a private mapping of the
/// program file placed at its page-aligned data offset, so the guest reads the host's page
/// cache directly. (The image store and `apus build` of later versions write the same layout
/// to a file.)
public final class InMemoryImage {
    public let bytes: UnsafeMutableRawBufferPointer
    public let layout: ImageLayout

    public init(program: MappedFile, imagePath: String) throws(RunError) {
        var writer = ImageWriter()
        let id: Int
        do {
            id = try writer.addFile(path: imagePath, size: UInt64(program.bytes.count), mode: program.mode)
            try writer.setEntrypoint(path: imagePath)
            layout = try writer.layout()
        } catch {
            throw RunError("cannot build an image for \(program.path): \(error.message)")
        }
        let total = Int(layout.totalSize)
        let base = mmap(nil, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let base, base != MAP_FAILED else { throw RunError("cannot reserve \(total) bytes for the image") }
        bytes = UnsafeMutableRawBufferPointer(start: base, count: total)
        layout.metadata.withUnsafeBytes { bytes.copyMemory(from: $0) }
        for placement in layout.fileDataOffsets where placement.entryID == id && placement.size > 0 {
            let target = base + Int(placement.offset)
            let mapped = mmap(target, Int(placement.size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, program.fd, 0)
            guard mapped == target else {
                munmap(base, total)
                throw RunError("cannot map \(program.path) into the image: \(String(cString: strerror(errno)))")
            }
        }
    }

    deinit { munmap(bytes.baseAddress, bytes.count) }
}
