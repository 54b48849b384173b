import ImageFormat
#if canImport(Glibc)
import Glibc
#endif

/// `-v HOST:GUEST[:ro]`: a host file or directory copied into the image at GUEST when the VM
/// starts. The guest sees a snapshot: its writes go to the VM's in-memory overlay and never
/// reach the host (`:ro` makes them fail with EROFS instead). Live, shared volumes are a
/// later feature.
public struct Volume: Equatable, Sendable {
    public var hostPath: String
    public var guestPath: String
    public var readOnly: Bool

    public init(hostPath: String, guestPath: String, readOnly: Bool) {
        self.hostPath = hostPath
        self.guestPath = guestPath
        self.readOnly = readOnly
    }

    /// HOST:GUEST, HOST:GUEST:ro or HOST:GUEST:rw; GUEST must be absolute and not "/".
    public static func parse(_ text: String) -> Result<Volume, RunOptionsError> {
        var parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var readOnly = false
        if parts.count == 3, parts[2] == "ro" || parts[2] == "rw" {
            readOnly = parts[2] == "ro"
            parts.removeLast()
        }
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
            return .failure(RunOptionsError("--volume \(text): expected HOST:GUEST or HOST:GUEST:ro (no ':' in either path)"))
        }
        guard let guest = try? ImagePath.normalize(parts[1]), guest != "/" else {
            return .failure(RunOptionsError("--volume \(text): the guest path must be absolute, not \"/\", without \"..\""))
        }
        return .success(Volume(hostPath: parts[0], guestPath: guest, readOnly: readOnly))
    }
}

/// Adds host files and directories to an image being written — `apus run -v` volumes and
/// `apus build --add` files alike: directories, regular files and symlinks (as links, not
/// followed; a volume's own HOST path is followed). Other kinds (sockets, FIFOs, devices) are
/// skipped with a warning on stderr. Records which host file each image file's bytes come
/// from and, for the build cache, what stat said about every host path it visited.
struct VolumeImporter {
    var writer: ImageWriter
    /// Image entry id → host path of its bytes.
    var sources: [(entryID: Int, hostPath: String)] = []
    var warnings: [String] = []
    /// The option errors and warnings name ("--volume", "--add").
    var label = "--volume"
    /// Whether to record `fingerprints` (builds do; `apus run` does not pay for it).
    var recordsInputs = false
    /// Every host path visited (the top one followed, the rest not), in visiting order.
    var fingerprints: [FileFingerprint] = []

    /// Builds only (nil for volumes): where each image path placed so far came from. An
    /// entry met again with the same origin (the program or a library inside an --add
    /// directory, a directory two --add trees share) is skipped instead of refused.
    var origins: [String: EntryOrigin]? = nil
    /// Whether an image path that is already taken keeps what it has, whatever its origin
    /// (the interpreter's own library trees give way to the user's --add files).
    var existingWins = false
    /// Whether symlinks below the top path whose target does not exist on the host are
    /// skipped, and whether that is said in `warnings`.
    var skipsDanglingSymlinks = false
    var warnsOfDanglingSymlinks = true
    /// (host path, image path) of the symlinks added, in order, when `origins` is kept.
    var addedSymlinks: [(host: String, image: String)] = []

    /// What an image entry is a copy of.
    enum EntryOrigin: Equatable {
        case file(device: UInt64, inode: UInt64)
        case symlink(target: String)
        case directory
    }

    init(writer: ImageWriter) { self.writer = writer }

    mutating func add(_ volume: Volume) throws(RunError) {
        var st = stat()
        guard stat(volume.hostPath, &st) == 0 else {
            throw RunError("\(label) \(volume.hostPath): \(String(cString: strerror(errno)))")
        }
        try addEntry(host: volume.hostPath, guest: volume.guestPath, st, depth: 0)
        if volume.readOnly {
            do { try writer.markReadOnly(path: volume.guestPath) } catch {
                throw RunError("\(label) \(volume.guestPath): \(error.message)")
            }
        }
    }

    private mutating func addEntry(host: String, guest: String, _ st: stat, depth: Int) throws(RunError) {
        let mode = UInt32(st.st_mode & 0o7777)
        if recordsInputs {
            fingerprints.append(FileFingerprint(path: host, follow: depth == 0, stamp: FileFingerprint.stampOf(st)))
        }
        do {
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                let origin = EntryOrigin.file(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
                if alreadyPlaced(guest, as: origin) { return }
                let id = try writer.addFile(path: guest, size: UInt64(st.st_size), mode: mode)
                sources.append((id, host))
                origins?[guest] = origin
            case S_IFDIR:
                guard depth < 256 else { throw RunError("\(label) \(host): directories nest too deeply") }
                if let existing = origins?[guest], existing != .directory, existingWins {
                    return  // the user's file stays, and this library subtree with it
                }
                if origins?[guest] != .directory {
                    try writer.addDirectory(path: guest, mode: mode)
                    origins?[guest] = .directory
                }
                for name in try listDirectory(host) {
                    let child = host + "/" + name
                    var cst = stat()
                    guard lstat(child, &cst) == 0 else {
                        throw RunError("\(label) \(child): \(String(cString: strerror(errno)))")
                    }
                    try addEntry(host: child, guest: guest + "/" + name, cst, depth: depth + 1)
                }
            case S_IFLNK:
                var buffer = [CChar](repeating: 0, count: 4097)
                let n = readlink(host, &buffer, 4096)
                guard n > 0 else { throw RunError("\(label) \(host): \(String(cString: strerror(errno)))") }
                let target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
                var targetStat = stat()
                if skipsDanglingSymlinks && depth > 0 && stat(host, &targetStat) != 0 {
                    if warnsOfDanglingSymlinks {
                        warnings.append("apus: warning: \(label): skipping \(host): a dangling symlink (to \(target))")
                    }
                    return
                }
                if alreadyPlaced(guest, as: .symlink(target: target)) { return }
                try writer.addSymlink(path: guest, target: target)
                if origins != nil {
                    origins?[guest] = .symlink(target: target)
                    addedSymlinks.append((host, guest))
                }
            default:
                warnings.append("apus: \(label): skipping \(host): not a file, directory or symlink")
            }
        } catch let error as RunError {
            throw error
        } catch ImageError.duplicatePath {
            throw RunError("\(label) \(host): \(guest) is already in the image (the program or another \(label == "--add" ? "--add" : "volume"))")
        } catch let error as ImageError {
            throw RunError("\(label) \(host) → \(guest): \(error.message)")
        } catch {
            throw RunError("\(label) \(host): \(error)")
        }
    }

    /// Whether `path` is in the image already with the same origin (or with any, when
    /// `existingWins`): then it is not added again. Without `origins` (volumes) nothing is.
    /// A taken path with another origin is left for the writer to refuse.
    private func alreadyPlaced(_ path: String, as origin: EntryOrigin) -> Bool {
        guard let origins, let existing = origins[path] else { return false }
        return existing == origin || existingWins
    }

    private func listDirectory(_ path: String) throws(RunError) -> [String] {
        guard let dir = opendir(path) else { throw RunError("\(label) \(path): \(String(cString: strerror(errno)))") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
