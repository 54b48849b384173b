import ImageFormat
import VMM
#if canImport(Glibc)
import Glibc
#endif

// `apus build`: a program, its interpreter and libraries, the files a program commonly
// expects (/etc/passwd, /etc/hosts, …) and the user's --add files, written as one image file
// into the store (Store.swift) with a config of run defaults.
//
// The build cache: the options (with every path made absolute) hash to a key; the cache
// entry under that key lists every host path the build looked at with its stat fingerprint.
// A later build with the same key whose fingerprints all still match is a hit: it costs the
// stat calls and nothing else — no ELF is read, nothing is copied or hashed.

/// One `--add HOST[:IMAGE]` (or a manifest `files` entry).
public struct FileSpec: Equatable, Sendable {
    /// A host file or directory (relative: to the build's base directory).
    public var host: String
    /// Where it goes in the image (absolute); nil: the host path, made absolute.
    public var image: String?

    public init(host: String, image: String? = nil) {
        self.host = host
        self.image = image
    }

    /// "HOST" or "HOST:IMAGE", IMAGE absolute. The split is at the last ':' followed by
    /// '/', so HOST may itself contain ':' when IMAGE is given.
    public static func parse(_ text: String) -> Result<FileSpec, StoreError> {
        var spec = FileSpec(host: text)
        if let colon = text.lastIndex(of: ":"), text[text.index(after: colon)...].hasPrefix("/") {
            spec = FileSpec(host: String(text[..<colon]), image: String(text[text.index(after: colon)...]))
        }
        guard !spec.host.isEmpty else {
            return .failure(StoreError(.invalid, "--add \(text): the host path is empty (HOST or HOST:/IMAGE/PATH)"))
        }
        return .success(spec)
    }
}

/// Everything `apus build` (or a manifest) asks for.
public struct BuildSpec: Equatable, Sendable {
    /// The image's name (nil: the program's file name).
    public var name: String?
    /// The program: a path (relative: to `baseDirectory`), or a bare name looked up on PATH.
    public var program: String
    public var arguments: [String] = []
    /// KEY=VALUE.
    public var environment: [String] = []
    /// Working directory in the VM (absolute; empty: "/"); created in the image if missing.
    public var workdir = ""
    public var hostname = ""
    /// Guest memory in bytes (nil: apus run's default).
    public var memory: UInt64?
    /// Add the host's CA bundle (/etc/ssl/certs/ca-certificates.crt).
    public var caCertificates = false
    public var files: [FileSpec] = []
    /// What relative host paths are relative to (a manifest's directory); nil: the current
    /// directory.
    public var baseDirectory: String?

    public init(program: String) {
        self.program = program
    }
}

extension BuildSpec {
    static let transferHeader = "apus-build-spec 1"

    /// The spec as line-format text: how the `apus-manifest` helper hands a parsed manifest to
    /// `apus` (see ManifestTool).
    public func encoded() -> String {
        var w = LineWriter(header: Self.transferHeader)
        w.add("program", program)
        if let name { w.add("name", name) }
        for a in arguments { w.add("arg", a) }
        for e in environment { w.add("env", e) }
        if !workdir.isEmpty { w.add("workdir", workdir) }
        if !hostname.isEmpty { w.add("hostname", hostname) }
        if let memory { w.add("memory", String(memory)) }
        if caCertificates { w.add("ca-certificates") }
        for f in files {
            if let image = f.image { w.add("file", f.host, image) } else { w.add("file", f.host) }
        }
        if let baseDirectory { w.add("base", baseDirectory) }
        return w.text
    }

    public static func decode(_ text: String) -> BuildSpec? {
        guard let records = LineFormat.records(text, header: transferHeader) else { return nil }
        var spec = BuildSpec(program: "")
        for (_, key, f) in records {
            switch (key, f.count) {
            case ("program", 1): spec.program = f[0]
            case ("name", 1): spec.name = f[0]
            case ("arg", 1): spec.arguments.append(f[0])
            case ("env", 1): spec.environment.append(f[0])
            case ("workdir", 1): spec.workdir = f[0]
            case ("hostname", 1): spec.hostname = f[0]
            case ("memory", 1):
                guard let m = UInt64(f[0]) else { return nil }
                spec.memory = m
            case ("ca-certificates", 0): spec.caCertificates = true
            case ("file", 1): spec.files.append(FileSpec(host: f[0]))
            case ("file", 2): spec.files.append(FileSpec(host: f[0], image: f[1]))
            case ("base", 1): spec.baseDirectory = f[0]
            default: return nil
            }
        }
        return spec
    }
}

public struct BuildResult: Sendable {
    public var image: StoredImage
    /// Nothing was rebuilt: the cache entry's inputs were all unchanged.
    public var cacheHit: Bool
    public var seconds: Double
    /// Host entries that were skipped (sockets, FIFOs, devices under an --add directory).
    public var warnings: [String]
    /// The warning for an interpreter whose library directories could not be found (also in
    /// `warnings`), which `apus run` shows too: the program will likely miss files.
    public var interpreterWarning: String? = nil
}

public enum ImageBuild {
    /// Part of every cache key: a builder that lays images out differently must not reuse
    /// its predecessor's cache entries.
    public static let builderVersion = "apus-build 3"
    public static let caBundlePath = "/etc/ssl/certs/ca-certificates.crt"
    public static let ldCachePath = "/etc/ld.so.cache"

    /// The accounts of a minimal container image: root (uid 0, whom every program runs as)
    /// and nobody/nogroup (65534), as Debian names them. Every image `apus build` writes has
    /// them, and so has the in-memory image of a static program.
    public static let accountFiles: [(path: String, text: String)] = [
        ("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        ("/etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    ]

    /// The files programs commonly expect. Paths the build already has (from --add) are
    /// left as the user made them. /etc/hosts and /etc/resolv.conf are not here: the kernel
    /// provides them from the VM's network (and a `-v FILE:/etc/hosts` volume can bring
    /// another /etc/hosts).
    static let generatedFiles: [(path: String, text: String)] = accountFiles + [
        ("/etc/nsswitch.conf", """
            passwd:    files
            group:     files
            shadow:    files
            hosts:     files dns
            networks:  files
            protocols: files
            services:  files
            ethers:    files
            rpc:       files

            """),
    ]

    /// Builds `spec` into `store`, or finds it in the build cache. `auto`: `apus run` is
    /// building a dynamic program it was asked to run (no name; the cache entry keeps the
    /// image).
    public static func build(_ spec: BuildSpec, store: ImageStore, auto: Bool = false) throws(StoreError) -> BuildResult {
        try build(spec, store: store, auto: auto, interrupt: nil)
    }

    /// Points where a test can make a build fail, as a crash or an error would.
    enum Stage {
        /// The image file is complete in tmp/, nothing is in place yet.
        case imageWritten
        /// Inside `commit`, the blob has been renamed into blobs/; no config, name or cache
        /// entry yet.
        case blobCommitted
    }

    static func build(_ spec: BuildSpec, store: ImageStore, auto: Bool,
                      interrupt: ((Stage) throws(StoreError) -> Void)?) throws(StoreError) -> BuildResult {
        let start = monotonicNanos()
        try check(spec)
        let base = spec.baseDirectory.map { absolute($0, base: currentDirectory()) } ?? currentDirectory()
        let programPath = try locateProgram(spec.program, base: base)
        var files: [(host: String, image: String)] = []
        for f in spec.files {
            let host = absolute(f.host, base: base)
            do { files.append((host, try ImagePath.normalize(f.image ?? host))) } catch {
                throw StoreError(.invalid, "--add \(f.host):\(f.image ?? ""): \(error.message)")
            }
        }
        let name: String? = auto ? nil : spec.name ?? defaultName(for: programPath)
        if let name, let problem = ImageStore.nameProblem(name) { throw StoreError(.invalid, problem) }
        let workdir = spec.workdir.isEmpty ? "" : try normalizedWorkdir(spec.workdir)
        let key = SHA256.hash(cacheKeyText(spec, program: programPath, files: files, workdir: workdir)).hex

        // A hit: same options, every input unchanged, its image still complete.
        if let entry = store.cacheEntry(key), entry.isCurrent(),
           let image = try? store.load(entry.config, name: name), fileExists(image.blobPath) {
            if auto { try store.markAuto(key, entry: entry) }
            if let name { try store.setName(name, to: entry.config) }
            return BuildResult(image: image, cacheHit: true, seconds: seconds(since: start), warnings: [])
        }

        var plan = BuildPlan()
        let real = try plan.placeProgram(programPath)
        let program: MappedFile
        do { program = try MappedFile(path: real) } catch { throw StoreError(.build, error.message) }
        let kind: ProgramKind
        do { kind = try ProgramCheck.classify(program) } catch { throw StoreError(.build, error.message) }
        var dependencies = Dependencies(interpreter: nil, libraries: [], entries: [])
        for file in files { try plan.add(file) }
        var warnings: [String] = []
        var interpreterWarning: String?
        if case .dynamic = kind, let family = InterpreterFamily.of(fileName: fileName(real)) {
            switch Interpreters.libraryPaths(family, program: real) {
            case .success(let paths): try plan.addLibraryTrees(paths)
            case .failure(let problem):
                interpreterWarning = "apus: warning: \(programPath) looks like \(family.rawValue), but its library directories "
                    + "are unknown (\(problem)); add them with --add DIR (apus build) or -v DIR:DIR (apus run)"
                warnings += interpreterWarning.map { [$0] } ?? []
            }
        }
        if case .dynamic = kind {
            // The program's libraries, and those of the shared objects --add brought that it
            // may dlopen (a missing one of those is a warning: it fails only if loaded).
            let modules = plan.addedSharedObjects()
            do {
                let resolved = try DependencyResolver.resolve(program: real, alsoLoading: modules)
                dependencies = resolved.dependencies
                for (name, neededBy) in resolved.missing {
                    warnings.append("apus: warning: library \(name) (needed by \(neededBy)) not found; loading that module will fail")
                }
            } catch {
                throw StoreError(.build, dependencyMessage(error, program: programPath))
            }
            plan.inputs.append(FileFingerprint.take(ldCachePath, follow: true))
            for entry in dependencies.entries { try plan.place(entry, what: "library") }
        }
        try plan.addDefaults(caCertificates: spec.caCertificates)
        if !workdir.isEmpty { try plan.ensureDirectory(workdir) }
        do { try plan.importer.writer.setEntrypoint(path: real) } catch {
            throw StoreError(.build, "\(programPath): \(error.message)")
        }
        let layout: ImageLayout
        do { layout = try plan.importer.writer.layout() } catch {
            throw StoreError(.build, "cannot lay out the image: \(error.message)")
        }

        // The image file, hashed while it is written; the config names it.
        let blob = try store.temporaryFile()
        let digest = try ImageFileWriter.write(layout, sources: plan.allSources(), to: blob.fd, path: blob.path)
        try interrupt?(.imageWritten)
        var config = ImageConfig(imageDigest: digest.hex, imageSize: layout.totalSize, created: Int64(time(nil)),
                                 entrypoint: real, command: programPath)
        config.arguments = spec.arguments
        config.environment = spec.environment
        config.workdir = workdir
        config.hostname = spec.hostname
        config.memory = spec.memory
        config.interpreter = dependencies.interpreter
        config.libraries = dependencies.libraries.map { ImageConfig.LibraryRecord(name: $0.name, path: $0.path) }
        config.source = programPath
        config.fileCount = layout.fileDataOffsets.count
        config.fileBytes = layout.fileDataOffsets.reduce(0) { $0 + $1.size }
        let text = config.encoded()
        let hex = try store.commit(ImageStore.Commit(blob: (blob, digest.hex), configText: text, name: name,
                                                     cache: (key, CacheEntry(config: "", auto: auto, inputs: plan.inputs)),
                                                     interrupt: interrupt))
        let image = StoredImage(name: name, digest: hex, config: config, blobPath: store.blobPath(digest.hex),
                                storeRoot: store.root)
        return BuildResult(image: image, cacheHit: false, seconds: seconds(since: start),
                           warnings: plan.importer.warnings + warnings, interpreterWarning: interpreterWarning)
    }

    /// The one line for a failed dependency resolution: every missing library and who needs it.
    static func dependencyMessage(_ error: DependencyError, program: String) -> String {
        if !error.missing.isEmpty {
            let list = error.missing.map { "\($0.name) (needed by \($0.neededBy))" }.joined(separator: ", ")
            let noun = error.missing.count == 1 ? "library" : "libraries"
            return "\(program): missing \(noun): \(list); install \(error.missing.count == 1 ? "it" : "them") on the host, or add \(error.missing.count == 1 ? "its" : "their") directory to the loader's path"
        }
        return "\(program): \(error.problem ?? "cannot resolve its libraries")"
    }

    // MARK: Options

    static func check(_ spec: BuildSpec) throws(StoreError) {
        guard !spec.program.isEmpty else { throw StoreError(.invalid, "no program to build (give PROGRAM or `program:` in the manifest)") }
        for variable in spec.environment where !variable.contains("=") || variable.hasPrefix("=") {
            throw StoreError(.invalid, "--env \(variable): expected KEY=VALUE")
        }
        guard spec.hostname.utf8.count <= 64, !spec.hostname.utf8.contains(0), !spec.hostname.contains("/") else {
            throw StoreError(.invalid, "--hostname \(spec.hostname): at most 64 bytes, no '/' or NUL")
        }
        if let memory = spec.memory {
            do { try MemorySize.validate(memory) } catch { throw StoreError(.invalid, error.message) }
        }
        if let name = spec.name, let problem = ImageStore.nameProblem(name) { throw StoreError(.invalid, problem) }
    }

    static func normalizedWorkdir(_ workdir: String) throws(StoreError) -> String {
        guard let normalized = try? ImagePath.normalize(workdir) else {
            throw StoreError(.invalid, "--workdir \(workdir): must be an absolute path without \"..\" or NUL")
        }
        return normalized == "/" ? "" : normalized
    }

    /// The canonical text of everything that decides a build's output besides the input
    /// files' contents (which the cache entry's fingerprints cover). Not the name: names are
    /// references, not content.
    static func cacheKeyText(_ spec: BuildSpec, program: String, files: [(host: String, image: String)],
                             workdir: String) -> String {
        var w = LineWriter(header: builderVersion)
        w.add("program", program)
        for a in spec.arguments { w.add("arg", a) }
        for e in spec.environment { w.add("env", e) }
        w.add("workdir", workdir)
        w.add("hostname", spec.hostname)
        w.add("memory", spec.memory.map { String($0) } ?? "")
        w.add("ca-certificates", spec.caCertificates ? "1" : "0")
        for f in files { w.add("file", f.host, f.image) }
        return w.text
    }

    /// The program's absolute path: `program` itself when it has a '/', else the first
    /// executable regular file of that name on $PATH. Symlinks are kept (the image gets them).
    static func locateProgram(_ program: String, base: String) throws(StoreError) -> String {
        if program.contains("/") {
            let path = absolute(program, base: base)
            guard fileExists(path) else { throw StoreError(.build, "\(program): \(errnoText(ENOENT))") }
            return path
        }
        let search = environment("PATH") ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in search.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = absolute((directory.isEmpty ? "." : String(directory)) + "/" + program, base: currentDirectory())
            var st = stat()
            if stat(candidate, &st) == 0, st.st_mode & S_IFMT == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        throw StoreError(.build, "\(program): not found on PATH (give its path, e.g. ./\(program))")
    }

    /// The image name a build without -t gets: the program's file name, with characters a
    /// name may not hold replaced by '-'.
    static func defaultName(for program: String) -> String {
        let last = program.split(separator: "/").last.map(String.init) ?? "image"
        var scalars = String.UnicodeScalarView()
        for c in last.unicodeScalars {
            let ok = (c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c))) || c == "." || c == "_" || c == "-"
            scalars.append(ok ? c : "-")
        }
        var name = String(scalars)
        while let first = name.unicodeScalars.first, !(first.isASCII && (first.properties.isAlphabetic || ("0"..."9").contains(first))) {
            name.removeFirst()
        }
        return name.isEmpty ? "image" : String(name.prefix(ImageStore.maxNameLength))
    }

    static func seconds(since start: UInt64) -> Double { Double(monotonicNanos() - start) / 1e9 }

    static func fileName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}

/// The entries of one build on their way into an `ImageWriter`, where each file's bytes come
/// from, and the fingerprints of every host path looked at.
struct BuildPlan {
    var importer: VolumeImporter
    /// Generated files' bytes, by entry id (host files are in `importer.sources`).
    var generated: [Int: [UInt8]] = [:]
    /// Entries placed from the program's path and the dependency list, by image path: the
    /// same entry twice is fine (a symlink both lead through), two different ones conflict.
    var placed: [String: ImageEntry] = [:]
    var inputs: [FileFingerprint] = []

    init() {
        importer = VolumeImporter(writer: ImageWriter())
        importer.label = "--add"
        importer.recordsInputs = true
        importer.origins = [:]
        importer.skipsDanglingSymlinks = true
    }

    func allSources() -> [Int: FileSource] {
        var sources: [Int: FileSource] = [:]
        for s in importer.sources { sources[s.entryID] = .host(s.hostPath) }
        for (id, bytes) in generated { sources[id] = .bytes(bytes) }
        return sources
    }

    /// Puts the program into the image at its host path, resolving it the way the kernel
    /// would: every symlink met on the way (/bin → usr/bin, python3 → python3.11) becomes
    /// the same symlink in the image, the file at the end a file. Returns that file's path
    /// (the real path, which is the image's entrypoint).
    mutating func placeProgram(_ path: String) throws(StoreError) -> String {
        let real = try placeSymlinks(of: path, what: "program")
        try place(.file(path: real, hostPath: real), what: "program")
        return real
    }

    /// Places every symlink met resolving `path` on the host (as `placeProgram` does) and
    /// returns the real path it leads to, which is not placed.
    mutating func placeSymlinks(of path: String, what: String) throws(StoreError) -> String {
        var pending = path.split(separator: "/").map(String.init)
        var resolved: [String] = []
        var hops = 0
        while !pending.isEmpty {
            let component = pending.removeFirst()
            if component == "." || component.isEmpty { continue }
            if component == ".." { _ = resolved.popLast(); continue }
            let candidate = "/" + (resolved + [component]).joined(separator: "/")
            var st = stat()
            guard lstat(candidate, &st) == 0 else { throw StoreError(.build, "\(path): \(errnoText())") }
            guard st.st_mode & S_IFMT == S_IFLNK else {
                resolved.append(component)
                continue
            }
            hops += 1
            guard hops <= 40 else { throw StoreError(.build, "\(path): \(errnoText(ELOOP))") }
            let target = try readLink(candidate)
            try place(.symlink(path: candidate, target: target), what: what)
            if target.hasPrefix("/") { resolved = [] }
            pending = target.split(separator: "/").map(String.init) + pending
        }
        return "/" + resolved.joined(separator: "/")
    }

    /// Places one program or library entry (see `placed`).
    mutating func place(_ entry: ImageEntry, what: String) throws(StoreError) {
        let path: String
        switch entry {
        case .file(let p, _), .symlink(let p, _): path = p
        }
        if let existing = placed[path] {
            guard existing == entry else {
                throw StoreError(.build, "\(path): two different entries for one image path (\(existing) and \(entry))")
            }
            return
        }
        do {
            switch entry {
            case .file(let p, let hostPath):
                var st = stat()
                guard stat(hostPath, &st) == 0 else { throw StoreError(.build, "\(what) \(hostPath): \(errnoText())") }
                guard st.st_mode & S_IFMT == S_IFREG else { throw StoreError(.build, "\(what) \(hostPath): not a regular file") }
                inputs.append(FileFingerprint(path: hostPath, follow: true, stamp: FileFingerprint.stampOf(st)))
                let origin = VolumeImporter.EntryOrigin.file(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
                // The same file an --add directory brought at this path already.
                if importer.origins?[p] != origin {
                    let id = try importer.writer.addFile(path: p, size: UInt64(st.st_size), mode: UInt32(st.st_mode & 0o7777))
                    importer.sources.append((id, hostPath))
                    importer.origins?[p] = origin
                }
            case .symlink(let p, let target):
                inputs.append(FileFingerprint.take(p, follow: false))
                if importer.origins?[p] != .symlink(target: target) {
                    try importer.writer.addSymlink(path: p, target: target)
                    importer.origins?[p] = .symlink(target: target)
                }
            }
        } catch let error as StoreError {
            throw error
        } catch let error as ImageError {
            throw StoreError(.build, "\(what) \(path): \(error.message)")
        } catch {
            throw StoreError(.build, "\(what) \(path): \(error)")
        }
        placed[path] = entry
    }

    /// Host paths of the regular files --add brought whose names say shared object
    /// ("….so" or "….so.N…"), for their libraries.
    func addedSharedObjects() -> [String] {
        importer.sources.map(\.hostPath).filter { path in
            let name = path.split(separator: "/").last.map(String.init) ?? ""
            return name.hasSuffix(".so") || name.contains(".so.")
        }
    }

    /// Adds an interpreter's library tree at its own path (the symlinks on the way as
    /// symlinks), then, for every symlink in it that leads out of every tree added so far to
    /// something that exists (the JDK's lib/jvm.cfg → /etc/java-17-openjdk/…), that target
    /// the same way, a few levels deep. Paths already in the image keep what they have
    /// (the user's --add wins); dangling symlinks are skipped without a word (a JDK has
    /// some: src.zip without the source package).
    mutating func addLibraryTrees(_ paths: [String]) throws(StoreError) {
        importer.existingWins = true
        importer.warnsOfDanglingSymlinks = false
        defer {
            importer.existingWins = false
            importer.warnsOfDanglingSymlinks = true
        }
        func inside(_ path: String, _ roots: [String]) -> Bool {
            roots.contains { path == $0 || path.hasPrefix($0 + "/") }
        }
        var roots: [String] = []
        var pending = paths
        var followed = Set<String>()
        for _ in 0..<4 where !pending.isEmpty {
            for path in pending {
                let real = try placeSymlinks(of: path, what: "library directory")
                if inside(real, roots) { continue }
                roots.append(real)
                try add((host: real, image: real))
            }
            // The links in the trees, whoever added them (an --add of the same tree took
            // its paths first): those at their host path whose target is outside.
            pending = []
            for link in importer.addedSymlinks where link.host == link.image && inside(link.image, roots) {
                guard followed.insert(link.host).inserted, let target = realPath(link.host),
                      !inside(target, roots), !pending.contains(target) else { continue }
                pending.append(target)
            }
        }
    }

    /// One --add: a file, or a directory with everything below it (VolumeImporter).
    mutating func add(_ file: (host: String, image: String)) throws(StoreError) {
        do {
            try importer.add(Volume(hostPath: file.host, guestPath: file.image, readOnly: false))
        } catch {
            throw StoreError(.build, error.message)
        }
        inputs += importer.fingerprints
        importer.fingerprints.removeAll()
    }

    /// /etc/passwd, group, hosts, nsswitch.conf; /etc/localtime (the host's zone file, the
    /// symlink resolved); the CA bundle when asked; /root and /tmp. Paths --add filled win.
    mutating func addDefaults(caCertificates: Bool) throws(StoreError) {
        ensureDirectoryIfMissing("/etc", mode: 0o755)
        ensureDirectoryIfMissing("/root", mode: 0o700)
        ensureDirectoryIfMissing("/tmp", mode: 0o1777)
        for (path, text) in ImageBuild.generatedFiles {
            let bytes = Array(text.utf8)
            guard let id = try? importer.writer.addFile(path: path, size: UInt64(bytes.count), mode: 0o644) else { continue }
            generated[id] = bytes
        }
        inputs.append(FileFingerprint.take("/etc/localtime", follow: false))
        if let zone = realPath("/etc/localtime") {
            var st = stat()
            if stat(zone, &st) == 0, st.st_mode & S_IFMT == S_IFREG {
                inputs.append(FileFingerprint(path: zone, follow: true, stamp: FileFingerprint.stampOf(st)))
                if let id = try? importer.writer.addFile(path: "/etc/localtime", size: UInt64(st.st_size), mode: 0o644) {
                    importer.sources.append((id, zone))
                }
            }
        }
        if caCertificates {
            let bundle = ImageBuild.caBundlePath
            var st = stat()
            guard let real = realPath(bundle), stat(real, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
                throw StoreError(.build, "--ca-certificates: \(bundle): no CA bundle on this host (install the ca-certificates package)")
            }
            inputs.append(FileFingerprint.take(bundle, follow: false))
            inputs.append(FileFingerprint(path: real, follow: true, stamp: FileFingerprint.stampOf(st)))
            do {
                let id = try importer.writer.addFile(path: bundle, size: UInt64(st.st_size), mode: 0o644)
                importer.sources.append((id, real))
            } catch ImageError.duplicatePath {
                // --add put a bundle there: the user's wins.
            } catch {
                throw StoreError(.build, "--ca-certificates: \(error)")
            }
        }
    }

    /// Creates the working directory unless something is already there.
    mutating func ensureDirectory(_ path: String) throws(StoreError) {
        do {
            try importer.writer.addDirectory(path: path, mode: 0o755)
        } catch .duplicatePath {
            // Already there (a directory of the program's path or of an --add).
        } catch {
            throw StoreError(.build, "--workdir \(path): \(error.message)")
        }
    }

    private mutating func ensureDirectoryIfMissing(_ path: String, mode: UInt32) {
        try? importer.writer.addDirectory(path: path, mode: mode)
    }
}

// MARK: Host path helpers

func currentDirectory() -> String {
    guard let p = getcwd(nil, 0) else { return "/" }
    defer { free(p) }
    return String(cString: p)
}

/// `path` made absolute against `base` and normalized lexically ("." and empty components
/// dropped, ".." taking one off). Symlinks are not resolved.
func absolute(_ path: String, base: String) -> String {
    let full = path.hasPrefix("/") ? path : base + "/" + path
    var parts: [Substring] = []
    for c in full.split(separator: "/") {
        if c == "." { continue }
        if c == ".." { _ = parts.popLast(); continue }
        parts.append(c)
    }
    return "/" + parts.joined(separator: "/")
}

func realPath(_ path: String) -> String? {
    guard let resolved = realpath(path, nil) else { return nil }
    defer { free(resolved) }
    return String(cString: resolved)
}

func readLink(_ path: String) throws(StoreError) -> String {
    var buffer = [CChar](repeating: 0, count: 4097)
    let n = readlink(path, &buffer, 4096)
    guard n > 0 else { throw StoreError(.build, "\(path): \(errnoText())") }
    return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
