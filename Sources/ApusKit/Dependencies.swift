import ELF
#if canImport(Glibc)
import Glibc
#endif

/// What a dynamically linked program needs in its image: its interpreter and libraries,
/// found the way the host's dynamic loader finds them.
public struct Dependencies: Equatable, Sendable {
    /// PT_INTERP as the program names it (e.g. /lib64/ld-linux-x86-64.so.2); nil for a
    /// static program.
    public var interpreter: String?
    /// Every library, each once, in the loader's breadth-first order.
    public var libraries: [Library]
    /// What the image must hold for the loader to find all of them at the same paths:
    /// the interpreter and each library at the path the loader opens, and every symlink on
    /// the way as a symlink (its target as written), the final file as a file.
    public var entries: [ImageEntry]

    public init(interpreter: String?, libraries: [Library], entries: [ImageEntry]) {
        self.interpreter = interpreter
        self.libraries = libraries
        self.entries = entries
    }
}

public struct Library: Equatable, Sendable {
    /// The DT_NEEDED name (libc.so.6).
    public var name: String
    /// The absolute path the loader would open (/lib/x86_64-linux-gnu/libc.so.6).
    public var path: String
    /// The object whose DT_NEEDED named it first (the program or a library path).
    public var neededBy: String

    public init(name: String, path: String, neededBy: String) {
        self.name = name
        self.path = path
        self.neededBy = neededBy
    }
}

/// One thing to put in the image at `path` (an absolute image path).
public enum ImageEntry: Equatable, Sendable {
    /// A regular file whose bytes come from `hostPath` (a real file, symlinks resolved).
    case file(path: String, hostPath: String)
    /// A symlink with `target` exactly as the host's link has it (relative or absolute).
    case symlink(path: String, target: String)
}

/// Why a program's dependencies cannot be resolved.
public struct DependencyError: Error, Equatable, CustomStringConvertible {
    /// Libraries no search path has: (DT_NEEDED name, the object that needs it).
    public var missing: [(name: String, neededBy: String)]
    /// Anything else (an unreadable or corrupt ELF, a missing interpreter), one line.
    public var problem: String?

    public init(missing: [(name: String, neededBy: String)] = [], problem: String? = nil) {
        self.missing = missing
        self.problem = problem
    }

    public static func == (a: DependencyError, b: DependencyError) -> Bool {
        a.problem == b.problem && a.missing.count == b.missing.count
            && zip(a.missing, b.missing).allSatisfy { $0.name == $1.name && $0.neededBy == $1.neededBy }
    }

    public var description: String {
        if let problem { return problem }
        return missing.map { "library \($0.name) (needed by \($0.neededBy)) not found" }.joined(separator: "; ")
    }
}

public enum DependencyResolver {
    /// Resolves the interpreter and libraries of the ELF program at `program` (an absolute
    /// host path), reading PT_INTERP, DT_NEEDED, DT_RUNPATH and DT_RPATH itself (no ldd),
    /// searching like glibc's loader: DT_RPATH (when no DT_RUNPATH), DT_RUNPATH,
    /// ld.so.cache, then the default directories; $ORIGIN expanded. `root` prefixes every
    /// host path looked at (a sysroot for tests; "" is the host).
    ///
    /// As glibc: a DT_NEEDED that an object already loaded answers to (by the name it was
    /// loaded as or its DT_SONAME — the interpreter answers to ld-linux-x86-64.so.2) is not
    /// searched again, and is not listed in `libraries` when it is the interpreter; files of
    /// another ELF class or machine are skipped; a truncated or non-ELF file, an
    /// executable, or an unreadable program or interpreter stops the search with `problem`.
    /// Unlike glibc: relative search directories are taken from "/" (the program's starting
    /// directory in the VM), and the CPU-dependent glibc-hwcaps and legacy platform
    /// subdirectories are not searched (the baseline library is what the image gets).
    public static func resolve(program: String, root: String = "") throws(DependencyError) -> Dependencies {
        var resolution = Resolution(tree: HostTree(root: root))
        return try resolution.run(program: program)
    }

    /// `program`'s dependencies plus what `sharedObjects` need: ELF shared objects the image
    /// also holds that the program may dlopen (Python's extension modules, plugins), each
    /// searched as if the program loaded it, at its own host path. What no search path has
    /// for them is returned as `missing`, not thrown: such a module fails only if loaded.
    /// Paths that are not x86-64 shared objects are ignored.
    public static func resolve(program: String, alsoLoading sharedObjects: [String], root: String = "")
        throws(DependencyError) -> (dependencies: Dependencies, missing: [(name: String, neededBy: String)])
    {
        var resolution = Resolution(tree: HostTree(root: root))
        var dependencies = try resolution.run(program: program)
        guard dependencies.interpreter != nil else { return (dependencies, []) }
        let missing = try resolution.load(sharedObjects: sharedObjects)
        dependencies.libraries = resolution.libraries
        dependencies.entries = resolution.entries
        return (dependencies, missing)
    }

    /// glibc's system search path after DT_RPATH, DT_RUNPATH and the cache, as Debian's
    /// multiarch loader has it (a library only in /lib64 is not found there either).
    public static let defaultDirectories = [
        "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib", "/usr/lib",
    ]
    /// $LIB as Debian's multiarch glibc expands it (its slibdir without the leading "/").
    public static let libToken = "lib/x86_64-linux-gnu"
    /// $PLATFORM for the baseline x86-64 CPU.
    public static let platformToken = "x86_64"
    /// Where the loader reads its cache, inside the root.
    public static let cachePath = "/etc/ld.so.cache"

    /// `text` with the dynamic string tokens $ORIGIN, $LIB and $PLATFORM (or ${…}) replaced,
    /// as glibc's loader does: a bare token must not be followed by a letter, digit or '_';
    /// any other '$' is kept as is.
    public static func expandTokens(_ text: String, origin: String) -> String {
        let bytes = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        next: while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "$") else {
                out.append(bytes[i])
                i += 1
                continue
            }
            for (token, value) in [("ORIGIN", origin), ("PLATFORM", platformToken), ("LIB", libToken)] {
                if let length = tokenLength(bytes, at: i + 1, token) {
                    out += value.utf8
                    i += 1 + length
                    continue next
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The length of `token` or `{token}` at `start`, or nil if it is not there or a bare
    /// token continues with an identifier character ($ORIGINAL is not $ORIGIN).
    private static func tokenLength(_ bytes: [UInt8], at start: Int, _ token: String) -> Int? {
        let name = Array(token.utf8)
        let curly = start < bytes.count && bytes[start] == UInt8(ascii: "{")
        let nameStart = curly ? start + 1 : start
        guard nameStart + name.count <= bytes.count, Array(bytes[nameStart..<(nameStart + name.count)]) == name else {
            return nil
        }
        let after = nameStart + name.count
        if curly {
            guard after < bytes.count, bytes[after] == UInt8(ascii: "}") else { return nil }
            return name.count + 2
        }
        if after < bytes.count {
            let c = bytes[after]
            let identifier = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x5f
            if identifier { return nil }
        }
        return name.count
    }
}

/// glibc's loader cache (/etc/ld.so.cache, written by ldconfig), new format
/// ("glibc-ld.so.cache1.1"), optionally behind an old-format ("ld.so-1.7.0") part, which is
/// skipped:
///
///   old part (optional): magic[11] "ld.so-1.7.0", pad[1], nlibs u32 at 12, then nlibs
///     12-byte entries from 16; the new part starts at the next multiple of 8.
///   new header, 48 bytes: magic[20] "glibc-ld.so.cache1.1", nlibs u32 at 20, len_strings
///     u32 at 24, flags u8 at 28 (0 unknown, 2 little-endian), extension_offset u32 at 32.
///   entries, 24 bytes each from 48: flags i32, key u32, value u32, osversion u32, hwcap u64.
///     key (the name) and value (the path) are offsets of NUL-terminated strings from the
///     start of the new header.
public struct LoaderCache: Sendable {
    /// The (name, path) pairs the x86-64 glibc loader may use, in the file's order: flags
    /// exactly FLAG_ELF_LIBC6 | FLAG_X8664_LIB64 (0x303) and no hwcap (entries for
    /// glibc-hwcaps subdirectories depend on the CPU; the baseline library is always listed
    /// too).
    public var entries: [(name: String, path: String)]

    static let oldMagic = Array("ld.so-1.7.0".utf8)
    static let newMagic = Array("glibc-ld.so.cache1.1".utf8)
    static let x8664LibC6: UInt32 = 0x0303

    /// Nil when `bytes` is not a cache in the new format (glibc then ignores the cache too).
    public init?(bytes: UnsafeRawBufferPointer) {
        func u32(_ offset: Int) -> UInt32? {
            guard offset >= 0, offset <= bytes.count - 4 else { return nil }
            return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        }
        func u64(_ offset: Int) -> UInt64? {
            guard offset >= 0, offset <= bytes.count - 8 else { return nil }
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }
        func hasMagic(_ magic: [UInt8], at offset: Int) -> Bool {
            offset >= 0 && offset <= bytes.count - magic.count && bytes[offset..<(offset + magic.count)].elementsEqual(magic)
        }
        func string(_ offset: Int) -> String? {
            guard offset >= 0, offset < bytes.count else { return nil }
            let rest = bytes[offset...]
            guard let nul = rest.firstIndex(of: 0) else { return nil }
            return String(decoding: bytes[offset..<nul], as: UTF8.self)
        }

        var base = 0
        if hasMagic(LoaderCache.oldMagic, at: 0) {
            guard let count = u32(12) else { return nil }
            // 16 + count * 12 fits easily in Int for a 32-bit count.
            base = (16 + Int(count) * 12 + 7) & ~7
        }
        guard hasMagic(LoaderCache.newMagic, at: base), let count = u32(base + 20),
              let endian = bytes.count > base + 28 ? bytes[base + 28] : nil, endian == 0 || endian == 2
        else { return nil }
        let table = base + 48
        guard table <= bytes.count, Int(count) <= (bytes.count - table) / 24 else { return nil }

        entries = []
        for index in 0..<Int(count) {
            let entry = table + index * 24
            guard let flags = u32(entry), let key = u32(entry + 4), let value = u32(entry + 8),
                  let hwcap = u64(entry + 16),
                  flags == LoaderCache.x8664LibC6, hwcap == 0,
                  let name = string(base + Int(key)), let path = string(base + Int(value))
            else { continue }
            entries.append((name, path))
        }
    }

    /// The first path recorded for `name`, as glibc's lookup returns it.
    public func path(for name: String) -> String? {
        entries.first { $0.name == name }?.path
    }
}

/// The host's files seen from inside `root`: paths are image paths ("/usr/lib/…"), looked
/// up at root + path, and absolute symlink targets restart at the root, so nothing outside
/// the root is ever read.
struct HostTree {
    /// The root without trailing slashes ("" for the host).
    let root: String

    init(root: String) {
        var root = root
        while root.hasSuffix("/") { root.removeLast() }
        self.root = root
    }

    func hostPath(_ imagePath: String) -> String { root + imagePath }

    enum Node {
        /// A regular file at `realPath` (no symlink on the way); `links` are the symlinks met
        /// getting there, in order.
        case file(realPath: String, links: [ImageEntry])
        /// Something that is not a regular file (a directory, a device, …).
        case notRegular(realPath: String)
        /// ENOENT, ENOTDIR, ELOOP, EACCES: the loader would try the next candidate.
        case missing
    }

    /// Linux's limit on symlinks followed in one lookup (ELOOP past it).
    static let maxSymlinks = 40

    /// Walks `path` component by component like the kernel's lookup: "." and ".." on the
    /// real directory reached so far (".." stops at the root), every symlink followed and
    /// recorded. A relative `path` is taken from "/", the program's starting directory.
    func resolve(_ path: String) -> Node {
        var directory: [Substring] = []  // the real directory so far: no symlink in it
        var pending = Array(path.split(separator: "/").reversed())
        var links: [ImageEntry] = []
        var followed = 0
        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." {
                _ = directory.popLast()
                continue
            }
            let imagePath = "/" + (directory + [component]).joined(separator: "/")
            var st = stat()
            guard lstat(hostPath(imagePath), &st) == 0 else { return .missing }
            switch st.st_mode & S_IFMT {
            case S_IFDIR:
                directory.append(component)
            case S_IFLNK:
                followed += 1
                guard followed <= HostTree.maxSymlinks, let target = readLink(hostPath(imagePath)), !target.isEmpty else {
                    return .missing
                }
                links.append(.symlink(path: imagePath, target: target))
                if target.hasPrefix("/") { directory = [] }
                pending += target.split(separator: "/").reversed()
            case S_IFREG:
                return pending.isEmpty ? .file(realPath: imagePath, links: links) : .missing
            default:
                return pending.isEmpty ? .notRegular(realPath: imagePath) : .missing
            }
        }
        return .notRegular(realPath: "/" + directory.joined(separator: "/"))
    }

    private func readLink(_ path: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4097)
        let n = buffer.withUnsafeMutableBytes { readlink(path, $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4096) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}

/// One object the loader has loaded (the program, the interpreter, a library), with what
/// the search needs of it.
private struct LoadedObject {
    /// The names DT_NEEDED entries match: every name it was asked for, its DT_SONAME, and
    /// for the interpreter its PT_INTERP path.
    var names: [String]
    /// The path as opened (the program: its real path; ld.so takes /proc/self/exe).
    var path: String
    /// Where its bytes are (image path, no symlink on the way); same file, same object.
    var realPath: String
    /// How errors and `Library.neededBy` name it.
    var displayName: String
    var needed: [String]
    /// DT_RPATH, nil when absent or when DT_RUNPATH makes the loader ignore it.
    var rpath: String?
    var runpath: String?
    var flags1: UInt64
    /// The object whose DT_NEEDED loaded it (glibc's l_loader), for the DT_RPATH chain.
    var loader: Int?

    /// glibc's l_origin: the directory of the path as opened.
    var origin: String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "/" }
        return slash == path.utf8.startIndex ? "/" : String(path[..<slash])
    }
}

/// The ELF facts read from one file, as Strings (the mapping is gone once this exists).
private struct ObjectFacts {
    var type: ELFType
    var interpreter: String?
    var soname: String?
    var needed: [String] = []
    var rpath: String?
    var runpath: String?
    var flags1: UInt64 = 0
}

/// One run of the search, with the objects loaded so far in load order (0 is the program).
private struct Resolution {
    let tree: HostTree
    var objects: [LoadedObject] = []
    var libraries: [Library] = []
    var entries: [ImageEntry] = []
    var entryPaths = Set<String>()
    var missing: [(name: String, neededBy: String)] = []
    var cache: LoaderCache?? = nil

    init(tree: HostTree) { self.tree = tree }

    mutating func run(program: String) throws(DependencyError) -> Dependencies {
        let programPath = program.hasPrefix("/") || !tree.root.isEmpty ? program : currentDirectory() + "/" + program
        guard case .file(let programReal, _) = tree.resolve(programPath) else {
            throw DependencyError(problem: "\(program): no such regular file")
        }
        let facts: ObjectFacts
        switch read(programReal) {
        case .facts(let f): facts = f
        case .otherArchitecture(let error), .corrupt(let error):
            throw DependencyError(problem: "\(program): \(error.message)")
        case .unreadable(let reason):
            throw DependencyError(problem: "\(program): \(reason)")
        }
        guard let interpreter = facts.interpreter else {
            return Dependencies(interpreter: nil, libraries: [], entries: [])
        }
        objects.append(LoadedObject(names: facts.soname.map { [$0] } ?? [], path: programReal, realPath: programReal,
                                    displayName: program, needed: facts.needed, rpath: facts.rpath,
                                    runpath: facts.runpath, flags1: facts.flags1, loader: nil))

        // The kernel opens PT_INTERP as it is written; ld.so then answers to that path and
        // to its DT_SONAME (libc.so.6 names it in DT_NEEDED).
        let interpreterPath = interpreter.hasPrefix("/") ? interpreter : "/" + interpreter
        guard case .file(let interpreterReal, let links) = tree.resolve(interpreterPath) else {
            throw DependencyError(problem: "\(program): interpreter \(interpreter) not found")
        }
        let interpreterFacts: ObjectFacts
        switch read(interpreterReal) {
        case .facts(let f): interpreterFacts = f
        case .otherArchitecture(let error), .corrupt(let error):
            throw DependencyError(problem: "\(interpreter) (interpreter of \(program)): \(error.message)")
        case .unreadable(let reason):
            throw DependencyError(problem: "\(interpreter) (interpreter of \(program)): \(reason)")
        }
        objects.append(LoadedObject(names: [interpreter] + (interpreterFacts.soname.map { [$0] } ?? []),
                                    path: interpreterPath, realPath: interpreterReal, displayName: interpreter,
                                    needed: [], rpath: nil, runpath: nil, flags1: interpreterFacts.flags1, loader: nil))
        addEntries(links: links, realPath: interpreterReal)

        // Breadth first, as _dl_map_object_deps: each object's DT_NEEDED in order, objects in
        // load order. The interpreter's own dependencies are not loaded (it has none).
        var next = 0
        while next < objects.count {
            let index = next
            next += 1
            guard index != 1 else { continue }
            for name in objects[index].needed {
                try load(name, neededBy: index)
            }
        }
        guard missing.isEmpty else { throw DependencyError(missing: missing) }
        return Dependencies(interpreter: interpreter, libraries: libraries, entries: entries)
    }

    /// After `run`: loads shared objects the program may dlopen and, breadth first, what
    /// they need; returns the names found nowhere. The objects themselves are the caller's
    /// to place (they are in the image already); only their libraries become entries.
    mutating func load(sharedObjects: [String]) throws(DependencyError) -> [(name: String, neededBy: String)] {
        let first = objects.count
        for path in sharedObjects {
            guard case .file(let real, _) = tree.resolve(path), !objects.contains(where: { $0.realPath == real }),
                  case .facts(let facts) = read(real), facts.type == .sharedObject, facts.interpreter == nil else { continue }
            objects.append(LoadedObject(names: facts.soname.map { [$0] } ?? [], path: path, realPath: real,
                                        displayName: path, needed: facts.needed, rpath: facts.rpath,
                                        runpath: facts.runpath, flags1: facts.flags1, loader: nil))
        }
        let before = missing.count
        var next = first
        while next < objects.count {
            let index = next
            next += 1
            for name in objects[index].needed { try load(name, neededBy: index) }
        }
        let added = Array(missing[before...])
        missing.removeSubrange(before...)
        return added
    }

    /// Loads DT_NEEDED `name` of object `needer`, unless an object answering to that name is
    /// loaded already.
    private mutating func load(_ name: String, neededBy needer: Int) throws(DependencyError) {
        if objects.contains(where: { $0.names.contains(name) }) { return }
        guard let found = try search(name, loader: needer) else {
            if !missing.contains(where: { $0.name == name }) {
                missing.append((name, objects[needer].displayName))
            }
            return
        }
        // The same file under another name is the same object (glibc compares st_dev/st_ino
        // after opening it), but the loader still opens it by this path: the path and its
        // symlinks go in the image too.
        if let same = objects.firstIndex(where: { $0.realPath == found.realPath }) {
            objects[same].names.append(name)
            addEntries(links: found.links, realPath: found.realPath)
            return
        }
        let facts = found.facts
        objects.append(LoadedObject(names: [name] + (facts.soname.map { [$0] } ?? []), path: found.path,
                                    realPath: found.realPath, displayName: found.path, needed: facts.needed,
                                    rpath: facts.rpath, runpath: facts.runpath, flags1: facts.flags1, loader: needer))
        libraries.append(Library(name: name, path: found.path, neededBy: objects[needer].displayName))
        addEntries(links: found.links, realPath: found.realPath)
    }

    private struct Found {
        var path: String
        var realPath: String
        var links: [ImageEntry]
        var facts: ObjectFacts
    }

    /// glibc's _dl_map_object search for a DT_NEEDED name of object `loader`; nil if every
    /// place is empty.
    private mutating func search(_ name: String, loader: Int) throws(DependencyError) -> Found? {
        let needer = objects[loader].displayName
        if name.contains("/") {
            let path = DependencyResolver.expandTokens(name, origin: objects[loader].origin)
            return try candidate(path.hasPrefix("/") ? path : "/" + path, name: name, needer: needer)
        }

        // DT_RPATH of the loader, of its loader and so on up, then of the program; all of it
        // only when the loader has no DT_RUNPATH.
        if objects[loader].runpath == nil {
            var chain: Int? = loader
            var sawProgram = false
            while let index = chain {
                if let rpath = objects[index].rpath {
                    if let found = try searchList(rpath, origin: objects[index].origin, name: name, needer: needer) {
                        return found
                    }
                    sawProgram = sawProgram || index == 0
                }
                chain = objects[index].loader
            }
            if !sawProgram, let rpath = objects[0].rpath,
               let found = try searchList(rpath, origin: objects[0].origin, name: name, needer: needer) {
                return found
            }
        }
        if let runpath = objects[loader].runpath,
           let found = try searchList(runpath, origin: objects[loader].origin, name: name, needer: needer) {
            return found
        }

        // DF_1_NODEFLIB: neither the default directories nor cache entries inside them.
        let noDefault = objects[loader].flags1 & DF_1_NODEFLIB != 0
        if let cached = loaderCache()?.path(for: name),
           !(noDefault && DependencyResolver.defaultDirectories.contains(directory(of: cached))),
           let found = try candidate(cached, name: name, needer: needer) {
            return found
        }
        if !noDefault {
            for directory in DependencyResolver.defaultDirectories {
                if let found = try candidate(directory + "/" + name, name: name, needer: needer) { return found }
            }
        }
        return nil
    }

    /// Tries `name` in each directory of a ':'-separated DT_RPATH/DT_RUNPATH list, tokens
    /// expanded with `origin`; empty elements are skipped, relative ones taken from "/".
    private mutating func searchList(_ list: String, origin: String, name: String, needer: String) throws(DependencyError) -> Found? {
        for element in list.split(separator: ":") {
            var directory = DependencyResolver.expandTokens(String(element), origin: origin)
            while directory.count > 1 && directory.hasSuffix("/") { directory.removeLast() }
            guard !directory.isEmpty else { continue }
            if !directory.hasPrefix("/") { directory = "/" + directory }
            let path = directory == "/" ? "/" + name : directory + "/" + name
            if let found = try candidate(path, name: name, needer: needer) { return found }
        }
        return nil
    }

    /// glibc's open_verify on one candidate path: nil to go on searching (nothing there, or
    /// an ELF for another class or machine), an error for a file the loader would stop at.
    private func candidate(_ path: String, name: String, needer: String) throws(DependencyError) -> Found? {
        let realPath: String, links: [ImageEntry]
        switch tree.resolve(path) {
        case .missing:
            return nil
        case .notRegular:
            throw DependencyError(problem: "\(path) (\(name), needed by \(needer)): not a regular file")
        case .file(let real, let met):
            realPath = real
            links = met
        }
        if objects.contains(where: { $0.realPath == realPath }) {
            // Loaded already: only its identity matters.
            return Found(path: path, realPath: realPath, links: links, facts: ObjectFacts(type: .sharedObject))
        }
        switch read(realPath) {
        case .facts(let facts):
            if facts.type == .executable {
                throw DependencyError(problem: "\(path) (\(name), needed by \(needer)): is an executable (ET_EXEC), not a shared library")
            }
            if facts.flags1 & DF_1_PIE != 0 {
                throw DependencyError(problem: "\(path) (\(name), needed by \(needer)): is a position-independent executable, not a shared library")
            }
            return Found(path: path, realPath: realPath, links: links, facts: facts)
        case .otherArchitecture:
            return nil
        case .unreadable:
            return nil
        case .corrupt(let error):
            throw DependencyError(problem: "\(path) (\(name), needed by \(needer)): \(error.message)")
        }
    }

    private enum ReadResult {
        case facts(ObjectFacts)
        /// ELFCLASS32 or another e_machine: glibc skips such a file and searches on.
        case otherArchitecture(ELFError)
        case corrupt(ELFError)
        /// Could not be opened or mapped (EACCES, …): glibc searches on.
        case unreadable(String)
    }

    /// Maps the regular file at `realPath` (an image path) and reads its ELF facts.
    private func read(_ realPath: String) -> ReadResult {
        let file: MappedFile
        do {
            file = try MappedFile(path: tree.hostPath(realPath))
        } catch {
            return .unreadable(error.message)
        }
        do throws(ELFError) {
            let elf = try ELFFile(bytes: file.bytes)
            var facts = ObjectFacts(type: elf.type)
            facts.interpreter = elf.interpreter.map { String(decoding: $0, as: UTF8.self) }
            if let dynamic = try elf.dynamicSection() {
                facts.soname = dynamic.soname.map { String(decoding: $0, as: UTF8.self) }
                facts.needed = dynamic.needed.map { String(decoding: $0, as: UTF8.self) }
                facts.runpath = dynamic.runpath.map { String(decoding: $0, as: UTF8.self) }
                // The loader ignores DT_RPATH and uses DT_RUNPATH when both are present;
                // an empty list is no list.
                if facts.runpath == nil { facts.rpath = dynamic.rpath.map { String(decoding: $0, as: UTF8.self) } }
                if facts.runpath == "" { facts.runpath = nil }
                if facts.rpath == "" { facts.rpath = nil }
                facts.flags1 = dynamic.flags1
            }
            return .facts(facts)
        } catch {
            switch error {
            case .not64Bit, .wrongMachine: return .otherArchitecture(error)
            default: return .corrupt(error)
            }
        }
    }

    /// The loader cache, read once; nil when the root has none or it is not one.
    private mutating func loaderCache() -> LoaderCache? {
        if let cache { return cache }
        var loaded: LoaderCache? = nil
        if case .file(let real, _) = tree.resolve(DependencyResolver.cachePath),
           let file = try? MappedFile(path: tree.hostPath(real)) {
            loaded = LoaderCache(bytes: file.bytes)
        }
        cache = .some(loaded)
        return loaded
    }

    private mutating func addEntries(links: [ImageEntry], realPath: String) {
        for entry in links + [.file(path: realPath, hostPath: tree.hostPath(realPath))] {
            let path: String
            switch entry {
            case .file(let p, _), .symlink(let p, _): path = p
            }
            if entryPaths.insert(path).inserted { entries.append(entry) }
        }
    }

    private func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "" }
        defer { free(cwd) }
        return String(cString: cwd)
    }
}
