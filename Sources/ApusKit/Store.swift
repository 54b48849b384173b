#if canImport(Glibc)
import Glibc
#endif

// The image store: images built by `apus build` (and by `apus run` for dynamic programs),
// under $APUS_HOME (default $XDG_DATA_HOME/apus, else ~/.local/share/apus):
//
//   blobs/<sha256>    image files (ImageFormat), named by the SHA-256 of their bytes; 0444
//   configs/<sha256>  image configs (ImageConfig text), named by the SHA-256 of their text;
//                     each names its blob. An image *is* its config: its digest is the
//                     config's, so two builds of the same files with different defaults are
//                     two images sharing one blob.
//   names/<name>      "<config sha256>\n": the name → image references
//   cache/<sha256>    build-cache entries, named by the SHA-256 of a build's options (see
//                     Build.swift): the resulting config, every input file's stat
//                     fingerprint, and "auto" when `apus run` made it
//   tmp/<pid>.<rand>  files being written; moved into place by rename(2) only when complete
//   lock              flock(2)ed exclusively while anything is renamed into place or removed
//
// Invariants, kept across crashes by the order of the steps in `commit`: a name or cache
// entry only ever points at a config whose blob is already in place (each rename is fsynced,
// with its directory, before the next step), so an interrupted build leaves at most unnamed
// files, which the next garbage collection removes. Readers (`apus run NAME`) take no lock:
// every file they read was complete before it got its final name.
//
// Liveness: names, and cache entries marked "auto", are the roots. A config is live when a
// root points at it, a blob when a live config names it; everything else — and a cache
// entry (not "auto") whose config is no longer live — is deleted by `collectGarbage`, which
// runs after every build and every `rmi`.

public struct StoreError: Error, CustomStringConvertible, Equatable {
    public enum Kind: Equatable, Sendable {
        /// No image by that name or digest.
        case notFound
        /// A store file is unreadable or malformed.
        case corrupt
        /// A bad name, reference or option.
        case invalid
        /// A system call failed.
        case io
        /// A build input is missing or unusable (a file, a library, the program itself).
        case build
    }

    public var kind: Kind
    public var message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// An image found by name or digest.
public struct StoredImage: Sendable {
    /// The name it was found by (nil: found by digest).
    public var name: String?
    /// The config's SHA-256, the image's identity.
    public var digest: String
    public var config: ImageConfig
    /// The image file (blobs/<config.imageDigest>).
    public var blobPath: String
    /// The store it was found in.
    public var storeRoot: String
}

public final class ImageStore: @unchecked Sendable {
    public let root: String

    public init(root: String) {
        self.root = root
    }

    /// $APUS_HOME, else $XDG_DATA_HOME/apus, else $HOME/.local/share/apus; nil when none of
    /// them is set.
    public static func defaultRoot() -> String? {
        if let v = environment("APUS_HOME") { return v }
        if let v = environment("XDG_DATA_HOME") { return v + "/apus" }
        if let v = environment("HOME") { return v + "/.local/share/apus" }
        return nil
    }

    public static func openDefault() throws(StoreError) -> ImageStore {
        guard let root = defaultRoot() else {
            throw StoreError(.invalid, "no image store: set APUS_HOME (or HOME)")
        }
        return ImageStore(root: root)
    }

    var blobsDirectory: String { root + "/blobs" }
    var configsDirectory: String { root + "/configs" }
    var namesDirectory: String { root + "/names" }
    var cacheDirectory: String { root + "/cache" }
    var tmpDirectory: String { root + "/tmp" }
    var verifiedDirectory: String { root + "/verified" }

    public func blobPath(_ hex: String) -> String { blobsDirectory + "/" + hex }
    func configPath(_ hex: String) -> String { configsDirectory + "/" + hex }
    func namePath(_ name: String) -> String { namesDirectory + "/" + name }
    func cachePath(_ key: String) -> String { cacheDirectory + "/" + key }
    func verifiedPath(_ hex: String) -> String { verifiedDirectory + "/" + hex }

    // MARK: Names and references

    public static let maxNameLength = 128

    /// Why `name` cannot name an image, or nil: 1…128 bytes of letters, digits, '.', '_',
    /// '-' and ':', starting with a letter or digit (so it is a plain file name in names/
    /// and never a path).
    public static func nameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maxNameLength else {
            return "image name \"\(name)\" must be 1 to \(maxNameLength) characters"
        }
        func alnum(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) }
        guard alnum(bytes[0]), bytes.allSatisfy({ alnum($0) || $0 == 0x2e || $0 == 0x5f || $0 == 0x2d || $0 == 0x3a }) else {
            return "image name \"\(name)\" may hold only letters, digits, '.', '_', '-' and ':', and must start with a letter or digit"
        }
        return nil
    }

    /// The config digest `name` points at, or nil when there is no such name (or no store).
    public func digest(forName name: String) -> String? {
        guard ImageStore.nameProblem(name) == nil, let text = readSmallFile(namePath(name)) else { return nil }
        let hex = text.hasSuffix("\n") ? String(text.dropLast()) : text
        return isHexDigest(hex) ? hex : nil
    }

    /// The image `reference` names: a name, else a digest ("sha256:HEX" or HEX, whole or a
    /// unique prefix of at least 6 digits).
    public func find(_ reference: String) throws(StoreError) -> StoredImage {
        if ImageStore.nameProblem(reference) == nil, fileExists(namePath(reference)) {
            guard let hex = digest(forName: reference) else {
                throw StoreError(.corrupt, "image \(reference): its name file \(namePath(reference)) is damaged; remove it with apus rmi \(reference)")
            }
            return try load(hex, name: reference)
        }
        if let hex = try matchDigest(reference) { return try load(hex, name: nil) }
        throw StoreError(.notFound, "no image named \(reference.isEmpty ? "\"\"" : reference) (apus images lists them)")
    }

    /// The image `reference` names when it names one; nil (never an error) when it does not.
    /// Store problems with an image it does name are errors.
    public func findIfPresent(_ reference: String) throws(StoreError) -> StoredImage? {
        do { return try find(reference) } catch where error.kind == .notFound { return nil }
    }

    /// The full config digest a digest reference names, nil if it is not one, an error when
    /// it is ambiguous.
    func matchDigest(_ reference: String) throws(StoreError) -> String? {
        var prefix = Substring(reference)
        if prefix.hasPrefix("sha256:") { prefix = prefix.dropFirst(7) }
        let hex = prefix.lowercased()
        guard hex.utf8.count >= 6, hex.utf8.count <= 64,
              hex.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else { return nil }
        if hex.utf8.count == 64 { return fileExists(configPath(hex)) ? hex : nil }
        let matches = listDirectory(configsDirectory).filter { isHexDigest($0) && $0.hasPrefix(hex) }
        if matches.count > 1 {
            throw StoreError(.invalid, "\(reference) is ambiguous: it starts \(matches.count) image digests; give more digits")
        }
        return matches.first
    }

    /// Reads and checks the config `hex`.
    public func load(_ hex: String, name: String?) throws(StoreError) -> StoredImage {
        let label = name ?? "sha256:" + hex.prefix(12)
        guard let text = readSmallFile(configPath(hex)) else {
            throw StoreError(.corrupt, "image \(label): its config \(configPath(hex)) is missing or unreadable; remove the image with apus rmi \(label)")
        }
        guard SHA256.hash(text).hex == hex, let config = ImageConfig.decode(text) else {
            throw StoreError(.corrupt, "image \(label): its config \(configPath(hex)) is corrupt; remove the image with apus rmi \(label)")
        }
        return StoredImage(name: name, digest: hex, config: config, blobPath: blobPath(config.imageDigest), storeRoot: root)
    }

    /// Every name and the config digest it points at, sorted by name. Damaged names are
    /// listed with an empty digest.
    public func names() -> [(name: String, digest: String)] {
        listDirectory(namesDirectory).filter { ImageStore.nameProblem($0) == nil }.sorted().map { ($0, digest(forName: $0) ?? "") }
    }

    /// Every config digest in the store.
    public func configDigests() -> [String] {
        listDirectory(configsDirectory).filter(isHexDigest).sorted()
    }

    // MARK: Writing

    /// Creates the store's directories (idempotent).
    public func prepare() throws(StoreError) {
        for dir in [root, blobsDirectory, configsDirectory, namesDirectory, cacheDirectory, tmpDirectory, verifiedDirectory] {
            try makeDirectories(dir)
        }
    }

    /// A new file in tmp/, removed again unless `commit` moves it into place.
    public func temporaryFile() throws(StoreError) -> TemporaryFile {
        try prepare()
        let path = tmpDirectory + "/\(getpid()).\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError(.io, "cannot create \(path): \(errnoText())") }
        return TemporaryFile(path: path, fd: fd)
    }

    /// Writes `text` to a temporary file, fsynced, ready for `commit`.
    func temporaryText(_ text: String) throws(StoreError) -> TemporaryFile {
        let file = try temporaryFile()
        var bytes = Array(text.utf8)
        let ok = bytes.withUnsafeMutableBytes { writeAll(file.fd, UnsafeRawBufferPointer($0), at: 0) }
        guard ok, fsync(file.fd) == 0 else { throw StoreError(.io, "cannot write \(file.path): \(errnoText())") }
        bytes.removeAll()
        return file
    }

    /// What a finished build hands to `commit`.
    struct Commit {
        /// The image file and its SHA-256; nil when the blob is already in the store.
        var blob: (file: TemporaryFile, hex: String)?
        var configText: String
        var name: String?
        var cache: (key: String, entry: CacheEntry)?
        /// Tests: called with `.blobCommitted` right after the blob is in place.
        var interrupt: ((ImageBuild.Stage) throws(StoreError) -> Void)? = nil
    }

    /// Moves a build's files into place (blob, config, then name and cache entry, each
    /// durable before the next: see the invariants above), then collects garbage. Returns
    /// the config digest.
    @discardableResult
    func commit(_ c: Commit) throws(StoreError) -> String {
        let configHex = SHA256.hash(c.configText).hex
        try prepare()
        return try withLock { () throws(StoreError) -> String in
            if let (file, hex) = c.blob {
                if fileExists(blobPath(hex)) {
                    file.discard()  // same bytes by construction: the name is their hash
                } else {
                    guard fchmod(file.fd, 0o444) == 0 else { throw StoreError(.io, "chmod \(file.path): \(errnoText())") }
                    try file.moveTo(blobPath(hex))
                    try syncDirectory(blobsDirectory)
                    recordVerified(hex)  // the build hashed these bytes as it wrote them
                }
            }
            try c.interrupt?(.blobCommitted)
            if !fileExists(configPath(configHex)) {
                try temporaryText(c.configText).moveTo(configPath(configHex))
                try syncDirectory(configsDirectory)
            }
            if let name = c.name {
                try temporaryText(configHex + "\n").moveTo(namePath(name))
                try syncDirectory(namesDirectory)
            }
            if let (key, entry) = c.cache {
                var entry = entry
                entry.config = configHex
                try temporaryText(entry.encoded()).moveTo(cachePath(key))
                try syncDirectory(cacheDirectory)
            }
            collectGarbageLocked()
            return configHex
        }
    }

    // MARK: Integrity of image files

    // A blob is named by the SHA-256 of its bytes, and nothing boots that does not hash to its
    // name. Hashing a large image at every run would cost more than the boot, so a check that
    // passed leaves a stamp, verified/<hex>: what fstat said of the file then (device, inode,
    // mode, size, mtime and ctime to the nanosecond). Any write to the file, a replacement or
    // a touch changes the stamp and the next run hashes again; ctime cannot be set back by
    // the file's owner, so restoring mtime does not hide a change.

    /// Checks that the mapped image `file` is the blob `hex`, hashing it unless its stamp is
    /// current. The bytes hashed are the mapping that boots.
    public func verifyBlob(_ file: MappedFile, hex: String, label: String) throws(StoreError) {
        var st = stat()
        guard fstat(file.fd, &st) == 0 else { throw StoreError(.io, "\(file.path): \(errnoText())") }
        let stamp = FileFingerprint.stampOf(st) + "\n"
        if readSmallFile(verifiedPath(hex)) == stamp { return }
        var hash = SHA256()
        hash.update(file.bytes)
        guard hash.finalize().hex == hex else {
            throw StoreError(.corrupt, "image \(label) is corrupt: its file \(file.path) no longer has the SHA-256 it was stored under (changed on disk since it was built); remove it with apus rmi \(label) and build it again")
        }
        writeStamp(stamp, hex: hex)
    }

    /// After a build wrote blob `hex`: its stamp, so the first run does not hash it again.
    func recordVerified(_ hex: String) {
        var st = stat()
        guard stat(blobPath(hex), &st) == 0 else { return }
        writeStamp(FileFingerprint.stampOf(st) + "\n", hex: hex)
    }

    /// Best effort: a store this user cannot write (another user's, read-only media) is
    /// verified by hashing at every run instead.
    private func writeStamp(_ stamp: String, hex: String) {
        guard (try? makeDirectories(verifiedDirectory)) != nil, let file = try? temporaryFile() else { return }
        let ok = Array(stamp.utf8).withUnsafeBytes { writeAll(file.fd, $0, at: 0) }
        if !ok || (try? file.moveTo(verifiedPath(hex))) == nil { file.discard() }
    }

    /// Points `name` at the existing config `hex` (a cache hit) and collects garbage.
    func setName(_ name: String, to hex: String) throws(StoreError) {
        guard digest(forName: name) != hex else { return }  // the usual cache hit: nothing to do
        try prepare()
        try withLock { () throws(StoreError) in
            guard digest(forName: name) != hex else { return }
            try temporaryText(hex + "\n").moveTo(namePath(name))
            try syncDirectory(namesDirectory)
            collectGarbageLocked()
        }
    }

    /// Marks the cache entry `key` as made by `apus run` (a root: see Liveness above).
    func markAuto(_ key: String, entry: CacheEntry) throws(StoreError) {
        guard !entry.auto else { return }
        var entry = entry
        entry.auto = true
        try withLock { () throws(StoreError) in
            try temporaryText(entry.encoded()).moveTo(cachePath(key))
        }
    }

    // MARK: Removing

    /// What `remove` did, one line each ("Untagged: pyapp", "Deleted: sha256:…").
    public struct Removal: Sendable {
        public var untagged: [String] = []
        public var deleted: [String] = []
    }

    /// `apus rmi REFERENCE`: a name loses its reference (and when it was the image's last
    /// name, the image goes too: its cache entries are dropped); a digest removes the image
    /// with every name and cache entry pointing at it. Then unreferenced files are deleted.
    public func remove(_ reference: String) throws(StoreError) -> Removal {
        guard fileExists(root) else {
            throw StoreError(.notFound, "no image named \(reference.isEmpty ? "\"\"" : reference) (the store \(root) is empty)")
        }
        return try withLock { () throws(StoreError) -> Removal in
            var removal = Removal()
            let target: String
            var names: [String]
            if ImageStore.nameProblem(reference) == nil, fileExists(namePath(reference)) {
                target = digest(forName: reference) ?? ""
                names = [reference]
            } else if let hex = try matchDigest(reference) {
                target = hex
                names = self.names().filter { $0.digest == hex }.map(\.name)
            } else {
                throw StoreError(.notFound, "no image named \(reference.isEmpty ? "\"\"" : reference) (apus images lists them)")
            }
            for name in names {
                guard unlink(namePath(name)) == 0 || errno == ENOENT else {
                    throw StoreError(.io, "cannot remove \(namePath(name)): \(errnoText())")
                }
                removal.untagged.append(name)
            }
            // The image stays while another name points at it.
            if !target.isEmpty, !self.names().contains(where: { $0.digest == target }) {
                for (key, entry) in cacheEntries() where entry?.config == target {
                    unlink(cachePath(key))
                }
            }
            let before = Set(configDigests())
            collectGarbageLocked()
            removal.deleted = before.subtracting(configDigests()).sorted().map { "sha256:" + $0 }
            try? syncDirectory(namesDirectory)
            return removal
        }
    }

    /// Deletes everything no root reaches (see Liveness above) and leftovers of builds that
    /// died (tmp files of processes that are gone). Takes the lock.
    public func collectGarbage() throws(StoreError) {
        guard fileExists(root) else { return }
        try withLock { () throws(StoreError) in collectGarbageLocked() }
    }

    private func collectGarbageLocked() {
        let entries = cacheEntries()
        var live = Set(names().map(\.digest).filter { !$0.isEmpty })
        for (_, entry) in entries { if let entry, entry.auto { live.insert(entry.config) } }
        for (key, entry) in entries where entry == nil || !live.contains(entry!.config) {
            unlink(cachePath(key))
        }
        var liveBlobs = Set<String>()
        for hex in listDirectory(configsDirectory) {
            if live.contains(hex), let config = readSmallFile(configPath(hex)).flatMap(ImageConfig.decode) {
                liveBlobs.insert(config.imageDigest)
            } else if !live.contains(hex) {
                unlink(configPath(hex))
            }
        }
        for hex in listDirectory(blobsDirectory) where !liveBlobs.contains(hex) {
            unlink(blobPath(hex))
        }
        for hex in listDirectory(verifiedDirectory) where !liveBlobs.contains(hex) {
            unlink(verifiedPath(hex))
        }
        for name in listDirectory(tmpDirectory) {
            // "<pid>.<random>": the writer's pid; its file is garbage once it is gone.
            guard let pid = Int32(name.split(separator: ".").first ?? "") else { unlink(tmpDirectory + "/" + name); continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH { unlink(tmpDirectory + "/" + name) }
        }
    }

    // MARK: Cache entries

    func cacheEntry(_ key: String) -> CacheEntry? {
        readSmallFile(cachePath(key)).flatMap(CacheEntry.decode)
    }

    /// Every cache entry (nil: unreadable or malformed).
    private func cacheEntries() -> [(key: String, entry: CacheEntry?)] {
        listDirectory(cacheDirectory).map { ($0, cacheEntry($0)) }
    }

    // MARK: Locking and files

    /// Runs `body` holding the store's lock (flock on `lock`), which serializes every
    /// rename into the store and every removal.
    func withLock<T>(_ body: () throws(StoreError) -> T) throws(StoreError) -> T {
        let path = root + "/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StoreError(.io, "cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw StoreError(.io, "cannot lock \(path): \(errnoText())") }
        }
        return try body()
    }

    func syncDirectory(_ path: String) throws(StoreError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError(.io, "cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw StoreError(.io, "cannot sync \(path): \(errnoText())") }
    }

    private func makeDirectories(_ path: String) throws(StoreError) {
        if mkdir(path, 0o755) == 0 || errno == EEXIST { return }
        if errno == ENOENT {
            let parent = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if !parent.isEmpty {
                try makeDirectories(parent)
                if mkdir(path, 0o755) == 0 || errno == EEXIST { return }
            }
        }
        throw StoreError(.io, "cannot create the image store directory \(path): \(errnoText())")
    }
}

/// A file in the store's tmp/ being written. Unlinked when dropped unless moved into place.
public final class TemporaryFile {
    public let path: String
    public let fd: Int32
    private var done = false

    init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    /// rename(2) into `target` (replacing it atomically).
    func moveTo(_ target: String) throws(StoreError) {
        guard rename(path, target) == 0 else { throw StoreError(.io, "cannot move \(path) to \(target): \(errnoText())") }
        done = true
    }

    func discard() {
        unlink(path)
        done = true
    }

    deinit {
        close(fd)
        if !done { unlink(path) }
    }
}

/// A build-cache entry: the config a build produced and the stat fingerprints of every file
/// it read. A later build with the same options is a hit when every fingerprint still
/// matches (only stat calls), so a changed, added or removed input is a miss.
struct CacheEntry: Equatable {
    static let header = "apus-build-cache 1"
    var config = ""
    /// Made by `apus run` for a dynamic program: keeps its image alive without a name.
    var auto = false
    var inputs: [FileFingerprint] = []

    func encoded() -> String {
        var w = LineWriter(header: Self.header)
        w.add("config", config)
        if auto { w.add("auto") }
        for f in inputs { w.add("input", f.path, f.follow ? "f" : "l", f.stamp) }
        return w.text
    }

    static func decode(_ text: String) -> CacheEntry? {
        guard let records = LineFormat.records(text, header: header) else { return nil }
        var entry = CacheEntry()
        for (_, key, f) in records {
            switch key {
            case "config" where f.count == 1 && isHexDigest(f[0]): entry.config = f[0]
            case "auto" where f.isEmpty: entry.auto = true
            case "input" where f.count == 3 && (f[1] == "f" || f[1] == "l"):
                entry.inputs.append(FileFingerprint(path: f[0], follow: f[1] == "f", stamp: f[2]))
            default: return nil
            }
        }
        return entry.config.isEmpty ? nil : entry
    }

    /// Whether every input still has its recorded fingerprint.
    func isCurrent() -> Bool {
        inputs.allSatisfy { FileFingerprint.take($0.path, follow: $0.follow) == $0 }
    }
}

/// What stat(2) says about one build input: device, inode, mode, size, mtime and ctime (to
/// the nanosecond), or "missing". `follow`: stat (the file a path leads to) or lstat (the
/// path itself, e.g. a symlink).
struct FileFingerprint: Equatable {
    var path: String
    var follow: Bool
    var stamp: String

    static func take(_ path: String, follow: Bool) -> FileFingerprint {
        var st = stat()
        let r = follow ? stat(path, &st) : lstat(path, &st)
        return FileFingerprint(path: path, follow: follow, stamp: r == 0 ? stampOf(st) : "missing")
    }

    static func stampOf(_ st: stat) -> String {
        "\(st.st_dev):\(st.st_ino):\(st.st_mode):\(st.st_size):\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec):\(st.st_ctim.tv_sec).\(st.st_ctim.tv_nsec)"
    }
}

// MARK: Small file helpers

func environment(_ name: String) -> String? {
    guard let v = getenv(name) else { return nil }
    let s = String(cString: v)
    return s.isEmpty ? nil : s
}

func errnoText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

func fileExists(_ path: String) -> Bool {
    var st = stat()
    return lstat(path, &st) == 0
}

/// The whole file as UTF-8 text, or nil when it cannot be read (or is over 16 MiB).
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { break }
        bytes += chunk[0..<n]
        if bytes.count > 16 << 20 { return nil }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// The names in a directory (not "." and ".."), unsorted; empty when it cannot be read.
func listDirectory(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// pwrite(2) until all of `bytes` is written at `offset`; false on error (errno is set).
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: UInt64) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset) + off_t(done))
        if n < 0 { if errno == EINTR { continue }; return false }
        done += n
    }
    return true
}
