// Nodes (inodes) and directories: the merged view of image and overlay.

import ImageFormat
import LinuxABI

/// One name in a directory's overlay list.
struct DirectoryEntry {
    /// 1…255 bytes, no '/' or NUL, not "." or "..".
    var name: [UInt8]
    /// The node, or `DirectoryEntry.whiteout`: the name hides the image's entry.
    var node: Int

    static let whiteout = -1
}

/// An inode. Invariants:
/// - `image >= 0`: a directory lists the image directory `image` under its overlay entries;
///   a regular file's bytes are the image's (until copy-up sets `image = -1` and fills
///   `data`); a symlink's target is the image's. `image < 0`: contents are in `data`
///   (file bytes, symlink target) and `entries` alone.
/// - `entries` is sorted by name bytes, names unique.
/// - `links` counts directory entries naming the node; a directory has 1 while linked
///   (st_nlink is computed: 2 + subdirectories) and 0 once removed.
/// - `opens` counts open file descriptions plus the cwd reference. A node with
///   `links == 0 && opens == 0` is freed, except the root. A host's shared mapping of a
///   file holds one `opens` reference too (see SharedMapping.swift).
/// - `sharedMapped`: the host maps the file MAP_SHARED and its pages, not `data`, hold the
///   newest bytes of the pages they cover; the VFS collects them before reading `data`
///   and pushes changes after writing it. Only regular files with `image < 0` or never
///   written through a mapping (read-only mappings of image files).
struct Node {
    var type: NodeType
    var permissions: UInt32
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var links = 0
    var opens = 0
    var ino: UInt64
    var accessTime: Timespec
    var modificationTime: Timespec
    var changeTime: Timespec
    /// Directories: the containing directory (the root's is itself), what ".." names.
    var parent = -1
    /// Directories: the name in `parent`, for getcwd.
    var name: [UInt8] = []
    var image = -1
    var data: [UInt8] = []
    var entries: [DirectoryEntry] = []
    var live = true
    /// From a read-only part of the image: nothing may change it or, for a directory, its
    /// names (EROFS). Inherited by everything materialized below a read-only directory.
    var readOnly = false
    var sharedMapped = false
    /// A memfd's F_SEAL_* bits (Memfd.swift); nil for every other node (no seals at all).
    var seals: UInt32? = nil

    init(type: NodeType, permissions: UInt32, ino: UInt64, time: Timespec) {
        self.type = type
        self.permissions = permissions
        self.ino = ino
        accessTime = time
        modificationTime = time
        changeTime = time
    }
}

/// -1, 0 or 1: byte order of two names (a proper prefix sorts first).
func compareNames(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    for i in 0..<min(a.count, b.count) where a[i] != b[i] {
        return a[i] < b[i] ? -1 : 1
    }
    if a.count == b.count { return 0 }
    return a.count < b.count ? -1 : 1
}

func compareNames(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Int {
    a.withUnsafeBytes { compareNames($0, b) }
}

extension FileSystem {
    // MARK: Node storage

    func isDirectory(_ node: Int) -> Bool { nodes[node].type == .directory }

    /// A new overlay node with no name yet (`links == 0`); the caller links it.
    mutating func makeNode(_ type: NodeType, permissions: UInt32, time: Timespec) -> Int {
        let index: Int
        if let free = freeNodes.popLast() { index = free } else { index = nodes.count }
        // Overlay inode numbers follow the image's (image entry i has ino i + 1).
        let node = Node(type: type, permissions: permissions & 0o7777,
                        ino: UInt64(image.entryCount) + 1 + UInt64(index), time: time)
        if index == nodes.count { nodes.append(node) } else { nodes[index] = node }
        return index
    }

    /// The node for image entry `index`, found in directory `parent`.
    mutating func materialize(imageIndex index: Int, in parent: Int) -> Int {
        let entry = image.entry(at: index)
        let type: NodeType
        switch entry.kind {
        case .file: type = .regular
        case .directory: type = .directory
        case .symlink: type = .symlink
        }
        let node = makeNode(type, permissions: entry.kind == .symlink ? 0o777 : entry.mode,
                            time: options.imageTime)
        nodes[node].ino = UInt64(index) + 1
        nodes[node].image = index
        nodes[node].links = 1
        nodes[node].readOnly = entry.readOnly || nodes[parent].readOnly
        if type == .directory {
            nodes[node].parent = parent
            nodes[node].name = Array(entry.name)
        }
        return node
    }

    /// EROFS if `node` is in a read-only part of the image.
    func checkWritable(_ node: Int) throws(Errno) {
        if nodes[node].readOnly { throw .EROFS }
    }

    /// Frees `node` if nothing names or holds it any more.
    mutating func releaseIfUnused(_ node: Int) {
        guard node != FileSystem.rootNode, nodes[node].live, nodes[node].links == 0,
              nodes[node].opens == 0 else { return }
        nodes[node].live = false
        nodes[node].data = []
        nodes[node].entries = []
        freeNodes.append(node)
    }

    /// One name of `node` went away (unlink, rmdir, rename over it).
    mutating func dropLink(_ node: Int) {
        if isDirectory(node) {
            nodes[node].links = 0
            // A removed directory is empty; ".." inside it stays inside it, so nothing
            // refers to a parent that may itself be freed later.
            nodes[node].parent = node
        } else if nodes[node].links > 0 {
            nodes[node].links -= 1
        }
        nodes[node].changeTime = host.now()
        releaseIfUnused(node)
    }

    // MARK: Directories

    /// Position of `name` in `dir`'s overlay entries: (true, index) if present, else
    /// (false, insertion point).
    func findEntry(in dir: Int, named name: [UInt8]) -> (found: Bool, position: Int) {
        let entries = nodes[dir].entries
        return name.withUnsafeBytes { key in
            var low = 0
            var high = entries.count
            while low < high {
                let middle = low + (high - low) / 2
                let order = compareNames(entries[middle].name, key)
                if order == 0 { return (true, middle) }
                if order < 0 { low = middle + 1 } else { high = middle }
            }
            return (false, low)
        }
    }

    /// The image index of `name` inside image directory `directoryIndex`, or nil.
    func imageChild(of directoryIndex: Int, named name: [UInt8]) -> Int? {
        let directory = image.entry(at: directoryIndex)
        var key: [UInt8] = []
        key.reserveCapacity(directory.path.count + 1 + name.count)
        key.append(contentsOf: directory.path)
        if directory.path.count > 1 { key.append(slash) }
        key.append(contentsOf: name)
        return key.withUnsafeBytes { image.lookup(path: $0)?.index }
    }

    /// The node `name` names in directory `dir`, or nil. An image entry becomes a node on
    /// its first lookup and is recorded in the overlay list. A removed directory has no
    /// children.
    mutating func child(of dir: Int, named name: [UInt8]) -> Int? {
        guard nodes[dir].links > 0 || dir == FileSystem.rootNode else { return nil }
        if dir == descriptorDirectory { refreshDescriptorDirectory() }
        let (found, position) = findEntry(in: dir, named: name)
        if found {
            let node = nodes[dir].entries[position].node
            return node == DirectoryEntry.whiteout ? nil : node
        }
        let lower = nodes[dir].image
        guard lower >= 0, let index = imageChild(of: lower, named: name) else { return nil }
        let node = materialize(imageIndex: index, in: dir)
        nodes[dir].entries.insert(DirectoryEntry(name: name, node: node), at: position)
        return node
    }

    /// ENOSPC unless the host can hold one more name in `dir` (and, with `newNode`, one more
    /// node, plus `extraBytes` of contents such as a symlink's target): the bytes the arrays
    /// need if they must grow now (an array doubles its capacity), the name and a small
    /// allocation overhead. The overlay is the VM's memory, as tmpfs is Linux's, so a
    /// directory cannot grow until the kernel has nothing left: it fills up like tmpfs does.
    mutating func checkRoomForName(in dir: Int, nameLength: Int, newNode: Bool, extraBytes: Int = 0) throws(Errno) {
        let allocationOverhead = 64
        var bytes = nameLength + extraBytes + allocationOverhead
        let entries = nodes[dir].entries
        if entries.count == entries.capacity {
            bytes += max(2 * entries.capacity, 16) * MemoryLayout<DirectoryEntry>.stride
        }
        if newNode { bytes += nodeGrowthBytes }
        guard host.canAllocate(bytes) else { throw .ENOSPC }
    }

    /// What one more node costs the host now: the node array's growth if it is full and no
    /// freed slot is left to reuse (the node itself lives in the array).
    var nodeGrowthBytes: Int {
        freeNodes.isEmpty && nodes.count == nodes.capacity ? max(2 * nodes.capacity, 16) * MemoryLayout<Node>.stride : 0
    }

    /// Whether the host can hold one more node (nodes that are not names: consoles, the
    /// links of /proc/self/fd).
    mutating func hasRoomForNode() -> Bool {
        host.canAllocate(nodeGrowthBytes + 64)
    }

    /// Makes `name` in `dir` name `node` (replacing any entry or whiteout); counts the link.
    mutating func setEntry(in dir: Int, named name: [UInt8], to node: Int) {
        let (found, position) = findEntry(in: dir, named: name)
        if found {
            nodes[dir].entries[position].node = node
        } else {
            nodes[dir].entries.insert(DirectoryEntry(name: name, node: node), at: position)
        }
        nodes[node].links = isDirectory(node) ? 1 : nodes[node].links + 1
        if isDirectory(node) {
            nodes[node].parent = dir
            nodes[node].name = name
        }
    }

    /// Removes `name` from `dir` (the caller drops the node's link): a whiteout if the
    /// image directory below has that name, else the entry goes.
    mutating func removeEntry(in dir: Int, named name: [UInt8]) {
        let (found, position) = findEntry(in: dir, named: name)
        let lower = nodes[dir].image
        if lower >= 0, imageChild(of: lower, named: name) != nil {
            if found {
                nodes[dir].entries[position].node = DirectoryEntry.whiteout
            } else {
                nodes[dir].entries.insert(DirectoryEntry(name: name, node: DirectoryEntry.whiteout),
                                          at: position)
            }
        } else if found {
            nodes[dir].entries.remove(at: position)
        }
    }

    /// The directory `name` in `dir`, created (overlay, `permissions`) if missing; nil if
    /// the name is taken by something else. Mount-time and `addSynthetic` helper.
    mutating func ensureDirectory(under dir: Int, named name: [UInt8], time: Timespec,
                                  permissions: UInt32 = 0o755) -> Int? {
        if let existing = child(of: dir, named: name) {
            return isDirectory(existing) ? existing : nil
        }
        let node = makeNode(.directory, permissions: permissions, time: time)
        setEntry(in: dir, named: name, to: node)
        return node
    }

    /// The children of `dir` in name order, for `nextChild`.
    func walkChildren(of dir: Int) -> ChildWalk {
        let lower = nodes[dir].image
        var imageChildren = lower >= 0 ? image.children(of: image.entry(at: lower)) : nil
        let nextImage = imageChildren?.next()
        return ChildWalk(entries: nodes[dir].entries, imageChildren: imageChildren, nextImage: nextImage)
    }

    /// The next child of a walk, or nil at its end: the merge of the directory's overlay
    /// entries and its image directory in name order, an overlay entry first and hiding the
    /// image's entry of the same name, whiteouts left out. One walker, not a closure-taking
    /// loop, so the merge is compiled once rather than once per caller.
    func nextChild(_ walk: inout ChildWalk) -> Child? {
        while true {
            let entry: DirectoryEntry
            if walk.overlayPosition < walk.entries.count {
                entry = walk.entries[walk.overlayPosition]
                if let lowerEntry = walk.nextImage {
                    let order = compareNames(entry.name, lowerEntry.name)
                    if order > 0 {
                        walk.nextImage = walk.imageChildren?.next()
                        return child(ofImage: lowerEntry)
                    }
                    if order == 0 { walk.nextImage = walk.imageChildren?.next() }
                }
                walk.overlayPosition += 1
            } else if let lowerEntry = walk.nextImage {
                walk.nextImage = walk.imageChildren?.next()
                return child(ofImage: lowerEntry)
            } else {
                return nil
            }
            if entry.node == DirectoryEntry.whiteout { continue }
            return Child(name: .overlay(entry.name), ino: nodes[entry.node].ino, type: nodes[entry.node].type)
        }
    }

    /// The listing entry of an image child (its ino and type come from the image).
    private func child(ofImage entry: ImageEntry) -> Child {
        let type: NodeType
        switch entry.kind {
        case .file: type = .regular
        case .directory: type = .directory
        case .symlink: type = .symlink
        }
        return Child(name: .image(entry.name), ino: UInt64(entry.index) + 1, type: type)
    }

    func isEmptyDirectory(_ dir: Int) -> Bool {
        countChildren(of: dir, directoriesOnly: false, limit: 1) == 0
    }

    /// How many children (only subdirectories if `directoriesOnly`) `dir` has, counting no
    /// further than `limit`.
    func countChildren(of dir: Int, directoriesOnly: Bool, limit: Int) -> Int {
        var count = 0
        var walk = walkChildren(of: dir)
        while count < limit, let child = nextChild(&walk) {
            if !directoriesOnly || child.type == .directory { count += 1 }
        }
        return count
    }

    // MARK: Contents

    /// A regular file's size, a symlink's target length; 0 otherwise.
    func contentSize(_ node: Int) -> Int {
        switch nodes[node].type {
        case .regular, .symlink:
            let index = nodes[node].image
            if index >= 0 { return Int(image.entry(at: index).size) }
            return nodes[node].data.count
        default:
            return 0
        }
    }

    /// A symlink's target.
    func linkTarget(_ node: Int) -> [UInt8] {
        let index = nodes[node].image
        if index >= 0 { return Array(image.entry(at: index).linkTarget ?? UnsafeRawBufferPointer(start: nil, count: 0)) }
        return nodes[node].data
    }

    /// Moves an image file's bytes into the node, so it can be written; ENOSPC if the host
    /// cannot hold them.
    mutating func copyUp(_ node: Int) throws(Errno) {
        guard nodes[node].type == .regular, nodes[node].image >= 0 else { return }
        let bytes = image.contents(of: image.entry(at: nodes[node].image))
        guard host.canAllocate(bytes.count) else { throw .ENOSPC }
        nodes[node].data = Array(bytes)
        nodes[node].image = -1
    }

    /// st_nlink of a directory: itself, ".", and each subdirectory's "..".
    func directoryLinkCount(_ dir: Int) -> UInt64 {
        2 + UInt64(countChildren(of: dir, directoriesOnly: true, limit: Int.max))
    }
}

/// One child in a listing.
struct Child {
    var name: ChildName
    var ino: UInt64
    var type: NodeType
}

/// A child's name: an overlay entry's own bytes, or a view into the image (whose bytes
/// outlive the file system).
enum ChildName {
    case overlay([UInt8])
    case image(UnsafeRawBufferPointer)

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        switch self {
        case .overlay(let bytes): return bytes.withUnsafeBytes(body)
        case .image(let bytes): return body(bytes)
        }
    }
}

/// A walk over a directory's children (`FileSystem.walkChildren`, `nextChild`). It holds its
/// own copy of the overlay list; the caller does not change the directory meanwhile.
struct ChildWalk {
    let entries: [DirectoryEntry]
    var overlayPosition = 0
    var imageChildren: ImageChildren?
    /// The image directory's next child not yet returned or hidden.
    var nextImage: ImageEntry?
}
