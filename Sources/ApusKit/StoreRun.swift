import ImageFormat
import VMM
#if canImport(Glibc)
import Glibc
#endif

/// `apus run` of a store image: `apus run NAME [ARGS]`, and dynamic host programs, which run
/// from an image built on the fly.
enum StoreRun {
    /// The store image `operand` names, or nil when it is a host program. An operand with a
    /// '/' is always a host path (names and digests have none). Otherwise a name wins, then
    /// an existing host file of that name, then a digest. Costs an open() that fails with
    /// ENOENT for a plain host program.
    static func lookup(_ operand: String) throws(RunError) -> StoredImage? {
        guard !operand.isEmpty else { throw RunError("PROGRAM is empty: give a program's path or an image's name") }
        guard !operand.contains("/"), let root = ImageStore.defaultRoot() else { return nil }
        let store = ImageStore(root: root)
        do {
            if ImageStore.nameProblem(operand) == nil && fileExists(store.namePath(operand)) {
                return try store.find(operand)
            }
            if fileExists(operand) { return nil }
            if let image = try store.findIfPresent(operand) { return image }
        } catch {
            throw RunError(error.message)
        }
        throw RunError("\(operand): no such file, and no image of that name (apus images lists them; write ./\(operand) for a file)")
    }

    /// Builds (or finds in the cache) the image of a dynamic program `apus run` was given.
    static func buildOnTheFly(_ program: String) throws(RunError) -> StoredImage {
        do {
            let store = try ImageStore.openDefault()
            let result = try ImageBuild.build(BuildSpec(program: program.contains("/") ? program : "./" + program),
                                              store: store, auto: true)
            // The one build warning a run shows: an interpreter without its library will
            // likely fail, and the warning names what to add.
            if let warning = result.interpreterWarning { stderrLine(warning) }
            return result.image
        } catch {
            throw RunError(error.message)
        }
    }

    /// Boots `stored` with the run's options over the image's defaults: ARGS replace its
    /// arguments, --env-file and -e add to and override its environment (over docker's
    /// defaults, RunEnvironment.compose), -w, --hostname and -m override.
    /// `argv0`: argv[0] (nil: the image's command).
    static func run(_ stored: StoredImage, options: RunOptions, argv0: String?, startNanos: UInt64,
                    host: HostStamps) throws(RunError) -> Int32 {
        var host = host
        let config = stored.config
        let label = stored.name ?? "sha256:" + stored.digest.prefix(12)
        let file: ImageFile
        do {
            file = try ImageFile(path: stored.blobPath, label: label)
            try ImageStore(root: stored.storeRoot).verifyBlob(file.file, hex: stored.config.imageDigest, label: label)
        } catch {
            throw RunError(error.message)
        }

        var effective = options
        if !options.memoryExplicit, let memory = config.memory { effective.memorySize = memory }
        try MemorySize.validate(effective.memorySize)
        if effective.hostname.isEmpty { effective.hostname = config.hostname }
        if effective.workingDirectory.isEmpty { effective.workingDirectory = config.workdir }
        let arguments = [argv0 ?? config.command] + (options.arguments.isEmpty ? config.arguments : options.arguments)

        let kernelPath = try KernelLocator.locate()
        let kernel = try MappedFile(path: kernelPath)
        if argv0 != nil, let script = scriptVolume(options, image: file, workdir: effective.workingDirectory) {
            effective.volumes.append(script)
        }
        // Volumes need a new index: the store image's entries plus theirs, laid out in memory
        // with the store file's pages mapped in. Without volumes the store file is the image.
        let overlay = effective.volumes.isEmpty ? nil : try InMemoryImage(base: file, label: label, volumes: effective.volumes)
        for warning in overlay?.warnings ?? [] { stderrLine(warning) }
        host.imageBuilt = monotonicNanos()
        let bytes = overlay.map { UnsafeRawBufferPointer($0.bytes) } ?? file.bytes
        let environment = RunEnvironment.compose(effective, imageEnvironment: config.environment,
                                                 hostname: effective.hostname) {
            overlay == nil ? file.reader : try? ImageReader(bytes: bytes)
        }
        return try withExtendedLifetime((file, overlay)) { () throws(RunError) -> Int32 in
            try boot(effective, kernelPath: kernelPath, kernel: kernel, image: bytes,
                     arguments: arguments.map { Array($0.utf8) }, environment: environment.map { Array($0.utf8) },
                     startNanos: startNanos, host: host)
        }
    }

    /// The script of an interpreter run from the host (`apus run /usr/bin/python3 app.py`):
    /// the argument Interpreters.scriptIndex picks, when it names an existing regular file on
    /// the host (a relative name from apus's current directory), as a volume at the path the
    /// interpreter will open in the VM: the same absolute path, or a relative one taken from
    /// the working directory. The argument itself is not rewritten. Nil when the program is
    /// no interpreter, there is no such file, or the image has that path already (its own
    /// copy, or a -v volume's, wins).
    static func scriptVolume(_ options: RunOptions, image: ImageFile, workdir: String) -> Volume? {
        let reader = image.reader
        let entrypoint = String(decoding: reader.entrypoint.path, as: UTF8.self)
        guard let family = InterpreterFamily.of(fileName: ImageBuild.fileName(entrypoint)),
              let index = Interpreters.scriptIndex(family, arguments: options.arguments) else { return nil }
        let argument = options.arguments[index]
        var st = stat()
        guard stat(argument, &st) == 0, st.st_mode & S_IFMT == S_IFREG else { return nil }
        let guestPath = absolute(argument, base: workdir.isEmpty ? "/" : workdir)
        guard guestPath != "/", reader.lookup(path: guestPath) == nil,
              !options.volumes.contains(where: { guestPath == $0.guestPath || guestPath.hasPrefix($0.guestPath + "/") })
        else { return nil }
        return Volume(hostPath: absolute(argument, base: currentDirectory()), guestPath: guestPath, readOnly: false)
    }
}
