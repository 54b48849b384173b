import CKVM
import GuestABI
import ImageFormat
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// What `apus run` was asked to do.
public struct RunOptions {
    public enum Monitor: String, CaseIterable, Sendable {
        case apus
        case qemu
    }

    public var program: String
    public var arguments: [String]
    /// The run's own variables, --env-file settings then -e ones, pass-through names
    /// resolved: NAME=VALUE, or a bare NAME the host does not have (it removes NAME). The
    /// program's whole environment adds them to the defaults (RunEnvironment.compose).
    public var environment: [String]
    public var memorySize: UInt64
    public var monitor: Monitor
    public var timings: Bool
    public var timeoutSeconds: Double
    /// Print every syscall the program makes (strace-like) on stderr.
    public var trace = false
    /// uname's nodename in the guest (empty: "apus").
    public var hostname = ""
    /// Host files and directories copied into the image (`-v HOST:GUEST[:ro]`).
    public var volumes: [Volume] = []
    /// The program's initial working directory in the VM (`-w`; empty: "/").
    public var workingDirectory = ""
    /// Whether `--memory` was given (it then overrides a store image's memory).
    public var memoryExplicit = false
    /// `--network`: user (default), tap or none.
    public var network = NetworkMode.user
    /// `--network user,host-loopback=…,outbound=…`.
    public var networkPolicy = UserNetwork.Policy()
    /// `-p`: ports of the guest published on the host.
    public var publish: [PortMapping.Forward] = []
    /// `--stop-timeout`: seconds from SIGTERM to stopping the VM (0: never).
    public var stopTimeoutSeconds: Double = 10
    /// `-t`: the program's stdin, stdout and stderr are a terminal (HostTerminal.swift and
    /// the kernel's Terminal.swift); apus's stdin must be one.
    public var terminal = false

    public init(program: String, arguments: [String], environment: [String], memorySize: UInt64,
                monitor: Monitor, timings: Bool, timeoutSeconds: Double = 0) {
        self.program = program
        self.arguments = arguments
        self.environment = environment
        self.memorySize = memorySize
        self.monitor = monitor
        self.timings = timings
        self.timeoutSeconds = timeoutSeconds
    }
}

extension RunOptions {
    public static let defaultMemory = "128M"
    /// The largest --timeout: its milliseconds fit every timer the VMMs use.
    public static let maxTimeoutSeconds: Double = 1_000_000_000

    /// --timeout for the VMM's watchdog: 0 is no limit, and any positive value is at least one
    /// millisecond (a sub-millisecond timeout rounds up, never down to "no limit").
    public var timeoutMilliseconds: UInt64 {
        timeoutSeconds > 0 ? max(1, UInt64((min(timeoutSeconds, Self.maxTimeoutSeconds) * 1000).rounded(.up))) : 0
    }

    /// The checked options of `apus run`, or the one-line problem with them. An empty
    /// `memory` means "not given": the default, or a store image's own.
    public static func make(program: String, arguments: [String], environment: [String], memory: String,
                            vmm: String, timings: Bool, timeout: Double, trace: Bool = false,
                            hostname: String = "", volumes: [String] = [],
                            workdir: String = "", network: String = "user",
                            publish: [String] = [], envFiles: [String] = []) -> Result<RunOptions, RunOptionsError> {
        guard let size = MemorySize.parse(memory.isEmpty ? defaultMemory : memory) else {
            return .failure(RunOptionsError("--memory \(memory): not a size (use a number with K, M or G, e.g. 64M)"))
        }
        guard let monitor = Monitor(rawValue: vmm) else {
            return .failure(RunOptionsError("--vmm \(vmm): unknown VMM (choose apus or qemu)"))
        }
        let userEnvironment: [String]
        switch Self.userEnvironment(environment, envFiles: envFiles) {
        case .success(let settings): userEnvironment = settings
        case .failure(let problem): return .failure(problem)
        }
        guard timeout >= 0 && timeout.isFinite else {
            return .failure(RunOptionsError("--timeout must be a number of seconds ≥ 0"))
        }
        guard timeout <= maxTimeoutSeconds else {
            return .failure(RunOptionsError("--timeout \(timeout): at most \(Int(maxTimeoutSeconds)) seconds (about 31 years; 0 means no limit)"))
        }
        guard hostname.utf8.count <= BootInfo.hostnameCapacity, !hostname.utf8.contains(0), !hostname.contains("/") else {
            return .failure(RunOptionsError("--hostname \(hostname): at most 64 bytes, no '/' or NUL"))
        }
        // "--" right after PROGRAM separates apus's command line from the program's; it is
        // not passed on (a program that wants "--" first gets it by writing it twice).
        let arguments = arguments.first == "--" ? Array(arguments.dropFirst()) : arguments
        var options = RunOptions(program: program, arguments: arguments, environment: userEnvironment, memorySize: size,
                                 monitor: monitor, timings: timings, timeoutSeconds: timeout)
        options.trace = trace
        options.hostname = hostname
        options.memoryExplicit = !memory.isEmpty
        if !workdir.isEmpty {
            guard let normalized = try? ImagePath.normalize(workdir) else {
                return .failure(RunOptionsError("--workdir \(workdir): must be an absolute path without \"..\" or NUL"))
            }
            options.workingDirectory = normalized == "/" ? "" : normalized
        }
        for text in volumes {
            switch Volume.parse(text) {
            case .success(let volume): options.volumes.append(volume)
            case .failure(let problem): return .failure(problem)
            }
        }
        let networkWords = network.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let mode = NetworkMode(rawValue: networkWords[0]) else {
            return .failure(RunOptionsError("--network \(network): unknown network (choose user, tap or none)"))
        }
        options.network = mode
        for setting in networkWords.dropFirst() {
            guard mode == .user else {
                return .failure(RunOptionsError("--network \(network): only the user network takes settings (host-loopback=on|off, outbound=on|off)"))
            }
            let pair = setting.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, pair[1] == "on" || pair[1] == "off" else {
                return .failure(RunOptionsError("--network \(network): '\(setting)' is not a setting (host-loopback=on|off, outbound=on|off)"))
            }
            switch pair[0] {
            case "host-loopback": options.networkPolicy.hostLoopback = pair[1] == "on"
            case "outbound": options.networkPolicy.outbound = pair[1] == "on"
            default:
                return .failure(RunOptionsError("--network \(network): unknown setting '\(pair[0])' (host-loopback=on|off, outbound=on|off)"))
            }
        }
        if monitor == .qemu && options.networkPolicy.outbound && !options.networkPolicy.hostLoopback {
            return .failure(RunOptionsError("--network \(network): QEMU's user network cannot refuse the host's loopback alone; add outbound=off, or use --vmm apus"))
        }
        switch PortMapping.parseAll(publish) {
        case .success(let forwards): options.publish = forwards
        case .failure(let problem): return .failure(problem)
        }
        if mode == .none && !options.publish.isEmpty {
            return .failure(RunOptionsError("-p needs a network: --network none has none"))
        }
        return .success(options)
    }
}

extension RunOptions {
    /// --env-file settings (docker reads them first, whatever the order on the command
    /// line), then -e ones; bare names take the host's value.
    static func userEnvironment(_ settings: [String], envFiles: [String]) -> Result<[String], RunOptionsError> {
        var environment: [String] = []
        for path in envFiles {
            switch RunEnvironment.readEnvFile(path) {
            case .success(let fromFile): environment += fromFile
            case .failure(let problem): return .failure(problem)
            }
        }
        for setting in settings {
            if let problem = ContainerEnvironment.problem(with: setting) { return .failure(RunOptionsError(problem)) }
            environment.append(ContainerEnvironment.resolve(setting, host: RunEnvironment.hostVariable))
        }
        return .success(environment)
    }
}

public struct RunOptionsError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The common form of `apus run` parsed without ArgumentParser: `run`, then options in their
/// separate-value spelling (`-e K=V`, `--env K=V`, `-m 64M`, `--memory 64M`, `--vmm X`,
/// `--timeout S`, `--hostname H`, `-v H:G`, `--volume H:G`, `-w D`, `--workdir D`, `--env-file F`, `--timings`,
/// `--trace`, `-t`, `-i`, `-it`), then
/// PROGRAM and its arguments. Returns nil for anything else — including every invalid input —
/// so that ArgumentParser answers it.
public enum FastRunParser {
    public static func parse(_ argv: [String]) -> RunOptions? {
        guard argv.first == "run" else { return nil }
        var environment: [String] = []
        var memory = "", vmm = "apus", timings = false, timeout = 0.0, trace = false
        var hostname = "", workdir = "", network = "user"
        var volumes: [String] = [], publish: [String] = [], envFiles: [String] = []
        var tty = false
        var i = 1
        while i < argv.count, argv[i].hasPrefix("-") {
            let flag = argv[i]
            if flag == "--timings" { timings = true; i += 1; continue }
            if flag == "--trace" { trace = true; i += 1; continue }
            if ["-t", "--tty", "-it", "-ti"].contains(flag) { tty = true }
            if ["-t", "--tty", "-it", "-ti", "-i", "--interactive"].contains(flag) { i += 1; continue }
            guard i + 1 < argv.count else { return nil }
            let value = argv[i + 1]
            switch flag {
            case "-e", "--env": environment.append(value)
            case "--env-file": envFiles.append(value)
            case "-m", "--memory": memory = value
            case "--vmm": vmm = value
            case "--hostname": hostname = value
            case "-v", "--volume": volumes.append(value)
            case "-w", "--workdir": workdir = value
            case "-p", "--publish": publish.append(value)
            case "--network": network = value
            case "--timeout":
                guard let t = Double(value) else { return nil }
                timeout = t
            default: return nil
            }
            i += 2
        }
        guard i < argv.count else { return nil }
        let options = RunOptions.make(program: argv[i], arguments: Array(argv[(i + 1)...]), environment: environment,
                                      memory: memory, vmm: vmm, timings: timings, timeout: timeout, trace: trace,
                                      hostname: hostname, volumes: volumes, workdir: workdir,
                                      network: network, publish: publish, envFiles: envFiles)
        guard case .success(var checked) = options else { return nil }
        checked.terminal = tty
        return checked
    }
}

/// Memory sizes as the CLI takes them: 64M, 1G, 512K, or plain bytes.
public enum MemorySize {
    public static func parse(_ text: String) -> UInt64? {
        guard let last = text.last else { return nil }
        var digits = Substring(text)
        var unit: UInt64 = 1
        switch last {
        case "k", "K": unit = 1 << 10
        case "m", "M": unit = 1 << 20
        case "g", "G": unit = 1 << 30
        default: break
        }
        if unit != 1 { digits = digits.dropLast() }
        if digits.hasSuffix("i") || digits.hasSuffix("B") { return nil }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt64(digits) else { return nil }
        let (v, overflow) = n.multipliedReportingOverflow(by: unit)
        return overflow ? nil : v
    }

    /// The check every VMM applies; the message says what is allowed.
    public static func validate(_ size: UInt64) throws(RunError) {
        guard size >= GuestABI.minMemorySize, size <= GuestABI.maxMemorySize, size % 4096 == 0 else {
            throw RunError("--memory must be a multiple of 4K between \(GuestABI.minMemorySize >> 20)M and \(GuestABI.maxMemorySize >> 20)M")
        }
    }
}

/// Finds the kernel the CLI was built with: $APUS_KERNEL, else apus-kernel.elf next to the
/// apus executable (where the build script installs it).
public enum KernelLocator {
    public static let fileName = "apus-kernel.elf"

    public static func locate() throws(RunError) -> String {
        if let env = getenv("APUS_KERNEL") {
            let path = String(cString: env)
            guard access(path, R_OK) == 0 else { throw RunError("APUS_KERNEL=\(path): no readable kernel there") }
            return path
        }
        let exe = absolutePath("/proc/self/exe")
        let directory = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        let candidate = directory + "/" + fileName
        guard access(candidate, R_OK) == 0 else {
            throw RunError("the Apus kernel is missing (looked for \(candidate)); build it with scripts/build.sh")
        }
        return candidate
    }
}

/// Writes the guest's console to the host's stdout and stderr, and reads the host's stdin.
public struct HostConsole: ConsoleSink {
    /// `-t`: the host terminal is in raw mode, so the kernel's own lines (stderr) get the
    /// CR before each NL that the terminal no longer adds (the program's output has it from
    /// the guest's line discipline already).
    var rawTerminal = false

    public init() {}

    public mutating func write(_ stream: ConsoleStream, _ bytes: UnsafeRawBufferPointer) {
        if rawTerminal && stream != .stdout && bytes.contains(10) {
            var lines: [UInt8] = []
            for b in bytes { if b == 10 { lines.append(13) }; lines.append(b) }
            rawTerminal = false
            lines.withUnsafeBytes { write(stream, $0) }
            rawTerminal = true
            return
        }
        let fd: Int32 = stream == .stdout ? 1 : 2
        var offset = 0
        // The --timeout watchdog interrupts a write blocked on a full pipe (EINTR, or a short
        // write when some bytes went through): the rest is dropped and the run loop stops the VM.
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if ckvm_watchdog_fired() != 0 && n < bytes.count - offset { return }
            if n < 0 {
                if errno == EINTR { continue }
                return  // the reader went away (EPIPE): drop output like a dead pipe does
            }
            offset += n
        }
    }

    /// One nanosleep: a signal (the --timeout watchdog) ends it early, and the run loop then
    /// sees the watchdog; the guest's clock tells it how long it really slept.
    public mutating func sleep(nanoseconds: UInt64) {
        var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        _ = nanosleep(&request, nil)
    }

    /// A read blocked on the host's stdin ends when the --timeout watchdog fires (EINTR: the
    /// handler is installed without SA_RESTART); the run loop then stops the VM.
    public mutating func readStdin(into buffer: UnsafeMutableRawBufferPointer, nonblocking: Bool) -> Int {
        if nonblocking {
            var p = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
            let ready = ckvm_poll_ns(&p, 1, 0)
            if ready < 0 { return Int(ready) }
            if ready == 0 { return -Int(EAGAIN) }
        }
        while true {
            let n = read(0, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            // A host signal for the guest ends the read too: the kernel raises it and reads
            // again unless the reader has a handler to run.
            if errno != EINTR || ckvm_watchdog_fired() != 0 || ckvm_peek_host_signals() != 0 { return -Int(errno) }
        }
    }
}

/// Random bytes from the host for the guest's seed.
func hostSeed() -> (UInt64, UInt64, UInt64, UInt64) {
    var seed: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    _ = withUnsafeMutableBytes(of: &seed) { ckvm_getrandom($0.baseAddress, 32) }
    return seed
}

func stderrLine(_ text: String) {
    let line = text + "\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
}

/// `apus run`: finds the image — a store image by name or digest, else the host program:
/// static, an in-memory image around it; dynamic, a store image built on the fly (cached) —
/// and boots it on the chosen VMM. Returns the exit status for the apus process.
public func runProgram(_ options: RunOptions, startNanos: UInt64) -> Int32 {
    var host = HostStamps()
    host.parsed = monotonicNanos()
    do throws(RunError) {
        if options.terminal { try HostTerminal.check() }
        if let stored = try StoreRun.lookup(options.program) {
            host.checked = monotonicNanos()
            return try StoreRun.run(stored, options: options, argv0: nil, startNanos: startNanos, host: host)
        }
        try MemorySize.validate(options.memorySize)
        let program = try MappedFile(path: options.program)
        if case .dynamic = try ProgramCheck.classify(program) {
            host.checked = monotonicNanos()
            let stored = try StoreRun.buildOnTheFly(options.program)
            return try StoreRun.run(stored, options: options, argv0: options.program, startNanos: startNanos, host: host)
        }
        host.checked = monotonicNanos()
        let kernelPath = try KernelLocator.locate()
        let kernel = try MappedFile(path: kernelPath)
        let image = try InMemoryImage(program: program, imagePath: absolutePath(options.program), volumes: options.volumes)
        for warning in image.warnings { stderrLine(warning) }
        host.imageBuilt = monotonicNanos()
        let arguments = ([options.program] + options.arguments).map { Array($0.utf8) }
        let environment = RunEnvironment.compose(options, imageEnvironment: [], hostname: options.hostname) {
            try? ImageReader(bytes: UnsafeRawBufferPointer(image.bytes))
        }.map { Array($0.utf8) }
        return try withExtendedLifetime(image) { () throws(RunError) -> Int32 in
            try boot(options, kernelPath: kernelPath, kernel: kernel, image: UnsafeRawBufferPointer(image.bytes),
                     arguments: arguments, environment: environment, startNanos: startNanos, host: host)
        }
    } catch {
        stderrLine("apus: \(error.message)")
        return error.exitCode
    }
}

/// Checks the argument block and boots `image` on the chosen VMM. The caller keeps the
/// image's memory alive until this returns.
func boot(_ options: RunOptions, kernelPath: String, kernel: MappedFile, image: UnsafeRawBufferPointer,
          arguments: [[UInt8]], environment: [[UInt8]], startNanos: UInt64, host: HostStamps) throws(RunError) -> Int32 {
    let argumentBytes = (arguments + environment).reduce(0) { $0 + $1.count + 1 }
    guard argumentBytes <= Int(GuestABI.argumentsCapacity) else {
        throw RunError("arguments and environment take \(argumentBytes) bytes; at most \(GuestABI.argumentsCapacity) fit")
    }
    if arguments.contains(where: { $0.contains(0) }) || environment.contains(where: { $0.contains(0) }) {
        throw RunError("arguments and environment variables cannot contain NUL bytes")
    }
    var environment = environment
    if options.terminal {
        // TERM as docker sets it with -t (the host's here), unless the program's environment has one.
        if !environment.contains(where: { $0.starts(with: "TERM=".utf8) }) { environment.append(Array(HostTerminal.termVariable.utf8)) }
        try HostTerminal.enterRaw()
    }
    defer { HostTerminal.restore() }
    switch options.monitor {
    case .apus:
        return try runOnKVM(options, kernel: kernel, image: image, arguments: arguments,
                            environment: environment, startNanos: startNanos, host: host)
    case .qemu:
        return try QEMULauncher.run(options, kernelPath: kernelPath, image: image, arguments: arguments,
                                    environment: environment, startNanos: startNanos)
    }
}

/// Host-side stamps before the VM exists (CLOCK_MONOTONIC ns).
struct HostStamps {
    var parsed: UInt64 = 0
    var checked: UInt64 = 0
    var imageBuilt: UInt64 = 0
}

private func runOnKVM(_ options: RunOptions, kernel: MappedFile, image: UnsafeRawBufferPointer, arguments: [[UInt8]],
                      environment: [[UInt8]], startNanos: UInt64, host: HostStamps) throws(RunError) -> Int32 {
    var console = HostConsole()
    console.rawTerminal = options.terminal
    let seed = hostSeed()
    let sandbox: SandboxPolicy
    switch SandboxPolicy.fromEnvironment({ getenv($0).map { String(cString: $0) } }) {
    case .success(let policy): sandbox = policy
    case .failure(let problem): throw RunError(problem.message)
    }
    let network = try networkConfiguration(options, seed: seed.0)
    do {
        let vm = try VirtualMachine()
        var config = VMConfiguration(memorySize: options.memorySize, kernel: kernel.bytes, image: image,
                                     arguments: arguments, environment: environment, seed: seed)
        config.timeoutMilliseconds = options.timeoutMilliseconds
        if options.trace { config.bootFlags |= BootInfo.flagTraceSyscalls }
        if options.terminal {
            config.bootFlags |= BootInfo.flagTerminal
            config.terminalSize = HostTerminal.windowSize()
        }
        config.hostname = Array(options.hostname.utf8)
        config.workingDirectory = Array(options.workingDirectory.utf8)
        config.network = network
        config.sandbox = sandbox
        config.forwardHostSignals = true
        config.stopTimeoutMilliseconds = UInt64((options.stopTimeoutSeconds * 1000).rounded(.up))
        let result = try vm.boot(config, sink: &console)
        if options.timings { Timings.print(result.timeline, host: host, start: startNanos, platform: vm.platform) }
        return result.status.shellStatus
    } catch {
        switch error {
        case .noKVM, .outOfHostMemory, .boot, .sandbox: throw RunError(error.message, exitCode: HostExitCode.startFailure)
        case .stackOverflow: throw RunError(error.message, exitCode: ExitStatus.signaled(11).shellStatus)
        case .stoppedFromHost(_, let status): throw RunError(error.message, exitCode: status)
        case .unexpectedExit(let text) where text.hasPrefix("guest kernel panic: "):
            throw kernelPanicError(String(text.dropFirst("guest kernel panic: ".count)), options: options)
        default: throw RunError(error.message, exitCode: HostExitCode.vmFailure)
        }
    }
}

/// The VM's network device for `--network` and `-p`: nil for none.
private func networkConfiguration(_ options: RunOptions, seed: UInt64) throws(RunError) -> NetworkConfiguration? {
    let mac = NetworkConfiguration.MACAddress.derived(from: seed ^ UInt64(getpid()))
    switch options.network {
    case .none:
        return nil
    case .user:
        do {
            let backend = try UserNetwork(forwards: options.publish, seed: seed, policy: options.networkPolicy)
            var config = NetworkConfiguration(backend: backend, mac: mac, ipv4: UserNetwork.guestConfiguration)
            config.startsOnDemand = options.publish.isEmpty
            return config
        } catch {
            throw RunError(error.message, exitCode: HostExitCode.startFailure)
        }
    case .tap:
        do {
            let tap = try TapBackend()
            var config = NetworkConfiguration(backend: tap, mac: mac, ipv4: tap.host.guestConfiguration)
            config.forwards = options.publish
            return config
        } catch {
            throw RunError(error.message, exitCode: HostExitCode.startFailure)
        }
    }
}

/// `--timings`: where the milliseconds of one run went, on stderr.
enum Timings {
    /// Nanoseconds as "1.23 ms".
    static func ms(_ ns: UInt64) -> String {
        let hundredths = (ns + 5_000) / 10_000
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction) ms"
    }

    static func print(_ t: RunTimeline, host: HostStamps, start: UInt64, platform: GuestPlatform) {
        // Guest stamps are TSC values; the host TSC read at the first KVM_RUN anchors them.
        func guestNanos(_ tsc: UInt64) -> UInt64? {
            guard tsc >= t.firstRunTSC, t.tscKHz > 0 else { return nil }
            let delta = tsc - t.firstRunTSC
            return t.firstRun - start + delta / t.tscKHz * 1_000_000 + (delta % t.tscKHz) * 1_000_000 / t.tscKHz
        }
        var lines = ["apus: timeline (\(platform == .pvm ? "pvm" : "native"), since apus started):"]
        func add(_ label: String, _ ns: UInt64?) {
            guard let ns else { return }
            lines.append("  \(label.padding(17)) \(ms(ns))")
        }
        add("arguments parsed", host.parsed - start)
        add("program checked", host.checked - start)
        add("image built", host.imageBuilt - start)
        add("vm created", t.vmCreated - start)
        add("memory ready", t.memoryReady - start)
        add("kernel loaded", t.kernelLoaded - start)
        add("vcpu ready", t.vcpuReady - start)
        if t.sandboxed != 0 { add("sandbox entered", t.sandboxed - start) }
        add("first KVM_RUN", t.firstRun - start)
        add("kernel entry", guestNanos(t.guest.kernelEntry))
        add("app entry", guestNanos(t.guest.appEntry))
        if t.guest.firstOutput != 0 { add("first output", guestNanos(t.guest.firstOutput)) }
        add("app exit", guestNanos(t.guest.exit))
        add("vm stopped", t.exited - start)
        lines.append("  VM exits: \(t.exitCount)")
        if !t.sandbox.isEmpty { lines.append("  sandbox: \(t.sandbox)") }
        stderrLine(lines.joined(separator: "\n"))
    }
}

extension Timings {
    /// QEMU's guest TSC does not share the host's origin, so the guest stamps are placed
    /// backwards from the moment the exit frame arrived.
    static func printQEMU(guest: Timeline?, tscKHz khz: UInt64, exitArrival: UInt64, qemuExit: UInt64, start: UInt64) {
        var lines = ["apus: timeline (qemu, native platform, since apus started):"]
        if let g = guest, g.exit != 0, exitArrival > start {
            func at(_ tsc: UInt64) -> String {
                guard tsc != 0, tsc <= g.exit else { return "-" }
                let back = (g.exit - tsc) * 1_000_000 / max(khz, 1)
                return ms(exitArrival - start > back ? exitArrival - start - back : 0)
            }
            lines.append("  \("kernel entry".padding(16)) \(at(g.kernelEntry))")
            lines.append("  \("app entry".padding(16)) \(at(g.appEntry))")
            if g.firstOutput != 0 { lines.append("  \("first output".padding(16)) \(at(g.firstOutput))") }
            lines.append("  \("app exit".padding(16)) \(at(g.exit))")
        }
        lines.append("  \("qemu exited".padding(16)) \(ms(qemuExit - start))")
        stderrLine(lines.joined(separator: "\n"))
    }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}

/// A guest kernel panic as apus reports it: the VM running out of memory where no errno could
/// be returned names `--memory` and exits with `HostExitCode.outOfMemory`; any other panic
/// is `HostExitCode.kernelPanic`.
func kernelPanicError(_ text: String, options: RunOptions) -> RunError {
    let prefix = "\(HostExitCode.outOfMemoryPanicPrefix)"
    guard text.hasPrefix(prefix) else {
        return RunError("the VM stopped unexpectedly: guest kernel panic: \(text)", exitCode: HostExitCode.kernelPanic)
    }
    let size = options.memorySize
    let shown = size % (1 << 30) == 0 ? "\(size >> 30)G" : size % (1 << 20) == 0 ? "\(size >> 20)M" : "\(size >> 10)K"
    return RunError("the VM ran out of memory (--memory \(shown)): \(text.dropFirst(prefix.count)); give it more with --memory",
                    exitCode: HostExitCode.outOfMemory)
}
