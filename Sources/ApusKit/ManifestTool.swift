#if canImport(Glibc)
import Glibc
#endif

/// `apus build -f`: manifests are YAML, read with Yams, which links Foundation; linked into
/// `apus` it made every `apus run` start measurably slower (more conformance records for the
/// runtime to scan, a 3× larger binary). So the YAML lives in a helper executable,
/// `apus-manifest` (Sources/apus-manifest), installed next to `apus`: it parses the manifest
/// and prints the `BuildSpec` in line format, or one "apus: …" line on stderr and exit 1.
public enum ManifestTool {
    public static let fileName = "apus-manifest"

    /// $APUS_MANIFEST_TOOL, else apus-manifest next to the running executable.
    static func locate() throws(StoreError) -> String {
        if let path = environment("APUS_MANIFEST_TOOL") { return path }
        let exe = absolutePath("/proc/self/exe")
        let candidate = String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)]) + "/" + fileName
        guard access(candidate, X_OK) == 0 else {
            throw StoreError(.invalid, "reading a manifest needs \(candidate), which is missing; it is built with apus (swift build)")
        }
        return candidate
    }

    /// Runs the helper on `path` and returns the spec it parsed.
    public static func load(path: String) throws(StoreError) -> BuildSpec {
        let tool = try locate()
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard pipe(&out) == 0, pipe(&err) == 0 else { throw StoreError(.io, "pipe: \(errnoText())") }
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        let words: [String] = [tool, path]
        let argv = words.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, tool, &actions, nil, argv, environ)
        close(out[1])
        close(err[1])
        defer { close(out[0]); close(err[0]) }
        guard rc == 0 else { throw StoreError(.io, "cannot start \(tool): \(errnoText(rc))") }
        // The helper writes stdout (success) or one stderr line (failure), never much of both,
        // so reading them one after the other cannot deadlock on a full pipe.
        let text = drain(out[0])
        let problem = drain(err[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        guard exited, (status >> 8) & 0xff == 0 else {
            var line = problem.split(separator: "\n").first.map(String.init) ?? "\(tool) failed on \(path)"
            if line.hasPrefix("apus: ") { line.removeFirst(6) }
            throw StoreError(.invalid, line)
        }
        guard let spec = BuildSpec.decode(text) else { throw StoreError(.invalid, "\(tool) printed something unexpected for \(path)") }
        return spec
    }

    private static func drain(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
