import VMM
#if canImport(Glibc)
import Glibc
#endif

// Interpreters without a recipe: a build whose program is a language runtime (python3, perl,
// ruby, php, node, java) also gets the directories that runtime loads its own library from,
// found the way the runtime finds them — by asking the host's copy once, at build time — or
// from the JDK's layout. `apus run` additionally copies the script argument in
// (StoreRun.scriptVolume). What the runtime loads from elsewhere (python's site-packages,
// data files, gems outside the default directory) the user adds with --add or -v.

public enum InterpreterFamily: String, CaseIterable, Sendable {
    case python, perl, ruby, php, node, java

    /// The family of the program whose real file name is `name` (python3.11, perl5.36.0,
    /// ruby3.1, php8.2, nodejs, java), or nil.
    public static func of(fileName name: String) -> InterpreterFamily? {
        func named(_ stem: String) -> Bool {
            guard name.hasPrefix(stem) else { return false }
            // The rest is a version: digits and dots only (python3.11, perl5.36.0, php8.2).
            return name.dropFirst(stem.count).allSatisfy { $0 == "." || ("0"..."9").contains($0) }
        }
        if named("python") { return .python }
        if named("perl") { return .perl }
        if named("ruby") { return .ruby }
        if named("php") { return .php }
        if name == "node" || name == "nodejs" { return .node }
        if name == "java" { return .java }
        return nil
    }

    /// The arguments (after the program) that make the host's interpreter print its library
    /// directories, one per line; nil for families whose library is found from a layout
    /// (java) or that have none outside the binary (node keeps its library inside itself).
    /// The interpreter runs with an empty environment, as it starts in the VM (no PYTHONPATH,
    /// PERL5LIB, RUBYLIB).
    public var libraryQuery: [String]? {
        switch self {
        // -I: no environment or user site; -S: no site-packages. What is left is the standard
        // library: the stdlib directory, its zip if any, and lib-dynload.
        case .python: return ["-I", "-S", "-c", "import sys\nfor p in sys.path: print(p)"]
        case .perl: return ["-e", "print qq($_\\n) for @INC"]
        case .ruby: return ["-e", "puts $LOAD_PATH; puts Gem.default_dir if defined?(Gem)"]
        case .php:
            return ["-r", "echo implode(\"\\n\", array_merge([PHP_EXTENSION_DIR, PHP_CONFIG_FILE_PATH, PHP_CONFIG_FILE_SCAN_DIR], explode(PATH_SEPARATOR, get_include_path()))), \"\\n\";"]
        case .node, .java: return nil
        }
    }

    /// Options after which no script argument follows (the program comes from the command
    /// line: python -c/-m, perl -e/-E, ruby -e, php -r, node -e/-p, java --version, …).
    var inlineProgramOptions: Set<String> {
        switch self {
        case .python: return ["-c", "-m", "-V", "--version", "-h", "--help"]
        case .perl: return ["-e", "-E", "-v", "-V"]
        case .ruby: return ["-e", "-v", "--version"]
        case .php: return ["-r", "-v", "-i", "-m", "-h"]
        case .node: return ["-e", "--eval", "-p", "--print", "-v", "--version", "-h", "--help"]
        case .java: return ["-version", "--version", "-help", "--help", "-h"]
        }
    }

    /// Options that take the next argument as their value (skipped when looking for the
    /// script).
    var valueOptions: Set<String> {
        switch self {
        case .python: return ["-W", "-X", "--check-hash-based-pycs"]
        case .perl: return ["-I", "-M", "-m", "-x"]
        case .ruby: return ["-I", "-r", "-E", "-C", "--encoding"]
        case .php: return ["-c", "-d", "-z"]
        case .node: return ["-r", "--require", "--import", "--loader", "-C", "--conditions", "--input-type"]
        case .java: return ["-cp", "-classpath", "--class-path", "-p", "--module-path", "--add-modules", "-m", "--module"]
        }
    }

    /// Options whose value is the script itself (php -f FILE, java -jar FILE).
    var scriptOptions: Set<String> {
        switch self {
        case .php: return ["-f"]
        case .java: return ["-jar"]
        default: return []
        }
    }
}

public enum Interpreters {
    /// The index in `arguments` (the words after the program) of the script the interpreter
    /// will run: the first word that is not an option or an option's value, or the value of
    /// a script option (php -f, java -jar); nil when an option puts the program on the
    /// command line (python -c) or there is no such word. "--" ends the options.
    public static func scriptIndex(_ family: InterpreterFamily, arguments: [String]) -> Int? {
        var i = 0
        while i < arguments.count {
            let word = arguments[i]
            if word == "--" { return i + 1 < arguments.count ? i + 1 : nil }
            if family.inlineProgramOptions.contains(word) { return nil }
            if family.scriptOptions.contains(word) { return i + 1 < arguments.count ? i + 1 : nil }
            if family.valueOptions.contains(word) { i += 2; continue }
            if word.hasPrefix("-") && word != "-" {
                // -c'print(1)' and -e'…' written in one word put the program inline too.
                if family.inlineProgramOptions.contains(where: { $0.count == 2 && word.hasPrefix($0) }) { return nil }
                i += 1
                continue
            }
            return word == "-" ? nil : i
        }
        return nil
    }

    /// The directories `output` (a library query's stdout) names, in order: absolute paths
    /// only, each once, none inside another one listed before it, trailing slashes dropped.
    /// Whether they exist is the caller's business.
    public static func directories(fromQueryOutput output: String) -> [String] {
        var result: [String] = []
        for line in output.split(separator: "\n") {
            var path = String(line)
            while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            guard path.hasPrefix("/"), path != "/" else { continue }
            if result.contains(where: { path == $0 || path.hasPrefix($0 + "/") }) { continue }
            result.removeAll { $0.hasPrefix(path + "/") }
            result.append(path)
        }
        return result
    }

    /// The JDK or JRE the java binary at `realPath` (symlinks resolved) belongs to, as the
    /// paths to add: for a modular JDK (lib/modules, Java 9 and later) its bin, conf, lib and
    /// release (not jmods, include, man or docs: only jlink and compilers read those); for
    /// an older JRE (lib/rt.jar) the whole directory. nil for another layout.
    static func javaHome(ofJava realPath: String, exists: (String) -> Bool) -> [String]? {
        let bin = directoryOf(realPath)
        guard bin.hasSuffix("/bin") else { return nil }
        let home = directoryOf(bin)
        if exists(home + "/lib/modules") {
            return ["bin", "conf", "lib", "release"].map { home + "/" + $0 }.filter(exists)
        }
        if exists(home + "/lib/rt.jar") { return [home] }
        return nil
    }

    /// The host directories and files the interpreter at `realPath` loads its library from,
    /// or the reason they cannot be found.
    static func libraryPaths(_ family: InterpreterFamily, program realPath: String) -> Result<[String], InterpreterProblem> {
        if family == .java {
            guard let paths = javaHome(ofJava: realPath, exists: { fileExists($0) }) else {
                return .failure("not inside a JDK layout apus knows (HOME/bin/java with HOME/lib/modules or HOME/lib/rt.jar)")
            }
            return .success(paths)
        }
        guard let query = family.libraryQuery else { return .success([]) }
        // The query runs the program on the host, outside any VM: only one installed the
        // way a system package is. Another python is placed from its layout instead.
        if let reason = untrustedReason(realPath) {
            if family == .python, let stdlib = pythonStandardLibrary(ofPython: realPath, exists: { fileExists($0) }) {
                return .success([stdlib])
            }
            return .failure("not asked for its library, since \(reason)")
        }
        switch HostCommand.output([realPath] + query, timeoutSeconds: 20) {
        case .success(let output):
            let found = directories(fromQueryOutput: output).filter { fileExists($0) }
            guard !found.isEmpty else { return .failure("\(realPath) named no existing directory when asked for its library") }
            return .success(found)
        case .failure(let problem):
            return .failure(problem)
        }
    }

    /// Why the host program at `path` is not run natively to ask for its library, or nil
    /// when it may be: it and its directory must be owned by root and writable by nobody
    /// else, as what a package manager installs is (a program built or downloaded by a user
    /// is not run outside the VM).
    static func untrustedReason(_ path: String) -> String? {
        for (what, candidate) in [("it", path), ("its directory", directoryOf(path))] {
            var st = stat()
            guard stat(candidate, &st) == 0 else { return "\(what) cannot be examined (\(errnoText()))" }
            if st.st_uid != 0 { return "\(what) is not owned by root" }
            if st.st_mode & (S_IWGRP | S_IWOTH) != 0 { return "\(what) is writable by other users" }
        }
        return nil
    }

    /// A python's standard library from its layout, without running it: PREFIX/lib/pythonX.Y
    /// for PREFIX/bin/pythonX.Y (lib-dynload is inside it); nil when the name has no
    /// version or the directory is missing.
    static func pythonStandardLibrary(ofPython realPath: String, exists: (String) -> Bool) -> String? {
        let name = realPath.split(separator: "/").last.map(String.init) ?? ""
        let version = name.dropFirst("python".count)
        guard name.hasPrefix("python"), version.contains("."), directoryOf(realPath).hasSuffix("/bin") else { return nil }
        let stdlib = directoryOf(directoryOf(realPath)) + "/lib/python" + version
        return exists(stdlib + "/os.py") ? stdlib : nil
    }

    private static func directoryOf(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// Why an interpreter's library could not be found: one line.
public struct InterpreterProblem: Error, CustomStringConvertible, ExpressibleByStringInterpolation {
    public var description: String
    public init(stringLiteral value: String) { description = value }
    public init(stringInterpolation: DefaultStringInterpolation) { description = String(stringInterpolation: stringInterpolation) }
}

/// Runs a host program to completion and returns its stdout.
enum HostCommand {
    /// `argv` with an empty environment, stdin /dev/null; its stdout if it exits 0 within
    /// `timeoutSeconds`, else one line saying what went wrong (with its first stderr line).
    static func output(_ argv: [String], timeoutSeconds: Int) -> Result<String, InterpreterProblem> {
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard pipe(&out) == 0 else { return .failure("pipe: \(errnoText())") }
        guard pipe(&err) == 0 else { close(out[0]); close(out[1]); return .failure("pipe: \(errnoText())") }
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { for p in cArguments { free(p) } }
        var emptyEnvironment: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArguments, &emptyEnvironment)
        close(out[1])
        close(err[1])
        defer { close(out[0]); close(err[0]) }
        guard rc == 0 else { return .failure("cannot start \(argv[0]): \(errnoText(rc))") }

        var stdout: [UInt8] = [], stderr: [UInt8] = []
        var open = [true, true]
        let deadline = monotonicNanos() + UInt64(timeoutSeconds) * 1_000_000_000
        var chunk = [UInt8](repeating: 0, count: 65536)
        var timedOut = false
        while open[0] || open[1] {
            let now = monotonicNanos()
            guard now < deadline else { timedOut = true; break }
            var fds = [pollfd(fd: open[0] ? out[0] : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: open[1] ? err[0] : -1, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, Int32(min((deadline - now) / 1_000_000 + 1, 1000 as UInt64)))
            if ready < 0 && errno != EINTR { break }
            for (index, fd) in [out[0], err[0]].enumerated() where open[index] && fds[index].revents != 0 {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { open[index] = false; continue }
                if index == 0 { stdout += chunk[0..<n] } else if stderr.count < 4096 { stderr += chunk[0..<n] }
            }
        }
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let command = argv.prefix(2).joined(separator: " ")
        if timedOut { return .failure("\(command) …: no answer within \(timeoutSeconds) s") }
        let firstError = String(decoding: stderr, as: UTF8.self).split(separator: "\n").first.map { ": " + $0 } ?? ""
        guard status & 0x7f == 0 else { return .failure("\(command) …: killed by signal \(status & 0x7f)\(firstError)") }
        guard (status >> 8) & 0xff == 0 else { return .failure("\(command) …: exit status \((status >> 8) & 0xff)\(firstError)") }
        return .success(String(decoding: stdout, as: UTF8.self))
    }
}
