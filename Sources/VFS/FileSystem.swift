// The file system an Apus app sees: Linux file semantics over the read-only image, with a
// writable tmpfs overlay on top, special device nodes, synthetic (/proc) nodes the kernel
// fills in, and one process's open-file table and current directory.
//
// Layers. Every name the app can see is in one of two places:
//   - the image (lower, read-only): its index is the tree as built; a regular file's bytes
//     are a slice of the image (zero copy; `imageContents` hands it to mmap);
//   - the overlay: per directory, a sorted list of `DirectoryEntry` (name → node, or a
//     whiteout that hides the image's entry of that name). A name is looked up in the
//     overlay first, then in the image directory the node came from (if any).
// Image entries become nodes lazily, on first lookup, and their node is then recorded in the
// directory's overlay list, so every later lookup finds the same node (stable st_ino, shared
// metadata). Writing to an image file copies its bytes into the node first ("copy-up");
// metadata changes (chmod, utimensat…) need no copy, as they live in the node.
//
// Nothing here writes the image: EROFS is never returned.
//
// The world is passed in: time, randomness, the console and /proc's contents come from the
// `FileSystemHost` the kernel (or a test) supplies; the module owns no clock, no RNG, no device.

import ImageFormat
import LinuxABI

/// What the file system needs from its surroundings.
public protocol FileSystemHost {
    /// CLOCK_REALTIME: stamped into tmpfs mtime/ctime/atime.
    mutating func now() -> Timespec
    /// Fills `buffer` with random bytes (reads of /dev/random and /dev/urandom).
    mutating func fillRandom(_ buffer: UnsafeMutableRawBufferPointer)
    /// The contents of synthetic file `id` (see `addSynthetic`), made when it is opened;
    /// reads then serve this snapshot, as Linux's seq_file does for /proc.
    mutating func generate(_ id: UInt32) throws(Errno) -> [UInt8]
    /// Reads from console `id` (a `Device.console`): the kernel's stdin, /dev/tty…
    mutating func consoleRead(_ id: UInt32, into buffer: UnsafeMutableRawBufferPointer,
                              nonblocking: Bool) throws(Errno) -> Int
    /// Writes to console `id`; returns the count accepted.
    mutating func consoleWrite(_ id: UInt32, _ bytes: UnsafeRawBufferPointer,
                               nonblocking: Bool) throws(Errno) -> Int
    /// What /proc/self/fd/N reads for a console opened by no path ("pipe:[3]",
    /// "anon_inode:[eventfd]"…).
    mutating func consoleName(_ id: UInt32) -> [UInt8]
    /// Whether `bytes` more of memory can be had: a tmpfs file's bytes grow only then,
    /// else the write fails with ENOSPC (a full tmpfs) instead of exhausting the host.
    mutating func canAllocate(_ bytes: Int) -> Bool
    /// A file the host maps MAP_SHARED (`beginSharedMapping`) is about to be read: copy the
    /// bytes of `range` the host's pages hold (what the app stored through the mapping)
    /// into `contents`, the file's bytes (`range` lies within them).
    mutating func collectMappedBytes(_ node: Int, into contents: UnsafeMutableRawBufferPointer, _ range: Range<Int>)
    /// The VFS changed the bytes `from..<to` of a file the host maps MAP_SHARED (`to` may be
    /// `Int.max`): copy them from `contents`, the file's bytes now, into the host's pages
    /// covering them, zeros past `contents.count`.
    mutating func mappedBytesChanged(_ node: Int, _ contents: UnsafeRawBufferPointer, from: Int, to: Int)
}

/// A character device node.
public enum Device: Equatable, Sendable {
    /// /dev/null: reads end of file, writes vanish.
    case null
    /// /dev/zero: reads zeros, writes vanish.
    case zero
    /// /dev/full: reads zeros, writes fail with ENOSPC.
    case full
    /// /dev/random and /dev/urandom: reads `FileSystemHost.fillRandom`, writes vanish.
    case random
    case urandom
    /// A console the host serves; the id is the host's (see `ConsoleID`).
    case console(UInt32)

    /// st_rdev as Linux encodes it for stat (new_encode_dev: minor low byte, major << 8).
    var rdev: UInt64 {
        func encode(_ major: UInt64, _ minor: UInt64) -> UInt64 {
            (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)
        }
        switch self {
        case .null: return encode(1, 3)
        case .zero: return encode(1, 5)
        case .full: return encode(1, 7)
        case .random: return encode(1, 8)
        case .urandom: return encode(1, 9)
        case .console(let id):
            // /dev/tty is 5:0 and /dev/console 5:1; the standard streams look like a pty.
            if id == ConsoleID.tty { return encode(5, 0) }
            if id == ConsoleID.console { return encode(5, 1) }
            return encode(136, 0)
        }
    }
}

/// Console ids the file system itself uses; the host may install others with
/// `installConsole`.
public enum ConsoleID {
    public static let stdin: UInt32 = 0
    public static let stdout: UInt32 = 1
    public static let stderr: UInt32 = 2
    /// /dev/tty.
    public static let tty: UInt32 = 3
    /// /dev/console.
    public static let console: UInt32 = 4
}

/// What a node is (the S_IFMT part of st_mode, plus where its contents come from).
public enum NodeType: Equatable, Sendable {
    case directory
    case regular
    case symlink
    case device(Device)
    /// A synthetic regular file whose contents `FileSystemHost.generate(id)` makes on open.
    case generated(UInt32)

    var modeBits: UInt32 {
        switch self {
        case .directory: return FileMode.S_IFDIR
        case .regular, .generated: return FileMode.S_IFREG
        case .symlink: return FileMode.S_IFLNK
        case .device: return FileMode.S_IFCHR
        }
    }

    var direntType: UInt8 { DirentType.from(mode: modeBits) }
}

/// A node `addSynthetic` registers.
public enum SyntheticNode: Sendable {
    case directory
    /// A read-only file generated on open (mode 0o444).
    case generated(UInt32)
    case symlink(target: [UInt8])
    case device(Device)
    /// /proc/self/fd: one symlink per open descriptor, named by its number, pointing at what
    /// it refers to. Kept current on every lookup or listing.
    case descriptorDirectory
}

/// Mount-time settings.
public struct MountOptions: Sendable {
    /// atime/mtime/ctime of every image entry (the image carries no times).
    public var imageTime: Timespec
    /// The target of /proc/self/exe, if any: the program's path inside the image.
    public var executablePath: [UInt8]?
    /// Largest tmpfs file, in bytes. Files are dense arrays, so a write or truncate beyond
    /// this fails with EFBIG instead of exhausting kernel memory.
    public var maxFileSize: Int
    /// The first process's RLIMIT_NOFILE: descriptors are 0 ..< maxDescriptors (EMFILE
    /// beyond), and setrlimit may raise that up to `maxDescriptorsHard`.
    public var maxDescriptors: Int
    public var maxDescriptorsHard: Int

    /// The descriptor limits default to a container's (containerd's 1024 soft, 524288 hard).
    public init(imageTime: Timespec = Timespec(seconds: 0, nanoseconds: 0),
                executablePath: [UInt8]? = nil, maxFileSize: Int = 1 << 30,
                maxDescriptors: Int = 1024, maxDescriptorsHard: Int = 524_288) {
        self.imageTime = imageTime
        self.executablePath = executablePath
        self.maxFileSize = maxFileSize
        self.maxDescriptors = maxDescriptors
        self.maxDescriptorsHard = max(maxDescriptorsHard, maxDescriptors)
    }
}

/// The files of a VM: the tree and the open file descriptions every process shares, and the
/// running process's descriptor table and current directory (`ProcessFiles`).
/// Single-threaded: the kernel serializes calls.
public struct FileSystem<Host: FileSystemHost> {
    public var host: Host
    let image: ImageReader
    let options: MountOptions
    /// The running process's descriptor table, current directory, umask and executable
    /// (see ProcessFiles.swift); the kernel exchanges it when another process runs.
    var process = ProcessFiles()
    /// Who is calling: permission checks and the owner of new files follow these ids.
    public var credentials = Credentials.root

    /// All nodes; a node's index is its identity. Freed slots (no name, not open) are
    /// recycled through `freeNodes`.
    var nodes: [Node] = []
    var freeNodes: [Int] = []
    /// Open file descriptions, shared by dup'ed descriptors; nil slots are free.
    var openFiles: [OpenFile?] = []
    /// The /proc/self/fd directory node (-1: none), and the descriptor table and version its
    /// entries were made from (`descriptorVersion` changes with every open, dup and close).
    var descriptorDirectory = -1
    var descriptorDirectoryVersion = -1
    var descriptorDirectoryTable = -1
    /// The /proc/self/exe symlink node (-1: none): its target is the running process's.
    var executableLink = -1

    /// The root directory is always node 0 and is never freed.
    static var rootNode: Int { 0 }
    /// st_dev of every node (an anonymous device number, as tmpfs has).
    static var deviceNumber: UInt64 { 0x2a }

    /// Mounts `image`: the root is the image's root; /tmp (mode 1777), /dev with null, zero,
    /// full, random, urandom, tty, console and the directory shm, and (if
    /// `options.executablePath` is set) /proc/self/exe exist, the overlay adding whichever
    /// the image lacks. The image's bytes must outlive the file system.
    public init(image: ImageReader, host: Host, options: MountOptions = MountOptions()) {
        self.image = image
        self.host = host
        self.options = options
        process.descriptorLimit = DescriptorLimit(soft: options.maxDescriptors, hard: options.maxDescriptorsHard)
        let rootEntry = image.entry(at: 0)
        var root = Node(type: .directory, permissions: rootEntry.mode, ino: 1, time: options.imageTime)
        root.image = 0
        root.parent = 0
        root.opens = 1  // the cwd
        nodes.append(root)

        let devices: [(StaticString, Device, UInt32)] = [
            ("null", .null, 0o666), ("zero", .zero, 0o666), ("full", .full, 0o666),
            ("random", .random, 0o666), ("urandom", .urandom, 0o666),
            ("tty", .console(ConsoleID.tty), 0o666), ("console", .console(ConsoleID.console), 0o600),
        ]
        let time = options.imageTime
        if let tmp = ensureDirectory(under: FileSystem.rootNode, named: bytes("tmp"), time: time),
           nodes[tmp].image < 0 {
            nodes[tmp].permissions = 0o1777
        }
        if let dev = ensureDirectory(under: FileSystem.rootNode, named: bytes("dev"), time: time) {
            for (name, device, permissions) in devices {
                let node = makeNode(.device(device), permissions: permissions, time: time)
                setEntry(in: dev, named: bytes(name), to: node)
            }
            if let shm = ensureDirectory(under: dev, named: bytes("shm"), time: time),
               nodes[shm].image < 0 {
                nodes[shm].permissions = 0o1777
            }
        }
        if let target = options.executablePath, !target.isEmpty,
           let proc = ensureDirectory(under: FileSystem.rootNode, named: bytes("proc"), time: time),
           let selfDirectory = ensureDirectory(under: proc, named: bytes("self"), time: time) {
            let link = makeNode(.symlink, permissions: 0o777, time: time)
            nodes[link].data = target
            setEntry(in: selfDirectory, named: bytes("exe"), to: link)
            executableLink = link
            process.executablePath = target
        }
    }

    /// Registers a synthetic node at the absolute `path`, creating missing parent
    /// directories (mode 0o555) and replacing whatever the path named before. For /proc:
    /// the kernel generates the contents (`FileSystemHost.generate`).
    public mutating func addSynthetic(path: UnsafeRawBufferPointer, _ kind: SyntheticNode) throws(Errno) {
        let path = Array(path)
        guard path.first == slash else { throw .EINVAL }
        guard path.count <= FileSystemLimits.maxPath else { throw .ENAMETOOLONG }
        // First every component is checked, so a bad path changes nothing; then the
        // directories above the last component are made.
        var components = PathComponents(path)
        var lastComponent: Range<Int>? = nil
        while let component = components.next() {
            guard component.count <= FileSystemLimits.maxName else { throw .ENAMETOOLONG }
            guard !isDotOrDotDot(path, component) else { throw .EINVAL }
            lastComponent = component
        }
        guard let lastComponent else { throw .EEXIST }
        let last = Array(path[lastComponent])
        let time = host.now()
        var directory = FileSystem.rootNode
        components = PathComponents(path)
        while let component = components.next(), component != lastComponent {
            guard let next = ensureDirectory(under: directory, named: Array(path[component]), time: time,
                                             permissions: 0o555)
            else { throw .ENOTDIR }
            directory = next
        }
        let type: NodeType
        let permissions: UInt32
        switch kind {
        case .directory:
            if let existing = child(of: directory, named: last), nodes[existing].type == .directory { return }
            (type, permissions) = (.directory, 0o555)
        case .generated(let id):
            (type, permissions) = (.generated(id), 0o444)
        case .symlink(let target):
            guard !target.isEmpty, target.count <= FileSystemLimits.maxPath else { throw .EINVAL }
            (type, permissions) = (.symlink, 0o777)
        case .device(let device):
            (type, permissions) = (.device(device), 0o666)
        case .descriptorDirectory:
            (type, permissions) = (.directory, 0o500)
        }
        let node = makeNode(type, permissions: permissions, time: time)
        if case .symlink(let target) = kind { nodes[node].data = target }
        if case .descriptorDirectory = kind { descriptorDirectory = node }
        if let old = child(of: directory, named: last) { dropLink(old) }
        // Also records a directory's parent and name (for ".." and getcwd).
        setEntry(in: directory, named: last, to: node)
    }
}

/// Linux's limits on names.
public enum FileSystemLimits {
    /// PATH_MAX less the NUL: a longer path is ENAMETOOLONG.
    public static let maxPath = 4095
    /// NAME_MAX: a longer component is ENAMETOOLONG.
    public static let maxName = 255
    /// MAXSYMLINKS: following more links in one lookup is ELOOP.
    public static let maxSymlinks = 40
}

let slash = UInt8(ascii: "/")
let dot = UInt8(ascii: ".")

/// The '/'-separated components of a path, in order, as index ranges; empty components
/// (repeated, leading or trailing slashes) are skipped. A plain loop rather than
/// `split(separator:)`, whose generic machinery costs the kernel more than this.
struct PathComponents {
    let path: [UInt8]
    var position = 0

    init(_ path: [UInt8]) { self.path = path }

    mutating func next() -> Range<Int>? {
        while position < path.count && path[position] == slash { position += 1 }
        guard position < path.count else { return nil }
        let start = position
        while position < path.count && path[position] != slash { position += 1 }
        return start..<position
    }
}

/// Whether `path[component]` is "." or "..".
func isDotOrDotDot(_ path: [UInt8], _ component: Range<Int>) -> Bool {
    let start = component.lowerBound
    switch component.count {
    case 1: return path[start] == dot
    case 2: return path[start] == dot && path[start + 1] == dot
    default: return false
    }
}

/// The bytes of a static string (mount-time names).
func bytes(_ s: StaticString) -> [UInt8] {
    s.withUTF8Buffer { Array($0) }
}
