import ApusKit
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
            """,
        version: apusVersion,
        subcommands: [Run.self, Version.self]
    )
}

let apusVersion = "0.1.0"

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Boot a program in a new VM and run it to completion.",
        discussion: """
            PROGRAM is a static x86-64 Linux executable (musl or glibc, -static or \
            -static-pie), used unmodified. Its stdout and stderr are apus's stdout and stderr, \
            byte for byte, and apus exits with its exit status (128+N when signal N killed \
            it, 139 after a crash, with a crash report on stderr). The program's stdin is \
            apus's stdin.

            Options go before PROGRAM; everything after PROGRAM is passed to it. The program \
            sees exactly the --env variables, nothing of apus's own environment.

            apus's own failures: 125 when the program cannot be started (not a static x86-64 \
            ELF, missing kernel, no KVM), 250 for a guest kernel panic, 251 when the VM stops \
            unexpectedly or --timeout expires.
            """
    )

    @Option(name: [.customShort("e"), .customLong("env")],
            help: ArgumentHelp("Set an environment variable in the guest (repeatable).", valueName: "KEY=VALUE"))
    var environment: [String] = []

    @Option(name: [.customShort("m"), .customLong("memory")],
            help: ArgumentHelp("Guest memory, e.g. 64M or 1G (8M…3072M).", valueName: "SIZE"))
    var memory: String = RunOptions.defaultMemory

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

    @Argument(help: ArgumentHelp("The program to run.", valueName: "PROGRAM"))
    var program: String

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("Arguments for the program.", valueName: "ARGS"))
    var arguments: [String] = []

    func validate() throws {
        if case .failure(let problem) = RunOptions.make(program: program, arguments: arguments, environment: environment,
                                                        memory: memory, vmm: vmm, timings: timings, timeout: timeout,
                                                        trace: trace, hostname: hostname, volumes: volumes,
                                                        workdir: workdir) {
            throw ValidationError(problem.description)
        }
    }

    func run() throws {
        let options = try RunOptions.make(program: program, arguments: arguments, environment: environment,
                                          memory: memory, vmm: vmm, timings: timings, timeout: timeout,
                                          trace: trace, hostname: hostname, volumes: volumes,
                                          workdir: workdir).get()
        throw ExitCode(runProgram(options, startNanos: startNanos))
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
Apus.main()
