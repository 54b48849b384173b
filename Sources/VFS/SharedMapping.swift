// MAP_SHARED file mappings: the host owns the pages, the VFS keeps `read`/`write` coherent.

import LinuxABI

/// A shared mapping is the host's: one page of memory per file page, mapped by every
/// MAP_SHARED mapping of the file, so a store through one is seen by all at once. The file's
/// bytes (`Node.data`) may then be stale where pages cover them; the VFS asks the host for
/// those bytes before it reads the file (`FileSystemHost.collectMappedBytes`) and hands it
/// the new bytes after it changes them (`mappedBytesChanged`), so `read`, `write`,
/// `truncate` and the mappings agree at every syscall, as one page cache makes them agree
/// on Linux. The mapping holds the file open (an `opens` reference): an unlinked, closed
/// file lives on until its last shared mapping ends.
extension FileSystem {
    /// Starts sharing the regular file open as `fd` with a mapping: returns the node the
    /// host names it by, or nil if `fd` is not a regular file (a device: the host maps a
    /// private copy, which /dev/zero's semantics allow). A mapping that may write
    /// (`writable`) needs `fd` open for writing (EACCES; O_APPEND is no obstacle), and moves an
    /// image file's bytes into the node first, so every byte written lives in one place.
    /// Call once per host mapping set; `endSharedMapping` ends it.
    public mutating func beginSharedMapping(_ fd: Int32, writable: Bool) throws(Errno) -> Int? {
        let index = try ioFile(fd)
        guard let file = openFiles[index] else { throw .EBADF }
        guard file.flags.isReadable else { throw .EACCES }
        if writable && !file.flags.isWritable { throw .EACCES }
        if writable && isSealedAgainstWrites(fd) { throw .EPERM }
        let node = file.node
        guard nodes[node].type == .regular else { return nil }
        if writable { try copyUp(node) }
        if !nodes[node].sharedMapped {
            nodes[node].sharedMapped = true
            nodes[node].opens += 1
        }
        return node
    }

    /// True while the host maps `node` shared (between `beginSharedMapping` and
    /// `endSharedMapping`).
    public func isSharedMapped(_ node: Int) -> Bool {
        node >= 0 && node < nodes.count && nodes[node].live && nodes[node].sharedMapped
    }

    /// Copies `node`'s bytes at `offset` into `buffer` (as pread would), collecting what the
    /// host's pages hold first; for the host to fill a page it adds to a shared mapping.
    /// Returns the count (0 at or past the end).
    public mutating func readShared(_ node: Int, at offset: Int, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        guard isSharedMapped(node), nodes[node].type == .regular else { return 0 }
        return readRegular(node, at: Int64(offset), into: buffer)
    }

    /// The host's last mapping of `node` is gone: takes the pages' bytes into the file for
    /// good and drops the mapping's reference (freeing an unlinked, closed file).
    public mutating func endSharedMapping(_ node: Int) {
        guard isSharedMapped(node) else { return }
        if nodes[node].image < 0 { collectShared(node, 0, nodes[node].data.count) }
        nodes[node].sharedMapped = false
        nodes[node].opens -= 1
        releaseIfUnused(node)
    }

    /// Before reading `count` bytes at `offset` of a shared-mapped tmpfs file: the host's
    /// pages hold the newest of them. The bytes are moved out of the node for the call so
    /// the host may write them while the VFS is not otherwise borrowed.
    mutating func collectShared(_ node: Int, _ offset: Int, _ count: Int) {
        guard nodes[node].sharedMapped, nodes[node].image < 0 else { return }
        let size = nodes[node].data.count
        guard offset < size, count > 0 else { return }
        let end = count > size - offset ? size : offset + count
        var data: [UInt8] = []
        swap(&data, &nodes[node].data)
        data.withUnsafeMutableBytes { host.collectMappedBytes(node, into: $0, offset..<end) }
        swap(&data, &nodes[node].data)
    }

    /// After changing bytes `from..<to` of a shared-mapped file (`to` may be `Int.max`).
    mutating func pushShared(_ node: Int, from: Int, to: Int) {
        guard nodes[node].sharedMapped else { return }
        var data: [UInt8] = []
        swap(&data, &nodes[node].data)
        data.withUnsafeBytes { host.mappedBytesChanged(node, $0, from: from, to: to) }
        swap(&data, &nodes[node].data)
    }
}

extension FileSystem {
    /// What /proc/self/maps names a mapping of `fd` by: the path it was opened by and the
    /// file's inode.
    public func mappingName(_ fd: Int32) throws(Errno) -> (path: [UInt8], inode: UInt64) {
        let index = try openFileIndex(fd)
        guard let file = openFiles[index] else { throw .EBADF }
        return (file.path, nodes[file.node].ino)
    }

    /// The bytes of the regular file at `path` (symlinks followed) straight from the image,
    /// for the kernel's ELF loader: nil if the file was changed in the VM (its bytes then
    /// live in the overlay) or is not a regular file.
    @inline(never)  // the kernel calls it from several syscalls; one copy
    public mutating func imageContents(path: UnsafeRawBufferPointer) throws(Errno) -> UnsafeRawBufferPointer? {
        // Resolved first, on its own: resolving may materialize the node.
        let node = try resolveAt(AtFlags.AT_FDCWD, path, follow: true)
        return imageBytes(node)
    }
}
