import ImageFormat
#if canImport(Glibc)
import Glibc
#endif

// The host side of `apus run`'s environment (ContainerEnvironment has the rules): the
// host's variables for pass-through names, --env-file files, and the VM's /etc/passwd.

extension RunOptions {
    /// Whether the run gives the program a terminal (`-t`), which adds TERM. The -t flag is
    /// not part of this branch's RunOptions yet: this is the one place to connect it.
    var allocatesTerminal: Bool { terminal }
}

enum RunEnvironment {
    /// A variable of apus's own environment.
    static func hostVariable(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }
    }

    /// The settings of one --env-file (ContainerEnvironment.parseEnvFile), read from the host.
    static func readEnvFile(_ path: String) -> Result<[String], RunOptionsError> {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .failure(RunOptionsError("--env-file \(path): \(String(cString: strerror(errno)))")) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            return .failure(RunOptionsError("--env-file \(path): not a regular file"))
        }
        guard st.st_size <= 1 << 20 else { return .failure(RunOptionsError("--env-file \(path): larger than 1 MiB")) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return .failure(RunOptionsError("--env-file \(path): \(String(cString: strerror(errno)))")) }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        return ContainerEnvironment.parseEnvFile(bytes, path: path, host: hostVariable)
    }

    /// The program's environment in a VM whose image `reader` reads: the run's settings
    /// over the image's defaults (`imageEnvironment`), HOME from the image's /etc/passwd
    /// (the reader is made only when nothing set HOME).
    static func compose(_ options: RunOptions, imageEnvironment: [String], hostname: String,
                        reader: () -> ImageReader?) -> [String] {
        ContainerEnvironment.compose(image: imageEnvironment, user: options.environment, hostname: hostname,
                                     terminal: options.allocatesTerminal) {
            guard let reader = reader(), let passwd = imageFile(reader, path: "/etc/passwd") else { return "/" }
            return ContainerEnvironment.homeDirectory(passwd: passwd, uid: ContainerEnvironment.programUID) ?? "/"
        }
    }

    /// The bytes of the regular file at `path` in the image, following symlinks (at most 8;
    /// relative targets taken from the link's directory, lexically); nil when there is none.
    static func imageFile(_ reader: ImageReader, path: String) -> [UInt8]? {
        var path = path
        for _ in 0..<8 {
            guard let entry = reader.lookup(path: path) else { return nil }
            switch entry.kind {
            case .file:
                return Array(reader.contents(of: entry))
            case .symlink:
                guard let target = entry.linkTarget.map({ String(decoding: $0, as: UTF8.self) }) else { return nil }
                let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
                path = absolute(target, base: directory.isEmpty ? "/" : directory)
            case .directory:
                return nil
            }
        }
        return nil
    }
}
