import ApusKit
import GuestABI
import ArgumentParser
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// Taken first, so that --timings counts from the start of main.
let startNanos = monotonicNanos()

struct Apus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apus",
        abstract: "Run unmodified Linux programs as tiny virtual machines.",
        discussion: """
            Apus boots a program in its own VM: a small kernel written in Swift, linked with \
            nothing but the program, on KVM (/dev/kvm) or under QEMU.

            Examples:
              apus run ./hello
              apus run -e GREETING=hi --memory 64M ./prog arg1 "arg 2"
              apus run --timings ./hello
              apus run --trace ./hello
              apus run --vmm qemu ./hello
              apus run -v ./data:/data:ro ./prog /data/input.txt
              apus build -t pyapp /usr/bin/python3 --add ./app.py:/app/app.py
              apus run pyapp /app/app.py
              apus images
            """,
        version: apusVersion,
        subcommands: [Run.self, Build.self, Images.self, Inspect.self, Rmi.self, Version.self]
    )
}

let apusVersion = "0.1.0"

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a program in a new VM and run it to completion.",
        discussion: """
            PROGRAM is a static x86-64 Linux executable (musl or glibc, -static or \
            -static-pie), used unmodified; or a dynamically linked one, for which apus builds \
            an image with its loader and libraries into the image store first (once: later \
            runs find it in the build cache); or the name or digest of an image in the store \
            (apus build, apus images). A PROGRAM with a '/' is always a host file.

            The program's stdout and stderr are apus's stdout and stderr, byte for byte, and \
            apus exits with its exit status (128+N when signal N killed it, 139 after a crash, \
            with a crash report on stderr). The program's stdin is apus's stdin.

            Signals sent to apus (SIGINT from Ctrl-C, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, \
            SIGWINCH) are delivered to the program (pid 1 in the VM), which may handle or \
            ignore them as on Linux. A second Ctrl-C stops the VM (130); so does \
            --stop-timeout after SIGTERM (137).

            Options go before PROGRAM; everything after PROGRAM is passed to it (a "--" right \
            after PROGRAM is dropped: it only separates). A relative PROGRAM is found from \
            apus's current directory on the host; ARGS are passed exactly as written, a \
            relative path among them is not rewritten: the program resolves it in the VM, \
            from its working directory (/, or --workdir).

            The environment is docker's: PATH=\(ContainerEnvironment.defaultPath), \
            HOSTNAME (the VM's hostname) and, with -t, TERM=xterm; over them the image's \
            own variables (an image's PATH replaces the default), then --env-file, then \
            --env; HOME last, unless set: the home of the program's user (root) in the VM's \
            /etc/passwd, else /. Nothing else of apus's own environment reaches the program: \
            -e NAME (no '=') passes apus's NAME, or unsets NAME when apus has none. An \
            --env-file has one NAME=VALUE per line (the value verbatim, quotes included), \
            blank lines and #-comments are skipped, a bare NAME passes apus's NAME as -e \
            NAME does. An image runs with its stored defaults: ARGS replace its arguments, \
            --workdir, --hostname and --memory override its own.

            A dynamically linked interpreter (python3, perl, ruby, php, node, java: the file \
            name decides) gets the library directories it reports itself when the image is \
            built, if installed as packages are (owned by root, writable by no one else: \
            only such a program is run on the host to ask) (python3's standard library, perl's @INC, ruby's $LOAD_PATH, php's \
            extension directory, the JDK the java binary belongs to), and its script (the \
            first ARG that is no option or option's value, when it names an existing host \
            file) is copied in at the path the program \
            will open: an absolute one at the same path, a relative one under the working \
            directory (as with -v FILE:PATH). Other files it needs (python's site-packages, \
            data files) are not: add them with -v HOST:GUEST here, or --add in apus build.

            apus's own failures: 125 when the program cannot be started (not an x86-64 \
            ELF, a missing library, a corrupt store image, missing kernel, no KVM), 250 for a \
            guest kernel panic, 251 when the VM stops unexpectedly or --timeout expires, 252 \
            when the VM runs out of memory where no errno can be returned (raise --memory).

            Examples:
              apus run ./hello
              apus run -e GREETING=hi --memory 64M ./prog arg1 "arg 2"
              apus run -e USER --env-file ./app.env ./prog
              apus run /usr/bin/python3 script.py  (the script is copied in, at /script.py)
              apus run /usr/bin/sqlite3 :memory: "select sqlite_version();"
              apus run pyapp /app/app.py          (an image from apus build)
              apus run -w /app -e DEBUG=1 pyapp app.py
              apus run -p 8080:80 nginx-image       (curl http://127.0.0.1:8080/ on the host)
              apus run -it /bin/busybox sh         (an interactive shell in a terminal)
            """
    )

    @Option(name: [.customShort("e"), .customLong("env")],
            help: ArgumentHelp("Set an environment variable in the guest; NAME alone passes apus's own NAME (repeatable).",
                               valueName: "NAME=VALUE|NAME"))
    var environment: [String] = []

    @Option(name: .customLong("env-file"),
            help: ArgumentHelp("Read environment variables from a file of NAME=VALUE lines (# comments; repeatable; -e wins).",
                               valueName: "FILE"))
    var envFiles: [String] = []

    @Option(name: [.customShort("m"), .customLong("memory")],
            help: ArgumentHelp("Guest memory, e.g. 64M or 1G (8M…3072M; default: the image's, else \(RunOptions.defaultMemory)).",
                               valueName: "SIZE"))
    var memory: String?

    @Flag(help: "Print the boot timeline (VM setup, kernel entry, app entry, exit) on stderr.")
    var timings = false

    @Option(help: ArgumentHelp("The guest's hostname (uname), at most 64 bytes (default: apus).", valueName: "NAME"))
    var hostname: String = ""

    @Flag(help: "Print every syscall the program makes, with decoded arguments and results, on stderr (like strace).")
    var trace = false

    @Option(help: ArgumentHelp("Which VMM boots the VM: apus (built in, needs /dev/kvm) or qemu (qemu-system-x86_64 -M microvm, software emulation).",
                               valueName: "apus|qemu"))
    var vmm: String = "apus"

    @Option(help: ArgumentHelp("Stop the VM after this many seconds (0: no limit).", valueName: "SECONDS"))
    var timeout: Double = 0

    @Option(name: .customLong("stop-timeout"),
            help: ArgumentHelp("""
                After SIGTERM reaches apus (and the program, pid 1 in the VM), stop the VM if the                 program is still running this many seconds later (default 10, like docker stop;                 0: wait for ever). A second Ctrl-C stops the VM at once.
                """, valueName: "SECONDS"))
    var stopTimeout: Double = 10

    @Option(name: [.customShort("v"), .customLong("volume")],
            help: ArgumentHelp("""
                Copy a host file or directory into the VM at GUEST (repeatable). The program sees a \
                snapshot taken at start: its writes stay in the VM and never reach the host; with \
                :ro they fail (EROFS).
                """, valueName: "HOST:GUEST[:ro]"))
    var volumes: [String] = []

    @Option(name: [.customShort("w"), .customLong("workdir")],
            help: ArgumentHelp("The program's working directory in the VM (default: /); it must exist in the image.",
                               valueName: "DIR"))
    var workdir: String = ""

    @Option(name: [.customShort("p"), .customLong("publish")],
            help: ArgumentHelp("""
                Publish a port of the guest on the host (repeatable): connections to HOST_IP:HOST_PORT \
                (default address 127.0.0.1) reach GUEST_PORT in the VM.
                """, valueName: "[HOST_IP:]HOST_PORT:GUEST_PORT[/tcp|udp]"))
    var publish: [String] = []

    @Option(help: ArgumentHelp("""
                How the guest reaches the network: user (default: the VMM relays through host \
                sockets, no privileges needed; the guest is 10.0.2.15, the host's loopback is \
                10.0.2.2), tap (a tap device, needs root or CAP_NET_ADMIN) or none (loopback only). \
                The user network takes settings: host-loopback=off (10.0.2.2 and 127.0.0.0/8 \
                unreachable), outbound=off (nothing but published ports); both default to on.
                """, valueName: "user[,host-loopback=off][,outbound=off]|tap|none"))
    var network: String = "user"

    @Flag(name: [.customShort("t"), .customLong("tty")],
          help: "Give the program a terminal: its stdin, stdout and stderr (and /dev/tty) are one, with line editing, ^C as SIGINT and the window's size; apus's stdin must be a terminal, which stays in raw mode while the VM runs.")
    var tty = false

    @Flag(name: [.customShort("i"), .customLong("interactive")],
          help: "Keep stdin connected to the program (it always is; accepted for docker's -it).")
    var interactive = false

    @Argument(help: ArgumentHelp("The program to run.", valueName: "PROGRAM"))
    var program: String

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("Arguments for the program.", valueName: "ARGS"))
    var arguments: [String] = []

    func validate() throws {
        if case .failure(let problem) = RunOptions.make(program: program, arguments: arguments, environment: environment,
                                                        memory: memory ?? "", vmm: vmm, timings: timings, timeout: timeout,
                                                        trace: trace, hostname: hostname, volumes: volumes,
                                                        workdir: workdir, network: network, publish: publish,
                                                        envFiles: envFiles) {
            throw ValidationError(problem.description)
        }
    }

    func run() throws {
        var options = try RunOptions.make(program: program, arguments: arguments, environment: environment,
                                          memory: memory ?? "", vmm: vmm, timings: timings, timeout: timeout,
                                          trace: trace, hostname: hostname, volumes: volumes,
                                          workdir: workdir, network: network, publish: publish,
                                          envFiles: envFiles).get()
        guard stopTimeout >= 0, stopTimeout.isFinite, stopTimeout <= RunOptions.maxTimeoutSeconds else {
            throw usageError("--stop-timeout \(stopTimeout): expected seconds ≥ 0")
        }
        options.stopTimeoutSeconds = stopTimeout
        options.terminal = tty
        throw ExitCode(runProgram(options, startNanos: startNanos))
    }
}

/// Prints `apus: MESSAGE` on stderr and fails with `StoreCommands.failure`.
func fail(_ message: String) -> ExitCode {
    FileDescriptorOutput.stderr("apus: \(message)\n")
    return ExitCode(StoreCommands.failure)
}

/// A bad flag value found after parsing: `apus: MESSAGE` and 125, as every usage error.
func usageError(_ message: String) -> ExitCode {
    FileDescriptorOutput.stderr("apus: \(message)\n")
    return ExitCode(HostExitCode.startFailure)
}

enum FileDescriptorOutput {
    static func stderr(_ text: String) { write(2, text) }
    static func stdout(_ text: String) { write(1, text) }
    private static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 { if errno == EINTR { continue }; return }
                offset += n
            }
        }
    }
}

func openStore() throws -> ImageStore {
    do { return try ImageStore.openDefault() } catch { throw fail(error.message) }
}

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build an image of a program and its files into the image store.",
        discussion: """
            PROGRAM is a path, or a name looked up on PATH. A dynamically linked program gets \
            its interpreter and every library it needs (found like the host's loader does, \
            symlinks kept); a library no search path has is an error that names it and who \
            needs it. Every image also gets /etc/passwd and /etc/group (root and nobody), \
            /etc/nsswitch.conf, the host's /etc/localtime, /root and /tmp; --add files win \
            over these. An --add directory may hold the program or libraries the build \
            placed already (a whole JDK with its bin/java as PROGRAM): the same files are \
            taken once. Symlinks under an --add directory that lead nowhere on the host are \
            skipped with a warning.

            A python, perl, ruby, php, node or java PROGRAM also gets the directories it \
            loads its own library from, asked of it once here (see apus run --help); what \
            it loads from elsewhere (site-packages, data files) needs --add.

            Words after PROGRAM are the image's default arguments (put them after -- when \
            they start with '-'); --env, --workdir, --hostname and --memory are its other \
            defaults, which apus run NAME uses and its own options override.

            The image is stored under $APUS_HOME (default ~/.local/share/apus) by the SHA-256 \
            of its contents; NAME (default: the program's file name) points at it. A build \
            whose options and input files (size, mtime, inode, mode) are unchanged is a cache \
            hit: it reads nothing and says so.

            -f reads the build from a YAML manifest (keys: name, program, args, env, workdir, \
            files, hostname, memory, ca-certificates; see README.md); options given here \
            override it.

            Fails with exit status 1 and one "apus: " line (a missing file or library, a bad \
            manifest).

            Examples:
              apus build /usr/bin/sqlite3
              apus build -t pyapp /usr/bin/python3 --add ./app.py:/app/app.py
              apus build -t web -e PORT=8080 -w /srv --ca-certificates ./server -- --verbose
              apus build -f Apusfile.yaml
            """
    )

    @Option(name: [.customShort("t"), .customLong("tag")],
            help: ArgumentHelp("The image's name (default: the program's file name).", valueName: "NAME"))
    var name: String?

    @Option(name: [.customShort("f"), .customLong("file")],
            help: ArgumentHelp("Read the build from a YAML manifest (Apusfile.yaml).", valueName: "FILE"))
    var manifest: String?

    @Option(name: .customLong("add"),
            help: ArgumentHelp("""
                Add a host file or directory (recursively, symlinks kept) at IMAGE, by default at \
                its own absolute path (repeatable).
                """, valueName: "HOST[:IMAGE]"))
    var files: [String] = []

    @Option(name: [.customShort("e"), .customLong("env")],
            help: ArgumentHelp("A default environment variable (repeatable).", valueName: "KEY=VALUE"))
    var environment: [String] = []

    @Option(name: [.customShort("w"), .customLong("workdir")],
            help: ArgumentHelp("The default working directory (created in the image if missing).", valueName: "DIR"))
    var workdir: String?

    @Option(help: ArgumentHelp("The default hostname.", valueName: "NAME"))
    var hostname: String?

    @Option(name: [.customShort("m"), .customLong("memory")],
            help: ArgumentHelp("The default guest memory, e.g. 256M.", valueName: "SIZE"))
    var memory: String?

    @Flag(name: .customLong("ca-certificates"),
          help: "Add the host's CA bundle (/etc/ssl/certs/ca-certificates.crt) at the same path.")
    var caCertificates = false

    @Argument(help: ArgumentHelp("The program, then its default arguments.", valueName: "PROGRAM [ARGS]"))
    var words: [String] = []

    func run() throws {
        var spec: BuildSpec
        if let manifest {
            do { spec = try ManifestTool.load(path: manifest) } catch { throw fail(error.message) }
            // A PROGRAM given here is relative to the current directory (a bare name stays a
            // PATH lookup); the manifest's own paths stay relative to the manifest.
            if let program = words.first { spec.program = program.contains("/") ? absoluteFromHere(program) : program }
            if words.count > 1 { spec.arguments = Array(words.dropFirst()) }
        } else {
            guard let program = words.first else {
                throw usageError("build: give a PROGRAM (or -f MANIFEST); see apus build --help")
            }
            spec = BuildSpec(program: program)
            spec.arguments = Array(words.dropFirst())
        }
        if let name { spec.name = name }
        spec.environment += environment
        if let workdir { spec.workdir = workdir }
        if let hostname { spec.hostname = hostname }
        if let memory {
            guard let size = MemorySize.parse(memory) else {
                throw usageError("--memory \(memory): not a size (use a number with K, M or G, e.g. 64M)")
            }
            spec.memory = size
        }
        if caCertificates { spec.caCertificates = true }
        for text in files {
            switch FileSpec.parse(text) {
            case .success(let file):
                // Command-line paths are relative to the current directory, even with -f.
                spec.files.append(FileSpec(host: absoluteFromHere(file.host), image: file.image))
            case .failure(let problem): throw usageError(problem.message)
            }
        }
        let store = try openStore()
        let result: BuildResult
        do { result = try ImageBuild.build(spec, store: store) } catch { throw fail(error.message) }
        for warning in result.warnings { FileDescriptorOutput.stderr(warning + "\n") }
        FileDescriptorOutput.stdout(StoreCommands.buildSummary(result) + "\n")
    }

    private func absoluteFromHere(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        guard let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        return String(cString: cwd) + "/" + path
    }
}

struct Images: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the images in the image store.",
        discussion: """
            One line per name: NAME, SIZE (of the image file), CREATED and the first 12 hex \
            digits of the image's DIGEST (sha256 of its config, which names the image file). \
            Images apus run built for dynamic programs have no name (<none>); apus rmi DIGEST \
            removes one. The store is $APUS_HOME (default ~/.local/share/apus).

            Examples:
              apus images
              apus images --no-trunc
            """
    )

    @Flag(name: .customLong("no-trunc"), help: "Show whole digests.")
    var noTrunc = false

    func run() throws {
        let store = try openStore()
        FileDescriptorOutput.stdout(StoreCommands.imagesTable(store, now: Int64(time(nil)), fullDigests: noTrunc))
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what an image holds and how it runs.",
        discussion: """
            Prints the image's names, digest, creation time, size, its run defaults \
            (entrypoint, args, env, workdir, hostname, memory), its interpreter and libraries, \
            and every file, directory and symlink in it. The image file is checked first: a \
            corrupt one is an error.

            Examples:
              apus inspect pyapp
              apus inspect 3f2a9c1d2e4b
              apus inspect --json pyapp
            """
    )

    @Flag(help: "Print JSON instead.")
    var json = false

    @Argument(help: ArgumentHelp("An image name, or a digest (sha256:HEX or at least 6 hex digits).", valueName: "NAME|DIGEST"))
    var reference: String

    func run() throws {
        let store = try openStore()
        do {
            let image = try store.find(reference)
            let file = try ImageFile(path: image.blobPath, label: image.name ?? reference)
            try store.verifyBlob(file.file, hex: image.config.imageDigest, label: image.name ?? reference)
            FileDescriptorOutput.stdout(json ? StoreCommands.inspectJSON(image, file: file, store: store)
                                             : StoreCommands.inspectText(image, file: file, store: store, now: Int64(time(nil))))
        } catch {
            throw fail(error.message)
        }
    }
}

struct Rmi: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove images from the image store.",
        discussion: """
            A NAME is removed; when it was the image's last name, the image goes too. A \
            DIGEST removes the image with all its names. Files no image needs any more are \
            deleted. Every reference is tried; the exit status is 1 if any failed.

            Examples:
              apus rmi pyapp
              apus rmi pyapp web
              apus rmi 3f2a9c1d2e4b
            """
    )

    @Argument(help: ArgumentHelp("Image names or digests.", valueName: "NAME|DIGEST"))
    var references: [String]

    func validate() throws {
        if references.isEmpty { throw ValidationError("give at least one image name or digest") }
    }

    func run() throws {
        let store = try openStore()
        var failed = false
        for reference in references {
            do {
                let removal = try store.remove(reference)
                for name in removal.untagged { FileDescriptorOutput.stdout("Untagged: \(name)\n") }
                for digest in removal.deleted { FileDescriptorOutput.stdout("Deleted: \(digest)\n") }
            } catch {
                FileDescriptorOutput.stderr("apus: \(error.message)\n")
                failed = true
            }
        }
        if failed { throw ExitCode(StoreCommands.failure) }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version of apus.")
    func run() { print("apus \(apusVersion)") }
}

// `apus run` is the hot path of every boot, and ArgumentParser's first parse costs ~1.5 ms.
// FastRunParser takes the ordinary `apus run [options] PROGRAM [ARGS]` form by itself and
// hands everything else (help, errors, other spellings, other verbs) to ArgumentParser, so
// help texts and error messages have one source.
if let options = FastRunParser.parse(Array(CommandLine.arguments.dropFirst())) {
    exit(runProgram(options, startNanos: startNanos))
}
runParsedCommand()

/// ArgumentParser's path, with apus's error contract: help and version as ArgumentParser
/// prints them, a verb's own failure with the status it chose, and every usage error (an
/// unknown flag, a bad or missing value) as one `apus:` line and exit 125, like docker.
func runParsedCommand() -> Never {
    do {
        var command = try Apus.parseAsRoot()
        try command.run()
        exit(0)
    } catch let code as ExitCode {
        exit(code.rawValue)
    } catch {
        if Apus.exitCode(for: error) == .success { Apus.exit(withError: error) }  // --help, --version
        var message = Apus.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        if let first = message.first, first.isUppercase, message.dropFirst().first?.isLowercase == true {
            message = first.lowercased() + message.dropFirst()  // "Unknown option" → "unknown option", as apus's own
        }
        let verbs = Apus.configuration.subcommands.map { $0._commandName }
        let verb = CommandLine.arguments.dropFirst().first { verbs.contains($0) }
        let help = verb.map { "apus \($0) --help" } ?? "apus --help"
        FileDescriptorOutput.stderr("apus: \(message.hasSuffix(".") ? String(message.dropLast()) : message) (see '\(help)')\n")
        exit(HostExitCode.startFailure)
    }
}
