import ApusKit
import Yams
#if canImport(Glibc)
import Glibc
#endif

// `apus build -f Apusfile.yaml`: a build described in YAML (keys in README.md "Manifest").
// This is the only module that links Foundation (through Yams); only the apus-manifest
// helper executable links it (ApusKit/ManifestTool.swift says why).

public enum Manifest {
    /// Every key a manifest may have, in the order the README lists them.
    public static let keys = ["name", "program", "args", "env", "workdir", "files", "hostname", "memory", "ca-certificates"]

    /// Reads the manifest at `path`. Relative host paths in it are relative to its directory.
    public static func load(path: String) throws(StoreError) -> BuildSpec {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw StoreError(.invalid, "\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw StoreError(.invalid, "\(path): not a regular file (a manifest is a YAML file)")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw StoreError(.invalid, "\(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            bytes += chunk[0..<n]
            guard bytes.count <= 1 << 20 else { throw StoreError(.invalid, "\(path): a manifest is at most 1 MiB") }
        }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        return try parse(String(decoding: bytes, as: UTF8.self), label: path, directory: directory.isEmpty ? "/" : directory)
    }

    /// Parses manifest text. `label` prefixes error messages (the file's path); `directory`
    /// becomes the spec's base directory.
    public static func parse(_ text: String, label: String, directory: String) throws(StoreError) -> BuildSpec {
        func fail(_ node: Node?, _ message: String) -> StoreError {
            let at = node?.mark.map { ":\($0.line)" } ?? ""
            return StoreError(.invalid, "\(label)\(at): \(message)")
        }
        // Yams composes nodes recursively: a deeply nested document would overflow the stack.
        if let depth = YAMLNesting.exceeds(YAMLNesting.limit, in: text) {
            throw StoreError(.invalid, "\(label):\(depth.line): nested more than \(YAMLNesting.limit) levels deep (a manifest needs 3)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            let first = String(describing: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            let trimmed = first.hasSuffix(":") ? String(first.dropLast()) : first
            throw StoreError(.invalid, "\(label): not valid YAML: \(trimmed)")
        }
        guard let root, case .mapping(let mapping) = root else {
            throw fail(root, "expected a map of keys (\(keys.joined(separator: ", "))) at the top, got \(describe(root))")
        }

        var spec = BuildSpec(program: "")
        spec.baseDirectory = directory
        var seen = Set<String>()
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else { throw fail(keyNode, "keys must be plain words, got \(describe(keyNode))") }
            let key = keyScalar.string
            guard keys.contains(key) else {
                throw fail(keyNode, "unknown key '\(key)' (known keys: \(keys.joined(separator: ", ")))")
            }
            guard seen.insert(key).inserted else { throw fail(keyNode, "key '\(key)' appears twice") }
            if isNull(value) { continue }
            switch key {
            case "name": spec.name = try string(value, key: key, fail)
            case "program": spec.program = try string(value, key: key, fail)
            case "args": spec.arguments = try strings(value, key: key, fail)
            case "env": spec.environment = try environment(value, fail)
            case "workdir": spec.workdir = try string(value, key: key, fail)
            case "hostname": spec.hostname = try string(value, key: key, fail)
            case "memory":
                let text = try string(value, key: key, fail)
                guard let size = MemorySize.parse(text) else {
                    throw fail(value, "memory: expected a size such as 64M or 1G, got '\(text)'")
                }
                do { try MemorySize.validate(size) } catch {
                    throw fail(value, "memory: \(text) is out of range (a multiple of 4K from 8M to 3072M, e.g. 256M)")
                }
                spec.memory = size
            case "ca-certificates":
                guard case .scalar = value, let flag = value.bool else {
                    throw fail(value, "ca-certificates: expected true or false, got \(describe(value))")
                }
                spec.caCertificates = flag
            case "files": spec.files = try files(value, fail)
            default: break
            }
        }
        guard !spec.program.isEmpty else { throw fail(root, "'program' is missing (the program to build, e.g. program: /usr/bin/python3)") }
        return spec
    }

    private typealias Fail = (Node?, String) -> StoreError

    private static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let s) = node, s.style == .plain || s.style == .any else { return false }
        return node.null != nil
    }

    private static func describe(_ node: Node?) -> String {
        switch node {
        case nil: return "nothing"
        case .mapping?: return "a map"
        case .sequence?: return "a list"
        case .scalar(let s)?: return "'\(s.string)'"
        }
    }

    private static func string(_ node: Node, key: String, _ fail: Fail) throws(StoreError) -> String {
        guard case .scalar(let s) = node else { throw fail(node, "\(key): expected a string, got \(describe(node))") }
        return s.string
    }

    private static func strings(_ node: Node, key: String, _ fail: Fail) throws(StoreError) -> [String] {
        guard case .sequence(let items) = node else { throw fail(node, "\(key): expected a list of strings, got \(describe(node))") }
        var out: [String] = []
        for (i, item) in items.enumerated() {
            guard case .scalar(let s) = item else {
                throw fail(item, "\(key)[\(i)]: expected a string, got \(describe(item))")
            }
            out.append(s.string)
        }
        return out
    }

    /// `env` as a map (KEY: VALUE) or a list of KEY=VALUE strings.
    private static func environment(_ node: Node, _ fail: Fail) throws(StoreError) -> [String] {
        switch node {
        case .mapping(let pairs):
            var out: [String] = []
            for (k, v) in pairs {
                guard case .scalar(let key) = k, !key.string.isEmpty, !key.string.contains("=") else {
                    throw fail(k, "env: keys must be variable names without '=', got \(describe(k))")
                }
                guard case .scalar(let value) = v else {
                    throw fail(v, "env: \(key.string): expected a string, got \(describe(v))")
                }
                out.append(key.string + "=" + (isNull(v) ? "" : value.string))
            }
            return out
        case .sequence:
            let list = try strings(node, key: "env", fail)
            for variable in list where !variable.contains("=") || variable.hasPrefix("=") {
                throw fail(node, "env: expected KEY=VALUE, got '\(variable)'")
            }
            return list
        default:
            throw fail(node, "env: expected a map of variables or a list of KEY=VALUE strings, got \(describe(node))")
        }
    }

    /// `files`: a list of "HOST:IMAGE" strings or {from: HOST, to: IMAGE} maps.
    private static func files(_ node: Node, _ fail: Fail) throws(StoreError) -> [FileSpec] {
        guard case .sequence(let items) = node else {
            throw fail(node, "files: expected a list of HOST:IMAGE strings or {from:, to:} maps, got \(describe(node))")
        }
        var out: [FileSpec] = []
        for (i, item) in items.enumerated() {
            switch item {
            case .scalar(let s):
                switch FileSpec.parse(s.string) {
                case .success(let spec): out.append(spec)
                case .failure(let problem): throw fail(item, "files[\(i)]: \(problem.message)")
                }
            case .mapping(let pairs):
                var from: String?, to: String?
                for (k, v) in pairs {
                    guard case .scalar(let key) = k, key.string == "from" || key.string == "to" else {
                        throw fail(k, "files[\(i)]: unknown key \(describe(k)) (expected from and to)")
                    }
                    let value = try string(v, key: "files[\(i)].\(key.string)", fail)
                    if key.string == "from" { from = value } else { to = value }
                }
                guard let from, !from.isEmpty else { throw fail(item, "files[\(i)]: 'from' (the host path) is missing") }
                if let to, !to.hasPrefix("/") {
                    throw fail(item, "files[\(i)]: 'to' must be an absolute image path, got '\(to)'")
                }
                out.append(FileSpec(host: from, image: to))
            default:
                throw fail(item, "files[\(i)]: expected a HOST:IMAGE string or a {from:, to:} map, got \(describe(item))")
            }
        }
        return out
    }
}

/// An upper bound of a YAML document's nesting, found without parsing it: indentation levels,
/// compact sequence entries (`- - x`) and flow collections (`[[x]]`, `{a: {b: c}}`), outside
/// comments, quoted scalars and block scalars. It may count a few levels more than a parser
/// would (a `[` that starts a plain scalar), never fewer.
enum YAMLNesting {
    static let limit = 64

    /// The first line where the bound passes `limit`, or nil.
    static func exceeds(_ limit: Int, in text: String) -> (line: Int, depth: Int)? {
        var indents: [Int] = []          // the block indentation levels open at this line
        var flow = 0                     // open [ and { of flow collections
        var quote: UInt8? = nil          // the open quote of a scalar that spans lines
        var blockScalarIndent: Int? = nil
        var lineNumber = 0
        for line in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let bytes = Array(line)
            var i = 0
            while i < bytes.count, bytes[i] == UInt8(ascii: " ") { i += 1 }
            let indent = i
            if let scalarIndent = blockScalarIndent {
                if i == bytes.count || indent > scalarIndent { continue }  // a block scalar's text
                blockScalarIndent = nil
            }
            if quote == nil && flow == 0 {
                if i == bytes.count || bytes[i] == UInt8(ascii: "#") { continue }
                while let last = indents.last, last > indent { indents.removeLast() }
                if indents.last != indent { indents.append(indent) }
            }
            var depth = indents.count + flow
            var nodeStart = true         // the next character may open a node
            var last: UInt8 = UInt8(ascii: " ")
            while i < bytes.count {
                let c = bytes[i]
                if let q = quote {
                    if c == q {
                        if q == UInt8(ascii: "'"), i + 1 < bytes.count, bytes[i + 1] == q { i += 2; continue }
                        quote = nil
                    } else if c == UInt8(ascii: "\\") && q == UInt8(ascii: "\"") {
                        i += 1
                    }
                    i += 1
                    continue
                }
                switch c {
                case UInt8(ascii: "#") where last == UInt8(ascii: " ") || last == UInt8(ascii: "\t"):
                    i = bytes.count
                    continue
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    if nodeStart { quote = c }
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    if nodeStart { flow += 1; depth += 1 }
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    if flow > 0 { flow -= 1 }
                case UInt8(ascii: "-"), UInt8(ascii: "?"):
                    if nodeStart, i + 1 == bytes.count || bytes[i + 1] == UInt8(ascii: " ") { depth += 1 }
                case UInt8(ascii: "|"), UInt8(ascii: ">"):
                    if nodeStart && flow == 0 { blockScalarIndent = indent }
                default: break
                }
                if depth > limit { return (lineNumber, depth) }
                if c != UInt8(ascii: " ") && c != UInt8(ascii: "\t") {
                    nodeStart = c == UInt8(ascii: "[") || c == UInt8(ascii: "{") || c == UInt8(ascii: ",")
                        || c == UInt8(ascii: "-") || c == UInt8(ascii: "?") || c == UInt8(ascii: ":")
                }
                last = c
                i += 1
            }
        }
        return nil
    }
}
