// Path resolution, as Linux's namei does it:
// - absolute paths start at the root, relative ones at the cwd or a directory fd (an
//   absolute path ignores the fd entirely, even a bad one);
// - repeated slashes are one; "." stays; ".." goes up, and the root's ".." is the root;
// - every component but the last must be a directory (ENOTDIR) that exists (ENOENT), and a
//   symlink there is always followed, relative to the directory holding it;
// - every directory a name is looked up in needs search (x) permission (EACCES; see
//   Permissions.swift), the one holding the last component included;
// - the last component is followed only when asked (no AT_SYMLINK_NOFOLLOW / O_NOFOLLOW)
//   or when a trailing slash follows it; a trailing slash also requires a directory;
// - more than 40 symlinks in one resolution is ELOOP; a path over 4095 bytes or a
//   component over 255 is ENAMETOOLONG; the empty path is ENOENT (AT_EMPTY_PATH aside).

import ImageFormat
import LinuxABI

/// The last component of a path, unresolved.
enum LastComponent {
    /// The path was only slashes.
    case root
    case dot
    case dotDot
    case name([UInt8])
}

/// A path resolved up to its last component.
struct ParentLookup {
    /// The directory the last component is in.
    var parent: Int
    var last: LastComponent
    /// A '/' followed the last component.
    var trailingSlash: Bool
}

extension FileSystem {
    /// The directory a relative path starts from.
    func startDirectory(_ dirfd: Int32, for path: [UInt8]) throws(Errno) -> Int {
        if path.first == slash { return FileSystem.rootNode }
        if dirfd == AtFlags.AT_FDCWD { return cwd }
        let node = try descriptionNode(dirfd)
        guard isDirectory(node) else { throw .ENOTDIR }
        return node
    }

    /// Walks `path` up to its last component. `links` counts symlinks followed so far.
    mutating func walkToParent(_ path: [UInt8], from start: Int,
                               links: inout Int) throws(Errno) -> ParentLookup {
        guard !path.isEmpty else { throw .ENOENT }
        guard path.count <= FileSystemLimits.maxPath else { throw .ENAMETOOLONG }
        var current = path[0] == slash ? FileSystem.rootNode : start
        var i = 0
        while true {
            while i < path.count && path[i] == slash { i += 1 }
            if i == path.count {
                // Only an all-slash path gets here (a relative one has a component).
                return ParentLookup(parent: current, last: .root, trailingSlash: false)
            }
            // As Linux's link_path_walk: the directory is checked (ENOTDIR, then search
            // permission, EACCES) before the name in it is looked at.
            guard isDirectory(current) else { throw .ENOTDIR }
            try checkSearch(current)
            var end = i
            while end < path.count && path[end] != slash { end += 1 }
            guard end - i <= FileSystemLimits.maxName else { throw .ENAMETOOLONG }
            var next = end
            while next < path.count && path[next] == slash { next += 1 }

            let component: LastComponent
            let length = end - i
            if length == 1 && path[i] == dot {
                component = .dot
            } else if length == 2 && path[i] == dot && path[i + 1] == dot {
                component = .dotDot
            } else {
                component = .name(Array(path[i..<end]))
            }
            if next == path.count {
                return ParentLookup(parent: current, last: component, trailingSlash: end < path.count)
            }
            switch component {
            case .root, .dot:
                break
            case .dotDot:
                current = nodes[current].parent
            case .name(let name):
                guard let found = child(of: current, named: name) else { throw .ENOENT }
                if nodes[found].type == .symlink {
                    current = try followLink(found, in: current, links: &links)
                } else {
                    current = found
                }
            }
            i = next
        }
    }

    /// The node symlink `link` (found in directory `dir`) points to, fully resolved.
    mutating func followLink(_ link: Int, in dir: Int, links: inout Int) throws(Errno) -> Int {
        links += 1
        guard links <= FileSystemLimits.maxSymlinks else { throw .ELOOP }
        return try resolve(linkTarget(link), from: dir, follow: true, links: &links)
    }

    /// The node a `ParentLookup`'s last component names, or nil if it names nothing. Does
    /// not follow a final symlink.
    mutating func lookupLast(_ lookup: ParentLookup) -> Int? {
        switch lookup.last {
        case .root, .dot: return lookup.parent
        case .dotDot: return nodes[lookup.parent].parent
        case .name(let name): return child(of: lookup.parent, named: name)
        }
    }

    /// Resolves `path` to a node. `follow`: follow a final symlink.
    mutating func resolve(_ path: [UInt8], from start: Int, follow: Bool,
                          links: inout Int) throws(Errno) -> Int {
        var lookup = try walkToParent(path, from: start, links: &links)
        while true {
            guard let node = lookupLast(lookup) else { throw .ENOENT }
            if nodes[node].type == .symlink && (follow || lookup.trailingSlash) {
                links += 1
                guard links <= FileSystemLimits.maxSymlinks else { throw .ELOOP }
                let trailingSlash = lookup.trailingSlash
                lookup = try walkToParent(linkTarget(node), from: lookup.parent, links: &links)
                lookup.trailingSlash = lookup.trailingSlash || trailingSlash
                continue
            }
            if lookup.trailingSlash && !isDirectory(node) { throw .ENOTDIR }
            return node
        }
    }

    /// Resolves (`dirfd`, `path`) as the *at syscalls do. An empty path names `dirfd`
    /// itself when `emptyPath` (AT_EMPTY_PATH), and is ENOENT otherwise.
    mutating func resolveAt(_ dirfd: Int32, _ path: UnsafeRawBufferPointer, follow: Bool,
                            emptyPath: Bool = false) throws(Errno) -> Int {
        if path.count == 0 {
            guard emptyPath else { throw .ENOENT }
            if dirfd == AtFlags.AT_FDCWD { return cwd }
            return try descriptionNode(dirfd)
        }
        let bytes = Array(path)
        var links = 0
        return try resolve(bytes, from: try startDirectory(dirfd, for: bytes), follow: follow, links: &links)
    }

    /// Resolves (`dirfd`, `path`) up to the last component (for calls that create or
    /// remove a name).
    mutating func resolveParentAt(_ dirfd: Int32, _ path: UnsafeRawBufferPointer) throws(Errno) -> ParentLookup {
        guard path.count > 0 else { throw .ENOENT }
        let bytes = Array(path)
        var links = 0
        return try walkToParent(bytes, from: try startDirectory(dirfd, for: bytes), links: &links)
    }

    /// The absolute path of directory `dir`; ENOENT if it has been removed.
    func pathOfDirectory(_ dir: Int) throws(Errno) -> [UInt8] {
        var components: [[UInt8]] = []
        var node = dir
        var depth = 0
        while node != FileSystem.rootNode {
            guard nodes[node].links > 0, depth < 4096 else { throw .ENOENT }
            components.append(nodes[node].name)
            node = nodes[node].parent
            depth += 1
        }
        if components.isEmpty { return [slash] }
        var path: [UInt8] = []
        for name in components.reversed() {
            path.append(slash)
            path.append(contentsOf: name)
        }
        return path
    }
}
