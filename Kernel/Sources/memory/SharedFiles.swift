import GuestABI
import LinuxABI
import VFS

/// The pages of files mapped MAP_SHARED. Every shared mapping of a file maps the same frame
/// for a given file page, so a store through one mapping is in all of them at once. The VFS
/// keeps read/write/truncate coherent with these pages through `KernelHost`'s
/// collect/changed hooks (Sources/VFS/SharedMapping.swift). When the last page-table entry
/// pointing at a file's frames goes, the bytes go back into the file and the frames are freed.
enum SharedFiles {
    struct File {
        /// The VFS node; -1 marks a free slot.
        var node: Int
        /// Frame of file page i; nil while no mapping has needed that page.
        var frames: [PhysicalAddress?] = []
        /// Page-table entries (in any mapping) pointing at `frames`, plus holds (`retain`).
        var references = 0
    }

    nonisolated(unsafe) static var files: [File] = []

    /// The slot for `node` (made if new), with one reference taken; `release` drops it.
    static func retain(node: Int) -> Int {
        let slot: Int
        if let i = files.firstIndex(where: { $0.node == node }) {
            slot = i
        } else if let i = files.firstIndex(where: { $0.node < 0 }) {
            slot = i
            files[i] = File(node: node)
        } else {
            slot = files.count
            files.append(File(node: node))
        }
        files[slot].references += 1
        return slot
    }

    /// The frame holding page `page` of shared file `slot` — filled from the file when new —
    /// for one more page-table entry (a reference `release` drops).
    static func mapPage(_ slot: Int, _ page: Int) throws(Errno) -> PhysicalAddress {
        if page < files[slot].frames.count, let frame = files[slot].frames[page] {
            files[slot].references += 1
            return frame
        }
        guard let frame = PhysicalMemory.allocateAppPage() else { throw .ENOMEM }
        let buffer = UnsafeMutableRawBufferPointer(start: directMap(frame), count: Int(AddressSpace.pageSize))
        _ = SysIO.fs.readShared(files[slot].node, at: page * Int(AddressSpace.pageSize), into: buffer)
        while files[slot].frames.count <= page { files[slot].frames.append(nil) }
        files[slot].frames[page] = frame
        files[slot].references += 1
        return frame
    }

    /// One more page-table entry points at one of `slot`'s frames (fork mapping it again).
    static func retainPage(_ slot: Int) { files[slot].references += 1 }

    /// Drops a reference (a page-table entry pointing at `slot`'s frames went away, or a
    /// hold ended). After the last, the file takes the bytes back and the frames are freed.
    static func release(_ slot: Int) {
        files[slot].references -= 1
        guard files[slot].references == 0 else { return }
        SysIO.fs.endSharedMapping(files[slot].node)
        for case let frame? in files[slot].frames { PhysicalMemory.free(frame) }
        files[slot] = File(node: -1)
    }

    /// Calls `body(frame, pageOffset, fileOffset, count)` for each page of `node` that has a
    /// frame and overlaps `from..<to`.
    private static func forEachPage(of node: Int, from: Int, to: Int,
                                    _ body: (PhysicalAddress, Int, Int, Int) -> Void) {
        guard let slot = files.firstIndex(where: { $0.node == node }) else { return }
        let pageSize = Int(AddressSpace.pageSize)
        let frames = files[slot].frames
        var page = from / pageSize
        while page < frames.count && page * pageSize < to {
            if let frame = frames[page] {
                let start = max(from, page * pageSize), end = min(to, (page + 1) * pageSize)
                body(frame, start - page * pageSize, start, end - start)
            }
            page += 1
        }
    }

    /// Before the VFS reads `range` of `node`: the frames hold the newest bytes.
    static func collect(_ node: Int, into contents: UnsafeMutableRawBufferPointer, _ range: Range<Int>) {
        guard let base = contents.baseAddress else { return }
        forEachPage(of: node, from: range.lowerBound, to: range.upperBound) { frame, pageOffset, fileOffset, count in
            (base + fileOffset).copyMemory(from: directMap(frame) + pageOffset, byteCount: count)
        }
    }

    /// After the VFS changed `from..<to` of `node`: the frames take the new bytes, zeros
    /// past the end of the file.
    static func changed(_ node: Int, _ contents: UnsafeRawBufferPointer, from: Int, to: Int) {
        forEachPage(of: node, from: from, to: to) { frame, pageOffset, fileOffset, count in
            let target = directMap(frame) + pageOffset
            let present = max(0, min(count, contents.count - fileOffset))
            if present > 0, let source = contents.baseAddress {
                target.copyMemory(from: source + fileOffset, byteCount: present)
            }
            if present < count { (target + present).initializeMemory(as: UInt8.self, repeating: 0, count: count - present) }
        }
    }
}
