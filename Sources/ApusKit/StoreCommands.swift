import ImageFormat
#if canImport(Glibc)
import Glibc
#endif

/// The text of `apus images`, `apus inspect`, `apus build` and `apus rmi`: functions of the
/// store and the current time, so tests can check them without a terminal.
public enum StoreCommands {
    /// Exit status of `apus build`, `images`, `inspect` and `rmi` when they fail (one
    /// "apus: " line on stderr). `apus run` keeps its own codes (125 when nothing booted).
    public static let failure: Int32 = 1

    // MARK: apus images

    /// One row per name, then one per unnamed image (`<none>`: built by `apus run` for a
    /// dynamic program), newest first within each group.
    public static func imagesTable(_ store: ImageStore, now: Int64, fullDigests: Bool = false) -> String {
        var rows: [[String]] = [["NAME", "SIZE", "CREATED", "DIGEST"]]
        var named = Set<String>()
        var entries: [(name: String, image: StoredImage?)] = []
        for (name, hex) in store.names() {
            named.insert(hex)
            entries.append((name, hex.isEmpty ? nil : try? store.load(hex, name: name)))
        }
        var unnamed: [StoredImage] = []
        for hex in store.configDigests() where !named.contains(hex) {
            if let image = try? store.load(hex, name: nil) { unnamed.append(image) }
        }
        unnamed.sort { $0.config.created > $1.config.created }
        for (name, image) in entries {
            guard let image else {
                rows.append([name, "-", "-", "(damaged: apus rmi \(name))"])
                continue
            }
            rows.append(row(name, image, now: now, full: fullDigests))
        }
        for image in unnamed { rows.append(row("<none>", image, now: now, full: fullDigests)) }
        return table(rows)
    }

    private static func row(_ name: String, _ image: StoredImage, now: Int64, full: Bool) -> [String] {
        [name, humanSize(image.config.imageSize), relativeTime(image.config.created, now: now),
         full ? "sha256:" + image.digest : String(image.digest.prefix(12))]
    }

    /// Left-aligned columns, three spaces apart, no trailing spaces.
    static func table(_ rows: [[String]]) -> String {
        guard let columns = rows.first?.count else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for r in rows { for (i, cell) in r.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { r in
            r.enumerated().map { i, cell in i == columns - 1 ? cell : cell.padding(widths[i] + 3) }.joined()
        }.joined(separator: "\n") + "\n"
    }

    // MARK: apus inspect

    /// A human-readable description: defaults, libraries, size, and every entry.
    public static func inspectText(_ image: StoredImage, file: ImageFile, store: ImageStore, now: Int64) -> String {
        let c = image.config
        var out = ""
        func line(_ label: String, _ value: String) { out += (label + ":").padding(13) + value + "\n" }
        let names = store.names().filter { $0.digest == image.digest }.map(\.name)
        line("Name", names.isEmpty ? "<none>" : names.joined(separator: ", "))
        line("Digest", "sha256:" + image.digest)
        line("Created", "\(isoTime(c.created)) (\(relativeTime(c.created, now: now)))")
        line("Size", "\(humanSize(c.imageSize)) (\(grouped(c.imageSize)) bytes; files \(humanSize(c.fileBytes)))")
        line("Image file", image.blobPath)
        line("Entrypoint", c.entrypoint)
        line("Command", c.command + (c.command == c.entrypoint ? "" : " (argv[0])"))
        line("Args", c.arguments.isEmpty ? "(none)" : c.arguments.map(quoted).joined(separator: " "))
        line("Env", c.environment.isEmpty ? "(none)" : c.environment.map(quoted).joined(separator: " "))
        line("Workdir", c.workdir.isEmpty ? "/" : c.workdir)
        line("Hostname", c.hostname.isEmpty ? "apus (default)" : c.hostname)
        line("Memory", c.memory.map(memoryText) ?? "\(RunOptions.defaultMemory) (default)")
        line("Source", c.source)
        line("Interpreter", c.interpreter ?? "(none: a static program)")
        if c.libraries.isEmpty {
            line("Libraries", "(none)")
        } else {
            line("Libraries", "\(c.libraries.count)")
            for l in c.libraries { out += "  \(l.name) → \(l.path)\n" }
        }
        let reader = file.reader
        var counts = (files: 0, directories: 0, symlinks: 0)
        var listing = ""
        for i in 0..<reader.entryCount {
            let e = reader.entry(at: i)
            let path = String(decoding: e.path, as: UTF8.self)
            let mode = String(e.mode, radix: 8)
            let perm = String(repeating: "0", count: max(0, 4 - mode.count)) + mode
            switch e.kind {
            case .file:
                counts.files += 1
                listing += "  f \(perm) \(humanSize(e.size).leftPadding(9))  \(path)\n"
            case .directory:
                counts.directories += 1
                listing += "  d \(perm) \("".leftPadding(9))  \(path)\(e.readOnly ? " (read-only)" : "")\n"
            case .symlink:
                counts.symlinks += 1
                let target = String(decoding: e.linkTarget ?? UnsafeRawBufferPointer(start: nil, count: 0), as: UTF8.self)
                listing += "  l \(perm) \("".leftPadding(9))  \(path) -> \(target)\n"
            }
        }
        line("Files", "\(plural(counts.files, "file")), \(plural(counts.directories, "directory", "directories")), \(plural(counts.symlinks, "symlink"))")
        return out + listing
    }

    /// The same as JSON (one object; "files" lists every entry).
    public static func inspectJSON(_ image: StoredImage, file: ImageFile, store: ImageStore) -> String {
        let c = image.config
        var fields: [(String, String)] = []
        let names = store.names().filter { $0.digest == image.digest }.map(\.name)
        fields.append(("names", json(names)))
        fields.append(("digest", json("sha256:" + image.digest)))
        fields.append(("imageDigest", json("sha256:" + c.imageDigest)))
        fields.append(("imageFile", json(image.blobPath)))
        fields.append(("created", json(isoTime(c.created))))
        fields.append(("size", String(c.imageSize)))
        fields.append(("fileBytes", String(c.fileBytes)))
        fields.append(("entrypoint", json(c.entrypoint)))
        fields.append(("command", json(c.command)))
        fields.append(("args", json(c.arguments)))
        fields.append(("env", json(c.environment)))
        fields.append(("workdir", json(c.workdir.isEmpty ? "/" : c.workdir)))
        fields.append(("hostname", c.hostname.isEmpty ? "null" : json(c.hostname)))
        fields.append(("memory", c.memory.map { String($0) } ?? "null"))
        fields.append(("source", json(c.source)))
        fields.append(("interpreter", c.interpreter.map(json) ?? "null"))
        fields.append(("libraries", "[" + c.libraries.map { "{\"name\":\(json($0.name)),\"path\":\(json($0.path))}" }.joined(separator: ",") + "]"))
        let reader = file.reader
        var entries: [String] = []
        for i in 0..<reader.entryCount {
            let e = reader.entry(at: i)
            var o = "{\"path\":\(json(String(decoding: e.path, as: UTF8.self))),\"mode\":\(e.mode)"
            switch e.kind {
            case .file: o += ",\"type\":\"file\",\"size\":\(e.size)"
            case .directory: o += ",\"type\":\"directory\""
            case .symlink:
                o += ",\"type\":\"symlink\",\"target\":\(json(String(decoding: e.linkTarget ?? UnsafeRawBufferPointer(start: nil, count: 0), as: UTF8.self)))"
            }
            if e.readOnly { o += ",\"readOnly\":true" }
            entries.append(o + "}")
        }
        fields.append(("files", "[\n    " + entries.joined(separator: ",\n    ") + "\n  ]"))
        return "{\n" + fields.map { "  \(json($0.0)): \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }

    // MARK: apus build

    /// The line `apus build` prints.
    public static func buildSummary(_ result: BuildResult) -> String {
        let c = result.image.config
        let name = result.image.name ?? "<none>"
        let digest = "sha256:" + result.image.digest.prefix(12)
        if result.cacheHit {
            return "\(name): up to date (cache hit: no input changed), \(digest)"
        }
        let time = String(Int(result.seconds * 100)).leftPadding(3, with: "0")
        let secs = "\(time.dropLast(2)).\(time.suffix(2)) s"
        return "\(name): built \(digest), \(plural(c.fileCount, "file")), \(humanSize(c.imageSize)), in \(secs)"
    }

    // MARK: Formatting

    /// Decimal units, as `docker images`: "812 B", "4.1 kB", "58.2 MB", "1.3 GB".
    public static func humanSize(_ bytes: UInt64) -> String {
        if bytes < 1000 { return "\(bytes) B" }
        let units = ["kB", "MB", "GB", "TB"]
        var value = Double(bytes) / 1000
        var unit = 0
        while value >= 999.95 && unit < units.count - 1 { value /= 1000; unit += 1 }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// "just now", "5 seconds ago", "3 minutes ago", "2 hours ago", "4 days ago", then the date.
    public static func relativeTime(_ then: Int64, now: Int64) -> String {
        let d = now - then
        func ago(_ n: Int64, _ unit: String) -> String { "\(n) \(unit)\(n == 1 ? "" : "s") ago" }
        if d < 2 { return "just now" }
        if d < 60 { return ago(d, "second") }
        if d < 3600 { return ago(d / 60, "minute") }
        if d < 86400 { return ago(d / 3600, "hour") }
        if d < 30 * 86400 { return ago(d / 86400, "day") }
        return String(isoTime(then).prefix(10))
    }

    /// UTC, ISO 8601: "2026-11-22T20:31:05Z".
    public static func isoTime(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }

    static func plural(_ n: Int, _ one: String, _ many: String? = nil) -> String {
        "\(n) \(n == 1 ? one : many ?? one + "s")"
    }

    static func memoryText(_ bytes: UInt64) -> String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30)G" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20)M" }
        if bytes % (1 << 10) == 0 { return "\(bytes >> 10)K" }
        return "\(bytes)"
    }

    static func grouped(_ n: UInt64) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, d) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(d)
        }
        return out
    }

    /// Shell-style quoting for display, only where needed.
    static func quoted(_ s: String) -> String {
        if !s.isEmpty, s.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_./=:@+,%".unicodeScalars.contains($0)) }) {
            return s
        }
        return "'" + s.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }

    static func json(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 {
                    let hex = String(c.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }

    static func json(_ list: [String]) -> String { "[" + list.map { json($0) }.joined(separator: ",") + "]" }
}

extension String {
    func leftPadding(_ width: Int, with pad: Character = " ") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
