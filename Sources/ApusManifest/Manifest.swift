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
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreError(.invalid, "\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
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
