// The store's small text files: an image's config, a build-cache entry. One record per line,
// `key` then space-separated fields; every field is escaped (`\\`, `\s` for space, `\n`,
// `\r`, `\t`) so that a field never contains a separator and any string round-trips. The
// first line names the format and its version; a reader refuses anything else, so a corrupt
// or foreign file is an error value, never a guess.

/// A line-format writer: `add("arg", value)` appends "arg <escaped value>".
struct LineWriter {
    private(set) var text: String

    init(header: String) { text = header + "\n" }

    mutating func add(_ key: String, _ fields: String...) {
        text += key
        for f in fields { text += " " + LineFormat.escape(f) }
        text += "\n"
    }
}

enum LineFormat {
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case " ": out += "\\s"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func unescape(_ s: Substring) -> String? {
        guard s.contains("\\") else { return String(s) }
        var out = ""
        var escaping = false
        for c in s.unicodeScalars {
            if escaping {
                switch c {
                case "\\": out += "\\"
                case "s": out += " "
                case "n": out += "\n"
                case "r": out += "\r"
                case "t": out += "\t"
                default: return nil
                }
                escaping = false
            } else if c == "\\" {
                escaping = true
            } else {
                out.unicodeScalars.append(c)
            }
        }
        return escaping ? nil : out
    }

    /// The records of `text` after its header line: (line number, key, unescaped fields).
    /// Nil when the header is not `header` or a field has a bad escape.
    static func records(_ text: String, header: String) -> [(line: Int, key: String, fields: [String])]? {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first.map(String.init) == header else { return nil }
        var out: [(Int, String, [String])] = []
        for (i, line) in lines.enumerated().dropFirst() where !line.isEmpty {
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            var fields: [String] = []
            for p in parts.dropFirst() {
                guard let f = unescape(p) else { return nil }
                fields.append(f)
            }
            out.append((i + 1, String(parts[0]), fields))
        }
        return out
    }
}

/// What `apus run NAME` needs besides the image file, and what `apus inspect` shows: the
/// image's defaults and a summary of its contents. Stored as `configs/<sha256 of this text>`.
public struct ImageConfig: Equatable, Sendable {
    public static let header = "apus-image-config 1"

    /// SHA-256 (hex) of the image file, which is `blobs/<imageDigest>`.
    public var imageDigest: String
    /// The image file's length in bytes.
    public var imageSize: UInt64
    /// When it was built (seconds since the epoch).
    public var created: Int64
    /// Image path of the program file the kernel starts (a regular file in the image).
    public var entrypoint: String
    /// argv[0]: the program's path as it was named (an image path; may be a symlink to the
    /// entrypoint, as /usr/bin/python3 is to python3.11).
    public var command: String
    /// Default arguments after argv[0]; `apus run NAME ARGS` replaces them.
    public var arguments: [String] = []
    /// Default environment, KEY=VALUE; `apus run -e` adds to and overrides it.
    public var environment: [String] = []
    /// Working directory (an image path; empty: "/").
    public var workdir = ""
    /// uname nodename (empty: the kernel's default, "apus").
    public var hostname = ""
    /// Guest memory in bytes (nil: `apus run`'s default).
    public var memory: UInt64?
    /// PT_INTERP of a dynamic program.
    public var interpreter: String?
    /// Libraries the build put in the image: DT_NEEDED name and image path.
    public var libraries: [LibraryRecord] = []
    /// The host path the program was built from.
    public var source = ""
    /// Regular files in the image and the sum of their sizes.
    public var fileCount = 0
    public var fileBytes: UInt64 = 0

    public struct LibraryRecord: Equatable, Sendable {
        public var name: String
        public var path: String
        public init(name: String, path: String) {
            self.name = name
            self.path = path
        }
    }

    public init(imageDigest: String, imageSize: UInt64, created: Int64, entrypoint: String, command: String) {
        self.imageDigest = imageDigest
        self.imageSize = imageSize
        self.created = created
        self.entrypoint = entrypoint
        self.command = command
    }

    public func encoded() -> String {
        var w = LineWriter(header: Self.header)
        w.add("image", imageDigest)
        w.add("size", String(imageSize))
        w.add("created", String(created))
        w.add("entrypoint", entrypoint)
        w.add("command", command)
        for a in arguments { w.add("arg", a) }
        for e in environment { w.add("env", e) }
        if !workdir.isEmpty { w.add("workdir", workdir) }
        if !hostname.isEmpty { w.add("hostname", hostname) }
        if let memory { w.add("memory", String(memory)) }
        if let interpreter { w.add("interpreter", interpreter) }
        for l in libraries { w.add("library", l.name, l.path) }
        w.add("source", source)
        w.add("files", String(fileCount), String(fileBytes))
        return w.text
    }

    /// Parses `encoded()`'s text; nil for anything malformed (wrong header, unknown key,
    /// wrong field count, a number that is not one, a required key missing).
    public static func decode(_ text: String) -> ImageConfig? {
        guard let records = LineFormat.records(text, header: header) else { return nil }
        var c = ImageConfig(imageDigest: "", imageSize: 0, created: 0, entrypoint: "", command: "")
        var seen = Set<String>()
        for (_, key, f) in records {
            let single = f.count == 1 ? f[0] : nil
            switch key {
            case "image":
                guard let v = single, isHexDigest(v) else { return nil }
                c.imageDigest = v
            case "size":
                guard let v = single.flatMap({ UInt64($0) }) else { return nil }
                c.imageSize = v
            case "created":
                guard let v = single.flatMap({ Int64($0) }) else { return nil }
                c.created = v
            case "entrypoint":
                guard let v = single else { return nil }
                c.entrypoint = v
            case "command":
                guard let v = single else { return nil }
                c.command = v
            case "arg":
                guard let v = single else { return nil }
                c.arguments.append(v)
            case "env":
                guard let v = single else { return nil }
                c.environment.append(v)
            case "workdir":
                guard let v = single else { return nil }
                c.workdir = v
            case "hostname":
                guard let v = single else { return nil }
                c.hostname = v
            case "memory":
                guard let v = single.flatMap({ UInt64($0) }) else { return nil }
                c.memory = v
            case "interpreter":
                guard let v = single else { return nil }
                c.interpreter = v
            case "library":
                guard f.count == 2 else { return nil }
                c.libraries.append(LibraryRecord(name: f[0], path: f[1]))
            case "source":
                guard let v = single else { return nil }
                c.source = v
            case "files":
                guard f.count == 2, let n = Int(f[0]), let b = UInt64(f[1]) else { return nil }
                c.fileCount = n
                c.fileBytes = b
            default:
                return nil
            }
            seen.insert(key)
        }
        guard seen.isSuperset(of: ["image", "size", "created", "entrypoint", "command"]) else { return nil }
        return c
    }
}

/// 64 lowercase hex digits: a SHA-256 as the store names files.
func isHexDigest(_ s: String) -> Bool {
    s.utf8.count == 64 && s.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
}
